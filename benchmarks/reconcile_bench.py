"""Reconcile against a moto S3 server: artifacts per second and S3 requests per artifact for a
first run and an immediate rerun (target: the rerun copies nothing and costs no more than
the listing).

    .venv/bin/python benchmarks/reconcile_bench.py [--artifacts 10000] [--files 2] [--threads 32]

With `--keys N`, Reconcile's listing alone at scale instead:
one paginator against the concurrent listing, and S3 Inventory reports, over the MIMIC-III
layout (targets: at least 5x faster than one paginator, at most 1 GB at a million keys).

    .venv/bin/python benchmarks/reconcile_bench.py --keys 1000000 [--latency-ms 30] [--threads 32]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import sqlite3
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SOURCE = "s3://bench-prod/records"
EXPERIMENT = "s3://bench-research/experiments/bench"


class Requests:
    """Counts the client's S3 calls by operation, and every HTTP request sent (with retries)."""

    def __init__(self, client) -> None:
        self.by_op: dict[str, int] = {}
        self.http = 0
        client.meta.events.register("before-call.s3.*", self._call)
        client.meta.events.register("before-send.s3.*", self._send)

    def _call(self, model, **_) -> None:
        self.by_op[model.name] = self.by_op.get(model.name, 0) + 1

    def _send(self, **_) -> None:
        self.http += 1

    def take(self) -> tuple[dict[str, int], int]:
        out = (dict(self.by_op), self.http)
        self.by_op, self.http = {}, 0
        return out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def populate(storage, n: int, files: int, threads: int) -> None:
    def put(i: int) -> None:
        aid = f"rec{i:06d}"
        for j in range(files):
            storage.write_bytes(f"{SOURCE}/{aid}/{aid}_{j}.dat", f"{aid}-{j}-".encode() * 20)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(put, range(n)))


# --- the listing at scale (--keys) ------------------------------------------------------------

LIST_BUCKET = "bench-mimic"
LIST_SOURCE = f"s3://{LIST_BUCKET}/mimic3wdb"
INVENTORY = "s3://bench-inventory/reports"
EMPTY_ETAG = "d41d8cd98f00b204e9800998ecf8427e"


def mimic_keys(n: int) -> Iterator[str]:
    """`n` keys of the MIMIC-III waveform layout: groups 30..39, record folders, and per record
    its multi-segment header, layout header, numerics record and 1 to 12 segments."""
    made, i = 0, 0
    while True:
        group = 30 + i % 10
        rec = f"{group}{i // 10:05d}"
        segments = 1 + (i * 7919) % 12
        files = [f"{rec}.hea", f"{rec}_layout.hea", f"{rec}n.hea", f"{rec}n.dat"]
        files += [f"{rec}_{s:04d}.{ext}" for s in range(1, segments + 1) for ext in ("hea", "dat")]
        for name in sorted(files):
            if made == n:
                return
            yield f"mimic3wdb/{group}/{rec}/{name}"
            made += 1
        i += 1


def index_moto_listing() -> None:
    """Give moto's ListObjectsV2 a sorted index of key names.

    moto scans and sorts every key of the bucket on every request (a second per page at a
    million keys), which S3 does not: the benchmark would measure moto. The index returns the
    same entries (checked against moto's own code below); HTTP, moto's request parsing and its
    XML serialisation are unchanged."""
    from bisect import bisect_left, bisect_right

    from moto.s3.models import FakeDeleteMarker, S3Backend

    cache: dict[int, tuple[int, list[str]]] = {}

    def names_of(bucket) -> list[str]:
        size, names = cache.get(id(bucket), (-1, []))
        if size != len(bucket.keys):
            names = sorted(bucket.keys.keys())
            cache[id(bucket)] = (len(bucket.keys), names)
        return names

    def list_objects_v2(self, bucket, prefix, delimiter, continuation_token, start_after, max_keys):
        names, prefix = names_of(bucket), prefix or ""
        limit = self._pagination_tokens.get(continuation_token) if continuation_token else start_after
        i = bisect_left(names, prefix)
        if limit:
            i = max(i, bisect_right(names, limit))
        out: list = []
        while i < len(names) and len(out) <= max_keys and names[i].startswith(prefix):
            rest = names[i][len(prefix):]
            if delimiter and delimiter in rest:
                folder = prefix + rest.split(delimiter)[0] + delimiter
                if not limit or folder > limit:
                    out.append(folder)
                i = bisect_left(names, folder[:-1] + chr(ord(folder[-1]) + 1))  # past the folder's keys
                continue
            key = bucket.keys[names[i]]
            if not isinstance(key, FakeDeleteMarker):
                out.append(key)
            i += 1
        return self._truncate_result(out, max_keys)

    original = S3Backend.list_objects_v2
    S3Backend.list_objects_v2 = list_objects_v2
    _check_index(original, list_objects_v2)


def _check_index(original, indexed) -> None:
    """The indexed listing answers exactly as moto's own on a small bucket."""
    from moto.s3.models import FakeKey, S3Backend

    backend = S3Backend("us-east-1", "123456789012")
    bucket = backend.create_bucket("check-index", "us-east-1")
    for key in ["a", "a/", "a/b", "a.txt", "a0/c", *mimic_keys(3000)]:
        bucket.keys[key] = FakeKey(key, b"", account_id="123456789012", region_name="us-east-1")
    name = lambda item: getattr(item, "name", item)  # noqa: E731
    for prefix, delimiter, start in [("", None, None), ("mimic3wdb/", "/", None), ("mimic3wdb/30/", "/", None),
                                     ("mimic3wdb/", None, "mimic3wdb/31/31000"), ("", "/", "a"), ("a", "/", None)]:
        token = None
        while True:
            got = [indexed(backend, bucket, prefix, delimiter, token, start, 100), original(backend, bucket, prefix,
                                                                                           delimiter, token, start, 100)]
            (a, trunc_a, tok_a), (b, trunc_b, _) = got
            assert [name(x) for x in a] == [name(x) for x in b] and trunc_a == trunc_b, (prefix, delimiter, start)
            if not trunc_a:
                break
            token = tok_a


def serve(keys: int) -> int:
    """The moto server process: `keys` zero-byte objects put straight into moto's backend (a
    million PutObject calls would take an hour), then serve until stdin closes."""
    from moto.s3.models import FakeKey, s3_backends
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    index_moto_listing()
    backend = s3_backends["123456789012"]["aws"]
    bucket = backend.create_bucket(LIST_BUCKET, "us-east-1")
    backend.create_bucket("bench-inventory", "us-east-1")
    for key in mimic_keys(keys):
        bucket.keys[key] = FakeKey(key, b"", account_id="123456789012", region_name="us-east-1")
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    print(port, flush=True)
    sys.stdin.read()
    server.stop()
    return 0


def measure(job: dict) -> int:
    """One Reconcile listing (open the source, build its artifacts from the stream, as
    `steps.reconcile.run._inventory` does) in this fresh process; prints seconds, requests
    and peak RSS as JSON."""
    import resource

    from steps import storage as st
    from steps.reconcile.run import Context, _inventory
    from steps.reconcile.settings import ReconcileSettings

    storage = st.S3Storage(max_connections=job["threads"] + 4)
    counter = Requests(storage.client)
    if job["latency_ms"]:
        # S3's round trip, which the loopback server lacks: every request waits it out, in
        # the thread that sends it (as a real round trip, it holds no CPU and no GIL).
        storage.client.meta.events.register("before-send.s3.*", lambda **_: time.sleep(job["latency_ms"] / 1000))
    settings = ReconcileSettings.model_validate({"key_pattern": "{group}/{artifact_id}/{file}",
                                                 "listing": job["listing"]})
    ctx = Context(settings, storage, LIST_SOURCE, "s3://bench-inventory/exp", Path(tempfile.mkdtemp()), 1, False, {})
    started = time.monotonic()
    found = _inventory(ctx)
    seconds = time.monotonic() - started
    _, http = counter.take()
    print(json.dumps({"seconds": round(seconds, 2), "requests": http, "objects": found.objects_listed,
                      "artifacts": len(found.artifacts),
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}))
    return 0


def write_inventories(endpoint: str, keys: int) -> dict[str, str]:
    """An S3 Inventory report of the bucket in each format, written as S3 writes them."""
    from steps import storage as st
    from tests.steps.inventory_reports import rows_of, write_report

    storage = st.S3Storage(client=__import__("boto3").client("s3", endpoint_url=endpoint))
    rows = rows_of(LIST_BUCKET, [(k, 0, EMPTY_ETAG) for k in mimic_keys(keys)], noncurrent=False)
    return {fmt: write_report(storage, rows, source_bucket=LIST_BUCKET, destination=f"{INVENTORY}/{fmt}", fmt=fmt,
                              files=8) for fmt in ("CSV", "Parquet")}


def listing_bench(keys: int, threads: int, latency_ms: float) -> int:
    import subprocess

    script = str(Path(__file__).resolve())
    started = time.monotonic()
    server = subprocess.Popen([sys.executable, script, "--serve", "--keys", str(keys)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        endpoint = f"http://127.0.0.1:{server.stdout.readline().strip()}"
        print(f"moto server (own process) holding {keys} keys after {time.monotonic() - started:.0f} s; "
              f"load: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
        os.environ.update(AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
                          AWS_DEFAULT_REGION="us-east-1")
        os.environ.pop("WAVEPIPE_S3_ROOT", None)
        inventories = write_inventories(endpoint, keys)
        env = dict(os.environ)
        runs = [("one paginator", 0, {"threads": 1}), (f"concurrent ({threads} threads)", 0, {"threads": threads}),
                (f"one paginator, +{latency_ms:g} ms a request", latency_ms, {"threads": 1}),
                (f"concurrent, +{latency_ms:g} ms a request", latency_ms, {"threads": threads}),
                ("S3 Inventory, CSV (gzip)", 0, {"inventory": inventories["CSV"]}),
                ("S3 Inventory, Parquet", 0, {"inventory": inventories["Parquet"]})]
        results = {}
        for name, latency, listing in runs:
            job = json.dumps({"threads": listing.get("threads", threads), "latency_ms": latency, "listing": listing})
            out = subprocess.run([sys.executable, script, "--measure", job], env=env, check=True,
                                 capture_output=True, text=True).stdout
            results[name] = json.loads(out.strip().splitlines()[-1])
            print(json.dumps({"run": name, **results[name], "load": round(os.getloadavg()[0], 2)}), flush=True)
        names = [n for n, _, _ in runs]
        loopback = results[names[0]]["seconds"] / results[names[1]]["seconds"]
        latent = results[names[2]]["seconds"] / results[names[3]]["seconds"]
        peak = max(r["peak_rss_mb"] for r in results.values())
        print(f"speedup on loopback: {loopback:.1f}x; with +{latency_ms:g} ms a request (S3's round trip): "
              f"{latent:.1f}x (target 5x: {'met' if latent >= 5 else 'MISSED'}); "
              f"peak RSS {peak} MB (target 1024 MB: {'met' if peak <= 1024 else 'MISSED'})")
        return 0 if latent >= 5 and peak <= 1024 else 1
    finally:
        server.stdin.close()
        server.wait(timeout=60)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--artifacts", type=int, default=10_000, help="artifacts in the production prefix")
    p.add_argument("--files", type=int, default=2, help="files per artifact (a WFDB record: header and data)")
    p.add_argument("--threads", type=int, default=32, help="copy_threads")
    p.add_argument("--macroshards", type=int, default=4)
    p.add_argument("--keys", type=int, help="benchmark the listing of this many keys instead (MIMIC-III layout)")
    p.add_argument("--latency-ms", type=float, default=30.0,
                   help="with --keys: per-request latency added on the client, as S3's round trip")
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)  # the moto server process
    p.add_argument("--measure", help=argparse.SUPPRESS)  # one listing, in a process of its own
    args = p.parse_args(argv)
    if args.serve:
        return serve(args.keys)
    if args.measure:
        return measure(json.loads(args.measure))
    if args.keys:
        return listing_bench(args.keys, args.threads, args.latency_ms)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)

    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    os.environ.update(AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}", AWS_ACCESS_KEY_ID="bench",
                      AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
    os.environ.pop("WAVEPIPE_S3_ROOT", None)
    try:
        from steps import storage as st
        from steps.reconcile.run import reconcile
        from steps.reconcile.settings import ReconcileSettings

        storage = st.S3Storage(max_connections=args.threads + 4)
        for bucket in ("bench-prod", "bench-research"):
            storage.client.create_bucket(Bucket=bucket)
        started = time.monotonic()
        populate(storage, args.artifacts, args.files, args.threads)
        print(f"populated {args.artifacts} artifacts x {args.files} files in {time.monotonic() - started:.1f} s")

        tmp = Path(tempfile.mkdtemp(prefix="reconcile-bench-"))
        db = tmp / "labels.sqlite"
        with sqlite3.connect(db) as conn:
            conn.execute("CREATE TABLE labels (artifact_id TEXT, label TEXT)")
            conn.executemany("INSERT INTO labels VALUES (?, ?)",
                             [(f"rec{i:06d}", "AF" if i % 4 == 0 else "N") for i in range(args.artifacts)])
        settings = ReconcileSettings.model_validate({"labels": {"sqlite_uri": str(db)}, "copy_threads": args.threads})
        counter = Requests(storage.client)
        rows = []
        for name in ("first run", "rerun"):
            started = time.monotonic()
            report = reconcile(settings, SOURCE, EXPERIMENT, tmp / name.replace(" ", "_"),
                               macroshards=args.macroshards, storage=storage)
            seconds = time.monotonic() - started
            calls, total = counter.take()
            rows.append({
                "run": name, "artifacts": report["kept"], "seconds": round(seconds, 2),
                "artifacts_per_s": round(report["kept"] / seconds, 1),
                "s3_requests": total, "requests_per_artifact": round(total / report["kept"], 4),
                "copies": calls.get("CopyObject", 0) + calls.get("UploadPartCopy", 0),
                "by_operation": calls, "copied": report["copied"], "skipped_identical": report["skipped_identical"],
            })
        objects = args.artifacts * args.files
        # The listing: source and experiment prefixes (1,000 keys a page), plus one page of the
        # content-addressed shards prefix, which tells the rerun its manifests are already published.
        listing_pages = 2 * -(-objects // 1000) + 1
        for row in rows:
            print(json.dumps(row))
        rerun = rows[1]
        only_lists = set(rerun["by_operation"]) <= {"ListObjectsV2"}
        ok = rerun["copies"] == 0 and only_lists and rerun["s3_requests"] <= listing_pages
        print(f"rerun target (no copy, no write, nothing but the {listing_pages} listing pages): "
              f"{'met' if ok else 'MISSED'}")
        return 0 if ok else 1
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
