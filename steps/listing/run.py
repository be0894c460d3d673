"""List each prefix under the source URI and publish it as a content-addressed shard."""

from __future__ import annotations

import json
import time
from pathlib import Path

from steps import storage as st
from steps.contract import REPORT_FILE, REPORT_SHARD_ITEMS, REPORT_SHARDS
from steps.entry import BadInput, StageFailed
from steps.listing.settings import ListingSettings
from steps.listing.source import Source, open_source
from steps.s3inventory import InventoryError
from steps.publish import PublishedShard, publish_shard, shard_items


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
        return source, [list_prefix(source, source_uri, p) for _, p in prefixes]
    except InventoryError as err:
        raise BadInput(str(err)) from None


def run_listing(settings: ListingSettings, source_uri: str, experiment_uri: str, prefixes: list[tuple[str, str]],
                output: Path, storage: st.Storage | None = None) -> dict:
    """Publish every prefix; the report (also `output/report.json`) lists the shards in order
    and says how the source was read (the inventory report's date, when one was)."""
    started = time.monotonic()
    st.split_uri(source_uri), st.split_uri(experiment_uri)
    storage = storage or st.from_env(max_connections=settings.threads + 4)
    source, listed = list_prefixes(settings, storage, source_uri, prefixes)
    empty = [f"{name} ({folder})" for (name, _), (folder, files) in zip(prefixes, listed) if not files]
    if empty:
        raise StageFailed(f"no object under {', '.join(empty)}: every prefix's Featurize step needs its files")
    shards: list[PublishedShard] = [publish_shard(storage, experiment_uri, name, folder, files)
                                    for (name, _), (folder, files) in zip(prefixes, listed)]
    report = {"stage": "listing", "status": "succeeded", "source_uri": source_uri, **source.facts,
              REPORT_SHARDS: [s.as_report() for s in shards], REPORT_SHARD_ITEMS: shard_items(shards),
              "objects_listed": sum(s.files for s in shards), "seconds": round(time.monotonic() - started, 3)}
    output.mkdir(parents=True, exist_ok=True)
    (output / REPORT_FILE).write_text(json.dumps(report, indent=1))
    return report
