"""Deploy tests run the real commands through real boto3 against the shared moto server.

What moto 5.2.5 lacks (ListPipelineVersions, UpdatePipelineVersion and version aliases,
ListPipelineExecutionSteps) is covered with botocore's `Stubber` in the tests that say so.
"""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.client import BaseClient

from pipeline.config import Config, load_config, validate_config
from pipeline.deploy import clients
from tests.conftest import EXAMPLE_CONFIG, REGION, ROOT

EXAMPLE = EXAMPLE_CONFIG
READ_PREFIXES = ("Describe", "List", "Get", "Head")


def trust_policy(*services: str) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": list(services)}, "Action": "sts:AssumeRole"}]})


def variant(cfg: Config, **changes) -> Config:
    """The config with top-level sections replaced or merged (dicts merge one level deep)."""
    data = cfg.model_dump(mode="json", exclude_none=True)
    for key, value in changes.items():
        data[key] = {**data[key], **value} if isinstance(value, dict) and isinstance(data.get(key), dict) else value
    return validate_config(data, "<test variant>")


@pytest.fixture(scope="session")
def example_cfg() -> Config:
    return load_config(EXAMPLE)


@pytest.fixture
def cfg(example_cfg) -> Config:
    return example_cfg


def put_wheelhouse_marker(cfg: Config) -> None:
    """The account already has the jobs' wheelhouse (its marker: upsert then builds and uploads
    nothing): building and uploading one is tested in tests/pipeline/deploy/test_wheel_upload.py."""
    from pipeline.build.compose import job_wheelhouse
    from pipeline.build.images import installs_requirements
    from pipeline.stages.common import base_uri
    from pipeline.build.wheelhouse import MARKER

    wheelhouse = job_wheelhouse(cfg, installs_requirements(cfg))
    if wheelhouse is not None:
        key = wheelhouse.uri(base_uri(cfg))[len(f"s3://{cfg.aws.bucket}/"):] + MARKER
        boto3.client("s3", region_name=REGION).put_object(Bucket=cfg.aws.bucket, Key=key, Body=b"{}")


def make_role(name: str, *services: str) -> str:
    iam = boto3.client("iam", region_name=REGION)
    return iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust_policy(*services))["Role"]["Arn"]


@pytest.fixture
def account(aws, cfg, monkeypatch):
    """The moto account the example config deploys to: its bucket and a role trusted by both
    SageMaker and EventBridge Scheduler. Unimplemented moto operations answer HTTP 500, which
    boto3 would retry: one attempt keeps those tests fast."""
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    boto3.client("s3", region_name=REGION).create_bucket(Bucket=cfg.aws.bucket)
    put_wheelhouse_marker(cfg)
    make_role(cfg.aws.role_arn.rsplit("/", 1)[-1], "sagemaker.amazonaws.com", "scheduler.amazonaws.com")
    return aws


@pytest.fixture
def api_calls(monkeypatch) -> list[tuple[str, str, dict]]:
    """Every AWS request made from here on, as (service, operation, params); the calls still happen."""
    calls: list[tuple[str, str, dict]] = []
    original = BaseClient._make_api_call

    def spy(self, operation_name, api_params):
        calls.append((self.meta.service_model.service_name, operation_name, api_params))
        return original(self, operation_name, api_params)

    monkeypatch.setattr(BaseClient, "_make_api_call", spy)
    return calls


def operations(calls) -> list[str]:
    return [op for _, op, _ in calls]


def writes(calls) -> list[str]:
    return [op for op in operations(calls) if not op.startswith(READ_PREFIXES)]


@pytest.fixture
def builds(monkeypatch) -> list:
    """Every `Built` the commands make, so a test compares with exactly what was deployed
    (a second build could differ while someone edits steps/ in the same tree)."""
    import pipeline.build.compose

    made: list = []
    original = pipeline.build.compose.build

    def spy(cfg):
        made.append(original(cfg))
        return made[-1]

    monkeypatch.setattr(pipeline.build.compose, "build", spy)
    return made


@pytest.fixture
def stubbed(monkeypatch):
    """A stubbed SageMaker client the commands use instead of a real one (for what moto lacks)."""
    from botocore.stub import Stubber

    client = boto3.client("sagemaker", region_name=REGION)
    stubber = Stubber(client)
    monkeypatch.setattr(clients, "connect",
                        lambda region, dry_run=False: clients.Aws(region, dry_run, clients={"sagemaker": client}))
    with stubber:
        yield stubber
    stubber.assert_no_pending_responses()


def sm():
    return boto3.client("sagemaker", region_name=REGION)


def scheduler():
    return boto3.client("scheduler", region_name=REGION)
