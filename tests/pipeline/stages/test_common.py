"""What every step shares (pipeline/stages/common.py): retries and the volume key."""

from __future__ import annotations

import json

import yaml

from pipeline.build.compose import build
from pipeline.config import load_config
from tests.conftest import EXAMPLE_CONFIG


def built_without_checks(**image_and_stage) -> dict:
    """The example with a KMS key and some stages on other instance types, built without the
    cross-checks (which refuse the pair): the builder must not send the key for them either."""
    from pipeline.stages import default_registry

    data = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    data["aws"]["kms_key_id"] = "arn:aws:kms:us-east-1:123456789012:key/k"
    for stage, kind in image_and_stage.items():
        data["stages"][stage]["instance_type"] = kind
    cfg = default_registry().config_model().model_validate(data)
    return {s["Name"]: s for s in json.loads(build(cfg).definition)["Steps"]}


def test_no_volume_key_for_instance_storage_but_for_the_others():
    steps = built_without_checks(featurize="ml.m5d.4xlarge", combine="ml.g4dn.xlarge")
    cluster = {name: s["Arguments"]["ProcessingResources"]["ClusterConfig"] for name, s in steps.items()}
    assert "VolumeKmsKeyId" not in cluster["Featurize-shard-0001"] and "VolumeKmsKeyId" not in cluster["Combine"]
    assert cluster["Reconcile"]["VolumeKmsKeyId"] == "arn:aws:kms:us-east-1:123456789012:key/k"
    # outputs stay encrypted with the key: only the volume has the hardware's own encryption
    assert steps["Combine"]["Arguments"]["ProcessingOutputConfig"]["KmsKeyId"].endswith("key/k")


def test_resource_limit_is_retried_apart_with_a_long_interval():
    for step in json.loads(build(load_config(EXAMPLE_CONFIG)).definition)["Steps"]:
        quota = [p for p in step["RetryPolicies"] if "SageMaker.RESOURCE_LIMIT" in p["ExceptionType"]]
        assert quota == [{"BackoffRate": 1.0, "ExceptionType": ["SageMaker.RESOURCE_LIMIT"],
                          "IntervalSeconds": 300, "MaxAttempts": 10}]
