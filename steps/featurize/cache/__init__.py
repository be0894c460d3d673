"""The per-record feature cache: what no step-level cache can do.

Inside a Featurize step that runs (because some file of its shard changed), a record whose
files and identity are those of a record already featurized with the same featurize key
reuses that record's rows instead of reading it again, so a run's work follows the changed
records, not the changed shards.

- Unit: an artifact folder (a WFDB record's folder with its segments and numerics record):
  every record discovered in it is cached together, keyed by a digest of the folder's files
  (relative name, size, ETag from the shard's `index.json`; SHA-256 of the bytes for a file
  the index does not list) and the records' identities (header, group, name, kind); not the
  shard, so a record that moves to another shard keeps its rows (the group is the shard's name
  only for records whose folder reveals none).
- Place: `<experiment>/record-cache/<record cache key>/<digest>.pkl`, the key hashing code,
  settings (but how records are fetched: read_mode, stream), image and environment, so other
  code or settings never see these rows, and download and stream jobs share them.
  Content-addressed: two executions can only write identical objects to the same key.
- Format: a pickle of the records' rows and error rows: exact for whatever a feature function
  returns (numpy scalars, NaN, timestamps), read only by the code of the same record cache key.
- Cleaning: delete `<experiment>/record-cache/` (or one key's folder under it);
  the next run featurizes everything again and refills it. Nothing else refers to it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import pickle
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from steps import storage as st
from steps.featurize.records import FeatureResult, RecordRef

log = logging.getLogger("steps.featurize.cache")
FORMAT = 1  # bump when the pickled layout changes: old entries are then simply not found


class BadIndex(ValueError):
    """A shard's index.json that is no index; the message names the file."""


def read_index(path: Path | None) -> dict[str, dict]:
    """The shard's `index.json` (relative key -> size, ETag), or {} without one."""
    if path is None or not Path(path).is_file():
        return {}
    try:
        index = json.loads(Path(path).read_text())
    except ValueError as err:
        raise BadIndex(f"index {path} is no JSON: {err}") from None
    bad = next((key for key, entry in index.items() if not isinstance(entry, dict) or not {"size", "etag"} <= set(entry)),
               None) if isinstance(index, dict) else "(the whole file)"
    if bad is not None:
        raise BadIndex(f"index {path}: {bad}: every entry needs size and etag (as Reconcile and the listing "
                         "step publish them)")
    return index


def folder_of(record: RecordRef) -> str:
    return PurePosixPath(record.header).parent.as_posix()


def _file_identity(root: Path, rel: str, index: dict[str, dict]) -> list:
    entry = index.get(rel)
    if entry is not None:
        return [rel, int(entry["size"]), str(entry["etag"])]
    digest = hashlib.sha256()
    with open(root / rel, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return [rel, (root / rel).stat().st_size, "sha256:" + digest.hexdigest()]


def folder_digest(root: Path, folder: str, records: list[RecordRef], shard: str, index: dict[str, dict]) -> str:
    base = root / folder
    files = sorted(p.relative_to(root).as_posix() for p in base.iterdir() if p.is_file()) if base.is_dir() else []
    # No shard name: a record's group (in `records`) is the shard's name only where its folder
    # reveals none, and nothing else in its rows depends on the shard, so a record moved to
    # another shard (a new `macroshards: auto` count) keeps its rows.
    content = {
        "format": FORMAT,
        "records": sorted([r.header, r.group, r.record, r.kind, r.is_numerics, list(r.segments)] for r in records),
        "files": [_file_identity(root, rel, index) for rel in files],
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def _by_folder(records: list[RecordRef]) -> dict[str, list[RecordRef]]:
    out: dict[str, list[RecordRef]] = defaultdict(list)
    for record in records:
        out[folder_of(record)].append(record)
    return out


@dataclass
class Split:
    """Records whose rows were found in the cache, and those to featurize."""

    reused: dict[str, FeatureResult] = field(default_factory=dict)  # header -> result
    todo: list[RecordRef] = field(default_factory=list)
    folders_reused: int = 0
    folders_todo: int = 0


class RecordCache:
    def __init__(self, uri: str, storage: st.Storage, root: Path, shard: str, index: dict[str, dict],
                 threads: int = 16) -> None:
        self.uri = uri.rstrip("/")
        self.storage = storage
        self.root = Path(root)
        self.shard = shard
        self.index = index
        self.threads = threads
        self.digests: dict[str, str] = {}  # folder -> digest

    def _uri(self, digest: str) -> str:
        return f"{self.uri}/{digest}.pkl"

    def _load(self, folder: str, records: list[RecordRef]) -> dict[str, FeatureResult] | None:
        try:
            entry = pickle.loads(self.storage.read_bytes(self._uri(self.digests[folder])))
        except FileNotFoundError:
            return None
        headers = {r.header for r in records}
        if entry.get("format") != FORMAT or set(entry["results"]) != headers:
            return None  # never serve rows for other records than these
        return {h: FeatureResult(rows=v["rows"], errors=v["errors"]) for h, v in entry["results"].items()}

    def split(self, records: list[RecordRef]) -> Split:
        """Look every folder up (concurrently: one GET each); return what to reuse and to do."""
        by_folder = _by_folder(records)
        for folder, members in by_folder.items():
            self.digests[folder] = folder_digest(self.root, folder, members, self.shard, self.index)
        with ThreadPoolExecutor(max_workers=self.threads) as pool:
            found = dict(zip(by_folder, pool.map(lambda f: self._load(f, by_folder[f]), by_folder)))
        out = Split()
        for folder, members in by_folder.items():
            if found[folder] is None:
                out.todo.extend(members)
                out.folders_todo += 1
            else:
                out.reused.update(found[folder])
                out.folders_reused += 1
        return out

    def store(self, results: dict[str, FeatureResult], records: list[RecordRef]) -> int:
        """Write the featurized folders' rows; returns how many entries were written."""
        by_folder = _by_folder(records)

        # A folder with an error row is not cached: a failure may be transient (a feature
        # function's), and a failing record is cheap to try again.
        clean = [f for f, members in by_folder.items() if not any(results[r.header].errors for r in members)]

        def write(folder: str) -> None:
            entry = {"format": FORMAT, "results": {r.header: {"rows": results[r.header].rows,
                                                              "errors": results[r.header].errors}
                                                   for r in by_folder[folder]}}
            self.storage.write_bytes(self._uri(self.digests[folder]), pickle.dumps(entry, protocol=4))

        with ThreadPoolExecutor(max_workers=self.threads) as pool:
            list(pool.map(write, clean))
        return len(clean)
