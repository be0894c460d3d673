"""The expected shape of a wavepipe processing step, spelled out (not computed by the builder),
so each stage's test can assert its whole step dict, as the SageMaker SDK's own workflow
tests do. Hashes of code and settings are replaced by placeholders (`normalized`)."""

from __future__ import annotations

import json
import re

import pytest

from pipeline.build.compose import build
from pipeline.config import load_config, validate_config
from tests.conftest import EXAMPLE_CONFIG, ROOT

BASE = "s3://wavepipe-example/wavepipe/wavepipe-example"
MIMIC_BASE = "s3://my-feature-bucket/wavepipe/mimic3wdb-waveform-summary"
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.4-2-py312-cpu-py3"
ROLE = "arn:aws:iam::123456789012:role/wavepipe-pipeline"
EXECUTION_ID = {"Get": "Execution.PipelineExecutionId"}
def shard_uri(index: int, source: str = "Reconcile") -> dict:
    """The place of macroshard `index`'s work (what the record cache lacks), from the source's report."""
    return {"Std:JsonGet": {"Path": f"work[{index}].uri",
                            "PropertyFile": {"Get": f"Steps.{source}.PropertyFiles.{source}Report"}}}
RETRY = [
    {"BackoffRate": 2.0, "ExceptionType": ["Step.SERVICE_FAULT", "Step.THROTTLING"], "IntervalSeconds": 30,
     "MaxAttempts": 3},
    {"BackoffRate": 2.0, "ExceptionType": ["SageMaker.CAPACITY_ERROR", "SageMaker.JOB_INTERNAL_ERROR"],
     "IntervalSeconds": 30, "MaxAttempts": 3},
    # the instance quota: a policy of its own, long interval (issue 12)
    {"BackoffRate": 1.0, "ExceptionType": ["SageMaker.RESOURCE_LIMIT"], "IntervalSeconds": 300, "MaxAttempts": 10},
]


def param(name: str) -> dict:
    return {"Get": f"Parameters.{name}"}


def join(*values, on: str = "/") -> dict:
    return {"Std:Join": {"On": on, "Values": list(values)}}


def s3_in(name: str, uri, local: str, data_type: str = "S3Prefix") -> dict:
    return {"InputName": name, "S3Input": {
        "LocalPath": local, "S3CompressionType": "None", "S3DataDistributionType": "FullyReplicated",
        "S3DataType": data_type, "S3InputMode": "File", "S3Uri": uri}}


def s3_out(name: str, uri, local: str) -> dict:
    return {"OutputName": name, "S3Output": {"LocalPath": local, "S3UploadMode": "EndOfJob", "S3Uri": uri}}


def step(name: str, stage: str, arguments: list, inputs: list, outputs: list, *, base: str = BASE,
         tags: bool = True, cache: bool = True, volume: int = 30, **extra) -> dict:
    """A whole wavepipe processing step: `python -m steps.<stage>` from the code bundle."""
    args = {
        "AppSpecification": {
            "ContainerArguments": [f"steps.{stage}", *arguments, "--settings",
                                   f"/opt/ml/processing/input/settings/{stage}.json"],
            "ContainerEntrypoint": ["python3", "/opt/ml/processing/input/code/bootstrap.py"],
            "ImageUri": IMAGE,
        },
        "Environment": {"AWS_DEFAULT_REGION": "us-east-1", "PYTHONUNBUFFERED": "1", "WAVEPIPE_CODE_SHA256": "<bundle>",
                        "WAVEPIPE_PIP_INSTALL": "1",
                        "WAVEPIPE_STAGE": stage, "WAVEPIPE_WHEELHOUSE": "/opt/ml/processing/input/wheels"},
        "NetworkConfig": {"EnableInterContainerTrafficEncryption": True, "EnableNetworkIsolation": False},
        "ProcessingInputs": [
            s3_in("code", f"{base}/code/<code>/", "/opt/ml/processing/input/code"),
            s3_in("settings", f"{base}/settings/{stage}-<settings>/", "/opt/ml/processing/input/settings"),
            s3_in("wheels", f"{base}/wheels/<wheels>/", "/opt/ml/processing/input/wheels"),
            *inputs,
        ],
        "ProcessingOutputConfig": {"Outputs": outputs},
        "ProcessingResources": {"ClusterConfig": {
            "InstanceCount": 1, "InstanceType": param(f"{stage.capitalize()}InstanceType"), "VolumeSizeInGB": volume}},
        "RoleArn": ROLE,
        "StoppingCondition": {"MaxRuntimeInSeconds": 86400},
    }
    if tags:
        args["Tags"] = [{"Key": "project", "Value": "wavepipe"}]
    out = {"Arguments": args, "CacheConfig": {"Enabled": cache, "ExpireAfter": "P30D"}, "Name": name,
           "RetryPolicies": RETRY, "Type": "Processing"}
    out.update(extra)
    return out


def normalized(built) -> dict:
    """Step name -> step, with the code hash, settings hashes and featurize key as placeholders."""
    text = built.definition.replace(built.assets.bundle_sha256, "<bundle>").replace(built.assets.code_hash, "<code>")
    text = re.sub(r"/settings/([a-z]+)-[0-9a-f]{16}/", r"/settings/\1-<settings>/", text)
    text = re.sub(r"/wheels/[0-9a-f]{16}/", "/wheels/<wheels>/", text)
    # Step keys (a hash of a stage's code, settings, image, environment) are their own values.
    text = re.sub(r'"[0-9a-f]{16}"', '"<key>"', text)
    return {s["Name"]: s for s in json.loads(text)["Steps"]}


def adjacency(definition: str) -> dict[str, set[str]]:
    from pipeline.definition.model import step_dependencies

    return {s["Name"]: step_dependencies(s) for s in json.loads(definition)["Steps"]}


@pytest.fixture(scope="session")
def example_built():
    return build(load_config(EXAMPLE_CONFIG))


@pytest.fixture(scope="session")
def mimic_built():
    return build(load_config(ROOT / "config" / "mimic3wdb.yaml"))


def build_with(overrides: dict, base=EXAMPLE_CONFIG):
    """The example config with top-level sections replaced, built."""
    import yaml

    data = yaml.safe_load(base.read_text())
    data.update(overrides)
    return build(validate_config(data))
