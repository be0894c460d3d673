"""A Featurize shard that ran on several instances (read_mode stream): merge its hosts' outputs.

Each host wrote `hosts/<host>/{features.parquet, errors.parquet, report.json}` and then its
completion marker, which names every host of the job. A shard is merged only when every host
named by any marker has its marker and files: otherwise it is invalid, naming the shard and the
missing hosts, and Combine never reports a part of it as the shard. Rows are put back in the
order one host would have written them (by record), from each host's `record_rows`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow as pa

from steps.contract import HOST_DONE_FILE, HOSTS_FOLDER, REPORT_TOP_ERROR


def has_hosts(directory: Path) -> bool:
    return (directory / HOSTS_FOLDER).is_dir()


def _order(reports: list[dict], column: int) -> np.ndarray:
    """Indices into the hosts' concatenated rows (column 3: rows, 4: error rows) in record order."""
    blocks, start = [], 0
    for report in reports:
        for entry in report.get("record_rows", []):
            blocks.append((tuple(entry[:3]), start, int(entry[column])))
            start += int(entry[column])
    blocks.sort(key=lambda b: b[0])
    return np.array([i for _, first, n in blocks for i in range(first, first + n)], dtype=np.int64)


def merged_report(name: str, reports: list[dict]) -> dict:
    """The shard's report from its hosts': counts summed, status from the shard's error fraction."""
    total = sum(r.get("records_total", 0) for r in reports)
    failed = sum(r.get("records_failed", 0) for r in reports)
    limit = max((r.get("max_error_fraction", 0.0) for r in reports), default=0.0)
    fraction = failed / total if total else 0.0
    # Every count and amount of work is the shard's sum; the slowest host's time is the shard's.
    additive = ("records_ok", "records_reused", "records_featurized", "records_numerics", "records_partial", "rows",
                "error_rows", "bytes_total", "bytes_fetched", "bytes_read", "cpu_seconds", "artifacts_featurized",
                "artifacts_reused", "record_cache_written", "record_cache_unstorable", "microshards")
    summed = {k: sum(r.get(k) or 0 for r in reports) for k in additive if any(k in r for r in reports)}
    kinds: dict[str, int] = {}
    for report in reports:
        for kind, count in (report.get("errors_by_kind") or {}).items():
            kinds[kind] = kinds.get(kind, 0) + count
    seconds = max((r.get("seconds") or 0 for r in reports), default=0)
    # Every host reads the whole record-cache index: a segment it rejected is listed once.
    listed = {k: list({json.dumps(item, sort_keys=True): item for r in reports for item in r.get(k) or []}.values())
              for k in ("record_cache_rejected", "record_cache_unstorable_folders") if any(k in r for r in reports)}
    return {**reports[0], **summed, **listed, "shard": name, "hosts": sorted(r.get("host", "") for r in reports),
            "records_total": total, "records_failed": failed, "error_fraction": fraction, "errors_by_kind": kinds,
            REPORT_TOP_ERROR: _top_error(reports),
            "seconds": seconds, "status": "failed" if fraction > limit else "ok", "record_rows": None}


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
    """(status, problems, features, errors, report) of a multi-host shard; `read_one` reads one
    host's folder as a single-host shard (Combine's read_shard)."""
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
                            "in part"], None, None, {})
    parts = [(h, read_one(base / h)) for h in expected]
    bad = [f"shard {name}, host {h}: {'; '.join(p.problems)}" for h, p in parts if p.status not in ("ok", "failed")]
    if bad:
        return "invalid", bad, None, None, {}
    reports = [p.report for _, p in parts]
    features = pa.concat_tables([p.features for _, p in parts], promote_options="default")
    errors = pa.concat_tables([p.errors for _, p in parts], promote_options="default")
    features, errors = features.take(_order(reports, 3)), errors.take(_order(reports, 4))
    report = merged_report(name, reports)
    return report["status"], [], features, errors, report
