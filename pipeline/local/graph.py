"""The step graph: edges from `DependsOn` and from property references, and run conditions.

A property reference (`Get Steps.A...`) is a data dependency: the step needs A to have
completed. An explicit `DependsOn` entry with a run condition (`{"Step": "A", "Trigger":
"Any"}`, SDK 3.27 `StepDependency`) sets when the step may run instead.
"""

from __future__ import annotations

import graphlib
from dataclasses import dataclass

from pipeline.local.definition import Definition, UnsupportedDefinition
from pipeline.local.expressions import referenced_steps

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
    """The dependency graph; raises UnsupportedDefinition naming a cycle."""
    upstream: dict[str, dict[str, str]] = {}
    for name, step in definition.steps.items():
        edges = {ref: COMPLETED for ref in referenced_steps(step.arguments)}
        edges.update(step.depends_on)  # an explicit run condition wins over the implied one
        upstream[name] = edges
    sorter = graphlib.TopologicalSorter({name: list(edges) for name, edges in upstream.items()})
    try:
        order = tuple(sorter.static_order())
    except graphlib.CycleError as err:
        cycle = " -> ".join(err.args[1])
        raise UnsupportedDefinition([f"the steps form a cycle: {cycle}"]) from None
    position = {name: i for i, name in enumerate(definition.steps)}
    order = tuple(sorted(order, key=lambda n: (_depth(n, upstream), position[n])))
    return Graph(upstream, order)


def _depth(name: str, upstream: dict[str, dict[str, str]], memo: dict | None = None) -> int:
    memo = {} if memo is None else memo
    if name not in memo:
        memo[name] = 1 + max((_depth(u, upstream, memo) for u in upstream[name]), default=-1)
    return memo[name]


def decide(conditions: dict[str, str], outcomes: dict[str, str]) -> str | None:
    """`run`, `skip`, or None (wait) for a step whose upstream run conditions are `conditions`,
    given the terminal outcomes reached so far."""
    if any(up not in outcomes for up in conditions):
        return None
    for up, trigger in conditions.items():
        if trigger != "Any" and outcomes[up] != trigger:
            return "skip"
    return "run"
