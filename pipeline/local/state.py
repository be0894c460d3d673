"""Executions recorded under `<workdir>/executions/<id>/execution.json`.

The record is what resuming needs (like SageMaker's RetryPipelineExecution, a rerun of a
failed execution keeps its id, execution variables and completed steps, and runs the steps
that failed or never ran) and what `only` needs (like a selective execution, the properties
of the steps it does not run come from an earlier execution).
"""

from __future__ import annotations

import json
import secrets
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path

from pipeline.local.cache import write_json
from pipeline.local.results import completed
from steps.redact import redact

RECORD = "execution.json"


class ExecutionStatus(str, Enum):
    """PipelineExecutionStatus, as the record keeps it."""

    EXECUTING = "Executing"
    SUCCEEDED = "Succeeded"
    STOPPED = "Stopped"
    FAILED = "Failed"


def new_execution_id(now: datetime) -> str:
    """`local-<UTC timestamp>-<random>`: sortable, unique, and safe in an S3 key."""
    return f"local-{now.astimezone(timezone.utc):%Y%m%dt%H%M%S}-{secrets.token_hex(3)}"


class ExecutionStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def folder(self, execution_id: str) -> Path:
        return self.root / execution_id

    def save(self, record: dict) -> None:
        # Parameters, reasons and reports may quote a URL: never write its credentials.
        record = redact(record)
        write_json(self.folder(record["ExecutionId"]) / RECORD, record)

    def settle_abandoned(self) -> list[str]:
        """Record as Failed every execution still "Executing": called by the run that holds the
        workdir's lock, so no process is executing them (one was killed, or stopped by an OS
        error before it could record its end). Returns their ids; `--retry` resumes them."""
        found = []
        for path in sorted(self.root.glob(f"*/{RECORD}")) if self.root.is_dir() else []:
            try:
                record = json.loads(path.read_text())
            except ValueError:
                continue
            if record.get("Status") == ExecutionStatus.EXECUTING.value:
                record["Status"] = ExecutionStatus.FAILED.value
                record["FailureReason"] = "the run executing it ended without recording its end (killed, or an OS error)"
                self.save(record)
                found.append(record["ExecutionId"])
        return found

    def records(self, pipeline: str) -> list[dict]:
        """This pipeline's executions, newest first."""
        found = []
        for path in self.root.glob(f"*/{RECORD}") if self.root.is_dir() else []:
            try:
                record = json.loads(path.read_text())
            except ValueError:
                continue  # a record being written by a concurrent run
            if record.get("PipelineName") == pipeline:
                found.append(record)
        return sorted(found, key=lambda r: (r.get("Started", ""), r["ExecutionId"]), reverse=True)

    def newest_unfinished(self, pipeline: str) -> dict | None:
        """The newest execution of `pipeline` if it did not succeed (what `--retry` would resume)."""
        records = self.records(pipeline)
        return records[0] if records and records[0].get("Status") != ExecutionStatus.SUCCEEDED.value else None

    def retryable(self, pipeline: str, digest: str, parameters: dict, storage: str,
                  execution_id: str | None = None) -> dict:
        """The execution `--retry` resumes: `execution_id`, or the newest one; it must not have
        succeeded and must have this definition, parameters and storage (a retry continues the
        execution as it was). ValueError naming what stands in the way."""
        records = self.records(pipeline)
        record = next((r for r in records if r["ExecutionId"] == execution_id), None) if execution_id \
            else (records[0] if records else None)
        if record is None:
            known = ", ".join(r["ExecutionId"] for r in records[:5]) or "none"
            raise ValueError(f"--retry: no execution {execution_id or ''} of {pipeline} in {self.root} "
                             f"(newest: {known})".replace("  ", " "))
        name = record["ExecutionId"]
        if record.get("Status") == ExecutionStatus.SUCCEEDED.value:
            raise ValueError(f"--retry: execution {name} succeeded; there is nothing to resume (run without --retry)")
        if record.get("DefinitionDigest") != digest:
            raise ValueError(f"--retry: the pipeline changed since execution {name} (config or code): a retry runs "
                             "the definition it started with; start a new execution instead (run without --retry)")
        if record.get("Parameters") != json.loads(json.dumps(parameters)) or record.get("Storage") != storage:
            raise ValueError(f"--retry: execution {name} ran with other parameters or storage "
                             f"({record.get('Parameters')}, {record.get('Storage')}); a retry keeps them: "
                             "pass the same --param values and storage, or run without --retry")
        return record

    def source_properties(self, pipeline: str, step: str) -> tuple[str, dict] | None:
        """(execution id, properties) of the newest earlier run of `step` that completed."""
        for record in self.records(pipeline):
            info = record.get("Steps", {}).get(step, {})
            if completed(info.get("State")) and info.get("Properties"):
                return record["ExecutionId"], info["Properties"]
        return None

