"""Server-side copies into the experiment folder, in a thread pool, skipping what is already
there and identical; then the optional per-artifact `process_func`."""

from __future__ import annotations

import logging
import os
import stat
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from steps.io import storage as st
from steps.resolve import load_function
from steps.reconcile.production import Artifact, SourceFile

log = logging.getLogger("steps.reconcile")

# Where a copy records the ETag of its source. ETags of copies differ from their source's under
# SSE-KMS and multipart copies; the recorded one still proves the bytes are the same.
SOURCE_ETAG_META = "wavepipe-source-etag"

ProcessFunc = Callable[[dict, list, str, bool], object]

# A temporary file untouched this long has no writer: a live copy rewrites its file's mtime
# with every block it writes (seconds apart at worst), a killed one never again.
TEMP_GRACE_SECONDS = 600.0


def load_process_func(ref: str) -> ProcessFunc:
    return load_function(ref, "process_func")


def is_identical(src: SourceFile, dst: st.ObjectInfo | None, dst_uri: str, storage: st.Storage) -> bool:
    """Same size and ETag from the listings (no request); when only the ETag differs, the
    source ETag recorded on the copy decides (one HEAD)."""
    if dst is None or dst.size != src.size:
        return False
    if dst.etag == src.etag:
        return True
    meta = storage.head_metadata(dst_uri)
    return bool(meta) and meta.get(SOURCE_ETAG_META) == src.etag


@dataclass
class Outcome:
    artifact_id: str
    copied: list[str] = field(default_factory=list)
    skipped: int = 0
    bytes_copied: int = 0
    copy_errors: dict[str, str] = field(default_factory=dict)
    processed: bool = False
    process_error: str | None = None


@dataclass
class CopyJob:
    """Everything the per-artifact worker needs; one instance shared by the threads."""

    storage: st.Storage
    source_uri: str
    artifacts_uri: str  # <experiment>/data/reconciled_artifacts
    experiment_uri: str
    existing: dict[str, dict[str, st.ObjectInfo]]  # artifact id -> file -> object in the experiment
    rows: dict[str, dict]
    reload: bool
    copy_files: bool  # False when featurize reads production: nothing is copied
    process: ProcessFunc | None = None

    def src_uri(self, f: SourceFile) -> str:
        return st.join_uri(self.source_uri, f.key)

    def dst_uri(self, aid: str, name: str) -> str:
        return st.join_uri(self.artifacts_uri, aid, name)

    def file_uris(self, art: Artifact) -> list[str]:
        if self.copy_files:
            return [self.dst_uri(art.artifact_id, n) for n in sorted(art.files)]
        return [self.src_uri(art.files[n]) for n in sorted(art.files)]

    def copy_file(self, art: Artifact, f: SourceFile, out: Outcome, force: bool) -> None:
        dst_uri = self.dst_uri(art.artifact_id, f.file)
        dst = self.existing.get(art.artifact_id, {}).get(f.file)
        try:
            if not force and is_identical(f, dst, dst_uri, self.storage):
                out.skipped += 1
                return
            self.storage.copy(self.src_uri(f), dst_uri, size=f.size, metadata={SOURCE_ETAG_META: f.etag})
        except Exception as err:  # noqa: BLE001 - one file's failure must not stop the others
            out.copy_errors[f.file] = f"{type(err).__name__}: {err}"
            return
        out.copied.append(f.file)
        out.bytes_copied += f.size

    def run_process(self, art: Artifact, out: Outcome) -> None:
        out.processed = True
        try:
            self.process(dict(self.rows[art.artifact_id]), self.file_uris(art), self.experiment_uri, self.reload)
        except Exception as err:  # noqa: BLE001 - user code: failures are per artifact
            out.process_error = f"{type(err).__name__}: {err}"
            log.warning("process_func failed on %s: %s", art.artifact_id, out.process_error)

    def artifact(self, art: Artifact, files: Iterable[str] | None = None, force_process: bool = False) -> Outcome:
        """Copy the artifact's files (or only `files`), then run process_func when the
        artifact is new or changed in this run, on reload, or when forced (repair)."""
        out = Outcome(art.artifact_id)
        if self.copy_files:
            for name in sorted(files if files is not None else art.files):
                self.copy_file(art, art.all_files[name], out, force=self.reload or files is not None)
        fresh = not self.existing.get(art.artifact_id)
        wanted = force_process or self.reload or bool(out.copied) or fresh
        if self.process is not None and wanted and not out.copy_errors:
            self.run_process(art, out)
        return out


def remove_abandoned_temps(storage: st.Storage, experiment_uri: str, grace_s: float = TEMP_GRACE_SECONDS,
                           now: float | None = None) -> list[str]:
    """Delete the temporary files that killed copies left in the experiment folder; returns
    their paths relative to it. Only our own names (`storage.TEMP_PREFIX`, which listings
    already skip), only regular files, and only those unmodified for `grace_s`, so a copy that
    a concurrent run is writing is never touched. On S3 copies are server-side and write no
    temporary object: nothing to do."""
    if not isinstance(storage, st.LocalStorage):
        return []
    root = storage.path(experiment_uri)
    now = time.time() if now is None else now
    removed = []
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            if not name.startswith(st.TEMP_PREFIX):
                continue
            path = Path(dirpath) / name
            try:
                info = path.lstat()
                if stat.S_ISREG(info.st_mode) and now - info.st_mtime > grace_s:
                    path.unlink()
                    removed.append(path.relative_to(root).as_posix())
            except FileNotFoundError:
                continue  # renamed into place by its writer meanwhile
    if removed:
        log.info("removed %d temporary file(s) left by killed copies, e.g. %s", len(removed), removed[0])
    return sorted(removed)


def run_parallel(job: CopyJob, work: list[tuple[Artifact, Iterable[str] | None, bool]], threads: int,
                 what: str = "copy") -> list[Outcome]:
    """Run `job.artifact` over `work` in a thread pool; logs progress about every 5%."""
    outcomes: list[Outcome] = []
    if not work:
        return outcomes
    step = max(1, len(work) // 20)
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=max(1, min(threads, len(work)))) as pool:
        futures = [pool.submit(job.artifact, art, files, force) for art, files, force in work]
        for done, future in enumerate(as_completed(futures), 1):
            outcomes.append(future.result())
            if done % step == 0 or done == len(work):
                rate = done / max(time.monotonic() - started, 1e-9)
                log.info("%s: %d/%d artifacts (%.0f/s)", what, done, len(work), rate)
    outcomes.sort(key=lambda o: o.artifact_id)
    return outcomes
