"""`gc`: list (and with `--delete` remove) the shared objects nothing current refers to.

What it looks at, under `<output prefix>/<pipeline>/` (the only objects shared between
executions; each execution's own folder, the code and settings assets and the experiment's
copies of the raw files are left alone):

| kind | where |
|---|---|
| `cache-entry` | `record-cache/<key>/objects/<sha256>.parquet` (also `experiments/<e>/record-cache/...`) |
| `cache-segment` | `record-cache/<key>/index/<sha256>.json` |
| `shard` | `experiments/<e>/shards/<digest>/` (its manifest and index.json) |
| `features` | `experiments/<e>/shards/<digest>/features/<featurize key>/...` |
| `labels` | `experiments/<e>/labels/<digest>/...` |
| `combined` | `experiments/<e>/combined/<combine key>/<digest>/...` |

Referenced means, precisely:

- *Live executions*: every local execution of the workdir recorded as Executing (a run in
  progress); the newest local execution that succeeded; and every execution folder
  `<base>/<execution id>/` (local or SageMaker) holding an object younger than the grace
  period, plus the newest one whose Combine report exists (the current result). A live
  execution references the shard places and labels its Reconcile or Listing report names
  (`shards[].uri`, `labels_uri`), the combined folder its Combine report names
  (`combined_uri`), and, for a local one, every `s3://` URI in its steps' resolved arguments.
- *Features*: under a referenced shard, those of the current featurize key (the config's, as
  the definition builds it) and of any key a live local execution wrote.
- *Record cache*: the key folders of the current config and those a kept Featurize report names
  (`record_cache`); in them, every valid index segment, except one whose entries another
  segment holds in full (superseded: `--compact` writes the union, the older ones go after the
  grace period), and every entry object a kept segment names. Every object of another key is
  unreferenced (that code or those settings no longer decide a record's rows).
- Never removed, referenced or not: an object younger than the grace period. A SageMaker
  execution is seen only through what it wrote, so the grace period must exceed the longest
  execution (an execution writes its Reconcile/Listing report when it starts, which keeps
  everything it reads while it runs); locally, `gc --delete` also takes the workdir's lock,
  so no local run is running.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterable

from pipeline.gc.listing import Aged, aged
from steps import contract as c

KINDS = ("cache-entry", "cache-segment", "shard", "features", "labels", "combined")
SHARED = ("experiments", c.RECORD_CACHE_FOLDER, "code", "settings")  # folders under the base that are no execution
SOURCE_STAGES = ("reconcile", "listing")
DEFAULT_GRACE = "7d"


@dataclass(frozen=True)
class Item:
    obj: Aged
    kind: str
    group: str  # the content-addressed folder it belongs to (a shard place, a cache key folder, ...)
    keep: str | None  # why it stays; None: unreferenced and older than the grace period


@dataclass
class Live:
    """What the executions `gc` must not disturb reference."""

    executions: dict[str, str] = field(default_factory=dict)  # id -> why it is live
    uris: set[str] = field(default_factory=set)  # referenced places (no trailing /)
    featurize_keys: set[str] = field(default_factory=set)
    cache_keys: set[str] = field(default_factory=set)

    def refers(self, uri: str) -> bool:
        return any(uri == u or uri.startswith(u + "/") for u in self.uris)


def current_keys(definition: str) -> tuple[set[str], set[str]]:
    """(featurize keys, record cache keys) the config's definition names: the last part of the
    Featurize output `<place>/features/<key>` and of the `<scope>/record-cache/<key>` argument."""
    features, cache = set(), set()

    def walk(node) -> None:
        if isinstance(node, dict):
            values = (node.get("Std:Join") or {}).get("Values")
            if isinstance(values, list):
                for a, b in zip(values, values[1:]):
                    if a == c.FEATURES_FOLDER and isinstance(b, str):
                        features.add(b)
                    if a == c.RECORD_CACHE_FOLDER and isinstance(b, str):
                        cache.add(b)
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(json.loads(definition))
    return features, cache


def _uris(node) -> Iterable[str]:
    if isinstance(node, str):
        if node.startswith("s3://"):
            yield node.rstrip("/")
    elif isinstance(node, dict):
        for v in node.values():
            yield from _uris(v)
    elif isinstance(node, list):
        for v in node:
            yield from _uris(v)


def local_executions(workdir: Path | None, pipeline: str, storage_label: str | None = None) -> list[dict]:
    """The workdir's executions of `pipeline` (newest first) that ran on this storage."""
    from pipeline.local.state import ExecutionStore

    records = ExecutionStore(Path(workdir) / "executions").records(pipeline) if workdir else []
    return [r for r in records if storage_label is None or r.get("Storage") in (None, storage_label)]


def _started(record: dict) -> datetime:
    try:
        when = datetime.fromisoformat(str(record.get("Started")))
    except ValueError:
        return datetime.max.replace(tzinfo=timezone.utc)  # unknown: treated as recent
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def find_live(storage, base: str, objects: list[Aged], records: list[dict], cutoff: datetime) -> Live:
    live = Live()
    for record in records:  # newest first
        status = record.get("Status")
        why = "running (recorded Executing)" if status == "Executing" else \
            "the newest local execution that succeeded" if status == "Succeeded" and \
            "the newest local execution that succeeded" not in live.executions.values() else \
            "started within the grace period" if _started(record) >= cutoff else None
        if why is None:
            continue
        live.executions[record["ExecutionId"]] = why
        for step in (record.get("Steps") or {}).values():
            live.uris.update(filter(None, map(_place, _uris(step.get("Properties") or {}))))
    # Execution folders in storage (SageMaker's, and local ones whose record is elsewhere).
    newest: dict[str, datetime] = {}
    reports: dict[str, dict[str, str]] = {}
    for obj in objects:
        parts = obj.uri[len(base) + 1:].split("/")
        if parts[0] in SHARED:
            continue
        newest[parts[0]] = max(newest.get(parts[0], obj.modified), obj.modified)
        if len(parts) == 3 and parts[2] == c.REPORT_FILE:
            reports.setdefault(parts[0], {})[parts[1]] = obj.uri
    combined = sorted((e for e in reports if "combine" in reports[e]), key=lambda e: newest[e])
    for execution, when in newest.items():
        if when >= cutoff:
            live.executions.setdefault(execution, "wrote an object within the grace period")
    if combined:
        live.executions.setdefault(combined[-1], "the newest execution with a Combine report")
    for execution in live.executions:
        for stage, uri in reports.get(execution, {}).items():
            if stage not in SOURCE_STAGES and stage != "combine":
                continue
            try:
                report = json.loads(storage.read_bytes(uri))
            except (FileNotFoundError, ValueError):
                continue
            live.uris.update(s["uri"].rstrip("/") for key in (c.REPORT_SHARDS, c.REPORT_WORK)
                             for s in report.get(key) or [] if "uri" in s)
            for key in (c.REPORT_LABELS_URI, c.REPORT_COMBINED_URI):
                if isinstance(report.get(key), str):
                    live.uris.add(report[key].rstrip("/"))
    for uri in list(live.uris):  # a local execution's Featurize output and record cache
        match = re.search(rf"/{c.SHARDS_FOLDER}/[^/]+/{c.FEATURES_FOLDER}/([^/]+)$", uri)
        if match:
            live.featurize_keys.add(match.group(1))
        match = re.search(rf"/{c.RECORD_CACHE_FOLDER}/([^/]+)$", uri)
        if match:
            live.cache_keys.add(match.group(1))
    return live


PLACES = (re.compile(rf"^(.*/experiments/[^/]+/{c.SHARDS_FOLDER}/[^/]+/{c.FEATURES_FOLDER}/[^/]+)(/.*)?$"),
          re.compile(rf"^(.*/experiments/[^/]+/(?:{c.SHARDS_FOLDER}|{c.LABELS_FOLDER})/[^/]+)(/.*)?$"),
          re.compile(rf"^(.*/experiments/[^/]+/{c.COMBINED_FOLDER}/[^/]+/[^/]+)(/.*)?$"),
          re.compile(rf"^(.*/{c.RECORD_CACHE_FOLDER}/[^/]+)(/.*)?$"))


def _place(uri: str) -> str | None:
    """The content-addressed folder a URI is in (a shard place, its features, labels, a combined
    folder, a record cache key), or None: an execution's other arguments (the experiment
    folder, its own outputs) refer to no one object `gc` looks at."""
    for pattern in PLACES:
        match = pattern.match(uri)
        if match:
            return match.group(1)
    return None


def classify(obj: Aged, base: str) -> tuple[str, str] | None:
    """(kind, the content-addressed folder it belongs to) of a shared object, None for others."""
    rel = obj.uri[len(base) + 1:]
    parts = rel.split("/")
    cache_at = 0 if parts[0] == c.RECORD_CACHE_FOLDER else 2 if parts[:1] == ["experiments"] and \
        parts[2:3] == [c.RECORD_CACHE_FOLDER] else None
    if cache_at is not None and len(parts) == cache_at + 4:
        folder = "/".join(parts[:cache_at + 2])
        kind = {"objects": "cache-entry", "index": "cache-segment"}.get(parts[cache_at + 2])
        return (kind, f"{base}/{folder}") if kind else None
    if parts[0] != "experiments" or len(parts) < 5:
        return None
    if parts[2] == c.SHARDS_FOLDER:
        place = f"{base}/{'/'.join(parts[:4])}"
        if parts[4] == c.FEATURES_FOLDER and len(parts) > 6:
            return "features", f"{place}/{c.FEATURES_FOLDER}/{parts[5]}"
        return "shard", place
    if parts[2] == c.LABELS_FOLDER:
        return "labels", f"{base}/{'/'.join(parts[:4])}"
    if parts[2] == c.COMBINED_FOLDER and len(parts) > 5:
        return "combined", f"{base}/{'/'.join(parts[:5])}"
    return None


def _segments(storage, folder: str, segments: list[Aged]) -> tuple[dict[str, set], dict[str, str]]:
    """(segment uri -> its entries' sha256s, segment uri -> why it is not kept) of one cache key."""
    from steps.featurize.cache.segments import Refused, entries_of

    entries: dict[str, set] = {}
    dropped: dict[str, str] = {}
    for seg in segments:
        try:
            rows = entries_of(storage.read_bytes(seg.uri), seg.uri.rsplit("/", 1)[-1])
        except (FileNotFoundError, Refused) as err:
            dropped[seg.uri] = f"damaged ({getattr(err, 'reason', 'missing')})"
            continue
        entries[seg.uri] = set(rows)
    for uri, rows in entries.items():  # superseded: another segment holds every one of its entries
        for other, more in entries.items():
            if other != uri and (rows < more or (rows == more and other < uri)):
                dropped[uri] = "superseded"
                break
    return entries, dropped


def decide(storage, base: str, objects: list[Aged], live: Live, current: tuple[set[str], set[str]],
           cutoff: datetime, step_cutoff: datetime | None = None) -> list[Item]:
    """What to keep and why. `step_cutoff`: a shard place's features written after it may still be
    what a SageMaker step-cache hit names (the cache keys on the place, not on whether the
    outputs are still there), so they stay until the cache's expiry has passed too."""
    featurize_keys = live.featurize_keys | current[0]
    items: list[tuple[Aged, str, str]] = [(o, *kg) for o in objects if (kg := classify(o, base)) is not None]
    kept_reports = [o for o, kind, group in items if kind == "features" and o.uri.endswith("/" + c.REPORT_FILE)
                    and live.refers(group.rsplit(f"/{c.FEATURES_FOLDER}/", 1)[0])
                    and group.rsplit("/", 1)[-1] in featurize_keys]
    cache_keys = live.cache_keys | current[1]
    for report in kept_reports:
        try:
            named = json.loads(storage.read_bytes(report.uri)).get("record_cache")
        except (FileNotFoundError, ValueError):
            continue
        if isinstance(named, str):
            cache_keys.add(named.rstrip("/").rsplit("/", 1)[-1])
    # The record cache: which segments and entries of the kept keys are referenced.
    named: set[str] = set()
    dropped: dict[str, str] = {}
    for folder in {g for _o, k, g in items if k == "cache-segment" and g.rsplit("/", 1)[-1] in cache_keys}:
        entries, gone = _segments(storage, folder, [o for o, k, g in items if k == "cache-segment" and g == folder])
        dropped.update(gone)
        named.update(f"{folder}/objects/{sha}.parquet" for uri, rows in entries.items() if uri not in gone
                     for _key, loc in rows for sha in (loc.sha256,))
    out = []
    for obj, kind, group in items:
        if kind in ("cache-entry", "cache-segment"):
            key = group.rsplit("/", 1)[-1]
            if key not in cache_keys:
                why = None
            elif kind == "cache-segment":
                why = None if obj.uri in dropped else "an index segment of a current record cache key"
            else:
                why = "named by a kept index segment" if obj.uri in named else None
        elif kind == "features":
            place, key = group.rsplit(f"/{c.FEATURES_FOLDER}/", 1)
            why = "features of a current featurize key under a referenced shard" \
                if live.refers(place) and key in featurize_keys else None
        else:
            why = f"{kind} named by a live execution" if live.refers(group) else None
        if why is None and obj.modified >= cutoff:
            why = "younger than the grace period"
        if why is None and kind in ("features", "shard") and step_cutoff is not None and obj.modified >= step_cutoff:
            why = "younger than the step cache's expiry (cache.expire_after): a cache hit may still name it"
        out.append(Item(obj, kind, group, why))
    return out


def table(items: list[Item], now: datetime) -> str:
    rows: dict[tuple[str, str], list[Item]] = {}
    for item in items:
        rows.setdefault((item.kind, item.keep or "-"), []).append(item)
    lines = [f"{'KIND':<14} {'ACTION':<7} {'COUNT':>7} {'BYTES':>14} {'OLDEST':>8}  KEPT-BECAUSE"]
    for kind in KINDS:
        for (k, why), group in sorted(rows.items(), key=lambda kv: kv[0][1] != "-"):
            if k != kind:
                continue
            oldest = (now - min(i.obj.modified for i in group)).total_seconds()
            age = f"{oldest / 86400:.1f}d" if oldest >= 86400 else f"{oldest / 3600:.1f}h"
            lines.append(f"{kind:<14} {'delete' if why == '-' else 'keep':<7} {len(group):>7} "
                         f"{sum(i.obj.size for i in group):>14,} {age:>8}  {why}")
    return "\n".join(lines) + "\n"


def compact(storage, items: list[Item]) -> list[str]:
    """Write, for every kept cache key with more than one kept segment, the union of their
    entries as one new segment; the older ones are then superseded (removed after the grace)."""
    from steps.featurize.cache.segments import Refused, entries_of, write_segment

    written = []
    folders: dict[str, list[Item]] = {}
    for item in items:
        if item.kind == "cache-segment" and item.keep == "an index segment of a current record cache key":
            folders.setdefault(item.group, []).append(item)
    for folder, segs in folders.items():
        if len(segs) < 2:
            continue
        union = set()
        for seg in segs:
            try:
                union.update(entries_of(storage.read_bytes(seg.obj.uri), seg.obj.uri.rsplit("/", 1)[-1]))
            except (FileNotFoundError, Refused):
                continue
        written.append(write_segment(storage, folder, sorted(union)))
    return written


def collect(cfg, storage, workdir: Path | None, grace: timedelta, now: datetime | None = None,
            storage_label: str | None = None) -> tuple[list[Item], Live]:
    """Every shared object under the pipeline's base, with why it is kept (or None)."""
    from pipeline.build.compose import build
    from pipeline.stages.common import base_uri

    now = now or datetime.now(timezone.utc)
    cutoff = now - grace
    base = base_uri(cfg)
    objects = list(aged(storage, base + "/"))
    live = find_live(storage, base, objects, local_executions(workdir, cfg.pipeline.name, storage_label), cutoff)
    from pipeline.definition.model import parse_duration

    # Only SageMaker's step cache takes a hit without looking at the outputs (the local runner
    # lists them first): on AWS, features stay until the cache's expiry has passed as well.
    on_aws = storage_label == "aws"
    step_cutoff = now - max(grace, parse_duration(cfg.cache.expire_after)) if cfg.cache.enabled and on_aws else None
    return decide(storage, base, objects, live, current_keys(build(cfg).definition), cutoff, step_cutoff), live


def parse_grace(text: str) -> timedelta:
    """`7d`, `36h`, `90m` or `0`."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([dhm]?)", text.strip())
    if not match:
        raise ValueError(f"--grace expects a duration like 7d, 36h or 90m, got {text!r}")
    unit = {"d": "days", "h": "hours", "m": "minutes", "": "days"}[match.group(2)]
    return timedelta(**{unit: float(match.group(1))})


def run_gc(cfg, args) -> int:
    """The `gc` verb: the table; with --compact a union segment per kept cache key; with
    --delete, the unreferenced objects older than the grace period removed (under the
    workdir's lock, so no local run is running meanwhile)."""
    import sys
    from contextlib import nullcontext

    from pipeline.local.backend import open_backend
    from pipeline.local.lock import WorkdirBusy, workdir_lock

    try:
        grace = parse_grace(args.grace)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    workdir = Path(args.workdir or cfg.local.workdir or ".wavepipe")
    backend = open_backend(args.s3_endpoint or ("aws" if args.s3 == "aws" else "local"), workdir)
    storage = backend.storage
    try:
        with workdir_lock(workdir) if args.delete or args.compact else nullcontext():
            items, live = collect(cfg, storage, workdir, grace, storage_label=backend.label)
            for execution, why in sorted(live.executions.items()):
                print(f"live execution {execution}: {why}")
            sys.stdout.write(table(items, datetime.now(timezone.utc)))
            if args.compact:
                for uri in compact(storage, items):
                    print(f"compacted into {uri}")
            doomed = [i for i in items if i.keep is None]
            if not args.delete:
                print(f"dry run: {len(doomed)} objects ({sum(i.obj.size for i in doomed):,} bytes) would be "
                      f"deleted; --delete deletes them")
                return 0
            # Entries before segments: an interrupted delete leaves at worst a segment naming a missing entry,
            # which a reader takes as a miss (featurized again), and the next gc removes.
            for item in sorted(doomed, key=lambda i: i.kind == "cache-segment"):
                storage.delete(item.obj.uri)
            print(f"deleted {len(doomed)} objects ({sum(i.obj.size for i in doomed):,} bytes)")
    except WorkdirBusy as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def arguments(p) -> None:
    """The `gc` verb's arguments (registered in pipeline/cli/verbs.py)."""
    p.add_argument("--workdir", help="the local run's storage and execution records (default: as `local`)")
    p.add_argument("--s3-endpoint", help="look at this S3 API endpoint instead of <workdir>/s3")
    p.add_argument("--s3", choices=["local", "aws"], default="local", help="aws: your real S3 with your credentials")
    p.add_argument("--grace", default=DEFAULT_GRACE, metavar="DURATION",
                   help=f"never touch an object younger than this (default {DEFAULT_GRACE}; 36h, 90m, 0). On "
                        "SageMaker gc sees executions only through what they wrote: keep it longer than your "
                        "longest execution")
    p.add_argument("--delete", action="store_true", help="delete what the table marks `delete` (default: dry run)")
    p.add_argument("--compact", action="store_true",
                   help="write each current record cache key's index segments as one; the older ones go once "
                        "they are older than the grace period")


def verb(args, cfg) -> int:
    return run_gc(cfg, args)
