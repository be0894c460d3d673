"""Reading a pipeline definition and refusing, up front and by name, what cannot run here.

The runner executes the JSON that `upsert` sends (SDK 3.27 `Pipeline.definition()`), so this
module checks that JSON against what a local machine can honour: Processing steps only, S3
File-mode inputs, S3 outputs, `Get`/`Std:Join` expressions, the four parameter types. Every
problem is collected, so one refusal lists them all.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping

from pipeline.definition.model import (FOR_EACH, graph_problems, parse_duration, processing_outputs, upstream,
                                 walk_gets)
from pipeline.local.expressions import PROPERTY_FILE, expression_problems, parse_property_path

SUPPORTED_VERSION = "2020-12-01"
PARAMETER_TYPES = ("String", "Integer", "Float", "Boolean")

_TOP_KEYS = {"Version", "Metadata", "Parameters", "PipelineExperimentConfig", "Steps",
             "MlflowConfig", "ParallelismConfiguration"}
_STEP_KEYS = {"Name", "Type", "Arguments", "DependsOn", "CacheConfig", "RetryPolicies",
              "DisplayName", "Description", "PropertyFiles"}
_FOR_EACH_KEYS = {"Name", "Type", "Arguments", "DependsOn", "DisplayName", "Description"}
_FOR_EACH_ARGUMENTS = {"IterableItems", "MaxConcurrency", "ForEachBody"}
# ForEachStep's MAX_LITERAL_ITERABLE_ITEMS (SDK 3.27): a literal list holds 1 to 100 items.
MAX_LITERAL_ITEMS = 100
_ARGUMENT_KEYS = {"ProcessingResources", "AppSpecification", "Environment", "ProcessingInputs",
                  "ProcessingOutputConfig", "StoppingCondition", "RoleArn", "NetworkConfig",
                  "ExperimentConfig", "Tags", "ProcessingJobName"}
_INPUT_RULES = {
    "S3DataType": ("S3Prefix", "ManifestFile"),
    "S3InputMode": ("File",),
    "S3DataDistributionType": ("FullyReplicated", "ShardedByS3Key"),
    "S3CompressionType": ("None",),
}


class UnsupportedDefinition(ValueError):
    """The definition uses something the local runner cannot execute; `problems` lists it all."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"the local runner cannot execute this definition:\n{lines}")


@dataclass(frozen=True)
class Parameter:
    name: str
    type: str
    default: Any = None

    def parse(self, text: str) -> Any:
        """A command-line value (`--param K=V`) as this parameter's type."""
        try:
            if self.type == "Integer":
                return int(text)
            if self.type == "Float":
                return float(text)
            if self.type == "Boolean":
                return {"true": True, "false": False}[text.strip().lower()]
        except (ValueError, KeyError):
            raise ValueError(f"parameter {self.name} is {self.type}, got {text!r}") from None
        return text


@dataclass(frozen=True)
class ForEach:
    """A ForEach step's fan-out: its body runs once per item, at most `max_concurrency` at once."""

    items: Any  # IterableItems: an expression resolving to a JSON list string, or a list
    max_concurrency: int
    body: tuple["Step", ...]


@dataclass(frozen=True)
class Step:
    name: str
    arguments: dict
    # upstream step -> trigger (pipeline.definition.model.upstream: data and DependsOn alike)
    upstream: dict[str, str] = field(default_factory=dict)
    cache: dict | None = None
    retry_policies: tuple[dict, ...] = ()
    property_files: tuple[dict, ...] = ()  # {PropertyFileName, OutputName, FilePath}
    for_each: ForEach | None = None  # a ForEach step (no job of its own)


@dataclass(frozen=True)
class Definition:
    parameters: dict[str, Parameter]
    steps: dict[str, Step]
    raw: dict

    def resolve_parameters(self, overrides: Mapping[str, Any] | None) -> dict[str, Any]:
        """Defaults, overridden by `overrides` (strings are parsed as the parameter's type)."""
        overrides = dict(overrides or {})
        unknown = sorted(set(overrides) - set(self.parameters))
        if unknown:
            known = ", ".join(self.parameters) or "none"
            raise ValueError(f"unknown pipeline parameter(s) {unknown}; the pipeline has: {known}")
        values = {}
        for name, param in self.parameters.items():
            if name in overrides:
                value = overrides[name]
                values[name] = param.parse(value) if isinstance(value, str) else value
            elif param.default is None:
                raise ValueError(f"parameter {name} has no default; give it with --param {name}=...")
            else:
                values[name] = param.default
        return values


def load_definition(definition: dict | str) -> Definition:
    """Parse and check a definition (a dict or its JSON text); raise UnsupportedDefinition."""
    raw = json.loads(definition) if isinstance(definition, str) else definition
    problems: list[str] = []
    if raw.get("Version") != SUPPORTED_VERSION:
        problems.append(f"definition Version {raw.get('Version')!r}, expected {SUPPORTED_VERSION!r}")
    problems += [f"top-level key {k!r} is not supported" for k in sorted(set(raw) - _TOP_KEYS)]
    if raw.get("MlflowConfig"):
        problems.append("MlflowConfig is not supported by the local runner")
    parameters = _parameters(raw.get("Parameters") or [], problems)
    problems += graph_problems(raw.get("Steps") or [])
    steps = _steps(raw.get("Steps") or [], problems)
    names = set(steps)
    for step in steps.values():
        if step.for_each is not None:
            problems += [f"step {step.name}: IterableItems: {p}" for p in
                         expression_problems(step.for_each.items, set(parameters), names)]
        for job in step.for_each.body if step.for_each else (step,):
            problems += [f"step {job.name}: {p}" for p in expression_problems(
                job.arguments, set(parameters), names, current_item=job is not step)]
            problems += _output_reference_problems(job, steps)
            problems += _property_file_problems(job, steps)
    problems += [f"PipelineExperimentConfig: {p}" for p in
                 expression_problems(raw.get("PipelineExperimentConfig") or {}, set(parameters), set())]
    if not steps and not problems:
        problems.append("the definition has no steps")
    if problems:
        raise UnsupportedDefinition(problems)
    return Definition(parameters, steps, raw)


def _parameters(items: list, problems: list[str]) -> dict[str, Parameter]:
    params = {}
    for item in items:
        name, kind = item.get("Name"), item.get("Type")
        if kind not in PARAMETER_TYPES:
            problems.append(f"parameter {name}: type {kind!r} is not supported")
        params[name] = Parameter(name, kind, item.get("DefaultValue"))
    return params


def _steps(items: list, problems: list[str], body_of: str | None = None) -> dict[str, Step]:
    steps: dict[str, Step] = {}
    for item in items:
        name = item.get("Name", "?")
        where = f"step {name}"
        if item.get("Type") == FOR_EACH and body_of is None:
            steps[name] = _for_each(item, problems)
            continue
        if body_of is not None and item.get("DependsOn"):
            problems.append(f"{where}: DependsOn inside the body of ForEach step {body_of} is not supported locally")
        if item.get("Type") != "Processing":
            problems.append(f"{where}: type {item.get('Type')!r} cannot run locally "
                            "(only Processing steps)")
            continue
        problems += [f"{where}: key {k!r} is not supported" for k in sorted(set(item) - _STEP_KEYS)]
        args = item.get("Arguments") or {}
        problems += [f"{where}: {p}" for p in _argument_problems(args)]
        problems += [f"{where}: {p}" for p in _retry_problems(item.get("RetryPolicies") or [])]
        expire = (item.get("CacheConfig") or {}).get("ExpireAfter")
        if expire:
            try:
                parse_duration(expire)
            except ValueError as err:
                problems.append(f"{where}: CacheConfig: {err}")
        files = tuple(item.get("PropertyFiles") or ())
        for pf in files:
            if not {"PropertyFileName", "OutputName", "FilePath"} <= set(pf):
                problems.append(f"{where}: PropertyFiles entry {pf!r} needs PropertyFileName, OutputName, FilePath")
        steps[name] = Step(name, args, upstream(item), item.get("CacheConfig"),
                           tuple(item.get("RetryPolicies") or ()), files)
    return steps


def _for_each(item: dict, problems: list[str]) -> Step:
    name = item.get("Name", "?")
    where = f"step {name}"
    problems += [f"{where}: key {k!r} is not supported" for k in sorted(set(item) - _FOR_EACH_KEYS)]
    args = item.get("Arguments") or {}
    problems += [f"{where}: argument {k!r} is not supported locally" for k in sorted(set(args) - _FOR_EACH_ARGUMENTS)]
    concurrency = args.get("MaxConcurrency")
    if not isinstance(concurrency, int) or isinstance(concurrency, bool) or not 1 <= concurrency <= 50:
        problems.append(f"{where}: MaxConcurrency must be an integer from 1 to 50, got {concurrency!r}")
        concurrency = 1
    items = args.get("IterableItems")
    if items is None:
        problems.append(f"{where}: IterableItems is required")
    elif isinstance(items, list) and not 1 <= len(items) <= MAX_LITERAL_ITEMS:
        problems.append(f"{where}: IterableItems: a literal list holds 1 to {MAX_LITERAL_ITEMS} items, got {len(items)}")
    body = _steps(args.get("ForEachBody") or [], problems, body_of=name)
    if not body:
        problems.append(f"{where}: ForEachBody has no Processing step")
    return Step(name, args, upstream(item), for_each=ForEach(args.get("IterableItems"), concurrency, tuple(body.values())))


def _argument_problems(args: dict) -> list[str]:
    problems = [f"argument {k!r} is not supported" for k in sorted(set(args) - _ARGUMENT_KEYS)]
    app = args.get("AppSpecification") or {}
    if not app.get("ContainerEntrypoint"):
        problems.append("AppSpecification.ContainerEntrypoint is required locally "
                        "(the image's own entrypoint cannot run without Docker)")
    for item in args.get("ProcessingInputs") or []:
        label = f"input {item.get('InputName')!r}"
        s3 = item.get("S3Input")
        if not s3:
            problems.append(f"{label}: only S3Input is supported (not {sorted(item)})")
            continue
        if item.get("AppManaged"):
            problems.append(f"{label}: AppManaged inputs are not supported")
        for key, allowed in _INPUT_RULES.items():
            value = s3.get(key, allowed[0] if key == "S3CompressionType" else None)
            if value not in allowed:
                problems.append(f"{label}: {key} {value!r} is not supported (only {allowed})")
    for item in processing_outputs(args):
        label = f"output {item.get('OutputName')!r}"
        if not item.get("S3Output"):
            problems.append(f"{label}: only S3Output is supported (not {sorted(item)})")
        if item.get("AppManaged"):
            problems.append(f"{label}: AppManaged outputs are not supported")
    return problems


def _retry_problems(policies: list) -> list[str]:
    problems = []
    for policy in policies:
        for kind in policy.get("ExceptionType") or []:
            if not (kind.startswith("SageMaker.") or kind.startswith("Step.")):
                problems.append(f"retry exception type {kind!r} is not supported")
    return problems


def _property_file_problems(step: Step, steps: dict[str, Step]) -> list[str]:
    """`Std:JsonGet` must name a property file its step declares (caught before running)."""
    problems = []
    for path in walk_gets(step.arguments):
        match = PROPERTY_FILE.match(path) if isinstance(path, str) else None
        if match and match.group(1) in steps:
            declared = {f.get("PropertyFileName") for f in steps[match.group(1)].property_files}
            if match.group(2) not in declared:
                problems.append(f"step {step.name}: Std:JsonGet {path}: step {match.group(1)} declares "
                                f"no property file {match.group(2)!r} (it has {sorted(n for n in declared if n)})")
    return problems


def _output_reference_problems(step: Step, steps: dict[str, Step]) -> list[str]:
    """`Outputs['x']` of another step must name one of its outputs (caught before running)."""
    problems = []
    for path in walk_gets(step.arguments):
        if not isinstance(path, str) or not path.startswith("Steps."):
            continue
        _, source, prop = (path.split(".", 2) + ["", ""])[:3]
        try:
            parts = parse_property_path(prop)
        except ValueError:
            continue  # already reported by expression_problems
        if source in steps and parts[:2] == ["ProcessingOutputConfig", "Outputs"] and \
                len(parts) > 2 and isinstance(parts[2], str):
            names = {o.get("OutputName") for o in processing_outputs(steps[source].arguments)}
            if parts[2] not in names:
                problems.append(f"step {step.name}: Get {path}: step {source} has no output "
                                f"{parts[2]!r} (it has {sorted(n for n in names if n)})")
    return problems
