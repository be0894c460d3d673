"""The built-in recipes as plain functions: the waveform vector and its pooling over segments,
the documents tokenization (a tokenizer built locally; nothing is downloaded)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from steps.recipes import documents, per_worker, waveform
from tests.steps.encode import fixtures as fx


def segment_row(samples: np.ndarray, signal: str = "II", numerics: bool = False, fs: float = 125.0) -> dict:
    """A summary row computed the way combine does: statistics over the valid samples."""
    valid = samples[~np.isnan(samples)]
    p05, p25, p50, p75, p95 = np.percentile(valid, [5, 25, 50, 75, 95])
    return {
        "signal": signal, "signal_normalised": signal, "is_numerics": numerics, "fs": fs,
        "n_samples": len(samples), "n_valid": len(valid), "frac_nan": 1 - len(valid) / len(samples),
        "duration_s": len(samples) / fs, "mean": valid.mean(), "std": valid.std(), "min": valid.min(),
        "max": valid.max(), "p05": p05, "p25": p25, "p50": p50, "p75": p75, "p95": p95,
    }


class TestValidWaveform:
    def test_pooled_segments_match_numpy_on_all_samples(self):
        rng = np.random.default_rng(0)
        first, second = rng.normal(1.0, 0.2, 3000), rng.normal(1.5, 0.4, 1000)
        second[100:300] = np.nan
        pooled = waveform.pool_segments([segment_row(first), segment_row(second)])
        both = np.concatenate([first, second])
        valid = both[~np.isnan(both)]
        assert pooled["mean"] == pytest.approx(valid.mean(), rel=1e-12)
        assert pooled["std"] == pytest.approx(valid.std(), rel=1e-9)
        assert (pooled["min"], pooled["max"]) == (valid.min(), valid.max())
        assert pooled["frac_nan"] == pytest.approx(200 / 4000)
        assert pooled["n_valid"] == 3800 and pooled["duration_s"] == pytest.approx(4000 / 125)
        assert valid.min() < pooled["p05"] < pooled["p50"] < pooled["p95"] < valid.max()

    def test_vector_is_signal_major_with_nan_and_mask_for_missing_signals(self):
        rng = np.random.default_rng(1)
        rows = [segment_row(rng.normal(0, 1, 500), "II"), segment_row(rng.normal(90, 5, 100), "ABP")]
        options = {"signals": ["ABP", "PLETH", "II"], "statistics": ["mean", "max"]}
        encoded = waveform.encode_data({"waveform_summary": rows, "label_id": 2}, options)
        assert encoded["mask"] == [1, 0, 1] and encoded["label"] == 2
        assert waveform.feature_names(options) == ["ABP.mean", "ABP.max", "PLETH.mean", "PLETH.max", "II.mean", "II.max"]
        vector = encoded["features"]
        assert vector[0] == pytest.approx(rows[1]["mean"]) and vector[5] == pytest.approx(rows[0]["max"])
        assert math.isnan(vector[2]) and math.isnan(vector[3])

    def test_numerics_are_kept_apart_from_waveforms_of_the_same_name(self):
        rows = [segment_row(np.full(100, 0.3), "RESP"), segment_row(np.full(10, 18.0), "RESP", numerics=True, fs=1.0)]
        options = {"signals": ["RESP", "numerics:RESP"], "statistics": ["mean", "fs"]}
        encoded = waveform.encode_data({"waveform_summary": rows, "label_id": 0}, options)
        assert encoded["features"] == pytest.approx([0.3, 125.0, 18.0, 1.0])

    def test_raw_name_is_used_when_no_normalised_name(self):
        row = segment_row(np.arange(10.0), "PLETH")
        del row["signal_normalised"]
        assert waveform.encode_data({"waveform_summary": [row], "label_id": 0}, {"signals": ["PLETH"]})["mask"] == [1]

    def test_too_few_signals_is_none(self):
        rows = [segment_row(np.arange(10.0), "II")]
        assert waveform.encode_data({"waveform_summary": rows, "label_id": 0}, {"signals": ["II", "ABP"], "min_signals": 2}) is None
        assert waveform.encode_data({"waveform_summary": [], "label_id": 0}, {}) is None

    def test_features_have_the_vector_length(self):
        features = waveform.get_dataset_features({"signals": ["II", "ABP"], "statistics": ["mean", "std", "p50"]})
        assert features["features"].length == 6 and features["mask"].length == 2

    def test_all_segments_without_valid_samples_give_nan_statistics_but_presence(self):
        row = {**segment_row(np.arange(10.0)), "n_valid": 0, "mean": None, "std": None}
        encoded = waveform.encode_data({"waveform_summary": [row], "label_id": 0}, {"signals": ["II"], "statistics": ["mean", "frac_nan"]})
        assert encoded["mask"] == [1] and math.isnan(encoded["features"][0]) and encoded["features"][1] == 1.0


class TestInvalidWaveform:
    @pytest.mark.parametrize("options", [{"statistics": ["median"]}, {"signal": ["II"]}, {"signals": []}])
    def test_bad_options_rejected(self, options):
        with pytest.raises(ValueError):
            waveform.get_dataset_features(options)


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tokenizer")
    fx.build_tokenizer(folder / "tokenizer.json")
    return folder


def encode_text(tmp_path, value, options) -> dict | None:
    fx.write_documents(tmp_path, {"d1": value})
    return documents.encode_data({"raw_text.json": str(tmp_path / "d1" / "raw_text.json"), "label_id": 1}, options)


class TestValidDocuments:
    def test_padded_to_max_length_with_special_tokens(self, tmp_path, tokenizer_dir):
        options = {"tokenizer": str(tokenizer_dir), "max_length": 10}
        encoded = encode_text(tmp_path, {"text": "heart rate normal"}, options)
        tok = documents.load_tokenizer(str(tokenizer_dir))
        pad, cls, sep = (tok.token_to_id(t) for t in ("[PAD]", "[CLS]", "[SEP]"))
        assert encoded["input_ids"][:5] == [cls, tok.token_to_id("heart"), tok.token_to_id("rate"), tok.token_to_id("normal"), sep]
        assert encoded["input_ids"][5:] == [pad] * 5 and encoded["attention_mask"] == [1] * 5 + [0] * 5
        assert encoded["label"] == 1

    def test_truncated_to_max_length(self, tmp_path, tokenizer_dir):
        encoded = encode_text(tmp_path, " ".join(["wave"] * 50), {"tokenizer": str(tokenizer_dir / "tokenizer.json"), "max_length": 8})
        assert len(encoded["input_ids"]) == 8 and encoded["attention_mask"] == [1] * 8

    def test_no_padding_keeps_lengths_and_no_truncation_keeps_everything(self, tmp_path, tokenizer_dir):
        options = {"tokenizer": str(tokenizer_dir), "max_length": 8, "padding": "none"}
        assert len(encode_text(tmp_path, "heart rate", options)["input_ids"]) == 4
        assert len(encode_text(tmp_path, " ".join(["wave"] * 50), {**options, "truncation": False})["input_ids"]) == 52
        assert documents.get_dataset_features(options)["input_ids"].length == -1

    @pytest.mark.parametrize(
        "value, words",
        [("lung flow", 2), (["lung flow", "heart"], 3), ({"text": "lung"}, 1), ({"body": "lung flow noise"}, 3)],
    )
    def test_text_shapes(self, tmp_path, tokenizer_dir, value, words):
        options = {"tokenizer": str(tokenizer_dir), "padding": "none", "text_field": "body" if "body" in str(value) else "text"}
        assert len(encode_text(tmp_path, value, options)["input_ids"]) == words + 2

    @pytest.mark.parametrize("value", ["", "   ", {"text": ""}, {"other": "x"}, [], None])
    def test_empty_text_is_none(self, tmp_path, tokenizer_dir, value):
        assert encode_text(tmp_path, value, {"tokenizer": str(tokenizer_dir)}) is None

    @pytest.mark.parametrize("uri", ["s3://models/tok/tokenizer.json", "s3://models/tok/"])
    def test_tokenizer_from_storage(self, tmp_path, tokenizer_dir, monkeypatch, uri):
        fx.build_tokenizer(tmp_path / "s3" / "models" / "tok" / "tokenizer.json")
        monkeypatch.setenv("WAVEPIPE_S3_ROOT", str(tmp_path / "s3"))  # the local runner's storage
        tokenizer = documents.load_tokenizer(uri)
        assert tokenizer.token_to_id("heart") == documents.load_tokenizer(str(tokenizer_dir)).token_to_id("heart")

    def test_tokenizer_is_built_once_per_worker(self, tmp_path, tokenizer_dir, monkeypatch):
        loads = []
        real = documents.load_tokenizer
        monkeypatch.setattr(documents, "load_tokenizer", lambda source: loads.append(source) or real(source))
        options = {"tokenizer": str(tokenizer_dir), "max_length": 33}  # options no other test uses
        for _ in range(5):
            encode_text(tmp_path, "heart rate", options)
        assert len(loads) == 1

    def test_per_worker_keys_on_the_options(self):
        built = []
        cached = per_worker(lambda options: built.append(options) or object())
        assert cached({"a": 1, "b": [2]}) is cached({"b": [2], "a": 1})
        assert cached({"a": 2}) is not cached({"a": 1}) and len(built) == 3
        assert cached({"a": 2}) is cached({"a": 2}) and len(built) == 3


class TestInvalidDocuments:
    @pytest.mark.parametrize(
        "options, message",
        [
            ({}, "tokenizer"),
            ({"tokenizer": "/nowhere/tokenizer.json"}, "not found"),
            ({"tokenizer": "TOKENIZER", "padding": "longest"}, "padding"),
            ({"tokenizer": "TOKENIZER", "max_len": 5}, "unknown recipe_options"),
            ({"tokenizer": "TOKENIZER", "pad_token": "<nothing>"}, "no padding token"),
        ],
    )
    def test_bad_options_fail_when_the_features_are_built(self, tokenizer_dir, options, message):
        options = {k: str(tokenizer_dir) if v == "TOKENIZER" else v for k, v in options.items()}
        with pytest.raises(ValueError, match=message):
            documents.get_dataset_features(options)
