"""Distributions of the digital values of every signal of one WFDB segment, read in bounded windows.

Each data file is read here directly, in its own format (formats.py), so a record that mixes
formats reads each file its own way and wfdb's reader is never needed for samples (it re-parses
the header and converts every window to a full int array on each call, which is several times
slower, and for format 8 it restarts the differences at every window). wfdb still parses the
headers.

What a whole-record `wfdb.rdrecord(..., smooth_frames=False)` returns is what is summarised:

- samples per frame: signal c holds `spf[c]` consecutive samples of each frame of its file;
- skew: sample t of a signal with skew s is stored in frame t + s; wfdb never reads past the
  record's length, so its last s frames are invalid (NaN) samples;
- byte offset: the file's samples start that many bytes in (for FLAC: that many samples in);
- no length in the header: as many frames as the first data file holds (wfdb's rule);
- format 8: first differences, accumulated from the header's initial value.

The checksum of a signal is the 16-bit sum of its column as stored (frames 0..length-1), not
of the skewed view.
"""

from __future__ import annotations

import math
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from steps.featurize.formats import FORMATS, Format, code_values, decode, read_bytes
from steps.featurize.histograms import (
    DenseCounter,
    Distribution,
    RangeCounter,
    RankSearch,
    bucketed_distribution,
    histogram_distribution,
    needed_ranks,
)
from steps.featurize.limits import contained
from steps.featurize.records import RecordError

KNOWN_FORMATS = set(FORMATS)
DEFAULT_WINDOW = 1 << 20
# Samples (all signals of a file together) decoded at once: a record of 2,000 signals reads
# fewer frames per window than one of 8, so a window's arrays stay a few tens of MB.
MAX_WINDOW_SAMPLES = 1 << 21
# Histogram bins per segment (int64 each): dense bins of the narrow formats, and the bins all
# range counters of a segment may hold together (each gets its share, at least MIN_RANGE_CAP).
DENSE_BUDGET = 1 << 22
RANGE_BUDGET = 1 << 21
MIN_RANGE_CAP = 1 << 10


@dataclass
class DataFile:
    """One data file of a segment and the signals stored in it, in header order."""

    name: str
    path: Path
    fmt: Format
    offset: int  # bytes (samples for FLAC) before the first frame
    channels: list[int]
    spf: list[int]
    skew: list[int]
    init: list[int]
    size: int = 0
    flac_frames: int | None = None  # samples per channel in a FLAC stream

    @property
    def tspf(self) -> int:
        return sum(self.spf)


@dataclass
class SegmentRead:
    distributions: list[Distribution]
    n_frames: int
    bytes_read: int


def _check_lists(header, name: str) -> None:
    n_sig = header.n_sig
    for attr in ("file_name", "fmt", "sig_name"):
        listed = len(getattr(header, attr) or [])
        if listed != n_sig:
            raise RecordError("header_parse_error", f"header {name}.hea declares {n_sig} signals on its record line "
                              f"but lists {listed}", file=f"{name}.hea")


def _data_files(directory: Path, header, name: str, root: Path | None = None) -> list[DataFile]:
    n_sig = header.n_sig
    fmts = [str(f) for f in header.fmt]
    unknown = sorted({f for f in fmts if f not in KNOWN_FORMATS})
    if unknown:
        raise RecordError("unknown_format", f"header {name}.hea: storage format(s) {unknown} not defined by WFDB",
                          file=f"{name}.hea")

    def field_list(attr: str, default: int) -> list[int]:
        values = list(getattr(header, attr) or [])
        values += [None] * (n_sig - len(values))
        return [default if v is None else int(v) for v in values]

    spf, skew = field_list("samps_per_frame", 1), field_list("skew", 0)
    offsets, init = field_list("byte_offset", 0), field_list("init_value", 0)
    files: dict[str, DataFile] = {}
    for ch, file_name in enumerate(header.file_name):
        f = files.get(file_name)
        if f is None:
            f = files[file_name] = DataFile(file_name, directory / file_name, FORMATS[fmts[ch]], offsets[ch], [], [], [], [])
        elif f.fmt.code != fmts[ch]:
            raise RecordError("header_parse_error", f"header {name}.hea: data file {file_name} is given formats "
                              f"{f.fmt.code} and {fmts[ch]}; WFDB stores one format per file", file=f"{name}.hea")
        f.channels.append(ch)
        f.spf.append(max(1, spf[ch]))
        f.skew.append(max(0, skew[ch]))
        f.init.append(init[ch])
    for f in files.values():
        try:
            info = os.stat(f.path)
        except (OSError, ValueError):
            raise RecordError("missing_data_file", f"data file {f.name} not found", file=f.name) from None
        if stat.S_ISDIR(info.st_mode):
            raise RecordError("missing_data_file", f"data file {f.name} is a directory, not a file", file=f.name)
        if not stat.S_ISREG(info.st_mode):  # a FIFO or a device would block or never end
            raise RecordError("missing_data_file", f"data file {f.name} is not a regular file", file=f.name)
        contained(f.path, root)
        if f.tspf > MAX_WINDOW_SAMPLES:
            raise RecordError("limit_exceeded", f"data file {f.name}: {f.tspf} samples per frame, more than the "
                              f"{MAX_WINDOW_SAMPLES} one window reads", file=f.name)
        f.size = info.st_size
        if f.fmt.flac:
            f.flac_frames = _flac_info(f)
    return list(files.values())


def _flac_info(f: DataFile) -> int:
    """Samples per channel in the FLAC stream; RecordError when it is not what the header says."""
    import soundfile

    with open(f.path, "rb") as fh:
        if fh.read(4) != b"fLaC":
            raise RecordError("read_error", f"data file {f.name} (format {f.fmt.code}) is not a FLAC stream", file=f.name)
    if len(set(f.spf)) > 1:
        raise RecordError("header_parse_error", f"signals of FLAC file {f.name} have different samples per frame "
                          f"{f.spf}; one FLAC stream has one sampling rate", file=f.name)
    try:
        info = soundfile.info(str(f.path))
    except Exception as err:  # noqa: BLE001 - libsndfile reports a corrupt stream in many ways
        raise RecordError("read_error", f"FLAC file {f.name} cannot be decoded: {err}", file=f.name) from err
    bits = {"PCM_S8": 8, "PCM_16": 16, "PCM_24": 24}.get(info.subtype)
    if bits is None or bits > f.fmt.bits:
        raise RecordError("header_data_mismatch", f"FLAC file {f.name} holds {info.subtype} samples, format "
                          f"{f.fmt.code} allows at most {f.fmt.bits} bits", file=f.name)
    if info.channels != len(f.channels):
        raise RecordError("header_data_mismatch", f"FLAC file {f.name} holds {info.channels} channels, the header "
                          f"gives it {len(f.channels)} signals", file=f.name)
    return int(info.frames)


def _frames_in(f: DataFile) -> int:
    """Frames a data file holds (wfdb's rule for a header without a length)."""
    if f.fmt.flac:
        return max(0, f.flac_frames - f.offset) // f.spf[0]
    return int((f.size - f.offset) / (f.fmt.bytes_per_sample * f.tspf))


def _check_sizes(f: DataFile, n_frames: int) -> None:
    if f.fmt.flac:
        have = f.flac_frames - f.offset
        need = n_frames * f.spf[0]
        if have < need:
            raise RecordError("truncated_data_file", f"{f.name}: {have} samples per channel, header needs {need}",
                              file=f.name)
        return
    need = f.offset + read_bytes(f.fmt, n_frames * f.tspf)
    if f.size < need:
        raise RecordError("truncated_data_file", f"{f.name}: {f.size} bytes, header needs {need}", file=f.name)
    # Writers may pad to a whole block; skewed signals may be stored past the record's end.
    slack = (max(f.skew) + 1) * math.ceil(f.fmt.bytes_per_sample * f.tspf) + f.fmt.block_bytes
    if f.size > need + slack:
        raise RecordError("header_data_mismatch", f"{f.name}: {f.size} bytes, header declares only {need}", file=f.name)


def _window_frames(f: DataFile, window: int) -> int:
    frames = max(1, min(window, MAX_WINDOW_SAMPLES // f.tspf))
    # Every window must start on a block boundary of the packed formats (2 or 3 samples).
    block = f.fmt.block_samples
    while (frames * f.tspf) % block:
        frames += 1
    return frames


def _windows(f: DataFile, n_frames: int, window: int) -> Iterator[tuple[int, list[np.ndarray]]]:
    """(first frame, one array per signal of the file) for consecutive windows of frames.

    Arrays hold codes for the narrow formats and digital values otherwise (format 8
    accumulated across windows)."""
    frames_per = _window_frames(f, window)
    if f.fmt.flac:
        yield from _flac_windows(f, n_frames, frames_per)
        return
    carry = np.asarray(f.init, np.int64)  # format 8: the value before the window's first difference
    starts = np.cumsum([0] + f.spf)
    with open(f.path, "rb") as fh:
        for f0 in range(0, n_frames, frames_per):
            frames = min(frames_per, n_frames - f0)
            n = frames * f.tspf
            fh.seek(f.offset + read_bytes(f.fmt, f0 * f.tspf))
            nbytes = read_bytes(f.fmt, n)
            raw = np.fromfile(fh, np.uint8, nbytes)
            if raw.size < nbytes:
                raise RecordError("truncated_data_file", f"{f.name}: data ends within frame {f0 + frames}", file=f.name)
            block = decode(f.fmt, raw, n).reshape(frames, f.tspf)
            cols = []
            for i, k in enumerate(f.spf):
                col = block[:, starts[i]] if k == 1 else block[:, starts[i] : starts[i + 1]].reshape(-1)
                if f.fmt.code == "8":
                    col = np.cumsum(col, dtype=np.int64) + carry[i]
                    carry[i] = col[-1]
                cols.append(col)
            yield f0, cols


def _flac_windows(f: DataFile, n_frames: int, frames_per: int) -> Iterator[tuple[int, list[np.ndarray]]]:
    import soundfile

    spf = f.spf[0]
    with soundfile.SoundFile(str(f.path)) as sf:
        # soundfile has no int8; 8- and 24-bit streams come back shifted left by 8 bits.
        dtype = "int32" if sf.subtype == "PCM_24" else "int16"
        shift = 0 if sf.subtype == "PCM_16" else 8
        sf.seek(f.offset)
        for f0 in range(0, n_frames, frames_per):
            frames = min(frames_per, n_frames - f0)
            data = sf.read(frames * spf, dtype=dtype, always_2d=True)
            if data.shape[0] < frames * spf:
                raise RecordError("truncated_data_file", f"{f.name}: FLAC stream ends within frame "
                                  f"{f0 + data.shape[0] // spf}", file=f.name)
            if shift:
                data = data.astype(np.int32) >> shift
            yield f0, [data[:, j] for j in range(data.shape[1])]


def _counter(fmt: Format, n_samples: int, dense_left: list[int], cap: int):
    bins = 1 << fmt.bits
    if fmt.codes and n_samples * 8 >= bins and dense_left[0] >= bins:
        dense_left[0] -= bins
        return DenseCounter(fmt)
    return RangeCounter(fmt.nan, cap)


def _first_pass(f: DataFile, n_frames: int, window: int, counters: list, sums: list[int]) -> None:
    for f0, cols in _windows(f, n_frames, window):
        for i, col in enumerate(cols):
            counter, k, skew = counters[i], f.spf[i], f.skew[i]
            start = max(0, skew - f0) * k  # samples of this window before the skewed signal's start
            if isinstance(counter, DenseCounter):
                counter.add(col[start:] if start else col)
                if skew:
                    sums[i] += int(code_values(f.fmt, col).sum())
                continue
            values = code_values(f.fmt, col) if f.fmt.codes else col
            if skew:
                sums[i] += int(values.sum(dtype=np.int64))
            counter.add(values[start:] if start else values)


def _refine(f: DataFile, n_frames: int, window: int, searches: dict[int, RankSearch]) -> None:
    """Further passes over the file until every bucketed signal's needed ranks are exact."""
    while any(not s.done for s in searches.values()):
        for f0, cols in _windows(f, n_frames, window):
            for i, search in searches.items():
                if search.done:
                    continue
                col = cols[i]
                start = max(0, f.skew[i] - f0) * f.spf[i]
                values = code_values(f.fmt, col) if f.fmt.codes else col.astype(np.int64)
                search.add(values[start:] if start else values)
        for search in searches.values():
            if not search.done:
                search.finish_pass()


def _file_distributions(f: DataFile, n_frames: int, window: int, n_sig: int, dense_left: list[int]) -> list[Distribution]:
    cap = max(MIN_RANGE_CAP, RANGE_BUDGET // max(1, n_sig))
    counters = [_counter(f.fmt, n_frames * k, dense_left, cap) for k in f.spf]
    sums = [0] * len(counters)
    _first_pass(f, n_frames, window, counters, sums)
    # wfdb pads a skewed signal's last `skew` frames with invalid samples (never reads past the end).
    pads = [min(skew, n_frames) * k for skew, k in zip(f.skew, f.spf)]
    searches: dict[int, RankSearch] = {}
    for i, counter in enumerate(counters):
        if isinstance(counter, RangeCounter) and not counter.exact:
            budget = max(64, RANGE_BUDGET // len(counters))
            searches[i] = RankSearch.from_buckets(counter, needed_ranks(counter.n_valid), budget)
    _refine(f, n_frames, window, searches)
    out = []
    for i, counter in enumerate(counters):
        if isinstance(counter, DenseCounter):
            out.append(histogram_distribution(counter.histogram(), f.fmt.nan, pads[i], sums[i] if f.skew[i] else None))
            continue
        # Unskewed, the column as stored is the valid values plus the NaN codes.
        stored = sums[i] if f.skew[i] else counter.total_valid + counter.n_invalid * (f.fmt.nan or 0)
        if counter.exact:
            out.append(histogram_distribution(counter.histogram(), None, counter.n_invalid + pads[i], stored))
        else:
            out.append(bucketed_distribution(counter, searches[i].found, pads[i], stored))
    return out


def segment_distributions(record_path: Path, header, window: int = DEFAULT_WINDOW,
                          root: Path | None = None) -> SegmentRead:
    """Distributions of every signal of a single-segment header (a `wfdb.Record` from rdheader),
    in channel order, with the frame count and the bytes of the data files read. With `root`,
    a data file resolving outside it is refused.

    Raises RecordError, in words naming the file, for what the header and the files say is
    wrong: unknown format, no samples, a missing, short or oversized data file."""
    name = record_path.name
    if not header.n_sig:
        raise RecordError("zero_samples", f"header {name}.hea declares no signals", file=f"{name}.hea")
    _check_lists(header, name)
    files = _data_files(record_path.parent, header, name, root)
    n_frames = header.sig_len
    if n_frames is None:
        n_frames = _frames_in(files[0])
        if n_frames == 0:
            raise RecordError("zero_samples", f"header {name}.hea gives no length and data file {files[0].name} "
                              "holds no complete frame", file=files[0].name)
    if n_frames == 0:
        raise RecordError("zero_samples", f"header {name}.hea declares zero samples", file=f"{name}.hea")
    for f in files:
        _check_sizes(f, n_frames)
    dists: list[Distribution] = [None] * header.n_sig  # type: ignore[list-item]
    dense_left = [DENSE_BUDGET]
    for f in files:
        for ch, dist in zip(f.channels, _file_distributions(f, n_frames, max(1, window), header.n_sig, dense_left)):
            dists[ch] = dist
    return SegmentRead(dists, n_frames, sum(f.size for f in files))


def checksum_ok(dist: Distribution, checksum: int | None) -> bool:
    """WFDB's checksum is the 16-bit sum of every stored sample of the signal (NaN codes included)."""
    if checksum is None:
        return True
    return (dist.stored_sum - int(checksum)) % 65536 == 0
