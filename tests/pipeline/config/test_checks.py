"""The rules across keys (pipeline/config/checks.py and each stage's own)."""

from __future__ import annotations

import pytest

from pipeline.config import validate_config
from tests.pipeline.config.conftest import problems_of

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/wavepipe:1"


class TestValidChecks:
    def test_network_isolation_with_a_featurize_only_pipeline_without_record_cache(self, example):
        """A Featurize-only pipeline after a Reconcile run elsewhere is not a shape this config
        allows; what isolation leaves is this: every stage that calls S3 itself refused."""
        example["image"]["uri"] = IMAGE
        assert validate_config(example).image.uri == IMAGE

    def test_schedule_parameters_of_every_kind(self, example):
        example["schedules"][0]["parameters"] = {"Reload": True, "FeaturizeInstanceType": "ml.c5.9xlarge",
                                                 "InputUri": "s3://other-bucket/x", "EncodedDataDir": "partial_dataset"}
        assert validate_config(example).schedules[0].parameters["Reload"] is True


class TestInvalidChecks:
    def test_no_stage(self, example):
        example["stages"] = {}
        assert problems_of(example) == ["stages: at least one stage is needed"]

    def test_encode_needs_reconcile(self, raw_prefixes):
        raw_prefixes["stages"]["encode"] = {}
        assert problems_of(raw_prefixes) == ["stages.encode: needs stages.reconcile"]

    def test_combine_needs_featurize(self, example):
        del example["stages"]["featurize"]
        assert problems_of(example) == ["stages.combine: needs stages.featurize"]

    def test_count_needs_reconcile(self, example):
        del example["stages"]["reconcile"], example["stages"]["encode"]
        assert problems_of(example) == [
            "stages.featurize.macroshards: a count needs reconcile (it assigns the artifacts); without reconcile, "
            "list prefixes or set macroshards: auto"]

    def test_prefixes_with_reconcile(self, example):
        del example["stages"]["featurize"]["macroshards"]
        example["stages"]["featurize"]["prefixes"] = ["30"]
        assert problems_of(example) == [
            "stages.featurize.macroshards: with reconcile, give a count (Reconcile assigns artifacts to shards by "
            "bytes); prefixes are for raw folders without reconcile"]

    def test_both_count_and_prefixes(self, raw_prefixes):
        raw_prefixes["stages"]["featurize"]["macroshards"] = 3
        assert problems_of(raw_prefixes) == [
            "stages.featurize: give macroshards (a count, with reconcile) or prefixes (without), not both"]

    def test_too_many_prefixes(self, raw_prefixes):
        raw_prefixes["stages"]["featurize"]["prefixes"] = [str(i) for i in range(91)]
        assert problems_of(raw_prefixes)[0].startswith("stages.featurize.prefixes: 91, at most 90 ")

    def test_duplicate_prefixes(self, raw_prefixes):
        raw_prefixes["stages"]["featurize"]["prefixes"] = ["30", "30"]
        assert problems_of(raw_prefixes) == ["stages.featurize.prefixes: Value error, duplicate prefix names: ['30']"
                                             .replace("Value error, ", "")]

    @pytest.mark.parametrize("stage", ["reconcile", "combine", "encode"])
    def test_instance_count_above_one_where_the_work_is_not_split(self, example, stage):
        example["stages"][stage]["instance_count"] = 2
        assert problems_of(example) == [
            f"stages.{stage}.instance_count: 2, but {stage} does not split its work across instances (each "
            "instance would process all of it, at that many times the cost, writing the same outputs); use 1"]

    def test_featurize_on_several_instances_needs_stream(self, example):
        example["stages"]["featurize"]["instance_count"] = 2
        assert problems_of(example) == [
            "stages.featurize.instance_count: 2, but featurize does not split its work across instances (each "
            "instance would process all of it, at that many times the cost, writing the same outputs); set "
            "stages.featurize.read_mode: stream, whose jobs split a shard's records across instances, or use 1"]
        example["stages"]["featurize"]["read_mode"] = "stream"
        assert validate_config(example).stages.featurize.instance_count == 2

    def test_unknown_read_mode_and_stream_keys(self, example):
        example["stages"]["featurize"].update(read_mode="fast", stream={"prefetch": 2})
        problems = problems_of(example)
        assert any(p.startswith("stages.featurize.read_mode: ") for p in problems)
        assert any(p.startswith("stages.featurize.stream.prefetch: ") for p in problems)

    def test_cache_duration(self, example):
        example["cache"]["expire_after"] = "30 days"
        [problem] = problems_of(example)
        assert problem.startswith("cache.expire_after: ") and "'30 days'" in problem

    def test_vpc_needs_both(self, example):
        example["aws"]["network"]["subnets"] = ["subnet-1"]
        assert problems_of(example) == ["aws.network: subnets and security_groups must be given together (VPC config)"]

    def test_duplicate_schedule_names(self, example):
        example["schedules"][1]["name"] = example["schedules"][0]["name"]
        assert problems_of(example) == ["schedules: duplicate names ['wavepipe-example-nightly']"]

    def test_schedule_parameter_names_and_values(self, example):
        example["schedules"][0]["parameters"] = {"Nope": 1, "EncodedDataDir": "bogus", "Reload": "maybe",
                                                 "FeaturizeInstanceType": "big", "InputUri": "/local"}
        assert problems_of(example) == [
            "schedules[0].parameters.Nope: no pipeline parameter 'Nope' (known: CombineInstanceType, "
            "EncodeInstanceType, EncodedDataDir, ExperimentName, FeaturizeInstanceType, InputUri, "
            "ReconcileInstanceType, Reload)",
            "schedules[0].parameters.EncodedDataDir: 'bogus' is not one of full_dataset, partial_dataset",
            "schedules[0].parameters.Reload: 'maybe' is not one of false, true",
            "schedules[0].parameters.FeaturizeInstanceType: 'big' is not an instance type such as ml.m5.xlarge",
            r"schedules[0].parameters.InputUri: '/local' does not match ^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$",
        ]

    def test_network_isolation_with_managed_image_and_reconcile(self, example):
        # The managed image installs from the wheelhouse SageMaker stages: no network needed for that.
        example["aws"]["network"]["enable_network_isolation"] = True
        tail = ", which isolation forbids; run it without network isolation (a VPC without internet access still works)"
        assert problems_of(example) == [
            "aws.network.enable_network_isolation: stages.reconcile calls the S3 API and the database itself" + tail,
            "aws.network.enable_network_isolation: stages.featurize reads and writes its record cache in S3 "
            "(record_cache: false turns it off)" + tail,
            "aws.network.enable_network_isolation: stages.combine reads the shards' outputs and keeps its own "
            "content-addressed outputs in S3" + tail]

    def test_network_isolation_over_raw_prefixes(self, raw_prefixes):
        """Trap 6: the shape of config/mimic3wdb.yaml with an image was accepted, yet its steps call S3."""
        raw_prefixes["aws"]["network"]["enable_network_isolation"] = True
        raw_prefixes["image"]["uri"] = IMAGE
        raw_prefixes["stages"]["featurize"]["record_cache"] = False
        raw_prefixes["stages"]["combine"]["glue"] = {"database": "db", "table": "t", "location": "s3://b/t/"}
        assert [p.split(":")[1].split(",")[0].strip() for p in problems_of(raw_prefixes)] == [
            "the listing step (implied by stages.featurize.prefixes) lists S3 itself",
            "stages.combine reads the shards' outputs and keeps its own content-addressed outputs in S3",
            "stages.combine.glue registers a Glue table"]


class TestAccountTraps:
    """Issue 12: what the service would refuse at run time is refused here, naming the key."""

    def test_framework_version_whose_python_the_pins_do_not_support(self, example):
        example["image"]["framework_version"] = "1.4-2"  # Python 3.10, unlike 1.4-2-py312
        assert problems_of(example) == [
            "image.framework_version: sklearn '1.4-2' ships Python 3.10, but steps/requirements.txt pins packages "
            "that need Python 3.11 or 3.12 (numpy 2.4.6, SQLAlchemy 2.1.9); use framework_version 1.4-2-py312 "
            "(Python 3.12), or set image.uri to an image built from the Dockerfile"]

    def test_framework_version_of_unknown_python(self, example):
        example["image"]["framework_version"] = "1.2-1"
        assert problems_of(example) == [
            "image.framework_version: which Python the sklearn image '1.2-1' ships is not known here (known: 1.4-2 "
            "(Python 3.10), 1.4-2-py312 (Python 3.12)); use 1.4-2-py312, or set image.uri to an image built from "
            "the Dockerfile"]

    def test_own_image_installing_at_start_names_its_python(self, example):
        example["image"].update(uri=IMAGE, install_requirements=True)
        assert problems_of(example) == [
            "image.python: image.uri installs steps/requirements.txt at job start, so name its Python (one of "
            "3.11, 3.12): the wheelhouse is built for it"]
        example["image"]["python"] = "3.11"
        assert validate_config(example).image.python == "3.11"

    def test_volume_key_with_instance_storage(self, example):
        example["aws"]["kms_key_id"] = "arn:aws:kms:us-east-1:123456789012:key/k"
        example["stages"]["featurize"]["instance_type"] = "ml.m5d.4xlarge"
        example["stages"]["encode"]["instance_type"] = "ml.g4dn.xlarge"
        assert problems_of(example) == [
            f"stages.{stage}.instance_type: {kind} has instance storage, for which the service rejects a volume KMS "
            "key (its storage is encrypted by the instance's hardware), and aws.kms_key_id is set: use a type "
            "without instance storage (e.g. ml.m5.xlarge instead of ml.m5d.xlarge), or leave aws.kms_key_id out"
            for stage, kind in (("featurize", "ml.m5d.4xlarge"), ("encode", "ml.g4dn.xlarge"))]

    def test_schedule_instance_type_with_storage_under_a_volume_key(self, example):
        example["aws"]["kms_key_id"] = "arn:aws:kms:us-east-1:123456789012:key/k"
        example["schedules"][0]["parameters"] = {"FeaturizeInstanceType": "ml.c5d.9xlarge"}
        assert problems_of(example) == [
            "schedules[0].parameters.FeaturizeInstanceType: 'ml.c5d.9xlarge' has instance storage, which takes no "
            "volume KMS key, and this pipeline sends aws.kms_key_id as VolumeKmsKeyId: pick a type without "
            "instance storage"]

    def test_resource_limit_has_its_own_policy(self, example):
        example["stages"]["featurize"]["retry"] = {"on": ["CAPACITY_ERROR", "RESOURCE_LIMIT"]}
        (problem,) = problems_of(example)
        assert problem.startswith("stages.featurize.retry.on: ") and "set retry.resource_limit" in problem

    def test_private_index_under_network_isolation(self, raw_prefixes):
        raw_prefixes["aws"]["network"]["enable_network_isolation"] = True
        raw_prefixes["image"]["pip_index_url"] = "https://d-1.codeartifact.us-east-1.amazonaws.com/pypi/r/simple/"
        problem = problems_of(raw_prefixes)[0]  # then the stages that call S3 (test above)
        assert problem.startswith("aws.network.enable_network_isolation: the job installs steps/requirements.txt "
                                  "from image.pip_index_url")
