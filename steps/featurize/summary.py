"""The built-in feature function: one row per (record, segment, signal) in physical units.

Statistics come from the exact histogram of digital values (see reader.py), so percentiles are
exact over the valid samples, using numpy's default (linear) interpolation between ranks.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from steps.featurize.reader import DEFAULT_WINDOW, INVALID_VALUE, Histogram, checksum_ok, segment_histograms
from steps.featurize.records import FeatureResult, RecordError, RecordRef

PERCENTILES = (5, 25, 50, 75, 95)
STAT_NAMES = ("mean", "std", "min", "max", "p05", "p25", "p50", "p75", "p95")
SCHEMA = pa.schema(
    [
        ("group", pa.string()),
        ("record", pa.string()),
        ("artifact", pa.string()),
        ("segment", pa.string()),
        ("segment_index", pa.int32()),
        ("signal", pa.string()),
        ("signal_index", pa.int32()),
        ("is_numerics", pa.bool_()),
        ("fs", pa.float64()),
        ("units", pa.string()),
        ("fmt", pa.string()),
        ("n_samples", pa.int64()),
        ("n_valid", pa.int64()),
        ("frac_nan", pa.float64()),
        ("duration_s", pa.float64()),
        ("start_s", pa.float64()),
    ]
    + [(name, pa.float64()) for name in STAT_NAMES]
)
FEATURE_COLUMNS = tuple(SCHEMA.names)


def histogram_stats(hist: Histogram, nan_value: int | None, gain: float, baseline: int) -> dict[str, float]:
    """Mean, population std, min, max and percentiles of the valid samples, in physical units."""
    keep = hist.counts > 0
    if nan_value is not None:
        keep &= hist.values != nan_value
    values, counts = hist.values[keep], hist.counts[keep]
    n = int(counts.sum())
    if n == 0:
        return {name: math.nan for name in STAT_NAMES}
    # physical = (digital - baseline) / gain, as wfdb computes it. Values are sorted ascending;
    # a negative gain reverses the physical order.
    phys = (values.astype(np.float64) - baseline) / gain
    if gain < 0:
        phys, counts = phys[::-1], counts[::-1]
    # Plain multiply-and-sum, not `@`: BLAS dot spins up its thread pool for every call, which
    # costs milliseconds per signal on a busy machine.
    weights = counts.astype(np.float64)
    mean = float((phys * weights).sum() / n)
    dev = phys - mean
    std = math.sqrt(float((dev * dev * weights).sum()) / n)
    # numpy's default (linear) percentile: between the sorted samples at floor and floor+1 of
    # (n - 1) * q, each found by its rank in the cumulative counts.
    pos = (n - 1) * np.asarray(PERCENTILES, np.float64) / 100.0
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, n - 1)
    cum = np.cumsum(counts)
    x_lo = phys[np.searchsorted(cum, lo, side="right")]
    x_hi = phys[np.searchsorted(cum, hi, side="right")]
    pct = x_lo + (x_hi - x_lo) * (pos - lo)
    out = {"mean": mean, "std": std, "min": float(phys[0]), "max": float(phys[-1])}
    out.update({f"p{q:02d}": float(v) for q, v in zip(PERCENTILES, pct)})
    return out


def _segment_rows(
    record: RecordRef, seg_name: str, seg_index: int, start: int | None, fs_record: float | None,
    window: int, verify_checksum: bool, result: FeatureResult,
) -> None:
    import wfdb

    path = record.directory / seg_name
    if not path.with_suffix(".hea").is_file():
        result.error(record, "missing_header", f"segment header {seg_name}.hea not found", seg_name, f"{seg_name}.hea")
        return
    try:
        header = wfdb.rdheader(str(path))
    except Exception as err:  # noqa: BLE001 - wfdb raises many types for a bad header
        result.error(record, "header_parse_error", f"{type(err).__name__}: {err}", seg_name, f"{seg_name}.hea")
        return
    try:
        hists, n_frames, nbytes = segment_histograms(path, header, window)
    except RecordError as err:
        result.error(record, err.kind, err.message, seg_name, err.file or f"{seg_name}.hea")
        return
    result.bytes_read += nbytes
    fs = float(header.fs or fs_record or 0.0)
    spf = header.samps_per_frame or [1] * header.n_sig
    bad_sums = []
    for ch, hist in enumerate(hists):
        fmt = str(header.fmt[ch])
        if verify_checksum and header.checksum and not checksum_ok(hist, header.checksum[ch]):
            bad_sums.append(header.sig_name[ch])
            continue
        nan_value = INVALID_VALUE.get(fmt)
        gain = float(header.adc_gain[ch]) or 200.0  # WFDB: a zero gain means the default, 200
        stats = histogram_stats(hist, nan_value, gain, int(header.baseline[ch] or 0))
        n = hist.n
        n_valid = n - int(hist.counts[hist.values == nan_value].sum()) if nan_value is not None else n
        sig_fs = fs * (spf[ch] or 1)
        result.rows.append({
            "group": record.group,
            "record": record.record,
            "artifact": record.artifact,
            "segment": seg_name,
            "segment_index": seg_index,
            "signal": header.sig_name[ch],
            "signal_index": ch,
            "is_numerics": record.is_numerics,
            "fs": sig_fs,
            "units": header.units[ch] or "",
            "fmt": fmt,
            "n_samples": n,
            "n_valid": n_valid,
            "frac_nan": (n - n_valid) / n if n else math.nan,
            "duration_s": n_frames / fs if fs else math.nan,
            "start_s": start / fs_record if start is not None and fs_record else math.nan,
            **stats,
        })
    if bad_sums:
        result.error(
            record, "header_data_mismatch", f"checksum differs from the header for signal(s) {bad_sums}",
            seg_name, header.file_name[0] if header.file_name else "",
        )


def summarize_record(
    record: RecordRef, *, window_samples: int = DEFAULT_WINDOW, verify_checksum: bool = True
) -> FeatureResult:
    """Per (segment, signal) summary of one WFDB record. Defects become error rows."""
    import wfdb

    result = FeatureResult()
    window = max(2, int(window_samples))
    if record.kind == "segments":
        for index, name in enumerate(record.segments):
            _segment_rows(record, name, index, None, None, window, verify_checksum, result)
        return result
    master_path = Path(record.root) / record.header
    stem = master_path.with_suffix("")
    if record.kind == "single":
        _segment_rows(record, stem.name, 0, 0, None, window, verify_checksum, result)
        return result
    try:
        master = wfdb.rdheader(str(stem))
    except Exception as err:  # noqa: BLE001
        result.error(record, "header_parse_error", f"{type(err).__name__}: {err}")
        return result
    fs = float(master.fs or 0.0)
    start, index = 0, 0
    for name, length in zip(master.seg_name, master.seg_len):
        if name != "~" and not (name.endswith("_layout") and not length):
            seg_header = record.directory / f"{name}.hea"
            if seg_header.is_file():
                declared = _declared_length(seg_header)
                if declared is not None and declared != length:
                    result.error(
                        record, "header_data_mismatch",
                        f"master declares {length} samples for {name}, its header {declared}", name, f"{name}.hea",
                    )
                    start += length
                    index += 1
                    continue
            _segment_rows(record, name, index, start, fs, window, verify_checksum, result)
            index += 1
        start += length
    if index == 0:
        result.error(record, "zero_samples", "master header lists no segment with samples (only gaps and layout)")
    return result


def _declared_length(header: Path) -> int | None:
    for line in header.read_text(encoding="latin-1").splitlines():
        tokens = line.split()
        if tokens and not tokens[0].startswith("#"):
            return int(tokens[3]) if len(tokens) > 3 and tokens[3].isdigit() else None
    return None


def result_rows_table(rows: list[dict[str, Any]]) -> pa.Table:
    """The built-in rows as an arrow table with the fixed schema (also when there are none)."""
    return pa.Table.from_pylist(rows, schema=SCHEMA)
