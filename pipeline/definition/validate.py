"""Offline checks of a built definition: the graph, and each step's request against botocore's
own `CreateProcessingJob` input shape.

Pipeline expressions (`Get`, `Std:Join`, ...) are replaced by placeholders valid for the member
they sit in, because the service only sees their values at run time. botocore's validator
checks types, required members, unknown members and ranges; enums, patterns and maximum
lengths are checked here too, since the service rejects those at execution time, far from the config."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from pipeline.definition.model import CURRENT_ITEM, FOR_EACH, body_steps, compact, graph_problems, is_expression, job_steps, walk_gets


def check_graph(definition: dict) -> list[str]:
    """The graph rules (pipeline/definition/model.py), then the parameters: each declared one needs
    a default, each used one must be declared."""
    steps = definition.get("Steps", [])
    problems = graph_problems(steps)
    params = {p["Name"]: p for p in definition.get("Parameters", [])}
    for name, param in params.items():
        if "DefaultValue" not in param or param["DefaultValue"] in (None, ""):
            problems.append(f"parameter {name!r}: no default value (schedules and Studio need one)")
    for step in steps:
        for ref in walk_gets(step.get("Arguments", {})):
            if isinstance(ref, str) and ref.startswith("Parameters.") and ref.split(".", 1)[1] not in params:
                problems.append(f"step {step['Name']!r}: uses undeclared parameter {ref!r}")
    return problems


def _placeholder(shape):
    kind = shape.type_name
    if kind == "string":
        if shape.enum:
            return shape.enum[0]
        if "S3Uri" in shape.name or "Uri" in shape.name:
            return "s3://placeholder-bucket/placeholder"
        return "placeholder"
    if kind in ("integer", "long"):
        return max(int(shape.metadata.get("min", 1)), 1)
    if kind in ("float", "double"):
        return float(shape.metadata.get("min", 1))
    if kind == "boolean":
        return True
    return "placeholder"


def with_placeholders(value, shape):
    """The request with every expression replaced by a value valid for its member's shape."""
    if is_expression(value):
        return _placeholder(shape)
    kind = shape.type_name
    if kind == "structure" and isinstance(value, dict):
        return {k: with_placeholders(v, shape.members[k]) if k in shape.members else v for k, v in value.items()}
    if kind == "list" and isinstance(value, list):
        return [with_placeholders(v, shape.member) for v in value]
    if kind == "map" and isinstance(value, dict):
        return {k: with_placeholders(v, shape.value) for k, v in value.items()}
    return value


def _java_pattern(pattern: str) -> str:
    # AWS patterns are Java regexes; \p{...} classes are the only construct Python lacks here.
    return pattern.replace(r"\p{XDigit}", "0-9A-Fa-f").replace(r"\p{L}", "A-Za-z").replace(r"\p{Z}", " ") \
        .replace(r"\p{N}", "0-9").replace(r"\p{P}", r"!-/:-@\[-`{-~")


def check_constraints(value, shape, path: str) -> list[str]:
    """Enums, patterns and maximum lengths, which botocore's validator leaves to the service."""
    problems = []
    kind = shape.type_name
    if kind == "structure" and isinstance(value, dict):
        for k, v in value.items():
            if k in shape.members:
                problems += check_constraints(v, shape.members[k], f"{path}.{k}")
    elif kind == "list" and isinstance(value, list):
        if "max" in shape.metadata and len(value) > shape.metadata["max"]:
            problems.append(f"{path}: {len(value)} items, at most {shape.metadata['max']}")
        for i, v in enumerate(value):
            problems += check_constraints(v, shape.member, f"{path}[{i}]")
    elif kind == "map" and isinstance(value, dict):
        if "max" in shape.metadata and len(value) > shape.metadata["max"]:
            problems.append(f"{path}: {len(value)} entries, at most {shape.metadata['max']}")
        for k, v in value.items():
            problems += check_constraints(k, shape.key, f"{path} key {k!r}")
            problems += check_constraints(v, shape.value, f"{path}[{k!r}]")
    elif kind == "string" and isinstance(value, str):
        if shape.enum and value not in shape.enum:
            problems.append(f"{path}: {value!r} is not one of {shape.enum}")
        if "max" in shape.metadata and len(value) > shape.metadata["max"]:
            problems.append(f"{path}: {len(value)} characters, at most {shape.metadata['max']}")
        pattern = shape.metadata.get("pattern")
        if pattern:
            try:
                ok = re.fullmatch(_java_pattern(pattern), value, flags=re.DOTALL)
            except re.error:
                ok = True  # a pattern Python cannot compile is left to the service
            if not ok:
                problems.append(f"{path}: {value!r} does not match {pattern}")
    return problems


def check_processing_arguments(definition: dict) -> list[str]:
    import botocore.session
    from botocore.validate import ParamValidator

    model = botocore.session.get_session().get_service_model("sagemaker")
    shape = model.operation_model("CreateProcessingJob").input_shape
    problems = []
    for step in job_steps(definition.get("Steps", [])):
        if step.get("Type") != "Processing":
            continue
        # The definition drops ProcessingJobName; the service generates one at run time.
        request = {"ProcessingJobName": "placeholder", **with_placeholders(step["Arguments"], shape)}
        report = ParamValidator().validate(request, shape)
        if report.has_errors():
            for line in report.generate_report().splitlines():
                if line.strip() and not line.startswith("Parameter validation failed"):
                    problems.append(f"step {step['Name']!r}: {line.strip()}")
        problems += [f"step {step['Name']!r}: {p}" for p in check_constraints(request, shape, "Arguments")]
    return problems


# What is only known at run time, at realistic lengths: SageMaker execution ids are 12
# characters; a step's output URI is that output's own S3Uri expression, resolved (so the real
# bucket, prefix and pipeline name count); any other run-time value (a property file's URI,
# e.g. Reconcile's content-addressed shards place) is taken as the longest output URI the
# pipeline writes plus a 64-character digest.
EXECUTION_ID = "x" * 12
DIGEST = "x" * 64
_OUTPUT_URI = re.compile(r"^Steps\.([^.]+)\.ProcessingOutputConfig\.Outputs\['([^']+)'\]\.S3Output\.S3Uri$")


def _output_uris(definition: dict) -> dict[tuple[str, str], Any]:
    return {(step["Name"], out["OutputName"]): out["S3Output"]["S3Uri"]
            for step in job_steps(definition.get("Steps", []))
            for out in (step.get("Arguments", {}).get("ProcessingOutputConfig") or {}).get("Outputs", [])}


def runtime_uri(definition: dict, defaults: dict) -> str:
    """The stand-in for a run-time value that is not a step's output URI (see above)."""
    resolved = [representative(uri, defaults, {}, "") for uri in _output_uris(definition).values()]
    return max(resolved, key=len, default="s3://" + "x" * 63).rstrip("/") + "/" + DIGEST


def representative(value, defaults: dict, outputs: dict | None = None, runtime: str = "s3://" + "x" * 123) -> str:
    """A run-time expression as text of a realistic length, to check length limits. `outputs`
    maps (step, output name) to the output's S3Uri expression; `runtime` stands in for the rest."""
    if not is_expression(value):
        return str(value).lower() if isinstance(value, bool) else str(value)
    (key,) = value
    body = value[key]
    again = lambda v: representative(v, defaults, outputs, runtime)  # noqa: E731
    if key == "Std:Join":
        return str(body.get("On", "")).join(again(v) for v in body.get("Values", []))
    if key == "Get" and body.startswith("Parameters."):
        return again(defaults.get(body.split(".", 1)[1], ""))
    if key == "Get" and body == "Execution.PipelineExecutionId":
        return EXECUTION_ID
    if key == "Get" and outputs and (match := _OUTPUT_URI.match(body)) and match.groups() in outputs:
        return again(outputs[match.groups()])
    return runtime


def check_expression_lengths(definition: dict) -> list[str]:
    """Container arguments and environment values are at most 256 characters each, also after
    their expressions are resolved (with the parameters' defaults)."""
    defaults = {p["Name"]: p.get("DefaultValue", "") for p in definition.get("Parameters", [])}
    outputs, runtime = _output_uris(definition), runtime_uri(definition, defaults)
    problems = []
    for step in job_steps(definition.get("Steps", [])):
        args = step.get("Arguments", {})
        items = [(f"ContainerArguments[{i}]", v) for i, v in
                 enumerate(args.get("AppSpecification", {}).get("ContainerArguments", []))]
        items += [(f"Environment[{k!r}]", v) for k, v in (args.get("Environment") or {}).items()]
        for where, value in items:
            if is_expression(value) and len(text := representative(value, defaults, outputs, runtime)) > 256:
                problems.append(f"step {step['Name']!r}: {where} resolves to about {len(text)} characters "
                                f"at run time, at most 256: {text[:80]}...")
    return problems


# CreatePipeline/UpdatePipeline: PipelineDefinition is at most 1 MiB, inline or from S3.
DEFINITION_MAX = 1024 * 1024


@dataclass(frozen=True)
class Size:
    """The compact definition's size, and how many steps of its widest fan-out would fit."""

    bytes: int
    fan_out: str  # the step-name prefix with the most steps (a fan-out stage's, e.g. Featurize-<shard>)
    steps: int  # steps of the fan-out in this definition
    fit: int  # steps of the fan-out that fit in DEFINITION_MAX with everything else as is

    def line(self) -> str:
        head = f"{self.bytes:,} bytes compact of {DEFINITION_MAX:,} (1 MiB)"
        if self.fan_out == FOR_EACH:
            return f"{head}: the shards are a ForEach's iterations, so the size does not grow with them"
        if self.fan_out not in _fan_out_steps():  # no fan-out (Reconcile + Encode): nothing grows with the shards
            return head
        return f"{head}: about {self.fit} {self.fan_out} steps fit, this has {self.steps}"


def _fan_out_steps() -> set[str]:
    """The step-name prefixes of the registry's fan-out stages (one step per macroshard)."""
    from pipeline.stages import default_registry

    return {s.step for s in default_registry() if s.fans_out}


def measure(definition: dict) -> Size:
    """Each fan-out step costs its own compact JSON plus its name where Combine depends on it."""
    body = len(compact(definition).encode())
    fan_outs = [step for step in definition.get("Steps", []) if body_steps(step)]
    if fan_outs:
        return Size(body, FOR_EACH, len(fan_outs), len(fan_outs))
    groups: dict[str, list[dict]] = {}
    for step in definition.get("Steps", []):
        groups.setdefault(step["Name"].split("-", 1)[0], []).append(step)
    name, members = max(groups.items(), key=lambda kv: len(kv[1]), default=("", []))
    if not members:
        return Size(body, name, 0, 0)
    per_step = sum(len(canonical_compact(m)) + len(m["Name"]) + 3 for m in members) / len(members)
    return Size(body, name, len(members), len(members) + int((DEFINITION_MAX - body) // per_step))


def check_size(definition: dict) -> list[str]:
    size = measure(definition)
    if size.bytes <= DEFINITION_MAX:
        return []
    return [f"definition: {size.line()}; the service rejects a definition over 1 MiB: lower "
            f"stages.featurize.macroshards to at most {max(size.fit, 1)} (or shorten names, tags, environment)"]


def check_current_item(definition: dict) -> list[str]:
    """Our ForEach bodies read only the bare `ForEach.CurrentItem` (a plain string item, a
    shard's place): the service documents no object items and no field access
    (`ForEach.CurrentItem.uri`, `ForEach.CurrentItem['uri']`), so a definition that needs them
    is refused here, before it could fail at run time. (The local runner still evaluates field
    access, for definitions it did not build.)"""
    problems = []
    for step in definition.get("Steps", []):
        for body in body_steps(step):
            fields = sorted({path for path in walk_gets(body.get("Arguments")) if path.startswith(CURRENT_ITEM)
                             and path != CURRENT_ITEM})
            if fields:
                problems.append(f"step {body.get('Name', '')!r} (ForEach {step.get('Name', '')!r}): reads "
                                f"{', '.join(fields)}; use the bare {CURRENT_ITEM} (plain string items)")
    return problems


def check_definition(definition: dict) -> list[str]:
    return (check_graph(definition) + check_current_item(definition) + check_processing_arguments(definition)
            + check_expression_lengths(definition) + check_size(definition))


def canonical_compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()
