"""`start` and `status`: parameters on the moto server; `--wait` and step states with Stubber,
because moto 5.2.5 has no ListPipelineExecutionSteps (its executions also succeed at once)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from botocore.stub import ANY

from pipeline.deploy import executions
from pipeline.cli import deploy as commands
from tests.conftest import REGION
from tests.pipeline.deploy.conftest import operations, sm, writes

NAME = "wavepipe-example"
ARN = f"arn:aws:sagemaker:{REGION}:123456789012:pipeline/{NAME}"
EXECUTION = f"{ARN}/execution/abc123"
WHEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


@pytest.fixture
def deployed(cfg, account):
    assert commands.upsert(cfg) == 0
    return cfg


class TestValidStart:
    def test_parameters_reach_the_execution(self, deployed, capsys):
        assert commands.start(deployed, {"ExperimentName": "exp1", "Reload": "true"}) == 0

        [execution] = sm().list_pipeline_executions(PipelineName=NAME)["PipelineExecutionSummaries"]
        params = sm().list_pipeline_parameters_for_execution(PipelineExecutionArn=execution["PipelineExecutionArn"])
        assert params["PipelineParameters"] == [{"Name": "ExperimentName", "Value": "exp1"},
                                                {"Name": "Reload", "Value": "true"}]
        assert f"started {execution['PipelineExecutionArn']}" in capsys.readouterr().out

    @pytest.mark.parametrize("kwargs, field, value", [
        ({"version": 2}, "PipelineVersionId", 2),
        ({"alias": "prod"}, "PipelineVersionAlias", "prod"),
    ])
    def test_version_or_alias_is_sent(self, deployed, api_calls, kwargs, field, value):
        assert commands.start(deployed, {}, **kwargs) == 0

        [request] = [p for _, op, p in api_calls if op == "StartPipelineExecution"]
        assert request[field] == value

    def test_dry_run_starts_nothing(self, deployed, api_calls, capsys):
        assert commands.start(deployed, {"ExperimentName": "x"}, dry_run=True) == 0

        assert writes(api_calls) == []
        assert sm().list_pipeline_executions(PipelineName=NAME)["PipelineExecutionSummaries"] == []
        assert "[dry-run] sagemaker:StartPipelineExecution pipeline wavepipe-example" in capsys.readouterr().out

    def test_status_lists_recent_executions(self, deployed, capsys):
        for _ in range(3):
            assert commands.start(deployed, {}) == 0
        ids = [e["PipelineExecutionArn"].rsplit("/", 1)[-1]
               for e in sm().list_pipeline_executions(PipelineName=NAME)["PipelineExecutionSummaries"]]
        capsys.readouterr()

        assert commands.status(deployed, limit=2) == 0

        shown = [line.split()[0] for line in capsys.readouterr().out.splitlines() if not line.startswith(" ")]
        assert len(shown) == 2 and set(shown) <= set(ids)


def step(name: str, status: str, reason: str | None = None) -> dict:
    return {"StepName": name, "StepStatus": status, **({"FailureReason": reason} if reason else {})}


def expect_poll(stubbed, status: str, steps: list[dict], reason: str | None = None) -> None:
    described = {"PipelineExecutionArn": EXECUTION, "PipelineExecutionStatus": status}
    if reason:
        described["FailureReason"] = reason
    stubbed.add_response("describe_pipeline_execution", described, {"PipelineExecutionArn": EXECUTION})
    stubbed.add_response("list_pipeline_execution_steps", {"PipelineExecutionSteps": steps},
                         {"PipelineExecutionArn": EXECUTION, "SortOrder": "Ascending"})


class TestValidWait:
    """Stubber: moto has no ListPipelineExecutionSteps."""

    def expect_start(self, stubbed, cfg) -> None:
        stubbed.add_response("start_pipeline_execution", {"PipelineExecutionArn": EXECUTION}, {
            "PipelineName": NAME, "ClientRequestToken": ANY,
            "PipelineExecutionDescription": ANY})

    def test_wait_prints_each_step_change_until_success(self, cfg, stubbed, monkeypatch, capsys):
        monkeypatch.setattr(executions, "POLL_SECONDS", 0)
        self.expect_start(stubbed, cfg)
        expect_poll(stubbed, "Executing", [step("Reconcile", "Executing")])
        expect_poll(stubbed, "Executing", [step("Reconcile", "Executing")])
        expect_poll(stubbed, "Executing", [step("Reconcile", "Succeeded"), step("Featurize-shard-0001", "Executing")])
        expect_poll(stubbed, "Succeeded", [step("Reconcile", "Succeeded"), step("Featurize-shard-0001", "Succeeded")])

        assert commands.start(cfg, {}, wait=True) == 0

        assert capsys.readouterr().out.splitlines()[1:] == [
            "  Reconcile: Executing",
            "  Reconcile: Succeeded",
            "  Featurize-shard-0001: Executing",
            "  Featurize-shard-0001: Succeeded",
            "execution Succeeded",
        ]

    def test_wait_on_a_failed_execution_exits_1_with_the_reason(self, cfg, stubbed, monkeypatch, capsys):
        monkeypatch.setattr(executions, "POLL_SECONDS", 0)
        self.expect_start(stubbed, cfg)
        expect_poll(stubbed, "Failed", [step("Reconcile", "Failed", "ClientError: no labels")], reason="Step failed")

        assert commands.start(cfg, {}, wait=True) == 1

        out = capsys.readouterr().out
        assert "  Reconcile: Failed: ClientError: no labels" in out
        assert "execution Failed: Step failed" in out

    def test_status_shows_step_states(self, cfg, stubbed, capsys):
        stubbed.add_response("describe_pipeline", {"PipelineArn": ARN}, {"PipelineName": NAME})
        stubbed.add_response("list_pipeline_executions", {"PipelineExecutionSummaries": [
            {"PipelineExecutionArn": EXECUTION, "PipelineExecutionStatus": "Executing", "StartTime": WHEN}]},
            {"PipelineName": NAME, "SortBy": "CreationTime", "SortOrder": "Descending", "MaxResults": 5})
        stubbed.add_response("list_pipeline_execution_steps", {"PipelineExecutionSteps": [
            step("Reconcile", "Succeeded"), step("Featurize-shard-0001", "Executing")]},
            {"PipelineExecutionArn": EXECUTION, "SortOrder": "Ascending"})

        assert commands.status(cfg, limit=5) == 0

        assert capsys.readouterr().out.splitlines() == [
            "abc123  Executing  started 2026-01-02 03:04:05",
            "  Reconcile: Succeeded",
            "  Featurize-shard-0001: Executing",
        ]


class TestInvalidStart:
    def test_unknown_parameter_exits_2_naming_the_known_ones(self, cfg, aws, api_calls, capsys):
        assert commands.start(cfg, {"Bogus": "1", "ExperimentName": "x"}) == 2

        err = capsys.readouterr().err
        assert err.startswith("error: unknown pipeline parameter(s) Bogus; this pipeline has: ")
        assert "ExperimentName" in err and err.count("\n") == 1
        assert operations(api_calls) == []

    def test_a_value_validate_would_reject_exits_2_naming_the_parameter(self, cfg, api_calls, capsys, tmp_path):
        """An instance type with instance storage while aws.kms_key_id is set: the service takes
        the value and the job fails at run time; start refuses it, as validate refuses the default."""
        from pipeline.config import load_config
        from tests.conftest import EXAMPLE_CONFIG

        overlay = tmp_path / "kms.yaml"
        overlay.write_text("aws:\n  kms_key_id: arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-"
                           "1234567890ab\n")
        keyed = load_config(EXAMPLE_CONFIG, overlays=[overlay])
        assert commands.start(keyed, {"FeaturizeInstanceType": "ml.m5d.xlarge"}) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: --param.FeaturizeInstanceType: 'ml.m5d.xlarge' has instance storage")
        assert commands.start(keyed, {"InputUri": "not-s3"}) == 2
        assert "--param.InputUri: 'not-s3'" in capsys.readouterr().err
        assert operations(api_calls) == []

    def test_starting_a_missing_pipeline_is_one_line(self, cfg, aws, capsys):
        assert commands.start(cfg, {}) == 1

        err = capsys.readouterr().err
        assert err.startswith(f"error: StartPipelineExecution on pipeline {NAME}: ")
        assert err.count("\n") == 1
