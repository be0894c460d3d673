"""Operating an execution of the deployed pipeline: `retry`, `stop` and `logs` (the processing
jobs' CloudWatch log streams, optionally followed until the execution ends)."""

from __future__ import annotations

import time
import uuid
from typing import Callable

from pipeline.config import Config
from pipeline.deploy import clients, executions, pipelines
from pipeline.deploy.clients import Aws
from pipeline.cli.deploy import _run
from pipeline.deploy.errors import DeployError

LOG_GROUP = "/aws/sagemaker/ProcessingJobs"
POLL_SECONDS = 5.0


def execution_arn(aws: Aws, cfg: Config, execution: str | None) -> str:
    """An execution id (as `status` prints it) or ARN -> its ARN; None -> the newest execution."""
    if execution and execution.startswith("arn:"):
        return execution
    name = cfg.pipeline.name
    if execution is None:
        page = aws.read("sagemaker", "list_pipeline_executions", f"pipeline {name}", PipelineName=name,
                        SortBy="CreationTime", SortOrder="Descending", MaxResults=1)
        found = page.get("PipelineExecutionSummaries", [])
        if not found:
            raise DeployError(f"pipeline {name} has no executions")
        return found[0]["PipelineExecutionArn"]
    return f"{pipelines.pipeline_arn(aws, name)}/execution/{execution}"


def job_name(job_arn: str) -> str:
    """`arn:...:processing-job/<name>` -> `<name>` (lower case, as ARNs have it; SageMaker
    finds jobs by name regardless of case)."""
    return job_arn.rsplit("/", 1)[-1]


def _change(cfg: Config, execution: str, method: str, doing: str) -> int:
    def action() -> int:
        aws = clients.connect(cfg.aws.region)
        arn = execution_arn(aws, cfg, execution)
        aws.write("sagemaker", method, f"execution {arn}", PipelineExecutionArn=arn,
                  ClientRequestToken=uuid.uuid4().hex)
        aws.echo(f"{doing} {arn}")
        return 0
    return _run(action)


def retry(cfg: Config, execution: str) -> int:
    """RetryPipelineExecution: rerun the failed or stopped steps of an execution."""
    return _change(cfg, execution, "retry_pipeline_execution", "retrying")


def stop(cfg: Config, execution: str) -> int:
    """StopPipelineExecution: running steps are stopped, the rest do not start."""
    return _change(cfg, execution, "stop_pipeline_execution", "stopping")


class LogReader:
    """Every processing job's log streams of one execution, read incrementally."""

    def __init__(self, aws: Aws, arn: str, step: str | None) -> None:
        self.aws, self.arn, self.step = aws, arn, step
        self.jobs: dict[str, str] = {}  # step -> job name (as the job has it)
        self.tokens: dict[str, str | None] = {}  # stream -> next forward token

    def refresh_jobs(self) -> list[dict]:
        steps = executions.steps(self.aws, self.arn)
        names = {s["StepName"] for s in steps}
        if self.step and self.step not in names:
            raise DeployError(f"execution {self.arn} has no step {self.step!r} (yet): "
                              f"{', '.join(sorted(names)) or 'no steps'}", exit_code=2)
        for item in steps:
            job_arn = item.get("Metadata", {}).get("ProcessingJob", {}).get("Arn")
            if job_arn and item["StepName"] not in self.jobs and self.step in (None, item["StepName"]):
                name = job_name(job_arn)
                job = self.aws.read("sagemaker", "describe_processing_job", f"processing job {name}",
                                    ProcessingJobName=name)
                self.jobs[item["StepName"]] = job["ProcessingJobName"]
        return steps

    def streams(self, job: str) -> list[str]:
        # A job's streams are `<job name>/algo-<n>-<epoch>`, one per instance.
        found = self.aws.paginate("logs", "describe_log_streams", "logStreams", f"log group {LOG_GROUP}",
                                  logGroupName=LOG_GROUP, logStreamNamePrefix=f"{job}/")
        return sorted(s["logStreamName"] for s in found)

    def new_lines(self) -> list[str]:
        """Lines logged since the last call, `[<step>/<instance>] <message>`."""
        lines = []
        for step, job in self.jobs.items():
            for stream in self.streams(job):
                instance = stream.split("/", 1)[1].rsplit("-", 1)[0]
                while True:
                    kwargs = {"logGroupName": LOG_GROUP, "logStreamName": stream, "startFromHead": True}
                    if self.tokens.get(stream):
                        kwargs["nextToken"] = self.tokens[stream]
                    page = self.aws.read("logs", "get_log_events", f"log stream {stream}", **kwargs)
                    lines += [f"[{step}/{instance}] {e['message'].rstrip()}" for e in page.get("events", [])]
                    token = page.get("nextForwardToken")
                    # The forward token stays the same once the end of the stream is reached.
                    if not page.get("events") or token == self.tokens.get(stream):
                        self.tokens[stream] = token
                        break
                    self.tokens[stream] = token
        return lines


def show_logs(aws: Aws, cfg: Config, execution: str, step: str | None = None, follow: bool = False,
              poll_seconds: float | None = None, sleep: Callable[[float], None] = time.sleep) -> None:
    arn = execution_arn(aws, cfg, execution)
    reader = LogReader(aws, arn, step)
    while True:
        reader.refresh_jobs()
        for line in reader.new_lines():
            aws.echo(line)
        if not follow:
            break
        status = aws.read("sagemaker", "describe_pipeline_execution", f"execution {arn}",
                          PipelineExecutionArn=arn)["PipelineExecutionStatus"]
        if status in executions.TERMINAL:
            for line in reader.new_lines():  # what was written between the last read and the end
                aws.echo(line)
            aws.echo(f"execution {status}")
            break
        sleep(POLL_SECONDS if poll_seconds is None else poll_seconds)
    if not reader.jobs:
        aws.echo(f"no processing job has started for {step or 'any step'} of {arn.rsplit('/', 1)[-1]}")


def logs(cfg: Config, execution: str, step: str | None = None, follow: bool = False) -> int:
    def action() -> int:
        show_logs(clients.connect(cfg.aws.region), cfg, execution, step, follow)
        return 0
    return _run(action)
