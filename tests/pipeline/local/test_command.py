"""`deploy.py local` end to end: the example configs on generated sample data, on local disk and
on the moto server, through the same CLI a user runs."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pandas as pd
import pytest

from pipeline.cli import main
from tests.conftest import ROOT, EXAMPLE_CONFIG
from tests.pipeline.conftest import RAW, captured_main, copy_workdir

# Its expensive fixtures (whole local runs) made once: these tests share one pytest-xdist worker.
pytestmark = pytest.mark.xdist_group("example_run")

EXAMPLE = str(EXAMPLE_CONFIG)
DOCUMENTS = str(ROOT / "config" / "documents.yaml")
OUT = "s3/wavepipe-example/wavepipe"


def summary_line(out: str) -> str:
    return next(line for line in out.splitlines() if line.startswith("execution "))


def counts(out: str) -> dict[str, int]:
    """`...; 3 cached, 2 succeeded` -> {"cached": 3, "succeeded": 2}."""
    tail = summary_line(out).rsplit("; ", 1)[1]
    return {state: int(n) for n, state in (part.split(" ", 1) for part in tail.split(", "))}


def newest(workdir: Path, pipeline: str, stage: str) -> Path:
    runs = sorted((workdir / OUT / pipeline).glob("local-*"), key=lambda p: p.stat().st_mtime)
    return next(p / stage for p in reversed(runs) if (p / stage).is_dir())


@pytest.fixture(scope="module")
def example_rerun(example_run, tmp_path_factory):
    """The example run again, unchanged, in a copy of example_run's workdir: (that workdir, the
    rerun's code, stdout and stderr). The Combine-change test runs once more after it there."""
    workdir, code = example_run
    assert code == 0
    copy = copy_workdir(workdir, tmp_path_factory.mktemp("rerun") / "w")
    # The first rerun tries again what failed (never cached) and runs each untouched shard's empty
    # work once; the one after is the rerun tested: Featurize a cache hit.
    assert captured_main(["local", "--config", EXAMPLE, "--workdir", str(copy)]).code == 0
    return copy, captured_main(["local", "--config", EXAMPLE, "--workdir", str(copy)])


class TestValidLocalRun:
    def test_example_succeeds_with_every_output(self, example_run):
        workdir, code = example_run
        assert code == 0
        reconcile = json.loads((newest(workdir, "wavepipe-example", "reconcile") / "report.json").read_text())
        assert reconcile["matched"] == 24 and reconcile["only_in_db"] == 1  # the sample's orphan label
        combine = newest(workdir, "wavepipe-example", "combine")
        summary = pd.read_parquet(combine / "waveform_summary.parquet")
        assert summary.artifact.nunique() == 24 and summary.is_numerics.any()
        assert (combine / "signal_stats.csv").is_file()

    def test_encoded_dataset_loads_and_agrees_with_label_maps(self, example_run):
        import datasets

        workdir, _ = example_run
        folder = newest(workdir, "wavepipe-example", "encode") / "full_dataset"
        dataset = datasets.load_from_disk(str(folder))
        label2id = json.loads((folder / "label2id.json").read_text())
        id2label = {int(k): v for k, v in json.loads((folder / "id2label.json").read_text()).items()}
        assert set(dataset) == {"train", "valid", "test"}
        assert {label2id[v]: v for v in label2id} == id2label
        assert sum(len(dataset[s]) for s in dataset) == json.loads((folder / "split_metadata.json").read_text())["rows"]

    def test_rerun_reuses_features(self, example_rerun):
        """Reconcile and Combine always run (they read what their cache keys cannot see); unchanged
        files give the same content-addressed shards and labels, so Featurize and Encode are cached."""
        workdir, rerun = example_rerun
        assert rerun.code == 0
        out, err = rerun.out, rerun.err
        assert counts(out) == {"cached": 3, "succeeded": 2}  # the final table: stdout
        assert "Featurize-shard-0001: Cached" in err and "Encode: Cached" in err  # progress: stderr
        assert "Featurize-shard-0001: Cached" not in out and not any(
            line.startswith("execution ") for line in err.splitlines())
        # The run ends with its results, each with the line that opens it, and the report command
        assert re.search(r"records: 1/\d+ records failed; most common: missing_data_file \(1 record, e.g. segment", out)
        assert "the features, one row per (record, segment, signal): s3/wavepipe-example/" in out
        assert 'pd.read_parquet("' in out and 'pd.read_csv("' in out and 'datasets.load_from_disk("' in out
        assert "report: `wavepipe report local-" in out
        table = out[:out.index("results (")]
        assert str(workdir) + "/s3" not in table  # paths relative to the workdir the table names
        # Combine's row names the most common record error of what it combined, as Featurize's does.
        combine = table[table.index("\nCombine "):table.index("\nEncode ")]
        assert re.search(r"records: 1/\d+ records failed; most common: missing_data_file \(1 record, e.g. segment",
                         combine)

    def test_combine_change_reuses_cached_shards(self, example_rerun, tmp_path, capsys):
        """Cached Featurize outputs stay where an earlier execution wrote them: Combine must find them."""
        workdir, _ = example_rerun
        overlay = tmp_path / "over.yaml"
        overlay.write_text("stages:\n  combine:\n    require_all_shards: false\n")  # not the default: a change
        capsys.readouterr()
        assert main(["local", "--config", EXAMPLE, "--overlay", str(overlay), "--workdir", str(workdir)]) == 0
        assert counts(capsys.readouterr().out) == {"cached": 2, "succeeded": 3}  # Reconcile, Combine, Encode ran
        report = json.loads((newest(workdir, "wavepipe-example", "combine") / "report.json").read_text())
        assert report["shards_combined"] == ["shard-0001", "shard-0002"]

    def test_documents_recipe(self, tmp_path):
        import datasets

        assert main(["local", "--config", DOCUMENTS, "--workdir", str(tmp_path)]) == 0
        folder = newest(tmp_path, "wavepipe-documents", "encode") / "full_dataset"
        train = datasets.load_from_disk(str(folder))["train"]
        assert len(train[0]["input_ids"]) == 64
        reconcile = json.loads((newest(tmp_path, "wavepipe-documents", "reconcile") / "report.json").read_text())
        assert reconcile["duplicates_dropped"] == 1  # the sample's duplicate document

class TestInvalidLocalRun:
    def test_bad_param_exits_2(self, tmp_path, capsys):
        assert main(["local", "--config", DOCUMENTS, "--workdir", str(tmp_path), "--param", "nope"]) == 2
        assert "KEY=VALUE" in capsys.readouterr().err

    def test_unknown_param_exits_2(self, tmp_path, capsys):
        assert main(["local", "--config", DOCUMENTS, "--workdir", str(tmp_path), "--param", "Colour=blue"]) == 2
        assert "Colour" in capsys.readouterr().err

    def test_failed_step_exits_non_zero(self, failed_documents_run):
        """The documents recipe with a labels query that fails (the run is shared with the report test)."""
        run = failed_documents_run
        assert run.code == 1
        out, err = run.out, run.err
        assert "Reconcile: Failed" in err  # progress
        table = out[out.index("execution "):]
        assert "Reconcile" in table and "Failed" in table and "Skipped" in table
        assert "why: AlgorithmError: reconcile: " in table  # the step's own reason, not an exit code

    def test_featurize_failure_names_the_common_error_and_errors_parquet(self, tmp_path, capsys):
        overlay = tmp_path / "strict.yaml"
        overlay.write_text(RAW + "    max_error_fraction: 0\n")
        workdir = tmp_path / "work"
        assert main(["local", "--config", EXAMPLE, "--overlay", str(overlay), "--workdir", str(workdir)]) == 1
        out = capsys.readouterr().out
        why = next(line for line in out.splitlines() if "why: " in line).split("why: ", 1)[1]
        assert re.match(r"AlgorithmError: featurize: 1/\d+ records failed, more than max_error_fraction=0.0; "
                        r"most common: missing_data_file \(1 record, e.g. segment", why)
        errors = workdir / why.rsplit("every error, one row per record: ", 1)[1]
        assert errors.name == "errors.parquet" and len(pd.read_parquet(errors)) == 1  # where it can be opened
        assert re.search(r"records: 1/\d+ records failed; most common: missing_data_file", out)


def test_max_parallel_steps_of_the_config_is_honoured(raw_download_run):
    """`max_parallel_steps: 1` (upsert's ParallelismConfiguration): the two Featurize shards,
    ready together, never run at the same time (issue 12: they did)."""
    (record,) = raw_download_run.glob("executions/*/execution.json")
    steps = json.loads(record.read_text())["Steps"]
    spans = sorted((s["Properties"]["ProcessingStartTime"], s["Properties"]["ProcessingEndTime"], name)
                   for name, s in steps.items())
    assert [name for *_, name in spans] == ["Listing", "Featurize-30", "Featurize-31", "Combine"]
    for (_, ended, _), (started, _, _) in zip(spans, spans[1:]):
        assert ended <= started


def test_streamed_featurize_on_two_hosts_combines_as_download_mode(raw_download_run, tmp_path, aws):
    """read_mode stream, instance_count 2, against the moto server: each shard's records split
    across the two local instances, merged by Combine into exactly the download-mode summary
    (raw_download_run's, which runs on folder storage)."""
    raw = "max_parallel_steps: 2\n" + RAW
    (tmp_path / "stream.yaml").write_text(raw + "    read_mode: stream\n    instance_count: 2\n")
    import boto3

    client = boto3.client("s3")
    client.create_bucket(Bucket="wavepipe-example")
    assert main(["local", "--config", EXAMPLE, "--overlay", str(tmp_path / "stream.yaml"),
                 "--workdir", str(tmp_path / "st"), "--s3-endpoint", aws]) == 0
    found = client.list_objects_v2(Bucket="wavepipe-example", Prefix="wavepipe/wavepipe-example/")["Contents"]
    hosts = sorted({k["Key"].split("/hosts/")[1].split("/")[0] for k in found if "/hosts/" in k["Key"]})
    assert hosts == ["algo-1", "algo-2"]
    (summary_key,) = [k["Key"] for k in found if k["Key"].endswith("/combine/waveform_summary.parquet")]
    streamed = pd.read_parquet(io.BytesIO(client.get_object(Bucket="wavepipe-example", Key=summary_key)["Body"].read()))
    downloaded = pd.read_parquet(newest(raw_download_run, "wavepipe-example", "combine") / "waveform_summary.parquet")
    pd.testing.assert_frame_equal(streamed, downloaded)
    # Back to one instance, nothing else changed: the steps built for two hosts are no cache hits
    # (their outputs are laid out per host, elsewhere), so every shard runs again and Combine
    # finds all of them: never a cached step whose outputs Combine cannot see.
    (tmp_path / "one.yaml").write_text(raw + "    read_mode: stream\n")
    assert main(["local", "--config", EXAMPLE, "--overlay", str(tmp_path / "one.yaml"),
                 "--workdir", str(tmp_path / "st"), "--s3-endpoint", aws]) == 0
    record = max((json.loads(p.read_text()) for p in (tmp_path / "st" / "executions").glob("*/execution.json")),
                 key=lambda r: r["Started"])
    assert {n: s["State"] for n, s in record["Steps"].items() if n.startswith("Featurize")} == {
        "Featurize-30": "Succeeded", "Featurize-31": "Succeeded"}
