"""The shard's invariant: every record and every header file ends up with rows or an error row.

A record whose feature function returned nothing, a record the run lost, or a header that its
records read without a word (a master that skips a segment it names) would otherwise vanish
from the table with the shard reporting success. Each becomes a `no_result` error row naming
the record and the header, and the report counts what every header became.
"""

from __future__ import annotations

import os
from pathlib import PurePosixPath

from steps.featurize.discovery import Discovery
from steps.featurize.records import FeatureResult, RecordRef, error_row


def _said(result: FeatureResult, folder: PurePosixPath, header: str) -> bool:
    """Does a record's result speak of `header`: a row or error row of that segment (named as
    the master names it, a path back into the folder included), or an error of the whole record."""
    if any(not e.get("segment") for e in result.errors):
        return True
    stem = PurePosixPath(header).stem
    segments = {str(item.get("segment") or "") for item in (*result.rows, *result.errors)}
    return any(s and PurePosixPath(os.path.normpath((folder / s).as_posix())).name == stem for s in segments)


def account(found: Discovery, results: dict[str, FeatureResult], by_segment: bool) -> tuple[dict[str, FeatureResult], dict]:
    """Add a `no_result` error row for every record without rows or error rows (a missing one
    gets a result of its own) and, with `by_segment` (rows that name their segment, as the
    built-in function's do), for every header its records read but said nothing of.

    Returns the results of records that had none, and the report's counts."""
    records = {r.header: r for r in found.records}
    excluded = {r.header for r in found.excluded}
    added: dict[str, FeatureResult] = {}
    silent_records = silent_headers = 0
    for header, record in records.items():
        result = results.get(header)
        if result is None:
            result = added[header] = FeatureResult()
        if not result.rows and not result.errors:
            silent_records += 1
            result.error(record, "no_result", f"record {record.record} yielded neither rows nor an error row")
    roles = {"record": 0, "segment": 0, "layout": len(found.layouts), "excluded": 0}
    for header, owners in sorted(found.owners.items()):
        if all(o in excluded for o in owners):
            roles["excluded"] += 1
            continue
        roles["record" if header in records else "segment"] += 1
        if header in records or not by_segment:
            continue
        live = [records[o] for o in owners if o in records]
        if any(_said(_result(results, added, r), PurePosixPath(r.header).parent, header) for r in live):
            continue
        silent_headers += 1
        owner: RecordRef = live[0]
        stem = PurePosixPath(header).stem
        _result(results, added, owner).errors.append(error_row(
            owner, "no_result", f"header {PurePosixPath(header).name} is read by record {owner.record} but yielded "
            "neither rows nor an error row", stem, PurePosixPath(header).name))
    return added, {
        "headers_total": found.headers,
        "headers_by_role": roles,
        "records_without_result": silent_records,
        "headers_without_result": silent_headers,
    }


def _result(results: dict[str, FeatureResult], added: dict[str, FeatureResult], record: RecordRef) -> FeatureResult:
    result = results.get(record.header)
    return result if result is not None else added[record.header]
