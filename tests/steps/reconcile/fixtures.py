"""Helpers for the reconcile tests: SQLite label files, production trees, process functions.

The process functions are referenced from settings as `tests.steps.reconcile.fixtures:<name>`,
exactly as a user's own `module:function` is."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path

from steps.io import storage as st

BLOCK_DIR_ENV = "RECONCILE_TEST_BLOCK_DIR"  # set: process_func blocks from BLOCK_FROM_ENV on
BLOCK_FROM_ENV = "RECONCILE_TEST_BLOCK_FROM"
FAIL_IDS_ENV = "RECONCILE_TEST_FAIL_IDS"


def make_sqlite(path: Path, rows: list[tuple], columns=("artifact_id", "label", "experiment")) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as conn:
        conn.execute(f"CREATE TABLE labels ({', '.join(columns)})")
        conn.executemany(f"INSERT INTO labels VALUES ({', '.join('?' * len(columns))})", rows)
    return path


def record_files(aid: str, extra: bytes = b"") -> dict[str, bytes]:
    """A WFDB-like record: header and data files whose bytes depend on the id."""
    return {f"{aid}.hea": f"{aid} 1 250 1000\n".encode() + extra, f"{aid}.dat": (aid.encode() * 40) + extra}


def put_tree(storage: st.Storage, source_uri: str, tree: dict[str, dict[str, bytes]], pattern="{artifact_id}/{file}",
             group_of=lambda aid: "g") -> None:
    for aid, files in tree.items():
        for name, data in files.items():
            key = pattern.format(artifact_id=aid, file=name, group=group_of(aid))
            storage.write_bytes(st.join_uri(source_uri, key), data)


def artifact_uri(experiment_uri: str, aid: str) -> str:
    return st.join_uri(experiment_uri, "data", "reconciled_artifacts", aid)


def write_ground_truth(row: dict, files: list, experiment_uri: str, reload: bool) -> None:
    aid = row["artifact_id"]
    if aid in os.environ.get(FAIL_IDS_ENV, "").split(","):
        raise RuntimeError(f"cannot process {aid}")
    data = json.dumps({"artifact_id": aid, "label": str(row["label"]), "n_files": len(files)}).encode()
    st.from_env().write_bytes(st.join_uri(artifact_uri(experiment_uri, aid), "ground_truth_label.json"), data)


def blocking_process(row: dict, files: list, experiment_uri: str, reload: bool) -> None:
    """Blocks forever (until killed) on artifacts at or after BLOCK_FROM, after touching a
    marker, so a test can kill the stage in the middle of its work without timing."""
    block_dir = os.environ.get(BLOCK_DIR_ENV)
    if block_dir and row["artifact_id"] >= os.environ[BLOCK_FROM_ENV]:
        Path(block_dir, row["artifact_id"]).touch()
        while True:
            time.sleep(1)
    write_ground_truth(row, files, experiment_uri, reload)


class RequestCounter:
    """Counts the S3 API calls a boto3 client makes (a botocore event hook), with the keys
    each copy wrote."""

    def __init__(self, client) -> None:
        self.calls: dict[str, int] = {}
        self.copied_keys: list[str] = []
        client.meta.events.register("before-parameter-build.s3.*", self._count)

    def _count(self, model, params, **_) -> None:
        self.calls[model.name] = self.calls.get(model.name, 0) + 1
        if model.name in ("CopyObject", "UploadPartCopy"):
            self.copied_keys.append(params.get("Key"))

    def total(self) -> int:
        return sum(self.calls.values())


def listing(storage: st.Storage, uri: str) -> dict[str, tuple[int, str]]:
    """Relative key -> (size, etag) of everything under a folder."""
    base = uri.rstrip("/") + "/"
    return {o.uri[len(base):]: (o.size, o.etag) for o in storage.list(base)}
