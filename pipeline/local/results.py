"""What a local run reports: one StepResult per step, gathered in a RunResult."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from pipeline.local.readiness import Outcome


class StepState(str, Enum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    CACHED = "Cached"  # a cache hit: an earlier execution's outputs are reused
    REUSED = "Reused"  # kept from the execution this run resumes, or a source for --only
    FAILED = "Failed"
    STOPPED = "Stopped"  # interrupted (Ctrl-C)
    SKIPPED = "Skipped"  # its run conditions were not met (e.g. an upstream step failed)
    NOT_SELECTED = "NotSelected"  # left out by `only`

    @property
    def outcome(self) -> Outcome | None:
        """The outcome run conditions (DependsOn triggers) see; None while not terminal."""
        return _OUTCOMES.get(self)


_OUTCOMES = {
    StepState.SUCCEEDED: Outcome.COMPLETED, StepState.CACHED: Outcome.COMPLETED,
    StepState.REUSED: Outcome.COMPLETED, StepState.FAILED: Outcome.FAILED,
    StepState.STOPPED: Outcome.STOPPED, StepState.SKIPPED: Outcome.SKIPPED,
    StepState.NOT_SELECTED: Outcome.SKIPPED,
}


def completed(recorded: str | None) -> bool:
    """Whether a state as an execution record spells it counts as Completed (its properties
    can stand in for a run: resuming, `only`)."""
    try:
        return StepState(recorded).outcome is Outcome.COMPLETED
    except ValueError:
        return False


@dataclass
class StepResult:
    name: str
    state: StepState = StepState.PENDING
    duration: float | None = None  # seconds, for the steps that ran here
    log: Path | None = None
    outputs: dict[str, str] = field(default_factory=dict)  # output name -> S3 URI
    locations: dict[str, str] = field(default_factory=dict)  # output name -> where to look
    reason: str | None = None  # why it failed, was skipped, or where it was reused from
    attempts: int = 0
    instances: int = 1


@dataclass
class RunResult:
    execution_id: str
    pipeline_name: str
    workdir: Path
    storage: str
    steps: dict[str, StepResult]
    duration: float = 0.0
    interrupted: bool = False
    resumed: bool = False  # True when this run continued a failed execution
    error: str | None = None  # one line: the OS error (disk full, permission denied...) that ended the run

    @property
    def ok(self) -> bool:
        bad = (StepState.FAILED, StepState.STOPPED, StepState.PENDING, StepState.RUNNING)
        return not self.interrupted and not self.error and all(s.state not in bad for s in self.steps.values())

    @property
    def exit_code(self) -> int:
        """0 when every step completed or was skipped by design, 130 on Ctrl-C, else 1."""
        return 0 if self.ok else 130 if self.interrupted else 1
