"""`run_pipeline`: execute a SageMaker pipeline definition on this machine.

Composition only: the definition is checked (definition.py), its graph built (graph.py),
each ready step resolved (expressions.py), looked up in the cache (cache.py), run in a
sandbox (job.py, sandbox.py) by the scheduler (scheduler.py), and reported (progress.py).
Everything a run keeps lives under `workdir`: `s3/` (local storage), `executions/<id>/`
(record, logs, sandboxes) and `cache/`.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, TextIO

from pipeline.local import sandbox
from pipeline.local.backend import Backend, open_backend, write_assets
from pipeline.local.cache import CacheEntry, CacheStore, cache_key, write_json
from pipeline.local.definition import Definition, Step, load_definition
from pipeline.local.expressions import ExpressionError, Scope, evaluate
from pipeline.local.graph import Graph, build_graph, decide
from pipeline.local.job import Job, JobOutcome, ProcessGroups, run_job
from pipeline.local.progress import PROGRESS_FILE, Progress, print_table
from pipeline.local.results import RunResult, StepResult, StepState
from pipeline.local.scheduler import Work, machine_cores, run_concurrently
from pipeline.local.state import ExecutionStore, new_execution_id
from steps.storage import split_uri

LOCAL_ACCOUNT = "000000000000"  # no AWS account behind a local run
_TERMINAL_OK = ("Succeeded", "Cached", "Reused")
DEFINITION_FILE = "definition.json"  # beside execution.json: the DAG `deploy.py report` draws


def run_pipeline(
    definition: dict | str,
    *,
    assets: Mapping[str, bytes] | None = None,
    workdir: Path | str,
    params: Mapping[str, Any] | None = None,
    storage: str = "local",
    only: list[str] | None = None,
    use_cache: bool = True,
    max_parallel: int | None = None,
    progress: bool = True,
    pipeline_name: str = "local-pipeline",
    cores: int | None = None,
    stream: TextIO | None = None,
) -> RunResult:
    """Run every Processing step of `definition` (a dict or its JSON) here.

    - `assets`: `{s3_uri: bytes}` written to storage first (code bundle, settings files);
      an object already there with the same content is not rewritten.
    - `params`: pipeline parameter overrides; strings are parsed as the parameter's type.
    - `storage`: `"local"` (`<workdir>/s3/<bucket>/<key>`), `"aws"`, or an S3 endpoint URL.
    - `only`: run just these steps; the steps they need are taken from the newest earlier
      execution in `workdir` where they completed (a selective execution).
    - `use_cache`: False runs every step afresh (no step cache, no resuming a failed run).
    - `max_parallel`: most steps at once (SageMaker's MaxParallelExecutionSteps); the cores
      (`cores`, default: this machine's) bound it too, a step counting its instances.
    - `progress`: print live progress and the final table on `stream` (default stderr).

    Raises UnsupportedDefinition (before anything runs) for a definition it cannot execute,
    and ValueError for bad parameters or `only` names. Ctrl-C stops every child process and
    returns the result with `interrupted=True`.
    """
    run = _Run(load_definition(definition), Path(workdir).resolve(), pipeline_name,
               storage, params, only, use_cache, progress, stream)
    return run.execute(dict(assets or {}), max_parallel, cores or machine_cores())


def definition_digest(definition: Definition) -> str:
    text = json.dumps(definition.raw, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def execution_variables(pipeline: str, execution_id: str, started: datetime,
                        region: str) -> dict[str, str]:
    pipeline_arn = f"arn:aws:sagemaker:{region}:{LOCAL_ACCOUNT}:pipeline/{pipeline.lower()}"
    return {
        "PipelineName": pipeline,
        "PipelineArn": pipeline_arn,
        "PipelineExecutionId": execution_id,
        "PipelineExecutionArn": f"{pipeline_arn}/execution/{execution_id}",
        "StartDateTime": _timestamp(started),
    }


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def job_name(execution_id: str, step: str) -> str:
    # SageMaker names pipeline jobs `pipelines-<execution>-<step>-...`; job names allow
    # letters, digits and hyphens, at most 63.
    return f"pipelines-{execution_id}-{step}".replace("_", "-")[:63].rstrip("-")


class _Run:
    def __init__(self, definition: Definition, workdir: Path, pipeline: str, storage: str,
                 params: Mapping[str, Any] | None, only: list[str] | None, use_cache: bool,
                 progress: bool, stream: TextIO | None) -> None:
        self.definition = definition
        self.graph: Graph = build_graph(definition)
        self.parameters = definition.resolve_parameters(params)
        self.workdir = workdir
        self.pipeline = pipeline
        self.use_cache = use_cache
        self.only = self._check_only(only)
        workdir.mkdir(parents=True, exist_ok=True)
        self.backend: Backend = open_backend(storage, workdir)
        self.store = ExecutionStore(workdir / "executions")
        self.cache = CacheStore(workdir / "cache")
        self.groups = ProcessGroups()
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.results = {name: StepResult(name) for name in self.graph.order}
        self.properties: dict[str, dict] = {}
        self.keys: dict[str, str] = {}
        self.settled: dict[str, str] = {}  # step -> when it last changed state (the report's timeline)
        self.progress = Progress(progress, stream, self._progress_files)
        self._begin()

    def _check_only(self, only: list[str] | None) -> set[str] | None:
        if not only:
            return None
        unknown = sorted(set(only) - set(self.definition.steps))
        if unknown:
            raise ValueError(f"--only: no step named {unknown}; steps: {list(self.graph.order)}")
        return set(only)

    # --- setting up: a new execution, a resumed one, or a selective one -------------------

    def _begin(self) -> None:
        digest = definition_digest(self.definition)
        resumed = None
        if self.use_cache and self.only is None:
            resumed = self.store.resumable(self.pipeline, digest, self.parameters,
                                           self.backend.label)
        now = datetime.now(timezone.utc)
        if resumed:
            self.execution_id = resumed["ExecutionId"]
            self.variables = resumed["Execution"]
            for name, info in resumed.get("Steps", {}).items():
                if name in self.results and info.get("State") in _TERMINAL_OK:
                    self._reuse(name, info["Properties"], "completed before this resume")
        else:
            self.execution_id = new_execution_id(now)
            region = _region()
            self.variables = execution_variables(self.pipeline, self.execution_id, now, region)
        self.resumed = resumed is not None
        self.record = {
            "ExecutionId": self.execution_id, "PipelineName": self.pipeline,
            "DefinitionDigest": digest, "Parameters": self.parameters,
            "Storage": self.backend.label, "Execution": self.variables,
            "Started": (resumed or {}).get("Started", now.isoformat()), "Status": "Executing",
            "Steps": {},
        }
        if self.only is not None:
            self._select()

    def _select(self) -> None:
        """Steps outside `only` do not run; those the selected steps need lend the
        properties of their newest completed run."""
        needed = {up for name in self.only for up in self.graph.upstream[name]} - self.only
        missing = []
        for name in self.graph.order:
            if name in self.only:
                continue
            source = self.store.source_properties(self.pipeline, name) if name in needed else None
            if source:
                self._reuse(name, source[1], f"from execution {source[0]}")
            elif name in needed:
                missing.append(name)
            else:
                self.results[name].state = StepState.NOT_SELECTED
        if missing:
            raise ValueError(
                f"--only {sorted(self.only)} needs {missing}, which never completed in "
                f"{self.workdir}: add them to --only or run the whole pipeline first")

    def _reuse(self, name: str, properties: dict, reason: str) -> None:
        self.properties[name] = properties
        result = self.results[name]
        result.state, result.reason = StepState.REUSED, reason
        self._set_outputs(result, properties)

    # --- running ---------------------------------------------------------------------------

    def execute(self, assets: dict[str, bytes], max_parallel: int | None, cores: int) -> RunResult:
        started = time.monotonic()
        threads: list[threading.Thread] = []
        interrupted = False
        self.progress.note(f"execution {self.execution_id} ({'resuming, ' if self.resumed else ''}"
                           f"workdir {self.workdir}, storage {self.backend.label})")
        try:
            written = write_assets(self.backend, assets)
            if assets:
                self.progress.note(f"assets: {written} written, {len(assets) - written} unchanged")
            self._save()
            write_json(self.store.folder(self.execution_id) / DEFINITION_FILE, self.definition.raw)
            run_concurrently(list(self.graph.order), self._poll, max_parallel=max_parallel,
                             cores=cores, tick=self._tick, threads=threads)
        except KeyboardInterrupt:
            interrupted = True
            self._interrupt(threads)
        result = RunResult(self.execution_id, self.pipeline, self.workdir, self.backend.label,
                           self.results, time.monotonic() - started, interrupted, self.resumed)
        self.record["Status"] = "Succeeded" if result.ok else "Stopped" if interrupted else "Failed"
        self._save()
        if self.progress.enabled:
            print_table(result)  # the result on stdout, progress on stderr: `local > run.txt` keeps it
        return result

    def _interrupt(self, threads: list[threading.Thread]) -> None:
        self.progress.note("interrupted: stopping every step's processes")
        self.stop.set()
        while True:
            try:
                self.groups.kill_all()
                for thread in threads:
                    thread.join()
                break
            except KeyboardInterrupt:
                continue  # a second Ctrl-C must not leave children behind
        for result in self.results.values():
            if result.state in (StepState.PENDING, StepState.RUNNING):
                result.state = StepState.STOPPED if result.state is StepState.RUNNING \
                    else StepState.PENDING
                result.reason = result.reason or "interrupted"

    def _poll(self, name: str) -> Work | bool | None:
        result = self.results[name]
        if result.state is not StepState.PENDING:
            return True  # reused or not selected: settled before the run
        outcomes = {n: r.state.outcome for n, r in self.results.items() if r.state.outcome}
        decision = decide(self.graph.upstream[name], outcomes)
        if decision is None:
            return None
        if decision == "skip":
            unmet = [f"{up} {outcomes[up]}" for up, trigger in self.graph.upstream[name].items()
                     if trigger != "Any" and outcomes[up] != trigger]
            return self._settle(name, StepState.SKIPPED, "upstream " + ", ".join(unmet))
        step = self.definition.steps[name]
        try:
            arguments = self._resolve(step)
        except (ExpressionError, ValueError, KeyError, TypeError) as err:
            return self._settle(name, StepState.FAILED, f"cannot resolve its arguments: {err}")
        key = self.keys[name] = cache_key(self.backend.label, self.pipeline, name, arguments)
        if self._cache_hit(step, key):
            return True
        count = int(arguments["ProcessingResources"]["ClusterConfig"].get("InstanceCount") or 1)
        return Work(name, count, lambda cpus: self._run_step(step, arguments, key, cpus))

    def _property_file(self, step_name: str, file_name: str):
        """The JSON a step wrote as a property file, read from where its output went (for a
        cached step, where the earlier execution wrote it), as SageMaker's JsonGet does."""
        step = self.definition.steps[step_name]
        spec = next((f for f in step.property_files if f.get("PropertyFileName") == file_name), None)
        if spec is None:
            raise ExpressionError(f"step {step_name} declares no property file {file_name!r}")
        properties = self.properties.get(step_name)
        if properties is None:
            raise ExpressionError(f"property file {step_name}.{file_name}: step {step_name} did not run")
        outputs = (properties.get("ProcessingOutputConfig") or {}).get("Outputs") or []
        uri = next((o["S3Output"]["S3Uri"] for o in outputs if o.get("OutputName") == spec["OutputName"]), None)
        if uri is None:
            raise ExpressionError(f"property file {step_name}.{file_name}: no output {spec['OutputName']!r}")
        target = uri.rstrip("/") + "/" + spec["FilePath"].lstrip("/")
        try:
            return json.loads(self.backend.storage.read_bytes(target))
        except (FileNotFoundError, ValueError) as err:
            raise ExpressionError(f"property file {step_name}.{file_name} at {target}: {err}") from None

    def _resolve(self, step: Step) -> dict:
        scope = Scope(self.parameters, self.variables, self.properties.get, {
            "ProcessingJobName": job_name(self.execution_id, step.name),
            "CurrentDateTime": _timestamp(datetime.now(timezone.utc)),
        }, self._property_file)
        arguments = evaluate(step.arguments, scope)
        for item in arguments.get("ProcessingInputs") or []:
            split_uri(item["S3Input"]["S3Uri"])  # a URI that is no s3:// URI fails here, named
        for item in (arguments.get("ProcessingOutputConfig") or {}).get("Outputs") or []:
            split_uri(item["S3Output"]["S3Uri"])
        return arguments

    def _cache_hit(self, step: Step, key: str) -> bool:
        config = step.cache or {}
        if not (self.use_cache and config.get("Enabled")):
            return False
        now = datetime.now(timezone.utc)
        entry = self.cache.lookup(self.pipeline, step.name, key, config.get("ExpireAfter"), now)
        if entry is None or not self._outputs_exist(entry):
            return False
        self.properties[step.name] = entry.properties
        result = self.results[step.name]
        self._set_outputs(result, entry.properties)
        self._settle(step.name, StepState.CACHED, f"outputs of execution {entry.execution_id}")
        return True

    def _outputs_exist(self, entry: CacheEntry) -> bool:
        outputs = (entry.properties.get("ProcessingOutputConfig") or {}).get("Outputs") or []
        for output in outputs:
            if entry.output_files.get(output["OutputName"]):
                uri = output["S3Output"]["S3Uri"].rstrip("/") + "/"
                if next(iter(self.backend.storage.list(uri)), None) is None:
                    return False  # deleted since: run again rather than hand on nothing
        return True

    def _run_step(self, step: Step, arguments: dict, key: str, cpus: int) -> None:
        folder = self.store.folder(self.execution_id)
        job = Job(step.name, job_name(self.execution_id, step.name), arguments,
                  folder / "jobs" / step.name, folder / "logs" / f"{step.name}.log", cpus,
                  step.retry_policies)
        result = self.results[step.name]
        result.log, result.instances = job.log, job.instance_count
        self._settle(step.name, StepState.RUNNING, None)
        began = time.monotonic()
        try:
            outcome = run_job(job, self.backend, self.groups, self.stop)
        except Exception as err:  # noqa: BLE001 - a runner bug must fail the step, not hang
            outcome = JobOutcome("Failed", f"local runner error: {err!r}", attempts=1,
                                 started=datetime.now(timezone.utc),
                                 ended=datetime.now(timezone.utc))
        result.duration, result.attempts = time.monotonic() - began, outcome.attempts
        properties = describe(job, arguments, outcome, self.variables)
        self.properties[step.name] = properties
        if outcome.status == "Completed":
            self._set_outputs(result, properties)
            self.cache.record(self.pipeline, step.name, key, CacheEntry(
                self.execution_id, outcome.ended, properties, outcome.output_files))
            self._settle(step.name, StepState.SUCCEEDED, None)
        else:
            state = StepState.STOPPED if outcome.status == "Stopped" else StepState.FAILED
            self._settle(step.name, state, outcome.failure_reason)

    def _set_outputs(self, result: StepResult, properties: dict) -> None:
        outputs = (properties.get("ProcessingOutputConfig") or {}).get("Outputs") or []
        result.outputs = {o["OutputName"]: o["S3Output"]["S3Uri"] for o in outputs}
        result.locations = {n: self.backend.where(u) for n, u in result.outputs.items()}

    def _settle(self, name: str, state: StepState, reason: str | None) -> bool:
        result = self.results[name]
        result.state, result.reason = state, reason
        self.settled[name] = datetime.now(timezone.utc).isoformat()
        self.progress.step(result)
        self._save()
        return True

    def _save(self) -> None:
        with self.lock:
            self.record["Steps"] = {
                name: {"State": r.state.value, "Reason": r.reason, "Duration": r.duration,
                       "Log": str(r.log) if r.log else None, "Outputs": r.outputs,
                       "CacheKey": self.keys.get(name), "Properties": self.properties.get(name),
                       "SettledAt": self.settled.get(name)}
                for name, r in self.results.items()
            }
            self.store.save(self.record)

    def _tick(self) -> None:
        self.progress.status(self.results)

    def _progress_files(self, name: str) -> list[Path]:
        step = self.definition.steps[name]
        outputs = (step.arguments.get("ProcessingOutputConfig") or {}).get("Outputs") or []
        jobs = self.store.folder(self.execution_id) / "jobs" / name
        files = []
        for root in sorted(jobs.glob("algo-*/processing")):
            for output in outputs:
                local = output["S3Output"].get("LocalPath")
                if isinstance(local, str) and local.startswith(sandbox.CONTAINER_ROOT):
                    files.append(sandbox.local_dir(local, root) / PROGRESS_FILE)
        return files


def describe(job: Job, arguments: dict, outcome: JobOutcome, variables: dict) -> dict:
    """The step's properties, shaped like DescribeProcessingJob's response."""
    region = variables["PipelineArn"].split(":")[3]
    properties = dict(arguments)
    properties.update({
        "ProcessingJobName": job.job_name,
        "ProcessingJobArn": f"arn:aws:sagemaker:{region}:{LOCAL_ACCOUNT}:processing-job/"
                            f"{job.job_name.lower()}",
        "ProcessingJobStatus": outcome.status,
        "CreationTime": _timestamp(outcome.started),
        "ProcessingStartTime": _timestamp(outcome.started),
        "ProcessingEndTime": _timestamp(outcome.ended),
        "LastModifiedTime": _timestamp(outcome.ended),
    })
    if outcome.failure_reason:
        properties["FailureReason"] = outcome.failure_reason
    if outcome.exit_message:
        properties["ExitMessage"] = outcome.exit_message
    return properties


def _region() -> str:
    import os

    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
