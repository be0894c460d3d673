"""`deploy.py plan`'s sizing table on the sample data: a full run against tonight's, after a
run (nothing to featurize) and after one changed record (one shard, that record's bytes) on
local storage, and before any run (everything) on the moto server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from pipeline.cli import main
from pipeline.config import load_config
from pipeline.plan.predict import make_sized_plan
from tests.conftest import EXAMPLE_CONFIG
from tests.pipeline.conftest import copy_workdir

# Its expensive fixture (a whole local run, raw_download_run) made once: these tests share one
# pytest-xdist worker with the other tests that use it.
pytestmark = pytest.mark.xdist_group("example_run")

SAMPLE = "s3/wavepipe-example/sample/mimic3wdb"


def raw_config(folder: Path) -> Path:
    """Listing + Featurize over the sample's group folders 30 and 31 + Combine: the fastest
    pipeline that has every part the table prices but Reconcile's copies (the example with
    tests/pipeline/conftest.py's RAW overlay, as one file)."""
    data = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    del data["stages"]["reconcile"], data["stages"]["encode"], data["stages"]["featurize"]["macroshards"]
    data["stages"]["featurize"]["prefixes"] = ["30", "31"]
    data["schedules"], data["local"]["workdir"] = [], None
    config = folder / "raw.yaml"
    config.write_text(yaml.safe_dump(data))
    return config


def rows(sizing, run: str) -> dict:
    return {r.stage: r for r in getattr(sizing, run)}


def plan_json(capsys, config: Path, workdir: Path, *extra: str) -> dict:
    capsys.readouterr()
    assert main(["plan", "--config", str(config), "--workdir", str(workdir), "--format", "json", *extra]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def after_a_run(raw_download_run, tmp_path_factory):
    """The workdir after two runs of that pipeline: the first is a copy of raw_download_run's
    (the tests below change its data)."""
    folder = tmp_path_factory.mktemp("sizing")
    copy_workdir(raw_download_run, folder / "w")
    config = raw_config(folder)
    # Once more: what failed is tried again, and an untouched prefix's empty work runs once.
    assert main(["local", "--config", str(config), "--workdir", str(folder / "w")]) == 0
    return config, folder / "w"


class TestValidPlanSizing:
    """In order: the last test changes the sample data."""

    def test_after_a_run_tonight_featurizes_nothing(self, after_a_run):
        config, workdir = after_a_run
        plans, sizing = make_sized_plan(load_config(config), workdir, "local", {})
        full, tonight = rows(sizing, "full"), rows(sizing, "tonight")
        assert list(full) == list(tonight) == ["Listing", "Featurize", "Combine"]
        # A full run: one job per prefix over all its bytes (what the listing lists).
        assert full["Featurize"].jobs == 2 and full["Featurize"].bytes == full["Listing"].bytes > 0
        assert full["Featurize"].instance.type == "ml.m5.4xlarge" and full["Featurize"].usd > 0
        assert (tonight["Featurize"].jobs, tonight["Featurize"].instance_hours, tonight["Featurize"].usd) == (0, 0, 0)
        assert tonight["Listing"].jobs == tonight["Combine"].jobs == 1  # they always run
        # The sample is a few MB: its reports measure start-up, not throughput.
        assert sizing.throughput.source.startswith("assumed from benchmarks/featurize_bench.py")
        assert "report(s) read only" in sizing.throughput.source

    def test_json_format_and_a_given_throughput(self, after_a_run, capsys):
        config, workdir = after_a_run
        out = plan_json(capsys, config, workdir, "--cpu-seconds-per-gb", "12.5", "--price", "ml.m5.4xlarge=2")
        assert [s["state"] for s in out["steps"]] == ["Runs", "Cached", "Cached", "Runs"]
        assert out["sizing"]["throughput"]["cpu_s_per_gb"] == 12.5
        [featurize] = [r for r in out["sizing"]["full"] if r["stage"] == "Featurize"]
        assert featurize["usd"] == pytest.approx(featurize["instance_hours"] * 2)

    def test_unknown_instance_type_is_a_note_not_a_crash(self, after_a_run, capsys):
        config, workdir = after_a_run
        capsys.readouterr()
        assert main(["plan", "--config", str(config), "--workdir", str(workdir),
                     "--param", "FeaturizeInstanceType=ml.x9.huge"]) == 0
        out = capsys.readouterr().out
        assert "note: Featurize: not sized: ml.x9.huge: no vCPU, network or price figures" in out
        assert "--price ml.x9.huge=USD_PER_HOUR:VCPUS:BASELINE_GBPS" in out
        assert main(["plan", "--config", str(config), "--workdir", str(workdir),
                     "--param", "FeaturizeInstanceType=ml.x9.huge", "--price", "ml.x9.huge=1:8:2"]) == 0
        assert "not sized" not in capsys.readouterr().out

    def test_one_changed_record_stages_its_folder_only(self, after_a_run):
        config, workdir = after_a_run
        folder = workdir / SAMPLE / "30/3000001"
        data = folder / "3000001_0001.dat"
        raw = bytearray(data.read_bytes())
        raw[100] ^= 0xFF
        data.write_bytes(bytes(raw))
        plans, sizing = make_sized_plan(load_config(config), workdir, "local", {})
        [step] = [p for p in plans if p.name.startswith("Featurize-") and p.state == "Runs"]
        assert step.name == "Featurize-30"
        tonight = rows(sizing, "tonight")["Featurize"]
        # The changed folder, and those of its shard that failed before (never cached): its work shard.
        assert tonight.jobs == 1 and step.featurize >= 1 and step.records_todo == step.records >= 1
        assert sum(f.stat().st_size for f in folder.iterdir()) <= step.bytes_todo == step.bytes
        assert (step.bytes_staged, step.bytes_fetched) == (step.bytes, 0)
        assert tonight.bytes == step.bytes < rows(sizing, "full")["Featurize"].bytes
        assert 0 < tonight.usd < rows(sizing, "full")["Featurize"].usd


class TestValidPlanSizingOnS3:
    def test_against_the_moto_server(self, aws, tmp_path, capsys):
        import boto3

        boto3.client("s3").create_bucket(Bucket="wavepipe-example")
        config = raw_config(tmp_path)
        # Only the listing: it uploads the sample data; nothing is featurized yet.
        assert main(["local", "--config", str(config), "--workdir", str(tmp_path / "w"), "--s3-endpoint", aws,
                     "--only", "Listing"]) == 0
        out = plan_json(capsys, config, tmp_path / "w", "--s3-endpoint", aws)
        full = {r["stage"]: r for r in out["sizing"]["full"]}
        tonight = {r["stage"]: r for r in out["sizing"]["tonight"]}
        assert full["Featurize"]["jobs"] == tonight["Featurize"]["jobs"] == 2
        # An empty record cache: every record's bytes (all but the group folders' RECORDS files).
        assert 0.99 * full["Featurize"]["bytes"] < tonight["Featurize"]["bytes"] <= full["Featurize"]["bytes"]
        assert tonight["Featurize"]["usd"] == pytest.approx(full["Featurize"]["usd"], rel=0.01)


class TestValidReconcileSizes:
    """What Reconcile lists and copies, from its prediction (keys relative to the shard)."""

    # The macroshards it lists, and the bytes of the files not yet in the experiment folder
    # (steps/reconcile/run.py `predict`: the production files a run copies).
    REPORT = {"shards": [{"name": "shard-0001", "files": 2, "bytes": 12}, {"name": "shard-0002", "files": 1, "bytes": 7}],
              "bytes_to_copy": 10}
    ARGUMENTS = {"AppSpecification": {"ContainerArguments": ["steps.reconcile", "--source-uri", "s3://prod/mimic"]}}

    def test_copies_what_is_not_yet_in_the_experiment(self):
        from pipeline.plan.predict import _source_sizes

        assert _source_sizes(self.ARGUMENTS, self.REPORT, copies=True) == \
            {"keys": 3, "bytes": 19, "bytes_todo": 10}

    def test_copies_nothing_when_featurize_reads_production(self):
        from pipeline.plan.predict import _source_sizes

        assert _source_sizes(self.ARGUMENTS, self.REPORT, copies=False) == {"keys": 3, "bytes": 19}
