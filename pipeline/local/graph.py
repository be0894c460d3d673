"""The step graph: edges from `DependsOn` and from property references, and run conditions.

A property reference (`Get Steps.A...`) is a data dependency: the step needs A to have
completed. An explicit `DependsOn` entry with a run condition (`{"Step": "A", "Trigger":
"Any"}`, SDK 3.27 `StepDependency`) sets when the step may run instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.definition import topological_order
from pipeline.local.definition import Definition

# Terminal outcomes of a step, as the run conditions see them. Cached and reused steps
# count as Completed, exactly as a cache hit does in SageMaker.
COMPLETED, FAILED, STOPPED, SKIPPED = "Completed", "Failed", "Stopped", "Skipped"


@dataclass(frozen=True)
class Graph:
    upstream: dict[str, dict[str, str]]  # step -> {upstream step: trigger}
    order: tuple[str, ...]  # a topological order, stable with the definition's step order

    def downstream(self, name: str) -> set[str]:
        return {step for step, ups in self.upstream.items() if name in ups}

    def ancestors(self, names: set[str]) -> set[str]:
        seen: set[str] = set()
        todo = list(names)
        while todo:
            for up in self.upstream[todo.pop()]:
                if up not in seen:
                    seen.add(up)
                    todo.append(up)
        return seen


def build_graph(definition: Definition) -> Graph:
    """The dependency graph (load_definition has already refused cycles)."""
    upstream = {name: dict(step.upstream) for name, step in definition.steps.items()}
    return Graph(upstream, topological_order(upstream))


def decide(conditions: dict[str, str], outcomes: dict[str, str]) -> str | None:
    """`run`, `skip`, or None (wait) for a step whose upstream run conditions are `conditions`,
    given the terminal outcomes reached so far."""
    if any(up not in outcomes for up in conditions):
        return None
    for up, trigger in conditions.items():
        if trigger != "Any" and outcomes[up] != trigger:
            return "skip"
    return "run"
