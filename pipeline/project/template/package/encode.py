"""`get_dataset_features` and `encode_data` of `stages.encode`: the built-in waveform recipe
(`steps.recipes.waveform`), with the feature column of features.py and short recordings left out.

Both take `stages.encode.recipe_options`: the built-in recipe's (`signals`, `statistics`,
`min_signals`) and this module's own `min_duration_s`.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import datasets

from steps.recipes import waveform

OWN_OPTIONS = {"min_duration_s"}
DEFAULT_MIN_DURATION_S = 30.0


def _builtin(options: Mapping[str, Any]) -> dict[str, Any]:
    """The options the built-in recipe knows (it rejects any other)."""
    return {k: v for k, v in options.items() if k not in OWN_OPTIONS}


def _signals(options: Mapping[str, Any]) -> list[str]:
    return list(options.get("signals", waveform.DEFAULT_SIGNALS))


def get_dataset_features(options: Mapping[str, Any]) -> datasets.Features:
    """The built-in columns (`features`, `mask`, `label`) plus `peak_to_peak`: one float per
    configured signal, in `signals` order (NaN where the record lacks the signal)."""
    features = waveform.get_dataset_features(_builtin(options))
    features["peak_to_peak"] = datasets.List(datasets.Value("float32"), length=len(_signals(options)))
    return features


def recording_seconds(rows: list[Mapping[str, Any]]) -> float:
    """The record's waveform time: the sum of its segments' durations (numerics rows left out)."""
    segments = {row["segment"]: row["duration_s"] for row in rows if not row.get("is_numerics")}
    return float(sum(s for s in segments.values() if s is not None and not math.isnan(s)))


def peak_to_peak(rows: list[Mapping[str, Any]], signals: list[str]) -> list[float]:
    """The largest `peak_to_peak` (features.py) of each signal over the record's segments."""
    best = {signal: math.nan for signal in signals}
    for row in rows:
        name, value = row.get("signal_normalised") or row.get("signal"), row.get("peak_to_peak")
        if name in best and not row.get("is_numerics") and value is not None and not math.isnan(value):
            best[name] = value if math.isnan(best[name]) else max(best[name], value)
    return [best[signal] for signal in signals]


def encode_data(instance: Mapping[str, Any], options: Mapping[str, Any]) -> dict | None:
    """The built-in vector and mask, the label id and `peak_to_peak`; None (left out, and counted
    in Encode's report as `encode_data.dropped_none`) when the record has less than
    `min_duration_s` seconds of waveforms (default 30) or too few signals for the built-in."""
    rows = instance["waveform_summary"] or []
    if recording_seconds(rows) < float(options.get("min_duration_s", DEFAULT_MIN_DURATION_S)):
        return None
    encoded = waveform.encode_data(instance, _builtin(options))
    if encoded is None:
        return None
    encoded["peak_to_peak"] = peak_to_peak(rows, _signals(options))
    return encoded
