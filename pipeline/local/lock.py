"""One local run per workdir at a time: `<workdir>/run.lock`.

Everything a run keeps lives under its workdir (executions and their sandboxes and logs, the
step cache, local storage), whatever storage it reads and writes, S3 included: so the lock is a
local file there, and it covers every pipeline run from that workdir. It is an `flock`, which the
kernel releases when the process holding it ends, however it ends (kill -9 included): a lock left
by a dead run is simply taken by the next one, never "stale". The file also says who holds it
(pid, start time, execution id), for the one line a second run prints before it exits.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

LOCK_FILE = "run.lock"

# (lock path, thread) -> depth: `deploy.py local` takes the lock before it writes sample data and
# run_pipeline takes it again; within one thread the second take is the first one's.
_held: dict[tuple[Path, int], "WorkdirLock"] = {}


class WorkdirBusy(ValueError):
    """Another run holds the workdir."""


class WorkdirLock:
    def __init__(self, path: Path, fd: int) -> None:
        self.path, self.fd, self.depth = path, fd, 1
        self.holder = {"pid": os.getpid(), "started": datetime.now(timezone.utc).isoformat(timespec="seconds")}

    def record(self, **fields: str) -> None:
        """Say more about the holder (the execution id, once there is one)."""
        self.holder.update(fields)
        data = json.dumps(self.holder).encode()
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, data, 0)


def describe(path: Path) -> str:
    """Who holds the lock at `path`, as its file says ("another run" when it does not say yet)."""
    try:
        holder = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        holder = {}
    what = f"execution {holder['execution']}" if holder.get("execution") else "another run"
    if holder.get("pipeline"):
        what += f" of {holder['pipeline']}"
    return f"{what} (pid {holder.get('pid', '?')}, started {holder.get('started', '?')})"


@contextmanager
def workdir_lock(workdir: Path) -> Iterator[WorkdirLock]:
    """Hold `<workdir>/run.lock` for the block; WorkdirBusy (one line naming the holder) when
    another process, or another thread of this one, holds it."""
    workdir.mkdir(parents=True, exist_ok=True)
    path = (workdir / LOCK_FILE).resolve()
    key = (path, threading.get_ident())
    if key in _held:
        lock = _held[key]
        lock.depth += 1
        try:
            yield lock
        finally:
            lock.depth -= 1
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by the steps' processes
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise WorkdirBusy(f"workdir {workdir} is in use by {describe(path)}: wait for it to end, "
                          "or give this run another --workdir") from None
    lock = _held[key] = WorkdirLock(path, fd)
    try:
        lock.record()
        yield lock
    finally:
        del _held[key]
        os.close(fd)  # releases the lock; the file stays (removing it would let two runs lock two files)
