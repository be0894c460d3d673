"""What a report is made from: one execution's steps (state, times, cache hits, outputs) and the
storage its outputs are in, read from a local run's workdir or from SageMaker.

Both give the same `Execution`, so the report is written once: a local step's properties are
shaped like DescribeProcessingJob's answer, which is what SageMaker gives for its jobs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from pipeline.config import Config
from steps.io.storage import Storage


@dataclass
class Step:
    name: str
    state: str
    start: datetime | None = None
    end: datetime | None = None
    cached: bool = False
    reason: str | None = None
    outputs: dict[str, str] = field(default_factory=dict)  # output name -> S3 URI
    log: str | None = None

    @property
    def stage(self) -> str:
        """`Featurize-shard-0001`, `FeaturizeShard-3` (a ForEach iteration) -> `featurize`."""
        from pipeline.stages.names import stage_of

        return stage_of(self.name)

    @property
    def shard(self) -> str | None:
        return self.name.split("-", 1)[1] if "-" in self.name else None


@dataclass
class Execution:
    id: str
    pipeline: str
    status: str
    where: str  # "local (<workdir>)" or "SageMaker <region>"
    started: datetime | None
    steps: list[Step]
    definition: dict
    storage: Storage


def _time(value) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _outputs(properties: dict | None) -> dict[str, str]:
    outputs = ((properties or {}).get("ProcessingOutputConfig") or {}).get("Outputs") or []
    return {o["OutputName"]: o["S3Output"]["S3Uri"] for o in outputs}


# --- a local run -----------------------------------------------------------------------------

def local_execution(cfg: Config, workdir: Path, execution_id: str | None) -> Execution:
    """The execution `execution_id` (default: the newest of this pipeline) under `workdir`."""
    from pipeline.local.backend import open_backend
    from pipeline.local.runner import DEFINITION_FILE
    from pipeline.local.state import ExecutionStore

    store = ExecutionStore(workdir / "executions")
    records = store.records(cfg.pipeline.name)
    if execution_id:
        records = [r for r in records if r["ExecutionId"] == execution_id.rsplit("/", 1)[-1]]
    if not records:
        which = f"execution {execution_id}" if execution_id else f"no execution of {cfg.pipeline.name}"
        raise LookupError(f"{which} not found under {workdir / 'executions'}")
    record = records[0]
    steps = []
    for name, info in record.get("Steps", {}).items():
        props = info.get("Properties") or {}
        state = info.get("State", "Pending")
        cached = state in ("Cached", "Reused")
        settled = _time(info.get("SettledAt"))
        # A cached step's properties are the earlier job's: its times are not this run's.
        start = settled if cached else _time(props.get("ProcessingStartTime"))
        end = settled if cached else _time(props.get("ProcessingEndTime")) or settled
        steps.append(Step(name, state, start, end, cached, info.get("Reason"), _outputs(props), info.get("Log")))
    folder = store.folder(record["ExecutionId"])
    if (folder / DEFINITION_FILE).is_file():
        definition = json.loads((folder / DEFINITION_FILE).read_text())
    else:  # an execution recorded before definitions were kept: today's build of the config
        from pipeline.build.compose import build

        definition = json.loads(build(cfg).definition)
    order = {s["Name"]: i for i, s in enumerate(definition.get("Steps", []))}
    steps.sort(key=lambda s: order.get(s.name, len(order)))
    backend = open_backend(record.get("Storage", "local"), workdir)
    return Execution(record["ExecutionId"], cfg.pipeline.name, record.get("Status", "?"), f"local ({workdir})",
                     _time(record.get("Started")), steps, definition, backend.storage)


# --- a SageMaker execution ---------------------------------------------------------------------

SAGEMAKER_STATES = {"Executing": "Executing", "Starting": "Starting", "Stopping": "Stopping",
                    "Stopped": "Stopped", "Failed": "Failed", "Succeeded": "Succeeded"}


def sagemaker_execution(cfg: Config, aws, execution: str | None) -> Execution:
    """An execution of the deployed pipeline (default: its newest), its steps and their jobs."""
    from pipeline.deploy.executions import steps as list_steps
    from pipeline.cli.operate import execution_arn, job_name
    from steps.io.storage import S3Storage

    arn = execution_arn(aws, cfg, execution)
    described = aws.read("sagemaker", "describe_pipeline_execution", f"execution {arn}", PipelineExecutionArn=arn)
    definition = json.loads(aws.read("sagemaker", "describe_pipeline_definition_for_execution", f"execution {arn}",
                                     PipelineExecutionArn=arn)["PipelineDefinition"])
    steps = []
    for item in list_steps(aws, arn):
        cached = bool(item.get("CacheHitResult", {}).get("SourcePipelineExecutionArn"))
        job_arn = item.get("Metadata", {}).get("ProcessingJob", {}).get("Arn")
        outputs = {}
        if job_arn:
            name = job_name(job_arn)
            job = aws.read("sagemaker", "describe_processing_job", f"processing job {name}", ProcessingJobName=name)
            outputs = _outputs(job)
        state = "Cached" if cached else SAGEMAKER_STATES.get(item.get("StepStatus"), item.get("StepStatus", "?"))
        steps.append(Step(item["StepName"], state, item.get("StartTime"), item.get("EndTime"), cached,
                          item.get("FailureReason"), outputs))
    return Execution(arn.rsplit("/", 1)[-1], cfg.pipeline.name, described.get("PipelineExecutionStatus", "?"),
                     f"SageMaker {cfg.aws.region}", described.get("CreationTime"), steps, definition,
                     S3Storage(client=aws.client("s3"), kms_key_id=cfg.aws.kms_key_id))
