"""`upsert` against the moto server: assets, create, update, unchanged, tags, dry-run, errors.

moto 5.2.5 has no ListPipelineVersions/UpdatePipelineVersion, so here upsert records the
version metadata only as tags (and warns); `test_versions.py` covers those calls with Stubber."""

from __future__ import annotations

import re

import json

import boto3

from pipeline.deploy import pipelines
from pipeline.cli import deploy as commands
from tests.conftest import REGION
from tests.pipeline.deploy.conftest import make_role, operations, sm, variant, writes


def objects(bucket: str) -> dict[str, bytes]:
    """What upsert put in the bucket (the account fixture's wheelhouse marker is not counted)."""
    s3 = boto3.client("s3", region_name=REGION)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []) if "/wheels/" not in o["Key"]]
    return {f"s3://{bucket}/{k}": s3.get_object(Bucket=bucket, Key=k)["Body"].read() for k in keys}


def tags(name: str) -> dict[str, str]:
    arn = sm().describe_pipeline(PipelineName=name)["PipelineArn"]
    return {t["Key"]: t["Value"] for t in sm().list_tags(ResourceArn=arn)["Tags"]}


class TestValidUpsert:
    def test_create_uploads_assets_and_sends_definition_role_parallelism_tags(self, cfg, account, builds, capsys):
        assert commands.upsert(cfg) == 0

        [built] = builds
        assert objects(cfg.aws.bucket) == built.assets.files
        described = sm().describe_pipeline(PipelineName=cfg.pipeline.name)
        assert json.loads(described["PipelineDefinition"]) == json.loads(built.definition)
        assert described["RoleArn"] == cfg.aws.role_arn
        assert described["PipelineDescription"] == cfg.pipeline.description
        assert described["ParallelismConfiguration"] == {"MaxParallelExecutionSteps": cfg.max_parallel_steps}
        got = tags(cfg.pipeline.name)
        assert got["project"] == "wavepipe"
        assert got["wavepipe:config-version"] == cfg.pipeline.version
        assert got["wavepipe:code-hash"] == built.assets.code_hash
        assert "wavepipe:git-commit" in got
        assert f"created pipeline {cfg.pipeline.name}" in capsys.readouterr().out

    def test_unchanged_upsert_uploads_nothing_and_makes_no_new_version(self, cfg, account, api_calls, capsys):
        assert commands.upsert(cfg) == 0
        api_calls.clear()

        assert commands.upsert(cfg) == 0

        assert writes(api_calls) == []
        assert "unchanged" in capsys.readouterr().out

    def test_only_missing_or_different_assets_are_uploaded(self, cfg, account, api_calls):
        assert commands.upsert(cfg) == 0
        s3 = boto3.client("s3", region_name=REGION)
        first, *_ = sorted(objects(cfg.aws.bucket))
        s3.delete_object(Bucket=cfg.aws.bucket, Key=first.split("/", 3)[3])
        api_calls.clear()

        assert commands.upsert(cfg) == 0

        puts = [p for _, op, p in api_calls if op == "PutObject"]
        assert [f"s3://{p['Bucket']}/{p['Key']}" for p in puts] == [first]

    def test_changed_definition_updates_the_pipeline_and_its_tags(self, cfg, account, api_calls, builds, capsys):
        assert commands.upsert(cfg) == 0
        featurize = {**cfg.model_dump(mode="json")["stages"]["featurize"], "macroshards": 3}
        changed = variant(cfg, pipeline={"version": "1.1.0"}, stages={"featurize": featurize})
        api_calls.clear()

        assert commands.upsert(changed) == 0

        assert "UpdatePipeline" in operations(api_calls)
        definition = json.loads(sm().describe_pipeline(PipelineName=cfg.pipeline.name)["PipelineDefinition"])
        assert definition == json.loads(builds[-1].definition)
        assert tags(cfg.pipeline.name)["wavepipe:config-version"] == "1.1.0"
        arn = sm().describe_pipeline(PipelineName=cfg.pipeline.name)["PipelineArn"]
        keys = [t["Key"] for t in sm().list_tags(ResourceArn=arn)["Tags"]]
        assert len(keys) == len(set(keys))
        out = capsys.readouterr().out
        assert "definition changed" in out

    def test_a_parallelism_change_alone_is_an_update(self, cfg, account, capsys):
        assert commands.upsert(cfg) == 0

        assert commands.upsert(variant(cfg, max_parallel_steps=3)) == 0

        described = sm().describe_pipeline(PipelineName=cfg.pipeline.name)
        assert described["ParallelismConfiguration"] == {"MaxParallelExecutionSteps": 3}
        assert "max parallel steps changed" in capsys.readouterr().out

    def test_a_large_definition_travels_by_s3_location(self, cfg, account, api_calls, builds, monkeypatch):
        monkeypatch.setattr(pipelines, "INLINE_MAX", 100)

        assert commands.upsert(cfg) == 0

        create = next(p for _, op, p in api_calls if op == "CreatePipeline")
        location = create["PipelineDefinitionS3Location"]
        assert "PipelineDefinition" not in create
        uploaded = objects(cfg.aws.bucket)[f"s3://{location['Bucket']}/{location['ObjectKey']}"]
        # (moto stores an S3-located definition as a dict and describes it as its repr: not checked there)
        assert json.loads(uploaded) == json.loads(builds[-1].definition)


class TestValidDryRun:
    def test_dry_run_prints_the_calls_and_makes_none(self, cfg, account, api_calls, capsys):
        assert commands.upsert(cfg, alias="prod", dry_run=True) == 0

        assert writes(api_calls) == []
        out = capsys.readouterr().out
        assert "[dry-run] s3:PutObject" in out
        assert "[dry-run] sagemaker:CreatePipeline pipeline wavepipe-example" in out
        assert "PipelineVersionAliases=[\"prod\"]" in out
        assert objects(cfg.aws.bucket) == {}
        assert sm().list_pipelines()["PipelineSummaries"] == []

    def test_dry_run_of_a_change_prints_update_not_create(self, cfg, account, api_calls, capsys):
        assert commands.upsert(cfg) == 0
        capsys.readouterr()
        api_calls.clear()

        assert commands.upsert(variant(cfg, max_parallel_steps=4), dry_run=True) == 0

        assert writes(api_calls) == []
        out = capsys.readouterr().out
        assert "[dry-run] sagemaker:UpdatePipeline" in out
        assert "would update pipeline wavepipe-example: max parallel steps changed" in out


    def test_the_cli_reaches_the_command(self, account, capsys):
        from pipeline.cli import main
        from tests.pipeline.deploy.conftest import EXAMPLE

        assert main(["upsert", "--config", str(EXAMPLE), "--alias", "prod", "--dry-run"]) == 0

        assert "would create pipeline wavepipe-example" in capsys.readouterr().out


class TestInvalidUpsert:
    def test_role_without_sagemaker_trust_is_named_and_nothing_changes(self, cfg, aws, api_calls, capsys):
        boto3.client("s3", region_name=REGION).create_bucket(Bucket=cfg.aws.bucket)
        make_role("wavepipe-pipeline", "scheduler.amazonaws.com")
        api_calls.clear()

        assert commands.upsert(cfg) == 1

        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0
        assert "does not trust sagemaker.amazonaws.com" in err
        assert writes(api_calls) == []

    def test_missing_bucket_is_one_line_naming_the_operation_and_object(self, cfg, aws, capsys):
        make_role("wavepipe-pipeline", "sagemaker.amazonaws.com", "scheduler.amazonaws.com")

        assert commands.upsert(cfg) == 1

        err = capsys.readouterr().err
        assert err.count("\n") == 1
        assert err.startswith("error: PutObject on s3://wavepipe-example/")
        assert "NoSuchBucket" in err

    def test_missing_role_is_one_line(self, cfg, aws, capsys):
        assert commands.upsert(cfg) == 1

        err = capsys.readouterr().err
        assert err.count("\n") == 1
        assert err.startswith("error: GetRole on role wavepipe-pipeline: NoSuchEntity")

    def test_missing_credentials_is_one_line(self, cfg, monkeypatch, tmp_path, capsys):
        for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            monkeypatch.delenv(var, raising=False)
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
        monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")

        assert commands.status(cfg) == 1

        err = capsys.readouterr().err
        assert err == f"error: DescribePipeline on pipeline {cfg.pipeline.name}: no AWS credentials found " \
                      "(set AWS_PROFILE, or run `aws configure` / `aws sso login`)\n"


class TestAccountTraps:
    """Issue 12: what CreatePipeline would refuse is refused before anything is uploaded."""

    def test_a_definition_over_1_mib_is_not_deployed(self, cfg, account, api_calls, capsys, monkeypatch):
        import pipeline.definition.validate as validate

        monkeypatch.setattr(validate, "DEFINITION_MAX", 10_000)  # the example is ~16 kB
        api_calls.clear()

        assert commands.upsert(cfg) == 1

        err = capsys.readouterr().err
        assert re.search(r"error: definition: [\d,]+ bytes compact of 10,000 ", err) and \
            "1 problem(s) in the definition" in err
        assert "lower stages.featurize.macroshards to at most 1" in err
        assert api_calls == []  # validated before any call

    def test_upsert_says_how_many_shards_fit(self, cfg, account, capsys):
        assert commands.upsert(cfg) == 0
        assert re.search(r"bytes compact of 1,048,576 \(1 MiB\): about 2\d\d Featurize steps fit, this has 2",
                         capsys.readouterr().out)

    def test_auto_shards_upsert_a_for_each_and_start(self, cfg, account, capsys):
        stages = cfg.model_dump(mode="json", exclude_none=True)["stages"]
        stages["featurize"].update(macroshards="auto", target_shard_size="20GB")
        auto = variant(cfg, stages=stages)
        assert commands.upsert(auto) == 0
        assert "the shards are a ForEach's iterations, so the size does not grow with them" in capsys.readouterr().out
        steps = json.loads(sm().describe_pipeline(PipelineName=cfg.pipeline.name)["PipelineDefinition"])["Steps"]
        assert [(s["Name"], s["Type"]) for s in steps] == [
            ("Reconcile", "Processing"), ("Featurize", "ForEach"), ("Combine", "Processing"), ("Encode", "Processing")]
        assert commands.start(auto, params={}, wait=False) == 0
