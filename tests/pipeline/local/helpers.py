"""Building small pipeline definitions (the JSON `Pipeline.definition()` emits) for tests."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
import json
import time
from pathlib import Path

from pipeline.build.bundle import STEPS_DIR
from pipeline.local import run_pipeline
from tests.pipeline.local.bundle_src import TASKS

BUCKET = "bkt"
CODE = "/opt/ml/processing/input/code"
EXEC_ID = {"Get": "Execution.PipelineExecutionId"}


def bundle() -> bytes:
    """A byte-identical bundle on every call (gzip without a timestamp), as the builder's is."""
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode="w") as tar:
        for name, text in sorted(TASKS.items()):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 0
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def assets() -> dict[str, bytes]:
    """The test bundle beside the real steps/bootstrap.py, the entrypoint every job runs."""
    data = bundle()
    bootstrap = (STEPS_DIR / "bootstrap.py").read_bytes()
    prefix = f"s3://{BUCKET}/code/{hashlib.sha256(data + bootstrap).hexdigest()[:12]}"
    return {f"{prefix}/bootstrap.py": bootstrap, f"{prefix}/bundle.tar.gz": data}


CODE_PREFIX = next(iter(assets())).rsplit("/", 1)[0] + "/"


def s3_input(name: str, uri, local: str | None = None, data_type: str = "S3Prefix",
             distribution: str = "FullyReplicated", mode: str = "File") -> dict:
    return {"InputName": name, "S3Input": {
        "S3Uri": uri, "LocalPath": local or f"/opt/ml/processing/input/{name}",
        "S3DataType": data_type, "S3InputMode": mode,
        "S3DataDistributionType": distribution, "S3CompressionType": "None"}}


def out_uri(step: str, name: str = "out") -> dict:
    return {"Std:Join": {"On": "/", "Values": [f"s3://{BUCKET}/runs", EXEC_ID, step, name]}}


def step(name: str, task: str = "echo", *, inputs: list[dict] = (), args: list = (),
         outputs: list[str] = ("out",), env: dict | None = None, depends_on: list = (),
         cache: dict | None = None, instances=1, retry: list[dict] | None = None) -> dict:
    """A Processing step running `tasks.<task>` with `--input` per input and `--output`."""
    argv = ["tasks." + task]
    for item in inputs:
        argv += ["--input", item["S3Input"]["LocalPath"]]
    if outputs:
        argv += ["--output", f"/opt/ml/processing/output/{outputs[0]}"]
    argv += list(args)
    body = {
        "Name": name, "Type": "Processing",
        "Arguments": {
            "ProcessingResources": {"ClusterConfig": {
                "InstanceType": "ml.m5.xlarge", "InstanceCount": instances, "VolumeSizeInGB": 30}},
            "AppSpecification": {"ImageUri": "img:1", "ContainerEntrypoint": [
                "python3", f"{CODE}/bootstrap.py"], "ContainerArguments": argv},
            "RoleArn": "arn:aws:iam::123456789012:role/r",
            "ProcessingInputs": [s3_input("code", CODE_PREFIX, CODE)] + list(inputs),
            "ProcessingOutputConfig": {"Outputs": [
                {"OutputName": o, "S3Output": {"S3Uri": out_uri(name, o),
                 "LocalPath": f"/opt/ml/processing/output/{o}", "S3UploadMode": "EndOfJob"}}
                for o in outputs]},
            "Environment": env or {},
        },
    }
    if depends_on:
        body["DependsOn"] = list(depends_on)
    if cache:
        body["CacheConfig"] = cache
    if retry:
        body["RetryPolicies"] = retry
    return body


def definition(*steps: dict, parameters: list[dict] = ()) -> dict:
    return {"Version": "2020-12-01", "Metadata": {}, "Parameters": list(parameters),
            "PipelineExperimentConfig": {
                "ExperimentName": {"Get": "Execution.PipelineName"},
                "TrialName": {"Get": "Execution.PipelineExecutionId"}},
            "Steps": list(steps)}


def get(step_name: str, output: str = "out") -> dict:
    return {"Get": f"Steps.{step_name}.ProcessingOutputConfig.Outputs['{output}'].S3Output.S3Uri"}


def wait_for(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(0.05)


def run(defn, tmp_path: Path, **kwargs):
    kwargs.setdefault("progress", False)
    return run_pipeline(defn, assets=assets(), workdir=tmp_path / "work", **kwargs)


def s3_path(tmp_path: Path, uri: str) -> Path:
    return tmp_path / "work" / "s3" / uri[len("s3://"):]


def echo_of(tmp_path: Path, result, name: str, host: str = "algo-1") -> dict:
    out = s3_path(tmp_path, result.steps[name].outputs["out"])
    return json.loads((out / f"echo-{host}.json").read_text())


def put(tmp_path: Path, uri: str, data: bytes = b"x") -> None:
    path = s3_path(tmp_path, uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
