"""Tonight's work: the artifact folders the record cache lacks, packed into work shards.

The step that lists the data (Reconcile, or the listing step) knows every file's key, size and
ETag. From that alone it keys every artifact folder (`folder_key`), looks every key up in the
record cache (`steps/featurize/cache/`: a few index objects and one listing, whatever the
number of folders) and publishes:

- the work: the folders not found, as work shards at content-addressed places
  (`steps/publish.py`), each staged or fetched by one Featurize job, which featurizes all of
  it. With `macroshards: auto` the missing folders of every macroshard are packed together by
  bytes (`pack_by_bytes`): a run starts about ⌈missing bytes / target⌉ jobs, whatever the
  number of macroshards the change touches. With a counted `macroshards: N` or `prefixes`,
  each macroshard's step gets its own missing folders (an untouched one an empty work shard,
  whose step is a cache hit once it ran).
- the table (`table.json` beside the step's report): every current folder, its macroshard,
  and where Combine finds its rows: a pack of the cache, or tonight's work shard. Combine
  assembles the current table from it: every current record once, deleted ones gone.

A first run, or a new record cache key (code, settings, image), is the same path with every
folder missing. Unchanged data leaves no work: the ForEach then gets one empty work shard
(SageMaker documents no empty ForEach; an empty work shard's step is a cache hit once it ran).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Mapping

from steps.io import storage as st
from steps.contract import REPORT_SHARD_ITEMS, REPORT_WORK, TABLE_FILE, WORK_NONE, work_name
from steps.featurize.cache import REJECTED_LISTED, Found, lookup
from steps.featurize.discovery import group_of
from steps.publish import PublishedShard, canonical, publish_shard, shard_items, shard_place

KEY_FORMAT = 3  # the folder key's layout: bump with the cache's segment format

# A macroshard as the listing step or Reconcile makes it: its name, the URI its keys are
# relative to, and its objects by key.
Shard = tuple[str, str, Mapping[str, st.ObjectInfo]]


@dataclass(frozen=True)
class Folder:
    path: str  # relative to the shard's prefix: `30/3000003`, or `.` for files at the top
    shard: str
    prefix: str
    files: dict[str, st.ObjectInfo]  # key relative to the prefix -> object
    key: str

    @property
    def bytes(self) -> int:
        return sum(o.size for o in self.files.values())


def folder_key(path: str, group: str, files: Mapping[str, st.ObjectInfo]) -> str:
    """What decides a folder's rows, besides the record cache key: its path, its group (the
    macroshard's name only for a folder at the top, whose path names none) and every file's
    name, size and ETag. Not the macroshard otherwise: a folder that moves to another one (a new
    `macroshards: auto` count) keeps its rows."""
    content = {"format": KEY_FORMAT, "folder": path, "group": group,
               "files": [[key, files[key].size, files[key].etag] for key in sorted(files)]}
    return hashlib.sha256(canonical(content)).hexdigest()


def folders_of(shards: list[Shard]) -> list[Folder]:
    """Every artifact folder of the shards, in (shard, path) order."""
    out = []
    for name, prefix, files in shards:
        by_path: dict[str, dict[str, st.ObjectInfo]] = {}
        for key, obj in files.items():
            by_path.setdefault(PurePosixPath(key).parent.as_posix(), {})[key] = obj
        for path in sorted(by_path):
            group = group_of(PurePosixPath(path), name)
            out.append(Folder(path, name, prefix, dict(sorted(by_path[path].items())),
                              folder_key(path, group, by_path[path])))
    return out


def pack_by_bytes(folders: list[Folder], target_bytes: int) -> list[list[Folder]]:
    """Folders, in order, into work shards of at least `target_bytes` each but the last (a
    shard closes once it reaches the target): n shards hold more than (n - 1) x target bytes,
    so there are at most ⌊bytes / target⌋ + 1 of them. A folder is never split (a record's
    header, data and segment files must reach the same job)."""
    work: list[list[Folder]] = []
    current: list[Folder] = []
    size = 0
    for folder in folders:
        current.append(folder)
        size += folder.bytes
        if size >= target_bytes:
            work.append(current)
            current, size = [], 0
    if current:
        work.append(current)
    return work


@dataclass
class WorkPlan:
    folders: list[Folder]
    found: Found
    work: list[tuple[str, list[Folder]]]  # (work shard name, its folders), in order
    published: list[PublishedShard] = field(default_factory=list)

    @property
    def missing(self) -> list[Folder]:
        return [f for f in self.folders if f.key not in self.found.located]

    def table(self, cache_uri: str | None) -> dict:
        """What Combine assembles: every current folder, its shard and where its rows are."""
        where = {f.key: name for name, members in self.work for f in members}
        rows = []
        for f in self.folders:
            located = self.found.located.get(f.key)
            source = {"work": where[f.key]} if located is None else \
                {"pack": located.sha256, "size": located.size, "etag": located.etag, "offset": located.offset,
                 "rows": located.rows, "records": located.records}
            rows.append({"folder": f.path, "shard": f.shard, "key": f.key, **source})
        return {"format": 1, "record_cache": cache_uri, "folders": rows}

    def report(self) -> dict:
        missing = self.missing
        return {"folders_total": len(self.folders), "folders_cached": len(self.folders) - len(missing),
                "folders_todo": len(missing), "bytes_total": sum(f.bytes for f in self.folders),
                "bytes_todo": sum(f.bytes for f in missing), "work_shards": len(self.work),
                "record_cache_packs": len({w.sha256 for w in self.found.located.values()}),
                "record_cache_rejected": self.found.rejected[:REJECTED_LISTED],
                "record_cache_rejected_count": len(self.found.rejected)}


def plan_work(storage: st.Storage, shards: list[Shard], cache_uri: str | None,
              target_bytes: int | None) -> WorkPlan:
    """Which folders to featurize tonight, and in which work shards: packed by `target_bytes`
    (`macroshards: auto`), else one work shard per macroshard, in the shards' order (each
    macroshard's step reads its own; an untouched one's is empty)."""
    folders = folders_of(shards)
    found = lookup(storage, cache_uri, {f.key for f in folders}) if cache_uri else Found()
    missing = [f for f in folders if f.key not in found.located]
    if target_bytes is not None:
        work = [(work_name(i), members) for i, members in enumerate(pack_by_bytes(missing, target_bytes))]
    else:
        work = [(name, [f for f in missing if f.shard == name]) for name, _, _ in shards]
    return WorkPlan(folders, found, work)


def shard_body(name: str, folders: list[Folder]) -> dict:
    """A work shard's `shard.json`: its name, and each folder's key and macroshard (its rows'
    `shard`, and the group of a folder at the top), which the Featurize job writes with its rows."""
    return {"shard": name, "folders": {f.path: {"key": f.key, "shard": f.shard} for f in folders}}


def work_shards(plan: WorkPlan) -> list[tuple[str, str, dict[str, st.ObjectInfo], dict]]:
    """(name, prefix, files, shard.json) of every work shard to publish, in order. A plan with
    no work shard at all (auto, nothing missing) has one empty one: a ForEach gets a list of at
    least one item."""
    out = []
    for name, members in plan.work or [(WORK_NONE, [])]:
        prefixes = {f.prefix for f in members}
        if len(prefixes) > 1:  # the listing step and Reconcile key every macroshard alike under auto
            raise ValueError(f"work shard {name} mixes folders under {sorted(prefixes)}")
        files = {k: o for f in members for k, o in f.files.items()}
        out.append((name, prefixes.pop() if prefixes else "", files, shard_body(name, members)))
    return out


def publish_work(storage: st.Storage, experiment_uri: str, plan: WorkPlan, output: Path,
                 cache_uri: str | None) -> list[PublishedShard]:
    """Publish every work shard at its content address and write `table.json` into `output`."""
    plan.published = [publish_shard(storage, experiment_uri, name, prefix, files, shard_json=body)
                      for name, prefix, files, body in work_shards(plan)]
    output.mkdir(parents=True, exist_ok=True)
    (output / TABLE_FILE).write_bytes(table_bytes(plan, cache_uri))
    return plan.published


def table_bytes(plan: WorkPlan, cache_uri: str | None) -> bytes:
    return json.dumps(plan.table(cache_uri), separators=(",", ":")).encode()


def predicted_work(experiment_uri: str, plan: WorkPlan, where: Mapping[str, str], cache_uri: str | None) -> dict:
    """The report keys `publish_work` would write (`deploy.py plan`), without writing, plus each
    work shard's files (size, ETag), where each is now (`where`: key -> URI) and the sha256 of
    the table it would write (which Combine's reuse is keyed by)."""
    plan.published, files, sources = [], {}, {}
    for name, prefix, objects, body in work_shards(plan):
        digest, place = shard_place(experiment_uri, name, prefix, objects, body)
        plan.published.append(PublishedShard(name, place, digest, len(objects), sum(o.size for o in objects.values())))
        files[name] = {k: {"size": o.size, "etag": o.etag} for k, o in objects.items()}
        sources[name] = {k: where[k] for k in objects}
    return {REPORT_WORK: work_report(plan), REPORT_SHARD_ITEMS: shard_items(plan.published), **plan.report(),
            "files": files, "sources": sources, "table_sha256": hashlib.sha256(table_bytes(plan, cache_uri)).hexdigest()}


def work_report(plan: WorkPlan) -> list[dict]:
    """The work shards as the report lists them (Featurize's inputs, Combine's work outputs)."""
    counts = {name: len(members) for name, members in plan.work}
    return [dict(s.as_report(), folders=counts.get(s.name, 0)) for s in plan.published]

