"""Hostile input to Featurize: every bad record costs that record (named error rows), never its
shard, and no record or header vanishes without a row or an error row (tests/steps/featurize/hostile.py)."""

from __future__ import annotations

import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from steps.featurize.records import ERROR_KINDS, FeatureResult
from steps.featurize.run import featurize
from steps.featurize.settings import FeaturizeSettings
from steps.settings_file import write_settings
from tests.conftest import ROOT
from tests.steps.featurize import data as gen
from tests.steps.featurize.hostile import CASES, Expect, edit, record_line
from tests.steps.featurize.test_featurize import read

LENIENT = FeaturizeSettings(max_error_fraction=1.0)


def build(root: Path, names) -> dict[str, Expect]:
    """Each case in a record folder of its own under `root/<case>/` (so `<case>` is its
    group), plus one good record beside them."""
    expected = {}
    for name in names:
        folder = root / name / "r"
        folder.mkdir(parents=True)
        expected[name] = CASES[name](folder)
    gen.write_record(root / "good", "good", gen.signals(300, 2, "80"), "80")
    return expected


def check(expect: Expect, case: str, features, errors) -> None:
    mine = errors[(errors.group == case) & (errors.record == expect.record)]
    if expect.kind is None:
        assert mine.empty, mine.message.tolist()
        assert ((features.group == case) & (features.record == expect.record)).any()
        return
    assert expect.kind in set(mine.kind), (case, mine[["kind", "message"]].values.tolist())
    assert any(expect.reason in m for m in mine[mine.kind == expect.kind].message), mine.message.tolist()


def assert_accounted(report: dict, root: Path) -> None:
    headers = [p for p in root.rglob("*.hea") if not p.name.startswith(".")]
    assert report["headers_total"] == len(headers) == sum(report["headers_by_role"].values())
    assert report["records_total"] == report["records_ok"] + report["records_failed"]


class TestInvalidHostileRecords:
    @pytest.mark.parametrize("case", sorted(CASES))
    def test_each_case_costs_only_its_record(self, tmp_path, case):
        expected = build(tmp_path / "in", [case])
        report = featurize(tmp_path / "in", tmp_path / "out", LENIENT, jobs=1)
        features, errors, _ = read(tmp_path / "out")
        check(expected[case], case, features, errors)
        assert set(errors.kind) <= set(ERROR_KINDS)
        assert (features.record == "good").sum() == 2  # the shard and its good record live on
        assert_accounted(report, tmp_path / "in")

    def test_all_cases_in_one_shard_on_two_workers(self, tmp_path):
        expected = build(tmp_path / "in", sorted(CASES))
        report = featurize(tmp_path / "in", tmp_path / "out", LENIENT, jobs=2)
        features, errors, _ = read(tmp_path / "out")
        for case, expect in expected.items():
            check(expect, case, features, errors)
        assert (features.record == "good").sum() == 2
        assert_accounted(report, tmp_path / "in")
        # Every error row names its record and says why.
        assert errors.record.str.len().min() > 0 and errors.message.str.len().min() > 10

    def test_memory_stays_bounded_and_the_entry_names_the_errors(self, tmp_path):
        build(tmp_path / "in", sorted(CASES))
        write_settings(tmp_path / "settings.json", "featurize", {"max_error_fraction": 1.0})
        proc = subprocess.Popen(
            [sys.executable, "-m", "steps.featurize", "--input", str(tmp_path / "in"), "--output",
             str(tmp_path / "out"), "--jobs", "1", "--settings", str(tmp_path / "settings.json")],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        peak_mb = gen.watch_peak_rss(proc)
        assert proc.wait(timeout=300) == 0, proc.stderr.read().decode()[-2000:]
        assert peak_mb < 400, f"peak RSS {peak_mb:.0f} MB"


class TestInvalidMultiSegment:
    def test_master_listing_itself_or_each_other_is_never_silent(self, tmp_path):
        names = ["master_lists_itself", "masters_name_each_other", "nested_master"]
        build(tmp_path / "in", names)
        report = featurize(tmp_path / "in", tmp_path / "out", LENIENT, jobs=1)
        features, errors, _ = read(tmp_path / "out")
        assert sorted(set(errors.record)) == ["outer", "rec", "reca", "recb"]
        # The inner master of a nested layout is a record of its own: its segment keeps its rows.
        assert set(features[features.group == "nested_master"].segment) == {"inner_0001"}
        assert report["headers_by_role"] == {"record": 6, "segment": 2, "layout": 0, "excluded": 0}
        assert report["records_without_result"] == report["headers_without_result"] == 0

    def test_a_header_its_record_reads_silently_is_an_error_row(self, tmp_path):
        # A master names `rec_layout` as a zero-length layout, but the header holds samples: the
        # built-in function skips layouts, so the invariant names it.
        folder = tmp_path / "in" / "r"
        gen.write_record(folder, "rec_0001", gen.signals(100, 1, "80"), "80")
        gen.write_record(folder, "rec_layout", gen.signals(100, 1, "80"), "80")
        gen.write_master(folder, "rec", 125, 1, [("rec_layout", 0), ("rec_0001", 100)])
        report = featurize(tmp_path / "in", tmp_path / "out", LENIENT, jobs=1)
        _, errors, _ = read(tmp_path / "out")
        (row,) = errors.itertuples()
        assert (row.record, row.segment, row.file, row.kind) == ("rec", "rec_layout", "rec_layout.hea", "no_result")
        assert report["headers_without_result"] == 1 and report["headers_by_role"]["segment"] == 2


def returns_nothing(record):
    return FeatureResult() if record.record == "a" else [{"record": record.record}]


class TestInvalidFeatureFunction:
    def test_a_record_without_rows_or_errors_becomes_an_error_row(self, tmp_path):
        gen.write_record(tmp_path / "in", "a", gen.signals(50, 1, "80"), "80")
        gen.write_record(tmp_path / "in", "b", gen.signals(50, 1, "80"), "80")
        settings = FeaturizeSettings(feature_function=f"{__name__}:returns_nothing", max_error_fraction=1)
        report = featurize(tmp_path / "in", tmp_path / "out", settings, jobs=1)
        _, errors, _ = read(tmp_path / "out")
        assert errors[["record", "kind"]].values.tolist() == [["a", "no_result"]]
        assert report["records_failed"] == report["records_without_result"] == 1


class TestInvalidPhysionet:
    def test_real_record_with_corrupted_headers(self, tmp_path, physionet):
        src = physionet / "mimic3wdb-matched" / "p00" / "p000878"
        folder = tmp_path / "in" / "p00" / "p000878"
        shutil.copytree(src, folder)
        for path in folder.iterdir():
            path.chmod(path.stat().st_mode | stat.S_IWUSR)
        # One segment with a negative frequency, the master with a NUL byte in a comment-free
        # copy of itself (a second master) and its first segment listed twice.
        seg = folder / "3269321_0001.hea"
        record_line(seg, seg.read_bytes().split(b"\n")[0].replace(b" 125 ", b" -125 ", 1))
        master = folder / "p000878-2137-10-26-16-57.hea"
        lines = master.read_bytes().split(b"\n")
        (folder / "p000878-copy.hea").write_bytes(b"\n".join([lines[0].replace(b"p000878-2137-10-26-16-57",
                                                                               b"p000878-copy"), b"3269321_0002 \x00"]))
        edit(master, b"3269321_0002 ", b"3269321_0002 1750\n3269321_0002 ")
        report = featurize(tmp_path / "in", tmp_path / "out", LENIENT, jobs=2)
        features, errors, _ = read(tmp_path / "out")
        by = {(r.record, r.segment): (r.kind, r.message) for r in errors.itertuples() if r.kind != "missing_header"}
        kind, message = by[("p000878-2137-10-26-16-57", "3269321_0001")]
        assert kind == "header_parse_error" and "sampling frequency" in message and "3269321_0001.hea" in message
        kind, message = by[("p000878-2137-10-26-16-57", "3269321_0002")]
        assert kind == "header_parse_error" and "listed twice" in message
        kind, message = by[("p000878-copy", "")]
        assert kind == "header_parse_error" and "NUL byte" in message
        # The segment read once is still read: its rows are the published ones.
        assert set(features.segment) == {"3269321_0002"}
        assert_accounted(report, tmp_path / "in")
        assert report["headers_without_result"] == 0
