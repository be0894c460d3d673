"""List each prefix under the source URI and publish it as a content-addressed shard; or, with
`macroshards: auto`, list the source (or the prefixes) and split it by bytes into shards of
whole folders."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath

from steps.io import storage as st
from steps.contract import REPORT_FILE, REPORT_SHARD_ITEMS, REPORT_SHARDS, REPORT_WORK, shard_name
from steps.entry import BadInput, StageFailed
from steps.listing.settings import ListingSettings
from steps.listing.source import Source, open_source
from steps.io.inventory import InventoryError
from steps.publish import PublishedShard, shard_items, shard_place
from steps.sharding import assign_shards, auto_shard_count
from steps.work import WorkPlan, plan_work, publish_work, work_report

PREFIXES_AT_ONCE = 8
# A shard: its name, the folder its keys are relative to, and its objects by key.
Shard = tuple[str, str, dict[str, st.ObjectInfo]]


def parse_prefixes(items: list[str]) -> list[tuple[str, str]]:
    """`NAME=PREFIX` pairs, in order; BadInput naming the bad item otherwise."""
    out = []
    for item in items:
        name, sep, prefix = item.partition("=")
        if not sep or not name or not prefix.strip("/"):
            raise BadInput(f"--prefix expects NAME=PREFIX, got {item!r}")
        out.append((name, prefix.strip("/")))
    names = [n for n, _ in out]
    if len(set(names)) != len(names):
        raise BadInput(f"--prefix: duplicate names in {names}")
    return out


def list_prefix(source: Source, source_uri: str, prefix: str) -> tuple[str, dict[str, st.ObjectInfo]]:
    """The prefix's folder URI and its objects by key relative to it."""
    # The trailing slash matters: S3 prefixes are string prefixes, and `30` would also match `300/`.
    folder = st.join_uri(source_uri, prefix) + "/"
    return folder, {o.uri[len(folder):]: o for o in source.objects(folder)}


def list_prefixes(settings: ListingSettings, storage: st.Storage, source_uri: str,
                  prefixes: list[tuple[str, str]]) -> tuple[Source, list[tuple[str, dict[str, st.ObjectInfo]]]]:
    """Each prefix's folder and objects, one prefix after another, each listed with
    `settings.threads` concurrent requests or read from the inventory report (checked before
    any prefix is read: BadInput naming the manifest otherwise). `deploy.py plan` lists with it too."""
    try:
        # A prefix is a group folder: its record folders are one level down.
        source = open_source(storage, source_uri, settings, default_depth=1)
        if source.manifest is not None or len(prefixes) < 2:  # an inventory is read once, in memory
            return source, [list_prefix(source, source_uri, p) for _, p in prefixes]
        # Several prefixes at once (each listed concurrently too): a small prefix is one request,
        # and 90 of them one after another would be 90 round trips.
        with ThreadPoolExecutor(max_workers=min(PREFIXES_AT_ONCE, len(prefixes))) as pool:
            return source, list(pool.map(lambda p: list_prefix(source, source_uri, p[1]), prefixes))
    except InventoryError as err:
        raise BadInput(str(err)) from None


def split_by_bytes(source_uri: str, listed: list[tuple[str, dict[str, st.ObjectInfo]]],
                   target_bytes: int) -> list[Shard]:
    """`macroshards: auto` without Reconcile: the listed objects as shards of whole folders.

    A folder (the keys' parent, e.g. a MIMIC record folder `30/3000003/`) is the unit: a WFDB
    record's header, data and segment files sit in one folder and must reach the same job. A
    folder's shard is a hash of its path (`steps/sharding.py`, as Reconcile's artifacts), the
    count `auto_shard_count` of the bytes found; keys stay relative to the source."""
    base = source_uri.rstrip("/") + "/"
    objects = {o.uri[len(base):]: o for _, files in listed for o in files.values()}
    folders: dict[str, dict[str, st.ObjectInfo]] = {}
    for key, obj in objects.items():
        folders.setdefault(PurePosixPath(key).parent.as_posix(), {})[key] = obj
    sizes = {folder: sum(o.size for o in files.values()) for folder, files in folders.items()}
    count = auto_shard_count(sum(sizes.values()), target_bytes, len(folders))
    shards: list[dict[str, st.ObjectInfo]] = [{} for _ in range(count)]
    for folder, index in assign_shards(sizes, count).items():
        shards[index].update(folders[folder])
    return [(shard_name(i), base, dict(sorted(files.items()))) for i, files in enumerate(shards)]


def listing_shards(settings: ListingSettings, storage: st.Storage, source_uri: str, prefixes: list[tuple[str, str]],
                   target_bytes: int | None = None) -> tuple[Source, list[Shard]]:
    """What the listing step publishes (and `deploy.py plan` predicts): one shard per prefix, or
    (`target_bytes`) the prefixes' objects, or the whole source's, split by bytes. StageFailed
    naming what is empty."""
    if target_bytes is None:
        source, listed = list_prefixes(settings, storage, source_uri, prefixes)
        empty = [f"{name} ({folder})" for (name, _), (folder, files) in zip(prefixes, listed) if not files]
        if empty:
            raise StageFailed(f"no object under {', '.join(empty)}: every prefix's Featurize step needs its files")
        return source, [(name, folder, files) for (name, _), (folder, files) in zip(prefixes, listed)]
    if prefixes:
        source, listed = list_prefixes(settings, storage, source_uri, prefixes)
    else:
        try:
            source = open_source(storage, source_uri, settings, default_depth=2)  # group, then record folders
        except InventoryError as err:
            raise BadInput(str(err)) from None
        listed = [("", {o.uri: o for o in source.objects(source_uri.rstrip("/") + "/")})]
    if not any(files for _, files in listed):
        where = ", ".join(folder for folder, _ in listed) if prefixes else source_uri
        raise StageFailed(f"no object under {where}: nothing to featurize")
    return source, split_by_bytes(source_uri, listed, target_bytes)


def logical_shards(experiment_uri: str, planned: list[Shard]) -> list[PublishedShard]:
    """The macroshards as reports list them (name, content address, files, bytes), unpublished:
    Featurize reads work shards; a macroshard's digest still keys what reads all of them."""
    out = []
    for name, folder, files in planned:
        digest, place = shard_place(experiment_uri, name, folder, files)
        out.append(PublishedShard(name, place, digest, len(files), sum(o.size for o in files.values())))
    return out


def run_listing(settings: ListingSettings, source_uri: str, experiment_uri: str, prefixes: list[tuple[str, str]],
                output: Path, storage: st.Storage | None = None, target_shard_bytes: int | None = None,
                record_cache: str | None = None) -> dict:
    """List the source, plan tonight's work against the record cache (`steps/work.py`) and
    publish it; the report (also `output/report.json`) lists the macroshards, the work shards
    in order (their places are the ForEach items) and says how the source was read (the
    inventory report's date, when one was). `output/table.json` is what Combine assembles."""
    started = time.monotonic()
    st.split_uri(source_uri), st.split_uri(experiment_uri)
    if target_shard_bytes is not None and target_shard_bytes < 1:
        raise BadInput(f"--target-shard-bytes must be at least 1, got {target_shard_bytes}")
    storage = storage or st.from_env(max_connections=settings.threads + 4)
    source, planned, plan, unsafe = plan_listing(settings, storage, source_uri, prefixes, target_shard_bytes,
                                                 record_cache)
    work = publish_work(storage, experiment_uri, plan, output, record_cache)
    shards = logical_shards(experiment_uri, planned)
    auto = {"macroshards": len(shards), "target_shard_bytes": target_shard_bytes} if target_shard_bytes else {}
    report = {"stage": "listing", "status": "succeeded", "source_uri": source_uri, **source.facts, **auto,
              REPORT_SHARDS: [s.as_report() for s in shards], REPORT_WORK: work_report(plan),
              REPORT_SHARD_ITEMS: shard_items(work), **plan.report(),
              "objects_listed": sum(s.files for s in shards), "keys_unsafe": len(unsafe),
              "keys_unsafe_sample": unsafe[:20], "repaired_objects": [u for s in work for u in s.repaired],
              "seconds": round(time.monotonic() - started, 3)}
    (output / REPORT_FILE).write_text(json.dumps(report, indent=1))
    return report


def plan_listing(settings: ListingSettings, storage: st.Storage, source_uri: str, prefixes: list[tuple[str, str]],
                 target_shard_bytes: int | None, record_cache: str | None) -> tuple[Source, list[Shard], WorkPlan, list[str]]:
    """What the listing step publishes, computed without writing (`deploy.py plan` predicts
    with it): the macroshards, tonight's work and the keys refused as unsafe."""
    source, planned = listing_shards(settings, storage, source_uri, prefixes, target_shard_bytes)
    # A key with `..` (or absolute, NUL, backslash) would be staged or fetched outside the shard's
    # folder: refused and reported, the shard keeps its other files.
    unsafe = sorted(key for _, _, files in planned for key in files if st.key_problem(key))
    planned = [(name, folder, {k: o for k, o in files.items() if not st.key_problem(k)})
               for name, folder, files in planned]
    plan = plan_work(storage, planned, record_cache, target_shard_bytes)
    return source, planned, plan, unsafe
