"""Combine over featurize outputs (steps/combine), Glue registration against a moto server."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import boto3
import pandas as pd
import pyarrow.parquet as pq
import pytest

from steps.combine.__main__ import main
from steps.combine.run import combine, normalise_signals, top_error
from steps.combine.settings import CombineSettings, GlueTable
from steps.featurize.run import featurize
from steps.featurize.settings import FeaturizeSettings
from steps.featurize.summary import FEATURE_COLUMNS
from steps.io import storage as st
from steps.settings_file import write_settings
from steps.work import folders_of, shard_body
from tests.steps.featurize import data as gen
from tests.conftest import ROOT

LENIENT = FeaturizeSettings(max_error_fraction=1.0)


@pytest.fixture(scope="module")
def shards(tmp_path_factory, physionet) -> Path:
    """Featurize outputs of three shards: MIMIC-III WDB group 30, the matched subset, MIMIC-II."""
    root = tmp_path_factory.mktemp("shards")
    for name, sub in (("30", "mimic3wdb/30"), ("p00", "mimic3wdb-matched/p00"), ("s2", "mimic2wdb-matched")):
        featurize(physionet / sub, root / name, LENIENT, jobs=1, shard=name)
    return root


@pytest.fixture(scope="module")
def work_shards(tmp_path_factory, physionet) -> tuple[Path, list[dict]]:
    """The same data as work shards (`steps/work.py`): each featurized with its folders, so its
    features.parquet is a pack; and the plan's table of every folder (`table.json`)."""
    root, table = tmp_path_factory.mktemp("work"), []
    for name, sub in (("30", "mimic3wdb/30"), ("p00", "mimic3wdb-matched/p00"), ("31", "mimic2wdb-matched")):
        files = {p.relative_to(physionet / sub).as_posix(): st.ObjectInfo(str(p), p.stat().st_size, "etag")
                 for p in sorted((physionet / sub).rglob("*")) if p.is_file()}
        folders = folders_of([(name, "s3://data/", files)])
        featurize(physionet / sub, root / name, LENIENT, jobs=1, shard=name, work=shard_body(name, folders)["folders"])
        table += [{"folder": f.path, "shard": f.shard, "key": f.key, "work": name} for f in folders]
    return root, table


def copy_shards(shards: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "in"
    shutil.copytree(shards, dst)
    return dst


class TestValidCombine:
    def test_combines_every_shard_with_raw_and_normalised_names(self, shards, tmp_path):
        report = combine(shards, tmp_path / "out", CombineSettings(expected_shards=["30", "p00", "s2"]))
        summary = pq.read_table(tmp_path / "out" / "waveform_summary.parquet").to_pandas()
        assert report["complete"] and report["status"] == "ok"
        assert report["shards_combined"] == ["30", "p00", "s2"]
        assert report["records_total"] == 8 and report["rows"] == len(summary) == 99
        assert set(FEATURE_COLUMNS) <= set(summary.columns)
        assert {"shard", "signal", "signal_normalised", "signal_kind"} <= set(summary.columns)
        assert summary.shard.tolist() == sorted(summary.shard.tolist())
        errors = pq.read_table(tmp_path / "out" / "errors.parquet").to_pandas()
        assert len(errors) == report["error_rows"] == 34
        # Three kinds, one record each: the first by name, with the message of one of its rows.
        assert report["top_error"]["kind"] == "missing_data_file" and report["top_error"]["records"] == 1
        assert report["top_error"]["example"] in set(errors.message)

    def test_the_most_common_record_error_counts_records_not_rows(self):
        rows = [("30", "g", "r1", "bad_signal", "s1"), ("30", "g", "r1", "bad_signal", "s2"),
                ("30", "g", "r1", "bad_signal", "s3"), ("30", "g", "r2", "read_error", "r2 unreadable"),
                ("31", "g", "r3", "read_error", "r3 unreadable")]
        errors = pd.DataFrame(rows, columns=["shard", "group", "record", "kind", "message"])
        assert top_error(errors) == {"kind": "read_error", "records": 2, "example": "r2 unreadable"}
        assert top_error(errors.iloc[:0]) is None

    def test_numerics_stay_apart_from_waveforms_of_the_same_name(self, shards, tmp_path):
        combine(shards, tmp_path / "out")
        stats = pd.read_csv(tmp_path / "out" / "signal_stats.csv")
        kinds = stats.groupby("signal_normalised").signal_kind.apply(sorted).to_dict()
        assert kinds["RESP"] == ["numerics"]  # only numerics RESP in this data
        resp = stats[(stats.signal_normalised == "RESP")].iloc[0]
        assert resp.units == "pm" and resp.records == 3
        ii = stats[(stats.signal_normalised == "II") & (stats.signal_kind == "waveform")].iloc[0]
        summary = pq.read_table(tmp_path / "out" / "waveform_summary.parquet").to_pandas()
        rows = summary[summary.signal_normalised == "II"]
        assert ii.segments == rows.drop_duplicates(["shard", "record", "segment"]).shape[0]
        assert ii.total_hours == pytest.approx(rows.duration_s.sum() / 3600)
        assert ii.nan_fraction == pytest.approx(1 - rows.n_valid.sum() / rows.n_samples.sum())
        assert ii.std_of_means == pytest.approx(rows["mean"].std(ddof=0))

    def test_aliases_normalise_real_mimic_variants(self):
        raw = ["II", "ECG lead II", "ABP", "ART", "PLETH", "Pleth", "RESP", "Resp", "Resp. Imp.", "AVR", "aVR",
               "Odd name", "RESP", "ABP Sys"]
        numerics = [False] * 12 + [True, True]
        frame = pd.DataFrame({"signal": raw, "is_numerics": numerics})
        out = normalise_signals(frame, CombineSettings())
        assert out.signal_normalised.tolist() == ["II", "II", "ABP", "ABP", "PLETH", "PLETH", "RESP", "RESP", "RESP",
                                            "AVR", "AVR", "Odd name", "RESP", "ABP_SYS"]
        assert out.signal_kind.tolist() == ["waveform"] * 12 + ["numerics"] * 2
        assert out.signal.tolist() == raw

    def test_generated_shards_and_entry(self, tmp_path):
        for shard, record in (("31", "3100001"), ("32", "3200001")):
            gen.write_mimic3_record(tmp_path / "raw" / shard / record, record)
            featurize(tmp_path / "raw" / shard, tmp_path / "in" / shard, jobs=1, shard=shard)
        settings = tmp_path / "combine.json"
        write_settings(settings, "combine", {"expected_shards": ["31", "32"], "require_all_shards": True})
        assert main(["--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"), "--settings", str(settings)]) == 0
        stats = pd.read_csv(tmp_path / "out" / "signal_stats.csv")
        assert stats.set_index(["signal_normalised", "signal_kind"]).records.to_dict() == {
            ("ABP", "waveform"): 2, ("HR", "numerics"): 2, ("II", "waveform"): 2, ("PLETH", "waveform"): 2,
            ("RESP", "numerics"): 2, ("RESP", "waveform"): 2, ("SPO2", "numerics"): 2}

    def test_help_documents_every_argument(self):
        out = subprocess.run([sys.executable, "-m", "steps.combine", "--help"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout
        for arg in ("--input", "--output", "--settings"):
            assert arg in out

    def test_glue_registration_on_moto_with_kms(self, shards, tmp_path, aws, monkeypatch):
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="lake")
        key = boto3.client("kms").create_key()["KeyMetadata"]["KeyId"]
        glue = GlueTable(database="waves", table="summary", location="s3://lake/tables/summary")
        report = combine(shards, tmp_path / "out", CombineSettings(glue=glue),
                         env={"WAVEPIPE_KMS_KEY_ID": key})
        assert report["glue"]["table"] == "summary" and report["glue"]["files"] >= 1
        table = boto3.client("glue").get_table(DatabaseName="waves", Name="summary")["Table"]
        assert table["StorageDescriptor"]["Location"] == "s3://lake/tables/summary/"
        columns = {c["Name"] for c in table["StorageDescriptor"]["Columns"]}
        assert {"signal", "signal_normalised", "signal_kind", "mean", "p95"} <= columns
        objects = s3.list_objects_v2(Bucket="lake", Prefix="tables/summary/")["Contents"]
        for obj in objects:
            head = s3.head_object(Bucket="lake", Key=obj["Key"])
            assert head["ServerSideEncryption"] == "aws:kms" and key in head["SSEKMSKeyId"]
        # A second run overwrites the table's files instead of adding to them.
        combine(shards, tmp_path / "out2", CombineSettings(glue=glue), env={"WAVEPIPE_KMS_KEY_ID": key})
        again = s3.list_objects_v2(Bucket="lake", Prefix="tables/summary/")["Contents"]
        assert len(again) == len(objects)

    def test_glue_is_skipped_on_local_storage(self, shards, tmp_path):
        glue = GlueTable(location="s3://lake/t")
        report = combine(shards, tmp_path / "out", CombineSettings(glue=glue), env={"WAVEPIPE_S3_ROOT": str(tmp_path)})
        assert "skipped" in report["glue"]


class TestInvalidCombine:
    def test_missing_failed_and_invalid_shards_are_reported(self, shards, tmp_path):
        src = copy_shards(shards, tmp_path)
        report_path = src / "s2" / "report.json"
        report_path.write_text(json.dumps({**json.loads(report_path.read_text()), "status": "failed"}))
        pq.write_table(pq.read_table(src / "p00" / "features.parquet").drop(["p50"]), src / "p00" / "features.parquet")
        settings = CombineSettings(expected_shards=["30", "31", "p00", "s2"])
        report = combine(src, tmp_path / "out", settings)
        assert report["shards_missing"] == ["31"]
        assert report["shards_failed"] == ["s2"]
        assert list(report["shards_invalid"]) == ["p00"] and "p50" in report["shards_invalid"]["p00"][0]
        assert report["shards_combined"] == ["30", "s2"] and not report["complete"]
        assert report["status"] == "ok"  # combined what exists, and said so
        summary = pq.read_table(tmp_path / "out" / "waveform_summary.parquet").to_pandas()
        assert set(summary.shard) == {"30", "s2"}

    def test_require_all_shards_fails_with_exit_1_after_writing(self, shards, tmp_path, capsys):
        src = copy_shards(shards, tmp_path)
        (src / "30" / "errors.parquet").unlink()
        settings = tmp_path / "combine.json"
        write_settings(settings, "combine", {"require_all_shards": True})
        code = main(["--input", str(src), "--output", str(tmp_path / "out"), "--settings", str(settings)])
        assert code == 1
        report = json.loads((tmp_path / "out" / "report.json").read_text())
        assert "30" in report["shards_invalid"] and (tmp_path / "out" / "waveform_summary.parquet").is_file()
        # Why, in the line SageMaker shows as the failure reason: the shard, then (as a failed
        # Featurize says) the most common record error of what it combined, and where every error is.
        why = capsys.readouterr().err.strip().splitlines()[-1]
        assert why.startswith("combine: failed: incomplete input: shards invalid: 30 (every shard is required); "
                              f"{report['records_failed']}/{report['records_total']} records failed; most common: ")
        top = report["top_error"]
        assert f"most common: {top['kind']} (1 record, e.g. {top['example']}); every error, one row per record: " \
               f"{tmp_path / 'out' / 'errors.parquet'}" in why

    def test_nothing_to_combine_exits_1(self, tmp_path):
        (tmp_path / "in").mkdir()
        assert main(["--input", str(tmp_path / "in"), "--output", str(tmp_path / "out")]) == 1

    @pytest.mark.parametrize("settings", [
        {"unknown": 1},
        {"signal_aliases": {"II": ["ECG II"], "I": ["ecg ii"]}},
        {"glue": {"database": "db", "table": "t", "location": "not-s3"}},
    ])
    def test_bad_settings_exit_2(self, tmp_path, settings):
        (tmp_path / "in").mkdir()
        path = tmp_path / "s.json"
        write_settings(path, "combine", settings)
        assert main(["--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"), "--settings", str(path)]) == 2

    def test_missing_input_exits_2(self, tmp_path):
        assert main(["--input", str(tmp_path / "absent"), "--output", str(tmp_path / "out")]) == 2


class TestPublishedShards:
    """`--shards-report`: how the pipeline's Combine finds the shards' outputs (under each shard's
    content-addressed place) and keeps its own outputs content-addressed by what it read."""

    EXPERIMENT = "s3://combine-bucket/experiments/e"

    def publish(self, storage, shards: tuple[Path, list[dict]], tmp_path: Path, names=("30", "p00", "31")) -> Path:
        """A shards report naming three work shards and the plan's table of their folders; the
        work outputs uploaded under the places of those that exist (`31` has none at first)."""
        root, table = shards
        report = {"work": [{"name": n, "uri": f"{self.EXPERIMENT}/shards/digest-{n}", "folders": 1} for n in names]}
        for name in names:
            if name != "31":
                self.upload(storage, root / name, name)
        path = tmp_path / "report.json"
        path.write_text(json.dumps(report))
        (tmp_path / "table.json").write_text(json.dumps(
            {"format": 1, "record_cache": None, "folders": [r for r in table if r["work"] in names]}))
        return path

    def upload(self, storage, folder: Path, name: str) -> None:
        for path in sorted(folder.iterdir()):
            storage.upload(path, f"{self.EXPERIMENT}/shards/digest-{name}/features/key1/{path.name}")

    def args(self, report: Path, out: Path, settings: Path) -> list[str]:
        return ["--shards-report", str(report), "--featurize-key", "key1", "--experiment-uri", self.EXPERIMENT,
                "--combine-key", "ckey", "--output", str(out), "--settings", str(settings)]

    def test_a_missing_shard_then_a_complete_set(self, work_shards, tmp_path, monkeypatch):
        from steps.io.storage import LocalStorage

        monkeypatch.setenv("WAVEPIPE_S3_ROOT", str(tmp_path / "s3"))
        storage = LocalStorage(tmp_path / "s3")
        report = self.publish(storage, work_shards, tmp_path)
        settings = write_settings(tmp_path / "combine.json", "combine", {"expected_shards": ["30", "p00", "31"]})
        assert main(self.args(report, tmp_path / "out1", settings)) == 0
        first = json.loads((tmp_path / "out1" / "report.json").read_text())
        assert first["shards_combined"] == ["30", "p00"] and first["shards_missing"] == ["31"]
        assert first["reused"] is False and first["combined_uri"].startswith(f"{self.EXPERIMENT}/combined/ckey/")

        assert main(self.args(report, tmp_path / "out2", settings)) == 0  # the same outputs: reused
        again = json.loads((tmp_path / "out2" / "report.json").read_text())
        assert again["reused"] is True and again["combined_uri"] == first["combined_uri"]
        assert (tmp_path / "out2" / "waveform_summary.parquet").read_bytes() == \
            (tmp_path / "out1" / "waveform_summary.parquet").read_bytes()

        self.upload(storage, work_shards[0] / "31", "31")  # the missing work shard succeeds since
        assert main(self.args(report, tmp_path / "out3", settings)) == 0
        complete = json.loads((tmp_path / "out3" / "report.json").read_text())
        assert complete["reused"] is False and complete["shards_missing"] == []
        assert complete["combined_uri"] != first["combined_uri"]

    @pytest.mark.parametrize("damage", ["delete", "truncate", "add"])
    def test_a_damaged_combined_folder_is_combined_again_not_served(self, work_shards, tmp_path, monkeypatch, damage):
        """Hostile: the reused folder lost its table, holds half of it, or gained a foreign file."""
        from steps.io.storage import LocalStorage

        monkeypatch.setenv("WAVEPIPE_S3_ROOT", str(tmp_path / "s3"))
        storage = LocalStorage(tmp_path / "s3")
        report = self.publish(storage, work_shards, tmp_path, names=("30",))
        settings = write_settings(tmp_path / "combine.json", "combine", {})
        assert main(self.args(report, tmp_path / "out1", settings)) == 0
        first = json.loads((tmp_path / "out1" / "report.json").read_text())
        table = storage.path(first["combined_uri"] + "/waveform_summary.parquet")
        good = table.read_bytes()
        if damage == "delete":
            table.unlink()
        elif damage == "truncate":
            table.write_bytes(good[: len(good) // 2])
        else:
            (table.parent / "foreign.parquet").write_bytes(good)
        assert main(self.args(report, tmp_path / "out2", settings)) == 0
        again = json.loads((tmp_path / "out2" / "report.json").read_text())
        assert again["reused"] is False and again["repaired"]
        assert table.read_bytes() == good and not (table.parent / "foreign.parquet").exists()
        assert (tmp_path / "out2" / "waveform_summary.parquet").read_bytes() == good
        assert main(self.args(report, tmp_path / "out3", settings)) == 0  # repaired: reused again
        assert json.loads((tmp_path / "out3" / "report.json").read_text())["reused"] is True

    def test_moto_server(self, work_shards, tmp_path, aws):
        from steps.io.storage import S3Storage

        boto3.client("s3").create_bucket(Bucket="combine-bucket")
        report = self.publish(S3Storage(), work_shards, tmp_path, names=("30",))
        settings = write_settings(tmp_path / "combine.json", "combine", {})
        assert main(self.args(report, tmp_path / "out", settings)) == 0
        summary = pq.read_table(tmp_path / "out" / "waveform_summary.parquet").to_pandas()
        assert set(summary.shard) == {"30"} and len(summary) > 0

    def test_bad_report_or_missing_keys_exit_2(self, tmp_path):
        report = tmp_path / "report.json"
        report.write_text("{}")
        settings = write_settings(tmp_path / "combine.json", "combine", {})
        assert main(self.args(report, tmp_path / "out", settings)) == 2
        assert main(["--shards-report", str(report), "--output", str(tmp_path / "out")]) == 2

    def test_artifact_column_is_the_record_folder(self, shards):
        summary = pq.read_table(shards / "p00" / "features.parquet").to_pandas()
        assert set(summary.artifact) == {"p000878"}
        assert summary.record.str.startswith("p000878-").all() or set(summary.record) <= {"3269321"}
