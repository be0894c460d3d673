"""What the user sees: a line per step event, a periodic status line, the final table.

A step that writes `progress.json` (`{"records_done": n, "records_total": m}`) in one of its
output folders, as the featurize stage does, shows `n/m records` while it runs.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import Callable, TextIO

from pipeline.definition.model import PROCESSING_ROOT
from pipeline.local.results import RunResult, StepResult, StepState
from pipeline.local.sandbox import local_dir
from steps.contract import HOSTS_FOLDER, PROGRESS_FILE


def elapsed(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{seconds:.1f}s"


def read_progress(paths: list[Path]) -> tuple[int, int] | None:
    """Summed (records_done, records_total) over the progress files that exist."""
    done = total = 0
    found = False
    for path in paths:
        try:
            data = json.loads(path.read_text())
            done += int(data["records_done"])
            total += int(data["records_total"])
            found = True
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not written yet, or caught mid-write
    return (done, total) if found else None


def progress_files(outputs: list[dict], jobs: Path) -> list[Path]:
    """Where a step's instances (`<jobs>/algo-<n>/processing`) may write their progress file:
    one in each output folder."""
    files = []
    for root in sorted(jobs.glob("algo-*/processing")):
        for output in outputs:
            local = output["S3Output"].get("LocalPath")
            if isinstance(local, str) and local.startswith(PROCESSING_ROOT):
                files.append(local_dir(local, root) / PROGRESS_FILE)
                # On several instances each writes its share's under hosts/<its host>/ (stream).
                files.append(local_dir(local, root) / HOSTS_FOLDER / root.parent.name / PROGRESS_FILE)
    return files


class Progress:
    """Live progress on `stream` (stderr by default); silent when `enabled` is False."""

    def __init__(self, enabled: bool = True, stream: TextIO | None = None,
                 progress_files: Callable[[str], list[Path]] = lambda name: []) -> None:
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.progress_files = progress_files
        self.start = time.monotonic()
        self._lock = threading.Lock()
        self._last_status = ""

    def _say(self, text: str) -> None:
        if self.enabled:
            with self._lock:
                print(f"[{elapsed(time.monotonic() - self.start):>7}] {text}",
                      file=self.stream, flush=True)

    def note(self, text: str) -> None:
        self._say(text)

    def step(self, result: StepResult) -> None:
        """A step changed state."""
        state = result.state
        text = f"{result.name}: {state.value}"
        if state is StepState.RUNNING and result.log is not None:  # a ForEach has no log of its own
            workers = f" on {result.instances} instances" if result.instances > 1 else ""
            text += f"{workers} (log {result.log})"
        elif result.duration is not None and state is not StepState.CACHED:
            text += f" in {elapsed(result.duration)}"
        if result.reason and state is not StepState.RUNNING:
            text += f": {result.reason}"
        self._say(text)

    def status(self, results: dict[str, StepResult]) -> None:
        """The periodic line: what runs (with records done where known) and the counts."""
        running = []
        for result in results.values():
            if result.state is StepState.RUNNING:
                counts = read_progress(self.progress_files(result.name))
                running.append(f"{result.name} ({counts[0]}/{counts[1]} records)"
                               if counts else result.name)
        tally = _tally(results.values())
        line = f"running: {', '.join(running) or '-'} | {tally}"
        if line != self._last_status:
            self._last_status = line
            self._say(line)


def _tally(results) -> str:
    counts: dict[str, int] = {}
    for result in results:
        counts[result.state.value.lower()] = counts.get(result.state.value.lower(), 0) + 1
    return ", ".join(f"{n} {state}" for state, n in counts.items())


def format_table(result: RunResult) -> str:
    """The final table: each step's state, duration, output locations and log."""
    header = (f"execution {result.execution_id} of {result.pipeline_name} "
              f"({'resumed, ' if result.resumed else ''}storage {result.storage}): "
              f"{'succeeded' if result.ok else 'interrupted' if result.interrupted else 'FAILED'}"
              f" in {elapsed(result.duration)}; {_tally(result.steps.values())}")
    width = max([len("STEP")] + [len(n) for n in result.steps])
    lines = [header, f"{'STEP':<{width}}  {'STATE':<11}  {'TIME':>7}  OUTPUTS / LOG"]
    for step in result.steps.values():
        details = [f"{name}: {where}" for name, where in step.locations.items()]
        if step.log and step.state not in (StepState.CACHED, StepState.REUSED):
            details.append(f"log: {step.log}")
        if step.reason:
            details.append(f"why: {step.reason}")
        first, *rest = details or ["-"]
        lines.append(f"{step.name:<{width}}  {step.state.value:<11}  "
                     f"{elapsed(step.duration):>7}  {first}")
        pad = " " * (width + 2 + 11 + 2 + 7 + 2)
        lines += [pad + item for item in rest]
    return "\n".join(lines)


def print_table(result: RunResult, stream: TextIO | None = None) -> None:
    print(format_table(result), file=stream or sys.stdout, flush=True)
