"""Featurize benchmark: our featurizer vs the AWS seed's method vs the time to merely read the bytes.

    .venv/bin/python benchmarks/featurize_bench.py                 # ~100 MB, quick check
    .venv/bin/python benchmarks/featurize_bench.py --size 1G       # the issue's ~1 GB run
    .venv/bin/python benchmarks/featurize_bench.py --only formats  # per-format throughput only
    .venv/bin/python benchmarks/featurize_bench.py --only memory   # peak RSS cases only

Three sections (`--only` picks some):

- formats: one record per WFDB storage format (8 signals, `--format-samples` samples in all),
  read on one core by our reader (`summarize_record`, statistics included), by
  `wfdb.rdrecord` alone (digital, and physical as the seed reads), and by `wfdb.rdrecord`
  plus the same statistics in numpy; MB/s of file bytes and samples/s.
- memory: peak RSS of `python -m steps.featurize --jobs 1` (one worker) on a 4 KB record of
  2,000 one-sample signals and on 24 h x 8 channels at 125 Hz (format 16, and format 24, whose
  values span more bins than the budget: bucketed, then a second pass).
- mixed (below): the seed comparison.

It generates a skewed dataset of plain WFDB records (a few long ones, many short ones, formats
80/16/212, NaN runs; plain `<name>.{hea,dat}` so the seed's file-name splitting finds them),
then runs each method in its own child process (same process tree, same cores, fresh workers
so peak memory is per method), one after the other on a warm page cache:

- floor: read every data file once, spread over the same number of workers (largest first);
- baseline: the seed's method: list `.dat` files, `chunks(lst, len/cpu_count)`, joblib
  `Parallel`, `wfdb.rdrecord` in physical units, pandas statistics per signal, `pd.concat`,
  `to_json`, computing the same statistics;
- ours: `steps.featurize.run.featurize`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def parse_size(text: str) -> int:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMG]?)B?", text.strip().upper())
    if not match:
        raise argparse.ArgumentTypeError(f"size like 100M or 1G, not {text!r}")
    return int(float(match.group(1)) * {"": 1, "K": 1e3, "M": 1e6, "G": 1e9}[match.group(2)])


def vm_hwm_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# ---------------------------------------------------------------------------- dataset

NAN = {"80": -128, "16": -32768, "212": -2048}
TOP = {"80": 120, "16": 20000, "212": 2000}


def _write_record(folder: Path, name: str, frames: int, n_sig: int, fmt: str, rng: np.random.Generator) -> int:
    import wfdb

    chunk = 1 << 18
    pattern = np.clip((rng.standard_normal((chunk, n_sig)) * TOP[fmt] / 3).astype(np.int64), -TOP[fmt], TOP[fmt])
    for ch in range(n_sig):  # NaN runs, as monitors write them when a lead is off
        start = int(rng.integers(0, chunk - 2000))
        pattern[start : start + int(rng.integers(10, 2000)), ch] = NAN[fmt]
    checksum = np.zeros(n_sig, np.int64)
    with open(folder / f"{name}.dat", "wb") as fh:
        for start in range(0, frames, chunk):
            block = pattern[: min(chunk, frames - start)]
            checksum += block.sum(axis=0)
            if fmt == "80":
                (block + 128).astype(np.uint8).tofile(fh)
            elif fmt == "16":
                block.astype("<i2").tofile(fh)
            else:  # 212: pairs of 12-bit samples in three bytes (chunk * n_sig is even)
                u = (block.reshape(-1) & 0xFFF).astype(np.uint16)
                if u.size % 2:
                    u = np.append(u, 0)
                a, b = u[0::2], u[1::2]
                out = np.empty((a.size, 3), np.uint8)
                out[:, 0] = a & 0xFF
                out[:, 1] = ((a >> 8) & 0x0F) | ((b >> 8) << 4)
                out[:, 2] = b & 0xFF
                raw = out.reshape(-1)
                fh.write(raw[: int(np.ceil(block.size * 1.5))].tobytes())
    wfdb.Record(
        record_name=name, n_sig=n_sig, fs=125, sig_len=frames, file_name=[f"{name}.dat"] * n_sig,
        fmt=[fmt] * n_sig, adc_gain=[100.0 + ch for ch in range(n_sig)], baseline=[ch for ch in range(n_sig)],
        units=["mV"] * n_sig, adc_res=[int(fmt[:2]) if fmt != "212" else 12] * n_sig, adc_zero=[0] * n_sig,
        init_value=[int(v) for v in pattern[0]], checksum=[int((c + 32768) % 65536 - 32768) for c in checksum],
        block_size=[0] * n_sig, sig_name=[f"S{ch}" for ch in range(n_sig)],
    ).wrheader(write_dir=str(folder))
    return (folder / f"{name}.dat").stat().st_size


def make_dataset(folder: Path, size: int, seed: int = 7) -> dict:
    """Records with lognormal sizes (a heavy tail: the largest is ~5-10 % of the total)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    n_records = max(20, int(size / 2e6))
    weights = rng.lognormal(0.0, 1.4, n_records)
    weights = np.minimum(weights, weights.sum() * 0.08)
    sizes = weights / weights.sum() * size
    total, formats = 0, ("80", "16", "212")
    for i, target in enumerate(sizes):
        fmt, n_sig = formats[i % 3], int(rng.integers(2, 9))
        frames = max(250, int(target / (n_sig * {"80": 1, "16": 2, "212": 1.5}[fmt])))
        total += _write_record(folder, f"r{i:05d}", frames, n_sig, fmt, rng)
    return {"records": n_records, "bytes": total}


# ---------------------------------------------------------------------------- methods

def _timed_read(paths: list[str]) -> dict:
    started, n = time.perf_counter(), 0
    buf = bytearray(8 << 20)
    for path in paths:
        with open(path, "rb", buffering=0) as fh:
            while k := fh.readinto(buf):
                n += k
    return {"pid": os.getpid(), "busy": time.perf_counter() - started, "bytes": n, "rss": vm_hwm_mb()}


def run_floor(data: Path, jobs: int) -> dict:
    from joblib import Parallel, delayed

    files = sorted(data.glob("*.dat"), key=lambda p: -p.stat().st_size)
    groups = [[str(p) for p in files[i::jobs]] for i in range(jobs)]  # round robin, largest first
    started = time.perf_counter()
    parts = Parallel(n_jobs=jobs)(delayed(_timed_read)(g) for g in groups)
    return _summary(parts, len(files), time.perf_counter() - started, jobs)


def _seed_chunk(files: list[str]) -> tuple:
    """The seed's worker: whole record in physical float64, pandas statistics per signal."""
    import pandas as pd
    import wfdb

    started, rows, nbytes = time.perf_counter(), [], 0
    for dat in files:
        name = dat[: -len(".dat")]
        record = wfdb.rdrecord(name)
        nbytes += os.path.getsize(dat)
        frame = pd.DataFrame(record.p_signal, columns=record.sig_name)
        for signal in frame.columns:
            column = frame[signal]
            q = column.quantile([0.05, 0.25, 0.5, 0.75, 0.95])
            rows.append(pd.DataFrame([{
                "record": os.path.basename(name), "signal": signal, "n_samples": len(column),
                "n_valid": int(column.count()), "frac_nan": float(column.isna().mean()),
                "mean": column.mean(), "std": column.std(ddof=0), "min": column.min(), "max": column.max(),
                "p05": q[0.05], "p25": q[0.25], "p50": q[0.5], "p75": q[0.75], "p95": q[0.95],
            }]))
    part = pd.concat(rows) if rows else pd.DataFrame()
    return part, {"pid": os.getpid(), "busy": time.perf_counter() - started, "bytes": nbytes, "rss": vm_hwm_mb()}


def run_baseline(data: Path, jobs: int, out: Path) -> dict:
    import pandas as pd
    from joblib import Parallel, delayed

    def chunks(lst, n):
        for i in range(0, len(lst), n):
            yield lst[i : i + n]

    files = sorted(str(p) for p in data.iterdir() if p.name.endswith(".dat"))
    started = time.perf_counter()
    results = Parallel(n_jobs=jobs)(delayed(_seed_chunk)(c) for c in chunks(files, max(1, len(files) // jobs)))
    frame = pd.concat([r[0] for r in results])
    frame.to_json(out / "baseline.json", orient="records")
    return _summary([r[1] for r in results], len(files), time.perf_counter() - started, jobs)


def run_ours(data: Path, jobs: int, out: Path) -> dict:
    from steps.featurize.run import featurize

    started = time.perf_counter()
    report = featurize(data, out, jobs=jobs)
    seconds = time.perf_counter() - started
    parts = [{"pid": w["pid"], "busy": w["busy_s"], "bytes": w["bytes"], "rss": w["peak_rss_mb"]} for w in report["workers"]]
    summary = _summary(parts, report["records_total"], seconds, jobs)
    summary["records_failed"] = report["records_failed"]
    return summary


def _summary(parts: list[dict], records: int, seconds: float, jobs: int) -> dict:
    busy: dict[int, float] = {}
    for part in parts:
        busy[part["pid"]] = busy.get(part["pid"], 0.0) + part["busy"]
    loads = list(busy.values()) + [0.0] * max(0, jobs - len(busy))
    nbytes = sum(p["bytes"] for p in parts)
    return {
        "seconds": seconds, "records": records, "bytes": nbytes,
        "records_per_s": records / seconds, "mb_per_s": nbytes / 1e6 / seconds,
        "peak_rss_mb_per_worker": max(p["rss"] for p in parts),
        "balance_efficiency": (sum(loads) / len(loads)) / max(loads) if max(loads) > 0 else 1.0,
    }


def agreement(out: Path) -> float:
    """Largest relative difference between our statistics and the baseline's, all rows."""
    import pandas as pd

    ours = pd.read_parquet(out / "ours" / "features.parquet").set_index(["record", "signal"])
    base = pd.read_json(out / "baseline" / "baseline.json", orient="records").set_index(["record", "signal"])
    cols = ["mean", "std", "min", "max", "p05", "p25", "p50", "p75", "p95", "n_valid"]
    joined = ours[cols].join(base[cols], rsuffix="_b", how="inner")
    assert len(joined) == len(ours) == len(base), (len(joined), len(ours), len(base))
    worst = 0.0
    for c in cols:
        a, b = joined[c].to_numpy(float), joined[f"{c}_b"].to_numpy(float)
        worst = max(worst, float(np.nanmax(np.abs(a - b) / np.maximum(1e-9, np.abs(b)))))
    return worst


# ---------------------------------------------------------------------------- driver

def child(method: str, data: Path, jobs: int, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    result = {"floor": lambda: run_floor(data, jobs), "baseline": lambda: run_baseline(data, jobs, out),
              "ours": lambda: run_ours(data, jobs, out)}[method]()
    print(json.dumps(result))


# ---------------------------------------------------------------------------- formats

def format_record(folder: Path, fmt: str, n_samples: int, span_bits: int | None = None, seed: int = 3) -> tuple[str, int]:
    """One 8-signal record of about `n_samples` samples in `fmt`, Gaussian values over the
    format's range (or over 2**span_bits values); returns (record path, bytes)."""
    import wfdb

    from tests.steps.featurize import corpus

    folder.mkdir(parents=True, exist_ok=True)
    n_sig, frames = 8, n_samples // 8
    rng = np.random.default_rng(seed)
    bits = corpus.BITS[fmt]
    if fmt == "8":  # a random walk: first differences fit in one byte
        d = np.cumsum(rng.integers(-20, 21, (frames, n_sig)), axis=0)
    else:
        top = (1 << ((span_bits or bits) - 1)) - 1
        d = np.clip(rng.standard_normal((frames, n_sig)) * top / 4, -top, top).astype(np.int64)
        d[1000:1500, 2] = corpus.nan_code(fmt)
    name = f"f{fmt}"
    if fmt in ("80", "16", "24", "32", "508", "516", "524"):
        wfdb.wrsamp(name, fs=125, units=["mV"] * n_sig, sig_name=[f"S{c}" for c in range(n_sig)], d_signal=d,
                    fmt=[fmt] * n_sig, adc_gain=[200.0] * n_sig, baseline=[0] * n_sig, write_dir=str(folder))
    else:
        sigs = [corpus.Signal(f"S{c}", fmt, d[:, c]) for c in range(n_sig)]
        corpus.write_record(folder, name, sigs, fs=125)
    return str(folder / name), (folder / f"{name}.dat").stat().st_size


def _best(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def wfdb_and_numpy(path: str) -> None:
    """The same statistics the way the seed gets them: wfdb's whole read, then numpy."""
    import wfdb

    signal = wfdb.rdrecord(path).p_signal
    for c in range(signal.shape[1]):
        v = signal[:, c]
        v = v[~np.isnan(v)]
        v.mean(), v.std(), v.min(), v.max(), np.percentile(v, [5, 25, 50, 75, 95])


# (format, span in bits or None for the format's whole range): the wide formats twice, over a
# 17-bit span (what a 24-bit ECG front end uses: +-65 mV at 1 uV) and over their whole range,
# where the values outnumber the histogram budget and a second pass finds the percentiles.
FORMAT_CASES = [("8", None), ("16", None), ("24", 17), ("24", None), ("32", 17), ("32", None), ("61", None),
                ("80", None), ("160", None), ("212", None), ("310", None), ("311", None), ("508", None),
                ("516", None), ("524", 17), ("524", None)]


def run_formats(work: Path, n_samples: int) -> None:
    import wfdb

    from steps.featurize.discovery import discover_records
    from steps.featurize.summary import summarize_record

    print(f"per-format throughput, one core, 8 signals, {n_samples / 1e6:.0f} M samples per record, best of 3 "
          "(wfdb + numpy: best of 2); MB/s of file bytes")
    print(f"{'format':>6} {'span':>5} {'MB':>5} {'ours MB/s':>9} {'Msamp/s':>8} {'wfdb digital':>12} "
          f"{'wfdb physical':>13} {'wfdb+numpy':>10} {'vs physical':>11} {'vs +numpy':>9}")
    for fmt, span in FORMAT_CASES:
        path, nbytes = format_record(work / f"fmt{fmt}-{span or 'full'}", fmt, n_samples, span)
        (ref,) = discover_records(Path(path).parent)
        result = summarize_record(ref)
        assert not result.errors, result.errors
        ours = _best(lambda: summarize_record(ref))
        try:
            digital_text = f"{nbytes / 1e6 / _best(lambda: wfdb.rdrecord(path, physical=False)):12.0f}"
        except Exception as err:  # noqa: BLE001 - wfdb 4.3.1 cannot read format 61 digitally
            digital_text = f"{type(err).__name__:>12}"
        physical = _best(lambda: wfdb.rdrecord(path))
        with_stats = _best(lambda: wfdb_and_numpy(path), repeat=2)
        print(f"{fmt:>6} {span or 'full':>5} {nbytes / 1e6:5.1f} {nbytes / 1e6 / ours:9.0f} {n_samples / 1e6 / ours:8.0f} "
              f"{digital_text} {nbytes / 1e6 / physical:13.0f} {nbytes / 1e6 / with_stats:10.0f} "
              f"{physical / ours:10.1f}x {with_stats / ours:8.1f}x")


# ---------------------------------------------------------------------------- memory

def _peak_rss(input_dir: Path, out: Path) -> tuple[float, float, dict]:
    """(peak RSS watched from outside MB, the report's VmHWM MB, report) of one featurize run."""
    from tests.steps.featurize_data import watch_peak_rss

    proc = subprocess.Popen([sys.executable, "-m", "steps.featurize", "--input", str(input_dir), "--output",
                             str(out), "--jobs", "1"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = watch_peak_rss(proc)
    if proc.wait():
        raise RuntimeError(proc.stderr.read().decode())
    report = json.loads((out / "report.json").read_text())
    return peak, report["peak_rss_mb_per_worker"], report


def run_memory(work: Path) -> None:
    from tests.steps import featurize_data
    from tests.steps.featurize import corpus

    cases = []
    wide = work / "mem-wide"
    corpus.write_record(wide, "wide", [corpus.Signal(f"S{c}", "16", np.array([c - 1000])) for c in range(2000)])
    cases.append(("2,000 one-sample signals, format 16", wide))
    day = work / "mem-day16"
    featurize_data.write_long_record(day, "day", frames=24 * 3600 * 125)
    cases.append(("24 h x 8 channels, format 16", day))
    day24 = work / "mem-day24"
    day24.mkdir(parents=True, exist_ok=True)
    frames, chunk = 24 * 3600 * 125, 1 << 20
    rng = np.random.default_rng(5)
    pattern = np.clip(rng.standard_normal((chunk, 8)) * 2**20, -(2**23) + 1, 2**23 - 1).astype(np.int64)
    sums = np.zeros(8, np.int64)
    with open(day24 / "day.dat", "wb") as fh:
        for start in range(0, frames, chunk):
            block = pattern[: min(chunk, frames - start)]
            sums += block.sum(axis=0)
            fh.write(corpus.encode("24", [block[:, c] for c in range(8)], [1] * 8))
    lines = [f"day 8 125 {frames}"] + [f"day.dat 24 200/mV 24 0 {pattern[0, c]} {(int(sums[c]) + 32768) % 65536 - 32768}"
                                       f" 0 S{c}" for c in range(8)]
    (day24 / "day.hea").write_text("\n".join(lines) + "\n")
    cases.append(("24 h x 8 channels, format 24 (two passes)", day24))
    print(f"{'memory case':40} {'file MB':>8} {'seconds':>8} {'peak RSS MB (watched)':>22} {'VmHWM MB (report)':>18}")
    for label, folder in cases:
        size = sum(p.stat().st_size for p in folder.glob("*.dat"))
        started = time.perf_counter()
        peak, hwm, report = _peak_rss(folder, work / f"{folder.name}-out")
        assert report["records_ok"] == 1, report
        print(f"{label:40} {size / 1e6:8.1f} {time.perf_counter() - started:8.1f} {peak:22.0f} {hwm:18.0f}")


def run_mixed(work: Path, size: int, jobs: int) -> int:
    """The seed comparison: floor, baseline and ours, each in its own child process."""
    data = work / "data"
    started = time.perf_counter()
    print(f"\nmixed run: {size / 1e9:.1f} GB of formats 80/16/212 vs the seed's method and the read floor")
    info = make_dataset(data, size)
    print(f"dataset: {info['records']} records, {info['bytes'] / 1e6:.0f} MB in {data} "
          f"(generated in {time.perf_counter() - started:.0f} s); jobs={jobs}")
    results = {}
    for method in ("floor", "floor", "baseline", "ours"):  # first floor pass warms the page cache
        proc = subprocess.run([sys.executable, __file__, "--jobs", str(jobs), "--child", method, str(data),
                               str(work / method)], capture_output=True, text=True, cwd=ROOT)
        if proc.returncode:
            print(proc.stderr, file=sys.stderr)
            return 1
        results[method] = json.loads(proc.stdout.strip().splitlines()[-1])
    floor = results["floor"]["seconds"]
    print(f"{'method':9} {'seconds':>8} {'records/s':>10} {'MB/s':>8} {'peak RSS/worker MB':>19} "
          f"{'balance':>8} {'x floor time':>12}")
    for method in ("floor", "baseline", "ours"):
        r = results[method]
        print(f"{method:9} {r['seconds']:8.2f} {r['records_per_s']:10.1f} {r['mb_per_s']:8.1f} "
              f"{r['peak_rss_mb_per_worker']:19.0f} {r['balance_efficiency']:8.2f} {r['seconds'] / floor:12.2f}")
    speedup = results["baseline"]["seconds"] / results["ours"]["seconds"]
    print(f"ours vs baseline throughput: {speedup:.2f}x; ours reaches {floor / results['ours']['seconds']:.0%} "
          f"of the read floor's speed; statistics agree with the baseline to {agreement(work):.1e} (relative)")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=parse_size, default=parse_size("100M"), help="Bytes of samples to generate "
                        "(e.g. 100M, 1G). Default 100M.")
    parser.add_argument("--jobs", type=int, default=os.cpu_count(), help="Workers for every method (default: vCPUs).")
    parser.add_argument("--workdir", type=Path, default=None, help="Where to generate (default: a temporary folder).")
    parser.add_argument("--child", nargs=3, metavar=("METHOD", "DATA", "OUT"), help=argparse.SUPPRESS)
    parser.add_argument("--only", nargs="+", choices=("formats", "memory", "mixed"), default=("formats", "memory", "mixed"),
                        help="Sections to run (default: all).")
    parser.add_argument("--format-samples", type=float, default=8e6, help="Samples per format record (default 8e6).")
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]), args.jobs, Path(args.child[2]))
        return 0
    work = args.workdir or Path(tempfile.mkdtemp(prefix="featurize-bench-"))
    print(f"load before: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} (1/5/15 min), "
          f"{os.cpu_count()} vCPUs; work folder {work}")
    code = 0
    if "formats" in args.only:
        run_formats(work, int(args.format_samples))
    if "memory" in args.only:
        run_memory(work)
    if "mixed" in args.only:
        code = run_mixed(work, args.size, args.jobs)
    print(f"load after: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} (1/5/15 min)")
    return code


if __name__ == "__main__":
    sys.exit(main())
