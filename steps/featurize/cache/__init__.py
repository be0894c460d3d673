"""The record cache: the rows of every artifact folder already featurized, so a run's work is
what changed, not the shards it touched.

- Unit: an artifact folder (a WFDB record's folder with its segments and numerics record),
  keyed by its *folder key*: a digest of its path, its group and every file's relative name,
  size and ETag from the listing (`steps/work.py`). The step that lists the data (Reconcile or
  the listing step) computes it without reading a byte, looks every folder up here, and gives
  Featurize only the folders it does not find.
- Place: `<pipeline>/record-cache/<record cache key>/` (every experiment's, unless the config
  keeps one per experiment), the key hashing the featurize code and feature modules, settings
  (but how records are fetched: read_mode, stream), image, numeric libraries and environment
  (`pipeline/stages/featurize.py`), so other code or settings never see these rows. Under it,
  `objects/<sha256>.parquet`: packs, one per Featurize job, each its features.parquet (`packs.py`:
  typed Parquet, immutable, named by the digest of its bytes); `index/<sha256>.json`:
  append-only segments naming each folder's pack, rows, size and ETag (`segments.py`).
- Trust: data only, never pickle. A folder is found only if a segment names it and the pack
  listed under `objects/` has the size and ETag recorded when it was written; Combine checks
  the sha256 of every pack before it uses a byte. Anything else (missing, truncated, altered,
  foreign) is a miss: featurized again, and reported with its key in
  `record_cache_rejected`. Folders with a failed record are never cached (a failure may be
  transient): they are tried again on every run.
- Cleaning: `deploy.py gc`; or delete `record-cache/` (or one key's folder under it): the next
  run featurizes everything again and refills it.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from steps.io import storage as st
from steps.featurize.cache.segments import OBJECTS_FOLDER, Located, object_uri, read_segments
from steps.featurize.records import RecordRef

# Refused objects are listed in reports up to this many (and counted).
REJECTED_LISTED = 20


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


@dataclass
class Found:
    """What the cache holds of the folders looked up."""

    located: dict[str, Located] = field(default_factory=dict)  # folder key -> its rows
    rejected: list[dict[str, str]] = field(default_factory=list)  # [{key, reason, detail[, folders]}]
    packs: int = 0  # packs listed


def _problem(where: Located, info: st.ObjectInfo | None) -> tuple[str, str] | None:
    if info is None:
        return "missing", "indexed, not found"
    if info.size != where.size:
        return ("truncated" if info.size < where.size else "size_mismatch"), f"{info.size} bytes, indexed {where.size}"
    if info.etag.strip('"') != where.etag.strip('"'):
        return "etag_mismatch", f"ETag {info.etag}, {where.etag} when written: replaced since"
    return None


def lookup(storage: st.Storage, cache_uri: str, keys: set[str], threads: int = 16) -> Found:
    """Where the cache holds each of `keys`: one listing of `index/` and of `objects/`, and one
    GET per segment, whatever the number of folders. A folder several packs hold is taken from
    the pack that holds most of the folders looked up, so Combine reads as few packs as it can."""
    index, rejected = read_segments(storage, cache_uri, threads)
    out = Found(rejected=rejected)
    wanted = {key: index[key] for key in keys if key in index}
    packs = {info.uri: info for info in storage.list(f"{cache_uri.rstrip('/')}/{OBJECTS_FOLDER}/")}
    out.packs = len(packs)
    refused: dict[str, tuple[str, str, int]] = {}
    valid: dict[str, list[Located]] = {}
    for key, candidates in wanted.items():
        for where in candidates:
            uri = object_uri(cache_uri, where.sha256)
            problem = _problem(where, packs.get(uri))
            if problem is None:
                valid.setdefault(key, []).append(where)
            else:
                reason, detail, count = refused.get(uri, (*problem, 0))
                refused[uri] = (reason, detail, count + 1)
    holds = Counter(where.sha256 for candidates in valid.values() for where in set(candidates))
    for key, candidates in valid.items():
        out.located[key] = max(candidates, key=lambda w: (holds[w.sha256], w.sha256, -w.offset))
    out.rejected += [{"key": uri, "reason": reason, "detail": detail, "folders": str(count)}
                     for uri, (reason, detail, count) in sorted(refused.items())]
    return out
