"""A Featurize shard that ran on several instances (read_mode stream): merge its hosts' outputs.

Each host wrote `hosts/<host>/{features.parquet, errors.parquet, report.json}` and then its
completion marker, which names every host of the job. A shard is merged only when every host
named by any marker has its marker and files: otherwise it is invalid, naming the shard and the
missing hosts, and Combine never reports a part of it as the shard. Each host's features.parquet
is a pack of its own folders: the merged shard's folders are theirs, offsets shifted past the
hosts before it.
"""

from __future__ import annotations

import json
from pathlib import Path
from dataclasses import replace
from typing import Callable

import pyarrow as pa

from steps.contract import HOST_DONE_FILE, HOSTS_FOLDER, REPORT_TOP_ERROR
from steps.featurize.cache.packs import PackFolder


def has_hosts(directory: Path) -> bool:
    return (directory / HOSTS_FOLDER).is_dir()


def _shifted(parts: list) -> list[PackFolder] | None:
    """The hosts' folders as one shard's: each host's rows follow the hosts' before it."""
    if any(p.folders is None for p in parts):
        return None
    out, rows, errors = [], 0, 0
    for part in parts:
        out += [replace(f, offset=f.offset + rows, error_offset=f.error_offset + errors) for f in part.folders]
        rows += part.features.num_rows
        errors += part.errors.num_rows
    return out


def merged_report(name: str, reports: list[dict]) -> dict:
    """The shard's report from its hosts': counts summed, status from the shard's error fraction."""
    total = sum(r.get("records_total", 0) for r in reports)
    failed = sum(r.get("records_failed", 0) for r in reports)
    limit = max((r.get("max_error_fraction", 0.0) for r in reports), default=0.0)
    fraction = failed / total if total else 0.0
    # Every count and amount of work is the shard's sum; the slowest host's time is the shard's.
    additive = ("records_ok", "records_reused", "records_featurized", "records_numerics", "records_partial", "rows",
                "error_rows", "bytes_total", "bytes_fetched", "bytes_read", "cpu_seconds", "folders",
                "record_cache_written", "microshards")
    summed = {k: sum(r.get(k) or 0 for r in reports) for k in additive if any(k in r for r in reports)}
    kinds: dict[str, int] = {}
    for report in reports:
        for kind, count in (report.get("errors_by_kind") or {}).items():
            kinds[kind] = kinds.get(kind, 0) + count
    seconds = max((r.get("seconds") or 0 for r in reports), default=0)
    listed = {k: [item for r in reports for item in r.get(k) or []][:20]
              for k in ("record_cache_uncached",) if any(k in r for r in reports)}
    return {**reports[0], **summed, **listed, "shard": name, "hosts": sorted(r.get("host", "") for r in reports),
            "records_total": total, "records_failed": failed, "error_fraction": fraction, "errors_by_kind": kinds,
            REPORT_TOP_ERROR: _top_error(reports),
            "seconds": seconds, "status": "failed" if fraction > limit else "ok"}


def _top_error(reports: list[dict]) -> dict | None:
    """The hosts' most common record error: records summed per kind, one host's example."""
    tops = [r[REPORT_TOP_ERROR] for r in reports if r.get(REPORT_TOP_ERROR)]
    counts: dict[str, int] = {}
    for top in tops:
        counts[top["kind"]] = counts.get(top["kind"], 0) + top["records"]
    if not counts:
        return None
    kind = max(sorted(counts), key=counts.__getitem__)
    return {"kind": kind, "records": counts[kind], "example": next(t["example"] for t in tops if t["kind"] == kind)}


def merge_hosts(directory: Path, read_one: Callable[[Path], "object"]):
    """(status, problems, features, errors, report, folders) of a multi-host shard; `read_one`
    reads one host's folder as a single-host shard (Combine's read_shard)."""
    name = directory.name
    base = directory / HOSTS_FOLDER
    present = sorted(p.name for p in base.iterdir() if p.is_dir())
    markers = {h: json.loads((base / h / HOST_DONE_FILE).read_text())
               for h in present if (base / h / HOST_DONE_FILE).is_file()}
    expected = sorted(set(present) | {h for m in markers.values() for h in m.get("hosts", [])})
    missing = [h for h in expected if h not in markers]
    if missing:
        return ("invalid", [f"shard {name}: no complete output of host(s) {', '.join(missing)} (of {len(expected)}; "
                            f"{HOSTS_FOLDER}/<host>/{HOST_DONE_FILE} missing): the shard is left out, not combined "
                            "in part"], None, None, {}, None)
    parts = [(h, read_one(base / h)) for h in expected]
    bad = [f"shard {name}, host {h}: {'; '.join(p.problems)}" for h, p in parts if p.status not in ("ok", "failed")]
    if bad:
        return "invalid", bad, None, None, {}, None
    reports = [p.report for _, p in parts]
    features = pa.concat_tables([p.features.replace_schema_metadata(None) for _, p in parts],
                                promote_options="default")
    errors = pa.concat_tables([p.errors for _, p in parts], promote_options="default")
    report = merged_report(name, reports)
    return report["status"], [], features, errors, report, _shifted([p for _, p in parts])
