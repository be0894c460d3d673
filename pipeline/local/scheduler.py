"""Running ready steps concurrently within the steps and cores the machine allows.

Each step is asked, in graph order, whether it is ready; a ready step either settles at once
(skipped, cached, refused at resolution) or asks for workers (its instance count). A step
gets at least its workers and, when few steps are ready, a fair share of the free cores, so a
lone step uses the whole machine and a fan-out of shards shares it.
"""

from __future__ import annotations

import os
import queue
import threading
from dataclasses import dataclass
from enum import Enum
from typing import Callable, Union


@dataclass(frozen=True)
class Work:
    name: str
    workers: int  # processes the step starts (its instance count)
    run: Callable[[int], None]  # called in a worker thread with the cores granted; never raises


@dataclass(frozen=True)
class Expand:
    """A ForEach step that became ready: its iterations join the steps to drive, before it
    (it waits for them, and is asked again once they have settled)."""

    names: list[str]


class Answer(Enum):
    """What a polled step says when it has no Work to run."""

    WAIT = "wait"  # not ready: ask again after something finishes
    SETTLED = "settled"  # reached its final state without running (skipped, cached, ...)


Poll = Callable[[str], Union[Work, Answer, Expand]]


def machine_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def run_concurrently(order: list[str], poll: Poll, *, max_parallel: int | None, cores: int,
                     tick: Callable[[], None], threads: list[threading.Thread],
                     tick_seconds: float = 2.0) -> None:
    """Drive every step in `order` to a terminal state; every worker thread started is
    appended to `threads`. KeyboardInterrupt propagates with nothing new started: the caller
    stops the children and joins `threads`."""
    pending = list(order)
    ready: dict[str, Work] = {}
    running: dict[str, tuple[threading.Thread, int]] = {}
    finished: queue.Queue[str] = queue.Queue()
    limit = max_parallel or 1 << 30  # without one, the cores bound what runs at once
    while pending or ready or running:
        _poll_pending(pending, ready, poll)
        threads += _start(ready, running, finished, cores, limit)
        if not running:
            if ready or pending:
                # Nothing runs yet something waits: only a graph bug can cause this.
                raise RuntimeError(f"scheduler stalled with {sorted(ready) + pending} waiting")
            break
        try:
            name = finished.get(timeout=tick_seconds)
        except queue.Empty:
            tick()
            continue
        running.pop(name)[0].join()
        tick()


def _poll_pending(pending: list[str], ready: dict[str, Work], poll: Poll) -> None:
    """Ask every pending step, again after an expansion (its iterations may be ready now)."""
    expanded = True
    while expanded:
        expanded = False
        for name in list(pending):
            answer = poll(name)
            if answer is Answer.WAIT:
                continue
            if isinstance(answer, Expand):
                at = pending.index(name)
                pending[at:at] = answer.names
                expanded = True
                continue
            pending.remove(name)
            if isinstance(answer, Work):
                ready[name] = answer


def _start(ready: dict[str, Work], running: dict, finished: queue.Queue, cores: int,
           limit: int) -> list[threading.Thread]:
    started: list[threading.Thread] = []
    free = cores - sum(cpus for _, cpus in running.values())
    for name, work in list(ready.items()):
        if len(running) >= limit:
            break
        need = min(max(1, work.workers), cores)
        if need > free and running:
            break  # wait for cores, in graph order, so a wide step is not starved
        cpus = max(need, min(free, free // max(1, len(ready))))
        thread = threading.Thread(target=_call, args=(work, cpus, finished), daemon=True,
                                  name=f"step-{name}")
        running[name] = (thread, cpus)
        del ready[name]
        free -= cpus
        thread.start()
        started.append(thread)
    return started


def _call(work: Work, cpus: int, finished: queue.Queue) -> None:
    try:
        work.run(cpus)
    finally:
        finished.put(work.name)
