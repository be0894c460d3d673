"""`schedule` and `delete` against moto's EventBridge Scheduler, SageMaker and IAM."""

from __future__ import annotations

import pytest

from pipeline.config import ConfigError

from pipeline.cli import deploy as commands
from tests.pipeline.deploy.conftest import make_role, scheduler, sm, variant, writes

NAME = "wavepipe-example"
NIGHTLY, WEEKLY = "wavepipe-example-nightly", "wavepipe-example-weekly-partial"


def group_schedules(group: str = NAME) -> dict[str, dict]:
    summaries = scheduler().list_schedules(GroupName=group)["Schedules"]
    return {s["Name"]: scheduler().get_schedule(Name=s["Name"], GroupName=group) for s in summaries}


def params_of(schedule: dict) -> dict[str, str]:
    items = schedule["Target"].get("SageMakerPipelineParameters", {}).get("PipelineParameterList", [])
    return {p["Name"]: p["Value"] for p in items}


def targeting(pipeline_arn: str) -> list[str]:
    return [f"{s['GroupName']}/{s['Name']}" for s in scheduler().list_schedules()["Schedules"]
            if s["Target"]["Arn"] == pipeline_arn]


@pytest.fixture
def deployed(cfg, account):
    assert commands.upsert(cfg) == 0
    return sm().describe_pipeline(PipelineName=NAME)["PipelineArn"]


class TestValidSchedule:
    def test_each_schedule_gets_its_own_parameters_target_role_and_state(self, cfg, deployed):
        assert commands.schedule(cfg) == 0

        got = group_schedules()
        assert set(got) == {NIGHTLY, WEEKLY}
        nightly, weekly = got[NIGHTLY], got[WEEKLY]
        assert nightly["ScheduleExpression"] == "cron(0 3 * * ? *)"
        assert nightly["State"] == "ENABLED" and weekly["State"] == "DISABLED"
        assert weekly["ScheduleExpression"] == "rate(7 days)"
        assert params_of(nightly) == {"ExperimentName": "nightly"}
        assert params_of(weekly) == {"ExperimentName": "weekly", "EncodedDataDir": "partial_dataset"}
        for schedule in got.values():
            assert schedule["Target"]["Arn"] == deployed
            assert schedule["Target"]["RoleArn"] == cfg.aws.role_arn

    def test_changed_config_updates_creates_and_deletes(self, cfg, deployed, capsys):
        assert commands.schedule(cfg) == 0
        changed = variant(cfg, schedules=[
            {"name": NIGHTLY, "expression": "cron(0 4 * * ? *)",
             "parameters": {"ExperimentName": "n2", "Reload": True}},
            {"name": "wavepipe-example-hourly", "expression": "rate(1 hour)", "timezone": "Europe/Paris"},
        ])
        capsys.readouterr()

        assert commands.schedule(changed) == 0

        got = group_schedules()
        assert set(got) == {NIGHTLY, "wavepipe-example-hourly"}
        assert got[NIGHTLY]["ScheduleExpression"] == "cron(0 4 * * ? *)"
        assert params_of(got[NIGHTLY]) == {"ExperimentName": "n2", "Reload": "true"}
        assert params_of(got["wavepipe-example-hourly"]) == {}
        assert got["wavepipe-example-hourly"]["ScheduleExpressionTimezone"] == "Europe/Paris"
        out = capsys.readouterr().out
        assert f"updated schedule {NIGHTLY}: ScheduleExpression, parameters changed" in out
        assert "created schedule wavepipe-example-hourly" in out
        assert f"deleted schedule {WEEKLY} (no longer in the config)" in out

    def test_a_second_sync_changes_nothing(self, cfg, deployed, api_calls, capsys):
        assert commands.schedule(cfg) == 0
        api_calls.clear()

        assert commands.schedule(cfg) == 0

        assert writes(api_calls) == []
        assert "0 created, 0 updated, 0 deleted, 2 unchanged" in capsys.readouterr().out

    def test_dry_run_prints_the_calls_and_makes_none(self, cfg, deployed, api_calls, capsys):
        api_calls.clear()

        assert commands.schedule(cfg, dry_run=True) == 0

        assert writes(api_calls) == []
        assert targeting(deployed) == []
        out = capsys.readouterr().out
        assert "[dry-run] scheduler:CreateScheduleGroup schedule group wavepipe-example" in out
        assert f"[dry-run] scheduler:CreateSchedule schedule {NAME}/{NIGHTLY}" in out
        assert '{"Name": "ExperimentName", "Value": "nightly"}' in out
        assert "plan: 2 created" in out


class TestInvalidSchedule:
    @pytest.mark.parametrize("trusted, missing", [
        (("sagemaker.amazonaws.com",), "scheduler.amazonaws.com"),
        (("ec2.amazonaws.com",), "scheduler.amazonaws.com, sagemaker.amazonaws.com"),
    ])
    def test_role_trust_is_checked_first_and_what_is_missing_named(self, cfg, aws, api_calls, capsys,
                                                                   trusted, missing):
        make_role("wavepipe-pipeline", *trusted)
        api_calls.clear()

        assert commands.schedule(cfg) == 1

        err = capsys.readouterr().err
        assert err.startswith(f"error: role wavepipe-pipeline does not trust {missing}: add this statement")
        assert err.count("\n") == 1
        assert writes(api_calls) == []

    def test_unknown_schedule_parameter_never_reaches_aws(self, cfg, deployed, api_calls):
        """The config itself rejects it (names and values; see tests/pipeline/test_config.py)."""
        api_calls.clear()
        with pytest.raises(ConfigError, match=r"schedules\[0\]\.parameters\.Bogus: no pipeline parameter"):
            variant(cfg, schedules=[{"name": "x", "expression": "rate(1 day)", "parameters": {"Bogus": "1"}}])
        assert api_calls == []

    def test_scheduling_before_upsert_says_so(self, cfg, account, capsys):
        assert commands.schedule(cfg) == 1

        assert capsys.readouterr().err == f"error: pipeline {NAME} does not exist: run `deploy.py upsert` first\n"


class TestValidDelete:
    def test_delete_leaves_no_schedule_of_the_pipeline_anywhere(self, cfg, deployed, capsys):
        assert commands.schedule(cfg) == 0
        # As the SDK's put_triggers would: a schedule in the default group targeting the pipeline.
        scheduler().create_schedule(Name="sdk-trigger", ScheduleExpression="rate(1 day)",
                                    FlexibleTimeWindow={"Mode": "OFF"},
                                    Target={"Arn": deployed, "RoleArn": cfg.aws.role_arn})

        assert commands.delete(cfg) == 0

        assert targeting(deployed) == []
        assert NAME not in [g["Name"] for g in scheduler().list_schedule_groups()["ScheduleGroups"]]
        assert sm().list_pipelines()["PipelineSummaries"] == []
        out = capsys.readouterr().out
        assert "deleted schedule default/sdk-trigger" in out and f"deleted pipeline {NAME}" in out

    def test_delete_dry_run_changes_nothing(self, cfg, deployed, api_calls, capsys):
        assert commands.schedule(cfg) == 0
        api_calls.clear()

        assert commands.delete(cfg, dry_run=True) == 0

        assert writes(api_calls) == []
        assert len(targeting(deployed)) == 2
        assert "[dry-run] sagemaker:DeletePipeline pipeline wavepipe-example" in capsys.readouterr().out

    def test_delete_without_a_pipeline_still_removes_its_schedule_group(self, cfg, deployed, capsys):
        assert commands.schedule(cfg) == 0
        sm().delete_pipeline(PipelineName=NAME, ClientRequestToken="t" * 32)

        assert commands.delete(cfg) == 0

        assert scheduler().list_schedules(GroupName=NAME)["Schedules"] == []
        assert f"pipeline {NAME} does not exist" in capsys.readouterr().out


class TestAccountTraps:
    def test_a_schedule_without_parameters_still_sends_an_empty_list(self, cfg, deployed, api_calls):
        """Like the SDK's put_triggers: EventBridge Scheduler reads SageMakerPipelineParameters to
        tell a SageMaker pipeline target; it is sent empty when the schedule sets no value."""
        bare = variant(cfg, schedules=[{"name": "bare", "expression": "rate(1 day)"}])
        api_calls.clear()
        assert commands.schedule(bare) == 0
        (create,) = [p for _, op, p in api_calls if op == "CreateSchedule"]
        assert create["Target"]["SageMakerPipelineParameters"] == {"PipelineParameterList": []}
        assert commands.schedule(bare) == 0  # and moto's stored copy compares equal: unchanged
