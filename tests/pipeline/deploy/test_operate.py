"""`retry`, `stop`, `logs` and `status` failure reasons.

moto 5.2.5 has no RetryPipelineExecution, StopPipelineExecution or ListPipelineExecutionSteps:
those go through botocore's Stubber (which replaces the whole SageMaker client, so the
DescribeProcessingJob that `logs` makes is stubbed too). CloudWatch Logs is moto's own:
`logs` reads real log streams from the moto server.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

import boto3
import pytest
from botocore.stub import ANY

from pipeline.cli import main
from pipeline.cli import operate
from tests.conftest import REGION, ROOT

EXAMPLE = str(ROOT / "config" / "example.yaml")
NAME = "wavepipe-example"
ARN = f"arn:aws:sagemaker:{REGION}:123456789012:pipeline/{NAME}"
EXECUTION = f"{ARN}/execution/abc123"
JOB = "pipelines-abc123-Reconcile-Ab12Cd"
WHEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def expect_describe_pipeline(stubbed) -> None:
    stubbed.add_response("describe_pipeline", {"PipelineArn": ARN}, {"PipelineName": NAME})


class TestValidRetryStop:
    @pytest.mark.parametrize("command, operation, said", [
        ("retry", "retry_pipeline_execution", "retrying"), ("stop", "stop_pipeline_execution", "stopping")])
    def test_an_execution_id_becomes_its_arn(self, stubbed, capsys, command, operation, said):
        expect_describe_pipeline(stubbed)
        stubbed.add_response(operation, {"PipelineExecutionArn": EXECUTION},
                             {"PipelineExecutionArn": EXECUTION, "ClientRequestToken": ANY})

        assert main([command, "--config", EXAMPLE, "abc123"]) == 0

        assert capsys.readouterr().out == f"{said} {EXECUTION}\n"

    def test_an_arn_is_used_as_given(self, stubbed, capsys):
        stubbed.add_response("retry_pipeline_execution", {"PipelineExecutionArn": EXECUTION},
                             {"PipelineExecutionArn": EXECUTION, "ClientRequestToken": ANY})

        assert main(["retry", "--config", EXAMPLE, EXECUTION]) == 0


class TestInvalidRetryStop:
    def test_a_refused_retry_is_one_line(self, stubbed, capsys):
        stubbed.add_client_error("retry_pipeline_execution", "ValidationException",
                                 "Pipeline execution is not in a retryable state")

        assert main(["retry", "--config", EXAMPLE, EXECUTION]) == 1

        err = capsys.readouterr().err
        assert err == (f"error: RetryPipelineExecution on execution {EXECUTION}: ValidationException: "
                       "Pipeline execution is not in a retryable state\n")

    def test_an_unknown_pipeline_is_named(self, aws, capsys):
        """moto: DescribePipeline of a pipeline that was never deployed."""
        assert main(["stop", "--config", EXAMPLE, "abc123"]) == 1
        assert "run `deploy.py upsert` first" in capsys.readouterr().err


def steps_page(status: str = "Executing") -> dict:
    return {"PipelineExecutionSteps": [
        {"StepName": "Reconcile", "StepStatus": status,
         "Metadata": {"ProcessingJob": {"Arn": f"arn:aws:sagemaker:{REGION}:123456789012:processing-job/{JOB.lower()}"}}},
        {"StepName": "Encode", "StepStatus": "Starting"}]}


def expect_steps(stubbed, status: str = "Executing", describe_job: bool = False) -> None:
    stubbed.add_response("list_pipeline_execution_steps", steps_page(status),
                         {"PipelineExecutionArn": EXECUTION, "SortOrder": "Ascending"})
    if describe_job:  # once per step: its job's name as the job has it (ARNs are lower case)
        stubbed.add_response("describe_processing_job", {
            "ProcessingJobName": JOB, "ProcessingJobArn": "arn", "ProcessingJobStatus": "InProgress",
            "CreationTime": WHEN, "ProcessingResources": {"ClusterConfig": {
                "InstanceCount": 1, "InstanceType": "ml.m5.xlarge", "VolumeSizeInGB": 30}},
            "AppSpecification": {"ImageUri": "image"}}, {"ProcessingJobName": JOB.lower()})


@pytest.fixture
def log_group(aws):
    logs = boto3.client("logs", region_name=REGION)
    logs.create_log_group(logGroupName=operate.LOG_GROUP)
    logs.create_log_stream(logGroupName=operate.LOG_GROUP, logStreamName=f"{JOB}/algo-1-1767322000")
    logs.create_log_stream(logGroupName=operate.LOG_GROUP, logStreamName="pipelines-other-Encode-Zz/algo-1-1")
    return logs


def put(logs, *messages: str) -> None:
    # CloudWatch (and moto) reject events older than 14 days: stamp them now.
    now = int(time.time() * 1000)
    logs.put_log_events(logGroupName=operate.LOG_GROUP, logStreamName=f"{JOB}/algo-1-1767322000", logEvents=[
        {"timestamp": now + i, "message": m} for i, m in enumerate(messages)])


class TestValidLogs:
    def test_prints_the_job_stream_of_the_step(self, log_group, stubbed, capsys):
        put(log_group, "listing s3://wavepipe-example/sample", "matched 24 artifacts")
        expect_steps(stubbed, describe_job=True)

        assert main(["logs", "--sagemaker", "--config", EXAMPLE, EXECUTION, "Reconcile"]) == 0

        assert capsys.readouterr().out.splitlines() == [
            "[Reconcile/algo-1] listing s3://wavepipe-example/sample", "[Reconcile/algo-1] matched 24 artifacts"]

    def test_follow_prints_new_lines_until_the_execution_ends(self, log_group, stubbed, capsys):
        put(log_group, "first")
        expect_steps(stubbed, describe_job=True)
        stubbed.add_response("describe_pipeline_execution", {"PipelineExecutionStatus": "Executing"},
                             {"PipelineExecutionArn": EXECUTION})
        expect_steps(stubbed)
        stubbed.add_response("describe_pipeline_execution", {"PipelineExecutionStatus": "Failed"},
                             {"PipelineExecutionArn": EXECUTION})
        from pipeline.deploy import clients

        aws = clients.connect(REGION)
        operate.show_logs(aws, operate_cfg(), EXECUTION, "Reconcile", follow=True, poll_seconds=0,
                          sleep=lambda _: put(log_group, "second", "third"))

        assert capsys.readouterr().out.splitlines() == [
            "[Reconcile/algo-1] first", "[Reconcile/algo-1] second", "[Reconcile/algo-1] third", "execution Failed"]


class TestInvalidLogs:
    def test_an_unknown_step_exits_2_naming_the_steps(self, aws, stubbed, capsys):
        expect_steps(stubbed)

        assert main(["logs", "--sagemaker", "--config", EXAMPLE, EXECUTION, "Nope"]) == 2

        assert "no step 'Nope' (yet): Encode, Reconcile" in capsys.readouterr().err


def operate_cfg():
    from pipeline.config import load_config

    return load_config(EXAMPLE)


class TestStatusReasons:
    def test_a_failed_execution_shows_its_reason_and_its_steps(self, stubbed, capsys):
        expect_describe_pipeline(stubbed)
        stubbed.add_response("list_pipeline_executions", {"PipelineExecutionSummaries": [
            {"PipelineExecutionArn": EXECUTION, "PipelineExecutionStatus": "Failed", "StartTime": WHEN}]},
            {"PipelineName": NAME, "SortBy": "CreationTime", "SortOrder": "Descending", "MaxResults": 5})
        stubbed.add_response("describe_pipeline_execution", {
            "PipelineExecutionStatus": "Failed", "FailureReason": "Step failure: One or multiple steps failed."},
            {"PipelineExecutionArn": EXECUTION})
        stubbed.add_response("list_pipeline_execution_steps", {"PipelineExecutionSteps": [
            {"StepName": "Reconcile", "StepStatus": "Failed", "FailureReason": "AlgorithmError: no labels"}]},
            {"PipelineExecutionArn": EXECUTION, "SortOrder": "Ascending"})

        assert main(["status", "--sagemaker", "--config", EXAMPLE]) == 0

        assert capsys.readouterr().out.splitlines() == [
            "abc123  Failed  started 2026-01-02 03:04:05: Step failure: One or multiple steps failed.",
            "  Reconcile: Failed: AlgorithmError: no labels"]
