"""Combine over published shards, content-addressed by exactly what it read.

The pipeline's Combine reads the shard list from the report of the step that published the
shards (Reconcile or the listing step) and each shard's features from `<place>/features/
<featurize key>/`. It digests what it found there (every file's key, size and ETag; a shard
with nothing there counts as missing) and keeps its outputs at `<experiment>/combined/
<combine key>/<digest>/`:

- a digest seen before (same shard outputs, same combine code and settings): its combine is
  reused, no table is read;
- anything else, a shard that failed last time and succeeded since included: combined anew.

So a partial combine is only ever served for the same partial set of shard outputs, and
Encode, which reads the combined folder named in this report (JsonGet), reruns exactly when
the combined data changes. `report.json` is written to the folder last: it marks it complete,
and lists every other object of the folder with its size and ETag (`objects`). A reuse first
lists the folder against it: one missing, altered or added makes the combine run again (and
rewrite the folder), never a damaged table served.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path

import pandas as pd

from steps.io import storage as st
from steps.combine.run import combine, register_glue
from steps.combine.fetch import fetch_shard_outputs
from steps.combine.settings import CombineSettings
from steps.contract import (COMBINED_FOLDER, ENV_KMS_KEY_ID, ENV_S3_ROOT, FEATURES_FOLDER, REPORT_COMBINED_URI,
                            REPORT_FILE, REPORT_WORK, SUMMARY_FILE, TABLE_FILE, FEATURES_FILE)
from steps.entry import BadInput

log = logging.getLogger("steps.combine")
OBJECTS = "objects"  # in the published report.json: key relative to the folder -> [size, ETag]


def shard_outputs(shards_report: Path, featurize_key: str) -> dict[str, str]:
    """Work shard name -> its features location, from a Reconcile or listing report.json."""
    try:
        shards = json.loads(Path(shards_report).read_text())[REPORT_WORK]
    except (OSError, ValueError, KeyError) as err:
        raise BadInput(f"cannot read the work shards ({REPORT_WORK!r}) from {shards_report}: {err}") from None
    return {s["name"]: st.join_uri(s["uri"], FEATURES_FOLDER, featurize_key) for s in shards}


def read_table(shards_report: Path) -> tuple[dict, str]:
    """The plan's table (`table.json` beside the report: every current folder and where its rows
    are) and a digest of its bytes; BadInput naming the file when it is none."""
    path = Path(shards_report).parent / TABLE_FILE
    try:
        data = path.read_bytes()
        table = json.loads(data)
        if not isinstance(table, dict) or not isinstance(table.get("folders"), list):
            raise ValueError("no folders list")
    except (OSError, ValueError) as err:
        raise BadInput(f"cannot read the plan's table {path}: {err}") from None
    return table, hashlib.sha256(data).hexdigest()


def _pack_present(storage: st.Storage, report_uri: str) -> bool:
    """Whether the pack a Featurize report names is in the cache (False when it names none)."""
    try:
        pack = json.loads(storage.read_bytes(report_uri)).get("record_cache_pack")
    except (FileNotFoundError, ValueError, AttributeError):
        return False
    return isinstance(pack, str) and storage.head(pack) is not None


def refill(storage: st.Storage, outputs: dict[str, str], cache_uri: str) -> list[str]:
    """Keep again in the record cache every work output's pack that is not there: a Featurize
    step served from the step cache (its work shard came back after the cache lost those
    folders: deleted, gc'd, a refused pack) stored none, and without this the same work would
    come back, a cache hit, every run until the step cache expires. Returns the packs kept."""
    from steps.featurize.cache.packs import pack_folders, store_pack, table_of
    from steps.featurize.cache.segments import Refused, object_uri

    kept = []
    for uri in sorted(outputs.values()):
        for info in storage.list(uri + "/"):
            if not info.uri.endswith("/" + FEATURES_FILE):  # one, or one per host
                continue
            if _pack_present(storage, info.uri.removesuffix(FEATURES_FILE) + REPORT_FILE):
                continue  # tonight's job kept it: no need to read its bytes
            data = storage.read_bytes(info.uri)
            if storage.head(object_uri(cache_uri, hashlib.sha256(data).hexdigest())) is not None:
                continue
            try:
                folders = pack_folders(table_of(data).schema)
            except Refused:
                continue
            pack, indexed = store_pack(storage, cache_uri, data, folders)
            if indexed:
                kept.append(pack)
    return kept


def read_digest(storage: st.Storage, outputs: dict[str, str], combine_key: str, table_digest: str = "") -> str:
    """A digest of every work output file Combine would read, of which shards have none, and of
    the plan's table (which names every pack it reads by its sha256)."""
    found = {name: sorted([o.uri[len(uri) + 1:], o.size, o.etag] for o in storage.list(uri + "/"))
             for name, uri in sorted(outputs.items())}
    content = {"combine": combine_key, "table": table_digest,
               "shards": [[name, outputs[name], files] for name, files in found.items()]}
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:20]


def _damaged(storage: st.Storage, place: str) -> str | None:
    """None when the folder holds exactly the objects its report.json lists, else what differs."""
    try:
        recorded = json.loads(storage.read_bytes(st.join_uri(place, REPORT_FILE)))[OBJECTS]
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return f"{REPORT_FILE} unreadable or without its object list"
    found = {o.uri[len(place) + 1:]: [o.size, o.etag] for o in storage.list(place + "/")}
    found.pop(REPORT_FILE, None)
    for key in sorted(set(recorded) | set(found)):
        if key not in found:
            return f"{key} missing"
        if key not in recorded:
            return f"{key} added"
        if list(found[key]) != list(recorded[key]):
            return f"{key} altered"
    return None


def combine_published(shards_report: Path, featurize_key: str, experiment_uri: str, combine_key: str,
                      output_dir: Path, settings: CombineSettings = CombineSettings(),
                      storage: st.Storage | None = None, env: dict[str, str] | None = None) -> dict:
    """Combine (or reuse a combine of) the published shards' outputs; returns the report."""
    env = dict(os.environ if env is None else env)
    storage = storage or st.from_env(env)
    output_dir = Path(output_dir)
    outputs = shard_outputs(shards_report, featurize_key)
    table, table_digest = read_table(shards_report)
    # Every shard the report lists is expected, whether or not the config named them (with
    # `macroshards: auto` it names none): one without output is reported missing, never skipped.
    settings = settings.model_copy(update={"expected_shards": sorted(set(settings.expected_shards) | set(outputs))})
    place = st.join_uri(experiment_uri, COMBINED_FOLDER, combine_key, read_digest(storage, outputs, combine_key, table_digest))
    done = st.join_uri(place, REPORT_FILE)
    damaged = _damaged(storage, place) if storage.head(done) is not None else "absent"
    if damaged is None:
        for obj in storage.list(place + "/"):
            storage.download(obj.uri, output_dir / obj.uri[len(place) + 1:])
        report = json.loads((output_dir / REPORT_FILE).read_text())
        report.pop(OBJECTS, None)
        report["reused"] = True
        if settings.glue is not None and not env.get(ENV_S3_ROOT):
            # The catalog table is one location that any run may have overwritten since.
            report["glue"] = register_glue(pd.read_parquet(output_dir / SUMMARY_FILE), settings.glue,
                                           env.get(ENV_KMS_KEY_ID) or None)
    else:
        if damaged != "absent":
            log.warning("combined outputs at %s are not those it wrote (%s): combining again", place, damaged)
        with tempfile.TemporaryDirectory(prefix="wavepipe-shards-") as tmp:
            report = combine(fetch_shard_outputs(outputs, Path(tmp), storage), output_dir, settings, env, table,
                             storage)
        report["reused"] = False
        if damaged != "absent":
            report["repaired"] = damaged
        if report["status"] == "ok":
            files = sorted(p for p in output_dir.rglob("*") if p.is_file() and p.name != REPORT_FILE)
            keys = {path.relative_to(output_dir).as_posix() for path in files}
            for key in sorted(keys):
                storage.upload(output_dir / key, st.join_uri(place, key))
            published = {}
            for obj in storage.list(place + "/"):
                key = obj.uri[len(place) + 1:]
                if key in keys:
                    published[key] = [obj.size, obj.etag]
                elif key != REPORT_FILE:
                    storage.delete(obj.uri)  # left by something else: never served as part of this combine
            written = json.loads((output_dir / REPORT_FILE).read_text())
            storage.write_bytes(done, json.dumps(dict(written, **{OBJECTS: published}), indent=2, sort_keys=True,
                                                 default=str).encode())
    if table.get("record_cache"):
        report["record_cache_refilled"] = refill(storage, outputs, table["record_cache"])
    report[REPORT_COMBINED_URI] = place
    (output_dir / REPORT_FILE).write_text(json.dumps(report, indent=2, sort_keys=True, default=str))
    return report
