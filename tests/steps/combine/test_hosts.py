"""Combine over a shard featurized on several instances (read_mode stream, steps/combine/hosts.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from steps.io import storage as st
from steps.combine.run import combine
from steps.combine.hosts import merged_report
from steps.combine.settings import CombineSettings
from steps.featurize.run import featurize, featurize_streamed
from steps.featurize.settings import FeaturizeSettings
from steps.featurize.stream import Hosts
from steps.publish import index_body, manifest_body
from steps.work import folders_of, shard_body
from tests.steps.featurize.test_stream import make_shard

HOSTS = ("algo-1", "algo-2")
STREAM = FeaturizeSettings(read_mode="stream")


TABLE: dict = {}


@pytest.fixture
def shards(tmp_path, monkeypatch) -> tuple[Path, Path]:
    """The same work shard featurized in download mode (one host) and streamed on two, from
    folder storage, with the plan's table Combine assembles it by."""
    monkeypatch.setenv("WAVEPIPE_S3_ROOT", str(tmp_path / "s3"))
    storage = st.LocalStorage(tmp_path / "s3")
    data = storage.path("s3://b/raw/")
    make_shard(data)
    files = {o.uri[len("s3://b/raw/"):]: o for o in storage.list("s3://b/raw/")}
    folders = folders_of([("shard-0001", "s3://b/raw/", files)])
    work = shard_body("shard-0001", folders)["folders"]
    TABLE.update(record_cache=None, folders=[{"folder": f.path, "shard": f.shard, "key": f.key, "work": "shard-0001"}
                                             for f in folders])
    (tmp_path / "m.manifest").write_bytes(manifest_body("s3://b/raw/", list(files)))
    (tmp_path / "index.json").write_bytes(index_body(files))
    featurize(data, tmp_path / "download" / "shard-0001", jobs=1, shard="shard-0001", work=work)
    for host in HOSTS:
        featurize_streamed(tmp_path / "m.manifest", tmp_path / "index.json", tmp_path / "stream" / "shard-0001",
                           STREAM, jobs=1, shard="shard-0001", work=work, hosts=Hosts(host, HOSTS))
    return tmp_path / "download", tmp_path / "stream"


def combined(folder: Path, out: Path) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    report = combine(folder, out, CombineSettings(expected_shards=["shard-0001"]), table=TABLE)
    return pd.read_parquet(out / "waveform_summary.parquet"), pd.read_parquet(out / "errors.parquet"), report


class TestValidHosts:
    def test_two_hosts_merge_to_the_single_host_result(self, shards, tmp_path):
        download, streamed = shards
        hosts = sorted(p.name for p in (streamed / "shard-0001" / "hosts").iterdir())
        assert hosts == list(HOSTS) and not (streamed / "shard-0001" / "features.parquet").exists()
        one, one_errors, one_report = combined(download, tmp_path / "one")
        two, two_errors, two_report = combined(streamed, tmp_path / "two")
        pd.testing.assert_frame_equal(one, two)
        pd.testing.assert_frame_equal(one_errors, two_errors)
        assert two_report["complete"] and two_report["status"] == "ok"
        assert two_report["records_total"] == one_report["records_total"] == 7


class TestInvalidHosts:
    def test_a_missing_host_leaves_the_shard_out_naming_it(self, shards, tmp_path):
        _, streamed = shards
        shutil.rmtree(streamed / "shard-0001" / "hosts" / "algo-2")
        summary, _, report = combined(streamed, tmp_path / "out")
        assert report["shards_invalid"] == {"shard-0001": [
            "shard shard-0001: no complete output of host(s) algo-2 (of 2; hosts/<host>/host-complete.json "
            "missing): the shard is left out, not combined in part"]}
        assert not report["complete"] and report["status"] == "failed" and summary.empty

    def test_a_host_without_its_marker_counts_as_missing(self, shards, tmp_path):
        _, streamed = shards
        (streamed / "shard-0001" / "hosts" / "algo-1" / "host-complete.json").unlink()
        _, _, report = combined(streamed, tmp_path / "out")
        assert "host(s) algo-1 " in report["shards_invalid"]["shard-0001"][0]


class TestValidMergedReport:
    def test_counts_are_summed_and_uncached_folders_listed(self):
        reports = [{"host": "algo-1", "record_cache_written": 2, "record_cache_uncached": ["30/3000001"]},
                   {"host": "algo-2", "record_cache_written": 3, "record_cache_uncached": ["30/3000002"]}]
        report = merged_report("shard-0001", reports)
        assert report["record_cache_written"] == 5
        assert report["record_cache_uncached"] == ["30/3000001", "30/3000002"]
