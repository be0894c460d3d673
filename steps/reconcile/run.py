"""The reconcile stage end to end: labels x production listing -> deduplicated, copied,
processed, validated artifacts -> labels, manifests and a report under `output`.

Report counts (`report.json`): files for `copied`, `skipped_identical`, `repaired_files`;
artifacts for the rest; `bytes_copied` in bytes; `seconds` wall time."""

from __future__ import annotations

import hashlib

import json
import logging
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from steps.io import storage as st
from steps.contract import (LABELS_FILE, LABELS_FOLDER, MISSING_FILES_FILE, RECONCILED_ARTIFACTS, REPORT_FILE,
                            REPORT_LABELS_URI, REPORT_SHARD_ITEMS, REPORT_SHARDS, REPORT_WORK, UNIQUE_LABELS_FILE,
                            shard_name)
from steps.publish import PublishedShard, canonical, put_verified, set_digest, shard_items, shard_place
from steps.work import plan_work, publish_work, work_report
from steps.entry import BadInput, StageFailed
from steps.listing.source import open_source
from steps.reconcile import production as inv
from steps.io.inventory import InventoryError
from steps.reconcile.copying import CopyJob, Outcome, load_process_func, remove_abandoned_temps, run_parallel
from steps.reconcile.labels import LabelsError, clean_labels, describe, read_labels
from steps.reconcile.settings import ReconcileSettings
from steps.reconcile.shards import assign_shards, auto_shard_count, write_manifests
from steps.reconcile.validate import failure_message, missing_files, plan_repairs

log = logging.getLogger("steps.reconcile")


@dataclass
class Context:
    settings: ReconcileSettings
    storage: st.Storage
    source_uri: str
    experiment_uri: str
    output: Path
    macroshards: int  # with target_shard_bytes: decided from the bytes found (auto)
    reload: bool
    report: dict
    target_shard_bytes: int | None = None
    listing: dict = field(default_factory=dict)  # the experiment folder after validation
    manifests: Path | None = None  # default: <output>/manifests
    record_cache: str | None = None  # what Featurize already holds: tonight's work is what it lacks

    @property
    def artifacts_uri(self) -> str:
        return st.join_uri(self.experiment_uri, RECONCILED_ARTIFACTS)

    @property
    def copy_files(self) -> bool:
        return self.settings.featurize_reads == "copy"


def list_experiment(storage: st.Storage, artifacts_uri: str) -> dict[str, dict[str, st.ObjectInfo]]:
    """artifact id -> file -> object, from one paginated listing of the experiment folder."""
    base = inv.prefix_of(artifacts_uri)
    out: dict[str, dict[str, st.ObjectInfo]] = {}
    for obj in storage.list(base):
        aid, sep, name = obj.uri[len(base):].partition("/")
        if sep and name:
            out.setdefault(aid, {})[name] = obj
    return out


def _labels(ctx: Context, sql_params: dict[str, str]) -> pd.DataFrame:
    source = ctx.settings.labels
    log.info("reading labels from %s", describe(source))
    frame, counts = clean_labels(read_labels(source, sql_params, ctx.storage), source)
    ctx.report.update(counts)
    return frame


def _inventory(ctx: Context) -> inv.Inventory:
    s = ctx.settings
    try:
        source = open_source(ctx.storage, ctx.source_uri, s.listing, s.listing_depth)
        ctx.report.update(source.facts)
        log.info("listing %s (%s)", ctx.source_uri, source.facts["listing"])
        # Streamed: only the artifacts built from the keys are held, never the listing itself.
        found = inv.build_inventory(source.objects(inv.prefix_of(ctx.source_uri)), ctx.source_uri,
                                    s.key_pattern, s.files_from_prod)
    except InventoryError as err:
        raise BadInput(str(err)) from None
    if found.unsafe_keys:
        log.warning("%d keys refused: their artifact id or file would lead outside the experiment folder "
                    "('..', '.', an absolute path, NUL or a backslash), first: %s",
                    len(found.unsafe_keys), found.unsafe_keys[: s.sample_size])
    if not found.objects_listed:
        raise BadInput(f"no object under --source-uri {ctx.source_uri}")
    ctx.report.update(
        s3_objects_listed=found.objects_listed,
        s3_keys_not_matching_pattern=len(found.unmatched_keys),
        s3_keys_not_matching_pattern_sample=found.unmatched_keys[: s.sample_size],
        s3_keys_conflicting=len(found.conflicting_keys),
        s3_keys_unsafe=len(found.unsafe_keys),
        s3_keys_unsafe_sample=found.unsafe_keys[: s.sample_size],
        s3_artifacts=len(found.artifacts),
    )
    return found


def _digest(ctx: Context, arts: dict[str, inv.Artifact], tmp: Path):
    if ctx.settings.dedup.hash == "etag":
        return inv.etag_digest
    files = [f for art in arts.values() for f in inv.dedup_files(art, ctx.settings.dedup)]
    hasher = inv.sha256_digest(ctx.storage, ctx.source_uri, tmp)
    with ThreadPoolExecutor(max_workers=ctx.settings.copy_threads) as pool:
        hashes = dict(zip((f.key for f in files), pool.map(hasher, files)))
    return lambda f: hashes[f.key]


def _match(ctx: Context, frame: pd.DataFrame, found: inv.Inventory) -> dict[str, inv.Artifact]:
    n = ctx.settings.sample_size
    db_ids, s3_ids = set(frame["artifact_id"]), set(found.artifacts)
    matched = db_ids & s3_ids
    ctx.report.update(
        matched=len(matched),
        only_in_db=len(db_ids - s3_ids), only_in_db_sample=inv.sample(db_ids - s3_ids, n),
        only_on_s3=len(s3_ids - db_ids), only_on_s3_sample=inv.sample(s3_ids - db_ids, n),
    )
    arts = {aid: found.artifacts[aid] for aid in sorted(matched)}
    dropped: dict[str, str] = {}
    conflicts = 0
    if ctx.settings.dedup.enabled and arts:
        with tempfile.TemporaryDirectory() as tmp:
            keys = inv.content_keys(arts, ctx.settings.dedup, _digest(ctx, arts, Path(tmp)))
        labels = dict(zip(frame["artifact_id"], frame["label"]))
        dups = inv.find_duplicates(keys, labels)
        dropped, conflicts = dups.dropped, dups.label_conflicts
    ctx.report.update(
        duplicates_dropped=len(dropped),
        duplicates_sample=[{"dropped": d, "kept": k} for d, k in list(dropped.items())[:n]],
        duplicates_with_other_label=conflicts,
    )
    return {aid: art for aid, art in arts.items() if aid not in dropped}


def _present(ctx: Context, listing: dict[str, dict[str, st.ObjectInfo]], arts: dict[str, inv.Artifact]) -> dict[str, set[str]]:
    out = {aid: set(listing.get(aid, {})) for aid in arts}
    if not ctx.copy_files:
        for aid, art in arts.items():
            out[aid] |= set(art.files)
    return out


def _tally(ctx: Context, outcomes: list[Outcome], prefix: str = "") -> None:
    r = ctx.report
    r[prefix + "copied"] = r.get(prefix + "copied", 0) + sum(len(o.copied) for o in outcomes)
    r["bytes_copied"] = r.get("bytes_copied", 0) + sum(o.bytes_copied for o in outcomes)
    if not prefix:
        r["skipped_identical"] = sum(o.skipped for o in outcomes)
        r["process_ran"] = sum(o.processed for o in outcomes)


def _copy_and_validate(ctx: Context, arts: dict[str, inv.Artifact], rows: dict[str, dict]) -> dict[str, str]:
    """Copy, process, validate, repair. Returns process_func failures (artifact -> error);
    raises StageFailed when files are still missing."""
    s = ctx.settings
    process = load_process_func(s.process_func) if s.process_func else None
    need_listing = ctx.copy_files or process is not None
    ctx.report["temp_files_removed"] = len(remove_abandoned_temps(ctx.storage, ctx.experiment_uri))
    existing = list_experiment(ctx.storage, ctx.artifacts_uri) if need_listing else {}
    ctx.report["stale_artifacts_in_experiment"] = len(set(existing) - set(arts))
    job = CopyJob(ctx.storage, ctx.source_uri, ctx.artifacts_uri, ctx.experiment_uri, existing, rows,
                  ctx.reload, ctx.copy_files, process)
    outcomes = run_parallel(job, [(art, None, False) for art in arts.values()], s.copy_threads)
    _tally(ctx, outcomes)
    failures = {o.artifact_id: o.process_error for o in outcomes if o.process_error}
    changed = any(o.copied or o.processed or o.copy_errors for o in outcomes)
    ctx.report["copy_errors"] = sum(len(o.copy_errors) for o in outcomes)
    ctx.report["copy_errors_sample"] = [
        f"{o.artifact_id}/{name}: {err}" for o in outcomes for name, err in o.copy_errors.items()
    ][: s.sample_size]

    check = {aid: art for aid, art in arts.items() if aid not in failures}
    listing = list_experiment(ctx.storage, ctx.artifacts_uri) if (changed and need_listing) else existing
    missing = missing_files(_present(ctx, listing, check), check, s.files_on_research, ctx.copy_files)
    ctx.report["missing_before_repair"] = len(missing)
    ctx.report["repaired_files"] = ctx.report["regenerated"] = 0
    if missing:
        plan = plan_repairs(missing, check, ctx.copy_files, process is not None)
        todo = sorted(set(plan.recopy) | plan.regenerate)
        log.info("repairing %d artifacts (%d re-copied, %d regenerated)", len(todo), len(plan.recopy), len(plan.regenerate))
        redo = run_parallel(job, [(check[a], plan.recopy.get(a, []), a in plan.regenerate) for a in todo],
                            s.copy_threads, what="repair")
        _tally(ctx, redo, prefix="repaired_")
        ctx.report["repaired_files"] = ctx.report.pop("repaired_copied")
        ctx.report["regenerated"] = sum(o.processed and not o.process_error for o in redo)
        failures.update({o.artifact_id: o.process_error for o in redo if o.process_error})
        check = {aid: art for aid, art in check.items() if aid not in failures}
        listing = list_experiment(ctx.storage, ctx.artifacts_uri) if need_listing else existing
        missing = missing_files(_present(ctx, listing, check), check, s.files_on_research, ctx.copy_files)
    ctx.listing = listing
    ctx.report["failed"] = len(missing) + len(failures)
    _process_failures(ctx, failures)
    if missing:
        path = ctx.output / MISSING_FILES_FILE
        path.write_text(json.dumps([{"artifact_id": a, "missing": m} for a, m in missing.items()], indent=1))
        ctx.report["missing_after_repair"] = len(missing)
        raise StageFailed(failure_message(missing, str(path)))
    return failures


def _process_failures(ctx: Context, failures: dict[str, str]) -> None:
    limit = ctx.settings.max_process_failures
    ctx.report["process_failed"] = len(failures)
    ctx.report["process_failed_sample"] = [
        {"artifact_id": a, "error": e} for a, e in sorted(failures.items())[: ctx.settings.sample_size]
    ]
    if len(failures) > limit:
        raise StageFailed(f"process_func failed on {len(failures)} artifacts (max_process_failures: {limit}); "
                          f"first: {ctx.report['process_failed_sample'][:5]}")


@dataclass
class ShardPlan:
    """What Reconcile publishes, computed from the production listing alone (no copy, no write):
    the run writes it, and `deploy.py plan` predicts the shards' addresses with it."""

    prefix: str
    by_shard: list[dict[str, inv.SourceFile]]
    table: pd.DataFrame
    shard_count: list[int]


def plan_shards(ctx: Context, arts: dict[str, inv.Artifact], frame: pd.DataFrame) -> ShardPlan:
    prefix = inv.prefix_of(ctx.artifacts_uri if ctx.copy_files else ctx.source_uri)
    # Shards list, and are keyed by, what Featurize reads: the experiment copies (files that
    # process_func wrote included) or the production files.
    if ctx.copy_files:
        objects = {aid: {f"{aid}/{n}": o for n, o in ctx.listing.get(aid, {}).items()} for aid in arts}
    else:
        objects = {aid: {f.key: f for f in art.files.values()} for aid, art in arts.items()}
    sizes = {aid: sum(o.size for o in objs.values()) for aid, objs in objects.items()}
    if ctx.target_shard_bytes:
        ctx.macroshards = auto_shard_count(sum(sizes.values()), ctx.target_shard_bytes, len(arts))
        ctx.report["macroshards"] = ctx.macroshards
    if len(arts) < ctx.macroshards:
        raise StageFailed(
            f"{len(arts)} artifacts kept for {ctx.macroshards} macroshards: every macroshard's Featurize "
            f"step needs at least one; set stages.featurize.macroshards to at most {len(arts)}")
    shard_of = assign_shards(sizes, ctx.macroshards)
    by_shard: list[dict[str, inv.SourceFile]] = [{} for _ in range(ctx.macroshards)]
    shard_count = [0] * ctx.macroshards
    for aid, index in shard_of.items():
        by_shard[index].update(objects[aid])
        shard_count[index] += 1
    table = frame[frame["artifact_id"].isin(arts)].sort_values("artifact_id").reset_index(drop=True)
    for name in sorted({k for art in arts.values() for k in art.fields} - set(table.columns)):
        table[name] = table["artifact_id"].map(lambda a, n=name: arts[a].fields.get(n))
    table["n_files"] = table["artifact_id"].map(lambda a: len(objects[a])).astype("int64")
    table["bytes"] = table["artifact_id"].map(sizes).astype("int64")
    table["shard"] = table["artifact_id"].map(lambda a: shard_name(shard_of[a]))
    return ShardPlan(prefix, by_shard, table, shard_count)


def labels_digest(table: pd.DataFrame, shards: list) -> str:
    rows = table.astype(str).to_dict("records")
    return hashlib.sha256(canonical({"rows": rows, "shards": set_digest(shards)})).hexdigest()[:20]


def macroshards_of(ctx: Context, plan: ShardPlan) -> tuple[list, list[PublishedShard]]:
    """The macroshards as `steps/work.py` plans them, and as reports list them (unpublished:
    Featurize reads work shards; their digests key the labels)."""
    planned = [(shard_name(i), plan.prefix, files) for i, files in enumerate(plan.by_shard)]
    shards = []
    for name, prefix, files in planned:
        digest, place = shard_place(ctx.experiment_uri, name, prefix, files)
        shards.append(PublishedShard(name, place, digest, len(files), sum(f.size for f in files.values())))
    return planned, shards


def _write_outputs(ctx: Context, arts: dict[str, inv.Artifact], frame: pd.DataFrame) -> None:
    plan = plan_shards(ctx, arts, frame)
    folder = ctx.manifests or ctx.output / "manifests"
    write_manifests(folder, plan.prefix, [list(files) for files in plan.by_shard])
    planned, shards = macroshards_of(ctx, plan)
    work_plan = plan_work(ctx.storage, planned, ctx.record_cache, ctx.target_shard_bytes)
    work = publish_work(ctx.storage, ctx.experiment_uri, work_plan, ctx.output, ctx.record_cache)
    plan.table.to_parquet(ctx.output / LABELS_FILE, index=False)
    counts = plan.table["label"].map(str).value_counts()
    ordered = {k: int(counts[k]) for k in sorted(counts.index)}
    (ctx.output / UNIQUE_LABELS_FILE).write_text(json.dumps(ordered, indent=1))
    ctx.report["repaired_objects"] = [uri for s in work for uri in s.repaired]
    labels_uri = _publish_labels(ctx, plan.table, shards)
    ctx.report.update({
        "kept": len(arts), "labels": len(ordered), REPORT_LABELS_URI: labels_uri,
        REPORT_SHARDS: [dict(s.as_report(), artifacts=plan.shard_count[i]) for i, s in enumerate(shards)],
        REPORT_WORK: work_report(work_plan), REPORT_SHARD_ITEMS: shard_items(work), **work_plan.report(),
    })


def _publish_labels(ctx: Context, table: pd.DataFrame, shards: list) -> str:
    """The labels (and label counts) at `<experiment>/labels/<digest>/`, the digest covering the
    table's rows and every shard's files: Encode reads them from there, so its cache key
    changes exactly when the labels or the artifacts' files do."""
    place = st.join_uri(ctx.experiment_uri, LABELS_FOLDER, labels_digest(table, shards))
    present = {o.uri: o for o in ctx.storage.list(place + "/")}
    for name in (LABELS_FILE, UNIQUE_LABELS_FILE):
        uri = st.join_uri(place, name)
        if put_verified(ctx.storage, uri, (ctx.output / name).read_bytes(), present) == "repaired":
            ctx.report.setdefault("repaired_objects", []).append(uri)
    return place


def reconcile(settings: ReconcileSettings, source_uri: str, experiment_uri: str, output: Path, *,
              macroshards: int = 1, target_shard_bytes: int | None = None, reload: bool = False,
              sql_params: dict[str, str] | None = None, storage: st.Storage | None = None,
              manifests: Path | None = None, record_cache: str | None = None) -> dict:
    """Run the stage; returns the report (also written to `output/report.json`, on failure too).
    Manifests go to `manifests` (default `output/manifests`): the pipeline gives them their own
    output, next to which the shards' features are written. Raises BadInput (nothing was done)
    or StageFailed (see the report)."""
    started = time.monotonic()
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    if macroshards < 1:
        raise BadInput(f"--macroshards must be at least 1, got {macroshards}")
    if target_shard_bytes is not None and target_shard_bytes < 1:
        raise BadInput(f"--target-shard-bytes must be at least 1, got {target_shard_bytes}")
    try:
        st.split_uri(source_uri), st.split_uri(experiment_uri)
        if settings.process_func:
            load_process_func(settings.process_func)  # fail before any copy
    except ValueError as err:
        raise BadInput(str(err)) from None
    ctx = Context(settings, storage or _storage(settings),
                  source_uri.rstrip("/"), experiment_uri.rstrip("/"), output, macroshards,
                  bool(reload),
                  {"status": "running", "labels_source": describe(settings.labels),
                   "source_uri": source_uri, "experiment_uri": experiment_uri,
                   "featurize_reads": settings.featurize_reads, "macroshards": macroshards},
                  manifests=Path(manifests) if manifests else None, target_shard_bytes=target_shard_bytes,
                  record_cache=record_cache)
    ctx.report["reload"] = ctx.reload
    if target_shard_bytes:
        ctx.report["target_shard_bytes"] = target_shard_bytes
    try:
        try:
            frame = _labels(ctx, sql_params or {})
        except LabelsError as err:
            raise BadInput(str(err)) from None
        found = _inventory(ctx)
        arts = _match(ctx, frame, found)
        if not arts:
            raise StageFailed("no artifact is both in the database and under --source-uri "
                              f"(only in db: {ctx.report['only_in_db']}, only on s3: {ctx.report['only_on_s3']})")
        rows = {r["artifact_id"]: r for r in frame[frame["artifact_id"].isin(arts)].to_dict("records")}
        failures = _copy_and_validate(ctx, arts, rows)
        arts = {aid: art for aid, art in arts.items() if aid not in failures}
        _write_outputs(ctx, arts, frame)
        ctx.report["status"] = "succeeded"
        return ctx.report
    except (BadInput, StageFailed) as err:
        ctx.report["status"] = "failed"
        ctx.report["error"] = str(err).splitlines()[0]
        raise
    finally:
        ctx.report["seconds"] = round(time.monotonic() - started, 3)
        (output / REPORT_FILE).write_text(json.dumps(ctx.report, indent=1, default=str))



def _storage(settings: ReconcileSettings) -> st.Storage:
    # One pooled connection per copy or listing thread, whichever pool is larger.
    return st.from_env(max_connections=max(settings.copy_threads, settings.listing.threads) + 4)


def _same_copy(copy, source) -> bool:
    """Whether an experiment copy is the production file (ETags agree for single-part copies)."""
    return copy.etag == source.etag


def predict(settings: ReconcileSettings, source_uri: str, experiment_uri: str, *, macroshards: int = 1,
            target_shard_bytes: int | None = None, sql_params: dict[str, str] | None = None,
            storage: st.Storage | None = None, record_cache: str | None = None) -> dict:
    """The report keys a run would publish now (each work shard's address, the labels folder),
    without copying or writing anything: labels, listing, matching, deduplication, assignment
    and the record cache's lookup only. A run may still drop artifacts this cannot foresee
    (process_func failures, copies that cannot be repaired); `deploy.py plan` says so."""
    from steps.work import predicted_work

    with tempfile.TemporaryDirectory() as tmp:
        ctx = Context(settings, storage or _storage(settings), source_uri.rstrip("/"), experiment_uri.rstrip("/"),
                      Path(tmp), macroshards, False, {}, target_shard_bytes=target_shard_bytes)
        frame = _labels(ctx, sql_params or {})
        arts = _match(ctx, frame, _inventory(ctx))
        if ctx.copy_files:
            # The copies as they would be after this run: an existing copy of the same size is
            # kept (it is identical unless the production file changed in place, which changes
            # its ETag: then the production file's is taken), the rest copied.
            existing = list_experiment(ctx.storage, ctx.artifacts_uri)
            for aid, art in arts.items():
                have = dict(existing.get(aid, {}))
                for name, f in art.files.items():
                    if name not in have or have[name].size != f.size or not _same_copy(have[name], f):
                        have[name] = f
                ctx.listing[aid] = have
        plan = plan_shards(ctx, arts, frame)
    planned, shards = macroshards_of(ctx, plan)
    work_plan = plan_work(ctx.storage, planned, record_cache, target_shard_bytes)
    # Where each file is now: the production file, or the experiment's (process_func's).
    where = {k: st.join_uri(ctx.source_uri, f.key) if isinstance(f, inv.SourceFile) else f.uri
             for files in plan.by_shard for k, f in files.items()}
    return {REPORT_SHARDS: [s.as_report() for s in shards],
            # What a run copies: the files not yet in the experiment folder (where they are now: production).
            "bytes_to_copy": sum(f.size for files in plan.by_shard for f in files.values()
                                 if ctx.copy_files and isinstance(f, inv.SourceFile)),
            REPORT_LABELS_URI: st.join_uri(ctx.experiment_uri, LABELS_FOLDER, labels_digest(plan.table, shards)),
            **predicted_work(ctx.experiment_uri, work_plan, where, record_cache)}
