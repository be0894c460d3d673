"""Staging inputs like SageMaker: S3Prefix, ManifestFile, ShardedByS3Key; and retries."""

from __future__ import annotations

import json

from pipeline.local import StepState
from tests.pipeline.local.helpers import (
    BUCKET, definition, echo_of, put, run, s3_input, step,
)


def test_s3_prefix_keeps_paths_relative_to_the_prefix(tmp_path):
    for key in ("raw/a.txt", "raw/sub/b.txt", "rawish/c.txt"):
        put(tmp_path, f"s3://{BUCKET}/{key}")
    result = run(definition(step("A", inputs=[s3_input("d", f"s3://{BUCKET}/raw/")])), tmp_path)
    inputs = echo_of(tmp_path, result, "A")["inputs"]
    assert list(inputs.values()) == [["a.txt", "sub/b.txt"]]


def test_manifest_file_stages_exactly_the_listed_keys(tmp_path):
    for key in ("data/r1/r1.hea", "data/r1/r1.dat", "data/r2/r2.hea"):
        put(tmp_path, f"s3://{BUCKET}/{key}", key.encode())
    manifest = [{"prefix": f"s3://{BUCKET}/data/"}, "r1/r1.hea", "r1/r1.dat"]
    put(tmp_path, f"s3://{BUCKET}/m/shard-0001.manifest", json.dumps(manifest).encode())
    inp = s3_input("d", f"s3://{BUCKET}/m/shard-0001.manifest", data_type="ManifestFile")
    result = run(definition(step("A", inputs=[inp])), tmp_path)
    assert list(echo_of(tmp_path, result, "A")["inputs"].values()) == [["r1/r1.dat", "r1/r1.hea"]]


def test_manifest_naming_a_missing_object_fails(tmp_path):
    manifest = [{"prefix": f"s3://{BUCKET}/data/"}, "gone.dat"]
    put(tmp_path, f"s3://{BUCKET}/m.manifest", json.dumps(manifest).encode())
    inp = s3_input("d", f"s3://{BUCKET}/m.manifest", data_type="ManifestFile")
    result = run(definition(step("A", inputs=[inp])), tmp_path)
    assert result.steps["A"].state is StepState.FAILED and "gone.dat" in result.steps["A"].reason


def test_sharded_by_s3_key_runs_one_process_per_instance_with_its_share(tmp_path):
    for i in range(5):
        put(tmp_path, f"s3://{BUCKET}/parts/p{i}.txt")
    inp = s3_input("d", f"s3://{BUCKET}/parts/", distribution="ShardedByS3Key")
    result = run(definition(step("A", inputs=[inp], instances=2)), tmp_path, cores=2)
    assert result.ok
    shares = [next(iter(echo_of(tmp_path, result, "A", f"algo-{i}")["inputs"].values()))
              for i in (1, 2)]
    assert shares == [["p0.txt", "p2.txt", "p4.txt"], ["p1.txt", "p3.txt"]]
    log = result.steps["A"].log.read_text()
    assert "[algo-1]" in log and "[algo-2]" in log


def test_fully_replicated_gives_every_instance_everything(tmp_path):
    for i in range(3):
        put(tmp_path, f"s3://{BUCKET}/parts/p{i}.txt")
    inp = s3_input("d", f"s3://{BUCKET}/parts/")
    result = run(definition(step("A", inputs=[inp], instances=2)), tmp_path)
    for host in ("algo-1", "algo-2"):
        assert len(next(iter(echo_of(tmp_path, result, "A", host)["inputs"].values()))) == 3


def test_internal_errors_are_retried_by_policy(tmp_path, monkeypatch):
    monkeypatch.setenv("MY_CRASH_MARKER", str(tmp_path / "crashed"))
    policy = {"ExceptionType": ["SageMaker.JOB_INTERNAL_ERROR"], "MaxAttempts": 2,
              "IntervalSeconds": 0, "BackoffRate": 2.0}
    result = run(definition(step("A", "crash_once", retry=[policy])), tmp_path)
    assert result.steps["A"].state is StepState.SUCCEEDED and result.steps["A"].attempts == 2


def test_without_a_policy_an_internal_error_fails(tmp_path, monkeypatch):
    monkeypatch.setenv("MY_CRASH_MARKER", str(tmp_path / "crashed"))
    result = run(definition(step("A", "crash_once")), tmp_path)
    assert result.steps["A"].state is StepState.FAILED
    assert "SIGKILL" in result.steps["A"].reason
