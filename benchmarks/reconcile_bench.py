"""Reconcile against a moto S3 server: artifacts per second and S3 requests per artifact for a
first run and an immediate rerun (target: the rerun copies nothing and costs no more than
the listing).

    .venv/bin/python benchmarks/reconcile_bench.py [--artifacts 10000] [--files 2] [--threads 32]

With `--keys N`, Reconcile's listing alone at scale instead:
one paginator against the concurrent listing, and S3 Inventory reports, over the MIMIC-III
layout (targets: at least 5x faster than one paginator, at most 1 GB at a million keys).

    .venv/bin/python benchmarks/reconcile_bench.py --keys 1000000 [--latency-ms 30] [--threads 32]
    .venv/bin/python benchmarks/reconcile_bench.py --keys 1000000 --server fast [--latency-ms 30]

`--server fast` lists from `benchmarks/listing_server.py` instead of moto: a stand-in endpoint
for ListObjectsV2 alone whose cost per page is a configured latency (as S3's, whose work is
done on its side), not the XML rendering that bounds moto on a small machine.
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


def serve(keys: int, server: str, latency_ms: float) -> int:
    """The server process: `keys` zero-byte objects, then serve until stdin closes; each line
    read from stdin is answered with this process's CPU seconds so far and its request count.

    moto: the objects put straight into moto's backend (a million PutObject calls would take an
    hour). fast: `benchmarks/listing_server.py`, ListObjectsV2 alone, `latency_ms` a request."""
    if server == "fast":
        from listing_server import ListingServer

        stand_in = ListingServer(LIST_BUCKET, mimic_keys(keys), latency_ms).start()
        port, requests, stop = stand_in.port, lambda: stand_in.requests, stand_in.stop
    else:
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
        moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        moto.start()
        requests, stop = lambda: None, moto.stop
    print(port, flush=True)
    for _ in sys.stdin:
        print(json.dumps({"cpu_s": time.process_time(), "requests": requests()}), flush=True)
    stop()
    return 0


def check_stand_in(keys: int = 3000) -> int:
    """The stand-in's pages equal moto's own (unpatched), page for page, on a small bucket with
    the MIMIC layout and a few awkward keys, for every way the listing calls ListObjectsV2.
    Returns the number of pages compared."""
    import boto3
    from listing_server import ListingServer
    from moto.s3.models import FakeKey, s3_backends
    from moto.server import ThreadedMotoServer

    names = ["a", "a/", "a/b", "a.txt", "a0/c", "a/b/c", "mimic3wdb/30", *mimic_keys(keys)]
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    stand_in = ListingServer("check-stand-in", names, latency_ms=0).start()
    try:
        backend = s3_backends["123456789012"]["aws"]
        bucket = backend.create_bucket("check-stand-in", "us-east-1")
        for key in names:
            bucket.keys[key] = FakeKey(key, b"", account_id="123456789012", region_name="us-east-1")
        clients = [boto3.client("s3", endpoint_url=f"http://127.0.0.1:{p}", region_name="us-east-1",
                                aws_access_key_id="bench", aws_secret_access_key="bench")
                   for p in (port, stand_in.port)]
        fields = ("KeyCount", "IsTruncated", "Prefix", "Delimiter", "StartAfter", "MaxKeys", "EncodingType")
        pages = 0
        for kwargs in [{}, {"Prefix": "mimic3wdb/", "Delimiter": "/"}, {"Prefix": "mimic3wdb/30/", "Delimiter": "/"},
                       {"Prefix": "mimic3wdb/", "StartAfter": "mimic3wdb/31/3100"}, {"Delimiter": "/", "StartAfter": "a"},
                       {"Prefix": "a", "Delimiter": "/"}, {"Prefix": "mimic3wdb/3", "StartAfter": "mimic3wdb/32/"},
                       {"Prefix": "mimic3wdb/", "Delimiter": "/", "StartAfter": "mimic3wdb/31/3100"},
                       {"Prefix": "nothing/"}]:
            for max_keys in (1000, 7):
                streams = [list(c.get_paginator("list_objects_v2").paginate(Bucket="check-stand-in", MaxKeys=max_keys,
                                                                            **kwargs)) for c in clients]
                assert len(streams[0]) == len(streams[1]), (kwargs, max_keys)
                for n, (a, b) in enumerate(zip(*streams)):
                    # moto echoes StartAfter on the first page only; S3 (and the stand-in) on
                    # every page it was sent with, as its documentation says.
                    got = [({f: page.get(f) for f in fields if f != "StartAfter" or n == 0},
                            [(o["Key"], o["Size"], o["ETag"], o.get("StorageClass")) for o in page.get("Contents", [])],
                            [p["Prefix"] for p in page.get("CommonPrefixes", [])]) for page in (a, b)]
                    assert got[0] == got[1], (kwargs, max_keys, got[0][0], got[1][0],
                                              next((x, y) for x, y in zip(*(g[1] + g[2] for g in got)) if x != y)
                                              if got[0][1:] != got[1][1:] else "same entries")
                    pages += 1
        return pages
    finally:
        stand_in.stop()
        moto.stop()


def measure(job: dict) -> int:
    """One Reconcile listing (open the source, build its artifacts from the stream, as
    `steps.reconcile.run._inventory` does) in this fresh process; prints seconds, requests
    and peak RSS as JSON."""
    import hashlib
    import resource

    from steps.io import storage as st
    from steps.reconcile.run import Context, _inventory
    from steps.reconcile.settings import ReconcileSettings

    storage = st.S3Storage(max_connections=job["threads"] + 4)
    counter = Requests(storage.client)
    listed, hashed_keys = hashlib.sha256(), [0]
    listing = storage.list

    def hashed(*args, **kwargs):
        # The key stream itself, in order: every listing mode must give the same digest.
        for obj in listing(*args, **kwargs):
            listed.update(obj.uri.encode() + b"\n")
            hashed_keys[0] += 1
            yield obj

    storage.list = hashed
    if job["latency_ms"]:
        # S3's round trip, which the loopback server lacks: every request waits it out, in
        # the thread that sends it (as a real round trip, it holds no CPU and no GIL).
        storage.client.meta.events.register("before-send.s3.*", lambda **_: time.sleep(job["latency_ms"] / 1000))
    settings = ReconcileSettings.model_validate({"key_pattern": "{group}/{artifact_id}/{file}",
                                                 "listing": job["listing"]})
    ctx = Context(settings, storage, LIST_SOURCE, "s3://bench-inventory/exp", Path(tempfile.mkdtemp()), 1, False, {})
    profile = __import__("cProfile").Profile() if job.get("profile") else None
    started, cpu = time.monotonic(), time.process_time()
    if profile:
        profile.enable()  # the calling thread only: meaningful for one paginator
    found = _inventory(ctx)
    if profile:
        profile.disable()
        __import__("pstats").Stats(profile, stream=sys.stderr).sort_stats("tottime").print_stats(18)
    seconds, cpu = time.monotonic() - started, time.process_time() - cpu
    _, http = counter.take()
    print(json.dumps({"seconds": round(seconds, 2), "requests": http, "objects": found.objects_listed,
                      "artifacts": len(found.artifacts), "client_cpu_s": round(cpu, 2),
                      "client_cpu_ms_per_request": round(1000 * cpu / max(1, http), 2),
                      "sha256": listed.hexdigest()[:16] if hashed_keys[0] else None,  # None: not listed
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}))
    return 0


def write_inventories(endpoint: str, keys: int) -> dict[str, str]:
    """An S3 Inventory report of the bucket in each format, written as S3 writes them."""
    from steps.io import storage as st
    from tests.steps.io.inventory_reports import rows_of, write_report

    storage = st.S3Storage(client=__import__("boto3").client("s3", endpoint_url=endpoint))
    rows = rows_of(LIST_BUCKET, [(k, 0, EMPTY_ETAG) for k in mimic_keys(keys)], noncurrent=False)
    return {fmt: write_report(storage, rows, source_bucket=LIST_BUCKET, destination=f"{INVENTORY}/{fmt}", fmt=fmt,
                              files=8) for fmt in ("CSV", "Parquet")}


def listing_bench(keys: int, threads: int, latency_ms: float, server: str, profile: bool = False) -> int:
    """Each run in a process of its own against one server process. moto: one paginator and
    the concurrent listing on loopback, then with `latency_ms` waited by the client before each
    request, then the S3 Inventory reports. fast: one paginator and the concurrent listing
    against the stand-in, which waits `latency_ms` itself (see `benchmarks/listing_server.py`)."""
    import subprocess

    script = str(Path(__file__).resolve())
    if server == "fast":
        print(f"stand-in checked against moto: {check_stand_in()} pages identical")
    started = time.monotonic()
    serving = subprocess.Popen([sys.executable, script, "--serve", "--keys", str(keys), "--server", server,
                                "--latency-ms", str(latency_ms)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               text=True)

    def server_cpu() -> dict:
        serving.stdin.write("\n")
        serving.stdin.flush()
        return json.loads(serving.stdout.readline())

    try:
        endpoint = f"http://127.0.0.1:{serving.stdout.readline().strip()}"
        label = "moto server" if server == "moto" else f"stand-in ListObjectsV2 server, {latency_ms:g} ms a request,"
        print(f"{label} (own process) holding {keys} keys after {time.monotonic() - started:.0f} s; "
              f"load: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
        os.environ.update(AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
                          AWS_DEFAULT_REGION="us-east-1")
        os.environ.pop("WAVEPIPE_S3_ROOT", None)
        runs = [("one paginator", 0, {"threads": 1}), (f"concurrent ({threads} threads)", 0, {"threads": threads})]
        if server == "moto":
            inventories = write_inventories(endpoint, keys)
            runs += [(f"one paginator, +{latency_ms:g} ms a request", latency_ms, {"threads": 1}),
                     (f"concurrent, +{latency_ms:g} ms a request", latency_ms, {"threads": threads}),
                     ("S3 Inventory, CSV (gzip)", 0, {"inventory": inventories["CSV"]}),
                     ("S3 Inventory, Parquet", 0, {"inventory": inventories["Parquet"]})]
        env = dict(os.environ)
        results = {}
        for name, latency, listing in runs:
            job = json.dumps({"threads": listing.get("threads", threads), "latency_ms": latency, "listing": listing,
                              "profile": profile})
            before = server_cpu()
            out = subprocess.run([sys.executable, script, "--measure", job], env=env, check=True,
                                 capture_output=True, text=True)
            if profile:
                print(out.stderr, file=sys.stderr)
            after = server_cpu()
            result = json.loads(out.stdout.strip().splitlines()[-1])
            spent = after["cpu_s"] - before["cpu_s"]
            result.update(server_cpu_s=round(spent, 2),
                          server_cpu_ms_per_request=round(1000 * spent / max(1, result["requests"]), 2))
            if after["requests"] is not None:  # the stand-in counts what it served
                assert after["requests"] - before["requests"] == result["requests"], (before, after, result)
            results[name] = result
            print(json.dumps({"run": name, **result, "load": round(os.getloadavg()[0], 2)}), flush=True)
        listed = [r for (_, _, listing), r in zip(runs, results.values()) if "threads" in listing]
        assert len({(r["objects"], r["sha256"]) for r in listed}) == 1, "the listings differ"
        print(f"every ListObjectsV2 run listed the same {listed[0]['objects']} keys in the same order "
              f"(sha256 {listed[0]['sha256']})")
        names = [n for n, _, _ in runs]
        speedup = results[names[0]]["seconds"] / results[names[1]]["seconds"]
        if server == "fast":
            where = f"against the stand-in at {latency_ms:g} ms a request"
        else:
            print(f"speedup on loopback: {speedup:.1f}x")
            speedup = results[names[2]]["seconds"] / results[names[3]]["seconds"]
            where = f"with +{latency_ms:g} ms a request on the client"
        peak = max(r["peak_rss_mb"] for r in results.values())
        print(f"speedup {where}: {speedup:.1f}x (target 5x: {'met' if speedup >= 5 else 'MISSED'}); "
              f"peak RSS {peak} MB (target 1024 MB: {'met' if peak <= 1024 else 'MISSED'})")
        return 0 if speedup >= 5 and peak <= 1024 else 1
    finally:
        serving.stdin.close()
        serving.wait(timeout=60)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--artifacts", type=int, default=10_000, help="artifacts in the production prefix")
    p.add_argument("--files", type=int, default=2, help="files per artifact (a WFDB record: header and data)")
    p.add_argument("--threads", type=int, default=32, help="copy_threads")
    p.add_argument("--macroshards", type=int, default=4)
    p.add_argument("--keys", type=int, help="benchmark the listing of this many keys instead (MIMIC-III layout)")
    p.add_argument("--latency-ms", type=float, default=30.0,
                   help="with --keys: per-request latency, as S3's round trip (moto: waited on the client; "
                        "fast: waited by the stand-in server)")
    p.add_argument("--server", choices=("moto", "fast"), default="moto",
                   help="with --keys: moto (CPU-bound on its XML), or fast: a stand-in ListObjectsV2 endpoint "
                        "(benchmarks/listing_server.py) whose cost per page is its latency, as S3's")
    p.add_argument("--profile", action="store_true", help="with --keys: cProfile each listing (its main thread)")
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)  # the moto server process
    p.add_argument("--measure", help=argparse.SUPPRESS)  # one listing, in a process of its own
    args = p.parse_args(argv)
    if args.serve:
        return serve(args.keys, args.server, args.latency_ms)
    if args.measure:
        return measure(json.loads(args.measure))
    if args.keys:
        return listing_bench(args.keys, args.threads, args.latency_ms, args.server, args.profile)
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
        from steps.io import storage as st
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
