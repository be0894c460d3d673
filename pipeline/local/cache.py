"""Step caching as SageMaker does it, kept under `<workdir>/cache`.

SageMaker keys a Processing step's cache on its resolved `AppSpecification`, `Environment`
and `ProcessingInputs` (input URIs, not their data), within one pipeline; a hit within
`CacheConfig.ExpireAfter` (ISO 8601 duration) reuses the earlier job's properties, so its
outputs stay where that job wrote them. The output location and the cluster size are not in
the key. Locally the key also names the storage (local disk and an endpoint hold different
objects) and a hit is only taken when the earlier outputs are still there as they were written:
each output's objects (key, size, ETag, as the storage listed them after the upload) are kept
in the entry and listed again on reuse; one missing, altered or added makes the step run again,
and the runner says why.
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
from steps.io.storage import Storage, naming


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
    try:
        with naming(path), os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=1, sort_keys=True, default=str)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)  # a full disk keeps no half-written state file
        raise


@dataclass(frozen=True)
class CacheEntry:
    execution_id: str
    finished: datetime
    properties: dict
    output_files: dict[str, int]  # output name -> how many files it had
    # output name -> {key relative to the output's URI: [size, ETag]}; None in older entries
    output_objects: dict[str, dict[str, list]] | None = None


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
                           data["properties"], data.get("output_files", {}), data.get("output_objects"))
        if expire_after and now - entry.finished > parse_duration(expire_after):
            return None
        return entry

    def hit(self, pipeline: str, step: str, key: str, config: dict | None, storage: Storage,
            now: datetime) -> tuple[CacheEntry | None, str | None]:
        """(the entry a step with `CacheConfig` `config` reuses, None) or (None, why not when
        there was an entry): caching is off for it, nothing is cached, the entry expired, or its
        outputs in `storage` are not those it wrote (missing, altered or added since)."""
        config = config or {}
        if not config.get("Enabled"):
            return None, None
        entry = self.lookup(pipeline, step, key, config.get("ExpireAfter"), now)
        if entry is None:
            return None, None
        changed = outputs_changed(entry, storage)
        if changed:
            return None, f"the outputs of execution {entry.execution_id} changed since it wrote them ({changed})"
        return entry, None

    def record(self, pipeline: str, step: str, key: str, entry: CacheEntry) -> None:
        write_json(self._path(pipeline, step, key), {
            "execution_id": entry.execution_id,
            "finished": entry.finished.isoformat(),
            "properties": entry.properties,
            "output_files": entry.output_files,
            "output_objects": entry.output_objects,
        })


def listed_objects(storage: Storage, uri: str) -> dict[str, list]:
    """{key relative to `uri`: [size, ETag]} of every object under the output URI `uri`."""
    prefix = uri.rstrip("/") + "/"
    return {o.uri[len(prefix):]: [o.size, o.etag] for o in storage.list(prefix)}


def outputs_changed(entry: CacheEntry, storage: Storage) -> str | None:
    """What differs between the outputs `entry` recorded and what `storage` holds now, or None."""
    for output in processing_outputs(entry.properties):
        name, uri = output["OutputName"], output["S3Output"]["S3Uri"]
        now = listed_objects(storage, uri)
        recorded = (entry.output_objects or {}).get(name)
        if recorded is None:  # an entry written before objects were recorded: counts only
            if entry.output_files.get(name) and not now:
                return f"output {name} is empty"
            continue
        missing = sorted(set(recorded) - set(now))
        altered = sorted(k for k in recorded if k in now and list(now[k]) != list(recorded[k]))
        added = sorted(set(now) - set(recorded))
        for what, keys in (("missing", missing), ("altered", altered), ("added", added)):
            if keys:
                more = f" and {len(keys) - 1} more" if len(keys) > 1 else ""
                return f"output {name}: {keys[0]} {what}{more}"
    return None
