"""Offline validation: the graph rules and botocore's CreateProcessingJob shape."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest

from pipeline.build.compose import build
from pipeline.cli import main
from pipeline.config import load_config
from pipeline.definition.model import CURRENT_ITEM, walk_gets
from pipeline.definition.validate import check_current_item, check_definition, check_graph, check_processing_arguments
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
        assert check_graph(d) == [
            "graph: cycle through steps ['Reconcile', 'Featurize-shard-0001', 'Combine', 'Encode', 'Reconcile']"]

    def test_bad_and_duplicate_names(self, definition):
        d = copy.deepcopy(definition)
        d["Steps"][1]["Name"] = "Featurize shard 1"
        d["Steps"][2]["Name"] = "Reconcile"
        # the renamed shards leave Combine's DependsOn dangling, and the second "Reconcile"
        # (a shard reading Reconcile's outputs) now depends on its own name
        assert check_graph(d) == [
            "step 'Featurize shard 1': name does not match ^[A-Za-z0-9\\-_]{1,64}$",
            "step 'Reconcile': name used more than once",
            "step 'Combine': depends on unknown step 'Featurize-shard-0001'",
            "step 'Combine': depends on unknown step 'Featurize-shard-0002'",
            "graph: cycle through steps ['Reconcile', 'Reconcile']",
        ]

    def test_unknown_dependency_and_parameter(self, definition):
        d = copy.deepcopy(definition)
        step(d, "Combine")["DependsOn"].append("Nope")
        step(d, "Encode")["Arguments"]["Environment"]["X"] = {"Get": "Parameters.Missing"}
        assert check_graph(d) == [
            "step 'Combine': depends on unknown step 'Nope'",
            "step 'Encode': uses undeclared parameter 'Parameters.Missing'",
        ]

    def test_malformed_run_condition(self, definition):
        d = copy.deepcopy(definition)
        step(d, "Encode")["DependsOn"] = [{"Step": "Combine", "Trigger": "Sometimes"}]
        assert check_graph(d) == [
            "step 'Encode': DependsOn entry {'Step': 'Combine', 'Trigger': 'Sometimes'} is neither a step "
            "name nor {'Step': <name>, 'Trigger': one of ['Completed', 'Failed', 'Stopped', 'Any']}"]

    def test_parameter_without_default(self, definition):
        d = copy.deepcopy(definition)
        d["Parameters"][0].pop("DefaultValue")
        assert check_graph(d) == ["parameter 'InputUri': no default value (schedules and Studio need one)"]

    def test_argument_too_long_and_wrong_type(self, definition):
        d = copy.deepcopy(definition)
        spec = step(d, "Combine")["Arguments"]
        spec["AppSpecification"]["ContainerArguments"].append("x" * 300)
        spec["ProcessingResources"]["ClusterConfig"]["InstanceCount"] = "two"
        last = len(spec["AppSpecification"]["ContainerArguments"]) - 1
        assert check_processing_arguments(d) == [
            "step 'Combine': Invalid type for parameter ProcessingResources.ClusterConfig.InstanceCount, "
            "value: two, type: <class 'str'>, valid types: <class 'int'>",
            f"step 'Combine': Arguments.AppSpecification.ContainerArguments[{last}]: 300 characters, at most 256",
        ]

    def test_too_many_arguments(self, definition):
        d = copy.deepcopy(definition)
        args = step(d, "Encode")["Arguments"]["AppSpecification"]["ContainerArguments"]
        args += ["a"] * 120
        assert check_processing_arguments(d) == [
            f"step 'Encode': Arguments.AppSpecification.ContainerArguments: {len(args)} items, at most 100"]

    def test_expression_placeholders_do_not_hide_real_errors(self, definition):
        d = copy.deepcopy(definition)
        inputs = step(d, "Featurize-shard-0001")["Arguments"]["ProcessingInputs"]
        inputs[-1]["S3Input"]["S3DataType"] = "Folder"
        assert check_processing_arguments(d) == [
            f"step 'Featurize-shard-0001': Arguments.ProcessingInputs[{len(inputs) - 1}].S3Input.S3DataType: "
            "'Folder' is not one of ['ManifestFile', 'S3Prefix']"]


class TestResolvedLengths:
    def test_joined_argument_too_long_once_resolved(self, definition):
        d = copy.deepcopy(definition)
        d["Parameters"] = [dict(p, DefaultValue="s3://bucket/" + "k" * 250) if p["Name"] == "InputUri" else p
                           for p in d["Parameters"]]
        # Reconcile's InputUri argument, the new 262-character default
        assert check_definition(d) == [
            "step 'Reconcile': ContainerArguments[2] resolves to about 262 characters at run time, at most 256: "
            "s3://bucket/" + "k" * 68 + "..."]

    def test_shipped_example_fits(self, definition):
        from pipeline.definition.validate import check_expression_lengths

        assert check_expression_lengths(definition) == []


class TestAccountTraps:
    """Issue 12: limits the service applies, measured on the real definition."""

    def test_the_shard_limit_fits_in_1_mib(self, tmp_path):
        from pipeline.stages.featurize import MAX_COUNTED_SHARDS
        from pipeline.definition.validate import DEFINITION_MAX, measure

        overlay = tmp_path / "wide.yaml"
        overlay.write_text(f"stages:\n  featurize:\n    macroshards: {MAX_COUNTED_SHARDS}\n")
        wide = json.loads(build(load_config(EXAMPLE_CONFIG, overlays=[overlay])).definition)
        size = measure(wide)
        assert size.steps == MAX_COUNTED_SHARDS and size.bytes <= DEFINITION_MAX
        assert check_definition(wide) == []
        assert size.fit == 280  # the figure MAX_COUNTED_SHARDS is derived from (see featurize.py)

    def test_over_1_mib_names_the_size_and_how_many_shards_fit(self, definition):
        d = copy.deepcopy(definition)
        shard = step(d, "Featurize-shard-0001")
        d["Steps"] += [dict(copy.deepcopy(shard), Name=f"Featurize-shard-{i:04d}") for i in range(3, 401)]
        (problem,) = [p for p in check_definition(d) if p.startswith("definition:")]
        fit = int(re.search(r"about (\d+) Featurize steps fit, this has 400;", problem).group(1))
        assert problem.startswith("definition: 1,") and 265 <= fit <= 290
        assert f"the service rejects a definition over 1 MiB: lower stages.featurize.macroshards to at most {fit}" \
            in problem

    def test_argument_lengths_count_the_real_bucket_prefix_and_pipeline(self, tmp_path):
        """Featurize gets its record cache's URI (under the pipeline's base) as an argument: with a long
        bucket, prefix and pipeline name it passes 256 characters, which a fixed 128-character URI hid."""
        from pipeline.definition.validate import check_expression_lengths

        overlay = tmp_path / "long.yaml"
        overlay.write_text("pipeline:\n  name: " + "p" * 60 + "\naws:\n  bucket: " + "b" * 63 +
                           "\n  output_prefix: " + "/".join(["team-feature-engineering"] * 4) + "\n")
        cfg = load_config(ROOT / "config" / "mimic3wdb.yaml", overlays=[overlay])
        problems = check_expression_lengths(json.loads(build(cfg).definition))
        featurize = [p for p in problems if p.startswith("step 'Featurize-")]
        assert len(featurize) == 10  # one --record-cache per group folder 30..39
        assert featurize[0].startswith("step 'Featurize-30': ContainerArguments[8] resolves to about 259 characters "
                                       "at run time, at most 256: s3://" + "b" * 63)


class TestForEachBodies:
    """A ForEach body's requests are checked like any step's, CurrentItem references included."""

    @pytest.fixture(scope="class")
    def auto(self):
        import yaml

        from pipeline.config import validate_config

        data = yaml.safe_load(EXAMPLE_CONFIG.read_text())
        data["stages"]["featurize"].update(macroshards="auto")
        return json.loads(build(validate_config(data)).definition)

    def test_valid(self, auto):
        assert check_definition(auto) == []

    def test_a_bad_body_request_is_named(self, auto):
        d = copy.deepcopy(auto)
        body = step(d, "Featurize")["Arguments"]["ForEachBody"][0]
        body["Arguments"]["ProcessingResources"]["ClusterConfig"]["VolumeSizeInGB"] = "big"
        body["Arguments"]["ProcessingInputs"][3]["S3Input"]["S3InputMode"] = "FastFile"
        assert check_processing_arguments(d) == [
            "step 'FeaturizeShard': Invalid type for parameter ProcessingResources.ClusterConfig.VolumeSizeInGB, "
            "value: big, type: <class 'str'>, valid types: <class 'int'>",
            "step 'FeaturizeShard': Arguments.ProcessingInputs[3].S3Input.S3InputMode: 'FastFile' is not one of "
            "['Pipe', 'File']",
        ]

    def test_the_body_reads_only_the_bare_item(self, auto):
        gets = [g for g in walk_gets(step(auto, "Featurize")["Arguments"]["ForEachBody"]) if g.startswith(CURRENT_ITEM)]
        assert gets and set(gets) == {CURRENT_ITEM}
        assert check_current_item(auto) == []

    @pytest.mark.parametrize("path", [f"{CURRENT_ITEM}.uri", f"{CURRENT_ITEM}['uri']"])
    def test_field_access_is_refused(self, auto, path):
        # The service documents no object items and no field access: plain string items only.
        d = copy.deepcopy(auto)
        body = step(d, "Featurize")["Arguments"]["ForEachBody"][0]
        body["Arguments"]["ProcessingInputs"][3]["S3Input"]["S3Uri"]["Std:Join"]["Values"][0] = {"Get": path}
        expected = [f"step 'FeaturizeShard' (ForEach 'Featurize'): reads {path}; use the bare {CURRENT_ITEM} "
                    "(plain string items)"]
        assert check_current_item(d) == expected
        assert check_definition(d)[:1] == expected
