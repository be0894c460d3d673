"""The built-in feature function: one row per (record, segment, signal) in physical units.

Statistics come from the exact distribution of digital values (reader.py, histograms.py), so
percentiles are exact over the valid samples, using numpy's default (linear) interpolation
between ranks. Every error stays within its segment (one bad file never costs a good one).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pyarrow as pa

from steps.featurize.histograms import PERCENTILES, Distribution
from steps.featurize.limits import MAX_SEGMENTS, header_text, plain_int
from steps.featurize.reader import DEFAULT_WINDOW, checksum_ok, segment_distributions
from steps.featurize.records import FeatureResult, RecordError, RecordRef
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


def distribution_stats(dist: Distribution, gain: float, baseline: int) -> dict[str, float]:
    """Mean, population std, min, max and percentiles of the valid samples, in physical units
    (physical = (digital - baseline) / gain, as wfdb computes it)."""
    if dist.n_valid == 0:
        return {name: math.nan for name in STAT_NAMES}

    def phys(digital: float) -> float:
        return (digital - baseline) / gain

    lo, hi = phys(dist.vmin), phys(dist.vmax)
    out = {"mean": phys(dist.mean), "std": math.sqrt(dist.var) / abs(gain), "min": min(lo, hi), "max": max(lo, hi)}
    # A negative gain reverses the order; linear interpolation is symmetric under reversal,
    # so physical percentile q is the digital percentile 100 - q.
    for q in PERCENTILES:
        out[f"p{q:02d}"] = phys(dist.percentile(q if gain > 0 else 100 - q))
    return out


def _fail(result: FeatureResult, record: RecordRef, seg_name: str, kind: str, message: str, file: str) -> None:
    result.error(record, kind, f"segment {seg_name}: {message}", seg_name, file)


def _segment_rows(
    record: RecordRef, seg_name: str, seg_index: int, start: int | None, fs_record: float | None,
    window: int, verify_checksum: bool, result: FeatureResult,
) -> None:
    """The rows of one segment, or its error rows: whatever goes wrong stays in this segment."""
    header_file = f"{seg_name}.hea"
    if not (record.directory / header_file).exists():  # a FIFO or a directory: read_header says what it is
        _fail(result, record, seg_name, "missing_header", f"segment header {header_file} not found", header_file)
        return
    try:
        _read_segment(record, seg_name, seg_index, start, fs_record, window, verify_checksum, result)
    except RecordError as err:
        _fail(result, record, seg_name, err.kind, err.message, err.file or header_file)
    except Exception as err:  # noqa: BLE001 - one bad file must never cost the other segments
        _fail(result, record, seg_name, "read_error",
              f"reading {header_file} and its data failed: {type(err).__name__}: {err}", header_file)


def _read_segment(
    record: RecordRef, seg_name: str, seg_index: int, start: int | None, fs_record: float | None,
    window: int, verify_checksum: bool, result: FeatureResult,
) -> None:
    # wfdb is imported where headers are read, not by what only wants this module's column
    # names (Combine's settings): Combine runs without wfdb.
    from steps.featurize.headers import read_header

    path, root = record.directory / seg_name, Path(record.root)
    try:
        header = read_header(path, root)
    except RecordError:
        raise
    except Exception as err:  # noqa: BLE001 - wfdb raises many types for a bad header
        raise RecordError("header_parse_error", f"header {seg_name}.hea does not parse: {type(err).__name__}: {err}",
                          file=f"{seg_name}.hea") from err
    read = segment_distributions(path, header, window, root)
    fs = float(header.fs or fs_record or 0.0)
    spf = header.samps_per_frame or [1] * header.n_sig
    rows, bad_sums = [], []
    for ch, dist in enumerate(read.distributions):
        if verify_checksum and header.checksum and not checksum_ok(dist, header.checksum[ch]):
            bad_sums.append(header.sig_name[ch])
            continue
        gain = float(header.adc_gain[ch]) or 200.0  # WFDB: a zero gain means the default, 200
        n, n_valid = dist.n, dist.n_valid
        rows.append({
            "group": record.group,
            "record": record.record,
            "artifact": record.artifact,
            "segment": seg_name,
            "segment_index": seg_index,
            "signal": header.sig_name[ch],
            "signal_index": ch,
            "is_numerics": record.is_numerics,
            "fs": fs * (spf[ch] or 1),
            "units": header.units[ch] or "",
            "fmt": str(header.fmt[ch]),
            "n_samples": n,
            "n_valid": n_valid,
            "frac_nan": (n - n_valid) / n if n else math.nan,
            "duration_s": read.n_frames / fs if fs else math.nan,
            "start_s": start / fs_record if start is not None and fs_record else math.nan,
            **distribution_stats(dist, gain, int(header.baseline[ch] or 0)),
        })
    result.rows.extend(rows)
    result.bytes_read += read.bytes_read
    if bad_sums:
        files = sorted({header.file_name[header.sig_name.index(s)] for s in bad_sums})
        raise RecordError("header_data_mismatch", f"checksum of the stored samples differs from the header for "
                          f"signal(s) {bad_sums} in {', '.join(files)}", file=files[0])


def summarize_record(
    record: RecordRef, *, window_samples: int = DEFAULT_WINDOW, verify_checksum: bool = True
) -> FeatureResult:
    """Per (segment, signal) summary of one WFDB record. Defects become error rows of the
    segment they are in; the other segments keep their rows."""
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
        fs, entries = master_entries(master_path, Path(record.root))
    except RecordError as err:
        result.error(record, err.kind, err.message, "", record.header)
        return result
    start, index = 0, 0
    for name, length, problem in entries:
        if problem:
            result.error(record, "header_parse_error", problem, name, master_path.name)
            index += 1
        elif name != "~" and not (name.endswith("_layout") and not length):
            seg_header = record.directory / f"{name}.hea"
            declared = _declared_length(seg_header, Path(record.root)) if seg_header.is_file() else None
            if declared is not None and declared != length:
                _fail(result, record, name, "header_data_mismatch",
                      f"master {master_path.name} declares {length} samples, {name}.hea {declared}", f"{name}.hea")
            else:
                _segment_rows(record, name, index, start, fs, window, verify_checksum, result)
            index += 1
        start += length
    if index == 0:
        result.error(record, "zero_samples", f"master header {master_path.name} lists no segment with samples "
                     "(only gaps and layout)")
    return result


def master_entries(path: Path, root: Path | None = None) -> tuple[float, list[tuple[str, int, str]]]:
    """(frequency, [(segment name, length, problem)]) of a multi-segment header, line by line,
    so that one malformed or misdirected segment line costs only that segment (wfdb's own
    parser rejects the whole header). `problem` is empty for a usable line."""
    from steps.featurize.wfdb_api import parse_record_line as _parse_record_line, rx_segment

    from steps.featurize.headers import check_record_line

    lines = [ln.strip() for ln in header_text(path, root).splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
    if len(lines) - 1 > MAX_SEGMENTS:
        raise RecordError("limit_exceeded", f"master header {path.name} lists {len(lines) - 1} segments, more than "
                          f"{MAX_SEGMENTS}")
    try:
        check_record_line(lines[0], path.name)
        fields = _parse_record_line(lines[0])
    except RecordError:
        raise
    except Exception as err:  # noqa: BLE001
        raise RecordError("header_parse_error", f"master header {path.name}: record line does not parse: "
                          f"{type(err).__name__}: {err}") from err
    entries, seen = [], {path.stem: 1}
    for number, line in enumerate(lines[1:], start=2):
        tokens = line.split()
        match = rx_segment.match(line)
        name = tokens[0]
        length = plain_int(tokens[1]) if len(tokens) > 1 else None
        if "/" in name or name in (".", ".."):
            problem = (f"segment {name}: master {path.name} names it by a path; a segment must be a record "
                       "in the master's own folder")
        elif match is None or match.group("seg_name") != name or length is None:
            problem = f"segment {name}: line {number} of master {path.name} is not `<segment name> <length>`: {line!r}"
        elif name in seen and name != "~":
            # Nested or cyclic layouts (a master naming itself) and repeats would read a
            # segment twice, or not at all: WFDB segments are single-segment records.
            problem = (f"segment {name}: master {path.name} lists it itself (a multi-segment header)"
                       if seen[name] == 1 else f"segment {name}: listed twice by master {path.name} (line "
                       f"{seen[name]} and {number})")
        else:
            problem = ""
        seen.setdefault(name, number)
        entries.append((name, length or 0, problem))
    return float(fields.get("fs") or 0.0), entries


def _declared_length(header: Path, root: Path) -> int | None:
    try:
        text = header_text(header, root)
    except RecordError:
        return None  # reading the segment reports it
    for line in text.splitlines():
        tokens = line.split()
        if tokens and not tokens[0].startswith("#"):
            return plain_int(tokens[3]) if len(tokens) > 3 else None
    return None


def result_rows_table(rows: list[dict[str, Any]]) -> pa.Table:
    """The built-in rows as an arrow table with the fixed schema (also when there are none)."""
    return pa.Table.from_pylist(rows, schema=SCHEMA)
