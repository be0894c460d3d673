"""One processing instance's private `/opt/ml/processing`: staging inputs, mapping paths,
collecting outputs and uploading them only after the whole job succeeded.

SageMaker semantics kept here: an `S3Prefix` input is every object under the (string)
prefix, placed at `LocalPath/<key relative to the prefix>`; a `ManifestFile` input is a JSON
array `[{"prefix": "s3://b/p/"}, "rel/key", ...]` whose objects land at `LocalPath/rel/key`;
`ShardedByS3Key` gives instance i of n every n-th object (sorted by key), `FullyReplicated`
gives each instance everything; an input that matches no object fails the job.
"""

from __future__ import annotations

import json
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from pipeline.definition.model import PROCESSING_ROOT
from steps.io.storage import Storage, key_problem, split_uri

# The root as a whole path component, wherever it stands in an argument or a value.
_CONTAINER_PATH = re.compile(r"(?<![\w./-])" + re.escape(PROCESSING_ROOT) + r"(?=/|\b|$)")


class StagingError(RuntimeError):
    """An input could not be staged (missing objects, a bad manifest)."""


class Stopped(RuntimeError):
    """The run was interrupted while files were moving."""


@dataclass(frozen=True)
class Transfer:
    uri: str
    path: Path


def map_paths(text: str, root: Path) -> str:
    """Every `/opt/ml/processing...` inside `text` moved under this sandbox's `root`."""
    return _CONTAINER_PATH.sub(lambda _: str(root), text)


def instance_root(job_dir: Path, instance: int) -> Path:
    """`<job>/algo-<n>/opt/ml/processing`, SageMaker's host names for the instances."""
    return job_dir / f"algo-{instance + 1}" / "processing"


def write_resource_config(root: Path, instance: int, count: int) -> Path:
    """The instance's `/opt/ml/config/resourceconfig.json` (SageMaker's host names), beside
    its processing root; a job finds it through ENV_RESOURCE_CONFIG."""
    path = root.parent / "config" / "resourceconfig.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    hosts = [f"algo-{i + 1}" for i in range(count)]
    path.write_text(json.dumps({"current_host": hosts[instance], "hosts": hosts, "network_interface_name": "eth0"}))
    return path


def failure_message_path(root: Path) -> Path:
    """The instance's `/opt/ml/output/message` (SageMaker's failure-reason file), beside its
    processing root (its folder made, as SageMaker has it); a job finds it through ENV_FAILURE_MESSAGE."""
    path = root.parent / "output" / "message"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


_ERROR_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt)\b.*")


def failure_reason(roots: list[Path], log: Path) -> str | None:
    """A failed job's FailureReason as SageMaker gives it, `AlgorithmError: <message file>` (the
    first instance that wrote one); without one, the log's last exception line (a crash before
    the stage's entry could write it); None when neither says anything."""
    for root in roots:
        try:
            text = failure_message_path(root).read_text(encoding="utf-8", errors="replace").strip()
        except OSError:
            continue
        if text:
            return f"AlgorithmError: {text}"
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return None
    found = next((m.group(0) for m in map(_ERROR_LINE.match, reversed(lines)) if m), None)
    return f"AlgorithmError: {found[:1024]}" if found else None


def local_dir(container_path: str, root: Path) -> Path:
    rest = container_path[len(PROCESSING_ROOT):]
    if not container_path.startswith(PROCESSING_ROOT) or key_problem(rest.strip("/")) or \
            (rest and not rest.startswith("/")):
        raise StagingError(f"local path {container_path!r} is not under {PROCESSING_ROOT}")
    return Path(map_paths(container_path, root))


def _relative(key: str, prefix: str) -> str:
    if key == prefix:  # the URI names one object: it lands under its own file name
        return key.rsplit("/", 1)[-1]
    return key[len(prefix):].lstrip("/")


def input_objects(s3_input: dict, storage: Storage) -> list[tuple[str, str]]:
    """(uri, relative local path) of every object an input covers, sorted by key."""
    uri = s3_input["S3Uri"]
    if s3_input["S3DataType"] == "ManifestFile":
        return _manifest_objects(uri, storage)
    _, prefix = split_uri(uri)
    found = [(info.uri, _relative(split_uri(info.uri)[1], prefix)) for info in storage.list(uri)]
    found = [(u, rel) for u, rel in found if not u.endswith("/")]  # S3 "folder" markers
    if not found:
        raise StagingError(f"no objects found under {uri}")
    return sorted(found)


def _manifest_objects(uri: str, storage: Storage) -> list[tuple[str, str]]:
    try:
        entries = json.loads(storage.read_bytes(uri))
    except FileNotFoundError:
        raise StagingError(f"manifest {uri} does not exist") from None
    except ValueError as err:
        raise StagingError(f"manifest {uri} is not JSON: {err}") from None
    if not entries or not isinstance(entries[0], dict) or "prefix" not in entries[0]:
        raise StagingError(f"manifest {uri} must start with {{'prefix': 's3://...'}}")
    prefix = entries[0]["prefix"]
    objects = [(prefix + rel, rel) for rel in entries[1:] if isinstance(rel, str)]
    if len(objects) != len(entries) - 1:
        raise StagingError(f"manifest {uri}: every entry after the prefix must be a key")
    return sorted(objects)


def plan_inputs(inputs: list[dict], storage: Storage, roots: list[Path]) -> list[list[Transfer]]:
    """What each instance downloads: one list of transfers per instance root."""
    plans: list[list[Transfer]] = [[] for _ in roots]
    for item in inputs:
        s3 = item["S3Input"]
        objects = input_objects(s3, storage)
        sharded = s3.get("S3DataDistributionType") == "ShardedByS3Key"
        for uri, rel in objects:
            # A key with `..` (or a manifest entry naming one) would land outside LocalPath.
            if problem := key_problem(rel):
                raise StagingError(f"input {item.get('InputName')!r}: object {uri!r} {problem}: it would be "
                                   f"staged outside {s3['LocalPath']}; refused")
        for i, root in enumerate(roots):
            share = objects[i :: len(roots)] if sharded else objects
            base = local_dir(s3["LocalPath"], root)
            base.mkdir(parents=True, exist_ok=True)  # an instance with an empty share still has it
            plans[i] += [Transfer(uri, base / rel) for uri, rel in share]
    return plans


def download(plan: list[Transfer], storage: Storage, stop: threading.Event) -> None:
    for item in plan:
        if stop.is_set():
            raise Stopped("stopped while staging inputs")
        try:
            storage.download(item.uri, item.path)
        except FileNotFoundError:
            raise StagingError(f"input object {item.uri} does not exist") from None


def output_files(outputs: list[dict], roots: list[Path]) -> list[Transfer]:
    """Every file the instances left in their output folders, with its destination URI.

    Several instances writing the same output land in the same prefix (as in SageMaker)."""
    transfers = []
    for item in outputs:
        s3 = item["S3Output"]
        dest = s3["S3Uri"].rstrip("/")
        for root in roots:
            base = local_dir(s3["LocalPath"], root)
            for dirpath, _, filenames in os.walk(base):
                for name in sorted(filenames):
                    path = Path(dirpath) / name
                    transfers.append(Transfer(f"{dest}/{path.relative_to(base).as_posix()}", path))
    return transfers


def upload(transfers: list[Transfer], storage: Storage, stop: threading.Event) -> None:
    """Upload all or nothing: on any error (or a stop) what was already uploaded is removed,
    so a failed step leaves nothing half-written at its destination."""
    done: list[str] = []
    try:
        for item in transfers:
            if stop.is_set():
                raise Stopped("stopped while uploading outputs")
            storage.upload(item.path, item.uri)
            done.append(item.uri)
    except BaseException:
        for uri in done:
            storage.delete(uri)
        raise


def make_output_dirs(outputs: list[dict], roots: list[Path]) -> None:
    # SageMaker creates every output LocalPath before the container starts.
    for item in outputs:
        for root in roots:
            local_dir(item["S3Output"]["LocalPath"], root).mkdir(parents=True, exist_ok=True)
