"""The execution as it runs: each step's result, properties and cache key, and the record
`<workdir>/executions/<id>/execution.json`, rewritten after every change so that a crash or
Ctrl-C leaves what resuming needs."""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from pipeline.local.readiness import Outcome
from pipeline.local.job import JobOutcome, JobStatus
from pipeline.local.start import Start
from pipeline.local.progress import Progress
from pipeline.local.properties import output_uris
from pipeline.local.results import StepResult, StepState
from pipeline.local.state import ExecutionStatus, ExecutionStore

_JOB_STATES = {JobStatus.COMPLETED: StepState.SUCCEEDED, JobStatus.STOPPED: StepState.STOPPED,
               JobStatus.FAILED: StepState.FAILED}


class Execution:
    """Step states change here only; worker threads of several steps call in concurrently."""

    def __init__(self, start: Start, order: tuple[str, ...], fields: dict, store: ExecutionStore,
                 where: Callable[[str], str], progress: Progress) -> None:
        self.id = start.execution_id
        self.variables = start.variables
        self.results = {name: StepResult(name) for name in order}
        self.properties: dict[str, dict] = {}  # what `Get Steps.<step>...` reads
        self.keys: dict[str, str] = {}  # cache keys of the steps that were resolved
        self.settled: dict[str, str] = {}  # step -> when it last changed state
        self.folder: Path = store.folder(self.id)  # logs and sandboxes
        self._store, self._where, self._progress = store, where, progress
        self._lock = threading.Lock()
        self.save_error: OSError | None = None  # the first failure to write the record
        self._record = {"ExecutionId": self.id, **fields, "Execution": self.variables,
                        "Started": start.started, "Status": ExecutionStatus.EXECUTING.value,
                        "Steps": {}}
        for name, reuse in start.reused.items():
            self._keep(name, reuse.properties)
            self.results[name].state, self.results[name].reason = StepState.REUSED, reuse.reason
        for name in start.not_selected:
            self.results[name].state = StepState.NOT_SELECTED

    def outcomes(self) -> dict[str, Outcome]:
        """The terminal outcomes reached so far, as run conditions see them."""
        return {n: r.state.outcome for n, r in self.results.items() if r.state.outcome}

    def settle(self, name: str, state: StepState, reason: str | None) -> None:
        result = self.results[name]
        result.state, result.reason = state, reason
        self.settled[name] = datetime.now(timezone.utc).isoformat()  # the report's timeline
        self._progress.step(result)
        self.save()

    def cached(self, name: str, properties: dict, execution_id: str) -> None:
        """A cache hit: the step's properties (and outputs) are those of an earlier job."""
        self._keep(name, properties)
        self.settle(name, StepState.CACHED, f"outputs of execution {execution_id}")

    def expand(self, name: str, children: list[str]) -> None:
        """ForEach step `name` runs: its iterations are listed right after it, pending."""
        with self._lock:
            results = {}
            for key, result in self.results.items():
                results[key] = result
                if key == name:
                    results.update({child: StepResult(child) for child in children})
            self.results = results
        self.settle(name, StepState.RUNNING, None)  # the runner notes its item count

    def aggregate(self, name: str, state: StepState, reason: str | None, properties: dict,
                  duration: float) -> None:
        """ForEach step `name` ended with its iterations; `properties` are its aggregate ones."""
        self.properties[name] = properties
        self.results[name].duration = duration
        self.settle(name, state, reason)

    def running(self, name: str, log: Path, instances: int) -> None:
        result = self.results[name]
        result.log, result.instances = log, instances
        self.settle(name, StepState.RUNNING, None)

    def ran(self, name: str, outcome: JobOutcome, properties: dict, duration: float) -> None:
        """A job reached its terminal status; a failed job's outputs were never uploaded."""
        result = self.results[name]
        result.duration, result.attempts = duration, outcome.attempts
        self.properties[name] = properties
        if outcome.status is JobStatus.COMPLETED:
            self._keep(name, properties)
        self.settle(name, _JOB_STATES[outcome.status], outcome.failure_reason)

    def interrupted(self) -> None:
        """After Ctrl-C: running steps are stopped, the others that did not start still pend."""
        for result in self.results.values():
            if result.state in (StepState.PENDING, StepState.RUNNING):
                result.state = StepState.STOPPED if result.state is StepState.RUNNING \
                    else StepState.PENDING
                result.reason = result.reason or "interrupted"

    def save(self, status: ExecutionStatus | None = None) -> bool:
        """Write the record; False (and `save_error` set) when the OS refused."""
        # The snapshot is taken under the lock, so the last save always holds the newest states.
        with self._lock:
            if status is not None:
                self._record["Status"] = status.value
            self._record["Steps"] = {
                name: {"State": r.state.value, "Reason": r.reason, "Duration": r.duration,
                       "Log": str(r.log) if r.log else None, "Outputs": r.outputs,
                       "CacheKey": self.keys.get(name), "Properties": self.properties.get(name),
                       "SettledAt": self.settled.get(name)}
                for name, r in self.results.items()
            }
            try:
                self._store.save(self._record)
            except OSError as err:
                # Disk full or no permission: the runner ends the run (it cannot record it); a later
                # save may still get through, and the next run settles a record left Executing.
                self.save_error = self.save_error or err
                return False
        return True

    def _keep(self, name: str, properties: dict) -> None:
        """Properties of a step that completed (here or earlier), and where its outputs are."""
        self.properties[name] = properties
        result = self.results[name]
        result.outputs = output_uris(properties)
        result.locations = {n: self._where(u) for n, u in result.outputs.items()}
