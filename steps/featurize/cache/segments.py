"""The record cache's index: append-only segments that every reader unions.

A job that writes a pack writes one segment, `<cache>/index/<sha256 of its bytes>.json`:
`{"format": 3, "entries": [[folder key, pack sha256, pack size, pack ETag, first row, rows,
records], ...]}`: where each folder's rows are in which pack, and what the pack's bytes must be.
No segment is ever rewritten, and no shared object is read, modified and written back, so two
executions at once (a schedule overlapping a manual start) each only add their own; equal
content gets an equal name and equal bytes. A reader lists `index/` and reads every segment: a
few objects. A segment whose bytes do not hash to its name, or that is no segment of this
format, is skipped and reported, never fatal: its folders are misses, featurized again and
indexed anew.
"""

from __future__ import annotations

import hashlib
import json
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import astuple, dataclass
from pathlib import PurePosixPath

from steps.io import storage as st

FORMAT = 3  # 2 was one Parquet object per folder (cells), 1 a pickle: neither is read
INDEX_FOLDER = "index"
OBJECTS_FOLDER = "objects"
SHA256 = re.compile(r"^[0-9a-f]{64}$")


class Refused(ValueError):
    """Stored bytes that are not what the reader looks for; `reason` says why."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, order=True)
class Located:
    """Where a folder's rows are: rows `offset`..`offset + rows` of the pack
    `objects/<sha256>.parquet`, whose bytes must be `size` long with ETag `etag` (as written);
    `records`: how many records the folder has."""

    sha256: str
    size: int
    etag: str
    offset: int
    rows: int
    records: int


Entry = tuple[str, Located]  # (folder key, where its rows are)


def object_uri(cache_uri: str, sha256: str) -> str:
    return f"{cache_uri.rstrip('/')}/{OBJECTS_FOLDER}/{sha256}.parquet"


def segment_bytes(entries: list[Entry]) -> bytes:
    return json.dumps({"format": FORMAT, "entries": sorted([key, *astuple(loc)] for key, loc in entries)},
                      separators=(",", ":")).encode()


def write_segment(storage: st.Storage, cache_uri: str, entries: list[Entry]) -> str | None:
    """Add one segment naming `entries`; returns its URI (None when there is none)."""
    if not entries:
        return None
    data = segment_bytes(entries)
    uri = f"{cache_uri.rstrip('/')}/{INDEX_FOLDER}/{hashlib.sha256(data).hexdigest()}.json"
    storage.write_bytes(uri, data)
    return uri


def _row_ok(row) -> bool:
    return (isinstance(row, list) and len(row) == 7 and isinstance(row[0], str) and isinstance(row[1], str)
            and SHA256.match(row[1]) is not None and isinstance(row[3], str)
            and all(type(v) is int and v >= 0 for v in (row[2], *row[4:])))


def entries_of(data: bytes, name: str) -> list[Entry]:
    """The entries of one segment's bytes; Refused saying why they are none."""
    if not name.endswith(".json") or not SHA256.match(name.removesuffix(".json")):
        raise Refused("foreign", "no segment name (<sha256>.json)")
    if hashlib.sha256(data).hexdigest() != name.removesuffix(".json"):
        raise Refused("digest_mismatch", "its bytes do not hash to its name")
    try:
        segment = json.loads(data)
    except (ValueError, RecursionError) as err:  # also UnicodeDecodeError; nesting too deep
        raise Refused("unreadable", str(err)) from None
    if not isinstance(segment, dict) or segment.get("format") != FORMAT:
        raise Refused("wrong_format", f"format {segment.get('format') if isinstance(segment, dict) else None!r}, "
                      f"this code reads {FORMAT}")
    rows = segment.get("entries")
    if not isinstance(rows, list) or not all(_row_ok(r) for r in rows):
        raise Refused("wrong_schema", "entries must be [folder key, sha256, size, etag, offset, rows, records]")
    return [(key, Located(*rest)) for key, *rest in rows]


def read_segments(storage: st.Storage, cache_uri: str,
                  threads: int = 16) -> tuple[dict[str, set[Located]], list[dict[str, str]]]:
    """(folder key -> where its rows are, the segments rejected as [{key, reason, detail}])."""
    uris = [info.uri for info in storage.list(f"{cache_uri.rstrip('/')}/{INDEX_FOLDER}/")]

    def read(uri: str) -> list[Entry] | dict[str, str]:
        try:
            return entries_of(storage.read_bytes(uri), PurePosixPath(uri).name)
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
