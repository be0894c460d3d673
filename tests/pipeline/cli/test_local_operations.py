"""`status`, `logs` and `report` where a local run happened read its executions (no AWS);
`--sagemaker` (or no local execution) means the deployed pipeline's."""

from __future__ import annotations

import argparse

from pipeline.cli import main
from pipeline.config import load_config
from pipeline.local.operations import local_workdir
from tests.pipeline.conftest import EXAMPLE

STEP_ORDER = ("Reconcile", "Featurize-shard-0001", "Featurize-shard-0002", "Combine", "Encode")


class TestValidLocalOperations:
    def test_status_lists_local_executions_and_their_steps(self, example_run, capsys):
        workdir, _ = example_run
        capsys.readouterr()
        assert main(["status", "--config", EXAMPLE, "--workdir", str(workdir), "--limit", "1"]) == 0
        out, err = capsys.readouterr()
        assert out.startswith("local-") and "  Reconcile: Succeeded" in out and "  Encode: " in out
        assert f"local executions of wavepipe-example in {workdir} (--sagemaker" in err
        steps = [line.split(":")[0].strip() for line in out.splitlines()[1:]]
        assert steps == list(STEP_ORDER)  # the pipeline's order, not the record's (by name)

    def test_logs_of_the_newest_local_execution(self, example_run, capsys):
        workdir, _ = example_run
        capsys.readouterr()
        assert main(["logs", "--config", EXAMPLE, "--workdir", str(workdir)]) == 0
        out = capsys.readouterr().out
        assert "[Reconcile] # attempt 1: " in out or "[Combine] # attempt 1: " in out
        steps = list(dict.fromkeys(line.split("]")[0][1:] for line in out.splitlines()))
        assert steps == [name for name in STEP_ORDER if name in steps]  # step by step, in the pipeline's order

    def test_report_without_out_writes_beside_the_execution(self, example_run, capsys):
        workdir, _ = example_run
        capsys.readouterr()
        assert main(["report", "--config", EXAMPLE, "--workdir", str(workdir)]) == 0
        out = capsys.readouterr().out
        written = out.split("wrote ", 1)[1].split(" (execution ", 1)[0]
        assert written.startswith(str(workdir / "executions" / "local-")) and written.endswith("/report.html")

    def test_the_config_workdir_is_the_default_and_sagemaker_without_local_runs(self, tmp_path):
        cfg = load_config(EXAMPLE)
        args = argparse.Namespace(workdir=None, sagemaker=False)
        assert local_workdir(cfg.model_copy(update={"local": cfg.local.model_copy(
            update={"workdir": str(tmp_path / "none")})}), args) is None  # nothing ran there: SageMaker
        assert local_workdir(cfg, argparse.Namespace(workdir=None, sagemaker=True)) is None


class TestInvalidLocalOperations:
    def test_unknown_execution(self, example_run, capsys):
        workdir, _ = example_run
        assert main(["logs", "--config", EXAMPLE, "--workdir", str(workdir), "latest-nope"]) == 2
        assert "not found" in capsys.readouterr().err
