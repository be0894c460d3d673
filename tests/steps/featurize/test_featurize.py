"""Featurize on the real PhysioNet records and on generated ones (steps/featurize)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import wfdb

from steps.featurize.__main__ import main
from steps.featurize.discovery import discover_records
from steps.featurize.records import ERROR_KINDS
from steps.featurize.run import featurize, plan_microshards
from steps.featurize.settings import FeaturizeSettings
from steps.featurize.summary import FEATURE_COLUMNS, summarize_record
from steps.settings_file import write_settings
from tests.steps.featurize import data as gen
from tests.conftest import ROOT

STATS = ["mean", "std", "min", "max", "p05", "p25", "p50", "p75", "p95"]


def numpy_stats(valid: np.ndarray) -> dict[str, float]:
    if valid.size == 0:
        return {k: np.nan for k in STATS}
    p = np.percentile(valid, [5, 25, 50, 75, 95])
    return dict(zip(STATS, [valid.mean(), valid.std(), valid.min(), valid.max(), *p]))


def assert_rows_match_wfdb(rows: pd.DataFrame, directory: Path) -> int:
    """Every row's statistics equal numpy's on the samples wfdb reads for that segment."""
    checked = 0
    for segment, seg_rows in rows.groupby("segment"):
        rec = wfdb.rdrecord(str(directory / segment), physical=True)
        for row in seg_rows.itertuples():
            samples = rec.p_signal[:, row.signal_index]
            valid = samples[~np.isnan(samples)]
            assert row.signal == rec.sig_name[row.signal_index]
            assert row.n_samples == samples.size and row.n_valid == valid.size
            expected = numpy_stats(valid)
            for key in STATS:
                np.testing.assert_allclose(getattr(row, key), expected[key], rtol=1e-9, atol=1e-12, err_msg=f"{segment} {row.signal} {key}")
            checked += 1
    return checked


def read(out: Path) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    return (pq.read_table(out / "features.parquet").to_pandas(), pq.read_table(out / "errors.parquet").to_pandas(),
            json.loads((out / "report.json").read_text()))


@pytest.fixture(scope="module")
def physionet_run(tmp_path_factory, physionet):
    out = tmp_path_factory.mktemp("physionet-features")
    report = featurize(physionet, out, FeaturizeSettings(max_error_fraction=1.0), jobs=2)
    return out, report


class TestValidPhysionet:
    def test_discovers_every_record_from_headers(self, physionet):
        records = {r.record: r for r in discover_records(physionet)}
        assert sorted(records) == sorted([
            "3000003", "p000878-2137-10-26-16-57",
            "s00001-2896-10-09-01-56", "s00001-2896-10-09-01-56n", "s00001-2896-10-10-00-31",
            "s00001-2896-10-10-00-31n", "s25047-2704-05-04-10-44", "s25047-2704-05-04-10-44n",
        ])
        assert not any(r.record.endswith("_layout") for r in records.values())
        assert {r.record for r in records.values() if r.is_numerics} == {
            "s00001-2896-10-09-01-56n", "s00001-2896-10-10-00-31n", "s25047-2704-05-04-10-44n"}
        assert records["3000003"].group == "30" and records["p000878-2137-10-26-16-57"].group == "p00"
        # The matched-subset master's data files keep their 7-digit names: bytes are still found.
        assert records["p000878-2137-10-26-16-57"].bytes == 2000 + 2 * 1750
        assert records["s00001-2896-10-10-00-31n"].bytes == 38720
        assert records["s00001-2896-10-10-00-31n"].samples == 38720 // 2  # format 16

    def test_report_accounts_for_every_record(self, physionet_run):
        out, report = physionet_run
        assert report["records_total"] == 8 == report["records_ok"] + report["records_failed"]
        assert report["records_failed"] == 3 and report["records_numerics"] == 3
        assert report["errors_by_kind"] == {"missing_data_file": 3, "missing_header": 30, "zero_samples": 1}
        assert report["bytes_read"] == report["bytes_total"] > 0
        assert 0 < report["balance_efficiency"] <= 1
        assert json.loads((out / "progress.json").read_text())["records_done"] == 8

    def test_every_published_defect_is_an_error_row(self, physionet_run):
        _, errors, _ = read(physionet_run[0])
        by_record = errors.groupby("record")["kind"].apply(sorted).to_dict()
        # p000878: the master lists 32 segments, only _0001 and _0002 are published.
        assert by_record["p000878-2137-10-26-16-57"] == ["missing_header"] * 30
        # s00001: headers _0009.._0011 without their .dat files.
        assert by_record["s00001-2896-10-10-00-31"] == ["missing_data_file"] * 3
        # A master made only of a layout and a gap has nothing to read.
        assert by_record["s00001-2896-10-09-01-56"] == ["zero_samples"]
        assert set(errors.columns) == {"group", "record", "segment", "file", "kind", "message"}

    def test_statistics_equal_numpy_on_the_same_samples(self, physionet_run, physionet):
        features, _, _ = read(physionet_run[0])
        assert tuple(features.columns) == FEATURE_COLUMNS
        checked = 0
        for header in sorted(physionet.rglob("*.hea")):
            rows = features[(features.segment == header.stem)]
            if len(rows):
                checked += assert_rows_match_wfdb(rows, header.parent)
        assert checked == len(features) == 99

    def test_numerics_and_waveforms_of_one_record_stay_apart(self, physionet_run):
        features, _, _ = read(physionet_run[0])
        resp = features[features.signal == "RESP"]
        assert set(resp.is_numerics) == {True}
        assert set(resp.units) == {"pm"}
        # s25047's "82 % NaN in ABP" is the whole-record view: ABP exists only in the last two of
        # 18 segments (97,500 of 543,240 samples); per segment it is fully present.
        abp = features[(features.record == "s25047-2704-05-04-10-44") & (features.signal == "ABP")]
        assert abp.segment.tolist() == ["3234460_0017", "3234460_0018"]
        assert abp.n_samples.sum() == 97500 and round(1 - 97500 / 543240, 2) == 0.82

    def test_segment_offsets_follow_the_master_including_gaps(self, physionet_run):
        features, _, _ = read(physionet_run[0])
        p = features[features.record == "p000878-2137-10-26-16-57"].drop_duplicates("segment")
        # layout 0, gap 3750, _0001 2000 samples: _0002 starts at 5750 samples = 46 s at 125 Hz.
        assert p.set_index("segment").start_s.to_dict() == {"3269321_0001": 30.0, "3269321_0002": 46.0}


class TestValidGenerated:
    @pytest.mark.parametrize("fmt", ["16", "80", "212"])
    def test_formats_with_nan_runs_match_numpy(self, tmp_path, fmt):
        d = gen.signals(5001, 3, fmt, seed=int(fmt), nan_runs=4)
        gen.write_record(tmp_path, "rec", d, fmt)
        (ref,) = discover_records(tmp_path)
        # A window far smaller than the record (and odd-sized for 212's 3-byte packing).
        result = summarize_record(ref, window_samples=777)
        assert not result.errors
        rows = pd.DataFrame(result.rows)
        assert (rows.frac_nan > 0).all()
        assert assert_rows_match_wfdb(rows, tmp_path) == 3
        whole = pd.DataFrame(summarize_record(ref, window_samples=10**7).rows)
        pd.testing.assert_frame_equal(rows, whole)

    @pytest.mark.parametrize("fmt", ["24", "32"])
    def test_formats_read_through_wfdb_match_numpy(self, tmp_path, fmt):
        d = gen.signals(3000, 2, "16", seed=3) * 100
        gen.write_record(tmp_path, "rec", d, fmt)
        (ref,) = discover_records(tmp_path)
        result = summarize_record(ref, window_samples=1000)
        assert not result.errors, result.errors
        assert assert_rows_match_wfdb(pd.DataFrame(result.rows), tmp_path) == 2

    def test_multi_rate_signals_keep_every_sample(self, tmp_path):
        fast, slow = gen.signals(4000, 1, "16", seed=5)[:, 0], gen.signals(2000, 1, "16", seed=6)[:, 0]
        wfdb.wrsamp("mr", fs=125, units=["mV", "mV"], sig_name=["F", "S"], e_d_signal=[fast, slow],
                    samps_per_frame=[2, 1], fmt=["16", "16"], adc_gain=[200.0, 50.0], baseline=[0, 7],
                    write_dir=str(tmp_path))
        (ref,) = discover_records(tmp_path)
        rows = pd.DataFrame(summarize_record(ref, window_samples=300).rows)
        assert rows.fs.tolist() == [250.0, 125.0] and rows.n_samples.tolist() == [4000, 2000]
        for row, d, gain, base in zip(rows.itertuples(), (fast, slow), (200.0, 50.0), (0, 7)):
            expected = numpy_stats(gen.physical(d, "16", gain, base))
            for key in STATS:
                np.testing.assert_allclose(getattr(row, key), expected[key], rtol=1e-9, atol=1e-12)

    def test_multisegment_record_with_gaps_and_variable_layout(self, tmp_path):
        folder = tmp_path / "31" / "3100001"
        gen.write_mimic3_record(folder, "3100001")
        records = discover_records(tmp_path)
        assert [(r.record, r.kind, r.is_numerics, r.group) for r in records] == [
            ("3100001", "multi", False, "31"), ("3100001n", "single", True, "31")]
        rows = pd.DataFrame(summarize_record(records[0]).rows)
        assert list(zip(rows.segment, rows.signal)) == [
            ("3100001_0001", "II"), ("3100001_0001", "ABP"),
            ("3100001_0002", "II"), ("3100001_0002", "PLETH"), ("3100001_0002", "RESP")]
        assert rows.start_s.tolist() == [4.0, 4.0, 30.0, 30.0, 30.0]  # 500/125, (500+3000+250)/125
        assert assert_rows_match_wfdb(rows, folder) == 5
        numerics = pd.DataFrame(summarize_record(records[1]).rows)
        assert numerics.is_numerics.all() and numerics.fs.round(6).eq(round(1 / 60, 6)).all()

    def test_matched_subset_layout(self, tmp_path):
        folder = tmp_path / "p01" / "p012345"
        gen.write_mimic3_record(folder, "3312345")
        # Matched subset: masters renamed after the subject and date; data files keep their names.
        os.rename(folder / "3312345.hea", folder / "p012345-2150-01-01-10-00.hea")
        text = (folder / "3312345n.hea").read_text().replace("3312345n ", "p012345-2150-01-01-10-00n ", 1)
        (folder / "p012345-2150-01-01-10-00n.hea").write_text(text)
        (folder / "3312345n.hea").unlink()
        records = discover_records(tmp_path)
        assert [(r.record, r.is_numerics, r.group) for r in records] == [
            ("p012345-2150-01-01-10-00", False, "p01"), ("p012345-2150-01-01-10-00n", True, "p01")]
        assert all(r.bytes > 0 for r in records)
        assert [len(summarize_record(r).rows) for r in records] == [5, 3]

    def test_jobs_one_and_many_give_identical_files(self, tmp_path):
        for i in range(6):
            gen.write_mimic3_record(tmp_path / "in" / "32" / f"320000{i}", f"320000{i}", seed=i)
        gen.write_record(tmp_path / "in" / "plain", "100", gen.signals(20000, 2, "212", seed=9), "212")
        (tmp_path / "in" / "plain" / "broken.hea").write_text("broken 1 125 100\nbroken.dat 16 200/mV 16 0 0 0 0 X\n")
        one = featurize(tmp_path / "in", tmp_path / "one", FeaturizeSettings(max_error_fraction=1), jobs=1)
        many = featurize(tmp_path / "in", tmp_path / "many", FeaturizeSettings(max_error_fraction=1), jobs=2)
        for name in ("features.parquet", "errors.parquet"):
            # pandas compares NaN == NaN (start_s of segments without a master); arrow does not.
            pd.testing.assert_frame_equal(pq.read_table(tmp_path / "one" / name).to_pandas(),
                                          pq.read_table(tmp_path / "many" / name).to_pandas())
        assert one["records_total"] == many["records_total"] == 14
        assert one["records_failed"] == many["records_failed"] == 1

    def test_microshards_balance_work_largest_first(self, tmp_path):
        from steps.featurize.records import RecordRef

        sizes = [1000, 10, 10, 10, 10, 400, 300, 5, 5, 5]
        records = [RecordRef("/", f"r{i}.hea", "g", f"r{i}", "single", samples=s) for i, s in enumerate(sizes)]
        shards = plan_microshards(records, jobs=2, per_worker=2)
        totals = [sum(r.samples for r in s) for s in shards]
        assert totals == sorted(totals, reverse=True)
        assert sorted(r.record for s in shards for r in s) == sorted(r.record for r in records)
        assert shards[0] == [records[0]]

    def test_a_small_shard_is_featurized_without_a_pool_unless_asked(self, tmp_path, monkeypatch):
        from steps.featurize import run as featurize_run
        from steps.featurize.records import RecordRef

        monkeypatch.setattr("joblib.cpu_count", lambda *a, **k: 4)
        for i in range(6):
            gen.write_mimic3_record(tmp_path / "in" / "32" / f"320000{i}", f"320000{i}", seed=i)
        # Defaulted: 12 records, far under POOL_MIN_BYTES: this process alone.
        assert featurize(tmp_path / "in", tmp_path / "small", FeaturizeSettings())["jobs"] == 1
        # Asked for, by the argument or the setting: the pool.
        assert featurize(tmp_path / "in", tmp_path / "asked", FeaturizeSettings(), jobs=2)["jobs"] == 2
        assert featurize(tmp_path / "in", tmp_path / "set", FeaturizeSettings(jobs=2))["jobs"] == 2
        big = [RecordRef("/", "r.hea", "g", "r", "single", bytes=featurize_run.POOL_MIN_BYTES)]
        small = [RecordRef("/", "r.hea", "g", "r", "single", bytes=featurize_run.POOL_MIN_BYTES - 1)]
        builtin = FeaturizeSettings().feature_function
        assert featurize_run.default_jobs(big, builtin) == 4
        assert featurize_run.default_jobs(small, builtin) == 1
        # Streaming, the pool's workers also overlap their fetches: every vCPU.
        assert featurize_run.default_jobs(small, builtin, streamed=True) == 4
        # A function of the user's has no measured rate: every vCPU, however small.
        assert featurize_run.default_jobs(small, "tests.steps.featurize.data:mean_only") == 4

    def test_pluggable_feature_function(self, tmp_path):
        gen.write_mimic3_record(tmp_path / "in" / "30" / "3000001", "3000001")
        settings = FeaturizeSettings(feature_function="tests.steps.featurize.data:mean_only",
                                     feature_options={"scale": 2.0})
        report = featurize(tmp_path / "in", tmp_path / "out", settings, jobs=1)
        features = pq.read_table(tmp_path / "out" / "features.parquet").to_pandas()
        assert features.record.tolist() == ["3000001", "3000001n"]
        assert report["records_ok"] == 2 and (features.bytes > 0).all()

    def test_entry_writes_outputs_and_exits_zero(self, tmp_path):
        gen.write_mimic3_record(tmp_path / "in" / "30" / "3000001", "3000001")
        settings = tmp_path / "featurize.json"
        write_settings(settings, "featurize", {"max_error_fraction": 0.0, "feature_options": {"window_samples": 100}})
        code = main(["--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"), "--jobs", "1",
                     "--shard", "30", "--settings", str(settings)])
        assert code == 0
        features, errors, report = read(tmp_path / "out")
        assert len(features) == 8 and len(errors) == 0 and report["shard"] == "30"

    def test_entry_reads_the_shard_name_from_the_place(self, tmp_path):
        # A ForEach iteration is given only its shard's place: the name is its shard.json.
        from steps.publish import shard_body

        gen.write_mimic3_record(tmp_path / "in" / "30" / "3000001", "3000001")
        (tmp_path / "shard.json").write_bytes(shard_body("shard-0007"))
        code = main(["--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"), "--jobs", "1",
                     "--shard-file", str(tmp_path / "shard.json")])
        assert code == 0 and read(tmp_path / "out")[2]["shard"] == "shard-0007"

    @pytest.mark.parametrize("content", [None, "not json", "[]", "{}", '{"shard": ""}', '{"shard": 7}'])
    def test_a_shard_file_without_a_name_exits_2(self, tmp_path, content):
        gen.write_mimic3_record(tmp_path / "in" / "30" / "3000001", "3000001")
        if content is not None:
            (tmp_path / "shard.json").write_text(content)
        assert main(["--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"), "--jobs", "1",
                     "--shard-file", str(tmp_path / "shard.json")]) == 2

    def test_help_documents_every_argument(self):
        out = subprocess.run([sys.executable, "-m", "steps.featurize", "--help"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout
        for arg in ("--input", "--output", "--jobs", "--shard", "--shard-file", "--settings"):
            assert arg in out


def _broken_records(folder: Path) -> dict[str, str]:
    """One record per defect kind; returns record name -> expected error kind."""
    d = gen.signals(400, 2, "16", seed=1)
    expected = {}

    def record(name: str) -> Path:
        gen.write_record(folder, name, d, "16")
        return folder / f"{name}.dat"

    record("missing_dat").unlink()
    expected["missing_dat"] = "missing_data_file"
    dat = record("truncated")
    dat.write_bytes(dat.read_bytes()[:-10])
    expected["truncated"] = "truncated_data_file"
    dat = record("too_long")
    dat.write_bytes(dat.read_bytes() + bytes(400))
    expected["too_long"] = "header_data_mismatch"
    dat = record("bad_checksum")
    raw = bytearray(dat.read_bytes())
    raw[100] ^= 0x01
    dat.write_bytes(bytes(raw))
    expected["bad_checksum"] = "header_data_mismatch"
    (folder / "garbage.hea").write_bytes(b"\x00\xffnot a header\n")
    expected["garbage"] = "header_parse_error"
    record("unknown_fmt")
    hea = folder / "unknown_fmt.hea"
    hea.write_text(hea.read_text().replace(" 16 ", " 99 "))
    expected["unknown_fmt"] = "unknown_format"
    (folder / "empty.hea").write_text("empty 1 125 0\nempty.dat 16 200/mV 16 0 0 0 0 X\n")
    (folder / "empty.dat").write_bytes(b"")
    expected["empty"] = "zero_samples"
    (folder / "nosignals.hea").write_text("nosignals 0 125 100\n")
    expected["nosignals"] = "zero_samples"
    return expected


class TestInvalid:
    def test_every_kind_of_broken_record_is_an_error_row(self, tmp_path):
        expected = _broken_records(tmp_path / "in")
        gen.write_record(tmp_path / "in", "good", gen.signals(300, 1, "80"), "80")
        report = featurize(tmp_path / "in", tmp_path / "out", FeaturizeSettings(max_error_fraction=1), jobs=2)
        features, errors, _ = read(tmp_path / "out")
        assert dict(zip(errors.record, errors.kind)) == expected
        assert set(errors.kind) <= set(ERROR_KINDS)
        # A checksum names the signal it fails for; the other signal of that file is kept.
        assert list(zip(features.record, features.signal)) == [("bad_checksum", "S1"), ("good", "S0")]
        assert report["records_total"] == len(expected) + 1 == report["records_ok"] + report["records_failed"]

    def test_missing_segment_header_and_length_disagreement(self, tmp_path):
        folder = tmp_path / "30" / "3000009"
        gen.write_mimic3_record(folder, "3000009")
        (folder / "3000009_0002.hea").unlink()
        master = folder / "3000009.hea"
        master.write_text(master.read_text().replace("3000009_0001 3000", "3000009_0001 2999"))
        ref = next(r for r in discover_records(tmp_path) if r.record == "3000009")
        result = summarize_record(ref)
        assert [(e["segment"], e["kind"]) for e in result.errors] == [
            ("3000009_0001", "header_data_mismatch"), ("3000009_0002", "missing_header")]
        assert result.rows == []

    def test_error_fraction_over_the_maximum_fails_with_exit_1(self, tmp_path):
        _broken_records(tmp_path / "in")
        gen.write_record(tmp_path / "in", "good", gen.signals(300, 1, "80"), "80")
        code = main(["--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"), "--jobs", "1"])
        assert code == 1
        _, _, report = read(tmp_path / "out")
        assert report["status"] == "failed" and report["error_fraction"] > report["max_error_fraction"]

    def test_failing_feature_function_becomes_error_rows(self, tmp_path):
        gen.write_record(tmp_path / "in", "a", gen.signals(100, 1, "80"), "80")
        settings = FeaturizeSettings(feature_function="tests.steps.featurize.data:always_fails", max_error_fraction=1)
        report = featurize(tmp_path / "in", tmp_path / "out", settings, jobs=1)
        _, errors, _ = read(tmp_path / "out")
        assert errors.kind.tolist() == ["feature_function_error"] and "cannot featurize a" in errors.message[0]
        assert report["records_failed"] == 1

    @pytest.mark.parametrize("args", [
        ["--output", "X"],
        ["--input", "{tmp}/absent", "--output", "{tmp}/out"],
        ["--input", "{tmp}", "--output", "{tmp}/out", "--jobs", "0"],
        ["--input", "{tmp}", "--output", "{tmp}/out", "--settings", "{tmp}/bad.json"],
        ["--input", "{tmp}", "--output", "{tmp}/out", "--settings", "{tmp}/badref.json"],
        ["--input", "{tmp}", "--output", "{tmp}/out"],  # no record at all
    ])
    def test_bad_arguments_settings_or_input_exit_2(self, tmp_path, args):
        write_settings(tmp_path / "bad.json", "featurize", {"max_error_fraction": 2, "unknown": 1})
        write_settings(tmp_path / "badref.json", "featurize", {"feature_function": "nowhere.module:fn"})
        assert main([a.format(tmp=tmp_path) for a in args]) == 2

    def test_settings_reject_unknown_keys_and_bad_references(self):
        with pytest.raises(ValueError):
            FeaturizeSettings(feature_function="not a reference")
        with pytest.raises(ValueError):
            FeaturizeSettings.model_validate({"typo": 1})


class TestValidMemory:
    def test_day_long_eight_channel_record_stays_under_300_mb(self, tmp_path):
        # 24 h at 125 Hz, 8 channels, format 16: 173 MB on disk, 691 MB if loaded as float64.
        gen.write_long_record(tmp_path / "in", "long", frames=24 * 3600 * 125)
        proc = subprocess.Popen(
            [sys.executable, "-m", "steps.featurize", "--input", str(tmp_path / "in"),
             "--output", str(tmp_path / "out"), "--jobs", "1"],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        # Watched from outside, and from inside: the report's per-worker peak (VmHWM).
        peak_mb = gen.watch_peak_rss(proc)
        assert proc.wait() == 0, proc.stderr.read().decode()
        features, errors, report = read(tmp_path / "out")
        assert 0 < peak_mb < 300, f"peak RSS {peak_mb:.0f} MB"
        assert report["peak_rss_mb_per_worker"] < 300
        assert len(errors) == 0 and features.n_samples.tolist() == [24 * 3600 * 125] * 8
        assert report["bytes_read"] == (tmp_path / "in" / "long.dat").stat().st_size
