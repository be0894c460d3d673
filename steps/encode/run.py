"""The encode stage: reconciled artifacts (and combined features) + labels -> an encoded DatasetDict.

Order of work (each step reported in report.json):
1. labels.parquet: null and `ignored_labels` dropped;
2. model inputs checked per artifact (files, summary rows): `fail` or `drop` the ones missing some;
3. labels under `min_label_count` dropped; label maps from what is left (sorted names);
4. `partial_dataset`: a deterministic subset of at most `partial_max_artifacts` (same label maps);
5. `Dataset.from_dict` -> `map(batched=True, num_proc, features, remove_columns)` over the user's
   `encode_data` (None drops the instance);
6. seeded, stratified splits; `save_to_disk`, label maps, split_metadata.json, report.json.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pyarrow as pa

from steps.contract import (ENCODED_DATA_DIRS, ID2LABEL_FILE, LABEL2ID_FILE, PARTIAL_DATASET, REPORT_FILE,
                            SPLIT_METADATA_FILE)
from steps.encode import inputs, labels
from steps.encode.errors import EncodeError, EncodeInputError
from steps.encode.mapping import ARTIFACT_ID, LABEL_ID, EncodeBatch, dataset_features, resolve
from steps.encode.settings import EncodeSettings
from steps.encode.splits import assign_splits, split_metadata

INSTANCE_COLUMNS = ("artifact_id", "label", "label_id", inputs.SUMMARY_COLUMN)
MISSING_SAMPLE = 50


def available_cpus() -> int:
    """vCPUs this process may use (the container's, not the host's, where affinity says so)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    tmp.replace(path)


def _check_names(settings: EncodeSettings, label_columns: list[str]) -> None:
    taken = set(INSTANCE_COLUMNS)
    clash = sorted(taken & set(settings.model_input_files))
    if clash:
        raise EncodeInputError(f"model_input_files {clash} clash with the instance columns {sorted(taken)}")
    clash = sorted(({"label_id", inputs.SUMMARY_COLUMN} | set(settings.model_input_files)) & set(label_columns))
    if clash:
        raise EncodeInputError(f"labels.parquet columns {clash} clash with instance columns or model_input_files")


def _output_features(
    user: datasets.Features, instance: datasets.Features, id2label: dict[str, str], keep: list[str]
) -> datasets.Features:
    """The user's features, an integer `label` as ClassLabel, plus kept and internal columns."""
    out = dict(user)
    names = [id2label[str(i)] for i in range(len(id2label))]
    label = out.get("label")
    if isinstance(label, datasets.Value) and pa.types.is_integer(label.pa_type):
        out["label"] = datasets.ClassLabel(names=names)
    elif isinstance(label, datasets.ClassLabel) and label.names != names:
        raise EncodeInputError(f"get_dataset_features declares label names {label.names}; id2label.json has {names}")
    for column in keep:
        if column in out:
            raise EncodeInputError(f"keep_columns {column!r} is also a feature returned by encode_data")
        if column not in instance:
            raise EncodeInputError(f"keep_columns {column!r} is not an instance column ({sorted(instance)})")
        out[column] = instance[column]
    out[ARTIFACT_ID] = datasets.Value("string")
    out[LABEL_ID] = datasets.Value("int64")
    return datasets.Features(out)


def _instance_columns(frame, label_ids: np.ndarray, file_cols: dict[str, list[str]], summary: pa.Array | None) -> dict:
    """Columns of `Dataset.from_dict`, rows taken by the frame's `_pos` (position in the checked list)."""
    positions = frame["_pos"].to_numpy()
    table = pa.Table.from_pandas(frame.drop(columns=["_pos"]), preserve_index=False)
    mapping: dict[str, Any] = {name: table[name].combine_chunks() for name in table.column_names}
    mapping["label_id"] = pa.array(label_ids, type=pa.int64())
    for name, paths in file_cols.items():
        mapping[name] = pa.array([paths[p] for p in positions], type=pa.string())
    if summary is not None:
        mapping[inputs.SUMMARY_COLUMN] = summary.take(pa.array(positions, type=pa.int64()))
    return mapping


def run_encode(
    output_dir: Path,
    encoded_data_dir: str,
    settings: EncodeSettings,
    labels_dir: Path | None,
    artifacts_dir: Path | None = None,
    features_dir: Path | None = None,
) -> dict:
    """Encode, split and save under `<output_dir>/<encoded_data_dir>/`; returns the report (also written there).

    Raises EncodeInputError for bad settings or inputs, EncodeError when encoding fails; report.json
    is written either way once the output folder is known."""
    if encoded_data_dir not in ENCODED_DATA_DIRS:
        raise EncodeInputError(f"--encoded-data-dir must be one of {ENCODED_DATA_DIRS}, got {encoded_data_dir!r}")
    target = Path(output_dir) / encoded_data_dir
    if target.exists():
        shutil.rmtree(target)  # a rerun replaces the dataset whole: no stale split folders
    target.mkdir(parents=True)
    report: dict[str, Any] = {"status": "running", "encoded_data_dir": encoded_data_dir}
    try:
        _run(target, encoded_data_dir == PARTIAL_DATASET, settings, labels_dir, artifacts_dir, features_dir, report)
        report["status"] = "succeeded"
        return report
    except Exception as exc:
        report["status"] = "failed"
        report["error"] = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        write_json(target / REPORT_FILE, report)


def _run(target, partial, settings, labels_dir, artifacts_dir, features_dir, report) -> None:
    started = time.perf_counter()
    if labels_dir is None:
        raise EncodeInputError("the encode stage needs --labels (the reconcile output holding labels.parquet)")
    if settings.model_input_files and artifacts_dir is None:
        raise EncodeInputError("model_input_files are configured but --artifacts was not given")
    if settings.use_features and features_dir is None:
        raise EncodeInputError("use_features is true but --features (the combine output) was not given")
    options = dict(settings.recipe_options)
    user_features = dataset_features(settings.get_dataset_features, options)
    resolve(settings.encode_data)  # fail before any worker starts

    dataset, id2label = _instances(settings, labels_dir, artifacts_dir, features_dir, partial, report)
    encoded = _encode(dataset, settings, options, user_features, id2label, report)
    _save(target, encoded, settings, id2label, report)
    seconds = time.perf_counter() - started
    encode_seconds = report["seconds"]["encode"]
    report["seconds"]["total"] = round(seconds, 3)
    report["rows_per_second"] = {
        "encode": round(len(dataset) / encode_seconds, 1) if encode_seconds > 0 else None,
        "total": round(len(dataset) / seconds, 1) if seconds > 0 else None,
    }


def _instances(settings, labels_dir, artifacts_dir, features_dir, partial, report) -> tuple[datasets.Dataset, dict]:
    """Steps 1-4 of the module docstring: the instance dataset and id2label."""
    frame = labels.read_labels(labels_dir)
    _check_names(settings, list(frame.columns))
    report["artifacts_in_labels"] = len(frame)
    drops = labels.LabelDrops()
    frame = labels.drop_ignored(frame, settings.ignored_labels, drops)

    ids = frame["artifact_id"].tolist()
    file_cols, missing = inputs.file_columns(artifacts_dir, ids, settings.model_input_files) if settings.model_input_files else ({}, {})
    summary = None
    if settings.use_features:
        summary, no_rows = inputs.summary_column(inputs.read_summary(features_dir), ids)
        for artifact_id in no_rows:
            missing.setdefault(artifact_id, []).append(inputs.SUMMARY_FILE)
    missing = dict(sorted(missing.items()))
    report["missing_inputs"] = {"policy": settings.missing_inputs, "artifacts": len(missing), "by_artifact": missing}
    if missing and settings.missing_inputs == "fail":
        first = list(missing.items())[:MISSING_SAMPLE]
        raise EncodeInputError(
            f"{len(missing)} artifact(s) miss model inputs (missing_inputs: fail); first {len(first)}: {dict(first)}"
        )
    frame = frame.assign(_pos=np.arange(len(frame)))[~frame["artifact_id"].isin(missing.keys()).to_numpy()]
    frame = labels.drop_rare(frame, settings.min_label_count, drops)
    report["labels_dropped"] = drops.as_dict(settings.min_label_count)
    label2id, id2label = labels.label_maps(frame["label"])
    if partial:
        before = len(frame)
        frame = labels.choose_partial(frame, settings.partial_max_artifacts, settings.seed)
        report["partial"] = {"max_artifacts": settings.partial_max_artifacts, "eligible": before, "chosen": len(frame)}
    if frame.empty:
        raise EncodeError("no artifacts left to encode after label filtering and missing inputs")
    label_ids = labels.label_ids(frame["label"], label2id)
    return datasets.Dataset.from_dict(_instance_columns(frame, label_ids, file_cols, summary)), id2label


def _encode(dataset, settings, options, user_features, id2label, report) -> datasets.Dataset:
    """Step 5: the batched map over `encode_data`; None results are dropped and counted."""
    keep = list(settings.keep_columns)
    features = _output_features(user_features, dataset.features, id2label, keep)
    label_count = len(id2label) if isinstance(features.get("label"), datasets.ClassLabel) else None
    num_proc = min(settings.num_proc or available_cpus(), len(dataset))
    started = time.perf_counter()
    encoded = dataset.map(
        EncodeBatch(settings.encode_data, options, list(user_features), keep, label_count),
        batched=True,
        batch_size=settings.batch_size,
        num_proc=num_proc if num_proc > 1 else None,
        features=features,
        remove_columns=dataset.column_names,
        desc="encode",
    )
    report["seconds"] = {"encode": round(time.perf_counter() - started, 3)}
    kept_ids = set(encoded.data.column(ARTIFACT_ID).to_pylist())
    dropped = [a for a in dataset.data.column("artifact_id").to_pylist() if a not in kept_ids]
    report["encode_data"] = {
        "rows_in": len(dataset),
        "rows_out": len(encoded),
        "dropped_none": len(dropped),
        "dropped_artifact_ids": dropped,
        "num_proc": num_proc,
        "batch_size": settings.batch_size,
    }
    if len(encoded) == 0:
        raise EncodeError("encode_data returned None for every artifact")
    return encoded


def _save(target: Path, encoded: datasets.Dataset, settings: EncodeSettings, id2label: dict, report: dict) -> None:
    """Step 6: splits, save_to_disk, label maps, split metadata."""
    row_labels = encoded.data.column(LABEL_ID).to_numpy()
    percentages = settings.splits.nonzero()
    splits, stratified = assign_splits(row_labels, percentages, settings.seed)
    encoded = encoded.remove_columns([ARTIFACT_ID, LABEL_ID])
    # An empty split is left out of the DatasetDict: datasets saves it without a data file and
    # then cannot load the dict back. split_metadata.json still lists it with its 0 rows.
    dataset_dict = datasets.DatasetDict({name: encoded.select(rows) for name, rows in splits.items() if len(rows)})
    dataset_dict.save_to_disk(str(target))
    write_json(target / LABEL2ID_FILE, {name: int(i) for i, name in id2label.items()})
    write_json(target / ID2LABEL_FILE, id2label)
    metadata = split_metadata(splits, row_labels, id2label, percentages, settings.seed, stratified)
    write_json(target / SPLIT_METADATA_FILE, metadata)
    report["rows_per_split"] = metadata["counts"]
    report["labels"] = len(id2label)
