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
- Place: `<pipeline>/record-cache/<record cache key>/` (every experiment's, unless the config
  keeps one per experiment), the key hashing the featurize code and feature modules, settings
  (but how records are fetched: read_mode, stream), image, numeric libraries and environment,
  so other code or settings never see these rows, and download and stream jobs share them
  (`pipeline/stages/featurize.py`). Under it,
  `objects/<sha256>.parquet` (one entry per folder, named by the digest of its bytes: immutable)
  and `index/<sha256>.json` (append-only segments: folder key -> entry digest and size;
  `segments.py`).
- Format: data only, never pickle (`entries.py`, `cells.py`): Parquet with a fixed schema that
  gives back exactly the types and values a feature function returned, or the folder is not
  cached. A value edited in the bucket cannot be served, and no stored byte can run code.
- Trust: an entry is served only if the index names it for this folder key and its bytes have
  the indexed size and SHA-256 and say they are this folder's rows. Anything else (missing,
  truncated, altered, foreign) is a miss: featurized again, written again (a damaged object is
  overwritten by the recomputed bytes) and reported in `record_cache_rejected` with its key.
  Old entries (format 1, pickles at `<digest>.pkl`) are never read.
- Cleaning: delete `record-cache/` (or one key's folder under it);
  the next run featurizes everything again and refills it. Nothing else refers to it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from steps.io import storage as st
from steps.featurize.cache.cells import Unstorable
from steps.featurize.cache.entries import FORMAT, Refused, entry_bytes, read_entry
from steps.featurize.cache.segments import Located, object_uri, read_segments, write_segment
from steps.featurize.records import FeatureResult, RecordRef

log = logging.getLogger("steps.featurize.cache")
# Folders whose rows could not be stored are listed in the report up to this many (and counted).
UNSTORABLE_LISTED = 20


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
    rejected: list[dict[str, str]] = field(default_factory=list)  # [{key, reason, detail[, folder]}]


def _check(data: bytes, where: Located) -> tuple[str, str] | None:
    """(reason, detail) when the bytes are not those the index names."""
    if len(data) != where.size:
        return ("truncated" if len(data) < where.size else "size_mismatch"), f"{len(data)} bytes, indexed {where.size}"
    if hashlib.sha256(data).hexdigest() != where.sha256:
        return "digest_mismatch", "its bytes do not hash to the indexed sha256"
    return None


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
        self.unstorable: list[dict[str, str]] = []
        self.unstorable_count = 0

    def _load(self, folder: str, records: list[RecordRef],
              candidates: set[Located]) -> tuple[dict[str, FeatureResult] | None, list[dict[str, str]]]:
        """The folder's results from the first indexed entry that proves to be them, and every
        entry tried before it that did not."""
        rejected = []
        for where in sorted(candidates):
            uri = object_uri(self.uri, where.sha256)
            try:
                data = self.storage.read_bytes(uri)
                problem = _check(data, where)
                if problem is None:
                    return read_entry(data, self.digests[folder], {r.header for r in records}), rejected
            except FileNotFoundError:
                problem = ("missing", "indexed, not found")
            except Refused as err:  # the right bytes, but no entry of this folder's records
                problem = (err.reason, err.detail)
            rejected.append({"key": uri, "folder": folder, "reason": problem[0], "detail": problem[1]})
        return None, rejected

    def split(self, records: list[RecordRef]) -> Split:
        """Read the index's segments, then fetch (concurrently, one GET each) the entries of the
        folders it names; return what to reuse and what to featurize."""
        by_folder = _by_folder(records)
        for folder, members in by_folder.items():
            self.digests[folder] = folder_digest(self.root, folder, members, self.shard, self.index)
        located, out = {}, Split()
        if by_folder:
            located, out.rejected = read_segments(self.storage, self.uri, self.threads)
        with ThreadPoolExecutor(max_workers=self.threads) as pool:
            found = dict(zip(by_folder, pool.map(
                lambda f: self._load(f, by_folder[f], located.get(self.digests[f], set())), by_folder)))
        for folder, members in by_folder.items():
            results, rejected = found[folder]
            out.rejected += rejected
            if results is None:
                out.todo.extend(members)
                out.folders_todo += 1
            else:
                out.reused.update(results)
                out.folders_reused += 1
        for item in out.rejected:
            log.warning("record cache: %s rejected (%s: %s); its folder is featurized again", item["key"],
                        item["reason"], item["detail"])
        return out

    def _entry(self, folder: str, results: dict[str, FeatureResult]) -> tuple[str, str, int] | Unstorable:
        """Write one folder's entry; (folder key, sha256, size), or why its rows cannot be stored."""
        try:
            data = entry_bytes(self.digests[folder], results)
        except Unstorable as err:
            return err
        digest = hashlib.sha256(data).hexdigest()
        # Written even when the name exists: a damaged object of that name is replaced by the
        # bytes its name promises (an entry's bytes are a function of its rows).
        self.storage.write_bytes(object_uri(self.uri, digest), data)
        return self.digests[folder], digest, len(data)

    def store(self, results: dict[str, FeatureResult], records: list[RecordRef]) -> int:
        """Write the featurized folders' entries, then one index segment naming them; returns
        how many entries were written."""
        by_folder = _by_folder(records)

        # A folder with an error row is not cached: a failure may be transient (a feature
        # function's), and a failing record is cheap to try again.
        clean = [f for f, members in by_folder.items() if not any(results[r.header].errors for r in members)]
        with ThreadPoolExecutor(max_workers=self.threads) as pool:
            written = dict(zip(clean, pool.map(
                lambda f: self._entry(f, {r.header: results[r.header] for r in by_folder[f]}), clean)))
        entries = [e for e in written.values() if not isinstance(e, Unstorable)]
        unstorable = [{"folder": f, "reason": str(e)} for f, e in written.items() if isinstance(e, Unstorable)]
        self.unstorable_count += len(unstorable)
        self.unstorable += unstorable[:UNSTORABLE_LISTED - len(self.unstorable)]
        # The segment last: it never names an object not yet written.
        write_segment(self.storage, self.uri, entries)
        return len(entries)
