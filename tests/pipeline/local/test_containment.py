"""Every key and path a local run derives stays inside its root (pipeline/local/containment.py,
sandbox staging, the storage's own check): hostile parameters are refused at start, naming the
parameter, before anything is written; hostile keys reaching a step fail that step, named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.local import StepState
from tests.conftest import EXAMPLE_CONFIG
from tests.pipeline.local.helpers import BUCKET, EXEC_ID, definition, put, run, s3_input, step

ESCAPES = ["../../escape", "a/../../../escape", "/abs/../../escape", "..", "a\\..\\b", "x\x00y", "./x"]


def files_outside(tmp_path: Path, inside: Path) -> list[Path]:
    return [p for p in tmp_path.rglob("*") if p.is_file() and inside not in p.parents]


def with_parameter() -> dict:
    body = step("A")
    body["Arguments"]["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"] = {
        "Std:Join": {"On": "/", "Values": [f"s3://{BUCKET}/experiments", {"Get": "Parameters.ExperimentName"},
                                           EXEC_ID, "out"]}}
    return definition(body, parameters=[{"Name": "ExperimentName", "Type": "String", "DefaultValue": "e1"}])


class TestValidParameters:
    @pytest.mark.parametrize("value", ["e1", "team/e1", "e..1", "e.1"])
    def test_ordinary_values_run(self, tmp_path, value):
        assert run(with_parameter(), tmp_path, params={"ExperimentName": value}).ok


class TestInvalidParameters:
    @pytest.mark.parametrize("value", ESCAPES)
    def test_a_parameter_that_escapes_is_refused_by_name_before_anything_runs(self, tmp_path, value):
        with pytest.raises(ValueError, match=r"parameter ExperimentName=.*step A.*refused before anything ran"):
            run(with_parameter(), tmp_path, params={"ExperimentName": value})
        assert [p for p in tmp_path.rglob("*") if p.is_file()] == []  # no asset, no record, nothing

    def test_a_hostile_default_is_refused_too(self, tmp_path):
        defn = with_parameter()
        defn["Parameters"][0]["DefaultValue"] = "../../escape"
        with pytest.raises(ValueError, match="parameter ExperimentName"):
            run(defn, tmp_path)

    def test_the_cli_refuses_experiment_name_escaping_the_storage_root(self, tmp_path, capsys):
        """The attack run's case: `local --param ExperimentName=../../...` wrote 294 files outside
        the storage root with rc 0."""
        workdir = tmp_path / "work"
        code = main(["local", "--config", str(EXAMPLE_CONFIG), "--workdir", str(workdir),
                     "--param", "ExperimentName=../../../../escaped"])
        err = capsys.readouterr().err
        assert code == 2 and "ExperimentName" in err and "'../../../../escaped'" in err
        assert files_outside(tmp_path, workdir) == []
        assert not (workdir / "executions").exists()  # refused before any execution began


class TestInvalidStaging:
    def test_a_manifest_entry_with_dot_dot_fails_its_step_named_and_stages_nothing_outside(self, tmp_path):
        put(tmp_path, f"s3://{BUCKET}/data/ok.txt", b"ok")
        manifest = [{"prefix": f"s3://{BUCKET}/data/"}, "ok.txt", "../../../../../../outside.txt"]
        put(tmp_path, f"s3://{BUCKET}/m/shard.manifest", json.dumps(manifest).encode())
        defn = definition(step("A", inputs=[s3_input("data", f"s3://{BUCKET}/m/shard.manifest",
                                                     data_type="ManifestFile")]))
        result = run(defn, tmp_path)
        assert result.steps["A"].state is StepState.FAILED
        assert "outside.txt" in result.steps["A"].reason and "staged outside" in result.steps["A"].reason
        assert not list(tmp_path.rglob("outside.txt"))

    @pytest.mark.parametrize("where", ["Environment", "ContainerArguments", "S3Uri"])
    def test_a_resolved_uri_with_dot_dot_fails_its_step_before_it_runs(self, tmp_path, where):
        body = step("A")
        hostile = f"s3://{BUCKET}/runs/../../../escape"
        if where == "Environment":
            body["Arguments"]["Environment"] = {"MY_TARGET": hostile}
        elif where == "ContainerArguments":
            body["Arguments"]["AppSpecification"]["ContainerArguments"] += ["--extra", hostile]
        else:
            body["Arguments"]["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"] = hostile
        result = run(definition(body), tmp_path)
        assert result.steps["A"].state is StepState.FAILED
        assert "cannot resolve its arguments" in result.steps["A"].reason and "'..'" in result.steps["A"].reason
        assert files_outside(tmp_path, tmp_path / "work") == [] and not (tmp_path / "work" / "executions" /
                                                                         result.execution_id / "jobs").exists()
