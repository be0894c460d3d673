"""Outlying shards and error kinds, on frames made here (no run needed)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.report.facts import error_kinds, outlying_shards


def summary(shift: float) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = [{"shard": f"shard-{s}", "signal_normalised": "ABP", "mean": 85 + rng.normal(0, 2) + (shift if s == 3 else 0),
             "std": 20 + rng.normal(0, 1), "frac_nan": 0.05} for s in (1, 2, 3) for _ in range(20)]
    return pd.DataFrame(rows)


def test_a_shifted_shard_is_flagged_on_that_statistic_only():
    found = outlying_shards(summary(shift=30))
    assert [(o["shard"], o["stat"]) for o in found] == [("shard-3", "mean")]


def test_no_shard_is_flagged_when_they_agree():
    assert outlying_shards(summary(shift=0)) == []


def test_error_kinds_are_counted_most_frequent_first_with_examples():
    errors = pd.DataFrame({"kind": ["bad_header", "missing_data_file", "missing_data_file", "missing_data_file",
                                    "missing_data_file"], "message": list("abcde")})
    kinds = error_kinds(errors)
    assert [(k["kind"], k["count"]) for k in kinds] == [("missing_data_file", 4), ("bad_header", 1)]
    assert [e["message"] for e in kinds[0]["examples"]] == ["b", "c", "d"]
