"""Model inputs per artifact: file-path columns from the copied artifact folders, and the record's
rows of combine's waveform_summary.parquet. Both report what is missing by artifact id."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from steps.encode.errors import EncodeInputError

from steps.contract import SUMMARY_FILE
SUMMARY_COLUMN = "waveform_summary"


def file_columns(
    artifacts_dir: Path, artifact_ids: list[str], names: list[str]
) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """({file name: [local path per artifact]}, {artifact id: [missing file names]})."""
    root = Path(artifacts_dir).resolve()
    columns: dict[str, list[str]] = {name: [] for name in names}
    missing: dict[str, list[str]] = {}
    for artifact_id in artifact_ids:
        folder = root / artifact_id
        for name in names:
            path = folder / name
            columns[name].append(str(path))
            if not path.is_file():
                missing.setdefault(artifact_id, []).append(name)
    return columns, missing


# Summary rows join an artifact by `artifact`: the record's folder, which featurize writes on
# every row (it also carries numerics records and renamed masters).
JOIN_KEY = "artifact"


def read_summary(features_dir: Path) -> pa.Table:
    """waveform_summary.parquet sorted by artifact, record, segment, signal (a fixed row order)."""
    path = Path(features_dir) / SUMMARY_FILE
    if not path.is_file():
        raise EncodeInputError(f"{SUMMARY_FILE} not found in {features_dir}")
    table = pq.read_table(path)
    if JOIN_KEY not in table.column_names:
        raise EncodeInputError(f"{path} has no `{JOIN_KEY}` column (featurize writes it on every row)")
    key = JOIN_KEY
    table = table.set_column(table.column_names.index(key), key, pc.cast(table[key], pa.string()))
    order = [(c, "ascending") for c in (key, "record", "segment", "signal") if c in table.column_names]
    return table.sort_by(list(dict.fromkeys(order)))


def summary_column(summary: pa.Table, artifact_ids: list[str]) -> tuple[pa.Array, list[str]]:
    """A list<struct> array with each artifact's summary rows (without the join key), and the ids with none."""
    key = JOIN_KEY
    records = summary[key].to_numpy(zero_copy_only=False)
    rows = summary.drop_columns([key]).combine_chunks()
    structs = pa.StructArray.from_arrays([rows[c].combine_chunks() for c in rows.column_names], names=rows.column_names)
    ids = np.asarray(artifact_ids, dtype=object)
    starts = np.searchsorted(records, ids, side="left")
    ends = np.searchsorted(records, ids, side="right")
    take = np.concatenate([np.arange(s, e) for s, e in zip(starts, ends)]) if len(ids) else np.empty(0, np.int64)
    offsets = np.concatenate([[0], np.cumsum(ends - starts)]).astype(np.int32)
    values = structs.take(pa.array(take, type=pa.int64()))
    missing = [a for a, s, e in zip(artifact_ids, starts, ends) if s == e]
    return pa.ListArray.from_arrays(pa.array(offsets), values), missing
