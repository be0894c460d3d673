"""Labels of the encode stage: reading reconcile's labels.parquet, filtering, label maps, partial choice.

Label names are strings everywhere (JSON object keys are strings); label ids follow the sorted
names, so the same kept labels always give the same maps.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from steps.encode.errors import EncodeInputError

from steps.contract import LABELS_FILE


def read_labels(labels_dir: Path) -> pd.DataFrame:
    """reconcile's labels as a frame sorted by `artifact_id`, ids and labels as strings (null labels kept as NA)."""
    path = Path(labels_dir) / LABELS_FILE
    if not path.is_file():
        raise EncodeInputError(f"{LABELS_FILE} not found in {labels_dir}")
    frame = pd.read_parquet(path)
    missing = {"artifact_id", "label"} - set(frame.columns)
    if missing:
        raise EncodeInputError(f"{path} lacks column(s) {sorted(missing)}")
    frame["artifact_id"] = frame["artifact_id"].astype(str)
    frame["label"] = frame["label"].map(lambda v: pd.NA if pd.isna(v) else str(v)).astype("string")
    duplicated = frame["artifact_id"][frame["artifact_id"].duplicated()].unique().tolist()
    if duplicated:
        raise EncodeInputError(f"{path} lists artifact ids more than once: {duplicated[:20]}")
    return frame.sort_values("artifact_id", kind="stable").reset_index(drop=True)


@dataclass
class LabelDrops:
    """Artifacts left out by label, and why (for report.json)."""

    null_label: int = 0
    ignored: dict[str, int] = field(default_factory=dict)
    below_min_count: dict[str, int] = field(default_factory=dict)

    def as_dict(self, min_label_count: int) -> dict:
        return {
            "null_label": self.null_label,
            "ignored": self.ignored,
            "below_min_count": self.below_min_count,
            "min_label_count": min_label_count,
            "artifacts_dropped": self.null_label + sum(self.ignored.values()) + sum(self.below_min_count.values()),
        }


def _counts(labels: pd.Series) -> dict[str, int]:
    return {str(k): int(v) for k, v in sorted(labels.value_counts().items())}


def drop_ignored(frame: pd.DataFrame, ignored: list[str], drops: LabelDrops) -> pd.DataFrame:
    """Without null labels and the `ignored_labels`."""
    null = frame["label"].isna()
    drops.null_label = int(null.sum())
    frame = frame[~null]
    hit = frame["label"].isin(set(ignored))
    drops.ignored = _counts(frame.loc[hit, "label"])
    return frame[~hit].reset_index(drop=True)


def drop_rare(frame: pd.DataFrame, min_count: int, drops: LabelDrops) -> pd.DataFrame:
    """Without the labels that have fewer than `min_count` artifacts."""
    counts = frame["label"].value_counts()
    rare = set(counts[counts < min_count].index)
    hit = frame["label"].isin(rare)
    drops.below_min_count = _counts(frame.loc[hit, "label"])
    return frame[~hit].reset_index(drop=True)


def label_maps(labels: pd.Series) -> tuple[dict[str, int], dict[str, str]]:
    """(label2id, id2label) over the sorted distinct labels; id2label keys are strings, as JSON has them."""
    names = sorted(set(labels.tolist()))
    return {name: i for i, name in enumerate(names)}, {str(i): name for i, name in enumerate(names)}


def _unit_hash(seed: int, artifact_id: str) -> float:
    digest = hashlib.sha256(f"{seed}:{artifact_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def choose_partial(frame: pd.DataFrame, max_artifacts: int, seed: int) -> pd.DataFrame:
    """At most `max_artifacts` rows, the same for the same ids and seed whatever the row order.

    Each label's artifacts are ranked by a seeded hash of the id and placed at their quantile
    (rank + 0.5) / count; taking the lowest quantiles keeps label proportions close to the full
    dataset's, so even a small partial dataset sees every common label."""
    if len(frame) <= max_artifacts:
        return frame
    keyed = frame.assign(_h=[_unit_hash(seed, a) for a in frame["artifact_id"]])
    keyed["_q"] = (keyed.groupby("label")["_h"].rank(method="first") - 0.5) / keyed.groupby("label")["_h"].transform("size")
    chosen = keyed.sort_values(["_q", "_h"], kind="stable").head(max_artifacts)
    return chosen.drop(columns=["_h", "_q"]).sort_values("artifact_id", kind="stable").reset_index(drop=True)


def label_ids(labels: pd.Series, label2id: dict[str, int]) -> np.ndarray:
    return labels.map(label2id).to_numpy(dtype=np.int64)
