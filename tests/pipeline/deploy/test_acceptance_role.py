"""The acceptance run's flow on the moto server with IAM enforcement on, under exactly the role it
generates for its random prefix (tests/aws/acceptance.py): the sample data under the prefix, the
assets uploaded with the deployer policy's credentials, then the whole pipeline run (`local`
against the moto endpoint: moto's pipelines run no jobs) holding only that role's credentials,
and the outputs the acceptance test checks on a real account found under the prefix.

What moto does not enforce is said in tests/pipeline/deploy/test_iam_policy.py (S3 is authorized
by tests/moto_iam.py as AWS documents it, `s3:prefix` conditions included).
"""

from __future__ import annotations

import json
import uuid

import boto3
import pytest
import requests

from pipeline.cli import main
from pipeline.config import load_config
from pipeline.deploy import iam_policy
from pipeline.stages.common import base_uri
from tests.aws.acceptance import create_role, overlay, role_arn
from tests.conftest import EXAMPLE_CONFIG, REGION
from tests.moto_iam import s3_authorization
from tests.pipeline.deploy.test_iam_policy import set_auth

BUCKET = "wavepipe-acceptance-bucket"


def test_the_acceptance_flow_passes_under_its_generated_role(moto_server, monkeypatch, tmp_path, capsys):
    from pipeline.build.compose import build
    from pipeline.local.backend import open_backend, write_assets
    from pipeline.local.command import ensure_sample_data

    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    name = f"wavepipe-acceptance-{uuid.uuid4().hex[:8]}"
    prefix = f"wavepipe-acceptance/{name}"
    config = overlay(tmp_path, name, REGION, BUCKET, role_arn("123456789012", name), prefix)
    cfg = load_config(EXAMPLE_CONFIG, overlays=[config])
    assert base_uri(cfg).startswith(f"s3://{BUCKET}/{prefix}/")
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    ensure_sample_data(cfg, tmp_path / "sample", moto_server)  # under <prefix>/sample: the run's own data
    iam = boto3.client("iam")
    create_role(iam, cfg)
    assert json.loads(json.dumps(iam.get_role_policy(RoleName=name, PolicyName="wavepipe-pipeline")
                                 ["PolicyDocument"])) == iam_policy.role_policy(cfg)
    iam.create_user(UserName="deployer")
    iam.put_user_policy(UserName="deployer", PolicyName="deploy",
                        PolicyDocument=json.dumps(iam_policy.deployer_policy(cfg)))
    deployer = iam.create_access_key(UserName="deployer")["AccessKey"]
    role = boto3.client("sts").assume_role(RoleArn=cfg.aws.role_arn, RoleSessionName="acceptance")["Credentials"]
    no_sample = tmp_path / "no-sample.yaml"
    no_sample.write_text("local:\n  sample_data_uri: null\n")
    set_auth(moto_server, "0")
    try:
        with s3_authorization():
            monkeypatch.setenv("AWS_ACCESS_KEY_ID", deployer["AccessKeyId"])
            monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", deployer["SecretAccessKey"])
            monkeypatch.delenv("AWS_SESSION_TOKEN")
            monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
            assets = build(cfg).assets.files
            assert write_assets(open_backend(moto_server, tmp_path / "w"), assets) == len(assets)
            monkeypatch.setenv("AWS_ACCESS_KEY_ID", role["AccessKeyId"])
            monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", role["SecretAccessKey"])
            monkeypatch.setenv("AWS_SESSION_TOKEN", role["SessionToken"])
            monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
            code = main(["local", "--config", str(EXAMPLE_CONFIG), "--overlay", str(config), "--overlay",
                         str(no_sample), "--workdir", str(tmp_path / "w"), "--s3-endpoint", moto_server])
            assert code == 0, capsys.readouterr().out[-3000:]
    finally:
        set_auth(moto_server, "inf")
    try:
        s3 = boto3.client("s3", aws_access_key_id="testing", aws_secret_access_key="x", aws_session_token="x")
        written = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
                   for o in page.get("Contents", [])]
        assert all(k.startswith(prefix + "/") for k in written)  # nothing outside the run's prefix
        [report] = [k for k in written if k.endswith("/reconcile/report.json")]
        assert json.loads(s3.get_object(Bucket=BUCKET, Key=report)["Body"].read())["matched"] == 24
        # One features file per shard, under experiments/<name>/shards/<digest>/features/<key>/.
        assert len([k for k in written if "/shards/" in k and k.endswith("/features.parquet")]) == 2
        assert any(k.endswith("/combine/waveform_summary.parquet") for k in written)
        assert any(k.endswith("/encode/full_dataset/dataset_dict.json") for k in written)
    finally:
        requests.post(f"{moto_server}/moto-api/reset", timeout=10)


@pytest.mark.parametrize("outside", ["wavepipe-acceptance/other-run/x", "wavepipe/wavepipe-example/x"])
def test_the_generated_role_covers_only_its_prefix(example_cfg, tmp_path, outside):
    """Another run's prefix, or the example's, is not the run's: no statement grants it."""
    from tests.moto_iam import decide

    name = "wavepipe-acceptance-0badc0de"
    cfg = load_config(EXAMPLE_CONFIG, overlays=[overlay(tmp_path, name, REGION, BUCKET,
                                                        role_arn("123456789012", name), f"wavepipe-acceptance/{name}")])
    statements = iam_policy.role_policy(cfg)["Statement"]
    arn = f"arn:aws:s3:::{BUCKET}/"
    assert decide(statements, "s3:PutObject", f"{arn}wavepipe-acceptance/{name}/{name}/run/x", {})
    assert not decide(statements, "s3:PutObject", arn + outside, {})
    assert not decide(statements, "s3:GetObject", arn + outside, {})
