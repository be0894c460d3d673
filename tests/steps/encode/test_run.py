"""The encode stage end to end on generated inputs: labels, missing inputs, user functions, splits,
partial datasets, processes, the entry's exit codes. Recipe details are in test_recipes.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from steps.encode import EncodeError, EncodeInputError, EncodeSettings, run_encode
from steps.encode.__main__ import main
from steps.encode.splits import allocate, assign_splits
from steps.settings_file import write_settings
from tests.steps.encode import fixtures as fx
from tests.conftest import ROOT

FIXTURES = "tests.steps.encode.fixtures"
DOCS = {
    "get_dataset_features": "steps.recipes.documents:get_dataset_features",
    "encode_data": "steps.recipes.documents:encode_data",
    "use_features": False,
    "model_input_files": ["raw_text.json"],
}
USER = {"get_dataset_features": f"{FIXTURES}:id_features", "encode_data": f"{FIXTURES}:id_length", "use_features": False}


@pytest.fixture
def waveforms(tmp_path: Path) -> Path:
    """60 records over three labels, each with two segments of five signals."""
    rng = np.random.default_rng(1)
    ids = [f"3{i:06d}" for i in range(60)]
    fx.write_labels(tmp_path / "labels", ids, fx.balanced_labels(60))
    fx.write_summary(tmp_path / "features", [row for a in ids for row in fx.summary_rows(a, rng)])
    return tmp_path


@pytest.fixture
def documents(tmp_path: Path) -> Path:
    """40 documents over two labels, and a local tokenizer."""
    rng = np.random.default_rng(2)
    ids = [f"doc{i:03d}" for i in range(40)]
    fx.write_labels(tmp_path / "labels", ids, fx.balanced_labels(40, ("billing", "claims")))
    fx.write_documents(tmp_path / "artifacts", {a: {"text": fx.random_text(rng, int(rng.integers(3, 30)))} for a in ids})
    fx.build_tokenizer(tmp_path / "tokenizer" / "tokenizer.json")
    return tmp_path


def run(root: Path, name: str = "full_dataset", **settings) -> dict:
    return run_encode(
        root / "out", name, EncodeSettings(**settings), root / "labels", root / "artifacts", root / "features"
    )


def read(root: Path, name: str = "full_dataset") -> tuple[datasets.DatasetDict, dict]:
    folder = root / "out" / name
    files = ("label2id", "id2label", "split_metadata", "report")
    return datasets.load_from_disk(str(folder)), {f: json.loads((folder / f"{f}.json").read_text()) for f in files}


def rows_by_artifact(dataset_dict: datasets.DatasetDict) -> dict[str, dict]:
    return {row["artifact_id"]: row for split in dataset_dict.values() for row in split}


class TestValidEncode:
    def test_waveforms_end_to_end_label_ids_agree_with_maps(self, waveforms):
        report = run(waveforms, num_proc=1)
        dataset_dict, meta = read(waveforms)
        assert list(dataset_dict) == ["train", "valid", "test"]
        assert meta["label2id"] == {"afib": 0, "normal": 1, "other": 2}
        assert meta["id2label"] == {"0": "afib", "1": "normal", "2": "other"}
        truth = pd.read_parquet(waveforms / "labels" / "labels.parquet").set_index("artifact_id")["label"]
        rows = rows_by_artifact(dataset_dict)
        assert sorted(rows) == sorted(truth.index)
        for artifact_id, row in rows.items():
            assert meta["id2label"][str(row["label"])] == truth[artifact_id]
            assert meta["label2id"][truth[artifact_id]] == row["label"]
        assert dataset_dict["train"].features["label"].names == ["afib", "normal", "other"]
        assert report["status"] == "succeeded" and meta["report"]["rows_per_split"] == {"train": 48, "valid": 6, "test": 6}
        assert meta["report"]["rows_per_second"]["encode"] > 0

    def test_documents_end_to_end(self, documents):
        run(documents, **DOCS, recipe_options={"tokenizer": str(documents / "tokenizer"), "max_length": 12})
        dataset_dict, meta = read(documents)
        train = dataset_dict["train"]
        assert train.features["input_ids"].length == 12
        assert all(len(ids) == 12 for ids in train["input_ids"])
        assert meta["label2id"] == {"billing": 0, "claims": 1}
        assert sum(meta["split_metadata"]["counts"].values()) == 40

    def test_label_filtering_ignored_min_count_and_null_are_reported(self, tmp_path):
        labels = ["a"] * 6 + ["b"] * 6 + ["rare"] * 2 + ["noise"] * 5 + [None]
        ids = [f"x{i:02d}0" for i in range(len(labels))]  # even last digit: id_length keeps all
        fx.write_labels(tmp_path / "labels", ids, labels)
        run(tmp_path, **USER, ignored_labels=["noise"], min_label_count=3, num_proc=1)
        dataset_dict, meta = read(tmp_path)
        assert meta["label2id"] == {"a": 0, "b": 1}
        dropped = meta["report"]["labels_dropped"]
        assert dropped["ignored"] == {"noise": 5} and dropped["below_min_count"] == {"rare": 2}
        assert dropped["null_label"] == 1 and dropped["artifacts_dropped"] == 8
        assert sum(len(s) for s in dataset_dict.values()) == 12

    def test_none_from_encode_data_drops_and_counts(self, tmp_path):
        ids = [f"a{i:03d}" for i in range(30)]
        fx.write_labels(tmp_path / "labels", ids, fx.balanced_labels(30))
        run(tmp_path, **USER, num_proc=1)
        dataset_dict, meta = read(tmp_path)
        odd = [a for a in ids if int(a[-1]) % 2]
        assert meta["report"]["encode_data"]["dropped_none"] == 15
        assert meta["report"]["encode_data"]["dropped_artifact_ids"] == odd
        assert not set(odd) & set(rows_by_artifact(dataset_dict))
        assert sum(meta["split_metadata"]["counts"].values()) == 15

    def test_missing_inputs_dropped_and_reported_by_id(self, documents):
        (documents / "artifacts" / "doc003" / "raw_text.json").unlink()
        (documents / "artifacts" / "doc017" / "raw_text.json").unlink()
        run(documents, **DOCS, missing_inputs="drop", recipe_options={"tokenizer": str(documents / "tokenizer")}, num_proc=1)
        dataset_dict, meta = read(documents)
        missing = meta["report"]["missing_inputs"]
        assert missing["by_artifact"] == {"doc003": ["raw_text.json"], "doc017": ["raw_text.json"]}
        assert sum(len(s) for s in dataset_dict.values()) == 38

    def test_missing_summary_rows_count_as_missing_inputs(self, waveforms):
        summary = pd.read_parquet(waveforms / "features" / "waveform_summary.parquet")
        summary[summary["record"] != "3000007"].to_parquet(waveforms / "features" / "waveform_summary.parquet")
        run(waveforms, missing_inputs="drop", num_proc=1)
        _, meta = read(waveforms)
        assert meta["report"]["missing_inputs"]["by_artifact"] == {"3000007": ["waveform_summary.parquet"]}

    def test_one_and_two_processes_give_identical_output(self, waveforms):
        reports = []
        for num_proc in (1, 2):
            settings = EncodeSettings(num_proc=num_proc, batch_size=7)  # several batches per process
            out = waveforms / f"out{num_proc}"
            report = run_encode(out, "full_dataset", settings, waveforms / "labels", None, waveforms / "features")
            assert report["encode_data"].pop("num_proc") == num_proc
            reports.append({k: v for k, v in report.items() if k not in ("seconds", "rows_per_second")})
        assert reports[0] == reports[1]
        files = sorted(p.relative_to(waveforms / "out1") for p in (waveforms / "out1").rglob("*") if p.is_file())
        assert len([f for f in files if f.suffix == ".arrow"]) == 3
        for name in files:
            if name.name != "report.json":  # seconds differ
                assert (waveforms / "out1" / name).read_bytes() == (waveforms / "out2" / name).read_bytes(), name

    def test_partial_dataset_is_capped_deterministic_and_keeps_full_maps(self, waveforms):
        run(waveforms, "partial_dataset", partial_max_artifacts=15, num_proc=1)
        dataset_dict, meta = read(waveforms, "partial_dataset")
        chosen = sorted(rows_by_artifact(dataset_dict))
        assert len(chosen) == 15 and meta["report"]["partial"] == {"max_artifacts": 15, "eligible": 60, "chosen": 15}
        assert meta["label2id"] == {"afib": 0, "normal": 1, "other": 2}
        assert sorted(meta["split_metadata"]["per_label"]) == ["afib", "normal", "other"]
        assert {sum(c.values()) for c in meta["split_metadata"]["per_label"].values()} == {5}  # proportional
        labels = pd.read_parquet(waveforms / "labels" / "labels.parquet")
        labels.iloc[::-1].to_parquet(waveforms / "labels" / "labels.parquet")  # row order must not matter
        run(waveforms, "partial_dataset", partial_max_artifacts=15, num_proc=1)
        assert sorted(rows_by_artifact(read(waveforms, "partial_dataset")[0])) == chosen

    def test_rerun_replaces_the_dataset(self, waveforms):
        run(waveforms, num_proc=1)
        run(waveforms, num_proc=1, splits={"train": 100, "valid": 0, "test": 0})
        dataset_dict, meta = read(waveforms)
        assert list(dataset_dict) == ["train"] and not (waveforms / "out" / "full_dataset" / "valid").exists()

    def test_tiny_dataset_leaves_empty_splits_out_and_loads(self, tmp_path):
        fx.write_labels(tmp_path / "labels", ["a0", "a2"], ["x", "y"])
        run(tmp_path, **USER, num_proc=1)
        dataset_dict, meta = read(tmp_path)
        assert list(dataset_dict) == ["train"] and len(dataset_dict["train"]) == 2
        assert meta["split_metadata"]["empty_splits"] == ["valid", "test"]
        assert meta["split_metadata"]["counts"] == {"train": 2, "valid": 0, "test": 0}

    def test_entry_runs_with_a_settings_file(self, documents):
        settings = {**DOCS, "recipe_options": {"tokenizer": str(documents / "tokenizer"), "max_length": 8}, "num_proc": 1}
        write_settings(documents / "encode.json", "encode", settings)
        args = ["--output", documents / "out", "--encoded-data-dir", "full_dataset", "--labels", documents / "labels"]
        args += ["--artifacts", documents / "artifacts", "--settings", documents / "encode.json"]
        done = subprocess.run(
            [sys.executable, "-m", "steps.encode", *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        assert "rows_per_split" in done.stdout
        assert len(read(documents)[0]["train"][0]["input_ids"]) == 8

    def test_help_documents_every_argument(self, capsys):
        assert main(["--help"]) == 0
        text = capsys.readouterr().out
        for flag in ("--output", "--encoded-data-dir", "--labels", "--artifacts", "--features", "--settings"):
            assert flag in text


class TestValidSplits:
    def test_allocate_uses_largest_remainders(self):
        assert allocate(10, {"train": 80, "valid": 10, "test": 10}) == {"train": 8, "valid": 1, "test": 1}
        assert allocate(7, {"train": 80, "valid": 10, "test": 10}) == {"train": 5, "valid": 1, "test": 1}
        assert sum(allocate(1234, {"train": 70, "valid": 15, "test": 15}).values()) == 1234

    def test_stratified_by_label_seeded_and_rare_labels_pooled(self):
        label_ids = np.array([0] * 50 + [1] * 30 + [2] * 4 + [3] * 3)
        pct = {"train": 80.0, "valid": 10.0, "test": 10.0}
        splits, stratified = assign_splits(label_ids, pct, seed=7)
        assert stratified == [0, 1]
        assert [int(np.sum(label_ids[splits[s]] == 0)) for s in pct] == [40, 5, 5]
        assert [int(np.sum(label_ids[splits[s]] == 1)) for s in pct] == [24, 3, 3]
        assert sorted(np.concatenate(list(splits.values())).tolist()) == list(range(len(label_ids)))
        again, _ = assign_splits(label_ids, pct, seed=7)
        other, _ = assign_splits(label_ids, pct, seed=8)
        assert all(np.array_equal(splits[s], again[s]) for s in pct)
        assert not all(np.array_equal(splits[s], other[s]) for s in pct)

    def test_split_metadata_counts_per_split_and_label(self, waveforms):
        run(waveforms, num_proc=1, seed=3)
        dataset_dict, meta = read(waveforms)
        split_meta = meta["split_metadata"]
        assert split_meta["counts"] == {name: len(split) for name, split in dataset_dict.items()}
        for name, split in dataset_dict.items():
            names = split.features["label"].names
            counts = pd.Series([names[i] for i in split["label"]]).value_counts().to_dict()
            assert {label: c[name] for label, c in split_meta["per_label"].items() if c[name]} == counts
        assert split_meta["stratified_labels"] == ["afib", "normal", "other"] and split_meta["seed"] == 3


class TestInvalidEncode:
    def test_missing_inputs_fail_with_exit_2_and_ids_in_report(self, documents):
        (documents / "artifacts" / "doc005" / "raw_text.json").unlink()
        settings = {**DOCS, "recipe_options": {"tokenizer": str(documents / "tokenizer")}}
        write_settings(documents / "encode.json", "encode", settings)
        args = ["--output", documents / "out", "--encoded-data-dir", "full_dataset", "--labels", documents / "labels"]
        code = main([*map(str, args), "--artifacts", str(documents / "artifacts"), "--settings", str(documents / "encode.json")])
        assert code == 2
        report = json.loads((documents / "out" / "full_dataset" / "report.json").read_text())
        assert report["status"] == "failed" and "doc005" in report["error"]
        assert report["missing_inputs"]["by_artifact"] == {"doc005": ["raw_text.json"]}

    @pytest.mark.parametrize(
        "settings, message",
        [
            ({"encode_data": "tests.steps.nowhere:f"}, "cannot import"),
            ({"encode_data": f"{FIXTURES}:no_such_function"}, "no function"),
            ({"get_dataset_features": f"{FIXTURES}:raises"}, "failed"),
            ({"model_input_files": ["label_id"], "use_features": False}, "clash"),
            ({"keep_columns": ["nonexistent"]}, "keep_columns"),
            ({"get_dataset_features": f"{FIXTURES}:class_label_features"}, "label names"),
        ],
    )
    def test_bad_functions_and_columns_fail_before_encoding(self, tmp_path, settings, message):
        fx.write_labels(tmp_path / "labels", ["a0", "a2"], ["x", "y"])
        merged = {**USER, **settings}
        with pytest.raises(EncodeInputError, match=message):
            run(tmp_path, **merged)

    @pytest.mark.parametrize("num_proc", [1, 2])
    def test_encode_data_errors_name_the_artifact(self, tmp_path, num_proc):
        fx.write_labels(tmp_path / "labels", ["a0", "a2", "a4"], ["x", "y", "x"])
        with pytest.raises(EncodeError, match="raised on artifact 'a0'.*boom"):
            run(tmp_path, **{**USER, "encode_data": f"{FIXTURES}:raises"}, num_proc=num_proc)
        with pytest.raises(EncodeError, match=r"returned \['label', 'unexpected'\]"):
            run(tmp_path, **{**USER, "encode_data": f"{FIXTURES}:wrong_keys"}, num_proc=1)

    def test_nothing_left_exits_1(self, tmp_path):
        fx.write_labels(tmp_path / "labels", ["a0", "a2"], ["x", "y"])
        write_settings(tmp_path / "s.json", "encode", {**USER, "encode_data": f"{FIXTURES}:always_none"})
        args = ["--output", tmp_path / "out", "--encoded-data-dir", "full_dataset", "--labels", tmp_path / "labels"]
        assert main([*map(str, args), "--settings", str(tmp_path / "s.json")]) == 1

    def test_label_outside_the_maps_fails(self, tmp_path):
        fx.write_labels(tmp_path / "labels", ["a0", "a2"], ["x", "y"])
        with pytest.raises(EncodeError, match=r"label 99 .*artifact 'a0'"):
            run(tmp_path, **{**USER, "encode_data": f"{FIXTURES}:out_of_range_label"}, num_proc=1)

    def test_bad_inputs(self, tmp_path):
        with pytest.raises(EncodeInputError, match="labels.parquet not found"):
            run(tmp_path, **USER)
        fx.write_labels(tmp_path / "labels", ["a0", "a0"], ["x", "y"])
        with pytest.raises(EncodeInputError, match="more than once"):
            run(tmp_path, **USER)
        fx.write_labels(tmp_path / "labels", ["a0", "a2"], ["x", "y"])
        with pytest.raises(EncodeInputError, match="waveform_summary.parquet not found"):
            run(tmp_path)
        with pytest.raises(EncodeInputError, match="encoded-data-dir"):
            run(tmp_path, "other_dataset", **USER)

    def test_bad_arguments_and_settings_exit_2(self, tmp_path, capsys):
        assert main(["--output", str(tmp_path)]) == 2
        write_settings(tmp_path / "s.json", "encode", {"unknown_key": 1})
        args = ["--output", str(tmp_path), "--encoded-data-dir", "full_dataset", "--settings", str(tmp_path / "s.json")]
        assert main(args) == 2
        assert "unknown_key" in capsys.readouterr().err

    @pytest.mark.parametrize(
        "settings",
        [
            {"splits": {"train": 50, "valid": 10, "test": 10}},
            {"splits": {"train": 80, "dev": 20}},
            {"encode_data": "no_colon"},
            {"model_input_files": ["../escape.json"]},
            {"missing_inputs": "ignore"},
            {"min_label_count": 0},
            {"num_proc": 0},
        ],
    )
    def test_settings_rejected(self, settings):
        with pytest.raises(ValidationError):
            EncodeSettings(**settings)

    def test_settings_are_frozen_and_documented(self):
        with pytest.raises(ValidationError):
            EncodeSettings().seed = 1  # type: ignore[misc]
        assert all(field.description for field in EncodeSettings.model_fields.values())
        assert EncodeSettings.model_validate_json(EncodeSettings().model_dump_json()) == EncodeSettings()
