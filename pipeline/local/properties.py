"""A step's properties as SageMaker gives them: the DescribeProcessingJob-shaped dict that
`Get Steps.<step>...` reads, the job's name, and the property files `Std:JsonGet` reads."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from pipeline.definition.model import processing_outputs
from pipeline.local.supported import Step
from pipeline.local.expressions import ExpressionError
from pipeline.local.job import Job, JobOutcome
from steps.io.storage import Storage

LOCAL_ACCOUNT = "000000000000"  # no AWS account behind a local run


def timestamp(moment: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and a `Z`, as SageMaker prints times."""
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def job_name(execution_id: str, step: str) -> str:
    # SageMaker names pipeline jobs `pipelines-<execution>-<step>-...`; job names allow
    # letters, digits and hyphens, at most 63.
    return f"pipelines-{execution_id}-{step}".replace("_", "-")[:63].rstrip("-")


def describe(job: Job, arguments: dict, outcome: JobOutcome, variables: dict) -> dict:
    """The step's properties, shaped like DescribeProcessingJob's response."""
    region = variables["PipelineArn"].split(":")[3]
    properties = dict(arguments)
    properties.update({
        "ProcessingJobName": job.job_name,
        "ProcessingJobArn": f"arn:aws:sagemaker:{region}:{LOCAL_ACCOUNT}:processing-job/"
                            f"{job.job_name.lower()}",
        "ProcessingJobStatus": outcome.status.value,
        "CreationTime": timestamp(outcome.started),
        "ProcessingStartTime": timestamp(outcome.started),
        "ProcessingEndTime": timestamp(outcome.ended),
        "LastModifiedTime": timestamp(outcome.ended),
    })
    if outcome.failure_reason:
        properties["FailureReason"] = outcome.failure_reason
    if outcome.exit_message:
        properties["ExitMessage"] = outcome.exit_message
    return properties


def output_uris(properties: dict) -> dict[str, str]:
    """Output name -> the S3 URI the step's job wrote it to."""
    return {o["OutputName"]: o["S3Output"]["S3Uri"] for o in processing_outputs(properties)}


def read_property_file(step: Step, file_name: str, properties: dict | None, storage: Storage) -> Any:
    """The JSON `step` wrote as its property file `file_name`, read from where its output
    went (for a cached step, where the earlier execution wrote it), as SageMaker's JsonGet
    does. `properties` are the step's, None when it did not run."""
    spec = next((f for f in step.property_files if f.get("PropertyFileName") == file_name), None)
    if spec is None:
        raise ExpressionError(f"step {step.name} declares no property file {file_name!r}")
    if properties is None:
        raise ExpressionError(f"property file {step.name}.{file_name}: step {step.name} did not run")
    uri = output_uris(properties).get(spec["OutputName"])
    if uri is None:
        raise ExpressionError(f"property file {step.name}.{file_name}: no output {spec['OutputName']!r}")
    target = uri.rstrip("/") + "/" + spec["FilePath"].lstrip("/")
    try:
        return json.loads(storage.read_bytes(target))
    except (FileNotFoundError, ValueError) as err:
        raise ExpressionError(f"property file {step.name}.{file_name} at {target}: {err}") from None
