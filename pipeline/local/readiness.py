"""The step graph of a loaded definition, and when a step may run.

A property reference (`Get Steps.A...`) is a data dependency: the step needs A to have
completed. An explicit `DependsOn` entry with a run condition (`{"Step": "A", "Trigger":
"Any"}`, SDK 3.27 `StepDependency`) sets when the step may run instead. Both come from
pipeline/definition/model.py, which `validate` uses too.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from pipeline.definition.model import ANY, topological_order
from pipeline.local.supported import Definition


class Outcome(str, Enum):
    """Terminal outcomes of a step, as the run conditions (DependsOn triggers) see them.
    Cached and reused steps count as Completed, exactly as a cache hit does in SageMaker."""

    COMPLETED = "Completed"
    FAILED = "Failed"
    STOPPED = "Stopped"
    SKIPPED = "Skipped"


class Decision(Enum):
    WAIT = "wait"  # an upstream step has not reached a terminal outcome yet
    RUN = "run"
    SKIP = "skip"  # a run condition can no longer be met


@dataclass(frozen=True)
class Graph:
    upstream: dict[str, dict[str, str]]  # step -> {upstream step: trigger}
    order: tuple[str, ...]  # a topological order, stable with the definition's step order


def build_graph(definition: Definition) -> Graph:
    """The dependency graph (load_definition has already refused cycles)."""
    upstream = {name: dict(step.upstream) for name, step in definition.steps.items()}
    return Graph(upstream, topological_order(upstream))


def unmet(conditions: dict[str, str], outcomes: dict[str, Outcome]) -> list[str]:
    """The upstream steps whose outcome fails their run condition (all have an outcome)."""
    return [up for up, trigger in conditions.items() if trigger != ANY and outcomes[up].value != trigger]


def decide(conditions: dict[str, str], outcomes: dict[str, Outcome]) -> Decision:
    """Whether a step whose upstream run conditions are `conditions` runs, is skipped or
    waits, given the terminal outcomes reached so far."""
    if any(up not in outcomes for up in conditions):
        return Decision.WAIT
    return Decision.SKIP if unmet(conditions, outcomes) else Decision.RUN
