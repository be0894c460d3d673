"""Combine every macroshard's features into one table, with normalised signal names and
per-signal statistics; optionally register the table in the Glue Data Catalog."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from steps.contract import (ENV_KMS_KEY_ID, ENV_S3_ROOT, ERRORS_FILE, FEATURES_FILE, REPORT_FILE, REPORT_TOP_ERROR,
                            SHARD_FILES, SIGNAL_STATS_FILE, SUMMARY_FILE)
from steps.combine.hosts import has_hosts, merge_hosts
from steps.combine.settings import CombineSettings, GlueTable, alias_key
from steps.featurize.cache.packs import PackFolder, pack_folders
from steps.featurize.cache.segments import Refused
from steps.featurize.records import ERROR_COLUMNS



@dataclass
class ShardOutput:
    name: str
    status: str  # ok | failed (featurize reported failure) | invalid (unreadable or wrong schema) | missing
    problems: list[str] = field(default_factory=list)
    features: pa.Table | None = None
    errors: pa.Table | None = None
    report: dict = field(default_factory=dict)
    folders: list[PackFolder] | None = None  # a work shard's: which rows are each folder's (its pack metadata)


def read_shard(directory: Path, required: list[str]) -> ShardOutput:
    """One shard's outputs, checked: all three files present and readable, required columns there.
    A shard featurized on several instances is every host's outputs merged, or invalid."""
    if has_hosts(directory) and not (directory / REPORT_FILE).exists():
        status, problems, features, errors, report, folders = merge_hosts(directory, lambda d: read_shard(d, required))
        if status == "failed":
            problems = [f"featurize reported status {status!r}"]
        return ShardOutput(directory.name, status, problems, features, errors, report, folders)
    shard = ShardOutput(directory.name, "ok")
    absent = [f for f in SHARD_FILES if not (directory / f).is_file()]
    if absent:
        return ShardOutput(directory.name, "missing" if len(absent) == 3 else "invalid", [f"missing {absent}"])
    try:
        shard.report = json.loads((directory / REPORT_FILE).read_text())
        shard.features = pq.read_table(directory / FEATURES_FILE)
        shard.errors = pq.read_table(directory / ERRORS_FILE)
    except (OSError, ValueError, pa.ArrowException) as err:
        return ShardOutput(directory.name, "invalid", [f"unreadable: {type(err).__name__}: {err}"])
    try:
        shard.folders = pack_folders(shard.features.schema)
    except Refused:
        shard.folders = None  # no work shard's output: combined whole (`--input`)
    lacking = [c for c in required if c not in shard.features.column_names]
    if lacking and shard.features.num_rows:
        shard.problems.append(f"features.parquet lacks columns {lacking}")
    lacking_errors = [c for c in ERROR_COLUMNS if c not in shard.errors.column_names]
    if lacking_errors:
        shard.problems.append(f"errors.parquet lacks columns {lacking_errors}")
    if shard.problems:
        shard.status = "invalid"
    elif shard.report.get("status") not in (None, "ok"):
        shard.status = "failed"
        shard.problems.append(f"featurize reported status {shard.report.get('status')!r}")
    return shard


def read_shards(input_dir: Path, settings: CombineSettings) -> list[ShardOutput]:
    found = sorted(p.name for p in input_dir.iterdir() if p.is_dir()) if input_dir.is_dir() else []
    names = sorted(set(found) | set(settings.expected_shards))
    return [read_shard(input_dir / name, settings.required_columns) for name in names]


def normalise_signals(features: pd.DataFrame, settings: CombineSettings) -> pd.DataFrame:
    """Adds `signal_kind` (waveform/numerics) and `signal_normalised`; the raw `signal` is kept."""
    tables = {
        kind: {alias_key(raw): norm for norm, raws in aliases.items() for raw in [norm, *raws]}
        for kind, aliases in (("waveform", settings.signal_aliases), ("numerics", settings.numerics_aliases))
    }
    out = features.copy()
    numerics = out["is_numerics"].astype(bool) if "is_numerics" in out else pd.Series(False, index=out.index)
    out["signal_kind"] = np.where(numerics, "numerics", "waveform")
    raw = out["signal"].astype(str)
    out["signal_normalised"] = [tables[k].get(alias_key(s), s.strip()) for k, s in zip(out["signal_kind"], raw)]
    return out


def signal_stats(summary: pd.DataFrame) -> pd.DataFrame:
    """One row per (normalised signal, kind): coverage, NaN fraction and spread of segment means."""
    columns = ["signal_normalised", "signal_kind", "raw_names", "units", "records", "segments", "total_hours",
               "nan_fraction", "mean_of_means", "std_of_means", "min_of_means", "p05_of_means",
               "p50_of_means", "p95_of_means", "max_of_means"]
    if summary.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    for (norm, kind), g in summary.groupby(["signal_normalised", "signal_kind"], sort=True):
        means = g["mean"].dropna().to_numpy()
        pct = np.percentile(means, [5, 50, 95]) if means.size else [np.nan] * 3
        n = g["n_samples"].sum()
        rows.append({
            "signal_normalised": norm,
            "signal_kind": kind,
            "raw_names": ";".join(sorted(g["signal"].unique())),
            "units": ";".join(sorted(g["units"].astype(str).unique())),
            "records": g[["shard", "group", "record"]].drop_duplicates().shape[0],
            "segments": g[["shard", "group", "record", "segment"]].drop_duplicates().shape[0],
            "total_hours": g["duration_s"].sum() / 3600.0,
            "nan_fraction": 1.0 - g["n_valid"].sum() / n if n else np.nan,
            "mean_of_means": means.mean() if means.size else np.nan,
            "std_of_means": means.std() if means.size else np.nan,
            "min_of_means": means.min() if means.size else np.nan,
            "p05_of_means": pct[0],
            "p50_of_means": pct[1],
            "p95_of_means": pct[2],
            "max_of_means": means.max() if means.size else np.nan,
        })
    return pd.DataFrame(rows, columns=columns)


def top_error(errors: pd.DataFrame) -> dict | None:
    """The most common record error of the combined error rows, as Featurize reports its own:
    its kind, how many records have it (a record with several rows of one kind counts once)
    and one message; None when no record failed."""
    if errors.empty:
        return None
    one_per_record = [c for c in ("shard", "group", "record", "kind") if c in errors.columns]
    records = errors.drop_duplicates(one_per_record).groupby("kind", sort=True).size()
    kind = str(records.idxmax())  # the first kind by name among equals: the same line every run
    example = errors.loc[errors.kind == kind, "message"].iloc[0]
    return {"kind": kind, "records": int(records[kind]), "example": str(example)[:300]}


def register_glue(summary: pd.DataFrame, glue: GlueTable, kms_key_id: str | None) -> dict:
    """Write the summary under `glue.location` and (re)create the catalog table over it.

    awswrangler's clients come from boto3, which honours AWS_ENDPOINT_URL (the tests' moto
    server); every S3 object is written with SSE-KMS when a key is configured."""
    import awswrangler as wr

    extra = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key_id} if kms_key_id else None
    # GetDatabase of this one database, not a listing of all (least privilege: see iam-policy).
    wr.catalog.create_database(glue.database, exist_ok=True)
    result = wr.s3.to_parquet(
        df=summary, path=glue.location, dataset=True, mode="overwrite", database=glue.database,
        table=glue.table, compression="snappy", s3_additional_kwargs=extra,
    )
    return {"database": glue.database, "table": glue.table, "location": glue.location, "files": len(result["paths"])}


def _whole_shards(usable: list[ShardOutput]) -> tuple[list[pd.DataFrame], list[pd.DataFrame], dict]:
    """`--input`: every shard folder's rows, whole, in shard order."""
    frames = []
    for shard in usable:
        frame = shard.features.to_pandas()
        if len(frame):
            frame.insert(0, "shard", shard.name)
            frames.append(frame)
    errors = [s.errors.to_pandas().assign(shard=s.name) for s in usable if s.errors.num_rows]
    counts = {"records_total": int(sum(s.report.get("records_total", 0) for s in usable)),
              "records_failed": int(sum(s.report.get("records_failed", 0) for s in usable))}
    return frames, errors, counts


def _assembled(usable: list[ShardOutput], table: dict, storage) -> tuple[list[pd.DataFrame], list[pd.DataFrame], dict]:
    """The current table: tonight's work outputs and the record cache's packs (`assemble.py`)."""
    from steps.combine.assemble import assemble

    work = {s.name: (s.features, s.errors, s.folders) for s in usable if s.folders is not None}
    got = assemble(table, work, storage)
    frames, errors = [], []
    if got.features is not None and got.features.num_rows:
        frame = got.features.to_pandas()
        frame.insert(0, "shard", pd.Series(got.shards, dtype=object))
        frames.append(frame)
    if got.errors is not None and got.errors.num_rows:
        errors.append(got.errors.to_pandas().assign(shard=got.error_shards))
    counts = {"records_total": got.records_total, "records_failed": got.records_failed, "folders": got.folders,
              "folders_from_cache": got.folders_from_cache, "record_cache_packs_read": got.packs_read,
              "record_cache_refused": got.refused, "record_cache_compacted": got.compacted,
              "folders_lacking": len(got.lacking),
              "folders_lacking_sample": got.lacking[:20]}
    return frames, errors, counts


def combine(input_dir: str | Path, output_dir: str | Path, settings: CombineSettings = CombineSettings(),
            env: dict[str, str] | None = None, table: dict | None = None, storage=None) -> dict:
    """Combine `input_dir/<shard>/` outputs into `output_dir`; returns the report (also written).
    With `table` (the plan's `table.json`), the outputs are tonight's work shards and the table
    is assembled from them and the record cache (`steps/combine/assemble.py`)."""
    env = os.environ if env is None else env
    started = time.perf_counter()
    input_dir, out = Path(input_dir), Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    shards = read_shards(input_dir, settings)
    usable = [s for s in shards if s.status in ("ok", "failed")]
    frames, errors, counts = _whole_shards(usable) if table is None else _assembled(usable, table, storage)
    features = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["shard", *settings.required_columns])
    summary = normalise_signals(features, settings) if "signal" in features else features
    pq.write_table(pa.Table.from_pandas(summary, preserve_index=False), out / SUMMARY_FILE,
                   compression="snappy")
    if {"signal_normalised", "n_samples", "n_valid", "duration_s", "mean", "units"} <= set(summary.columns):
        signal_stats(summary).to_csv(out / SIGNAL_STATS_FILE, index=False)
    else:
        pd.DataFrame().to_csv(out / SIGNAL_STATS_FILE, index=False)
    all_errors = pd.concat(errors, ignore_index=True) if errors else pd.DataFrame(columns=[*ERROR_COLUMNS, "shard"])
    pq.write_table(pa.Table.from_pandas(all_errors.astype(str), preserve_index=False), out / ERRORS_FILE,
                   compression="snappy")
    expected = set(settings.expected_shards)
    report = {
        "stage": "combine",
        "shards_expected": sorted(expected),
        "shards_combined": [s.name for s in usable],
        "shards_missing": [s.name for s in shards if s.status == "missing"],
        "shards_failed": [s.name for s in shards if s.status == "failed"],
        "shards_invalid": {s.name: s.problems for s in shards if s.status == "invalid"},
        "shards_unexpected": sorted(s.name for s in shards if expected and s.name not in expected),
        "rows": int(len(summary)),
        "error_rows": int(len(all_errors)),
        **counts,
        "signals": int(summary["signal_normalised"].nunique()) if "signal_normalised" in summary else 0,
    }
    report["complete"] = not (report["shards_missing"] or report["shards_failed"] or report["shards_invalid"]
                              or counts.get("folders_lacking") or counts.get("record_cache_refused"))
    if not report["complete"]:
        report["note"] = "combined what exists; see shards_missing / shards_failed / shards_invalid / folders_lacking " \
                         "/ record_cache_refused"
    report["glue"] = None
    if settings.glue is not None:
        if env.get(ENV_S3_ROOT):
            report["glue"] = {"skipped": f"local storage ({ENV_S3_ROOT}): no Glue Data Catalog"}
        else:
            report["glue"] = register_glue(summary, settings.glue, env.get(ENV_KMS_KEY_ID) or None)
    report[REPORT_TOP_ERROR] = top_error(all_errors)
    report["seconds"] = time.perf_counter() - started
    report["status"] = "ok" if usable and (report["complete"] or not settings.require_all_shards) else "failed"
    (out / REPORT_FILE).write_text(json.dumps(report, indent=2, sort_keys=True, default=str))
    return report
