"""Incremental runs through `deploy.py local`: what a run costs after 1 % of the records were
added and 1 % changed, after 1 % were deleted, and when nothing changed, against the full run.

    .venv/bin/python benchmarks/incremental_bench.py [--records 6400] [--shards 64] [--mb 0.05]
                                                     [--read-mode download|stream]

It generates `--records` WFDB records (wfdb.wrsamp, 8 channels, sizes spread around `--mb`
MB), labels them in SQLite, and runs Reconcile -> Featurize (`macroshards: auto`, the target
shard size chosen so Reconcile makes exactly `--shards` shards) -> Combine on local storage.
For each run it prints, against the full run: Featurize jobs started, records featurized,
bytes staged (download: measured in the jobs' sandbox input folders) or fetched (stream: the
jobs' reports), Featurize CPU-seconds (each job's process and workers, from its report) and
wall time; and beside them the issue's targets (issue 21): after a change, jobs <=
ceil(changed bytes / target shard size) + 1, bytes staged or fetched <= 1.1 x the changed
bytes, CPU <= 1.1 x the changed records' share of the full run's; unchanged: 0 jobs. Reconcile plans
tonight's work from the record cache (steps/work.py): "cached" is the folders it found there.
A benchmark, not a test: quote `uptime` with it.
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BUCKET = "bench"


def write_record(folder: Path, name: str, samples: int, version: int = 0) -> None:
    """A valid record whose content depends on (name, version): a new version is a real change
    (with its checksums), not a corrupted file."""
    import wfdb

    rng = np.random.default_rng([int.from_bytes(name.encode(), "little") % (2**32), version])
    folder.mkdir(parents=True, exist_ok=True)
    t = np.arange(samples)[:, None] / 125.0
    signal = 20 * np.sin(2 * np.pi * rng.uniform(0.5, 2, 8) * t) + rng.normal(0, 1, (samples, 8))  # within fmt 16
    wfdb.wrsamp(name, fs=125, units=["mV"] * 8, sig_name=[f"ch{i}" for i in range(8)], p_signal=signal,
                fmt=["16"] * 8, adc_gain=[200.0] * 8, baseline=[0] * 8, write_dir=str(folder))


def generate(root: Path, records: int, mb: float, seed: int) -> dict[str, int]:
    """`records` records of about `mb` MB (0.25x to 1.75x), labelled a/b; their .dat sizes."""
    rng = np.random.default_rng(seed)
    raw = root / "s3" / BUCKET / "raw"
    sizes = {}
    for i in range(records):
        rid = f"r{i:05d}"
        samples = int(mb * 1e6 / 16 * rng.uniform(0.25, 1.75))  # 8 channels x 2 bytes
        write_record(raw / rid, rid, samples)
        sizes[rid] = samples * 16
    with sqlite3.connect(root / "s3" / BUCKET / "labels.sqlite") as db:
        db.execute("CREATE TABLE labels (artifact_id TEXT, label TEXT)")
        db.executemany("INSERT INTO labels VALUES (?, ?)", [(r, "ab"[i % 2]) for i, r in enumerate(sizes)])
    return sizes


def config(root: Path, shards: int, target: int, read_mode: str) -> Path:
    data = yaml.safe_load((ROOT / "config" / "example.yaml").read_text())
    data["pipeline"]["name"] = "incremental-bench"
    data["aws"]["bucket"] = BUCKET
    data["parameters"]["input_uri"] = f"s3://{BUCKET}/raw"
    data["parameters"]["experiment_name"] = "bench"
    data["stages"]["reconcile"]["labels"] = {"sqlite_uri": f"s3://{BUCKET}/labels.sqlite",
                                             "query": "SELECT artifact_id, label FROM labels"}
    data["stages"]["reconcile"]["key_pattern"] = "{artifact_id}/{file}"
    data["stages"]["reconcile"]["files_from_prod"] = ["*.hea", "*.dat"]
    data["stages"]["reconcile"]["featurize_reads"] = "production"  # no copy: the benchmark is about Featurize
    data["stages"]["featurize"]["macroshards"] = "auto"
    data["stages"]["featurize"]["target_shard_size"] = target  # so that the count is `shards` (a power of two)
    data["stages"]["featurize"]["max_concurrency"] = 50
    data["stages"]["featurize"]["read_mode"] = read_mode
    data["stages"]["featurize"]["max_error_fraction"] = 0.0
    del data["stages"]["encode"]
    data["schedules"], data["local"] = [], {}
    path = root / "bench.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def last_execution(workdir: Path) -> dict:
    records = [json.loads(p.read_text()) for p in (workdir / "executions").glob("*/execution.json")]
    return max(records, key=lambda r: (r["Started"], r["ExecutionId"]))


def _size_under(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) if folder.is_dir() else 0


def measure(workdir: Path, cfg: Path, label: str) -> dict:
    from pipeline.cli import main

    began = time.monotonic()
    code = main(["local", "--config", str(cfg), "--workdir", str(workdir)])
    wall = time.monotonic() - began
    if code != 0:
        raise SystemExit(f"{label}: deploy.py local exited {code}")
    execution = last_execution(workdir)
    ran = {n: s for n, s in execution["Steps"].items() if n.startswith("Featurize") and s["State"] == "Succeeded"
           and "features" in (s.get("Outputs") or {})}
    reports = [json.loads(Path(s["Outputs"]["features"].replace("s3://", str(workdir / "s3") + "/"),
                               ).joinpath("report.json").read_text()) for s in ran.values()]
    jobs = workdir / "executions" / execution["ExecutionId"] / "jobs"
    staged = sum(_size_under(jobs / n / "algo-1" / "processing" / "input" / "data") for n in ran)
    fetched = sum(r.get("bytes_fetched", 0) + r.get("bytes_headers_fetched", 0) for r in reports)
    planned = json.loads(Path(execution["Steps"]["Reconcile"]["Outputs"]["reconcile"].replace(
        "s3://", str(workdir / "s3") + "/")).joinpath("report.json").read_text())
    return {"run": label, "jobs": len(ran), "featurized": sum(r["records_featurized"] for r in reports),
            "reused": planned["folders_cached"], "moved": staged + fetched,
            "cpu_s": sum(r.get("cpu_seconds", 0.0) for r in reports), "wall_s": wall}


def record_bytes(raw: Path, rid: str) -> int:
    return _size_under(raw / rid)


def greedy_assign(sizes: dict[str, int], n: int) -> dict[str, int]:
    """Largest first onto the lightest shard: the best balance by bytes, but not stable (what the
    stable assignment is compared with; not shipped in the job bundle)."""
    heap = [(0, i) for i in range(n)]
    out: dict[str, int] = {}
    for aid in sorted(sizes, key=lambda a: (-sizes[a], a)):
        load, index = heapq.heappop(heap)
        out[aid] = index
        heapq.heappush(heap, (load + sizes[aid], index))
    return out


def balance(sizes: dict[str, int], shards: int) -> tuple[float, float]:
    """Mean over max shard bytes, for the stable (hash) and the greedy (largest-first) assignment."""
    from steps.reconcile.shards import assign_shards

    out = []
    for assign in (assign_shards, greedy_assign):
        load = [0] * shards
        for aid, index in assign(sizes, shards).items():
            load[index] += sizes[aid]
        out.append(sum(load) / shards / max(load))
    return out[0], out[1]


def report(rows: list[dict], target: int, read_mode: str, records: int, total: int, shards: int) -> str:
    """The table: each run against the full run, the issue's target beside each figure."""
    full = rows[0]
    moved = "staged" if read_mode == "download" else "fetched"
    lines = [f"\n{shards} shards, {records} records, {total / 1e9:.3f} GB, target shard size {target / 1e6:.2f} MB, "
             f"read_mode {read_mode}",
             f"{'run':<14} {'jobs':>5} {'target':>6} {'featurized':>10} {'cached':>7} {'MB ' + moved:>11} "
             f"{'/full':>6} {'target MB':>9} {'CPU s':>7} {'/full':>6} {'target':>6} {'wall s':>7} {'/full':>6}"]
    for r in rows:
        changed = r["changed_bytes"]
        # A deletion is a change of 0 bytes (one job allowed); unchanged data starts none.
        target_jobs = "-" if r is full else "0" if r["run"] == "unchanged" else str(math.ceil(changed / target) + 1)
        target_mb = "-" if r is full else f"{1.1 * changed / 1e6:.2f}"
        target_cpu = "-" if r is full else f"{1.1 * r['changed_records'] / records:.1%}"
        lines.append(f"{r['run']:<14} {r['jobs']:>5} {target_jobs:>6} {r['featurized']:>10} {r['reused']:>7} "
                     f"{r['moved'] / 1e6:>11.2f} {r['moved'] / max(full['moved'], 1):>6.1%} {target_mb:>9} "
                     f"{r['cpu_s']:>7.1f} {r['cpu_s'] / max(full['cpu_s'], 1e-9):>6.1%} {target_cpu:>6} "
                     f"{r['wall_s']:>7.1f} {r['wall_s'] / full['wall_s']:>6.1%}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=6400)
    ap.add_argument("--shards", type=int, default=64, help="a power of two (macroshards: auto makes one)")
    ap.add_argument("--mb", type=float, default=0.05, help="mean record size in MB")
    ap.add_argument("--read-mode", choices=["download", "stream"], default="download")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", help="folder to keep the data and workdir in (default: a temp folder)")
    ap.add_argument("--reuse", action="store_true", help="with --keep: reuse the records generated there before "
                    "(the pipeline's state is reset; the records this run changes are restored first)")
    args = ap.parse_args()
    root = Path(args.keep or tempfile.mkdtemp(prefix="wavepipe-incremental-"))
    print(f"load before: {os.getloadavg()}; data in {root}", flush=True)
    t0 = time.monotonic()
    raw = root / "s3" / BUCKET / "raw"
    if args.reuse and raw.is_dir():
        for name in ("executions", "cache"):
            shutil.rmtree(root / name, ignore_errors=True)
        shutil.rmtree(root / "s3" / BUCKET / "wavepipe", ignore_errors=True)
        for extra in raw.glob("n*"):
            shutil.rmtree(extra)
        with sqlite3.connect(root / "s3" / BUCKET / "labels.sqlite") as db:
            db.execute("DELETE FROM labels WHERE artifact_id LIKE 'n%'")
        sizes = {p.name: (p / f"{p.name}.dat").stat().st_size for p in raw.iterdir()}
    else:
        sizes = generate(root, args.records, args.mb, args.seed)
    print(f"{len(sizes)} records, {sum(sizes.values()) / 1e9:.2f} GB ({time.monotonic() - t0:.0f} s)", flush=True)
    total = sum(record_bytes(raw, r) for r in sizes)
    # auto rounds total / target up to a power of two: 5 % over total / shards keeps the count at
    # `shards` with the 1 % added.
    target = int(total / args.shards * 1.05)
    cfg = config(root, args.shards, target, args.read_mode)
    rng = np.random.default_rng(args.seed + 1)
    k = max(1, len(sizes) // 100)
    changed = [str(r) for r in rng.choice(sorted(sizes), k, replace=False)]
    for rid in changed:  # as generated (a reused folder may hold an earlier run's change)
        write_record(raw / rid, rid, sizes[rid] // 16)
    records = len(sizes)
    rows = [measure(root, cfg, "full")]
    rows[0]["changed_bytes"], rows[0]["changed_records"] = total, records
    for rid in changed:  # change 1 %: a new version of each record
        write_record(raw / rid, rid, sizes[rid] // 16, version=1)
    with sqlite3.connect(root / "s3" / BUCKET / "labels.sqlite") as db:  # and add 1 %
        for i in range(k):
            rid = f"n{i:05d}"
            write_record(raw / rid, rid, int(args.mb * 1e6 / 16))
            db.execute("INSERT INTO labels VALUES (?, ?)", (rid, "a"))
            sizes[rid] = int(args.mb * 1e6)
    rows.append(measure(root, cfg, "1%+1% add/chg"))
    rows[-1]["changed_bytes"] = sum(record_bytes(raw, r) for r in changed + [f"n{i:05d}" for i in range(k)])
    rows[-1]["changed_records"] = 2 * k
    deleted = [str(r) for r in rng.choice(sorted(r for r in sizes if r.startswith("r") and r not in changed), k,
                                          replace=False)]
    for rid in deleted:  # delete 1 % (moved aside, so --reuse can put them back)
        shutil.move(str(raw / rid), str(root / f"deleted-{rid}"))
        del sizes[rid]
    rows.append(measure(root, cfg, "1% deleted"))
    rows[-1]["changed_bytes"], rows[-1]["changed_records"] = 0, 0
    rows.append(measure(root, cfg, "unchanged"))
    rows[-1]["changed_bytes"], rows[-1]["changed_records"] = 0, 0
    for rid in deleted:
        shutil.move(str(root / f"deleted-{rid}"), str(raw / rid))
    print(report(rows, target, args.read_mode, records, total, args.shards))
    stable, greedy = balance(sizes, args.shards)
    print(f"\nshard balance (mean/max bytes), {args.shards} shards: stable (hash of id) {stable:.3f}, "
          f"greedy largest-first {greedy:.3f}")
    print(f"load after: {os.getloadavg()}")
    if not args.keep:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
