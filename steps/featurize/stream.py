"""`read_mode: stream`: the job gets the shard's manifest and index only; workers fetch records.

- The parent fetches every header of its share of the shard into a *skeleton* folder, where
  each data file is a sparse placeholder of its indexed size (no disk blocks, no bytes
  moved). Discovery, work estimates and the record cache's keys then see exactly what they
  see in download mode, so cache entries are shared between the two modes.
- Each worker featurizes its records from a per-record scratch folder: the record's
  headers (copied from the skeleton) and the data files its headers name (fetched, see
  `fetch.py`). At most `records_in_flight` records per worker exist at once (the one being
  featurized and the ones being prefetched behind it); each folder is deleted right after its
  record is featurized. wfdb and the reader read files by path, hence files rather than memory;
  the scratch space holds the in-flight records only, never the shard.
- Several instances: each takes the artifact folders whose stable hash falls on its index in
  the sorted host list (`/opt/ml/config/resourceconfig.json`), so every record, and every
  record-cache unit (a folder), is processed by exactly one host. The hash is salted: the
  shard was picked by the unsalted hash of the same folder id (steps/sharding.py), so without
  the salt every folder of a shard would land on one host whenever the host count divides
  the shard count (always, with power-of-two `auto` counts).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Callable, Iterator

from steps.contract import ENV_RESOURCE_CONFIG, RESOURCE_CONFIG
from steps.featurize.discovery import body_lines, read_text
from steps.featurize.fetch import Fetcher, FetchError, ObjectRef
from steps.featurize.records import RecordRef
from steps.featurize.settings import StreamSettings
from steps.io.storage import key_problem

HEADER_THREADS = 16


@dataclass(frozen=True)
class Hosts:
    """This instance and all of the job's instances, as SageMaker names them."""

    current: str = "algo-1"
    all: tuple[str, ...] = ("algo-1",)

    @property
    def count(self) -> int:
        return len(self.all)

    @property
    def index(self) -> int:
        return sorted(self.all).index(self.current)


def current_hosts(env: dict[str, str] | None = None) -> Hosts:
    """From the resource config SageMaker writes on every instance; one host without it."""
    env = os.environ if env is None else env
    path = Path(env.get(ENV_RESOURCE_CONFIG) or RESOURCE_CONFIG)
    if not path.is_file():
        return Hosts()
    try:
        config = json.loads(path.read_text())
        hosts = Hosts(str(config["current_host"]), tuple(str(h) for h in config["hosts"]))
        hosts.index  # noqa: B018 - the current host must be one of the hosts
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"resource config {path}: expected current_host and hosts (with it among them): "
                         f"{type(err).__name__}: {err}") from None
    return hosts


# Any fixed bytes not shared with steps/sharding.py's hash make the host choice independent of it.
HOST_SALT = b"wavepipe-host\0"


def folder_host(folder: str, count: int) -> int:
    """The host index (0-based, of the sorted host list) that processes an artifact folder."""
    return int.from_bytes(hashlib.sha256(HOST_SALT + folder.encode()).digest()[:8], "big") % count


def host_share(index: dict[str, dict], hosts: Hosts) -> dict[str, dict]:
    """The index entries of the folders this host processes (all of them on one host)."""
    if hosts.count == 1:
        return dict(index)
    mine = hosts.index
    return {k: v for k, v in index.items()
            if folder_host(PurePosixPath(k).parent.as_posix(), hosts.count) == mine}


def read_manifest_prefix(path: Path) -> str:
    """The `{"prefix": "s3://..."}` every key of a ManifestFile is relative to."""
    try:
        entries = json.loads(Path(path).read_text())
    except ValueError as err:
        raise ValueError(f"manifest {path} is no JSON: {err}") from None
    if not isinstance(entries, list) or not entries or not isinstance(entries[0], dict) or "prefix" not in entries[0]:
        raise ValueError(f"manifest {path} must start with {{'prefix': 's3://...'}}")
    return str(entries[0]["prefix"])


def object_ref(prefix: str, key: str, entry: dict) -> ObjectRef:
    return ObjectRef(prefix.rstrip("/") + "/" + key, int(entry["size"]), str(entry["etag"]))


def build_skeleton(root: Path, index: dict[str, dict], fetch_header: Callable[[str, Path], None]) -> None:
    """Headers fetched (`fetch_header(key, path)`), data files as sparse files of their size."""
    headers = []
    for key, entry in index.items():
        if key_problem(key):
            continue  # would land outside the shard's folder: its record reports the file missing
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        if key.endswith(".hea"):
            headers.append((key, path))
        else:
            with open(path, "wb") as fh:
                fh.truncate(int(entry["size"]))  # sizes as in download mode, no blocks on disk
    with ThreadPoolExecutor(max_workers=HEADER_THREADS) as pool:
        list(pool.map(lambda kp: fetch_header(*kp), headers))


def skeleton_fetch(fetcher: Fetcher, prefix: str, index: dict[str, dict]) -> Callable[[str, Path], None]:
    """A `fetch_header` for build_skeleton through `fetcher` (a failure stops the job: without
    its headers a shard's records cannot even be found)."""

    def fetch(key: str, path: Path) -> None:
        obj = object_ref(prefix, key, index[key])
        fetcher.result(obj, path, fetcher.submit(obj, path))

    return fetch


@dataclass(frozen=True)
class RecordObjects:
    """What a worker needs for one record: headers to copy from the skeleton, objects to fetch."""

    record: RecordRef
    headers: tuple[str, ...]
    data: tuple[tuple[str, ObjectRef], ...]  # (key relative to the shard, object)

    @property
    def bytes(self) -> int:
        return sum(obj.size for _, obj in self.data)


def _data_names(path: Path) -> list[str]:
    return [t[0] for t in body_lines(read_text(path)) if len(t) > 1 and t[0] != "~"]


def record_objects(record: RecordRef, root: Path, prefix: str, index: dict[str, dict]) -> RecordObjects:
    """The record's headers (its own, its segments', its layout) and the data files they name,
    found in the index (not the whole folder: plain datasets keep thousands of records in one);
    a file the index lacks is left for the reader to report."""
    folder = PurePosixPath(record.header).parent
    names = [PurePosixPath(record.header).stem, *record.segments]
    if record.kind == "multi":
        names += [t[0] for t in body_lines(read_text(root / record.header)) if t and t[0] != "~"]
    headers, data = {record.header}, set()
    for name in names:
        header = os.path.normpath((folder / f"{name}.hea").as_posix())
        if header in index:
            headers.add(header)
            data.update(os.path.normpath((folder / f).as_posix()) for f in _data_names(root / header))
    keys = sorted(k for k in data if k in index and not k.endswith(".hea"))
    return RecordObjects(record, tuple(sorted(headers)), tuple((k, object_ref(prefix, k, index[k])) for k in keys))


@dataclass
class Fetched:
    """A record ready to featurize (re-rooted in its scratch folder), or why it is not."""

    record: RecordRef
    local: RecordRef | None
    error: str | None
    wait_s: float
    bytes: int


@dataclass
class _InFlight:
    item: RecordObjects
    scratch: Path
    futures: list


class Prefetcher:
    """Fetch records ahead of the one being featurized, at most `records_in_flight` at once."""

    def __init__(self, fetcher: Fetcher, skeleton: Path, options: StreamSettings) -> None:
        self.fetcher = fetcher
        self.skeleton = Path(skeleton)
        self.options = options
        self.peak_in_flight = 0

    def _start(self, item: RecordObjects) -> _InFlight:
        scratch = Path(tempfile.mkdtemp(prefix="wavepipe-record-", dir=self.options.scratch_dir))
        for key in item.headers:
            (scratch / key).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.skeleton / key, scratch / key)
        futures = [self.fetcher.submit(obj, scratch / key) for key, obj in item.data]
        return _InFlight(item, scratch, futures)

    def _finish(self, flight: _InFlight) -> Fetched:
        started = time.perf_counter()
        errors = []
        for (key, obj), future in zip(flight.item.data, flight.futures):
            try:
                self.fetcher.result(obj, flight.scratch / key, future)
            except FetchError as err:
                errors.append(str(err))
        record = flight.item.record
        local = None if errors else replace(record, root=str(flight.scratch))
        return Fetched(record, local, "; ".join(errors) or None, time.perf_counter() - started, flight.item.bytes)

    def records(self, items: list[RecordObjects]) -> Iterator[Fetched]:
        """Each record fetched, in order; its scratch folder is deleted when the caller moves on."""
        pending: deque[_InFlight] = deque()
        todo = iter(items)
        try:
            while True:
                while len(pending) < self.options.records_in_flight and (item := next(todo, None)) is not None:
                    pending.append(self._start(item))
                if not pending:
                    return
                self.peak_in_flight = max(self.peak_in_flight, len(pending))
                flight = pending.popleft()
                try:
                    yield self._finish(flight)
                finally:
                    shutil.rmtree(flight.scratch, ignore_errors=True)
        finally:
            for flight in pending:  # the caller stopped early: wait for the transfers, then clean up
                for (key, obj), future in zip(flight.item.data, flight.futures):
                    try:
                        self.fetcher.result(obj, flight.scratch / key, future)
                    except FetchError:
                        pass
                shutil.rmtree(flight.scratch, ignore_errors=True)
