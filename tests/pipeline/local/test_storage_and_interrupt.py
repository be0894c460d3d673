"""The same runs against a real S3 API (the moto server), Ctrl-C, SDK definitions, the table."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import boto3

from pipeline.local import StepState, format_table, run_pipeline
from pipeline.local.progress import read_progress
from tests.conftest import ROOT
from tests.pipeline.local.helpers import (
    BUCKET, assets, definition, get, run, s3_input, step, wait_for,
)


def keys(client, prefix: str) -> list[str]:
    found = client.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    return sorted(obj["Key"] for obj in found)


def test_moto_endpoint_reads_and_writes_s3(tmp_path, aws):
    client = boto3.client("s3", endpoint_url=aws)
    client.create_bucket(Bucket=BUCKET)
    client.put_object(Bucket=BUCKET, Key="raw/a.txt", Body=b"a")
    defn = definition(
        step("A", inputs=[s3_input("d", f"s3://{BUCKET}/raw/")]),
        step("B", inputs=[s3_input("up", get("A"))]),
        step("Bad", "fail", depends_on=["A"]),
    )
    result = run_pipeline(defn, assets=assets(), workdir=tmp_path / "w", storage=aws,
                          progress=False)
    assert result.steps["B"].state is StepState.SUCCEEDED
    assert result.steps["Bad"].state is StepState.FAILED
    prefix = f"runs/{result.execution_id}/"
    assert keys(client, prefix + "B/out/") == [prefix + "B/out/copied/copied/a.txt",
                                               prefix + "B/out/copied/echo-algo-1.json",
                                               prefix + "B/out/echo-algo-1.json"]
    assert keys(client, prefix + "Bad/") == []  # failed: nothing uploaded
    echo = json.loads(client.get_object(Bucket=BUCKET, Key=prefix + "A/out/echo-algo-1.json")
                      ["Body"].read())
    assert echo["env"]["AWS_ENDPOINT_URL"] == aws and "WAVEPIPE_S3_ROOT" not in echo["env"]
    assert result.steps["A"].locations["out"].startswith("s3://")
    assert not (tmp_path / "w" / "s3").exists()


def test_ctrl_c_stops_every_child_and_reports(tmp_path):
    pid_file = tmp_path / "child.pid"
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(ROOT)!r})
        from pipeline.local import run_pipeline
        from tests.pipeline.local.helpers import assets, definition, step
        result = run_pipeline(definition(step("Slow", "sleep"), step("Next", depends_on=["Slow"])),
                              assets=assets(), workdir={str(tmp_path / 'w')!r}, progress=True)
        sys.exit(result.exit_code)
    """))
    env = dict(os.environ, MY_PID_FILE=str(pid_file))
    proc = subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    wait_for(lambda: pid_file.exists() and pid_file.read_text())
    child = int(pid_file.read_text())
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted: stopping every step's processes" in err  # progress: stderr
    assert "interrupted" in out and "Stopped" in out and "Pending" in out  # the final table: stdout
    wait_for(lambda: not _alive(child), timeout=10)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as fh:  # a zombie is dead
        return fh.read().split()[2] != "Z"


def test_a_definition_written_by_the_sdk_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("SAGEMAKER_VALIDATE_ROLE", "false")
    from sagemaker.core.processing import Processor
    from sagemaker.core.shapes import (
        ProcessingInput, ProcessingOutput, ProcessingS3Input, ProcessingS3Output,
    )
    from sagemaker.core.workflow.execution_variables import ExecutionVariables
    from sagemaker.core.workflow.functions import Join
    from sagemaker.core.workflow.parameters import ParameterString
    from sagemaker.core.workflow.pipeline_context import PipelineSession
    from sagemaker.mlops.workflow.pipeline import Pipeline
    from sagemaker.mlops.workflow.steps import CacheConfig, ProcessingStep

    from tests.pipeline.local.helpers import CODE, CODE_PREFIX

    session = PipelineSession(default_bucket=BUCKET)
    tag = ParameterString("Tag", default_value="from-sdk")
    proc = Processor(role="arn:aws:iam::123456789012:role/r", image_uri="img:1",
                     instance_count=1, instance_type="ml.m5.xlarge",
                     entrypoint=["python3", f"{CODE}/bootstrap.py"], sagemaker_session=session,
                     env={"MY_TAG": tag})
    code = ProcessingInput(input_name="code", s3_input=ProcessingS3Input(
        s3_uri=CODE_PREFIX, local_path=CODE, s3_data_type="S3Prefix", s3_input_mode="File"))

    def output(name):
        uri = Join(on="/", values=[f"s3://{BUCKET}/sdk", ExecutionVariables.PIPELINE_EXECUTION_ID,
                                   name])
        return ProcessingOutput(output_name="out", s3_output=ProcessingS3Output(
            s3_uri=uri, local_path="/opt/ml/processing/output/out", s3_upload_mode="EndOfJob"))

    first = ProcessingStep(name="First", step_args=proc.run(
        inputs=[code], outputs=[output("first")],
        arguments=["tasks.echo", "--output", "/opt/ml/processing/output/out", "--tag", tag]),
        cache_config=CacheConfig(enable_caching=True, expire_after="P30D"))
    up = ProcessingInput(input_name="up", s3_input=ProcessingS3Input(
        s3_uri=first.properties.ProcessingOutputConfig.Outputs["out"].S3Output.S3Uri,
        local_path="/opt/ml/processing/input/up", s3_data_type="S3Prefix", s3_input_mode="File"))
    second = ProcessingStep(name="Second", step_args=proc.run(
        inputs=[code, up], outputs=[output("second")],
        arguments=["tasks.echo", "--input", "/opt/ml/processing/input/up",
                   "--output", "/opt/ml/processing/output/out"]))
    pipeline = Pipeline(name="sdk-demo", parameters=[tag], steps=[first, second],
                        sagemaker_session=session)
    result = run(pipeline.definition(), tmp_path, pipeline_name="sdk-demo",
                 params={"Tag": "override"})
    assert result.ok, format_table(result)
    echo = json.loads((tmp_path / "work" / "s3" / BUCKET / "sdk" / result.execution_id
                       / "second" / "copied" / "echo-algo-1.json").read_text())
    assert echo["tag"] == "override" and echo["env"]["MY_TAG"] == "override"


def test_progress_files_and_final_table(tmp_path):
    stream = io.StringIO()
    result = run(definition(step("P", "progress"), step("Bad", "fail")), tmp_path,
                 progress=True, stream=stream)
    out = result.steps["P"].outputs["out"]
    progress = tmp_path / "work" / "s3" / out[len("s3://"):] / "progress.json"
    assert read_progress([progress, tmp_path / "absent.json"]) == (3, 4)
    text = stream.getvalue()
    assert "P: Running" in text and "P: Succeeded" in text and "Bad: Failed" in text
    assert "running: -" not in text and "| " not in text  # no empty status lines
    table = format_table(result)
    assert "FAILED" in table and "out: s3/" in table and f"relative to the workdir {tmp_path / 'work'}" in table
    assert str(result.steps["Bad"].log.relative_to(tmp_path / "work")) in table and "exited with code 3" in table


class TestLiveProgress:
    """One live line per running step on a terminal (a bar, records done/total, an ETA); plain
    lines elsewhere."""

    def result(self, name="Featurize-shard-0001"):
        from pipeline.local.results import StepResult

        return {name: StepResult(name, StepState.RUNNING, log=Path("x.log")), "Combine": StepResult("Combine")}

    def test_terminal_gets_a_bar_and_an_eta(self, tmp_path):
        from pipeline.local.progress import Progress

        path = tmp_path / "progress.json"
        stream = io.StringIO()
        progress = Progress(True, stream, lambda name: [path], live=True)
        path.write_text(json.dumps({"records_done": 3, "records_total": 12}))
        progress.status(self.result())
        progress._first["Featurize-shard-0001"] = (progress._first["Featurize-shard-0001"][0] - 3, 0)  # 1 record/s
        path.write_text(json.dumps({"records_done": 6, "records_total": 12}))
        progress.status(self.result())
        last = stream.getvalue().rsplit("\x1b[J", 1)[1]
        assert "Featurize-shard-0001  [############............] 6/12 records, ETA" in last
        assert "0 of 2 steps done" in last
        progress.note("Combine: Running")  # an event: the live lines are redrawn below it
        assert stream.getvalue().endswith("0 of 2 steps done\n") and "Combine: Running" in stream.getvalue()

    def test_not_a_terminal_gets_plain_lines_only_on_change(self, tmp_path):
        from pipeline.local.progress import Progress

        path = tmp_path / "progress.json"
        path.write_text(json.dumps({"records_done": 3, "records_total": 12}))
        stream = io.StringIO()
        progress = Progress(True, stream, lambda name: [path])
        progress.status(self.result())
        progress.status(self.result())
        lines = stream.getvalue().splitlines()
        assert len(lines) == 1 and "running: Featurize-shard-0001 3/12 records, ETA -" in lines[0]
        assert "\x1b" not in stream.getvalue() and "#" not in stream.getvalue()
