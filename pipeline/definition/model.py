"""What a SageMaker pipeline definition is, defined once for `validate`, `graph` and the local
runner: the step-name rule, expressions and the dependencies they imply, the step graph, the
canonical JSON text, the processing root and ISO 8601 durations.

Plain Python over the definition's JSON (SDK 3.27 `Pipeline.definition()`): no `sagemaker`,
nothing from `pipeline.local`, so the builder's checks and the runner cannot drift apart.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from graphlib import CycleError, TopologicalSorter
from typing import Any, Iterator, Mapping

# Where a processing container sees its inputs and outputs (every LocalPath is under it).
from steps.contract import PROCESSING_ROOT

# CreatePipeline rejects any other step name; names are also cache and UI identities.
STEP_NAME = re.compile(r"^[A-Za-z0-9\-_]{1,64}$")
# DependsOn run conditions (SDK 3.27 `StepDependency`, `TriggerCondition`); a bare step name
# in DependsOn, or a data dependency, waits for Completed.
COMPLETED, ANY = "Completed", "Any"
TRIGGERS = (COMPLETED, "Failed", "Stopped", ANY)
# A ForEach step (SDK 3.27) runs its `ForEachBody` once per item of `IterableItems`; the
# iterations of body step B are `B-0`, `B-1`, ... and read their item as `ForEach.CurrentItem`.
FOR_EACH = "ForEach"
CURRENT_ITEM = "ForEach.CurrentItem"


# --- expressions ------------------------------------------------------------------------


def is_expression(value: Any) -> bool:
    """A dict of one key that is `Get` or a `Std:` function (every other dict is data)."""
    if not isinstance(value, dict) or len(value) != 1:
        return False
    (key,) = value
    return key == "Get" or key.startswith("Std:")


def walk_expressions(value: Any) -> Iterator[dict]:
    """Every outermost expression inside `value`, depth first."""
    if is_expression(value):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from walk_expressions(item)
    elif isinstance(value, list):
        for item in value:
            yield from walk_expressions(item)


def walk_gets(value: Any) -> Iterator[str]:
    """Every `Get` path inside an expression or a JSON value (through `Std:Join` values and
    `Std:JsonGet` property files)."""
    for outer in walk_expressions(value):
        (key,) = outer
        if key == "Get":
            yield outer["Get"]
        elif key == "Std:Join" and isinstance(outer[key], dict):
            yield from walk_gets(outer[key].get("Values", []))
        elif key == "Std:JsonGet" and isinstance(outer[key], dict):
            yield from walk_gets(outer[key].get("PropertyFile"))


def step_of(get_path: str) -> str | None:
    """`Steps.A.ProcessingJobName` -> `A`; other paths -> None."""
    if not get_path.startswith("Steps."):
        return None
    return get_path.split(".", 2)[1]


def referenced_steps(value: Any) -> set[str]:
    """Names of the steps whose properties `value` reads: its data dependencies."""
    return {name for path in walk_gets(value) if isinstance(path, str) and (name := step_of(path))}


def processing_outputs(arguments: dict) -> list[dict]:
    """`ProcessingOutputConfig.Outputs` of a request or of a step's properties (often absent)."""
    return (arguments.get("ProcessingOutputConfig") or {}).get("Outputs") or []


def body_steps(step: dict) -> list[dict]:
    """The body of a ForEach step (empty for any other step)."""
    if step.get("Type") != FOR_EACH:
        return []
    return list((step.get("Arguments") or {}).get("ForEachBody") or [])


def job_steps(steps: list[dict]) -> list[dict]:
    """Every step that describes a job: the top-level ones and the ForEach bodies' (not the
    ForEach steps themselves), in definition order."""
    out = []
    for step in steps:
        body = body_steps(step)
        out += body if body else [step] if step.get("Type") != FOR_EACH else []
    return out


def iteration_name(body: str, index: int) -> str:
    """The name SageMaker gives iteration `index` (0-based) of body step `body`."""
    return f"{body}-{index}"


# --- dependencies and the graph ---------------------------------------------------------


def depends_on(step: dict) -> dict[str, str]:
    """A step's `DependsOn` as {upstream step: trigger}."""
    found: dict[str, str] = {}
    for entry in step.get("DependsOn") or []:
        if isinstance(entry, str):
            found[entry] = COMPLETED
        elif isinstance(entry, dict):
            found[entry.get("Step")] = entry.get("Trigger", COMPLETED)
    return found


def upstream(step: dict) -> dict[str, str]:
    """Every step this one waits for, with its trigger: the data dependencies (property
    references) wait for Completed; an explicit `DependsOn` run condition wins over that."""
    edges = {ref: COMPLETED for ref in sorted(referenced_steps(step.get("Arguments", {})))}
    edges.update(depends_on(step))
    return edges


def step_dependencies(step: dict) -> set[str]:
    """The names of the steps `step` depends on, by `DependsOn` or by data."""
    return set(upstream(step))


class Cycle(ValueError):
    """The steps depend on each other in a circle; `steps` names it (first = last)."""

    def __init__(self, steps: list[str]) -> None:
        self.steps = steps
        super().__init__("the steps form a cycle: " + " -> ".join(steps))


def topological_order(graph: Mapping[str, Mapping[str, str]]) -> tuple[str, ...]:
    """The steps of `graph` (step -> its upstream steps), each after everything it depends
    on: by depth, then in `graph`'s own order, so the order is stable for a definition.
    Upstream names that are not steps of `graph` are ignored; raises Cycle."""
    known = {name: [up for up in ups if up in graph] for name, ups in graph.items()}
    try:
        tuple(TopologicalSorter(known).static_order())
    except CycleError as err:
        raise Cycle(list(err.args[1])) from None
    depth: dict[str, int] = {}

    def depth_of(name: str) -> int:
        if name not in depth:
            depth[name] = 1 + max((depth_of(up) for up in known[name]), default=-1)
        return depth[name]

    position = {name: i for i, name in enumerate(known)}
    return tuple(sorted(known, key=lambda name: (depth_of(name), position[name])))


def step_order(definition: dict, names: list[str]) -> list[str]:
    """`names` (an execution's steps, ForEach iterations among them) in the pipeline's order:
    the definition's steps each after what it depends on, a ForEach's iterations right after
    it (body by body, item by item), names the definition does not know last, as given."""
    steps = definition.get("Steps") or []
    order = topological_order({step["Name"]: upstream(step) for step in steps})
    place = {name: (i, -1, -1) for i, name in enumerate(order)}
    for step in steps:
        for j, body in enumerate(body_steps(step)):
            place[body["Name"]] = (place[step["Name"]][0], j, -1)

    def key(item: tuple[int, str]) -> tuple:
        index, name = item
        body, _, number = name.rpartition("-")
        if name not in place and number.isdigit() and body in place:
            return (*place[body][:2], int(number))
        return place.get(name, (len(order), 0, index))

    return [name for _, name in sorted(enumerate(names), key=key)]


def graph_problems(steps: list[dict]) -> list[str]:
    """What makes a definition's steps no graph SageMaker accepts: names, unknown
    dependencies, malformed run conditions, cycles. Empty when fine."""
    names = [s.get("Name", "") for s in steps]
    bodies = [b.get("Name", "") for s in steps for b in body_steps(s)]
    problems = [f"step {name!r}: name does not match {STEP_NAME.pattern}"
                for name in names + bodies if not STEP_NAME.match(str(name))]
    everything = names + bodies
    problems += [f"step {dup!r}: name used more than once"
                 for dup in sorted({n for n in everything if everything.count(n) > 1}, key=str)]
    # The service rejects a top-level name that an iteration could take (`<body>-<digits>`).
    problems += [f"step {name!r}: looks like an iteration of ForEach body step {body!r}"
                 for name in names for body in bodies if re.fullmatch(re.escape(str(body)) + r"-\d+", str(name))]
    for step in steps:
        if step.get("Type") == FOR_EACH and not body_steps(step):
            problems.append(f"step {step.get('Name', '')!r}: a ForEach step needs a non-empty ForEachBody")
    for step in steps:
        name = step.get("Name", "")
        for entry in step.get("DependsOn") or []:
            if not (isinstance(entry, str) or isinstance(entry, dict) and isinstance(entry.get("Step"), str)
                    and entry.get("Trigger", COMPLETED) in TRIGGERS):
                problems.append(f"step {name!r}: DependsOn entry {entry!r} is neither a step name nor "
                                f"{{'Step': <name>, 'Trigger': one of {list(TRIGGERS)}}}")
        for dep in sorted({d for d in step_dependencies(step) if isinstance(d, str)} - set(names)):
            problems.append(f"step {name!r}: depends on unknown step {dep!r}")
    try:
        topological_order({s.get("Name", ""): upstream(s) for s in steps})
    except Cycle as err:
        problems.append(f"graph: cycle through steps {err.steps}")
    return problems


# --- canonical JSON ---------------------------------------------------------------------


def canonical_json(value: Any) -> str:
    """Sorted keys and no whitespace: the same text for the same JSON value, every time."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def canonical(definition: str) -> str:
    """A definition's JSON text in canonical form: byte-identical for the same pipeline, and
    44 % smaller than the SDK's output, which matters against the API's 1 MiB definition
    limit at 300 shards."""
    return canonical_json(json.loads(definition))


def compact(definition: str | dict) -> str:
    """The definition as `upsert` sends it: no whitespace, sorted keys (what the 1 MiB limit counts)."""
    value = json.loads(definition) if isinstance(definition, str) else definition
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def pretty(definition: str) -> str:
    """A definition's JSON text indented for reading (keys sorted, as in `canonical`)."""
    return json.dumps(json.loads(definition), indent=2, sort_keys=True) + "\n"


# --- durations --------------------------------------------------------------------------

_DURATION = re.compile(
    r"^P(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)


def parse_duration(text: str) -> timedelta:
    """An ISO 8601 duration (`CacheConfig.ExpireAfter`): `P30D`, `PT12H`, `P1W`, `P1Y2M` ...
    -> timedelta; a year counts 365 days, a month 30. Raises ValueError naming the text."""
    match = _DURATION.match(text or "")
    if not match or text in ("P", "PT") or text.endswith("T"):
        raise ValueError(f"ExpireAfter {text!r} is not an ISO 8601 duration such as P30D or PT1H")
    parts = {k: float(v) for k, v in match.groupdict().items() if v}
    days = parts.pop("years", 0) * 365 + parts.pop("months", 0) * 30 + parts.pop("days", 0)
    return timedelta(days=days, **parts)
