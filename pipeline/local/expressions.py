"""The expression language of a pipeline definition: `Get` and `Std:Join`.

A definition's `Arguments` are plain JSON in which some values are expressions:
`{"Get": "Parameters.X"}`, `{"Get": "Execution.PipelineExecutionId"}`,
`{"Get": "Steps.S.ProcessingOutputConfig.Outputs['out'].S3Output.S3Uri"}` and
`{"Std:Join": {"On": "/", "Values": [...]}}`. pipeline/definition/model.py finds them (and the data
dependencies they imply); this module checks them against what the runner can evaluate, before
anything runs, and evaluates them against a `Scope`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable

from pipeline.definition.model import CURRENT_ITEM, is_expression, walk_expressions

# Execution variables the runner can give a value; TrainingJobName has no meaning for a
# processing-only pipeline, so a definition that uses it is refused.
EXECUTION_VARIABLES = frozenset(
    {
        "PipelineExecutionId",
        "PipelineExecutionArn",
        "PipelineName",
        "PipelineArn",
        "StartDateTime",
        "CurrentDateTime",
        "ProcessingJobName",
    }
)
PROPERTY_FILE = re.compile(r"^Steps\.([A-Za-z0-9_-]+)\.PropertyFiles\.([A-Za-z0-9_-]+)$")
FUNCTIONS = frozenset({"Std:Join", "Std:JsonGet"})

_SEGMENT = re.compile(r"([A-Za-z0-9_]+)|\[(?:'([^']*)'|\"([^\"]*)\"|(\d+))\]|(\.)")


class ExpressionError(ValueError):
    """An expression that cannot be evaluated (the message names it)."""


def parse_property_path(path: str) -> list[str | int]:
    """`Outputs['out'].S3Output.S3Uri` -> ['Outputs', 'out', 'S3Output', 'S3Uri'].

    Attribute names stay strings, `['key']` keys are strings and `[0]` indexes are ints."""
    parts: list[str | int] = []
    pos = 0
    while pos < len(path):
        match = _SEGMENT.match(path, pos)
        if not match:
            raise ExpressionError(f"cannot parse property path {path!r} at {path[pos:]!r}")
        name, quoted1, quoted2, index, dot = match.groups()
        if name is not None:
            parts.append(name)
        elif index is not None:
            parts.append(int(index))
        elif not dot:
            parts.append(quoted1 if quoted1 is not None else quoted2)
        pos = match.end()
    return parts


# --- checking, before anything runs -------------------------------------------------------


@lru_cache(maxsize=1)
def _describe_shape():
    import botocore.session

    model = botocore.session.get_session().get_service_model("sagemaker")
    return model.operation_model("DescribeProcessingJob").output_shape


def property_problem(path: list[str | int]) -> str | None:
    """Why a processing-step property path is not one DescribeProcessingJob returns, or None."""
    shape = _describe_shape()
    for part in path:
        kind = shape.type_name
        if kind == "structure":
            if not isinstance(part, str) or part not in shape.members:
                return f"{shape.name} has no member {part!r}"
            shape = shape.members[part]
        elif kind == "list":
            shape = shape.member
        elif kind == "map":
            if not isinstance(part, str):
                return f"{shape.name} is a map, indexed by name"
            shape = shape.value
        else:
            return f"{shape.name} is a {kind} and has no member {part!r}"
    return None


def expression_problems(value: Any, parameters: set[str], steps: set[str], *,
                        current_item: bool = False) -> list[str]:
    """Everything in `value` the runner cannot evaluate, each named (empty when fine).
    `current_item`: `value` is a ForEach body step's, which may read `ForEach.CurrentItem`."""
    problems: list[str] = []
    for expr in walk_expressions(value):
        (key,) = expr
        if key == "Get":
            path = expr["Get"]
            if current_item and isinstance(path, str) and (path == CURRENT_ITEM or path.startswith(
                    (CURRENT_ITEM + ".", CURRENT_ITEM + "["))):
                continue
            problems += _get_problems(path, parameters, steps)
        elif key not in FUNCTIONS:
            problems.append(f"function {key} is not supported by the local runner")
        elif key == "Std:JsonGet":
            body = expr[key]
            ref = body.get("PropertyFile") if isinstance(body, dict) else None
            path = ref.get("Get") if isinstance(ref, dict) else None
            if not (isinstance(path, str) and PROPERTY_FILE.match(path) and isinstance(body.get("Path"), str)):
                problems.append("Std:JsonGet needs {'PropertyFile': {'Get': 'Steps.<step>.PropertyFiles.<name>'}, "
                                f"'Path': str}} (S3 URIs are not supported), got {body!r}")
            elif PROPERTY_FILE.match(path).group(1) not in steps:
                problems.append(f"Std:JsonGet {path}: no step named {PROPERTY_FILE.match(path).group(1)!r}")
        else:
            body = expr[key]
            if not isinstance(body, dict) or not isinstance(body.get("Values"), list):
                problems.append(f"Std:Join needs {{'On': str, 'Values': [...]}}, got {body!r}")
            else:
                problems += expression_problems(body["Values"], parameters, steps, current_item=current_item)
    return problems


def _get_problems(path: Any, parameters: set[str], steps: set[str]) -> list[str]:
    if not isinstance(path, str):
        return [f"Get of a non-string path {path!r}"]
    root, _, rest = path.partition(".")
    if root == "Parameters":
        return [] if rest in parameters else [f"Get {path}: no parameter named {rest!r}"]
    if root == "Execution":
        ok = rest in EXECUTION_VARIABLES
        return [] if ok else [f"Get {path}: execution variable {rest!r} is not supported"]
    if root == "Steps":
        name, _, prop = rest.partition(".")
        if name not in steps:
            return [f"Get {path}: no step named {name!r}"]
        try:
            problem = property_problem(parse_property_path(prop)) if prop else "no property"
        except ExpressionError as err:
            problem = str(err)
        return [f"Get {path}: {problem}"] if problem else []
    return [f"Get {path}: {root!r} references are not supported by the local runner"]


# --- evaluating ---------------------------------------------------------------------------


@dataclass
class Scope:
    """What expressions can read while one step's arguments are resolved."""

    parameters: dict[str, Any]
    execution: dict[str, str]
    step_properties: Callable[[str], dict | None] = lambda name: None
    current: dict[str, str] = field(default_factory=dict)  # per-step execution variables
    # (step, property file name) -> the parsed JSON file that step wrote (Std:JsonGet).
    property_file: Callable[[str, str], Any] | None = None
    item: Any = None  # in a ForEach iteration: its item (`ForEach.CurrentItem`)


def to_text(value: Any) -> str:
    """How a value appears inside a string (Join, arguments, environment): JSON-like."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        raise ExpressionError("cannot turn a missing value (null) into text")
    return str(value)


def evaluate(value: Any, scope: Scope) -> Any:
    """`value` with every expression replaced by its value (recursively, JSON in, JSON out)."""
    if is_expression(value):
        (key,) = value
        if key == "Get":
            return _get(value["Get"], scope)
        body = value[key]
        if key == "Std:JsonGet":
            return _json_get(body, scope)
        parts = [to_text(evaluate(item, scope)) for item in body["Values"]]
        return to_text(body.get("On", "")).join(parts)
    if isinstance(value, dict):
        return {key: evaluate(item, scope) for key, item in value.items()}
    if isinstance(value, list):
        return [evaluate(item, scope) for item in value]
    return value


def _json_get(body: dict, scope: Scope) -> Any:
    """`Std:JsonGet` over a step's property file; `Path` is dotted keys with `[i]` indexes."""
    match = PROPERTY_FILE.match(body["PropertyFile"]["Get"])
    step, name = match.group(1), match.group(2)
    if scope.property_file is None:
        raise ExpressionError(f"Std:JsonGet {step}.{name}: property files are not available here")
    node = scope.property_file(step, name)
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", body["Path"]):
        index = int(part[1:-1]) if part.startswith("[") else None
        try:
            node = node[index] if index is not None else node[part]
        except (KeyError, IndexError, TypeError):
            raise ExpressionError(f"Std:JsonGet {step}.{name}: no value at {body['Path']!r}") from None
    return node


def current_item(path: str, item: Any) -> Any:
    """`ForEach.CurrentItem[.field...]` of `item`. An item that is a JSON object's text is
    drilled into as that object; the bare reference to an object or list is its JSON text."""
    parts = parse_property_path(path[len(CURRENT_ITEM):].lstrip("."))
    node = item
    for part in parts:
        if isinstance(node, str):
            try:
                node = json.loads(node)
            except ValueError:
                raise ExpressionError(f"Get {path}: the item {item!r} is no JSON object") from None
        node = lookup({"_": node}, ["_", part], path)
    return json.dumps(node, separators=(",", ":")) if isinstance(node, (dict, list)) else node


def _get(path: str, scope: Scope) -> Any:
    if path == CURRENT_ITEM or path.startswith(CURRENT_ITEM + ".") or path.startswith(CURRENT_ITEM + "["):
        if scope.item is None:
            raise ExpressionError(f"Get {path}: only a ForEach body step has a current item")
        return current_item(path, scope.item)
    root, _, rest = path.partition(".")
    if root == "Parameters":
        return scope.parameters[rest]
    if root == "Execution":
        if rest in scope.current:
            return scope.current[rest]
        if rest not in scope.execution:
            raise ExpressionError(f"Get {path}: not available here")
        return scope.execution[rest]
    name, _, prop = rest.partition(".")
    properties = scope.step_properties(name)
    if properties is None:
        raise ExpressionError(f"Get {path}: step {name!r} has no properties (it did not run)")
    return lookup(properties, parse_property_path(prop), path)


def lookup(properties: dict, parts: list[str | int], label: str = "") -> Any:
    """Follow a parsed property path through a DescribeProcessingJob-like dict.

    A list indexed by a string picks the element whose `...Name` member equals it
    (`Outputs['out']` is the output with `OutputName` 'out'), as the SDK's properties do."""
    node: Any = properties
    for part in parts:
        if isinstance(node, list) and isinstance(part, str):
            node = next((i for i in node if _named(i, part)), None)
        elif isinstance(node, list):
            node = node[part] if part < len(node) else None
        elif isinstance(node, dict):
            node = node.get(part)
        else:
            node = None
        if node is None:
            raise ExpressionError(f"Get {label}: no value at {part!r}")
    return node


def _named(item: Any, name: str) -> bool:
    return isinstance(item, dict) and any(
        key.endswith("Name") and value == name for key, value in item.items()
    )
