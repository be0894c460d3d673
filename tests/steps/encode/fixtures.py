"""Generated inputs of the encode stage: reconcile's labels.parquet and artifact folders, combine's
waveform_summary.parquet, and a small WordLevel tokenizer built locally (nothing is downloaded)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers

WORDS = "heart rate rhythm sinus atrial fibrillation normal patient pressure flow lung wave signal noise".split()
SIGNALS = [("II", "ECG lead II", False), ("ABP", "ART", False), ("PLETH", "Pleth", False), ("RESP", "Resp", False), ("HR", "HR", True)]
STATS = ["mean", "std", "min", "max", "p05", "p25", "p50", "p75", "p95"]


def write_labels(folder: Path, artifact_ids: list[str], labels: list, **extra_columns) -> Path:
    """labels.parquet as reconcile writes it (plus `extra_columns`), rows in the given order."""
    folder.mkdir(parents=True, exist_ok=True)
    n = len(artifact_ids)
    frame = pd.DataFrame(
        {
            "artifact_id": artifact_ids,
            "label": labels,
            "site": [f"site{i % 3}" for i in range(n)],
            "n_files": [1] * n,
            "bytes": [100 + i for i in range(n)],
            "shard": [f"shard-{1 + i % 2:04d}" for i in range(n)],
            **extra_columns,
        }
    )
    frame.to_parquet(folder / "labels.parquet", index=False)
    return folder


def balanced_labels(n: int, names: tuple[str, ...] = ("afib", "normal", "other")) -> list[str]:
    return [names[i % len(names)] for i in range(n)]


def summary_rows(record: str, rng: np.random.Generator, segments: int = 2, signals=SIGNALS) -> list[dict]:
    """The summary rows of one record: every signal in each segment, as combine writes them."""
    rows = []
    for segment in range(segments):
        for normalised, raw, numerics in signals:
            values = np.sort(rng.normal(rng.uniform(-1, 80), rng.uniform(0.5, 5), 9))
            n_samples = int(rng.integers(500, 2000))
            n_valid = int(n_samples * rng.uniform(0.8, 1.0))
            rows.append(
                {
                    "group": "30", "artifact": record, "record": record, "segment": f"{record}_{segment + 1:04d}",
                    "signal": raw, "signal_normalised": normalised, "is_numerics": numerics,
                    "fs": 1.0 if numerics else 125.0, "units": "mV", "fmt": "80",
                    "n_samples": n_samples, "n_valid": n_valid, "frac_nan": 1 - n_valid / n_samples,
                    "duration_s": n_samples / (1.0 if numerics else 125.0),
                    "mean": float(values[4]), "std": float(values[8] - values[0]) / 4,
                    "min": float(values[0]), "max": float(values[8]),
                    **{p: float(values[i]) for i, p in zip((1, 2, 4, 6, 7), ("p05", "p25", "p50", "p75", "p95"))},
                }
            )
    return rows


def write_summary(folder: Path, rows: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_parquet(folder / "waveform_summary.parquet", index=False, compression="snappy")
    return folder


def write_documents(folder: Path, texts: dict[str, object]) -> Path:
    """`<folder>/<artifact_id>/raw_text.json` per artifact (the value is written as JSON)."""
    for artifact_id, text in texts.items():
        (folder / artifact_id).mkdir(parents=True, exist_ok=True)
        (folder / artifact_id / "raw_text.json").write_text(json.dumps(text))
    return folder


def random_text(rng: np.random.Generator, n_words: int) -> str:
    return " ".join(rng.choice(WORDS, n_words))


def build_tokenizer(path: Path) -> Path:
    """A WordLevel tokenizer over WORDS with [PAD]/[UNK]/[CLS]/[SEP], saved as `path` (tokenizer.json)."""
    tokenizer = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.WordLevelTrainer(special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]"])
    tokenizer.train_from_iterator([" ".join(WORDS)], trainer)
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)]
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(path))
    return path


# User functions the tests reference from settings as `tests.steps.encode.fixtures:<name>`.


def id_features():
    import datasets

    return datasets.Features({"label": datasets.Value("int64"), "length": datasets.Value("int32")})


def class_label_features():
    import datasets

    return datasets.Features({"label": datasets.ClassLabel(names=["y", "x"]), "length": datasets.Value("int32")})


def id_length(instance):
    """Drops artifacts whose id ends in an odd digit (None), encodes the others by id length."""
    if int(instance["artifact_id"][-1]) % 2:
        return None
    return {"label": instance["label_id"], "length": len(instance["artifact_id"])}


def wrong_keys(instance, options):
    return {"label": instance["label_id"], "unexpected": 1}


def raises(instance):
    raise RuntimeError("boom")


def always_none(instance):
    return None


def out_of_range_label(instance):
    return {"label": 99, "length": 1}
