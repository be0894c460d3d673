"""ForEach steps, run here as SageMaker runs them (SDK 3.27 `ForEachStep`).

When a ForEach step may run, its `IterableItems` is resolved to a list: a JSON list string
(what a `JsonGet` of a report gives) or a literal list. Each item becomes one iteration of
every body step, named `<body>-<index>` (0-based) and reading the item as
`ForEach.CurrentItem`. At most `MaxConcurrency` iterations run at once. An iteration is a
step of its own: resolved, looked up in the step cache by its name and resolved arguments,
run, recorded. The ForEach step ends when every iteration has: Succeeded when all completed
(cache hits count), Failed otherwise, and its properties are the service's aggregate ones
(`Status`, `InputItemCount`, `TotalStepCount`, `SucceededStepCount`, ...).

Not verified against the service, and chosen to be safe: an empty list fails the step (a
Featurize over nothing is no result to serve); an iteration's cache entry is keyed by its
name, so items that change position run again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pipeline.definition.model import iteration_name
from pipeline.local.supported import Step
from pipeline.local.expressions import ExpressionError, Scope, evaluate
from pipeline.local.readiness import Outcome
from pipeline.local.results import StepResult, StepState



@dataclass(frozen=True)
class Iteration:
    """One body step of one item."""

    parent: str  # the ForEach step
    index: int
    item: Any
    body: Step

    @property
    def name(self) -> str:
        return iteration_name(self.body.name, self.index)


@dataclass
class FanOut:
    """A ForEach step while its iterations run."""

    children: list[str]  # its iterations' names, item by item
    items: int
    began: float  # time.monotonic() when it expanded
    active: set[str] = field(default_factory=set)  # handed out to run and not ended yet


def resolve_items(step: Step, scope: Scope) -> list:
    """The items of ForEach `step`; ExpressionError naming the step when they are no list."""
    items = step.for_each.items
    if isinstance(items, list):  # 1 to MAX_LITERAL_ITEMS: checked when the definition was loaded
        return [evaluate(item, scope) for item in items]
    value = evaluate(items, scope)
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ExpressionError(f"IterableItems resolved to {value[:200]!r}, which is no JSON list") from None
    if not isinstance(value, list):
        raise ExpressionError(f"IterableItems resolved to a {type(value).__name__}, not a JSON list")
    if not value:
        raise ExpressionError("IterableItems resolved to an empty list: nothing to iterate")
    return value


def iterations(step: Step, items: list) -> list[Iteration]:
    """Every body step of every item, item by item."""
    return [Iteration(step.name, index, item, body)
            for index, item in enumerate(items) for body in step.for_each.body]


def aggregate(children: list[StepResult], items: int) -> tuple[StepState, str | None, dict]:
    """The ForEach step's final state, reason and properties from its iterations' results."""
    succeeded = [c for c in children if c.state.outcome is Outcome.COMPLETED]
    failed = [c for c in children if c.state in (StepState.FAILED, StepState.SKIPPED)]
    stopped = [c for c in children if c.state is StepState.STOPPED]
    if failed:
        state, reason = StepState.FAILED, f"{len(failed)} of {len(children)} iterations failed: " + \
            ", ".join(c.name for c in failed[:10]) + (" ..." if len(failed) > 10 else "")
    elif stopped:
        state, reason = StepState.STOPPED, f"{len(stopped)} of {len(children)} iterations stopped"
    else:
        state, reason = StepState.SUCCEEDED, None
    # state.value is Succeeded, Failed or Stopped: the service's ForEachStatus values.
    properties = {"Status": state.value, "InputItemCount": items, "TotalStepCount": len(children),
                  "SucceededStepCount": len(succeeded), "FailedStepCount": len(failed),
                  "StoppedStepCount": len(stopped)}
    return state, reason, properties
