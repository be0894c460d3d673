"""Offline validation: the graph rules and botocore's CreateProcessingJob shape."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from pipeline.build import build
from pipeline.cli import main
from pipeline.config import load_config
from pipeline.validate import check_definition, check_graph, check_processing_arguments
from tests.conftest import EXAMPLE_CONFIG, ROOT



@pytest.fixture(scope="module")
def definition() -> dict:
    return json.loads(build(load_config(EXAMPLE_CONFIG)).definition)


def step(definition: dict, name: str) -> dict:
    return next(s for s in definition["Steps"] if s["Name"] == name)


class TestValidDefinitions:
    def test_example_is_clean(self, definition):
        assert check_definition(definition) == []

    def test_cli_validate_exits_zero(self, capsys):
        assert main(["validate", "--config", str(EXAMPLE_CONFIG)]) == 0
        assert "valid (5 steps" in capsys.readouterr().out


class TestInvalidDefinitions:
    def test_cycle(self, definition):
        d = copy.deepcopy(definition)
        step(d, "Reconcile")["DependsOn"] = ["Encode"]
        assert any("cycle" in p for p in check_graph(d))

    def test_bad_and_duplicate_names(self, definition):
        d = copy.deepcopy(definition)
        d["Steps"][1]["Name"] = "Featurize shard 1"
        d["Steps"][2]["Name"] = "Reconcile"
        found = check_graph(d)
        assert any("does not match" in p for p in found)
        assert any("used more than once" in p for p in found)

    def test_unknown_dependency_and_parameter(self, definition):
        d = copy.deepcopy(definition)
        step(d, "Combine")["DependsOn"].append("Nope")
        step(d, "Encode")["Arguments"]["Environment"]["X"] = {"Get": "Parameters.Missing"}
        found = check_graph(d)
        assert any("unknown step 'Nope'" in p for p in found)
        assert any("undeclared parameter 'Parameters.Missing'" in p for p in found)

    def test_parameter_without_default(self, definition):
        d = copy.deepcopy(definition)
        d["Parameters"][0].pop("DefaultValue")
        assert any("no default value" in p for p in check_graph(d))

    def test_argument_too_long_and_wrong_type(self, definition):
        d = copy.deepcopy(definition)
        spec = step(d, "Combine")["Arguments"]
        spec["AppSpecification"]["ContainerArguments"].append("x" * 300)
        spec["ProcessingResources"]["ClusterConfig"]["InstanceCount"] = "two"
        found = check_processing_arguments(d)
        assert any("300 characters, at most 256" in p for p in found)
        assert any("InstanceCount" in p for p in found)

    def test_too_many_arguments(self, definition):
        d = copy.deepcopy(definition)
        step(d, "Encode")["Arguments"]["AppSpecification"]["ContainerArguments"] += ["a"] * 120
        assert any("at most 100" in p for p in check_processing_arguments(d))

    def test_expression_placeholders_do_not_hide_real_errors(self, definition):
        d = copy.deepcopy(definition)
        inputs = step(d, "Featurize-shard-0001")["Arguments"]["ProcessingInputs"]
        inputs[-1]["S3Input"]["S3DataType"] = "Folder"
        assert any("S3DataType" in p for p in check_processing_arguments(d))


class TestResolvedLengths:
    def test_joined_argument_too_long_once_resolved(self, definition):
        d = copy.deepcopy(definition)
        d["Parameters"] = [dict(p, DefaultValue="s3://bucket/" + "k" * 250) if p["Name"] == "InputUri" else p
                           for p in d["Parameters"]]
        found = check_definition(d)
        assert any("'Reconcile': ContainerArguments" in p and "at most 256" in p for p in found)

    def test_shipped_example_fits(self, definition):
        from pipeline.validate import check_expression_lengths

        assert check_expression_lengths(definition) == []
