"""Acceptance on a real AWS account: the first thing to run on a new account.

    WAVEPIPE_TEST_BUCKET=my-bucket .venv/bin/python -m pytest -m aws -p no:cacheprovider -s

A tiny pipeline (the example: Reconcile, 2 Featurize shards, Combine, Encode, on ml.m5.large)
over the generated sample data, under `s3://<bucket>/wavepipe-acceptance/<name>/`: `upsert`
(which builds and uploads the wheelhouse), `start --wait`, every stage's outputs checked, then
the pipeline and every object it wrote deleted, whatever happened. The processing jobs stay in
the account's job history (SageMaker has no delete for them). About 20 to 30 minutes and a few
cents of processing. Region: WAVEPIPE_TEST_REGION, else the session's, else us-east-1.

Each run creates its own role, `role/wavepipe-acceptance/<name>`, with the permissions
`iam-policy --for role` generates for exactly the run's config and prefix (tests/aws/acceptance.py),
and deletes it afterwards: your credentials need iam:CreateRole, PutRolePolicy, DeleteRolePolicy,
DeleteRole and PassRole on `role/wavepipe-acceptance/*`. Without them, set WAVEPIPE_TEST_ROLE_ARN
to a role whose policy covers `s3://<bucket>/wavepipe-acceptance/` instead. The same flow runs on
moto with IAM enforcement under exactly the generated role (tests/pipeline/deploy/test_acceptance_role.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid

import boto3
import pytest
from botocore.exceptions import ClientError

from pipeline.config import load_config
from pipeline.cli import deploy as commands
from pipeline.deploy.roles import role_name
from pipeline.local.command import ensure_sample_data
from tests.aws.acceptance import create_role, delete_role, overlay, role_arn
from tests.conftest import EXAMPLE_CONFIG

pytestmark = pytest.mark.aws


def own_role(region: str, name: str) -> str:
    """WAVEPIPE_TEST_ROLE_ARN if given (its policy must cover `wavepipe-acceptance/`), else the run's
    own role, created by `run_role` for exactly the run's prefix."""
    given = os.environ.get("WAVEPIPE_TEST_ROLE_ARN")
    if given:
        return given
    account = boto3.client("sts", region_name=region).get_caller_identity()["Arn"].split(":")[4]
    return role_arn(account, name)


@contextlib.contextmanager
def run_role(cfg):
    """Create the run's role (unless WAVEPIPE_TEST_ROLE_ARN names one) and delete it afterwards."""
    if os.environ.get("WAVEPIPE_TEST_ROLE_ARN"):
        yield
        return
    iam = boto3.client("iam")
    try:
        create_role(iam, cfg)
    except ClientError as err:
        pytest.skip(f"cannot create the run's role {cfg.aws.role_arn} ({err}): allow yourself iam:CreateRole, "
                    "iam:PutRolePolicy, iam:DeleteRolePolicy, iam:DeleteRole and iam:PassRole on "
                    "role/wavepipe-acceptance/*, or set WAVEPIPE_TEST_ROLE_ARN to a role whose policy covers "
                    "s3://<bucket>/wavepipe-acceptance/")
    try:
        iam.get_waiter("role_exists").wait(RoleName=role_name(cfg.aws.role_arn))
        time.sleep(15)  # IAM is eventually consistent: SageMaker may not see a new role at once
        yield
    finally:
        delete_role(iam, cfg)


def keys(s3, bucket: str, prefix: str) -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def delete_prefix(s3, bucket: str, prefix: str) -> None:
    found = keys(s3, bucket, prefix)
    for i in range(0, len(found), 1000):
        s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in found[i:i + 1000]]})


def test_tiny_pipeline_runs_every_stage_on_the_account(tmp_path):
    bucket = os.environ["WAVEPIPE_TEST_BUCKET"]
    region = os.environ.get("WAVEPIPE_TEST_REGION") or boto3.Session().region_name or "us-east-1"
    name = f"wavepipe-acceptance-{uuid.uuid4().hex[:8]}"
    prefix = f"wavepipe-acceptance/{name}"
    role = own_role(region, name)
    cfg = load_config(EXAMPLE_CONFIG, overlays=[overlay(tmp_path, name, region, bucket, role, prefix)])
    s3 = boto3.client("s3", region_name=region)
    with run_role(cfg):
        run_tiny_pipeline(cfg, s3, region, name, prefix, bucket, tmp_path)


def run_tiny_pipeline(cfg, s3, region, name, prefix, bucket, tmp_path) -> None:
    try:
        ensure_sample_data(cfg, tmp_path, "aws")
        assert commands.upsert(cfg) == 0
        assert commands.start(cfg, params={}, wait=True) == 0
        sm = boto3.client("sagemaker", region_name=region)
        (execution,) = sm.list_pipeline_executions(PipelineName=name)["PipelineExecutionSummaries"]
        run = f"{prefix}/{name}/{execution['PipelineExecutionArn'].rsplit('/', 1)[-1]}"
        written = set(keys(s3, bucket, f"{prefix}/{name}/"))
        report = json.loads(s3.get_object(Bucket=bucket, Key=f"{run}/reconcile/report.json")["Body"].read())
        assert report["matched"] == 24
        # One features file per shard, under experiments/<name>/shards/<digest>/features/<key>/ (the
        # same check as tests/pipeline/deploy/test_acceptance_role.py makes on moto).
        assert len([k for k in written if "/shards/" in k and k.endswith("/features.parquet")]) == 2
        assert f"{run}/combine/waveform_summary.parquet" in written
        assert f"{run}/combine/signal_stats.csv" in written
        assert f"{run}/encode/full_dataset/dataset_dict.json" in written
        assert any(f"{prefix}/{name}/wheels/" in k for k in written)  # the jobs installed from it
    finally:
        commands.delete(cfg)
        delete_prefix(s3, bucket, prefix + "/")


def test_auto_shards_fan_out_with_for_each_and_iterations_are_cached(tmp_path):
    """`macroshards: auto` on the account: Reconcile decides 4 shards (the sample's ~594 KB over
    200 KB), the ForEach runs 4 iterations, 2 at a time, and an unchanged second execution
    finds every iteration in the step cache (what the local runner assumes; this checks it)."""
    bucket = os.environ["WAVEPIPE_TEST_BUCKET"]
    region = os.environ.get("WAVEPIPE_TEST_REGION") or boto3.Session().region_name or "us-east-1"
    name = f"wavepipe-acceptance-auto-{uuid.uuid4().hex[:8]}"
    prefix = f"wavepipe-acceptance/{name}"
    auto = {"macroshards": "auto", "target_shard_size": "200KB", "max_concurrency": 2}
    role = own_role(region, name)
    cfg = load_config(EXAMPLE_CONFIG, overlays=[overlay(tmp_path, name, region, bucket, role, prefix, auto)])
    s3 = boto3.client("s3", region_name=region)
    sm = boto3.client("sagemaker", region_name=region)
    with run_role(cfg):
        run_auto_twice(cfg, s3, sm, name, prefix, bucket, tmp_path)


def run_auto_twice(cfg, s3, sm, name, prefix, bucket, tmp_path) -> None:
    try:
        ensure_sample_data(cfg, tmp_path, "aws")
        assert commands.upsert(cfg) == 0
        runs = []
        for _ in range(2):
            assert commands.start(cfg, params={}, wait=True) == 0
            newest = sm.list_pipeline_executions(PipelineName=name, SortBy="CreationTime", SortOrder="Descending")
            arn = newest["PipelineExecutionSummaries"][0]["PipelineExecutionArn"]
            pages = sm.get_paginator("list_pipeline_execution_steps").paginate(PipelineExecutionArn=arn)
            runs.append([s for page in pages for s in page["PipelineExecutionSteps"]])
        for steps in runs:
            iterations = sorted((s for s in steps if s.get("IterationContext")), key=lambda s: s["IterationContext"]["Index"])
            assert [s["IterationContext"]["ParentStepName"] for s in iterations] == ["Featurize"] * 4
            assert all(s["StepStatus"] == "Succeeded" for s in iterations)
            (fan,) = [s for s in steps if s["StepName"] == "Featurize"]
            assert fan["Metadata"]["ForEach"]["InputItemCount"] == 4
        second = [s for s in runs[1] if s.get("IterationContext")]
        assert all(s.get("CacheHitResult", {}).get("SourcePipelineExecutionArn") for s in second), second
    finally:
        commands.delete(cfg)
        delete_prefix(s3, bucket, prefix + "/")
