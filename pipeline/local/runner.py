"""`run_pipeline`: execute a SageMaker pipeline definition on this machine.

Composition only: the definition is checked (definition.py), its graph built (graph.py), the
start planned (plan.py: new, resumed or selective), each ready step resolved (expressions.py),
looked up in the cache (cache.py), run in a sandbox (job.py, sandbox.py) by the scheduler
(scheduler.py), recorded (execution.py) and reported (progress.py).
Everything a run keeps lives under `workdir`: `s3/` (local storage), `executions/<id>/`
(record, logs, sandboxes) and `cache/`.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, TextIO

from pipeline.definition.model import processing_outputs
from pipeline.local.backend import open_backend, write_assets
from pipeline.local.containment import check_arguments, check_parameters
from pipeline.local.lock import workdir_lock
from pipeline.local.cache import CacheEntry, CacheStore, cache_key, write_json
from pipeline.local.supported import Definition, Step, load_definition
from pipeline.local.execution import Execution
from pipeline.local.expressions import ExpressionError, Scope, evaluate
from pipeline.local.readiness import Decision, build_graph, decide, unmet
from pipeline.local.job import Job, JobOutcome, JobStatus, ProcessGroups, run_job
from pipeline.local.start import check_only, plan_start
from pipeline.local.progress import Progress, print_table, progress_files
from pipeline.local.properties import describe, job_name, read_property_file, timestamp
from pipeline.local.results import RunResult, StepState
from steps.entry import os_error_line
from pipeline.local.foreach import FanOut, Iteration, aggregate, iterations, resolve_items
from pipeline.local.scheduler import Answer, Expand, Work, machine_cores, run_concurrently
from pipeline.local.state import ExecutionStatus, ExecutionStore

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
    python: str | None = None,
    install_requirements: bool = False,
    retry: str | None = None,
) -> RunResult:
    """Run every Processing step of `definition` (a dict or its JSON) here.

    - `assets`: `{s3_uri: bytes}` written to storage first (code bundle, settings files);
      an object already there with the same content is not rewritten.
    - `params`: pipeline parameter overrides; strings are parsed as the parameter's type.
    - `storage`: `"local"` (`<workdir>/s3/<bucket>/<key>`), `"aws"`, or an S3 endpoint URL.
    - `only`: run just these steps; the steps they need are taken from the newest earlier
      execution in `workdir` where they completed (a selective execution).
    - `use_cache`: False runs every step afresh (no step cache).
    - `retry`: resume the failed execution with this id ("latest": the newest), as SageMaker's
      RetryPipelineExecution does; without it the run is a new execution.
    - `max_parallel`: most steps at once (SageMaker's MaxParallelExecutionSteps); the cores
      (`cores`, default: this machine's) bound it too, a step counting its instances.
      Without it, the definition's `ParallelismConfiguration.MaxParallelExecutionSteps` if any.
    - `progress`: print live progress and the final table on `stream` (default stderr).
    - `python`, `install_requirements`: run the jobs' install path (see `Job`): the entrypoint
      under this interpreter, with the wheelhouse input staged and WAVEPIPE_PIP_INSTALL kept.

    Raises UnsupportedDefinition (before anything runs) for a definition it cannot execute,
    ValueError for bad parameters (one that would lead a key out of its folder included) or
    `only` names, and WorkdirBusy (a ValueError) while another run holds `workdir`
    (pipeline/local/lock.py); an execution a dead run left "Executing" is recorded Failed first. Ctrl-C stops every child process and
    returns the result with `interrupted=True`.
    """
    loaded = load_definition(definition)
    if max_parallel is None:
        max_parallel = (loaded.raw.get("ParallelismConfiguration") or {}).get("MaxParallelExecutionSteps")
    check_parameters(loaded.raw, loaded.resolve_parameters(params))  # before anything is written
    workdir = Path(workdir).resolve()
    with workdir_lock(workdir) as lock:
        run = _Run(loaded, workdir, pipeline_name, storage, params, only, use_cache, progress, stream, retry)
        lock.record(execution=run.execution.id, pipeline=pipeline_name)
        run.python, run.install_requirements = python, install_requirements
        return run.execute(dict(assets or {}), max_parallel, cores or machine_cores())


class _Run:
    """One call of `run_pipeline`: wires the parts, polls the steps, runs the ready ones."""

    def __init__(self, definition: Definition, workdir: Path, pipeline: str, storage: str,
                 params: Mapping[str, Any] | None, only: list[str] | None, use_cache: bool,
                 progress: bool, stream: TextIO | None, retry: str | None = None) -> None:
        self.definition = definition
        self.python: str | None = None
        self.install_requirements = False
        self.graph = build_graph(definition)
        self.parameters = definition.resolve_parameters(params)
        selected = check_only(only, self.graph)
        self.workdir, self.pipeline, self.use_cache = workdir, pipeline, use_cache
        workdir.mkdir(parents=True, exist_ok=True)
        self.backend = open_backend(storage, workdir)
        self.cache = CacheStore(workdir / "cache")
        self.groups = ProcessGroups()
        self.stop = threading.Event()
        store = ExecutionStore(workdir / "executions")
        self.abandoned = store.settle_abandoned()  # this run holds the workdir: nobody else executes them
        self.start = plan_start(definition, self.graph, store, pipeline=pipeline,
                                parameters=self.parameters, storage=self.backend.label,
                                only=selected, use_cache=use_cache, now=datetime.now(timezone.utc),
                                retry=retry)
        self.progress = Progress(progress, stream, self._progress_files, workdir=workdir)
        fields = {"PipelineName": pipeline, "DefinitionDigest": self.start.digest,
                  "Parameters": self.parameters, "Storage": self.backend.label}
        self.execution = Execution(self.start, self.graph.order, fields, store,
                                   self.backend.where, self.progress)
        self.iterations: dict[str, Iteration] = {}  # ForEach iterations, by name, once expanded
        self.fan_outs: dict[str, FanOut] = {}  # ForEach steps that expanded, by name

    def execute(self, assets: dict[str, bytes], max_parallel: int | None, cores: int) -> RunResult:
        began = time.monotonic()
        threads: list[threading.Thread] = []
        interrupted = False
        self.progress.note(f"execution {self.execution.id} ({'retrying, ' if self.start.resumed else ''}"
                           f"workdir {self.workdir}, storage {self.backend.label})")
        for execution_id in self.abandoned:
            self.progress.note(f"execution {execution_id} was left Executing by a run that ended without recording "
                               "its end (killed, or an OS error): it is recorded Failed now")
        if self.start.resumed:
            self.progress.note(f"retrying {self.execution.id}: the {len(self.start.reused)} steps it completed are "
                               "kept, with the inputs they read then (Reconcile's labels and files are not read "
                               "again); start a new execution (without --retry) to read every input again")
        elif self.start.retryable:
            self.progress.note(f"execution {self.start.retryable} did not succeed; this is a new execution, which "
                               f"reads every input again (to resume that one instead: local --retry "
                               f"{self.start.retryable})")
        error: OSError | None = None
        try:
            self._check(self.execution.save())  # the record first: whatever fails next, it is there
            written = write_assets(self.backend, assets)
            if assets:
                self.progress.note(f"assets: {written} written, {len(assets) - written} unchanged")
            write_json(self.execution.folder / DEFINITION_FILE, self.definition.raw)
            run_concurrently(list(self.graph.order), self._poll, max_parallel=max_parallel,
                             cores=cores, tick=self._tick, threads=threads)
            self._check(self.execution.save_error is None)
        except KeyboardInterrupt:
            interrupted = True
            self._interrupt(threads)
        except OSError as err:  # disk full, permission denied...: one line, a Failed record, resumable
            error = err
            self.progress.note(f"stopping: {os_error_line(err)}")
            self._interrupt(threads, quiet=True)
        result = RunResult(self.execution.id, self.pipeline, self.workdir, self.backend.label,
                           self.execution.results, time.monotonic() - began, interrupted,
                           self.start.resumed)
        recorded = self.execution.save(ExecutionStatus.SUCCEEDED if result.ok and not error else
                                       ExecutionStatus.STOPPED if interrupted else ExecutionStatus.FAILED)
        if error is not None:
            where = (f"execution {self.execution.id} is recorded Failed" if recorded else
                     f"execution {self.execution.id} could not record its end either (the next run in this "
                     "workdir records it Failed)")
            result.error = (f"{os_error_line(error)} ({where}; once that is fixed, resume it with "
                            f"local --retry {self.execution.id})")
        if self.progress.enabled:
            self.progress.close()
            print_table(result)  # the result on stdout, progress on stderr: `local > run.txt` keeps it
        return result

    def _check(self, saved: bool) -> None:
        """A record that cannot be written ends the run: raise the OS error that stopped it."""
        if not saved or self.execution.save_error is not None:
            raise self.execution.save_error

    def _interrupt(self, threads: list[threading.Thread], quiet: bool = False) -> None:
        if not quiet:
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
        self.execution.interrupted()

    def _poll(self, name: str) -> Work | Answer | Expand:
        if self.execution.save_error is not None:
            raise self.execution.save_error  # a step's record could not be written: end the run
        if name in self.fan_outs:
            return self._settle_for_each(name)  # running its iterations
        if self.execution.results[name].state is not StepState.PENDING:
            return Answer.SETTLED  # reused or not selected: settled before the run
        if name in self.iterations:
            return self._poll_iteration(self.iterations[name])
        outcomes = self.execution.outcomes()
        conditions = self.graph.upstream[name]
        decision = decide(conditions, outcomes)
        if decision is Decision.WAIT:
            return Answer.WAIT
        if decision is Decision.SKIP:
            why = ", ".join(f"{up} {outcomes[up].value}" for up in unmet(conditions, outcomes))
            self.execution.settle(name, StepState.SKIPPED, "upstream " + why)
            return Answer.SETTLED
        step = self.definition.steps[name]
        if step.for_each is not None:
            return self._expand(step)
        return self._prepare(name, step)

    def _prepare(self, name: str, step: Step, item=None) -> Work | Answer:
        """Resolve a job step (or iteration `name` of body `step`), then a cache hit or Work."""
        try:
            arguments = self._resolve(step, name, item)
        except (ExpressionError, ValueError, KeyError, TypeError) as err:
            self.execution.settle(name, StepState.FAILED, f"cannot resolve its arguments: {err}")
            return Answer.SETTLED
        key = self.execution.keys[name] = cache_key(self.backend.label, self.pipeline, name, arguments)
        entry, why = self.cache.hit(self.pipeline, name, key, step.cache, self.backend.storage,
                                    datetime.now(timezone.utc)) if self.use_cache else (None, None)
        if why:
            self.progress.note(f"{name}: not reused: {why}; running it again")
        if entry is not None:
            self.execution.cached(name, entry.properties, entry.execution_id)
            return Answer.SETTLED
        count = int(arguments["ProcessingResources"]["ClusterConfig"].get("InstanceCount") or 1)
        return Work(name, count, lambda cpus: self._run_step(name, step, arguments, key, cpus))

    def _expand(self, step: Step) -> Expand | Answer:
        """A ready ForEach step: its items become iterations, driven like steps of their own."""
        try:
            items = resolve_items(step, self._scope(step.name))
        except (ExpressionError, ValueError, KeyError, TypeError) as err:
            self.execution.settle(step.name, StepState.FAILED, f"cannot resolve its items: {err}")
            return Answer.SETTLED
        children = iterations(step, items)
        fan_out = self.fan_outs[step.name] = FanOut([child.name for child in children], len(items), time.monotonic())
        self.iterations.update({child.name: child for child in children})
        self.execution.expand(step.name, fan_out.children)
        self.progress.note(f"{step.name}: {len(items)} items, at most {step.for_each.max_concurrency} at once")
        return Expand(fan_out.children)

    def _poll_iteration(self, child: Iteration) -> Work | Answer:
        # Handed out and not ended: a Work counts before its thread marks it running. Only these
        # (at most MaxConcurrency) are looked at, so thousands of iterations poll cheaply.
        active = self.fan_outs[child.parent].active
        active -= {n for n in active if self.execution.results[n].state.outcome is not None}
        if len(active) >= self.definition.steps[child.parent].for_each.max_concurrency:
            return Answer.WAIT  # MaxConcurrency: the next iteration starts when one ends
        answer = self._prepare(child.name, child.body, child.item)
        if isinstance(answer, Work):
            active.add(child.name)
        return answer

    def _settle_for_each(self, name: str) -> Answer:
        fan_out = self.fan_outs[name]
        children = [self.execution.results[n] for n in fan_out.children]
        if any(c.state.outcome is None for c in children):
            return Answer.WAIT
        state, reason, properties = aggregate(children, fan_out.items)
        self.execution.aggregate(name, state, reason, properties, time.monotonic() - fan_out.began)
        return Answer.SETTLED

    def _scope(self, name: str, item=None) -> Scope:
        return Scope(self.parameters, self.execution.variables, self.execution.properties.get, {
            "ProcessingJobName": job_name(self.execution.id, name),
            "CurrentDateTime": timestamp(datetime.now(timezone.utc)),
        }, self._property_file, item)

    def _resolve(self, step: Step, name: str, item=None) -> dict:
        scope = self._scope(name, item)
        arguments = evaluate(step.arguments, scope)
        check_arguments(arguments)
        return arguments

    def _property_file(self, step_name: str, file_name: str) -> Any:
        return read_property_file(self.definition.steps[step_name], file_name,
                                  self.execution.properties.get(step_name), self.backend.storage)

    def _run_step(self, name: str, step: Step, arguments: dict, key: str, cpus: int) -> None:
        """Runs in a worker thread; never raises (a runner bug fails the step, not the run)."""
        folder = self.execution.folder
        job = Job(name, job_name(self.execution.id, name), arguments,
                  folder / "jobs" / name, folder / "logs" / f"{name}.log", cpus,
                  step.retry_policies, self.python, self.install_requirements)
        self.execution.running(name, job.log, job.instance_count)
        began = time.monotonic()
        try:
            outcome = run_job(job, self.backend, self.groups, self.stop)
        except Exception as err:  # noqa: BLE001 - a runner bug must fail the step, not hang
            now = datetime.now(timezone.utc)
            why = os_error_line(err) if isinstance(err, OSError) else f"local runner error: {err!r}"
            outcome = JobOutcome(JobStatus.FAILED, why, attempts=1, started=now, ended=now)
        duration = time.monotonic() - began
        properties = describe(job, arguments, outcome, self.execution.variables)
        if outcome.status is JobStatus.COMPLETED:
            self.cache.record(self.pipeline, name, key, CacheEntry(
                self.execution.id, outcome.ended, properties, outcome.output_files, outcome.output_objects))
        self.execution.ran(name, outcome, properties, duration)

    def _tick(self) -> None:
        self.progress.status(self.execution.results)

    def _progress_files(self, name: str) -> list[Path]:
        # Called by progress ticks only, once the execution exists.
        jobs = self.execution.folder / "jobs" / name
        step = self.iterations[name].body if name in self.iterations else self.definition.steps[name]
        return progress_files(processing_outputs(step.arguments), jobs)
