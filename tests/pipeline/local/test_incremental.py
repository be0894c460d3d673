"""Incremental runs end to end through `deploy.py local`: the cost of a run follows what
changed, and no run serves a stale or partial result.

Each scenario edits the generated sample data the way a user's bucket changes (one byte of a
data file, a new record, a deleted one), runs again, and checks which steps ran, how many
records each Featurize step featurized or reused, and that the outputs are current."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.cli import main
from pipeline.config import load_config
from pipeline.plan.predict import make_plan
from tests.conftest import EXAMPLE_CONFIG

SAMPLE = "s3/wavepipe-example/sample"
BASE = "s3/wavepipe-example/wavepipe/wavepipe-example"


def last_execution(workdir: Path) -> dict:
    records = [json.loads(p.read_text()) for p in (workdir / "executions").glob("*/execution.json")]
    return max(records, key=lambda r: (r["Started"], r["ExecutionId"]))


def states(workdir: Path) -> dict[str, str]:
    return {name: step["State"] for name, step in last_execution(workdir)["Steps"].items()}


def featurize_reports(workdir: Path) -> dict[str, dict]:
    """Step name -> the report.json of every Featurize step that ran in the last execution."""
    out = {}
    for name, step in last_execution(workdir)["Steps"].items():
        if name.startswith("Featurize") and step["State"] == "Succeeded" and "features" in step["Outputs"]:
            out[name] = json.loads((Path(step["Outputs"]["features"].replace("s3://", str(workdir / "s3") + "/"))
                                    / "report.json").read_text())
    return out


def output_dir(workdir: Path, step: str, output: str) -> Path:
    uri = last_execution(workdir)["Steps"][step]["Outputs"][output]
    return Path(uri.replace("s3://", str(workdir / "s3") + "/"))


def run(workdir: Path, *extra: str, config: str | Path = EXAMPLE_CONFIG, plan: bool = True) -> int:
    """`deploy.py local`, after checking that `deploy.py plan` foresees what it then does: which
    steps run, and how many folders each Featurize job featurizes."""
    plans = make_plan(load_config(config, overlays=[extra[i + 1] for i, a in enumerate(extra) if a == "--overlay"]),
                      workdir, "local", dict(extra[i + 1].split("=", 1) for i, a in enumerate(extra) if a == "--param"),
                      retry="latest" if "--retry" in extra else None) if plan else None
    code = main(["local", "--config", str(config), "--workdir", str(workdir), *extra])
    if plans is not None:
        got = states(workdir)
        expected = {"Cached": {"Cached"}, "Reused": {"Reused"}, "Runs": {"Succeeded", "Failed"}}
        assert {p.name: p.state for p in plans if got[p.name] not in expected[p.state]} == {}, got
        reports = featurize_reports(workdir)
        for p in plans:
            if p.featurize is not None and p.name in reports:
                assert (p.featurize, p.reuse) == (reports[p.name]["folders"], 0), p.name
    return code


def source_report(workdir: Path, step: str = "Reconcile") -> dict:
    """The report of the step that planned tonight's work (steps/work.py)."""
    return json.loads((output_dir(workdir, step, step.lower()) / "report.json").read_text())


def failing_folders(workdir: Path) -> set[str]:
    """The artifact folders with a failed record in the last combine (never cached: tried again)."""
    errors = pd.read_parquet(output_dir(workdir, "Combine", "combine") / "errors.parquet")
    return {r.removesuffix("n") for r in errors["record"]}


def featurized(workdir: Path) -> int:
    """Folders featurized by the Featurize jobs of the last execution."""
    return sum(r["folders"] for r in featurize_reports(workdir).values())


def ran(workdir: Path, prefix: str = "Featurize") -> list[str]:
    return sorted(n for n, s in states(workdir).items() if n.startswith(prefix) and s == "Succeeded")


def flip_a_byte(workdir: Path) -> None:
    """One byte of record 3000001's first segment changes (its size does not)."""
    data = workdir / SAMPLE / "mimic3wdb/30/3000001/3000001_0001.dat"
    raw = bytearray(data.read_bytes())
    raw[100] ^= 0xFF
    data.write_bytes(bytes(raw))


def write_record(folder: Path, name: str, seed: int) -> None:
    """A single-segment WFDB record written by wfdb itself."""
    import wfdb

    folder.mkdir(parents=True)
    signal = np.random.default_rng(seed).normal(0, 1, (1250, 2))
    wfdb.wrsamp(name, fs=125, units=["mV", "mV"], sig_name=["II", "V"], p_signal=signal, fmt=["16", "16"],
                write_dir=str(folder))


def summary(workdir: Path) -> pd.DataFrame:
    return pd.read_parquet(output_dir(workdir, "Combine", "combine") / "waveform_summary.parquet")


def dataset_ids(workdir: Path) -> set[str]:
    import datasets

    folder = output_dir(workdir, "Encode", "encode") / "full_dataset"
    data = datasets.load_from_disk(str(folder))
    return {a for split in data for a in data[split]["artifact_id"]}


@pytest.fixture(scope="module")
def eight_shards(tmp_path_factory):
    """The example with 8 macroshards, run once; the tests below change its data in turn."""
    workdir = tmp_path_factory.mktemp("incremental")
    overlay = workdir / "eight.yaml"
    overlay.write_text("stages:\n  featurize:\n    macroshards: 8\n")
    assert run(workdir, "--overlay", str(overlay), plan=False) == 0  # plan needs the sample data: not yet there
    return workdir, overlay


# The tests of one module-scoped workdir run in order on one pytest-xdist worker (--dist
# loadgroup): each starts from the state the one before left, and the first run is made once.
@pytest.mark.xdist_group("eight_shards")
class TestValidIncremental:
    """In order: each test starts from the state the one before left. With a counted
    `macroshards: N`, each macroshard's step gets the folders of it the record cache lacks."""

    def test_unchanged_reruns_only_what_failed_then_nothing(self, eight_shards):
        workdir, overlay = eight_shards
        failing = failing_folders(workdir)
        full = summary(workdir)
        assert run(workdir, "--overlay", str(overlay)) == 0
        # What failed is never cached: tried again, alone. An untouched macroshard's empty work
        # shard runs once (a cache hit from then on).
        assert source_report(workdir)["folders_todo"] == len(failing) > 0
        assert featurized(workdir) == len(failing)
        pd.testing.assert_frame_equal(summary(workdir), full)  # from the cache: the same table
        assert run(workdir, "--overlay", str(overlay)) == 0
        got = states(workdir)
        assert ran(workdir) == []  # 0 Featurize jobs
        assert got["Reconcile"] == "Succeeded" and got["Combine"] == "Succeeded" and got["Encode"] == "Cached"
        report = json.loads((output_dir(workdir, "Combine", "combine") / "report.json").read_text())
        assert report["reused"] is True  # same work outputs and table: the earlier combine, not a new one

    def test_one_changed_byte_reruns_one_shard_and_one_folder(self, eight_shards):
        workdir, overlay = eight_shards
        before = summary(workdir)
        flip_a_byte(workdir)
        assert run(workdir, "--overlay", str(overlay)) == 0
        [step] = ran(workdir)
        report = featurize_reports(workdir)[step]
        # The changed artifact (the record folder: its waveform and numerics records), and the
        # failing folders of its shard.
        assert report["folders"] == 1 + len([f for f in report["record_cache_uncached"] if not f.endswith("3000001")])
        after = summary(workdir)
        untouched = ~before["artifact"].isin(["3000001"])
        pd.testing.assert_frame_equal(after[~after["artifact"].isin(["3000001"])].reset_index(drop=True),
                                      before[untouched].reset_index(drop=True))
        assert states(workdir)["Encode"] == "Succeeded"  # new features, new dataset

    def test_one_added_record_reruns_its_shard_only(self, eight_shards):
        workdir, overlay = eight_shards
        # The sample's label without files (3299999) gets its files: now it is matched.
        write_record(workdir / SAMPLE / "mimic3wdb/32/3299999", "3299999", seed=7)
        assert run(workdir, "--overlay", str(overlay)) == 0
        [step] = ran(workdir)
        assert featurize_reports(workdir)[step]["records_total"] == 1
        assert "3299999" in set(summary(workdir)["artifact"])
        assert "3299999" in dataset_ids(workdir)

    def test_one_deleted_record_is_gone_everywhere(self, eight_shards):
        workdir, overlay = eight_shards
        shutil.rmtree(workdir / SAMPLE / "mimic3wdb/31/3100005")
        assert run(workdir, "--overlay", str(overlay)) == 0
        assert ran(workdir) == []  # nothing to featurize: its shard's work is what it was
        assert "3100005" not in set(summary(workdir)["artifact"])
        assert "3100005" not in dataset_ids(workdir)
        assert len(set(summary(workdir)["artifact"])) == 24  # 24 sampled + 1 added - 1 deleted


@pytest.fixture(scope="module")
def auto_shards(tmp_path_factory):
    """`macroshards: auto`: the sample's ~594 KB over 80 KB shards, 8 at run time (a ForEach)."""
    workdir = tmp_path_factory.mktemp("auto")
    overlay = workdir / "auto.yaml"
    overlay.write_text("stages:\n  featurize:\n    macroshards: auto\n    target_shard_size: 80KB\n"
                       "    max_concurrency: 3\n")
    assert run(workdir, "--overlay", str(overlay), plan=False) == 0
    return workdir, overlay


def at_most_one_per_target(report: dict) -> bool:
    """Work shards are packed by bytes: at most floor(missing bytes / target) + 1 of them."""
    return len(report["work"]) <= report["bytes_todo"] // report["target_shard_bytes"] + 1


@pytest.mark.xdist_group("auto_shards")
class TestValidAutoShards:
    """In order, like TestValidIncremental: the work is what the record cache lacks, packed by
    bytes into work shards, whatever macroshards it falls into."""

    def test_the_work_comes_from_the_bytes(self, auto_shards):
        workdir, _ = auto_shards
        report = source_report(workdir)
        assert report["macroshards"] == 8 and report["target_shard_bytes"] == 80_000
        assert report["folders_todo"] == report["folders_total"] == 24 and at_most_one_per_target(report)
        got = states(workdir)
        assert got["Featurize"] == "Succeeded"
        assert sorted(n for n in got if n.startswith("FeaturizeShard-")) == \
            [f"FeaturizeShard-{i}" for i in range(len(report["work"]))]
        combined = json.loads((output_dir(workdir, "Combine", "combine") / "report.json").read_text())
        assert combined["complete"] and combined["shards_expected"] == [w["name"] for w in report["work"]]
        assert len(set(summary(workdir)["artifact"])) == 24
        assert set(summary(workdir)["shard"]) == {f"shard-{i:04d}" for i in range(1, 9)}  # rows keep their macroshard
        # The items are plain strings (each a work shard's place); each job read its name from the place.
        assert json.loads(report["shard_items"]) == [w["uri"] for w in report["work"]]

    def test_one_changed_byte_reruns_one_folder_and_what_failed(self, auto_shards):
        workdir, overlay = auto_shards
        flip_a_byte(workdir)
        assert run(workdir, "--overlay", str(overlay)) == 0
        report = source_report(workdir)
        assert report["folders_todo"] == 1 + len(failing_folders(workdir) - {"3000001"})
        assert len(ran(workdir, "FeaturizeShard")) == len(report["work"]) and at_most_one_per_target(report)
        assert featurized(workdir) == report["folders_todo"]
        assert states(workdir)["Encode"] == "Succeeded"


class TestValidAutoShardsWithoutReconcile:
    def test_the_listing_plans_the_work_and_one_changed_byte_reruns_one_folder(self, tmp_path):
        """No Reconcile, no prefixes: the listing step lists InputUri, looks every record folder
        up in the record cache and packs what it lacks by bytes."""
        overlay = tmp_path / "raw-auto.yaml"
        overlay.write_text("stages:\n  reconcile: null\n  encode: null\n  featurize:\n    macroshards: auto\n"
                           "    target_shard_size: 100KB\n")
        workdir = tmp_path / "work"
        assert run(workdir, "--overlay", str(overlay), plan=False) == 0
        report = source_report(workdir, "Listing")
        assert report["macroshards"] == 8 and report["folders_todo"] == report["folders_total"]
        assert len(ran(workdir, "FeaturizeShard")) == len(report["work"]) and len(set(summary(workdir)["artifact"])) == 24
        flip_a_byte(workdir)
        assert run(workdir, "--overlay", str(overlay)) == 0
        report = source_report(workdir, "Listing")
        assert report["folders_todo"] == 1 + len(failing_folders(workdir) - {"3000001"})
        assert featurized(workdir) == report["folders_todo"] and at_most_one_per_target(report)


@pytest.fixture
def raw_prefixes(tmp_path):
    """Featurize + Combine over the sample's group folders 30 and 31 (no Reconcile)."""
    config = tmp_path / "raw.yaml"
    import yaml

    data = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    del data["stages"]["reconcile"], data["stages"]["encode"], data["stages"]["featurize"]["macroshards"]
    data["stages"]["featurize"]["prefixes"] = ["30", "31"]
    data["schedules"] = []
    config.write_text(yaml.safe_dump(data))
    assert run(tmp_path, config=config, plan=False) == 0
    assert sorted(states(tmp_path)) == ["Combine", "Featurize-30", "Featurize-31", "Listing"]
    return tmp_path, config


class TestValidRawPrefixes:
    def test_unchanged_then_add_change_delete_rerun_that_prefix_only(self, raw_prefixes):
        workdir, config = raw_prefixes
        assert run(workdir, config=config) == 0  # what failed is tried again; an untouched prefix's empty work runs once
        assert featurized(workdir) == len(failing_folders(workdir)) > 0
        assert run(workdir, config=config) == 0
        assert states(workdir) == {"Listing": "Succeeded", "Featurize-30": "Cached", "Featurize-31": "Cached",
                                   "Combine": "Succeeded"}

        root = workdir / SAMPLE / "mimic3wdb"
        write_record(root / "31/3199999", "3199999", seed=3)  # added
        assert run(workdir, config=config) == 0
        assert ran(workdir) == ["Featurize-31"]
        assert "3199999" in set(summary(workdir)["artifact"])

        header = root / "30/3000002/3000002_0001.hea"  # changed
        header.write_text(header.read_text() + "# edited\n")
        assert run(workdir, config=config) == 0
        assert ran(workdir) == ["Featurize-30"]
        assert featurize_reports(workdir)["Featurize-30"]["folders"] == \
            1 + len({f for f in failing_folders(workdir) if f.startswith("30")} - {"3000002"})

        shutil.rmtree(root / "31/3100004")  # deleted: nothing to featurize, gone from the table
        assert run(workdir, config=config) == 0
        assert "3100004" not in set(summary(workdir)["artifact"])


def block_shard_output(workdir: Path, shard_index: int) -> Path:
    """Make one shard's Featurize upload fail (a file where its output folder must go), as a
    transient storage error would: same inputs, same cache key, a failed step."""
    report = json.loads((output_dir(workdir, "Reconcile", "reconcile") / "report.json").read_text())
    place = Path(report["work"][shard_index]["uri"].replace("s3://", str(workdir / "s3") + "/"))
    blocker = place / "features"
    if blocker.is_dir():
        shutil.rmtree(blocker)
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("not a folder")
    return blocker


@pytest.fixture(scope="module")
def partial_run(tmp_path_factory):
    """An execution where shard 2 of 2 failed and Combine (run_when_shards_fail) combined shard 1."""
    tmp_path = tmp_path_factory.mktemp("partial")
    overlay = tmp_path / "any.yaml"
    overlay.write_text("stages:\n  combine:\n    run_when_shards_fail: true\n")
    assert run(tmp_path, "--overlay", str(overlay), "--only", "Reconcile", plan=False) == 0
    blocker = block_shard_output(tmp_path, 1)
    assert run(tmp_path, "--overlay", str(overlay)) == 1
    got = states(tmp_path)
    assert (got["Featurize-shard-0002"], got["Combine"], got["Encode"]) == ("Failed", "Succeeded", "Succeeded")
    combined = json.loads((output_dir(tmp_path, "Combine", "combine") / "report.json").read_text())
    assert combined["shards_missing"] == ["shard-0002"]
    blocker.unlink()  # the error goes away
    return tmp_path, len(set(summary(tmp_path)["artifact"]))


@pytest.fixture
def partial(partial_run, tmp_path):
    """A copy of `partial_run`'s workdir, for a test that runs again there."""
    from tests.pipeline.conftest import copy_workdir

    workdir, artifacts = partial_run
    copy = copy_workdir(workdir, tmp_path / "w")
    return copy, copy / "any.yaml", artifacts


@pytest.mark.xdist_group("partial")
class TestValidPartialCombine:
    def _assert_complete(self, workdir: Path, partial_artifacts: int) -> None:
        got = states(workdir)
        assert got["Featurize-shard-0002"] == "Succeeded" and got["Combine"] == "Succeeded"
        assert got["Encode"] == "Succeeded"  # a fresh Encode over the complete summary
        combined = json.loads((output_dir(workdir, "Combine", "combine") / "report.json").read_text())
        assert combined["shards_missing"] == [] and combined["complete"] and not combined["reused"]
        assert len(set(summary(workdir)["artifact"])) == 24 > partial_artifacts

    def test_resumed_run_recombines(self, partial):
        workdir, overlay, artifacts = partial
        assert run(workdir, "--overlay", str(overlay), "--retry") == 0
        assert last_execution(workdir)["Steps"]["Reconcile"]["State"] == "Reused"  # it is the same execution
        self._assert_complete(workdir, artifacts)

    def test_new_execution_recombines(self, partial):
        workdir, overlay, artifacts = partial
        assert run(workdir, "--overlay", str(overlay), "--param", "Reload=true") == 0  # other parameters: new
        # Shard 1's rows are in the record cache: its work is only what failed.
        assert featurize_reports(workdir)["Featurize-shard-0001"]["folders"] == \
            len(featurize_reports(workdir)["Featurize-shard-0001"]["record_cache_uncached"])
        self._assert_complete(workdir, artifacts)


class TestValidSharedRecordCache:
    def test_two_concurrent_executions_give_identical_results(self, aws, tmp_path):
        """Two executions, each with its own workdir, on one S3 (the moto server) at once: they
        share the record cache and the content-addressed places, and agree byte for byte."""
        import threading

        import boto3

        boto3.client("s3").create_bucket(Bucket="wavepipe-example")
        assert run(tmp_path / "seed", "--s3-endpoint", aws, "--only", "Reconcile", plan=False) == 0  # sample data
        codes = {}

        def go(name: str) -> None:
            codes[name] = run(tmp_path / name, "--s3-endpoint", aws, plan=False)

        threads = [threading.Thread(target=go, args=(n,)) for n in ("a", "b")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert codes == {"a": 0, "b": 0}
        s3 = boto3.client("s3")
        summaries = []
        for name in ("a", "b"):
            uri = last_execution(tmp_path / name)["Steps"]["Combine"]["Outputs"]["combine"]
            key = uri.split("/", 3)[3] + "/waveform_summary.parquet"
            summaries.append(s3.get_object(Bucket="wavepipe-example", Key=key)["Body"].read())
        assert summaries[0] == summaries[1]


# From a copy of the example's first run, made once by the worker of the group that shares it.
@pytest.mark.xdist_group("example_run")
class TestValidRecordCacheAcrossExperiments:
    def test_a_new_experiment_reuses_the_rows_of_the_same_data(self, example_copy):
        """The record cache is the pipeline's: a new ExperimentName copies the data into its own
        folder, and its work is only what failed (the copies' files are the same: same keys)."""
        workdir = example_copy
        assert run(workdir, "--param", "ExperimentName=another") == 0
        report = source_report(workdir)
        steps = last_execution(workdir)["Steps"]
        assert all("/experiments/another/" in steps[s]["Outputs"]["features"] for s in featurize_reports(workdir))
        assert report["folders_todo"] == len(failing_folders(workdir)) and report["folders_cached"] > 0
        assert report["record_cache_rejected"] == [] and featurized(workdir) == report["folders_todo"]
        assert len(set(summary(workdir)["artifact"])) == 24


@pytest.mark.xdist_group("eight_shards")
def test_labels_db_is_the_sample_one(eight_shards):
    """Guard for the scenarios above: the orphan label they give files to is in the sample."""
    workdir, _ = eight_shards
    with sqlite3.connect(workdir / SAMPLE / "labels.sqlite") as db:
        assert db.execute("SELECT count(*) FROM waveform_labels WHERE artifact_id = '3299999'").fetchone() == (1,)
