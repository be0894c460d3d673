"""Where a run starts: a new execution, the failed one it retries, or a selective one.

As on SageMaker, starting is a new execution (StartPipelineExecution: every input read again,
cached steps reused by their cache keys) and resuming is explicit: `local --retry [ID]` is
RetryPipelineExecution, which continues a failed execution under its id and execution variables
with the same definition, parameters and storage, keeping the steps it completed whose upstream
steps all completed too (so what Reconcile or the listing read then is reused, not read again).
`only` is a selective execution: the steps it leaves out do not run, and those the selected steps
need lend the properties of their newest completed run in an earlier execution.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from datetime import datetime

from pipeline.definition.model import canonical_json
from pipeline.local.supported import Definition
from pipeline.local.readiness import Graph
from pipeline.local.properties import LOCAL_ACCOUNT, timestamp
from pipeline.local.results import completed
from pipeline.local.state import ExecutionStore, new_execution_id


@dataclass(frozen=True)
class Reuse:
    """A step that does not run: its properties come from an earlier run, for `reason`."""

    properties: dict
    reason: str


@dataclass(frozen=True)
class Start:
    execution_id: str
    variables: dict[str, str]  # execution variables (Execution.*) of the whole execution
    started: str  # when the execution first started (a resume keeps it), ISO 8601
    digest: str  # of the definition: a resume needs the same one
    resumed: bool
    reused: dict[str, Reuse]
    not_selected: frozenset[str]  # left out by `only`, and not needed by what it selects
    retryable: str | None = None  # a new execution's note: the failed one `--retry` would resume


def check_only(only: list[str] | None, graph: Graph) -> set[str] | None:
    """The selected step names (None: all); ValueError naming unknown ones."""
    if not only:
        return None
    unknown = sorted(set(only) - set(graph.upstream))
    if unknown:
        raise ValueError(f"--only: no step named {unknown}; steps: {list(graph.order)}")
    return set(only)


def definition_digest(definition: Definition) -> str:
    return hashlib.sha256(canonical_json(definition.raw).encode()).hexdigest()


def execution_variables(pipeline: str, execution_id: str, started: datetime,
                        region: str) -> dict[str, str]:
    pipeline_arn = f"arn:aws:sagemaker:{region}:{LOCAL_ACCOUNT}:pipeline/{pipeline.lower()}"
    return {
        "PipelineName": pipeline,
        "PipelineArn": pipeline_arn,
        "PipelineExecutionId": execution_id,
        "PipelineExecutionArn": f"{pipeline_arn}/execution/{execution_id}",
        "StartDateTime": timestamp(started),
    }


def plan_start(definition: Definition, graph: Graph, store: ExecutionStore, *, pipeline: str,
               parameters: dict, storage: str, only: set[str] | None, use_cache: bool,
               now: datetime, retry: str | None = None) -> Start:
    """How this run starts. `retry`: "latest" or an execution id to resume (None: a new
    execution). ValueError when `only` needs a step that never completed, or when there is no
    execution that `retry` can resume (naming why)."""
    digest = definition_digest(definition)
    if retry is not None:
        if only is not None or not use_cache:
            raise ValueError("--retry resumes a failed execution as it was: it takes neither --only nor --no-cache")
        record = store.retryable(pipeline, digest, parameters, storage, None if retry == "latest" else retry)
        steps = record.get("Steps", {})
        reused: dict[str, Reuse] = {}
        # A completed step is kept only when everything it depends on is kept too: one that
        # ran after a failed step (Combine with run_when_shards_fail) read a partial input,
        # and must run again once that step has run (its own cache key decides from there).
        for name in graph.order:
            info = steps.get(name) or {}
            if completed(info.get("State")) and all(up in reused for up in graph.upstream[name]):
                reused[name] = Reuse(info["Properties"], f"completed in {record['ExecutionId']} before this retry")
        return Start(record["ExecutionId"], record["Execution"], record.get("Started", now.isoformat()),
                     digest, True, reused, frozenset())
    execution_id = new_execution_id(now)
    variables = execution_variables(pipeline, execution_id, now, _region())
    reused, not_selected = _select(only, graph, store, pipeline) if only is not None else ({}, set())
    failed = store.newest_unfinished(pipeline)
    return Start(execution_id, variables, now.isoformat(), digest, False, reused, frozenset(not_selected),
                 failed["ExecutionId"] if failed else None)


def _select(only: set[str], graph: Graph, store: ExecutionStore,
            pipeline: str) -> tuple[dict[str, Reuse], set[str]]:
    needed = {up for name in only for up in graph.upstream[name]} - only
    reused, missing = {}, []
    for name in graph.order:
        if name in only:
            continue
        source = store.source_properties(pipeline, name) if name in needed else None
        if source:
            reused[name] = Reuse(source[1], f"from execution {source[0]}")
        elif name in needed:
            missing.append(name)
    if missing:
        raise ValueError(
            f"--only {sorted(only)} needs {missing}, which never completed in "
            f"{store.root.parent}: add them to --only or run the whole pipeline first")
    return reused, set(graph.order) - only - set(reused)


def _region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
