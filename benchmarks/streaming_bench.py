"""Streaming benchmark: one shard featurized from a moto server on loopback, `download` vs `stream`.

    .venv/bin/python benchmarks/streaming_bench.py               # ~1 GB, mixed formats (80/16/212)
    .venv/bin/python benchmarks/streaming_bench.py --size 200M   # a quick check

The dataset is featurize_bench's generator (`make_dataset`: plain records with a heavy tail of
sizes). It is uploaded to a moto server (its own process, so its CPU shows as what it is: the
storage service's), with the shard's manifest and index as Reconcile publishes them. Then, each
in a fresh child process, one after the other:

- transfer: download every object of the manifest (what SageMaker's File mode does before the
  job starts), 16 concurrent GETs, nothing else;
- compute: featurize the shard from local disk (the data already there);
- download: transfer, then featurize what was downloaded (read_mode download, end to end);
- stream: `featurize_streamed` (read_mode stream): the workers fetch while they featurize.

Printed per mode: wall time, bytes moved over the loopback, peak RSS (the largest single process
of the child's tree: its own VmHWM or its busiest worker's, from the featurize report; and the
whole tree's sum, sampled every 0.2 s with psutil), and the ratio stream / max(transfer,
compute) against the issue's 1.2.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from featurize_bench import make_dataset, parse_size, vm_hwm_mb  # noqa: E402 - the generator, not written twice

BUCKET = "bench"
PREFIX = f"s3://{BUCKET}/shard/"
TARGET = 1.2
MODES = ("transfer", "compute", "download", "stream")


def start_moto(port: int) -> subprocess.Popen:
    code = ("import time; from moto.server import ThreadedMotoServer; "
            f"s = ThreadedMotoServer(ip_address='127.0.0.1', port={port}, verbose=False); s.start(); time.sleep(1e9)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import requests

    for _ in range(100):
        try:
            requests.get(f"http://127.0.0.1:{port}/moto-api/", timeout=1)
            return proc
        except requests.ConnectionError:
            time.sleep(0.1)
    raise RuntimeError("moto server did not start")


def publish(data: Path, work: Path) -> tuple[Path, Path, int]:
    """Upload the shard; write its manifest and index as Reconcile publishes them."""
    import boto3

    from steps.publish import index_body, manifest_body
    from steps.io.storage import ObjectInfo

    client = boto3.client("s3")
    client.create_bucket(Bucket=BUCKET)
    paths = sorted(p for p in data.rglob("*") if p.is_file())

    def put(path: Path) -> tuple[str, ObjectInfo]:
        key = path.relative_to(data).as_posix()
        client.upload_file(str(path), BUCKET, "shard/" + key)
        head = client.head_object(Bucket=BUCKET, Key="shard/" + key)
        return key, ObjectInfo(PREFIX + key, head["ContentLength"], head["ETag"].strip('"'))

    with ThreadPoolExecutor(8) as pool:
        files = dict(pool.map(put, paths))
    manifest, index = work / "shard.manifest", work / "index.json"
    manifest.write_bytes(manifest_body(PREFIX, list(files)))
    index.write_bytes(index_body(files))
    return manifest, index, sum(o.size for o in files.values())


# ---------------------------------------------------------------------------- children

def transfer(manifest: Path, dest: Path) -> int:
    """Every object of the manifest to `dest`, 16 at a time (boto3's managed download)."""
    import boto3
    from botocore.config import Config

    prefix, *keys = json.loads(manifest.read_text())
    client = boto3.client("s3", config=Config(max_pool_connections=20))

    def get(key: str) -> int:
        (dest / key).parent.mkdir(parents=True, exist_ok=True)
        client.download_file(BUCKET, "shard/" + key, str(dest / key))
        return (dest / key).stat().st_size

    with ThreadPoolExecutor(16) as pool:
        return sum(pool.map(get, keys))


def child(mode: str, args: argparse.Namespace) -> dict:
    from steps.featurize.run import featurize, featurize_streamed
    from steps.featurize.settings import FeaturizeSettings

    out = Path(args.work) / f"out-{mode}"
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    result: dict = {"bytes_moved": 0}
    if mode in ("transfer", "download"):
        dest = Path(args.work) / "downloaded"
        shutil.rmtree(dest, ignore_errors=True)
        result["bytes_moved"] = transfer(Path(args.manifest), dest)
        result["transfer_s"] = time.perf_counter() - started
        if mode == "download":
            report = featurize(dest, out, jobs=args.jobs, shard="bench")
            result["records"] = report["records_total"]
        shutil.rmtree(dest, ignore_errors=True)
    elif mode == "compute":
        report = featurize(Path(args.data), out, jobs=args.jobs, shard="bench")
        result["records"] = report["records_total"]
    else:
        settings = FeaturizeSettings(read_mode="stream")
        report = featurize_streamed(Path(args.manifest), Path(args.index), out, settings, jobs=args.jobs, shard="bench")
        headers = sum(json.loads(Path(args.index).read_text())[k]["size"]
                      for k in json.loads(Path(args.index).read_text()) if k.endswith(".hea"))
        result.update(records=report["records_total"], bytes_moved=report["bytes_fetched"] + headers,
                      fetch_wait_s=round(report["fetch_wait_s"], 1), in_flight_peak=report["records_in_flight_peak"])
    result["wall_s"] = time.perf_counter() - started
    workers = report.get("peak_rss_mb_per_worker") if mode != "transfer" else None
    result["peak_rss_mb"] = max(vm_hwm_mb(), workers or 0.0)
    if mode != "transfer" and report["records_failed"]:
        result["records_failed"] = report["records_failed"]
    return result


def measure(mode: str, args: argparse.Namespace, env: dict) -> dict:
    """Run one mode in a child; its result, peak RSS (largest process, tree sum) and wall time."""
    import psutil

    argv = [sys.executable, __file__, "--child", mode, "--work", args.work, "--data", args.data,
            "--manifest", args.manifest, "--index", args.index, "--jobs", str(args.jobs)]
    started = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, text=True)
    tree_peak = 0
    while proc.poll() is None:
        try:
            me = psutil.Process(proc.pid)
            tree = sum(p.memory_info().rss for p in [me, *me.children(recursive=True)])
            tree_peak = max(tree_peak, tree)
        except psutil.Error:
            pass
        time.sleep(0.2)
    wall = time.perf_counter() - started
    out = proc.stdout.read()
    if proc.returncode:
        raise RuntimeError(f"{mode} failed ({proc.returncode})")
    result = json.loads(out.strip().splitlines()[-1])
    result.update(process_wall_s=wall, tree_rss_mb=tree_peak / 2**20)
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=parse_size, default=parse_size("1G"))
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    p.add_argument("--work", default=None)
    p.add_argument("--child", choices=MODES)
    p.add_argument("--data"), p.add_argument("--manifest"), p.add_argument("--index")
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args)))
        return 0
    work = Path(args.work or tempfile.mkdtemp(prefix="wavepipe-stream-bench-"))
    args.work = str(work)
    data = work / "data"
    if not data.is_dir():
        info = make_dataset(data, args.size)
        print(f"generated {info['records']} records, {info['bytes'] / 1e9:.2f} GB (formats 80/16/212)")
    args.data = str(data)
    from tests.conftest import free_port

    port = free_port()
    env = {**os.environ, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "bench",
           "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}
    os.environ.update(env)
    moto = start_moto(port)
    try:
        manifest, index, total = publish(data, work)
        args.manifest, args.index = str(manifest), str(index)
        print(f"uploaded {total / 1e9:.2f} GB to moto on 127.0.0.1:{port}; jobs={args.jobs}, "
              f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        results = {}
        for mode in MODES:
            results[mode] = measure(mode, args, env)
            r = results[mode]
            print(f"{mode:9s} wall {r['wall_s']:7.1f} s  moved {r['bytes_moved'] / 1e9:6.2f} GB  "
                  f"peak RSS {r['peak_rss_mb']:7.0f} MB (largest process), {r['tree_rss_mb']:7.0f} MB (tree)  "
                  + json.dumps({k: v for k, v in r.items() if k in ("records", "fetch_wait_s", "in_flight_peak",
                                                                  "transfer_s", "records_failed")}), flush=True)
    finally:
        moto.terminate()
        moto.wait()
    bound = max(results["transfer"]["wall_s"], results["compute"]["wall_s"])
    ratio = results["stream"]["wall_s"] / bound
    print(f"stream / max(transfer, compute) = {results['stream']['wall_s']:.1f} / {bound:.1f} = {ratio:.2f} "
          f"(target <= {TARGET}: {'met' if ratio <= TARGET else 'missed'}); stream / download = "
          f"{results['stream']['wall_s'] / results['download']['wall_s']:.2f}; load average after: "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
