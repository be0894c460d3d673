"""A pack: one Featurize job's features.parquet, kept in the record cache as
`objects/<sha256 of its bytes>.parquet`, immutable.

Its rows are grouped by artifact folder (folders in path order, a folder's records in record
order), and its schema metadata (`wavepipe.pack`) says which rows and error rows are each
folder's, the folder's key, its macroshard and record counts. So Combine takes a folder's rows
from any pack by slicing, without one object per record and without reading data back through
Python values: typed Parquet in, the same typed Parquet out. It is data: Parquet with a schema
and JSON metadata, never a pickle; a reader checks size and sha256 before it uses a byte.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from steps.io import storage as st
from steps.featurize.cache.segments import Entry, Located, Refused, object_uri, write_segment

META = b"wavepipe.pack"
PACK_FORMAT = 1


@dataclass(frozen=True)
class PackFolder:
    """One folder's place in a pack (and in the errors table written beside it)."""

    path: str  # relative to the shard's prefix, e.g. `30/3000003`
    key: str  # its folder key (steps/work.py)
    shard: str  # its macroshard
    offset: int
    rows: int
    error_offset: int
    errors: int
    records: int
    failed: int  # records with at least one error row: such a folder is never cached


def pack_metadata(folders: list[PackFolder]) -> dict[bytes, bytes]:
    return {META: json.dumps({"format": PACK_FORMAT, "folders": [asdict(f) for f in folders]}).encode()}


def pack_folders(schema: pa.Schema) -> list[PackFolder]:
    """The folders a pack's schema metadata names; Refused when it names none properly."""
    try:
        meta = json.loads((schema.metadata or {})[META])
        if meta["format"] != PACK_FORMAT:
            raise Refused("wrong_format", f"pack format {meta['format']!r}, this code reads {PACK_FORMAT}")
        return [PackFolder(**f) for f in meta["folders"]]
    except Refused:
        raise
    except (KeyError, ValueError, TypeError) as err:
        raise Refused("wrong_schema", f"pack metadata: {type(err).__name__}: {err}") from None


def table_of(data: bytes) -> pa.Table:
    """Parquet bytes as a table; Refused when they are not Parquet."""
    # Into Arrow's own memory: an Arrow object still holding a Python bytes object when the
    # interpreter exits can abort it (pyarrow 21, seen here as "terminate called").
    buffer = pa.allocate_buffer(len(data))
    memoryview(buffer).cast("B")[:] = data
    try:
        return pq.read_table(pa.BufferReader(buffer))
    except (pa.ArrowException, OSError, ValueError) as err:
        raise Refused("unreadable", f"not Parquet: {err}") from None


def check(data: bytes, where: Located) -> None:
    """Refused unless the bytes are those the index names (size, then sha256)."""
    if len(data) != where.size:
        raise Refused("truncated" if len(data) < where.size else "size_mismatch",
                      f"{len(data)} bytes, indexed {where.size}")
    if hashlib.sha256(data).hexdigest() != where.sha256:
        raise Refused("digest_mismatch", "its bytes do not hash to the indexed sha256")


def read_pack(storage: st.Storage, cache_uri: str, where: Located) -> tuple[pa.Table, dict[str, PackFolder]]:
    """A pack's table and its folders by key, verified against `where`; Refused (or
    FileNotFoundError) otherwise."""
    data = storage.read_bytes(object_uri(cache_uri, where.sha256))
    check(data, where)
    table = table_of(data)
    return table, {f.key: f for f in pack_folders(table.schema)}


def store_pack(storage: st.Storage, cache_uri: str, data: bytes, folders: list[PackFolder]) -> tuple[str | None, int]:
    """Keep a pack's bytes in the cache and index its clean folders (one new segment, written
    after the object, so it never names an object not yet there). Returns (the pack's URI, how
    many folders it indexed); (None, 0) when no folder is clean."""
    clean = [f for f in folders if f.failed == 0]
    if not clean:
        return None, 0
    sha = hashlib.sha256(data).hexdigest()
    uri = object_uri(cache_uri, sha)
    # Kept when the name already holds these bytes (rewriting would give it a new ETag under
    # SSE-KMS and turn the segments that name it into misses); a damaged object of that name is
    # replaced by the bytes its name promises. The ETag is recorded as S3 returns it.
    info = storage.head(uri)
    if info is None or info.size != len(data) or hashlib.sha256(storage.read_bytes(uri)).hexdigest() != sha:
        storage.write_bytes(uri, data)
        info = storage.head(uri)
    if info is None or info.size != len(data):
        raise OSError(f"{uri}: written, then not found with its {len(data)} bytes")
    entries: list[Entry] = [(f.key, Located(sha, len(data), info.etag, f.offset, f.rows, f.records)) for f in clean]
    write_segment(storage, cache_uri, entries)
    return uri, len(entries)
