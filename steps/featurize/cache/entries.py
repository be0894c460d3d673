"""One cache entry: the rows and error rows of one artifact folder's records, as Parquet bytes.

Long format, one row per cell, so any feature function's rows fit one fixed schema: `record`
(its header), `error` (an error row or a feature row), `row` (its index), `key` (the column),
then the cell (`cells.py`). The file's metadata names the format, the folder key the entry was
written for, and each record's row and error-row counts (rows without cells, records without
rows). `read_entry` checks all of it against what the reader looks for: an entry written for
other records, another key or another format is refused, never served.
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from steps.featurize.cache.cells import Cell, Unstorable, decode, encode, same
from steps.featurize.records import FeatureResult

FORMAT = 2  # 1 was a pickle: bump on any change of this layout or of cells.py's tags
META = b"wavepipe.record_cache"
SCHEMA = pa.schema([
    ("record", pa.string()), ("error", pa.bool_()), ("row", pa.int32()), ("key", pa.string()),
    ("tag", pa.string()), ("i", pa.int64()), ("f", pa.float64()), ("s", pa.string()), ("b", pa.binary()),
    ("tz", pa.string()),
])


class Refused(ValueError):
    """Stored bytes that are not the entry the reader looks for; `reason` says why."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def _columns(results: dict[str, FeatureResult]) -> dict[str, list]:
    columns: dict[str, list] = {name: [] for name in SCHEMA.names}
    for header in sorted(results):
        for error, rows in ((False, results[header].rows), (True, results[header].errors)):
            for index, row in enumerate(rows):
                for key, value in row.items():
                    if type(key) is not str:
                        raise Unstorable(f"record {header}: a column named by {type(key).__name__} {key!r}")
                    try:
                        cell = encode(value)
                    except Unstorable as err:
                        raise Unstorable(f"record {header}, column {key}: {err}") from None
                    for name, item in zip(SCHEMA.names, (header, error, index, key, *cell)):
                        columns[name].append(item)
    return columns


def entry_bytes(folder_key: str, results: dict[str, FeatureResult]) -> bytes:
    """The Parquet bytes of one folder's results. Unstorable when a value would not come back
    exactly (checked by reading the bytes back, so an entry is written only if it round-trips)."""
    meta = {"format": FORMAT, "key": folder_key,
            "records": [[h, len(results[h].rows), len(results[h].errors)] for h in sorted(results)]}
    try:
        table = pa.table(_columns(results), schema=SCHEMA.with_metadata({META: json.dumps(meta)}))
    except (pa.ArrowException, UnicodeError, OverflowError) as err:  # e.g. a string with lone surrogates
        raise Unstorable(f"{type(err).__name__}: {err}") from None
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    data = sink.getvalue().to_pybytes()
    back = read_entry(data, folder_key, set(results))
    for header, result in results.items():
        for mine, theirs in ((result.rows, back[header].rows), (result.errors, back[header].errors)):
            if not all(list(a) == list(b) and all(same(a[k], b[k]) for k in a) for a, b in zip(mine, theirs)):
                raise Unstorable(f"record {header}: a value does not read back as itself")
    return data


def _table(data: bytes) -> pa.Table:
    # Into Arrow's own memory: an Arrow object still holding a Python bytes object when the
    # interpreter exits can abort it (pyarrow 21, seen here as "terminate called").
    buffer = pa.allocate_buffer(len(data))
    memoryview(buffer).cast("B")[:] = data
    try:
        table = pq.read_table(pa.BufferReader(buffer))
    except (pa.ArrowException, OSError, ValueError) as err:
        raise Refused("unreadable", f"not Parquet: {err}") from None
    if not table.schema.equals(SCHEMA, check_metadata=False):
        raise Refused("wrong_schema", str(table.schema))
    return table


def _meta(table: pa.Table) -> dict[str, Any]:
    try:
        meta = json.loads((table.schema.metadata or {})[META])
        records = {str(h): (int(n), int(e)) for h, n, e in meta["records"]}
        return {"format": meta["format"], "key": meta["key"], "records": records}
    except (KeyError, ValueError, TypeError) as err:
        raise Refused("wrong_schema", f"metadata: {type(err).__name__}: {err}") from None


def read_entry(data: bytes, folder_key: str, headers: set[str]) -> dict[str, FeatureResult]:
    """The results of `headers` from entry bytes written for `folder_key`; Refused otherwise."""
    table = _table(data)
    meta = _meta(table)
    if meta["format"] != FORMAT:
        raise Refused("wrong_format", f"format {meta['format']!r}, this code reads {FORMAT}")
    if meta["key"] != folder_key:
        raise Refused("wrong_key", f"written for folder key {meta['key']!r}")
    if set(meta["records"]) != headers:
        raise Refused("wrong_records", f"holds {sorted(meta['records'])}")
    out = {h: FeatureResult(rows=[{} for _ in range(n)], errors=[{} for _ in range(e)])
           for h, (n, e) in meta["records"].items()}
    columns = table.to_pydict()
    try:
        for record, error, row, key, *cell in zip(*(columns[name] for name in SCHEMA.names)):
            if error is None or row is None or row < 0 or key is None:
                raise ValueError(f"record {record}: a cell without its place (error, row, key)")
            target = (out[record].errors if error else out[record].rows)[row]
            if key in target:
                raise ValueError(f"record {record}: cell {key!r} of row {row} twice")
            target[key] = decode(Cell(*cell))
    except (KeyError, IndexError, ValueError, TypeError, OverflowError) as err:
        raise Refused("wrong_cells", f"{type(err).__name__}: {err}") from None
    return out
