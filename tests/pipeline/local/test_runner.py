"""Runner semantics on small purpose-built definitions, with local-disk storage."""

from __future__ import annotations

import sys

import pytest

from pipeline.local import StepState, UnsupportedDefinition, run_pipeline
from tests.pipeline.local.helpers import (
    BUCKET, EXEC_ID, definition, echo_of, get, run, s3_input, s3_path, step,
)


class TestExpressions:
    def test_parameters_joins_and_execution_variables(self, tmp_path):
        params = [{"Name": "Tag", "Type": "String", "DefaultValue": "dflt"},
                  {"Name": "N", "Type": "Integer", "DefaultValue": 2},
                  {"Name": "Flag", "Type": "Boolean", "DefaultValue": False}]
        args = ["--tag", {"Std:Join": {"On": "-", "Values": [
            {"Get": "Parameters.Tag"}, {"Get": "Parameters.N"}, {"Get": "Parameters.Flag"}]}},
            "--extra", {"Get": "Execution.PipelineName"},
            "--extra", {"Get": "Execution.ProcessingJobName"},
            "--extra", {"Get": "Execution.StartDateTime"}]
        env = {"MY_ID": EXEC_ID, "MY_ARN": {"Get": "Execution.PipelineExecutionArn"},
               "MY_PATH": "/opt/ml/processing/input/code"}
        result = run(definition(step("A", args=args, env=env), parameters=params), tmp_path,
                     pipeline_name="demo", params={"N": "5"})
        assert result.ok and result.exit_code == 0
        echo = echo_of(tmp_path, result, "A")
        assert echo["tag"] == "dflt-5-false"
        assert echo["extra"][0] == "demo"
        assert echo["extra"][1] == f"pipelines-{result.execution_id}-A"
        assert echo["extra"][2].endswith("Z")
        assert echo["env"]["MY_ID"] == result.execution_id
        assert echo["env"]["MY_ARN"].endswith(f"pipeline/demo/execution/{result.execution_id}")
        # /opt/ml/processing is mapped into the sandbox in arguments and environment alike
        assert "/opt/ml" not in " ".join(echo["argv"]) and "/opt/ml" not in echo["env"]["MY_PATH"]
        assert echo["env"]["WAVEPIPE_LOCAL"] == "1"
        assert echo["env"]["WAVEPIPE_S3_ROOT"] == str(tmp_path / "work" / "s3")
        uri = result.steps["A"].outputs["out"]
        assert uri == f"s3://{BUCKET}/runs/{result.execution_id}/A/out"
        assert result.steps["A"].locations["out"] == str(s3_path(tmp_path, uri))

    def test_parameter_override_errors(self, tmp_path):
        params = [{"Name": "N", "Type": "Integer", "DefaultValue": 2}]
        defn = definition(step("A"), parameters=params)
        with pytest.raises(ValueError, match="Integer"):
            run(defn, tmp_path, params={"N": "two"})
        with pytest.raises(ValueError, match="unknown pipeline parameter"):
            run(defn, tmp_path, params={"M": "1"})

    def test_property_references_order_steps_and_carry_outputs(self, tmp_path):
        a = step("A")
        b = step("B", inputs=[s3_input("up", get("A"))],
                 args=["--extra", {"Get": "Steps.A.ProcessingJobName"},
                       "--extra", {"Get": "Steps.A.ProcessingJobStatus"}])
        result = run(definition(b, a), tmp_path)  # listed out of order on purpose
        assert result.ok
        echo = echo_of(tmp_path, result, "B")
        assert echo["extra"] == [f"pipelines-{result.execution_id}-A", "Completed"]
        assert echo["inputs"][next(iter(echo["inputs"]))] == ["echo-algo-1.json"]


class TestDependencies:
    def test_failure_stops_descendants_others_finish(self, tmp_path):
        defn = definition(
            step("Bad", "fail"),
            step("Child", inputs=[s3_input("up", get("Bad"))]),
            step("Grandchild", depends_on=["Child"]),
            step("Independent"),
            step("OnFailure", depends_on=[{"Step": "Bad", "Trigger": "Failed"}]),
            step("Always", depends_on=[{"Step": "Bad", "Trigger": "Any"}]),
            step("OnSuccess", depends_on=[{"Step": "Independent", "Trigger": "Failed"}]),
        )
        result = run(defn, tmp_path)
        states = {n: s.state for n, s in result.steps.items()}
        assert states == {
            "Bad": StepState.FAILED, "Child": StepState.SKIPPED,
            "Grandchild": StepState.SKIPPED, "Independent": StepState.SUCCEEDED,
            "OnFailure": StepState.SUCCEEDED, "Always": StepState.SUCCEEDED,
            "OnSuccess": StepState.SKIPPED,
        }
        assert not result.ok and result.exit_code == 1
        assert "exited with code 3" in result.steps["Bad"].reason
        # the log holds the command the real bootstrap ran, with the sandbox's paths, and what
        # the task printed (nothing)
        root = result.workdir / "executions" / result.execution_id / "jobs" / "Bad" / "algo-1" / "processing"
        assert result.steps["Bad"].log.read_text().splitlines() == [
            f"# attempt 1: {sys.executable} {root}/input/code/bootstrap.py tasks.fail --output {root}/output/out"]
        # the failed step wrote files, but nothing reached its destination
        bad_out = s3_path(tmp_path, f"s3://{BUCKET}/runs/{result.execution_id}/Bad")
        assert not bad_out.exists()

    def test_failure_reason_is_the_steps_own_error_line(self, tmp_path):
        """SageMaker's FailureReason comes from /opt/ml/output/message; without one (a crash
        before the stage's entry) the log's last exception line stands in."""
        result = run(definition(step("Said", "message"), step("Raised", "raise")), tmp_path)
        assert result.steps["Said"].reason == (
            "AlgorithmError: featurize: 2/3 records failed; every error: errors.parquet")
        assert result.steps["Raised"].reason == (
            "AlgorithmError: ValueError: record r1: header names 3 signals, the data has 2")

    def test_max_parallel_one_runs_one_step_at_a_time(self, tmp_path, monkeypatch):
        monkeypatch.setenv("MY_SHARED_DIR", str(tmp_path))
        defn = definition(*(step(f"S{i}", "exclusive") for i in range(3)))
        result = run(defn, tmp_path, max_parallel=1, cores=4)
        assert result.ok, {n: s.reason for n, s in result.steps.items()}

    def test_cores_are_shared_between_ready_steps(self, tmp_path):
        result = run(definition(step("A"), step("B")), tmp_path, cores=2)
        assert echo_of(tmp_path, result, "A")["env"]["LOKY_MAX_CPU_COUNT"] == "1"
        alone = run(definition(step("C")), tmp_path, cores=2)
        assert echo_of(tmp_path, alone, "C")["env"]["LOKY_MAX_CPU_COUNT"] == "2"


class TestRefusal:
    def test_unsupported_constructs_are_refused_by_name_before_running(self, tmp_path):
        pipe = step("Piped", inputs=[s3_input("d", f"s3://{BUCKET}/x", mode="Pipe")])
        jsonget = step("Json", args=["--tag", {"Std:JsonGet": {
            "PropertyFile": {"Get": "Steps.Piped.PropertyFiles.f"}, "Path": "a"}}])
        train = {"Name": "Train", "Type": "Training", "Arguments": {}}
        cond = {"Name": "Check", "Type": "Condition", "Arguments": {}}
        badget = step("BadGet", args=["--tag", {"Get": "Parameters.Nope"},
                                      "--extra", {"Get": "Steps.Piped.NoSuchProperty"},
                                      "--extra", {"Get": "Execution.TrainingJobName"}])
        badout = step("BadOut", inputs=[s3_input("u", get("Piped", "nope"))])
        with pytest.raises(UnsupportedDefinition) as err:
            run(definition(pipe, jsonget, train, cond, badget, badout), tmp_path)
        text = str(err.value)
        for needle in ("S3InputMode 'Pipe'", "Std:JsonGet", "'Training'", "'Condition'",
                       "Parameters.Nope", "NoSuchProperty", "TrainingJobName", "'nope'"):
            assert needle in text
        assert not (tmp_path / "work").exists()

    def test_cycles_are_refused(self, tmp_path):
        defn = definition(step("A", depends_on=["B"]), step("B", depends_on=["A"]))
        with pytest.raises(UnsupportedDefinition, match="cycle"):
            run(defn, tmp_path)

    def test_empty_input_fails_the_step(self, tmp_path):
        result = run(definition(step("A", inputs=[s3_input("d", f"s3://{BUCKET}/none/")])),
                     tmp_path)
        assert result.steps["A"].state is StepState.FAILED
        assert "no objects found" in result.steps["A"].reason


class TestParallelismConfiguration:
    def test_the_definitions_max_parallel_steps_is_honoured(self, tmp_path, monkeypatch):
        """`exclusive` fails when another step holds the shared lock: with MaxParallelExecutionSteps
        1 from the definition (no max_parallel given), steps never overlap."""
        monkeypatch.setenv("MY_SHARED_DIR", str(tmp_path))
        defn = definition(*(step(f"S{i}", "exclusive") for i in range(3)))
        defn["ParallelismConfiguration"] = {"MaxParallelExecutionSteps": 1}
        result = run(defn, tmp_path, cores=4)
        assert result.ok, {n: s.reason for n, s in result.steps.items()}
