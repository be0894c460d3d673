"""The record cache's index: append-only segments that every reader unions.

A job that writes entries writes one segment, `<cache>/index/<sha256 of its bytes>.json`:
`{"format": 2, "entries": [[folder key, sha256 of the entry object, its size], ...]}`. No
segment is ever rewritten, and no shared object is read, modified and written back, so two
executions at once (a schedule overlapping a manual start) each only add their own; equal
content gets an equal name and equal bytes. A reader lists `index/` and reads every segment: a
few objects, then only the entries it needs. A segment whose bytes do not hash to its name, or
that is no segment of this format, is skipped and reported, never fatal: its entries are
misses, featurized again and indexed anew.
"""

from __future__ import annotations

import hashlib
import json
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import PurePosixPath

from steps.io import storage as st
from steps.featurize.cache.entries import FORMAT, Refused

INDEX_FOLDER = "index"
OBJECTS_FOLDER = "objects"
SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True, order=True)
class Located:
    """Where an entry is and what its bytes must be: `objects/<sha256>.parquet`, `size` bytes."""

    sha256: str
    size: int


def object_uri(cache_uri: str, sha256: str) -> str:
    return f"{cache_uri}/{OBJECTS_FOLDER}/{sha256}.parquet"


def segment_bytes(entries: list[tuple[str, str, int]]) -> bytes:
    return json.dumps({"format": FORMAT, "entries": sorted([k, s, n] for k, s, n in entries)},
                      separators=(",", ":")).encode()


def write_segment(storage: st.Storage, cache_uri: str, entries: list[tuple[str, str, int]]) -> str | None:
    """Add one segment naming `entries` (folder key, sha256, size); returns its URI (None when empty)."""
    if not entries:
        return None
    data = segment_bytes(entries)
    uri = f"{cache_uri}/{INDEX_FOLDER}/{hashlib.sha256(data).hexdigest()}.json"
    storage.write_bytes(uri, data)
    return uri


def _entries(data: bytes, name: str) -> list[tuple[str, Located]]:
    """The entries of one segment's bytes; Refused saying why they are none."""
    if not SHA256.match(name.removesuffix(".json")) or not name.endswith(".json"):
        raise Refused("foreign", "no segment name (<sha256>.json)")
    if hashlib.sha256(data).hexdigest() != name.removesuffix(".json"):
        raise Refused("digest_mismatch", "its bytes do not hash to its name")
    try:
        segment = json.loads(data)
    except (ValueError, RecursionError) as err:  # also UnicodeDecodeError; nesting too deep
        raise Refused("unreadable", str(err)) from None
    if not isinstance(segment, dict) or segment.get("format") != FORMAT:
        raise Refused("wrong_format", f"format {segment.get('format') if isinstance(segment, dict) else None!r}")
    rows = segment.get("entries")
    if not isinstance(rows, list) or not all(
            isinstance(r, list) and len(r) == 3 and isinstance(r[0], str) and isinstance(r[1], str)
            and SHA256.match(r[1]) and type(r[2]) is int and r[2] >= 0 for r in rows):
        raise Refused("wrong_schema", "entries must be [folder key, sha256, size]")
    return [(key, Located(sha, size)) for key, sha, size in rows]


def read_segments(storage: st.Storage, cache_uri: str,
                  threads: int = 16) -> tuple[dict[str, set[Located]], list[dict[str, str]]]:
    """(folder key -> where its entries are, the segments rejected as [{key, reason, detail}])."""
    uris = [info.uri for info in storage.list(f"{cache_uri}/{INDEX_FOLDER}/")]

    def read(uri: str) -> list[tuple[str, Located]] | dict[str, str]:
        try:
            return _entries(storage.read_bytes(uri), PurePosixPath(uri).name)
        except FileNotFoundError:  # listed, then gone (deleted by hand meanwhile)
            return {"key": uri, "reason": "missing", "detail": "listed, then not found"}
        except Refused as err:
            return {"key": uri, "reason": err.reason, "detail": err.detail}

    index: dict[str, set[Located]] = {}
    rejected = []
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for got in pool.map(read, uris):
            if isinstance(got, dict):
                rejected.append(got)
                continue
            for key, located in got:
                index.setdefault(key, set()).add(located)
    return index, rejected
