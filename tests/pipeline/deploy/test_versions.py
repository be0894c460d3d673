"""Pipeline version display names, descriptions and aliases, and `versions`.

moto 5.2.5 implements neither ListPipelineVersions nor UpdatePipelineVersion (nor aliases), so
these tests answer the SageMaker calls with botocore's `Stubber` (which also checks every
request against botocore's service model); IAM and S3 still go to the moto server where used."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from botocore.stub import ANY

from pipeline.build.compose import build
from pipeline.deploy import clients, versions
from pipeline.cli import deploy as commands
from pipeline.deploy.pipelines import definition_args
from pipeline.deploy.provenance import Provenance
from tests.conftest import REGION

NAME = "wavepipe-example"
ARN = f"arn:aws:sagemaker:{REGION}:123456789012:pipeline/{NAME}"
PROV = Provenance(config_version="1.0.0", code_hash="0123456789abcdef", commit="abc123def456")
WHEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def summary(version: int, *aliases: str, **extra) -> dict:
    return {"PipelineArn": ARN, "PipelineVersionId": version, "CreationTime": WHEN,
            "PipelineVersionAliases": list(aliases), **extra}


def expect_list(stubbed, *summaries, newest_only=False) -> None:
    params = {"PipelineName": NAME, "SortOrder": "Descending"}
    if newest_only:
        params["MaxResults"] = 1
    stubbed.add_response("list_pipeline_versions", {"PipelineVersionSummaries": list(summaries)}, params)


def expect_update(stubbed, version: int, **fields) -> None:
    stubbed.add_response("update_pipeline_version", {"PipelineArn": ARN, "PipelineVersionId": version},
                         {"PipelineArn": ARN, "PipelineVersionId": version, **fields})


METADATA = {"PipelineVersionDisplayName": "cfg-1-0-0-code-0123456789abcdef",
            "PipelineVersionDescription": "config version 1.0.0; code hash 0123456789abcdef; git commit abc123def456"}


class TestValidVersionMetadata:
    def test_display_name_and_description_go_on_the_newest_version(self, stubbed):
        expect_list(stubbed, summary(3), newest_only=True)
        expect_update(stubbed, 3, **METADATA)

        assert versions.record(clients.connect(REGION), NAME, ARN, None, PROV) == 3

    def test_an_alias_moves_from_the_version_holding_it(self, stubbed, capsys):
        expect_list(stubbed, summary(4), summary(3, "prod"))
        expect_update(stubbed, 3, PipelineVersionAliasOperations={"Remove": ["prod"]})
        expect_update(stubbed, 4, **METADATA, PipelineVersionAliasOperations={"Add": ["prod"]})

        versions.record(clients.connect(REGION), NAME, ARN, 4, PROV, "prod")

        assert "alias prod -> version 4" in capsys.readouterr().out

    def test_an_alias_already_on_the_version_is_left_alone(self, stubbed, capsys):
        expect_list(stubbed, summary(4, "prod"), summary(3))

        versions.record(clients.connect(REGION), NAME, ARN, 4, None, "prod")

        assert "alias prod already points at version 4" in capsys.readouterr().out

    def test_display_name_fits_botocore_pattern(self):
        import re

        name = Provenance(config_version="2.0.0-rc.1+build.7", code_hash="f" * 16, commit=None).display_name()
        assert re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,81}", name)


class TestValidVersionsCommand:
    def test_lists_ids_display_names_aliases_and_descriptions(self, cfg, stubbed, capsys):
        stubbed.add_response("describe_pipeline", {"PipelineArn": ARN}, {"PipelineName": NAME})
        expect_list(stubbed, summary(2, "prod", PipelineVersionDisplayName="cfg-1-1-0-code-x",
                                     PipelineVersionDescription="config version 1.1.0"), summary(1))

        assert commands.versions(cfg) == 0

        lines = capsys.readouterr().out.splitlines()
        assert lines[0] == "   2  2026-01-02 03:04:05  cfg-1-1-0-code-x  aliases: prod  config version 1.1.0"
        assert lines[1] == "   1  2026-01-02 03:04:05  -  aliases: -"


class TestValidUpsertWithAlias:
    """The whole upsert with IAM and S3 on moto and the SageMaker side stubbed."""

    @pytest.fixture(autouse=True)
    def one_build(self, cfg, monkeypatch):
        """One build, reused by the command: the stubbed describe must match it exactly."""
        import pipeline.build.compose

        self.built = build(cfg)
        monkeypatch.setattr(pipeline.build.compose, "build", lambda _cfg: self.built)

    def described(self, cfg, **overrides) -> dict:
        arg, _ = definition_args(cfg, self.built.definition)
        return {"PipelineArn": ARN, "PipelineName": NAME, "PipelineDefinition": arg["PipelineDefinition"],
                "RoleArn": cfg.aws.role_arn, "PipelineDescription": cfg.pipeline.description,
                "ParallelismConfiguration": {"MaxParallelExecutionSteps": cfg.max_parallel_steps}, **overrides}

    def test_changed_pipeline_gets_new_version_metadata_and_the_alias(self, cfg, account, stubbed, capsys):
        stubbed.add_response("describe_pipeline", self.described(cfg, PipelineDefinition=json.dumps({"old": 1})),
                             {"PipelineName": NAME})
        stubbed.add_response("update_pipeline", {"PipelineArn": ARN, "PipelineVersionId": 5}, {
            "PipelineName": NAME, "RoleArn": cfg.aws.role_arn, "PipelineDescription": cfg.pipeline.description,
            "ParallelismConfiguration": {"MaxParallelExecutionSteps": cfg.max_parallel_steps},
            "PipelineDefinition": ANY})
        stubbed.add_response("list_tags", {"Tags": [{"Key": "project", "Value": "wavepipe"}]}, {"ResourceArn": ARN})
        stubbed.add_response("add_tags", {"Tags": []}, {"ResourceArn": ARN, "Tags": ANY})
        expect_list(stubbed, summary(5), summary(4, "prod"))
        expect_update(stubbed, 4, PipelineVersionAliasOperations={"Remove": ["prod"]})
        stubbed.add_response("update_pipeline_version", {"PipelineArn": ARN, "PipelineVersionId": 5}, {
            "PipelineArn": ARN, "PipelineVersionId": 5, "PipelineVersionDisplayName": ANY,
            "PipelineVersionDescription": ANY, "PipelineVersionAliasOperations": {"Add": ["prod"]}})

        assert commands.upsert(cfg, alias="prod") == 0

        out = capsys.readouterr().out
        assert "updated pipeline wavepipe-example: definition changed" in out
        assert "alias prod -> version 5" in out

    def test_unchanged_pipeline_points_the_alias_at_its_newest_version(self, cfg, account, stubbed, capsys):
        stubbed.add_response("describe_pipeline", self.described(cfg), {"PipelineName": NAME})
        stubbed.add_response("list_tags", {"Tags": [{"Key": "project", "Value": "wavepipe"}]}, {"ResourceArn": ARN})
        expect_list(stubbed, summary(7), newest_only=True)
        expect_list(stubbed, summary(7), summary(6, "prod"))
        expect_update(stubbed, 6, PipelineVersionAliasOperations={"Remove": ["prod"]})
        expect_update(stubbed, 7, PipelineVersionAliasOperations={"Add": ["prod"]})

        assert commands.upsert(cfg, alias="prod") == 0

        out = capsys.readouterr().out
        assert "unchanged" in out and "alias prod -> version 7" in out


class TestInvalidVersions:
    def test_an_alias_that_cannot_be_set_fails_the_upsert_in_one_line(self, cfg, account, stubbed, capsys):
        stubbed.add_response("describe_pipeline", {"PipelineArn": ARN, "PipelineDefinition": "{}",
                                                   "RoleArn": cfg.aws.role_arn}, {"PipelineName": NAME})
        stubbed.add_response("update_pipeline", {"PipelineArn": ARN, "PipelineVersionId": 2}, None)
        stubbed.add_response("list_tags", {"Tags": []}, None)
        stubbed.add_response("add_tags", {"Tags": []}, None)
        stubbed.add_client_error("list_pipeline_versions", "AccessDeniedException", "not allowed")

        assert commands.upsert(cfg, alias="prod") == 1

        err = capsys.readouterr().err
        assert err == f"error: ListPipelineVersions on pipeline {NAME}: AccessDeniedException: not allowed\n"

    def test_versions_of_a_missing_pipeline_says_to_upsert(self, cfg, account, capsys):
        assert commands.versions(cfg) == 1

        assert capsys.readouterr().err == f"error: pipeline {NAME} does not exist: run `deploy.py upsert` first\n"
