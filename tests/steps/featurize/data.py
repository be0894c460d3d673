"""Generated WFDB records for the featurize and combine tests (and the benchmark).

Small records go through `wfdb.wrsamp`, so the files are what the WFDB library writes. Long
ones are written chunk by chunk with numpy plus a wfdb-written header (wrsamp would need the
whole record in memory, which is exactly what the memory test must not depend on)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Iterable

import numpy as np
import wfdb

NAN = {"80": -128, "16": -32768, "212": -2048}


def signals(n: int, n_sig: int, fmt: str, seed: int = 0, nan_runs: int = 0) -> np.ndarray:
    """Digital samples within the format's range, with `nan_runs` runs of the NaN code per signal."""
    rng = np.random.default_rng(seed)
    top = {"80": 120, "212": 2000, "16": 30000}[fmt]
    t = np.arange(n)[:, None]
    base = (np.sin(t / (7.0 + np.arange(n_sig))) * top * 0.6).astype(np.int64)
    d = np.clip(base + rng.integers(-top // 4, top // 4, size=(n, n_sig)), -top, top)
    for ch in range(n_sig):
        for _ in range(nan_runs):
            start = int(rng.integers(0, max(1, n - 20)))
            d[start : start + int(rng.integers(1, 20)), ch] = NAN[fmt]
    return d


def write_record(
    directory: Path, name: str, d: np.ndarray, fmt: str, fs: float = 125.0,
    names: Iterable[str] | None = None, units: Iterable[str] | None = None, gains: Iterable[float] | None = None,
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    n_sig = d.shape[1]
    wfdb.wrsamp(
        name, fs=fs, units=list(units or ["mV"] * n_sig), sig_name=list(names or [f"S{i}" for i in range(n_sig)]),
        d_signal=d, fmt=[fmt] * n_sig, adc_gain=list(gains or [100.0 + 7 * i for i in range(n_sig)]),
        baseline=[3 * i for i in range(n_sig)], write_dir=str(directory),
    )
    return directory / f"{name}.hea"


def write_master(directory: Path, name: str, fs: float, n_sig: int, entries: list[tuple[str, int]]) -> Path:
    """A multi-segment master header; entries are (segment name or `~` for a gap, length)."""
    total = sum(length for _, length in entries)
    lines = [f"{name}/{len(entries)} {n_sig} {fs:g} {total}"] + [f"{seg} {length}" for seg, length in entries]
    path = directory / f"{name}.hea"
    path.write_text("\n".join(lines) + "\n")
    return path


def write_layout(directory: Path, name: str, n_sig: int, names: list[str]) -> Path:
    lines = [f"{name} {n_sig} 125 0"] + [f"~ 0 100/mV 8 0 -128 0 0 {s}" for s in names]
    path = directory / f"{name}.hea"
    path.write_text("\n".join(lines) + "\n")
    return path


def write_mimic3_record(directory: Path, record: str, seed: int = 0) -> dict[str, np.ndarray]:
    """A MIMIC-III WDB record folder: master, layout, two segments around a gap, numerics."""
    directory.mkdir(parents=True, exist_ok=True)
    seg1 = signals(3000, 2, "80", seed, nan_runs=3)
    seg2 = signals(1500, 3, "80", seed + 1, nan_runs=1)
    write_record(directory, f"{record}_0001", seg1, "80", names=["II", "ABP"], units=["mV", "mmHg"])
    write_record(directory, f"{record}_0002", seg2, "80", names=["II", "PLETH", "RESP"], units=["mV", "NU", "pm"])
    write_layout(directory, f"{record}_layout", 4, ["II", "ABP", "PLETH", "RESP"])
    write_master(directory, record, 125, 4, [(f"{record}_layout", 0), ("~", 500), (f"{record}_0001", 3000),
                                             ("~", 250), (f"{record}_0002", 1500)])
    numerics = signals(40, 3, "16", seed + 2, nan_runs=1)
    write_record(directory, f"{record}n", numerics, "16", fs=1 / 60, names=["HR", "RESP", "SpO2"],
                 units=["bpm", "pm", "%"], gains=[10.0, 10.0, 10.0])
    return {f"{record}_0001": seg1, f"{record}_0002": seg2, f"{record}n": numerics}


def write_long_record(directory: Path, name: str, frames: int, n_sig: int = 8, chunk: int = 1 << 20) -> Path:
    """A format-16 record of `frames` frames written chunk by chunk (never whole in memory)."""
    directory.mkdir(parents=True, exist_ok=True)
    checksum = np.zeros(n_sig, np.int64)
    pattern = signals(chunk, n_sig, "16", seed=0)  # one chunk, repeated: generation stays cheap
    with open(directory / f"{name}.dat", "wb") as fh:
        for start in range(0, frames, chunk):
            block = pattern[: min(chunk, frames - start)]
            checksum += block.sum(axis=0)
            block.astype("<i2").tofile(fh)
    first = pattern[0]
    rec = wfdb.Record(
        record_name=name, n_sig=n_sig, fs=125, sig_len=frames, file_name=[f"{name}.dat"] * n_sig,
        fmt=["16"] * n_sig, adc_gain=[200.0] * n_sig, baseline=[0] * n_sig, units=["mV"] * n_sig,
        adc_res=[16] * n_sig, adc_zero=[0] * n_sig, init_value=[int(v) for v in first],
        checksum=[int((c + 32768) % 65536 - 32768) for c in checksum], block_size=[0] * n_sig,
        sig_name=[f"S{i}" for i in range(n_sig)],
    )
    rec.wrheader(write_dir=str(directory))
    return directory / f"{name}.hea"


def physical(d: np.ndarray, fmt: str, gain: float, baseline: int) -> np.ndarray:
    """Valid samples of one digital signal in physical units, as wfdb converts them."""
    d = np.asarray(d, np.int64)
    return (d[d != NAN[fmt]].astype(np.float64) - baseline) / gain


def watch_peak_rss(proc: subprocess.Popen) -> float:
    """Peak RSS in MB of a running child, sampled until it exits. Watched from outside:
    ru_maxrss would carry the watcher's own high-water mark across fork+exec."""
    import psutil

    watched, peak_mb = psutil.Process(proc.pid), 0.0
    while proc.poll() is None:
        try:
            peak_mb = max(peak_mb, watched.memory_info().rss / 2**20)
        except psutil.NoSuchProcess:
            break
        time.sleep(0.01)
    return peak_mb


def mean_only(record, *, scale: float = 1.0):
    """A user-style feature function: one row per record (used to test pluggability)."""
    return [{"record": record.record, "group": record.group, "bytes": record.bytes * scale}]


def always_fails(record):
    raise RuntimeError(f"cannot featurize {record.record}")
