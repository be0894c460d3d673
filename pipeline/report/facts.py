"""The numbers a report shows, read from an execution's outputs: per shard (featurize
`report.json`), errors by kind (`errors.parquet`), per signal (Combine's summary, or the shards'
features when Combine did not run) and the encoded labels per split (`split_metadata.json`)."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field

import pandas as pd

from pipeline.report.sources import Execution
from steps.combine.hosts import merged_report
from steps.contract import ERRORS_FILE, FEATURES_FILE, HOSTS_FOLDER, REPORT_FILE, REPORT_SHARD
from steps.io.storage import join_uri

SIGNAL_STATS = ("mean", "std", "frac_nan")
EXAMPLES_PER_KIND = 3
# A shard is outlying for a statistic when its median lies outside this percentile range of
# the other shards' records and also more than OUTLIER_Z robust standard deviations (MAD) from
# their median; at least MIN_OTHERS records elsewhere are needed to say.
OUTLIER_RANGE = (5, 95)
OUTLIER_Z = 3.5
MIN_OTHERS = 5


@dataclass
class Facts:
    shards: list[dict] = field(default_factory=list)  # featurize report.json, one per shard
    errors: pd.DataFrame = field(default_factory=pd.DataFrame)  # kind, message, record, file, shard
    summary: pd.DataFrame = field(default_factory=pd.DataFrame)  # one row per record/segment/signal
    outliers: list[dict] = field(default_factory=list)  # signal, stat, shard, value, range
    splits: dict | None = None  # split_metadata.json of Encode
    missing: list[str] = field(default_factory=list)  # what could not be read, and why


def _read(execution: Execution, uri: str) -> bytes | None:
    try:
        return execution.storage.read_bytes(uri)
    except Exception:  # noqa: BLE001 - absent or unreadable: the report says so, it does not fail
        return None


def _parquet(execution: Execution, uri: str) -> pd.DataFrame | None:
    data = _read(execution, uri)
    return pd.read_parquet(io.BytesIO(data)) if data else None


def _shard_parts(execution: Execution, uri: str) -> list[tuple[str, bytes]]:
    """(folder, report.json) of a Featurize output: the folder itself, or on several instances
    each `hosts/<host>/` folder (read_mode stream)."""
    report = _read(execution, join_uri(uri, REPORT_FILE))
    if report is not None:
        return [(uri, report)]
    hosts = join_uri(uri, HOSTS_FOLDER) + "/"
    folders = sorted({o.uri[len(hosts):].split("/", 1)[0] for o in execution.storage.list(hosts)})
    found = [(join_uri(uri, HOSTS_FOLDER, h), _read(execution, join_uri(uri, HOSTS_FOLDER, h, REPORT_FILE)))
             for h in folders]
    return [(folder, body) for folder, body in found if body is not None]


def _shard_facts(execution: Execution, step, uri: str, facts: Facts, summaries: list, errors: list) -> None:
    """One shard's report, errors and features (a fan-out stage's step)."""
    parts = _shard_parts(execution, uri)
    if not parts:
        facts.missing.append(f"{step.name}: no {REPORT_FILE} at {uri} (nor under {HOSTS_FOLDER}/<host>/)")
        return
    body = json.loads(parts[0][1]) if len(parts) == 1 else \
        merged_report(step.shard or step.name, [json.loads(r) for _, r in parts])
    facts.shards.append({"step": step.name, **body})
    shard = body.get(REPORT_SHARD) or step.shard  # an iteration's name has its index, not its shard
    for folder, _ in parts:
        shard_errors = _parquet(execution, join_uri(folder, ERRORS_FILE))
        if shard_errors is not None:
            errors.append(shard_errors.assign(shard=shard))
        features = _parquet(execution, join_uri(folder, FEATURES_FILE))
        if features is not None:
            summaries.append(features.assign(shard=shard))


def gather(execution: Execution, registry=None) -> Facts:
    """What each step's stage says the report reads (`Stage.report`), from its outputs."""
    from pipeline.stages import default_registry

    registry = registry or default_registry()
    facts = Facts()
    summaries, errors = [], []
    for step in execution.steps:
        uri = next(iter(step.outputs.values()), None)
        stage = registry.get(step.stage)
        if uri is None or stage is None or step.state not in ("Succeeded", "Cached", "Reused", "Failed"):
            continue
        reading = stage.report
        if reading.shard_reports:
            _shard_facts(execution, step, uri, facts, summaries, errors)
        if reading.summary_file:
            combined = _parquet(execution, join_uri(uri, reading.summary_file))
            if combined is not None:
                facts.summary = combined
        if reading.splits_file:
            found = [o.uri for o in execution.storage.list(uri.rstrip("/") + "/")
                     if o.uri.endswith(f"/{reading.splits_file}")]
            if found:
                facts.splits = json.loads(_read(execution, found[0]) or b"null")
    if facts.summary.empty and summaries:
        facts.summary = pd.concat(summaries, ignore_index=True)
    if "signal_normalised" not in facts.summary.columns and "signal" in facts.summary.columns:
        facts.summary = facts.summary.assign(signal_normalised=facts.summary["signal"])
    if errors:
        facts.errors = pd.concat(errors, ignore_index=True)
    facts.outliers = outlying_shards(facts.summary)
    return facts


def outlying_shards(summary: pd.DataFrame) -> list[dict]:
    """Per signal and statistic, the shards whose median is outside the other shards' range."""
    if summary.empty or "shard" not in summary.columns:
        return []
    low, high = OUTLIER_RANGE
    found = []
    for signal, rows in summary.groupby("signal_normalised"):
        for stat in SIGNAL_STATS:
            values = rows[["shard", stat]].dropna()
            for shard, mine in values.groupby("shard"):
                others = values.loc[values["shard"] != shard, stat]
                if len(others) < MIN_OTHERS:
                    continue
                lo, hi = others.quantile(low / 100), others.quantile(high / 100)
                median, centre = float(mine[stat].median()), float(others.median())
                spread = 1.4826 * float((others - centre).abs().median())
                far = abs(median - centre) > OUTLIER_Z * spread if spread > 0 else median != centre
                if (median < lo or median > hi) and far:
                    found.append({"signal": signal, "stat": stat, "shard": shard, "median": median,
                                  "range": (float(lo), float(hi))})
    return found


def error_kinds(errors: pd.DataFrame) -> list[dict]:
    """Per kind: its count and a few examples (shard, record, file, message), most frequent first."""
    if errors.empty or "kind" not in errors.columns:
        return []
    out = []
    for kind, rows in errors.groupby("kind"):
        examples = rows.head(EXAMPLES_PER_KIND).to_dict("records")
        out.append({"kind": kind, "count": len(rows), "examples": examples})
    return sorted(out, key=lambda k: (-k["count"], k["kind"]))
