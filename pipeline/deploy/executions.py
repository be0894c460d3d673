"""Starting executions, following them step by step, and showing recent ones."""

from __future__ import annotations

import time
import uuid
from typing import Callable

from pipeline.config import Config
from pipeline.deploy.clients import Aws
from pipeline.deploy.errors import DeployError
from pipeline.build.parameters import parameter_names, value_problems

TERMINAL = {"Succeeded", "Failed", "Stopped", "CompletedWithFailures"}
POLL_SECONDS = 15.0


def check_params(cfg: Config, params: dict[str, str]) -> None:
    known = set(parameter_names(cfg))
    unknown = sorted(set(params) - known)
    if unknown:
        raise DeployError(f"unknown pipeline parameter(s) {', '.join(unknown)}; "
                          f"this pipeline has: {', '.join(sorted(known))}", exit_code=2)
    # The values, as validate checks the defaults: the service would take them and the run fail.
    if problems := value_problems(cfg, params, "--param"):
        raise DeployError("; ".join(problems), exit_code=2)


def start(aws: Aws, cfg: Config, params: dict[str, str], version: int | None = None,
          alias: str | None = None) -> str | None:
    """Start an execution (of a version or alias, default the latest); its ARN, None on --dry-run."""
    check_params(cfg, params)
    if version is not None and alias:
        raise DeployError("give --version or --alias, not both", exit_code=2)
    name = cfg.pipeline.name
    extra = {"PipelineVersionId": version} if version is not None else {}
    extra.update({"PipelineVersionAlias": alias} if alias else {})
    if params:
        extra["PipelineParameters"] = [{"Name": k, "Value": v} for k, v in sorted(params.items())]
    response = aws.write(
        "sagemaker", "start_pipeline_execution", f"pipeline {name}", PipelineName=name,
        ClientRequestToken=uuid.uuid4().hex,
        PipelineExecutionDescription=f"started by deploy.py (config version {cfg.pipeline.version})",
        **extra)
    if response is None:
        return None
    arn = response["PipelineExecutionArn"]
    aws.echo(f"started {arn}")
    return arn


def steps(aws: Aws, execution_arn: str) -> list[dict]:
    """The execution's steps, oldest first."""
    return aws.paginate("sagemaker", "list_pipeline_execution_steps", "PipelineExecutionSteps",
                        f"execution {execution_arn}", PipelineExecutionArn=execution_arn, SortOrder="Ascending")


def step_line(step: dict) -> str:
    reason = f": {step['FailureReason']}" if step.get("FailureReason") else ""
    cached = " (cache hit)" if step.get("CacheHitResult", {}).get("SourcePipelineExecutionArn") else ""
    return f"{step['StepName']}: {step.get('StepStatus', '?')}{cached}{reason}"


def follow(aws: Aws, execution_arn: str, poll_seconds: float | None = None,
           sleep: Callable[[float], None] = time.sleep) -> str:
    """Print each step state change until the execution ends; returns its final status."""
    poll_seconds = POLL_SECONDS if poll_seconds is None else poll_seconds
    seen: dict[str, str] = {}
    while True:
        execution = aws.read("sagemaker", "describe_pipeline_execution", f"execution {execution_arn}",
                             PipelineExecutionArn=execution_arn)
        status = execution["PipelineExecutionStatus"]
        for step in steps(aws, execution_arn):
            if seen.get(step["StepName"]) != step.get("StepStatus"):
                seen[step["StepName"]] = step.get("StepStatus")
                aws.echo("  " + step_line(step))
        if status in TERMINAL:
            reason = execution.get("FailureReason")
            aws.echo(f"execution {status}" + (f": {reason}" if reason else ""))
            return status
        sleep(poll_seconds)


def show_status(aws: Aws, cfg: Config, limit: int) -> None:
    """The `limit` most recent executions, each with its step states."""
    name = cfg.pipeline.name
    page = aws.read("sagemaker", "list_pipeline_executions", f"pipeline {name}", PipelineName=name,
                    SortBy="CreationTime", SortOrder="Descending", MaxResults=max(1, min(limit, 100)))
    executions = page.get("PipelineExecutionSummaries", [])[:limit]
    if not executions:
        aws.echo(f"pipeline {name} has no executions")
    for summary in executions:
        started = f"{summary['StartTime']:%Y-%m-%d %H:%M:%S}" if summary.get("StartTime") else "-"
        execution_id = summary["PipelineExecutionArn"].rsplit("/", 1)[-1]
        status = summary.get("PipelineExecutionStatus", "?")
        aws.echo(f"{execution_id}  {status}  started {started}{failure_reason(aws, summary, status)}")
        try:
            for step in steps(aws, summary["PipelineExecutionArn"]):
                aws.echo("  " + step_line(step))
        except DeployError as err:
            aws.echo(f"  step states unavailable: {err}")


def failure_reason(aws: Aws, summary: dict, status: str) -> str:
    """`: <reason>` of a failed execution (listings do not carry it), else ``."""
    if status not in ("Failed", "CompletedWithFailures"):
        return ""
    arn = summary["PipelineExecutionArn"]
    described = aws.read("sagemaker", "describe_pipeline_execution", f"execution {arn}", PipelineExecutionArn=arn)
    return f": {described['FailureReason']}" if described.get("FailureReason") else ""
