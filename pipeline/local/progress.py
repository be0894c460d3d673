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
from steps.contract import HOSTS_FOLDER, PROGRESS_FILE, REPORT_FILE, REPORT_RECORDS_FAILED, REPORT_RECORDS_TOTAL, \
    REPORT_TOP_ERROR


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


BAR_WIDTH = 24


def bar(done: int, total: int, width: int = BAR_WIDTH) -> str:
    filled = min(width, int(width * done / total)) if total else 0
    return "[" + "#" * filled + "." * (width - filled) + "]"


class Progress:
    """Live progress on `stream` (stderr by default); silent when `enabled` is False.

    On a terminal, one live line per running step (a bar, records done/total and an ETA where
    the step writes progress, its running time otherwise), redrawn below the event lines; when
    the stream is not a terminal (a file, CI), a plain line whenever the running set or their
    records change."""

    def __init__(self, enabled: bool = True, stream: TextIO | None = None,
                 progress_files: Callable[[str], list[Path]] = lambda name: [],
                 live: bool | None = None, workdir: Path | None = None) -> None:
        self.enabled = enabled
        self.workdir = workdir  # paths under it are shown relative to it
        self.stream = stream or sys.stderr
        self.progress_files = progress_files
        self.live = _isatty(self.stream) if live is None else live
        self.start = time.monotonic()
        self._lock = threading.Lock()
        self._last_status = ""
        self._drawn: list[str] = []  # the live lines on screen, below the events
        self._first: dict[str, tuple[float, int]] = {}  # step -> (when, records done) first seen
        self._began: dict[str, float] = {}

    def _say(self, text: str) -> None:
        if self.enabled:
            with self._lock:
                self._erase()
                text = shorten(text, self.workdir) if self.workdir else text
                print(f"[{elapsed(time.monotonic() - self.start):>7}] {text}", file=self.stream, flush=True)
                self._draw(self._drawn)

    def _erase(self) -> None:
        if self._drawn:
            self.stream.write(f"\x1b[{len(self._drawn)}F\x1b[J")  # up to the block's first line, clear below

    def _draw(self, lines: list[str]) -> None:
        self._drawn = lines
        if lines:
            self.stream.write("".join(line + "\n" for line in lines))
            self.stream.flush()

    def note(self, text: str) -> None:
        self._say(text)

    def step(self, result: StepResult) -> None:
        """A step changed state."""
        state = result.state
        text = f"{result.name}: {state.value}"
        if state is StepState.RUNNING:
            self._began.setdefault(result.name, time.monotonic())
        if state is StepState.RUNNING and result.log is not None:  # a ForEach has no log of its own
            workers = f" on {result.instances} instances" if result.instances > 1 else ""
            text += f"{workers} (log {result.log})"
        elif result.duration is not None and state is not StepState.CACHED:
            text += f" in {elapsed(result.duration)}"
        if result.reason and state is not StepState.RUNNING:
            text += f": {result.reason}"
        self._say(text)

    def eta(self, name: str, done: int, total: int, now: float) -> str:
        """Seconds left at the rate seen since the step's progress was first read."""
        first = self._first.setdefault(name, (now, done))
        rate = (done - first[1]) / (now - first[0]) if now > first[0] else 0.0
        if done >= total:
            return "finishing"
        return f"ETA {elapsed((total - done) / rate)}" if rate > 0 else "ETA -"

    def running_line(self, result: StepResult, now: float, live: bool) -> str:
        """`Featurize-shard-0001  [######......] 18/30 records  ETA 4.0s` (live), or without the
        bar (plain); a step that writes no progress shows how long it has run (live only)."""
        counts = read_progress(self.progress_files(result.name))
        if not counts:
            return f"{result.name}  running {elapsed(now - self._began.get(result.name, now))}" if live \
                else result.name
        done, total = counts
        records = f"{done}/{total} records, {self.eta(result.name, done, total, now)}"
        return f"{result.name}  {bar(done, total)} {records}" if live else f"{result.name} {records}"

    def status(self, results: dict[str, StepResult]) -> None:
        """The periodic update: each running step's line (live on a terminal) and the counts."""
        if not self.enabled:
            return
        now = time.monotonic()
        # A ForEach step (no log of its own) runs through its iterations, which have lines.
        running = [r for r in results.values() if r.state is StepState.RUNNING and r.log is not None]
        summary = f"{sum(1 for r in results.values() if r.state.outcome is not None)} of {len(results)} steps done"
        if self.live:
            with self._lock:
                self._erase()
                self._draw([f"  {self.running_line(r, now, True)}" for r in running] + [f"  {summary}"]
                           if running else [])
            return
        plain = "; ".join(self.running_line(r, now, False) for r in running)
        if plain and plain != self._last_status:
            self._last_status = plain
            self._say(f"running: {plain} ({summary})")

    def close(self) -> None:
        """Clear the live lines (before the final table)."""
        with self._lock:
            self._erase()
            self._drawn = []


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _tally(results) -> str:
    counts: dict[str, int] = {}
    for result in results:
        counts[result.state.value.lower()] = counts.get(result.state.value.lower(), 0) + 1
    return ", ".join(f"{n} {state}" for state, n in counts.items())


def shorten(text: str, workdir: Path) -> str:
    """Every path under `workdir` in `text` made relative to it (the table's header names it)."""
    return text.replace(f"{workdir}/", "")


def _reports(result: RunResult, step: StepResult) -> list[Path]:
    """The step's report files: in its outputs (local storage), else in its sandbox (a failed
    step's outputs are never uploaded, but its sandbox keeps them)."""
    found = [Path(where) / REPORT_FILE for where in step.locations.values() if not where.startswith("s3://")]
    jobs = result.workdir / "executions" / result.execution_id / "jobs" / step.name
    return [p for p in found if p.is_file()] or sorted(jobs.glob(f"algo-*/processing/output/*/{REPORT_FILE}"))


def record_errors(result: RunResult, step: StepResult) -> str | None:
    """`7/10 records failed; most common: read_error (6 records, e.g. ...)` from the reports of
    a step that featurizes records, when some failed."""
    failed = total = 0
    tops: dict[str, list] = {}
    for path in _reports(result, step):
        try:
            report = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(report, dict) or not report.get(REPORT_RECORDS_FAILED):
            continue
        failed += int(report[REPORT_RECORDS_FAILED])
        total += int(report.get(REPORT_RECORDS_TOTAL) or 0)
        top = report.get(REPORT_TOP_ERROR) or {}
        if top.get("kind"):
            tops.setdefault(top["kind"], [0, top.get("example", "")])[0] += int(top.get("records") or 0)
    if not failed:
        return None
    line = f"{failed}/{total} records failed"
    if tops:
        kind, (count, example) = max(sorted(tops.items()), key=lambda kv: kv[1][0])
        line += f"; most common: {kind} ({count} record{'s' if count != 1 else ''}, e.g. {example})"
    return line


def format_table(result: RunResult) -> str:
    """The final table: each step's state, duration, output locations and log (paths relative
    to the workdir), why a step failed, and the record errors of the steps that have any."""
    header = (f"execution {result.execution_id} of {result.pipeline_name} "
              f"({'resumed, ' if result.resumed else ''}storage {result.storage}): "
              f"{'succeeded' if result.ok else 'interrupted' if result.interrupted else 'FAILED'}"
              f" in {elapsed(result.duration)}; {_tally(result.steps.values())}")
    width = max([len("STEP")] + [len(n) for n in result.steps])
    lines = [header, f"(paths relative to the workdir {result.workdir})",
             f"{'STEP':<{width}}  {'STATE':<11}  {'TIME':>7}  OUTPUTS / LOG"]
    for step in result.steps.values():
        details = [f"{name}: {where}" for name, where in step.locations.items()]
        if step.log and step.state not in (StepState.CACHED, StepState.REUSED):
            details.append(f"log: {step.log}")
        if step.reason:
            details.append(f"why: {step.reason}")
        errors = record_errors(result, step) if step.state not in (StepState.SKIPPED, StepState.NOT_SELECTED) else None
        if errors:
            details.append(f"records: {errors}")
        first, *rest = [shorten(d, result.workdir) for d in details] or ["-"]
        lines.append(f"{step.name:<{width}}  {step.state.value:<11}  "
                     f"{elapsed(step.duration):>7}  {first}")
        pad = " " * (width + 2 + 11 + 2 + 7 + 2)
        lines += [pad + item for item in rest]
    return "\n".join(lines)


def print_table(result: RunResult, stream: TextIO | None = None) -> None:
    print(format_table(result), file=stream or sys.stdout, flush=True)
