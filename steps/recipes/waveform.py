"""Waveform recipe: one fixed-length float vector per WFDB record from combine's waveform summary.

Settings: `use_features: true`, `encode_data: steps.recipes.waveform:encode_data`,
`get_dataset_features: steps.recipes.waveform:get_dataset_features`. `recipe_options`:

- `signals`: normalised signal names in vector order; `numerics:NAME` names a numerics signal
  (combine keeps numerics apart from waveforms of the same name, e.g. `numerics:RESP` in breaths/min).
- `statistics`: per-signal statistics in vector order, from `STATISTICS`.
- `min_signals`: a record with fewer of the configured signals present is dropped (None).

The vector is signal-major: `features[s * len(statistics) + k]` is statistic k of signal s
(`feature_names(options)` lists them); a missing signal is NaN with `mask[s] = 0`.

A signal recorded in several segments is pooled, weighting each segment by its valid samples
(its recorded time without NaN): mean and standard deviation are exact pooled values, min and max
exact, percentiles the weighted mean of the segments' percentiles (an approximation: exact ones
would need the samples), `frac_nan` and the counts over all segments.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import datasets

from steps.recipes import check_options

DEFAULT_SIGNALS = ("II", "V", "AVR", "ABP", "PLETH", "RESP")
DEFAULT_STATISTICS = ("mean", "std", "min", "max", "p05", "p25", "p50", "p75", "p95", "frac_nan")
PERCENTILES = ("p05", "p25", "p50", "p75", "p95")
STATISTICS = ("mean", "std", "min", "max", *PERCENTILES, "frac_nan", "duration_s", "n_samples", "n_valid", "fs")
NUMERICS_PREFIX = "numerics:"
OPTIONS = {"signals", "statistics", "min_signals"}


def _signals(options: Mapping[str, Any]) -> list[str]:
    return list(options.get("signals", DEFAULT_SIGNALS))


def _statistics(options: Mapping[str, Any]) -> list[str]:
    stats = list(options.get("statistics", DEFAULT_STATISTICS))
    unknown = sorted(set(stats) - set(STATISTICS))
    if unknown:
        raise ValueError(f"waveform recipe: unknown statistics {unknown}; known: {list(STATISTICS)}")
    return stats


def feature_names(options: Mapping[str, Any]) -> list[str]:
    """`<signal>.<statistic>` for every position of the feature vector."""
    return [f"{signal}.{stat}" for signal in _signals(options) for stat in _statistics(options)]


def get_dataset_features(options: Mapping[str, Any]) -> datasets.Features:
    check_options(options, OPTIONS, "waveform recipe")
    n_signals, n_stats = len(_signals(options)), len(_statistics(options))
    if not n_signals or not n_stats:
        raise ValueError("waveform recipe: `signals` and `statistics` must not be empty")
    return datasets.Features(
        {
            "features": datasets.List(datasets.Value("float32"), length=n_signals * n_stats),
            "mask": datasets.List(datasets.Value("int8"), length=n_signals),
            "label": datasets.Value("int64"),
        }
    )


def _key(row: Mapping[str, Any]) -> str:
    name = row.get("signal_normalised") or row.get("signal")
    return f"{NUMERICS_PREFIX}{name}" if row.get("is_numerics") else str(name)


def _num(value: Any) -> float:
    return math.nan if value is None else float(value)


def _finite(value: float) -> bool:
    return value == value and value not in (math.inf, -math.inf)


def pool_segments(rows: list[Mapping[str, Any]]) -> dict[str, float]:
    """The statistics of one signal over its segments' summary rows (see the module docstring).

    Plain Python, not numpy: a signal has a handful of segments, where array set-up costs more
    than the arithmetic."""
    n_valid = [_num(r.get("n_valid")) for r in rows]
    n_samples = [_num(r.get("n_samples")) for r in rows]
    durations = [_num(r.get("duration_s")) for r in rows]
    fs = [_num(r.get("fs")) for r in rows]
    out: dict[str, float] = {
        "n_valid": sum(v for v in n_valid if _finite(v)),
        "n_samples": sum(v for v in n_samples if _finite(v)),
        "duration_s": sum(v for v in durations if _finite(v)),
    }
    out["frac_nan"] = 1.0 - out["n_valid"] / out["n_samples"] if out["n_samples"] > 0 else math.nan
    seconds = out["duration_s"]
    out["fs"] = sum(f * d for f, d in zip(fs, durations)) / seconds if seconds > 0 and all(map(_finite, fs)) else math.nan
    used = [(v, r) for v, r in zip(n_valid, rows) if _finite(v) and v > 0]
    total = sum(v for v, _ in used)
    if total <= 0:
        out.update({s: math.nan for s in ("mean", "std", "min", "max", *PERCENTILES)})
        return out
    for stat in ("mean", *PERCENTILES):
        out[stat] = sum(v * _num(r.get(stat)) for v, r in used) / total
    second = sum(v * (_num(r.get("std")) ** 2 + _num(r.get("mean")) ** 2) for v, r in used) / total
    out["std"] = math.sqrt(max(second - out["mean"] ** 2, 0.0)) if _finite(second) else math.nan
    out["min"] = min(_num(r.get("min")) for _, r in used)
    out["max"] = max(_num(r.get("max")) for _, r in used)
    return out


def encode_record(rows: list[Mapping[str, Any]], signals: list[str], statistics: list[str]) -> tuple[list[float], list[int]]:
    """(feature vector, presence mask) of one record's summary rows."""
    by_signal: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        by_signal.setdefault(_key(row), []).append(row)
    vector: list[float] = []
    mask: list[int] = []
    for signal in signals:
        found = by_signal.get(signal)
        mask.append(1 if found else 0)
        pooled = pool_segments(found) if found else {}
        vector.extend(pooled.get(stat, math.nan) for stat in statistics)
    return vector, mask


def encode_data(instance: Mapping[str, Any], options: Mapping[str, Any]) -> dict | None:
    """The record's vector, mask and label id; None when fewer than `min_signals` signals are present."""
    vector, mask = encode_record(instance["waveform_summary"] or [], _signals(options), _statistics(options))
    if sum(mask) < int(options.get("min_signals", 1)):
        return None
    return {"features": vector, "mask": mask, "label": instance["label_id"]}
