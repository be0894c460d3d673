"""The feature function of `stages.featurize`: the built-in WFDB summary plus a column of your own."""

from __future__ import annotations

from typing import Any

from steps.featurize.records import FeatureResult, RecordRef
from steps.featurize.summary import summarize_record


def summarize_with_range(record: RecordRef, **options: Any) -> FeatureResult:
    """One row per (record, segment, signal), as the built-in summary, plus `peak_to_peak`.

    `peak_to_peak` is the signal's range over the segment's valid samples (`max - min`, in the
    signal's physical units; NaN when the segment has no valid sample). `options` are
    `stages.featurize.feature_options`, passed on to the built-in (`window_samples`,
    `verify_checksum`). The built-in's error rows (a missing .dat, a bad header) are kept as they
    are, so a damaged record is reported, never fatal.
    """
    result = summarize_record(record, **options)
    for row in result.rows:
        row["peak_to_peak"] = row["max"] - row["min"]
    return result
