"""Featurize reads every record wfdb reads, with wfdb's numbers (steps/featurize/reader.py).

Every signal's row is compared with numpy over `wfdb.rdrecord(..., physical=True,
smooth_frames=False)` of the same record, with the whole record in one window, in windows of a
few frames, and with histogram budgets so small that every signal goes through the range
counters, coarsened to buckets, and the exact rank search."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import wfdb

from steps.featurize import reader
from steps.featurize.discovery import discover_records
from steps.featurize.headers import FIELDS, read_header
from steps.featurize.summary import summarize_record
from tests.steps.featurize import corpus as C

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> list[C.Case]:
    return C.valid_corpus(tmp_path_factory.mktemp("corpus"))


def record_ref(case: C.Case):
    (ref,) = [r for r in discover_records(case.folder) if r.record == case.name]
    return ref


def assert_rows_equal_wfdb(rows: pd.DataFrame, case: C.Case) -> None:
    """The issue's tolerances: mean 1e-6 relative, min/max half an ADC step, percentiles one
    step, population std 1e-3 relative."""
    rec = wfdb.rdrecord(str(case.folder / (case.reference or case.name)), physical=True, smooth_frames=False)
    assert rows.signal.tolist() == rec.sig_name, case.name
    for row in rows.itertuples():
        samples = np.asarray(rec.e_p_signal[row.signal_index], np.float64)
        valid = samples[~np.isnan(samples)]
        where = f"{case.name} {row.signal} (format {row.fmt})"
        assert (row.n_samples, row.n_valid) == (samples.size, valid.size), where
        step = 1 / abs(rec.adc_gain[row.signal_index])
        assert row.fs == pytest.approx(rec.fs * rec.samps_per_frame[row.signal_index]), where
        assert row.mean == pytest.approx(valid.mean(), rel=1e-6, abs=1e-9 * step), where
        assert row.std == pytest.approx(valid.std(), rel=1e-3, abs=1e-9 * step), where
        assert abs(row.min - valid.min()) <= step / 2 and abs(row.max - valid.max()) <= step / 2, where
        for q, got in zip((5, 25, 50, 75, 95), (row.p05, row.p25, row.p50, row.p75, row.p95)):
            assert abs(got - np.percentile(valid, q)) <= step, f"{where} p{q}"


class TestValidFormats:
    def test_encoders_write_what_wfdb_reads(self, corpus):
        for case in corpus:
            C.check_round_trip(case)

    @pytest.mark.parametrize("mode", ["whole", "windows", "tiny_budget"])
    def test_every_signal_equals_numpy_over_wfdb(self, corpus, mode, monkeypatch):
        window = 7 if mode == "windows" else 1 << 20
        if mode == "tiny_budget":  # no dense counters; range counters coarsen past 16 bins
            monkeypatch.setattr(reader, "DENSE_BUDGET", 0)
            monkeypatch.setattr(reader, "RANGE_BUDGET", 16)
            monkeypatch.setattr(reader, "MIN_RANGE_CAP", 16)
            window = 97
        formats = set()
        for case in corpus:
            result = summarize_record(record_ref(case), window_samples=window)
            assert result.errors == [], (case.name, result.errors)
            rows = pd.DataFrame(result.rows)
            assert_rows_equal_wfdb(rows, case)
            formats |= set(rows.fmt)
        assert formats == set(C.BITS)

    def test_whole_and_windowed_reads_give_identical_rows(self, corpus):
        for case in corpus:
            ref = record_ref(case)
            whole = pd.DataFrame(summarize_record(ref).rows)
            pd.testing.assert_frame_equal(whole, pd.DataFrame(summarize_record(ref, window_samples=50).rows))

    def test_skewed_signals_keep_their_rows_and_checksums(self, corpus):
        (case,) = [c for c in corpus if c.name == "skew"]
        rows = pd.DataFrame(summarize_record(record_ref(case), window_samples=3).rows)
        # Each skewed signal ends in `skew` invalid samples, as wfdb pads it.
        assert rows.n_samples.tolist() == [1000] * 4
        assert (rows.n_samples - rows.n_valid >= [0, 4, 4, 7]).all()

    def test_skews_wfdb_cannot_read_still_read(self, tmp_path):
        # Skews 2 and 5 in one file: wfdb 4.3.1 raises a broadcast error; the samples are the
        # column shifted by each skew, followed by invalid samples.
        n = 400
        d = [C.digital(n, "212", 1, nan_runs=0), C.digital(n, "212", 2, nan_runs=0)]
        sigs = [C.Signal("A", "212", d[0], skew=2), C.Signal("B", "212", d[1], skew=5)]
        C.write_record(tmp_path, "sk", sigs)
        with pytest.raises(ValueError):
            wfdb.rdrecord(str(tmp_path / "sk"))
        rows = pd.DataFrame(summarize_record(record_ref(C.Case(tmp_path, "sk"))).rows)
        for row, x, skew in zip(rows.itertuples(), d, (2, 5)):
            assert (row.n_samples, row.n_valid) == (n, n - skew)
            assert row.mean == pytest.approx(((x[skew:] - 0) / 200.0).mean(), rel=1e-12)

    def test_bytes_read_are_the_data_files_bytes(self, corpus):
        for name in ("ten", "offset", "w516"):
            (case,) = [c for c in corpus if c.name == name]
            files = {s.file or f"{name}.dat" for s in case.signals}
            on_disk = sum((case.folder / f).stat().st_size for f in files)
            assert summarize_record(record_ref(case)).bytes_read == on_disk, name


class TestValidHeaders:
    def test_headers_parse_as_wfdb_parses_them(self, corpus, physionet):
        headers = [c.folder / f"{c.name}.hea" for c in corpus] + sorted(physionet.rglob("*.hea"))
        compared = 0
        for hea in headers:
            wanted = wfdb.rdheader(str(hea.with_suffix("")))
            if isinstance(wanted, wfdb.MultiRecord):
                continue
            got = read_header(hea.with_suffix(""))
            for name in FIELDS + ("record_name", "n_sig", "fs", "sig_len", "base_time", "base_date"):
                assert getattr(got, name) == getattr(wanted, name), (hea, name)
            compared += 1
        assert compared > 60


class TestInvalidSegments:
    @pytest.mark.parametrize("bad, kind, words", [
        ("more_signals", "header_parse_error", "declares 3 signals on its record line but lists 2"),
        ("outside", "header_parse_error", "names it by a path"),
        ("directory", "missing_data_file", "is a directory, not a file"),
        ("garbage", "header_parse_error", "NUL byte on line 1"),
    ])
    def test_one_bad_segment_costs_only_itself(self, tmp_path, bad, kind, words):
        folder, good, bad_name = C.broken_master(tmp_path, bad)
        records = discover_records(tmp_path)
        assert [(r.record, r.kind) for r in records] == [("3900001", "multi")]  # nothing reappears
        result = summarize_record(records[0], window_samples=64)
        rows = pd.DataFrame(result.rows)
        assert sorted(set(rows.segment)) == good and len(rows) == 2 * len(good)
        (error,) = result.errors
        # The segment as the master names it (for `outside`, the path it gives).
        assert error["segment"] in (bad_name, f"../3900001/{bad_name}") and error["kind"] == kind
        assert words in error["message"] and bad_name in error["message"], error["message"]
        assert error["file"] in {f"{bad_name}.hea", f"{bad_name}.dat", "3900001.hea"}
        # Start times still follow the master: the segment after the bad one starts 300 later.
        starts = rows.drop_duplicates("segment").set_index("segment").start_s
        assert starts[good[len(good) // 2]] == pytest.approx((len(good) // 2 + 1) * 300 / 250)

    def test_flac_without_length_reads_its_stream_length(self, corpus):
        (case,) = [c for c in corpus if c.name == "fnolen"]
        with pytest.raises(ZeroDivisionError):  # wfdb's own rule has no bytes per FLAC sample
            wfdb.rdrecord(str(case.folder / case.name))
        rows = pd.DataFrame(summarize_record(record_ref(case)).rows)
        assert rows.n_samples.tolist() == [2222, 2222]

    def test_bad_checksum_names_signal_segment_and_file(self, corpus, tmp_path):
        sigs = [C.Signal("A", "311", C.digital(300, "311", 1)), C.Signal("B", "311", C.digital(300, "311", 2))]
        C.write_record(tmp_path, "cs", sigs)
        hea = tmp_path / "cs.hea"
        lines = hea.read_text().splitlines()
        fields = lines[2].split()
        fields[6] = str(int(fields[6]) + 1)
        hea.write_text("\n".join(lines[:2] + [" ".join(fields)]) + "\n")
        result = summarize_record(record_ref(C.Case(tmp_path, "cs")))
        assert [r["signal"] for r in result.rows] == ["A"]
        (error,) = result.errors
        assert error["kind"] == "header_data_mismatch" and error["file"] == "cs.dat"
        assert "['B']" in error["message"] and "segment cs" in error["message"] and "cs.dat" in error["message"]


class TestValidMemory:
    def test_two_thousand_one_sample_signals_stay_small(self, tmp_path):
        n_sig = 2000
        sigs = [C.Signal(f"S{c}", "16", np.array([c - 1000])) for c in range(n_sig)]
        C.write_record(tmp_path / "in", "wide", sigs)
        assert (tmp_path / "in" / "wide.dat").stat().st_size == 4000
        proc = subprocess.run([sys.executable, "-m", "steps.featurize", "--input", str(tmp_path / "in"),
                               "--output", str(tmp_path / "out"), "--jobs", "1"], cwd=ROOT, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        report = json.loads((tmp_path / "out" / "report.json").read_text())
        assert report["rows"] == n_sig and report["records_ok"] == 1
        assert report["peak_rss_mb_per_worker"] < 300, report["peak_rss_mb_per_worker"]
        assert report["bytes_read"] == 4000
