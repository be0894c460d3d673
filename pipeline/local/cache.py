"""Step caching as SageMaker does it, kept under `<workdir>/cache`.

SageMaker keys a Processing step's cache on its resolved `AppSpecification`, `Environment`
and `ProcessingInputs` (input URIs, not their data), within one pipeline; a hit within
`CacheConfig.ExpireAfter` (ISO 8601 duration) reuses the earlier job's properties, so its
outputs stay where that job wrote them. The output location and the cluster size are not in
the key. Locally the key also names the storage (local disk and an endpoint hold different
objects) and a hit is only taken when the earlier outputs are still there.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pipeline.definition.model import parse_duration, processing_outputs
from steps.io.storage import Storage


def cache_key(storage: str, pipeline: str, step: str, arguments: dict) -> str:
    """The key of a step's resolved arguments (the fields SageMaker's step cache uses)."""
    payload = {
        "Storage": storage,
        "Pipeline": pipeline,
        "Step": step,
        "AppSpecification": arguments.get("AppSpecification"),
        "Environment": arguments.get("Environment") or {},
        "ProcessingInputs": arguments.get("ProcessingInputs") or [],
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def write_json(path: Path, data: dict) -> None:
    """Atomically: a reader (or a crash) never sees half a state file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=1, sort_keys=True, default=str)
    os.replace(tmp, path)


@dataclass(frozen=True)
class CacheEntry:
    execution_id: str
    finished: datetime
    properties: dict
    output_files: dict[str, int]  # output name -> how many files it had


class CacheStore:
    """`<root>/<pipeline>/<step>/<key>.json`, one entry per successful run of a key."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, pipeline: str, step: str, key: str) -> Path:
        return self.root / pipeline / step / f"{key}.json"

    def lookup(self, pipeline: str, step: str, key: str, expire_after: str | None,
               now: datetime) -> CacheEntry | None:
        path = self._path(pipeline, step, key)
        if not path.is_file():
            return None
        data = json.loads(path.read_text())
        entry = CacheEntry(data["execution_id"], datetime.fromisoformat(data["finished"]),
                           data["properties"], data.get("output_files", {}))
        if expire_after and now - entry.finished > parse_duration(expire_after):
            return None
        return entry

    def hit(self, pipeline: str, step: str, key: str, config: dict | None, storage: Storage,
            now: datetime) -> CacheEntry | None:
        """The entry a step with `CacheConfig` `config` reuses, or None: caching is off for
        it, nothing is cached, the entry expired, or its outputs are gone from `storage`."""
        config = config or {}
        if not config.get("Enabled"):
            return None
        entry = self.lookup(pipeline, step, key, config.get("ExpireAfter"), now)
        if entry is None or not outputs_exist(entry, storage):
            return None
        return entry

    def record(self, pipeline: str, step: str, key: str, entry: CacheEntry) -> None:
        write_json(self._path(pipeline, step, key), {
            "execution_id": entry.execution_id,
            "finished": entry.finished.isoformat(),
            "properties": entry.properties,
            "output_files": entry.output_files,
        })


def outputs_exist(entry: CacheEntry, storage: Storage) -> bool:
    """Whether every output that had files still has some (deleted since: run again rather
    than hand on nothing)."""
    for output in processing_outputs(entry.properties):
        if entry.output_files.get(output["OutputName"]):
            uri = output["S3Output"]["S3Uri"].rstrip("/") + "/"
            if next(iter(storage.list(uri)), None) is None:
                return False
    return True
