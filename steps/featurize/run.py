"""Featurize one macroshard: discover records, spread them over workers, write the outputs.

Records are packed into microshards by work (estimated samples) and dispatched largest first, so the long tail of
small records fills the gaps left by the big ones and all workers finish together. Results are
put back in record order before writing, so `jobs=1` and `jobs=N` give identical files.
"""

from __future__ import annotations

import json
import os
import resource
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Callable, Iterable

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from steps.io import storage as st
from steps.contract import ENV_S3_ROOT, ERRORS_FILE, FEATURES_FILE, HOST_DONE_FILE, HOSTS_FOLDER, PROGRESS_FILE, REPORT_FILE, REPORT_TOP_ERROR
from steps.featurize.cache import folder_of, read_index
from steps.featurize.cache.packs import PackFolder, pack_metadata
from steps.featurize.accounting import account
from steps.featurize.discovery import discover
from steps.featurize.records import ERROR_COLUMNS, FeatureResult, RecordError, RecordRef, error_row
from steps.featurize.settings import BUILTIN_FEATURE_FUNCTION, FeaturizeSettings, StreamSettings, load_function
from steps.featurize.summary import result_rows_table

if TYPE_CHECKING:
    from steps.featurize.stream import Hosts

ERRORS_SCHEMA = pa.schema([(name, pa.string()) for name in ERROR_COLUMNS])


@dataclass
class Outcome:
    """One record's result as it comes back from a worker."""

    record: RecordRef
    result: FeatureResult
    seconds: float


@dataclass
class TaskReport:
    outcomes: list[Outcome]
    pid: int
    busy_s: float
    bytes: int
    peak_rss_mb: float
    bytes_fetched: int = 0  # read_mode stream: what the worker fetched itself
    fetch_wait_s: float = 0.0  # ... and how long featurizing waited for it (transfer not hidden)
    peak_in_flight: int = 0


@dataclass(frozen=True)
class StreamContext:
    """What a streaming worker needs besides its records: the skeleton and the fetch options."""

    skeleton: str
    options: StreamSettings


@dataclass
class ShardRun:
    records: list[RecordRef]
    outcomes: list[Outcome] = field(default_factory=list)
    tasks: list[TaskReport] = field(default_factory=list)


def _work(record: RecordRef) -> int:
    return max(record.samples, 1)


def plan_microshards(records: list[RecordRef], jobs: int, per_worker: int) -> list[list[RecordRef]]:
    """Pack records into microshards of about total/(jobs*per_worker) work, largest first.

    Work is a record's sample count (each sample is read and counted once; bytes would
    misjudge format 16 against 80). A record at least that big is a microshard alone; smaller
    ones are grouped, saving dispatch overhead on the long tail. The returned order is by
    decreasing work: with a pool that hands the next task to whichever worker is free, that is
    the longest-processing-time-first schedule."""
    ordered = sorted(records, key=lambda r: (-_work(r), r.sort_key))
    target = max(1, sum(_work(r) for r in records) // max(1, jobs * per_worker))
    shards: list[list[RecordRef]] = []
    batch: list[RecordRef] = []
    batch_work = 0
    for rec in ordered:
        if _work(rec) >= target:
            shards.append([rec])
            continue
        batch.append(rec)
        batch_work += _work(rec)
        if batch_work >= target:
            shards.append(batch)
            batch, batch_work = [], 0
    if batch:
        shards.append(batch)
    return sorted(shards, key=lambda s: -sum(_work(r) for r in s))


def _as_result(record: RecordRef, value: Any) -> FeatureResult:
    """Accept what a user function may return: a FeatureResult, a DataFrame or row dicts."""
    if isinstance(value, FeatureResult):
        return value
    if isinstance(value, pd.DataFrame):
        return FeatureResult(rows=value.to_dict("records"))
    if value is None:
        return FeatureResult()
    return FeatureResult(rows=[dict(row) for row in value])


def featurize_record(record: RecordRef, function: Callable[..., Any], options: dict[str, Any]) -> FeatureResult:
    """Run the feature function on one record; whatever it raises becomes an error row."""
    try:
        return _as_result(record, function(record, **options))
    except RecordError as err:
        return FeatureResult(errors=[error_row(record, err.kind, err.message, err.segment, err.file)])
    except Exception as err:  # noqa: BLE001 - a bad record must never crash the shard
        kind = "read_error" if function.__module__.startswith("steps.featurize") else "feature_function_error"
        return FeatureResult(errors=[error_row(record, kind, f"{type(err).__name__}: {err}")])


def run_microshard(records: list, function_ref: str, options: dict[str, Any],
                   stream: StreamContext | None = None) -> TaskReport:
    """One joblib task: every record of a microshard, in one worker process. Streaming, the
    records are RecordObjects, fetched here (prefetched behind the one being featurized)."""
    function = load_function(function_ref)
    started = time.perf_counter()
    if stream is not None:
        return _run_streamed(records, function, options, stream, started)
    outcomes = []
    for record in records:
        t0 = time.perf_counter()
        result = featurize_record(record, function, options)
        outcomes.append(Outcome(record, result, time.perf_counter() - t0))
    return TaskReport(outcomes, os.getpid(), time.perf_counter() - started, sum(r.bytes for r in records), peak_rss_mb())


_FETCHERS: dict = {}


def _run_streamed(items: list, function: Callable[..., Any], options: dict[str, Any], stream: StreamContext,
                  started: float) -> TaskReport:
    from steps.featurize.fetch import fetcher_from_env
    from steps.featurize.stream import Prefetcher

    # One fetcher (client, connection pool, threads) per worker process, kept across its tasks:
    # making a client costs more than a small microshard's transfer.
    key = (stream.options, os.environ.get(ENV_S3_ROOT), os.environ.get("AWS_ENDPOINT_URL"))
    if key not in _FETCHERS:
        for old in _FETCHERS.values():  # another job's (a reused worker): its transfer threads end here
            old.close()
        _FETCHERS.clear()
        _FETCHERS[key] = fetcher_from_env(stream.options)
    prefetcher = Prefetcher(_FETCHERS[key], Path(stream.skeleton), stream.options)
    outcomes, fetched_bytes, waited = [], 0, 0.0
    for fetched in prefetcher.records(items):
        t0 = time.perf_counter()
        if fetched.error is not None:
            result = FeatureResult(errors=[error_row(fetched.record, "fetch_error", fetched.error)])
        else:
            result = featurize_record(fetched.local, function, options)
        outcomes.append(Outcome(fetched.record, result, time.perf_counter() - t0 + fetched.wait_s))
        fetched_bytes += fetched.bytes
        waited += fetched.wait_s
    return TaskReport(outcomes, os.getpid(), time.perf_counter() - started, sum(i.record.bytes for i in items),
                      peak_rss_mb(), fetched_bytes, waited, prefetcher.peak_in_flight)


def process_tree_cpu_seconds() -> float:
    """CPU time of this process since it started (imports included) and of its workers, the
    living ones (joblib keeps its pool) and those already reaped: what the step costs."""
    import psutil

    me = psutil.Process()
    total = sum(me.cpu_times()[:4])  # user, system, children_user, children_system
    for child in me.children(recursive=True):
        try:
            total += sum(child.cpu_times()[:2])
        except psutil.Error:
            pass  # exited meanwhile: reaped into children_* above, or lost to a race
    return round(total, 3)


def peak_rss_mb() -> float:
    """This process's peak resident memory since its exec.

    VmHWM is per address space; ru_maxrss is not usable here because Linux carries the
    parent's high-water mark across fork+exec (a worker started by a big process would
    report the parent's peak)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# Below this many bytes of records, the built-in function reading a downloaded shard runs in the
# job's own process (streaming, the pool's workers also overlap their fetches: it keeps them): at its
# measured 213 MB/s per core (docs/benchmarks.md) 64 MiB take 0.3 s on one core, less than a pool
# of workers takes to start (0.7 s wall and 1.1 CPU-s more for two workers on this team's 2-vCPU
# machines, each importing wfdb, numpy and pandas). That is tonight's small work: a handful of
# changed folders. A feature function of the user's has no measured rate: it always gets the pool.
POOL_MIN_BYTES = 64 * 2**20


def default_jobs(records: list[RecordRef], function_ref: str, streamed: bool = False) -> int:
    """Worker processes when neither `--jobs` nor `jobs` says: every vCPU, or this process alone
    for a small downloaded shard of the built-in function."""
    from joblib import cpu_count

    if not streamed and function_ref == BUILTIN_FEATURE_FUNCTION and sum(r.bytes for r in records) < POOL_MIN_BYTES:
        return 1
    return cpu_count()


def _execute(tasks: list[list], jobs: int, function_ref: str, options: dict,
             stream: StreamContext | None = None) -> Iterable[TaskReport]:
    # A handful of records (what an incremental run leaves after the record cache) is done
    # here: starting a pool of workers, each importing wfdb and numpy, would cost more.
    if jobs == 1 or len(tasks) <= 1 or sum(len(t) for t in tasks) < jobs:
        for task in tasks:
            yield run_microshard(task, function_ref, options, stream)
        return
    from joblib import Parallel, delayed

    # batch_size=1: the microshards are already sized; joblib's auto-batching would regroup
    # the small ones at the end and undo the balancing.
    parallel = Parallel(n_jobs=jobs, batch_size=1, pre_dispatch="2*n_jobs", return_as="generator_unordered")
    yield from parallel(delayed(run_microshard)(task, function_ref, options, stream) for task in tasks)


def write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str))
    os.replace(tmp, path)  # the local runner polls progress.json: never show it half-written


def run_shard(records: list[RecordRef], jobs: int, settings: FeaturizeSettings, progress: Path | None,
              stream: StreamContext | None = None, objects: dict | None = None) -> ShardRun:
    """Featurize `records`; streaming (`stream`), each task's records carry their objects
    (`objects`: header -> RecordObjects) and the workers fetch them."""
    run = ShardRun(records)
    tasks: list[list] = plan_microshards(records, jobs, settings.microshards_per_worker)
    if stream is not None:
        tasks = [[objects[r.header] for r in task] for task in tasks]
    total_bytes = sum(r.bytes for r in records)
    done = done_bytes = 0
    last = time.monotonic()
    if progress is not None:
        write_json(progress, {"records_done": 0, "records_total": len(records), "bytes_done": 0, "bytes_total": total_bytes})
    for report in _execute(tasks, jobs, settings.feature_function, dict(settings.feature_options), stream):
        run.tasks.append(report)
        run.outcomes.extend(report.outcomes)
        done += len(report.outcomes)
        done_bytes += report.bytes
        now = time.monotonic()
        if progress is not None and (now - last >= settings.progress_interval_s or done == len(records)):
            last = now
            write_json(progress, {"records_done": done, "records_total": len(records),
                                  "bytes_done": done_bytes, "bytes_total": total_bytes})
    run.outcomes.sort(key=lambda o: o.record.sort_key)
    return run


def features_table(outcomes: list[Outcome], function_ref: str) -> pa.Table:
    rows = [row for o in outcomes for row in o.result.rows]
    if function_ref == BUILTIN_FEATURE_FUNCTION:
        return result_rows_table(rows)
    return pa.Table.from_pandas(pd.DataFrame(rows), preserve_index=False)


def errors_table(outcomes: list[Outcome]) -> pa.Table:
    rows = [{k: str(e.get(k, "")) for k in ERROR_COLUMNS} for o in outcomes for e in o.result.errors]
    return pa.Table.from_pylist(rows, schema=ERRORS_SCHEMA)


def top_error(failed: list[Outcome]) -> dict | None:
    """The most common record error: its kind, how many records have it, and one message."""
    records: dict[str, list[str]] = {}
    for o in failed:
        for kind in dict.fromkeys(e["kind"] for e in o.result.errors):
            records.setdefault(kind, []).append(next(e["message"] for e in o.result.errors if e["kind"] == kind))
    if not records:
        return None
    kind = max(sorted(records), key=lambda k: len(records[k]))
    return {"kind": kind, "records": len(records[kind]), "example": str(records[kind][0])[:300]}


def shard_report(run: ShardRun, settings: FeaturizeSettings, jobs: int, shard: str, seconds: float) -> dict:
    failed = [o for o in run.outcomes if o.result.errors]
    kinds: dict[str, int] = {}
    for o in failed:
        for e in o.result.errors:
            kinds[e["kind"]] = kinds.get(e["kind"], 0) + 1
    total = len(run.outcomes)
    fraction = len(failed) / total if total else 0.0
    bytes_read = sum(o.result.bytes_read for o in run.outcomes)
    workers: dict[int, dict[str, float]] = {}
    for task in run.tasks:
        w = workers.setdefault(task.pid, {"tasks": 0, "records": 0, "bytes": 0, "busy_s": 0.0, "peak_rss_mb": 0.0})
        w["tasks"] += 1
        w["records"] += len(task.outcomes)
        w["bytes"] += task.bytes
        w["busy_s"] += task.busy_s
        w["peak_rss_mb"] = max(w["peak_rss_mb"], task.peak_rss_mb)
    busy = [w["busy_s"] for w in workers.values()]
    # Balance: the average worker's busy time over the busiest one's, counting idle slots
    # (a pool of N that only ever used M < N workers is not balanced).
    slots = max(len(busy), min(jobs, len(run.tasks)))
    balance = (sum(busy) / slots) / max(busy) if busy and max(busy) > 0 else 1.0
    return {
        "stage": "featurize",
        "shard": shard,
        "status": "failed" if fraction > settings.max_error_fraction else "ok",
        "feature_function": settings.feature_function,
        "records_total": total,
        "records_ok": total - len(failed),
        "records_failed": len(failed),
        "records_partial": sum(1 for o in failed if o.result.rows),
        "records_numerics": sum(1 for o in run.outcomes if o.record.is_numerics),
        "error_fraction": fraction,
        "max_error_fraction": settings.max_error_fraction,
        "errors_by_kind": dict(sorted(kinds.items())),
        REPORT_TOP_ERROR: top_error(failed),
        "rows": sum(len(o.result.rows) for o in run.outcomes),
        "error_rows": sum(len(o.result.errors) for o in run.outcomes),
        "bytes_total": sum(r.bytes for r in run.records),
        "bytes_read": bytes_read,
        "seconds": seconds,
        "records_per_s": total / seconds if seconds > 0 else None,
        "mb_per_s": bytes_read / 1e6 / seconds if seconds > 0 else None,
        "jobs": jobs,
        "microshards": len(run.tasks),
        "balance_efficiency": balance,
        "peak_rss_mb_per_worker": max((w["peak_rss_mb"] for w in workers.values()), default=None),
        "read_mode": settings.read_mode,
        "bytes_fetched": sum(t.bytes_fetched for t in run.tasks),
        "fetch_wait_s": sum(t.fetch_wait_s for t in run.tasks),
        "records_in_flight_peak": max((t.peak_in_flight for t in run.tasks), default=0),
        "workers": [dict(pid=pid, **w) for pid, w in sorted(workers.items())],
    }


def featurize(input_dir: str | Path, output_dir: str | Path, settings: FeaturizeSettings = FeaturizeSettings(),
              jobs: int | None = None, shard: str = "", work: dict[str, dict] | None = None,
              record_cache: str | None = None, storage=None) -> dict:
    """Featurize every record under `input_dir`; writes features.parquet, errors.parquet,
    report.json (and progress.json while running) under `output_dir`; returns the report.

    `work`: the work shard's folders (`shard.json`: folder -> its key and macroshard, as
    `steps/work.py` planned them). With it, features.parquet is a pack (rows grouped by folder,
    `steps/featurize/cache/packs.py`) and, with `record_cache` (an s3:// prefix), it is kept
    there and its clean folders indexed, so later runs skip them."""
    return _featurize(Path(input_dir), Path(output_dir), settings, jobs, shard, work, record_cache, storage)


def featurize_streamed(manifest: Path, index: Path, output_dir: str | Path,
                       settings: FeaturizeSettings = FeaturizeSettings(), jobs: int | None = None, shard: str = "",
                       work: dict[str, dict] | None = None, record_cache: str | None = None, storage=None,
                       hosts: Hosts | None = None) -> dict:
    """`read_mode: stream`: featurize this host's share of the shard that `manifest` and
    `index` describe, its workers fetching the records (`steps/featurize/stream.py`).

    On one host the outputs are those of `featurize`; on several, each host writes them (its
    own pack) under `hosts/<host>/` of `output_dir`, with its completion marker last."""
    from steps.featurize.fetch import fetcher_from_env
    from steps.featurize.stream import (Hosts, build_skeleton, host_share, read_manifest_prefix, record_objects,
                                        skeleton_fetch)

    hosts = hosts or Hosts()
    scratch = settings.stream.scratch_dir
    if scratch and not Path(scratch).is_dir():
        raise ValueError(f"stages.featurize.stream.scratch_dir {scratch} is no folder on this instance")
    prefix = read_manifest_prefix(manifest)
    share = host_share(read_index(index), hosts)
    if work is not None and hosts.count > 1:  # this host's folders only: the others are other hosts' packs
        mine = {PurePosixPath(k).parent.as_posix() for k in share}
        work = {path: entry for path, entry in work.items() if path in mine}
    out = Path(output_dir) if hosts.count == 1 else Path(output_dir) / HOSTS_FOLDER / hosts.current
    with tempfile.TemporaryDirectory(prefix="wavepipe-skeleton-") as tmp:
        skeleton = Path(tmp)
        headers = fetcher_from_env(settings.stream)
        try:
            build_skeleton(skeleton, share, skeleton_fetch(headers, prefix, share))
        finally:
            headers.close()
        stream = StreamContext(str(skeleton), settings.stream)
        report = _featurize(skeleton, out, settings, jobs, shard, work, record_cache, storage, stream,
                            lambda records: {r.header: record_objects(r, skeleton, prefix, share) for r in records})
    # The skeleton's headers: with the workers' bytes_fetched, all this job took from S3.
    report.update(bytes_headers_fetched=sum(int(e["size"]) for k, e in share.items()
                                            if k.endswith(".hea") and not st.key_problem(k)))
    if hosts.count > 1:
        report.update(host=hosts.current, hosts=list(hosts.all))
    write_json(out / REPORT_FILE, report)
    if hosts.count > 1:
        write_json(out / HOST_DONE_FILE, {"shard": shard, "host": hosts.current, "hosts": sorted(hosts.all),
                                          "records_total": report["records_total"]})
    return report


def pack_layout(outcomes: list[Outcome], work: dict[str, dict]) -> tuple[list[Outcome], list[PackFolder]]:
    """The outcomes grouped by folder (folders in path order, records in record order) and each
    work folder's place in the pack: its rows, error rows and records. A work folder without a
    record (no header in it) is there too, with none: it is cached as such."""
    by_folder: dict[str, list[Outcome]] = {path: [] for path in work}
    for o in outcomes:
        by_folder.setdefault(folder_of(o.record), []).append(o)
    ordered, folders = [], []
    rows = errors = 0
    for path in sorted(by_folder):
        members = sorted(by_folder[path], key=lambda o: o.record.sort_key)
        n_rows = sum(len(o.result.rows) for o in members)
        n_errors = sum(len(o.result.errors) for o in members)
        entry = work.get(path)
        if entry is not None:
            folders.append(PackFolder(path, entry["key"], entry["shard"], rows, n_rows, errors, n_errors, len(members),
                                      sum(1 for o in members if o.result.errors)))
        ordered += members
        rows += n_rows
        errors += n_errors
    return ordered, folders


def _featurize(root: Path, out: Path, settings: FeaturizeSettings, jobs: int | None, shard: str,
               work: dict[str, dict] | None, record_cache: str | None, storage, stream: StreamContext | None = None,
               objects_of: Callable[[list[RecordRef]], dict] | None = None) -> dict:
    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    load_function(settings.feature_function)  # fail before fan-out, not in every worker
    # A folder at the top takes its macroshard's name as its group, as a full run would give it.
    shards = {path: entry["shard"] for path, entry in (work or {}).items()}
    found = discover(root, shard=shard, include_numerics=settings.include_numerics, shards=shards)
    records = found.records
    if jobs is None:
        jobs = settings.jobs or default_jobs(records, settings.feature_function, streamed=stream is not None)
    objects = objects_of(records) if objects_of else None
    run = run_shard(records, jobs, settings, out / PROGRESS_FILE, stream, objects)
    added, accounted = account(found, {o.record.header: o.result for o in run.outcomes},
                               settings.feature_function == BUILTIN_FEATURE_FUNCTION)
    run.outcomes.extend(Outcome(r, added[r.header], 0.0) for r in records if r.header in added)
    run.outcomes, folders = pack_layout(run.outcomes, work or {})
    # Snappy is pyarrow's default codec; named anyway because downstream readers rely on it.
    table = features_table(run.outcomes, settings.feature_function)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), **pack_metadata(folders)})
    pq.write_table(table, out / FEATURES_FILE, compression="snappy")
    pq.write_table(errors_table(run.outcomes), out / ERRORS_FILE, compression="snappy")
    pack_uri, indexed = None, 0
    if record_cache and work is not None:
        from steps.featurize.cache.packs import store_pack  # noqa: I001 - storage only when asked

        pack_uri, indexed = store_pack(storage or st.from_env(max_connections=20), record_cache,
                                       (out / FEATURES_FILE).read_bytes(), folders)
    report = shard_report(run, settings, jobs, shard, time.perf_counter() - started)
    report.update(accounted)
    report.update(cpu_seconds=process_tree_cpu_seconds(), records_featurized=len(records), records_reused=0,
                  folders=len(folders), record_cache=record_cache, record_cache_pack=pack_uri,
                  record_cache_written=indexed,
                  # Folders with a failed record are not cached: tried again on the next run.
                  record_cache_uncached=[f.path for f in folders if f.failed][:20])
    write_json(out / REPORT_FILE, report)
    return report
