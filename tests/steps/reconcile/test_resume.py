"""Killed in the middle of its work and started again, reconcile ends with exactly the folder a
clean run makes, and copies nothing that was already complete (moto S3 server, real subprocess)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import boto3

from steps.io import storage as st
from steps.reconcile.run import reconcile
from steps.reconcile.settings import ReconcileSettings
from steps.settings_file import write_settings
from tests.conftest import ROOT
from tests.steps.reconcile.fixtures import (
    BLOCK_DIR_ENV, BLOCK_FROM_ENV, RequestCounter, listing, make_sqlite, put_tree, record_files,
)

SOURCE = "s3://prod-bucket/waveforms"
THREADS = 4


def experiment_settings(db) -> ReconcileSettings:
    return ReconcileSettings.model_validate({
        "labels": {"sqlite_uri": str(db)},
        "process_func": "tests.steps.reconcile.fixtures:blocking_process",
        "files_on_research": ["*.hea", "*.dat", "ground_truth_label.json"],
        "copy_threads": THREADS,
    })


class TestValidResume:
    def test_kill_and_resume_matches_a_clean_run(self, tmp_path, aws):
        client = boto3.client("s3")
        for bucket in ("prod-bucket", "research-bucket"):
            client.create_bucket(Bucket=bucket)
        storage = st.S3Storage(max_connections=THREADS + 4)
        artifact_ids = [f"r{i:04d}" for i in range(40)]
        put_tree(storage, SOURCE, {a: record_files(a) for a in artifact_ids})
        db = make_sqlite(tmp_path / "labels.sqlite", [(a, "N", "exp1") for a in artifact_ids])
        settings_file = tmp_path / "settings.json"
        write_settings(settings_file, "reconcile", experiment_settings(db))
        resumed, clean = "s3://research-bucket/resumed", "s3://research-bucket/clean"

        block_dir = tmp_path / "blocked"
        block_dir.mkdir()
        env = {**os.environ, BLOCK_DIR_ENV: str(block_dir), BLOCK_FROM_ENV: "r0020", "PYTHONPATH": str(ROOT)}
        proc = subprocess.Popen(
            [sys.executable, "-m", "steps.reconcile", "--source-uri", SOURCE, "--experiment-uri", resumed,
             "--output", str(tmp_path / "killed"), "--settings", str(settings_file)],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        try:
            # Every thread ends up blocked inside process_func (artifacts from r0020 on): then the
            # stage is mid-way, with the files of r0020.. copied and their outputs not yet written.
            deadline = time.monotonic() + 120
            while len(list(block_dir.iterdir())) < THREADS:
                assert proc.poll() is None, proc.stderr.read().decode()
                assert time.monotonic() < deadline, "the stage never reached the blocking artifacts"
                time.sleep(0.05)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            proc.stderr.close()
        killed_state = listing(storage, resumed + "/data/reconciled_artifacts")
        assert 0 < len(killed_state) < 3 * len(artifact_ids)
        assert not (tmp_path / "killed" / "report.json").exists() or "running" in (tmp_path / "killed" / "report.json").read_text()

        counter = RequestCounter(storage.client)
        report = reconcile(experiment_settings(db), SOURCE, resumed, tmp_path / "resumed", storage=storage)
        assert report["status"] == "succeeded"
        copied_again = {k.split("reconciled_artifacts/")[1] for k in counter.copied_keys} & set(killed_state)
        assert copied_again == set()  # nothing complete is copied twice
        data_files = {k for k in killed_state if not k.endswith(".json")}
        assert report["skipped_identical"] == len(data_files)
        assert report["copied"] == 2 * len(artifact_ids) - len(data_files)
        assert report["regenerated"] == THREADS  # the blocked artifacts' outputs were never written

        reconcile(experiment_settings(db), SOURCE, clean, tmp_path / "clean", storage=storage)
        assert listing(storage, resumed + "/data/reconciled_artifacts") == listing(storage, clean + "/data/reconciled_artifacts")
        assert (tmp_path / "resumed" / "manifests" / "shard-0001.manifest").read_text().replace("resumed", "clean") == \
            (tmp_path / "clean" / "manifests" / "shard-0001.manifest").read_text()
