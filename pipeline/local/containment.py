"""Every key a local run derives stays inside its folder: parameters that would lead a key
elsewhere are refused at start, naming the parameter, and every resolved URI is checked again
before a step runs (the storage refuses what slips through: `steps.io.storage.check_uri`).

A parameter flows into keys where a definition joins it with "/" (`Std:Join`, as the builder's
`<base>/experiments/<ExperimentName>/...` does) or uses it as an S3 URI by itself.
"""

from __future__ import annotations

from typing import Any, Iterator

from pipeline.definition.model import processing_outputs
from steps.io.storage import UnsafeKey, check_key, check_uri, split_uri

_PARAMETER = "Parameters."


def _parameter(value: Any) -> str | None:
    """The parameter a `{"Get": "Parameters.X"}` names, else None."""
    if isinstance(value, dict) and isinstance(value.get("Get"), str) and value["Get"].startswith(_PARAMETER):
        return value["Get"][len(_PARAMETER):]
    return None


def key_parameters(node: Any, step: str = "") -> Iterator[tuple[str, str]]:
    """(parameter, step) for every parameter that becomes part of a key in `node` (a definition
    or a part of one): an item of a "/" join, or an `S3Uri` value by itself."""
    if isinstance(node, list):
        for item in node:
            yield from key_parameters(item, step)
        return
    if not isinstance(node, dict):
        return
    step = node["Name"] if isinstance(node.get("Name"), str) and "Type" in node else step
    join = node.get("Std:Join")
    if isinstance(join, dict) and join.get("On") == "/":
        for value in join.get("Values") or []:
            if name := _parameter(value):
                yield name, step
    if name := _parameter(node.get("S3Uri")):
        yield name, step
    for value in node.values():
        yield from key_parameters(value, step)


def parameter_problem(value: Any) -> str | None:
    """Why a parameter value cannot be part of a key (an s3:// URI, or one or more segments)."""
    if not isinstance(value, str):
        return None
    try:
        if value.startswith("s3://"):
            check_uri(value)
        else:
            check_key(value.strip("/"), "")  # a join keeps a part's slashes, which a path collapses
    except (UnsafeKey, ValueError) as err:
        return str(err).strip()
    return None


def check_parameters(definition: dict, parameters: dict[str, Any]) -> None:
    """ValueError naming each parameter whose value would lead a key out of its folder."""
    problems = {}
    for name, step in key_parameters(definition.get("Steps") or []):
        if name in parameters and name not in problems:
            if problem := parameter_problem(parameters[name]):
                problems[name] = f"parameter {name}={parameters[name]!r} (a part of the keys of step {step}) {problem}"
    if problems:
        raise ValueError("; ".join(problems.values()) + "; refused before anything ran")


def check_arguments(arguments: dict) -> None:
    """ValueError naming the first URI of a resolved step (inputs, outputs, and s3:// values of
    its arguments and environment) that is no s3:// URI or would lead out of its folder."""
    for item in arguments.get("ProcessingInputs") or []:
        check_uri(item["S3Input"]["S3Uri"])
    for item in processing_outputs(arguments):
        check_uri(item["S3Output"]["S3Uri"])
    app = arguments.get("AppSpecification") or {}
    values = list(app.get("ContainerArguments") or []) + list((arguments.get("Environment") or {}).values())
    for value in values:
        if isinstance(value, str) and value.startswith("s3://"):
            split_uri(value)
            check_uri(value)
