"""Seeded train/valid/test splits, stratified by label where a label has enough rows.

A label is split on its own when it has at least 100 / min(percent) rows, so that every split
expects at least one of them; the rarer labels are pooled and split together. Within a group the
rows are shuffled with the seed and cut by largest-remainder rounding of the percentages. Each
split's rows keep the dataset order (sorted by artifact id), so the output does not depend on how
the rows were encoded.
"""

from __future__ import annotations

import math

import numpy as np


def allocate(n: int, percentages: dict[str, float]) -> dict[str, int]:
    """`n` rows cut by the percentages with largest-remainder rounding (ties go to the earlier split)."""
    exact = {name: n * pct / 100.0 for name, pct in percentages.items()}
    counts = {name: math.floor(value) for name, value in exact.items()}
    order = sorted(percentages, key=lambda name: -(exact[name] - counts[name]))
    for name in order[: n - sum(counts.values())]:
        counts[name] += 1
    return counts


def assign_splits(
    label_ids: np.ndarray, percentages: dict[str, float], seed: int
) -> tuple[dict[str, np.ndarray], list[int]]:
    """({split: sorted row positions}, stratified label ids) for rows labelled `label_ids`."""
    min_rows = math.ceil(100.0 / min(percentages.values()) - 1e-9)
    rng = np.random.default_rng(seed)
    labels, counts = np.unique(label_ids, return_counts=True)
    stratified = [int(label) for label, count in zip(labels, counts) if count >= min_rows]
    groups = [np.flatnonzero(label_ids == label) for label in stratified]
    pooled = np.flatnonzero(~np.isin(label_ids, stratified))
    if len(pooled):
        groups.append(pooled)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in percentages}
    for rows in groups:
        shuffled = rng.permutation(rows)
        start = 0
        for name, count in allocate(len(rows), percentages).items():
            parts[name].append(shuffled[start : start + count])
            start += count
    splits = {name: np.sort(np.concatenate(p)) if p else np.empty(0, np.int64) for name, p in parts.items()}
    return splits, stratified


def split_metadata(
    splits: dict[str, np.ndarray],
    label_ids: np.ndarray,
    id2label: dict[str, str],
    percentages: dict[str, float],
    seed: int,
    stratified: list[int],
) -> dict:
    """The content of split_metadata.json: counts per split and per label, and how they were made."""
    per_label = {
        name: {split: int(np.sum(label_ids[rows] == int(i))) for split, rows in splits.items()}
        for i, name in sorted(id2label.items(), key=lambda kv: int(kv[0]))
    }
    return {
        "seed": seed,
        "percentages": percentages,
        "rows": int(len(label_ids)),
        "counts": {split: int(len(rows)) for split, rows in splits.items()},
        "empty_splits": [split for split, rows in splits.items() if not len(rows)],
        "per_label": per_label,
        "stratified_labels": [id2label[str(i)] for i in stratified],
        "pooled_labels": [id2label[str(i)] for i in np.unique(label_ids) if int(i) not in set(stratified)],
    }
