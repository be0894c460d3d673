"""Histograms of the digital sample values of one WFDB segment, read in bounded windows.

WFDB samples are integers, so a histogram of digital values is a lossless summary of a signal's
distribution: exact mean, std, min, max and percentiles follow from it in one pass, with memory
independent of the record length.

For the formats MIMIC uses (80, 16, 212; also 61 and 160) the data file is read here directly,
window by window, and each channel is histogrammed straight from the raw bytes (`np.bincount`
over a strided view): no float conversion, no copy of the whole record. wfdb's own reader
re-parses the header and converts every window to an int array on each call, which is several
times slower; it is the fallback for every other format and for skewed or multi-rate signals.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from steps.featurize.records import RecordError

# Formats defined by WFDB (signal(5)); anything else in a header is an unknown format.
KNOWN_FORMATS = {"8", "16", "24", "32", "61", "80", "160", "212", "310", "311", "508", "516", "524"}
BYTES_PER_SAMPLE = {"8": 1, "16": 2, "24": 3, "32": 4, "61": 2, "80": 1, "160": 2, "212": 1.5, "310": 4 / 3, "311": 4 / 3}
# Digital value WFDB stores for a missing sample (physical NaN). Format 8 stores differences: none.
INVALID_VALUE = {
    "80": -(2**7), "508": -(2**7), "310": -(2**9), "311": -(2**9), "212": -(2**11),
    "16": -(2**15), "61": -(2**15), "160": -(2**15), "516": -(2**15),
    "24": -(2**23), "524": -(2**23), "32": -(2**31),
}
FAST_FORMATS = {"80", "16", "61", "160", "212"}
DEFAULT_WINDOW = 1 << 20


@dataclass
class Histogram:
    """Sorted distinct digital values and how often each occurs (NaN code included)."""

    values: np.ndarray
    counts: np.ndarray

    @property
    def n(self) -> int:
        return int(self.counts.sum())


def _signed(idx: np.ndarray, bits: int) -> np.ndarray:
    half = 1 << (bits - 1)
    return np.where(idx >= half, idx - (1 << bits), idx)


def _dense_to_hist(dense: np.ndarray, fmt: str) -> Histogram:
    idx = np.flatnonzero(dense).astype(np.int64)
    if fmt == "80":
        values = idx - 128  # offset binary
    elif fmt == "160":
        values = idx - 32768
    elif fmt == "212":
        values = _signed(idx, 12)
    else:
        values = _signed(idx, 16)
    order = np.argsort(values, kind="stable")
    return Histogram(values[order], dense[idx][order].astype(np.int64))


def _merge(hist: Histogram | None, values: np.ndarray, counts: np.ndarray) -> Histogram:
    if hist is not None:
        values = np.concatenate([hist.values, values])
        counts = np.concatenate([hist.counts, counts])
    uniq, inverse = np.unique(values, return_inverse=True)
    return Histogram(uniq.astype(np.int64), np.bincount(inverse, weights=counts).astype(np.int64))


def _decode_212(raw: np.ndarray, n_samples: int) -> np.ndarray:
    # Two 12-bit samples in three bytes; the low nibble of byte 1 holds sample 0's high bits.
    pad = (-raw.size) % 3
    if pad:
        raw = np.concatenate([raw, np.zeros(pad, np.uint8)])
    triplets = raw.reshape(-1, 3).astype(np.uint16)
    out = np.empty(triplets.shape[0] * 2, np.uint16)
    out[0::2] = triplets[:, 0] | ((triplets[:, 1] & 0x0F) << 8)
    out[1::2] = triplets[:, 2] | ((triplets[:, 1] & 0xF0) << 4)
    return out[:n_samples]


def expected_bytes(fmt: str, n_samples_total: int, byte_offset: int) -> int | None:
    per = BYTES_PER_SAMPLE.get(fmt)
    return None if per is None else byte_offset + math.ceil(n_samples_total * per)


def _fast_file(path: Path, fmt: str, n_sig: int, n_frames: int, byte_offset: int, window: int) -> tuple[list[Histogram], int]:
    bins = {"80": 256, "212": 4096}.get(fmt, 65536)
    dense = np.zeros((n_sig, bins), np.int64)
    window = max(2, window - window % 2)  # even frame count keeps 212 windows on 3-byte boundaries
    bytes_read = 0
    with open(path, "rb") as fh:
        for start in range(0, n_frames, window):
            frames = min(window, n_frames - start)
            count = frames * n_sig
            if fmt == "212":
                fh.seek(byte_offset + start * n_sig * 3 // 2)
                raw = np.fromfile(fh, np.uint8, math.ceil(count * 1.5))
                bytes_read += raw.size
                block = _decode_212(raw, count)
            elif fmt == "80":
                fh.seek(byte_offset + start * n_sig)
                block = np.fromfile(fh, np.uint8, count)
                bytes_read += block.size
            else:
                fh.seek(byte_offset + start * n_sig * 2)
                block = np.fromfile(fh, ">u2" if fmt == "61" else "<u2", count)
                bytes_read += block.size * 2
            if block.size < count:
                raise RecordError("truncated_data_file", f"{path.name}: data ends at frame {start + block.size // n_sig}")
            block = block.reshape(frames, n_sig)
            for ch in range(n_sig):
                dense[ch] += np.bincount(block[:, ch], minlength=bins)
    return [_dense_to_hist(dense[ch], fmt) for ch in range(n_sig)], bytes_read


def _wfdb_record(record_path: Path, n_frames: int, window: int, n_sig: int) -> tuple[list[Histogram], int]:
    import wfdb

    hists: list[Histogram | None] = [None] * n_sig
    bytes_read = 0
    for start in range(0, n_frames, window):
        stop = min(n_frames, start + window)
        rec = wfdb.rdrecord(str(record_path), sampfrom=start, sampto=stop, physical=False, smooth_frames=False)
        for ch, samples in enumerate(rec.e_d_signal):
            values, counts = np.unique(np.asarray(samples, np.int64), return_counts=True)
            hists[ch] = _merge(hists[ch], values, counts)
            bytes_read += samples.size * samples.itemsize
    return [h if h is not None else Histogram(np.zeros(0, np.int64), np.zeros(0, np.int64)) for h in hists], bytes_read


def segment_histograms(record_path: Path, header, window: int = DEFAULT_WINDOW) -> tuple[list[Histogram], int, int]:
    """Histograms of every signal of a single-segment header (a `wfdb.Record` from rdheader).

    Returns (histograms in channel order, frames, bytes read). Raises RecordError for what the
    header and the files say is wrong: unknown format, zero samples, a missing, short or
    oversized data file."""
    directory = record_path.parent
    n_sig = header.n_sig or 0
    if n_sig == 0:
        raise RecordError("zero_samples", "header declares no signals")
    fmts = [str(f) for f in header.fmt]
    unknown = sorted({f for f in fmts if f not in KNOWN_FORMATS})
    if unknown:
        raise RecordError("unknown_format", f"storage format(s) {unknown} not defined by WFDB")
    spf = [s or 1 for s in (header.samps_per_frame or [1] * n_sig)]
    skew = [s or 0 for s in (header.skew or [0] * n_sig)]
    offsets = [b or 0 for b in (header.byte_offset or [0] * n_sig)]
    files: dict[str, list[int]] = {}
    for ch, name in enumerate(header.file_name):
        files.setdefault(name, []).append(ch)
    sizes: dict[str, int] = {}
    for name in files:
        path = directory / name
        if not path.is_file():
            raise RecordError("missing_data_file", f"data file {name} not found", file=name)
        sizes[name] = os.path.getsize(path)
    n_frames = header.sig_len
    if n_frames is None:
        # WFDB: an omitted length means "as many frames as the data file holds".
        name, chans = next(iter(files.items()))
        per = BYTES_PER_SAMPLE.get(fmts[chans[0]])
        n_frames = int((sizes[name] - offsets[chans[0]]) // (per * sum(spf[c] for c in chans))) if per else 0
    if n_frames == 0:
        raise RecordError("zero_samples", "header declares zero samples")
    for name, chans in files.items():
        need = expected_bytes(fmts[chans[0]], n_frames * sum(spf[c] for c in chans), offsets[chans[0]])
        if need is None:
            continue
        if sizes[name] < need:
            raise RecordError("truncated_data_file", f"{name}: {sizes[name]} bytes, header needs {need}", file=name)
        frame_bytes = math.ceil(BYTES_PER_SAMPLE[fmts[chans[0]]] * sum(spf[c] for c in chans))
        if sizes[name] > need + frame_bytes:
            raise RecordError(
                "header_data_mismatch", f"{name}: {sizes[name]} bytes, header declares only {need}", file=name
            )
    fast = all(
        len({fmts[c] for c in chans}) == 1 and fmts[chans[0]] in FAST_FORMATS
        and all(spf[c] == 1 and skew[c] == 0 for c in chans)
        for chans in files.values()
    )
    if not fast:
        hists, bytes_read = _wfdb_record(record_path, n_frames, window, n_sig)
        return hists, n_frames, bytes_read
    hists: list[Histogram] = [None] * n_sig  # type: ignore[list-item]
    bytes_read = 0
    for name, chans in files.items():
        file_hists, nbytes = _fast_file(directory / name, fmts[chans[0]], len(chans), n_frames, offsets[chans[0]], window)
        bytes_read += nbytes
        for ch, hist in zip(chans, file_hists):
            hists[ch] = hist
    return hists, n_frames, bytes_read


def checksum_ok(hist: Histogram, checksum: int | None) -> bool:
    """WFDB's checksum is the 16-bit sum of every sample of the signal (NaN codes included)."""
    if checksum is None:
        return True
    # Reduced mod 2**16 first, every product is below 2**32: the int64 sum cannot overflow.
    total = int(((hist.values % 65536) * (hist.counts % 65536)).sum())
    return (total - int(checksum)) % 65536 == 0
