"""Running one Processing job on this machine: stage, run each instance, upload on success.

The container entrypoint runs as a subprocess of the current Python (`python3` becomes
`sys.executable`), one process per instance, each in its own process group (so Ctrl-C and
timeouts stop everything it started) with `/opt/ml/processing` mapped into its sandbox.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import IO

from botocore.exceptions import ClientError

from pipeline.definition.model import processing_outputs
from pipeline.local import sandbox
from pipeline.local.backend import Backend
from pipeline.local.cache import listed_objects
from pipeline.local.expressions import to_text
from steps.entry import os_error_line
from steps.contract import ENV_FAILURE_MESSAGE, ENV_PIP_INSTALL, ENV_RESOURCE_CONFIG, WHEELHOUSE_DIR
from steps.io.storage import UnsafeKey

PYTHONS = {"python", "python3", f"python3.{sys.version_info.minor}"}
# A process killed by a signal the runner did not send (the OOM killer, a crash) is the local
# counterpart of SageMaker.JOB_INTERNAL_ERROR; the other exception types cannot occur here.
INTERNAL_ERROR = "SageMaker.JOB_INTERNAL_ERROR"
GRACE_SECONDS = 5.0


class ProcessGroups:
    """Every child process group the run started, so one call can stop them all."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._procs: set[subprocess.Popen] = set()

    def add(self, proc: subprocess.Popen) -> None:
        with self._lock:
            self._procs.add(proc)

    def discard(self, proc: subprocess.Popen) -> None:
        with self._lock:
            self._procs.discard(proc)

    def kill_all(self, grace: float = GRACE_SECONDS) -> None:
        with self._lock:
            procs = list(self._procs)
        terminate(procs, grace)


def terminate(procs: list[subprocess.Popen], grace: float = GRACE_SECONDS) -> None:
    """SIGTERM each process group, then SIGKILL what is still alive after `grace` seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for proc in procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + grace
        while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
            time.sleep(0.05)


class JobStatus(str, Enum):
    """A job's terminal ProcessingJobStatus, as DescribeProcessingJob says it."""

    COMPLETED = "Completed"
    FAILED = "Failed"
    STOPPED = "Stopped"


@dataclass
class JobOutcome:
    status: JobStatus
    failure_reason: str | None = None
    exit_message: str | None = None
    attempts: int = 0
    started: datetime | None = None
    ended: datetime | None = None
    output_files: dict[str, int] = field(default_factory=dict)
    # output name -> {relative key: [size, ETag]} as the storage listed them after the upload
    output_objects: dict[str, dict[str, list]] = field(default_factory=dict)


@dataclass
class Job:
    name: str  # the step name
    job_name: str  # ProcessingJobName
    arguments: dict  # resolved CreateProcessingJob request
    folder: Path  # the job's sandboxes live here
    log: Path
    cpus: int = 1  # cores this job may use (all instances together)
    retry_policies: tuple[dict, ...] = ()
    # The jobs' install path (`deploy.py local --install-requirements`): the entrypoint's python3
    # is this interpreter (a virtual environment made for the wheelhouse), the wheelhouse input
    # is staged and WAVEPIPE_PIP_INSTALL kept. Otherwise neither: nothing is installed here.
    python: str | None = None
    install_requirements: bool = False

    @property
    def instance_count(self) -> int:
        cluster = (self.arguments.get("ProcessingResources") or {}).get("ClusterConfig") or {}
        return max(1, int(cluster.get("InstanceCount") or 1))

    @property
    def max_runtime(self) -> float | None:
        stop = self.arguments.get("StoppingCondition") or {}
        return float(stop["MaxRuntimeInSeconds"]) if stop.get("MaxRuntimeInSeconds") else None


def run_job(job: Job, backend: Backend, groups: ProcessGroups, stop: threading.Event) -> JobOutcome:
    """Run `job` to a terminal status, retrying internal errors as its RetryPolicies allow."""
    outcome = JobOutcome(JobStatus.FAILED, started=datetime.now(timezone.utc))
    first = time.monotonic()
    job.log.parent.mkdir(parents=True, exist_ok=True)
    job.log.write_text("")
    while True:
        outcome.attempts += 1
        status, reason, internal, objects = _attempt(job, backend, groups, stop, outcome.attempts)
        outcome.status, outcome.failure_reason, outcome.output_objects = status, reason, objects
        outcome.output_files = {name: len(keys) for name, keys in objects.items()}
        wait = _retry_wait(job.retry_policies, outcome.attempts, time.monotonic() - first) \
            if internal and status is JobStatus.FAILED else None
        if wait is None:
            break
        _log(job.log, f"retrying in {wait:g}s ({INTERNAL_ERROR}, retry policy)")
        if stop.wait(wait):
            outcome.status, outcome.failure_reason = JobStatus.STOPPED, "stopped before a retry"
            break
    outcome.ended = datetime.now(timezone.utc)
    if outcome.status is JobStatus.FAILED:
        outcome.exit_message = _tail(job.log)
    return outcome


def _retry_wait(policies: tuple[dict, ...], attempts: int, elapsed: float) -> float | None:
    for policy in policies:
        if INTERNAL_ERROR not in (policy.get("ExceptionType") or []):
            continue
        retries = attempts - 1
        if "MaxAttempts" in policy and retries >= int(policy["MaxAttempts"]):
            continue
        if "ExpireAfterMin" in policy and elapsed > 60 * float(policy["ExpireAfterMin"]):
            continue
        interval = float(policy.get("IntervalSeconds", 1))
        return interval * float(policy.get("BackoffRate", 2.0)) ** retries
    return None


def _attempt(job: Job, backend: Backend, groups: ProcessGroups, stop: threading.Event,
             attempt: int) -> tuple[JobStatus, str | None, bool, dict[str, dict[str, list]]]:
    """One try: (status, failure reason, was it an internal error, objects per output)."""
    shutil.rmtree(job.folder, ignore_errors=True)
    roots = [sandbox.instance_root(job.folder, i) for i in range(job.instance_count)]
    args = job.arguments
    outputs = processing_outputs(args)
    try:
        inputs = [item for item in args.get("ProcessingInputs") or []
                  if job.install_requirements or item["S3Input"]["LocalPath"] != WHEELHOUSE_DIR]
        plans = sandbox.plan_inputs(inputs, backend.storage, roots)
        for plan in plans:
            sandbox.download(plan, backend.storage, stop)
        sandbox.make_output_dirs(outputs, roots)
    except sandbox.Stopped as err:
        return JobStatus.STOPPED, str(err), False, {}
    except (sandbox.StagingError, ClientError, UnsafeKey) as err:  # e.g. AccessDenied reading an input
        _log(job.log, f"ClientError: {err}")
        return JobStatus.FAILED, f"ClientError: {err}", False, {}
    except OSError as err:  # the sandbox's disk is full, or not writable: named, one line
        _log(job.log, f"staging inputs failed: {os_error_line(err)}")
        return JobStatus.FAILED, f"staging inputs failed: {os_error_line(err)}", False, {}
    status, reason, internal = _run_instances(job, backend, groups, stop, roots, attempt)
    if status is not JobStatus.COMPLETED:
        return status, reason, internal, {}  # outputs of a failed job are never uploaded
    transfers = sandbox.output_files(outputs, roots)
    try:
        sandbox.upload(transfers, backend.storage, stop)
    except sandbox.Stopped as err:
        return JobStatus.STOPPED, str(err), False, {}
    except OSError as err:  # the storage's disk is full, or not writable: named, one line
        _log(job.log, f"uploading outputs failed: {os_error_line(err)}")
        return JobStatus.FAILED, f"uploading outputs failed: {os_error_line(err)}", False, {}
    except Exception as err:  # noqa: BLE001 - any storage error fails the job, named
        _log(job.log, f"uploading outputs failed: {err!r}")
        return JobStatus.FAILED, f"ClientError: uploading outputs failed: {err}", False, {}
    # What a later cache hit checks its outputs against: as the storage lists them (ETags of
    # multipart or KMS uploads are not the MD5 of the bytes), not as they were on disk here.
    objects = {o["OutputName"]: listed_objects(backend.storage, o["S3Output"]["S3Uri"]) for o in outputs}
    return JobStatus.COMPLETED, None, False, objects


def command(arguments: dict, root: Path, python: str | None = None) -> list[str]:
    """The entrypoint and arguments as this sandbox runs them."""
    app = arguments["AppSpecification"]
    argv = [sandbox.map_paths(to_text(part), root)
            for part in list(app["ContainerEntrypoint"]) + list(app.get("ContainerArguments") or [])]
    if argv and argv[0] in PYTHONS:
        argv[0] = python or sys.executable
    return argv


def environment(job: Job, backend: Backend, root: Path, instance: int) -> dict[str, str]:
    """The child's environment: this process's, minus what would point it elsewhere, plus the
    step's Environment, the storage settings and the local markers."""
    env = {k: v for k, v in os.environ.items() if k not in backend.unset}
    if job.install_requirements:
        # Like a job: no pip configuration of this machine (indexes, find-links) may help out.
        env = {k: v for k, v in env.items() if not k.startswith("PIP_") and k != "PYTHONPATH"}
        env["PIP_CONFIG_FILE"] = os.devnull
    for key, value in (job.arguments.get("Environment") or {}).items():
        env[key] = sandbox.map_paths(to_text(value), root)
    if not job.install_requirements:
        # After the step's own Environment, which sets it: never install into the user's Python.
        env.pop(ENV_PIP_INSTALL, None)
    env.update(backend.env)
    env["WAVEPIPE_LOCAL"] = "1"
    env["WAVEPIPE_CURRENT_HOST"] = f"algo-{instance + 1}"
    env[ENV_RESOURCE_CONFIG] = str(sandbox.write_resource_config(root, instance, job.instance_count))
    env[ENV_FAILURE_MESSAGE] = str(sandbox.failure_message_path(root))
    per_instance = max(1, job.cpus // job.instance_count)
    # joblib (loky) sizes its pools from this: a step uses only the cores it was given.
    env.setdefault("LOKY_MAX_CPU_COUNT", str(per_instance))
    env.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")  # carriage-return bars in a log file
    return env


def _run_instances(job: Job, backend: Backend, groups: ProcessGroups, stop: threading.Event,
                   roots: list[Path], attempt: int) -> tuple[JobStatus, str | None, bool]:
    procs: list[subprocess.Popen] = []
    pumps: list[threading.Thread] = []
    lock = threading.Lock()  # several instances share one step log
    with open(job.log, "ab") as log:
        for i, root in enumerate(roots):
            argv = command(job.arguments, root, job.python)
            prefix = f"[algo-{i + 1}] " if len(roots) > 1 else ""
            with lock:
                log.write(f"{prefix}# attempt {attempt}: {' '.join(argv)}\n".encode())
                log.flush()
            try:
                proc = subprocess.Popen(
                    argv, cwd=root, env=environment(job, backend, root, i),
                    stdin=subprocess.DEVNULL, stdout=log if not prefix else subprocess.PIPE,
                    stderr=subprocess.STDOUT, start_new_session=True,
                )
            except OSError as err:
                terminate(procs)
                log.write(f"cannot start {argv[0]}: {err}\n".encode())
                return JobStatus.FAILED, f"InternalServerError: cannot start the entrypoint: {err}", True
            groups.add(proc)
            procs.append(proc)
            if prefix:
                pumps.append(_pump(proc.stdout, log, prefix.encode(), lock))
        try:
            status, reason, internal = _wait(procs, job.max_runtime, stop)
        finally:
            terminate(procs)
            for proc in procs:
                groups.discard(proc)
            for pump in pumps:
                pump.join()
    if status is JobStatus.FAILED and not internal:
        reason = sandbox.failure_reason(roots, job.log) or reason
    return status, reason, internal


def _wait(procs: list[subprocess.Popen], max_runtime: float | None,
          stop: threading.Event) -> tuple[JobStatus, str | None, bool]:
    """Until every instance exits, the first one fails, the runtime is up, or a stop."""
    deadline = time.monotonic() + max_runtime if max_runtime else None
    while True:
        if stop.is_set():
            return JobStatus.STOPPED, "stopped by the user", False
        codes = [p.poll() for p in procs]
        failed = [(i, c) for i, c in enumerate(codes) if c not in (None, 0)]
        if failed:
            i, code = failed[0]
            host = f"algo-{i + 1}"
            if code < 0:
                name = signal.Signals(-code).name
                return JobStatus.FAILED, f"InternalServerError: {host} was killed by {name}", True
            return JobStatus.FAILED, f"AlgorithmError: {host} exited with code {code}", False
        if all(c == 0 for c in codes):
            return JobStatus.COMPLETED, None, False
        if deadline and time.monotonic() > deadline:
            return JobStatus.FAILED, f"MaxRuntimeExceeded: ran longer than {max_runtime:g}s", False
        stop.wait(0.1)


def _pump(stream: IO[bytes], log: IO[bytes], prefix: bytes, lock: threading.Lock) -> threading.Thread:
    # Each line of a shared step log says which instance wrote it.

    def copy() -> None:
        for line in iter(stream.readline, b""):
            with lock:
                log.write(prefix + line)
                log.flush()
        stream.close()

    thread = threading.Thread(target=copy, daemon=True)
    thread.start()
    return thread


def _log(path: Path, message: str) -> None:
    with open(path, "a") as fh:
        fh.write(f"# {message}\n")


def _tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])[-1024:]
