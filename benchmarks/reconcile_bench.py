"""Reconcile against a moto S3 server: artifacts per second and S3 requests per artifact for a
first run and an immediate rerun (target: the rerun copies nothing and costs no more than
the listing).

    .venv/bin/python benchmarks/reconcile_bench.py [--artifacts 10000] [--files 2] [--threads 32]
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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--artifacts", type=int, default=10_000, help="artifacts in the production prefix")
    p.add_argument("--files", type=int, default=2, help="files per artifact (a WFDB record: header and data)")
    p.add_argument("--threads", type=int, default=32, help="copy_threads")
    p.add_argument("--macroshards", type=int, default=4)
    args = p.parse_args(argv)
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
