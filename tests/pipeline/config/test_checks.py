"""The rules across keys (pipeline/config/checks.py and each stage's own)."""

from __future__ import annotations

import pytest

from pipeline.config import validate_config
from tests.pipeline.config.conftest import problems_of

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/wavepipe:1"


class TestValidChecks:
    def test_network_isolation_with_own_image_and_no_reconcile(self, raw_prefixes):
        raw_prefixes["aws"]["network"]["enable_network_isolation"] = True
        raw_prefixes["image"]["uri"] = IMAGE
        assert validate_config(raw_prefixes).aws.network.enable_network_isolation

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
            "stages.featurize.prefixes: without reconcile, list the key prefixes (e.g. the group folders 30..39), "
            "one step each"]

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

    @pytest.mark.parametrize("stage", ["reconcile", "featurize", "combine", "encode"])
    def test_instance_count_above_one_where_the_work_is_not_split(self, example, stage):
        example["stages"][stage]["instance_count"] = 2
        assert problems_of(example) == [
            f"stages.{stage}.instance_count: 2, but {stage} does not split its work across instances (each "
            "instance would process all of it, at that many times the cost, writing the same outputs); use 1"]

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
        example["aws"]["network"]["enable_network_isolation"] = True
        assert problems_of(example) == [
            "aws.network.enable_network_isolation: the job installs steps/requirements.txt from PyPI at start, "
            "which isolation forbids; set image.uri to an image built from the Dockerfile",
            "aws.network.enable_network_isolation: stages.reconcile calls the S3 API and the database itself; "
            "run it without network isolation"]
