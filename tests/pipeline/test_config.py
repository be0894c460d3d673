"""Config loading: unknown keys, key paths in errors, overlays, cross-stage rules, schema."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from pipeline.cli import main
from pipeline.config import ConfigError, json_schema, load_config, validate_config
from tests.conftest import ROOT, EXAMPLE_CONFIG

EXAMPLE = EXAMPLE_CONFIG


@pytest.fixture
def example() -> dict:
    return yaml.safe_load(EXAMPLE.read_text())


def problems_of(data: dict) -> list[str]:
    with pytest.raises(ConfigError) as err:
        validate_config(data, "cfg.yaml")
    return err.value.problems


class TestValidConfig:
    @pytest.mark.parametrize("name", ["example.yaml", "mimic3wdb.yaml", "documents.yaml"])
    def test_shipped_configs_load(self, name):
        cfg = load_config(ROOT / "config" / name)
        assert cfg.pipeline.name

    def test_overlay_merges_key_by_key(self):
        cfg = load_config(EXAMPLE, env="dev")
        assert cfg.aws.bucket == "wavepipe-dev"
        assert cfg.aws.region == "us-east-1"  # untouched keys survive
        assert cfg.stages.featurize.instance_type == "ml.m5.xlarge"
        assert cfg.stages.featurize.macroshards == 2
        assert cfg.schedules == []

    def test_explicit_overlay_file(self, tmp_path):
        over = tmp_path / "over.yaml"
        over.write_text("pipeline: {version: '9.9'}\n")
        assert load_config(EXAMPLE, overlays=[over]).pipeline.version == "9.9"

    def test_shard_list_of_prefixes(self, example):
        del example["stages"]["reconcile"], example["stages"]["encode"]
        example["stages"]["featurize"]["macroshards"] = ["30", {"name": "g31", "prefix": "31/"}]
        cfg = validate_config(example)
        assert cfg.stages.featurize.shard_names() == ["30", "g31"]

    def test_models_are_frozen(self):
        cfg = load_config(EXAMPLE)
        with pytest.raises(Exception):
            cfg.aws.bucket = "other"

    @pytest.mark.parametrize("name", ["example.yaml", "mimic3wdb.yaml", "documents.yaml"])
    def test_schema_accepts_shipped_configs_as_an_editor_would(self, name):
        import jsonschema

        schema = json.loads((ROOT / "config" / "schema.json").read_text())
        jsonschema.validate(yaml.safe_load((ROOT / "config" / name).read_text()), schema)

    def test_schema_file_is_current(self):
        """config/schema.json is what editors use; regenerate: python deploy.py schema --out config/schema.json"""
        assert json.loads((ROOT / "config" / "schema.json").read_text()) == json_schema()


class TestInvalidConfig:
    def test_schema_rejects_unknown_keys_as_an_editor_would(self, example):
        import jsonschema

        example["stages"]["featurize"]["shards"] = 3
        schema = json.loads((ROOT / "config" / "schema.json").read_text())
        with pytest.raises(jsonschema.ValidationError, match="shards"):
            jsonschema.validate(example, schema)

    def test_unknown_key_names_its_path(self, example):
        example["stages"]["featurize"]["shards"] = 3
        assert any(p.startswith("stages.featurize.shards:") for p in problems_of(example))

    def test_nested_list_index_in_path(self, example):
        del example["stages"]["reconcile"], example["stages"]["encode"]
        example["stages"]["featurize"]["macroshards"] = ["30", "31", "32", {"name": "x", "prefx": "33"}]
        assert any(p.startswith("stages.featurize.macroshards[3].prefx:") for p in problems_of(example))

    def test_every_problem_reported(self, example):
        example["aws"]["role_arn"] = "not-an-arn"
        example["cache"]["expire_after"] = "30 days"
        found = problems_of(example)
        assert any(p.startswith("aws.role_arn:") for p in found)
        assert any(p.startswith("cache.expire_after:") for p in found)

    def test_count_needs_reconcile(self, example):
        del example["stages"]["reconcile"], example["stages"]["encode"]
        assert any("list the key prefixes" in p for p in problems_of(example))

    def test_encode_needs_reconcile(self, example):
        del example["stages"]["reconcile"]
        example["stages"]["featurize"]["macroshards"] = ["30"]
        assert any("stages.encode" in p for p in problems_of(example))

    def test_duplicate_shards(self, example):
        del example["stages"]["reconcile"], example["stages"]["encode"]
        example["stages"]["featurize"]["macroshards"] = ["30", "30"]
        assert any("duplicate macroshard" in p for p in problems_of(example))

    def test_vpc_needs_both(self, example):
        example["aws"]["network"]["subnets"] = ["subnet-1"]
        assert any(p.startswith("aws.network:") for p in problems_of(example))

    def test_bad_schedule_expression(self, example):
        example["schedules"][0]["expression"] = "every day"
        assert any(p.startswith("schedules[0].expression:") for p in problems_of(example))

    def test_cli_exit_code_2_names_file_and_key(self, tmp_path, capsys, example):
        bad = copy.deepcopy(example)
        bad["stages"]["combine"]["colour"] = "blue"
        path = tmp_path / "bad.yaml"
        path.write_text(yaml.safe_dump(bad))
        assert main(["definition", "--config", str(path)]) == 2
        err = capsys.readouterr().err
        assert str(path) in err and "stages.combine.colour" in err

    def test_missing_file(self, tmp_path, capsys):
        assert main(["validate", "--config", str(tmp_path / "nope.yaml")]) == 2
        assert "file not found" in capsys.readouterr().err

    def test_not_yaml(self, tmp_path, capsys):
        path = tmp_path / "x.yaml"
        path.write_text("a: [unclosed\n")
        assert main(["validate", "--config", str(path)]) == 2
        assert "not valid YAML" in capsys.readouterr().err


class TestInvalidCrossChecks:
    def test_schedule_parameter_names_and_values(self, example):
        example["schedules"][0]["parameters"] = {"Nope": 1, "EncodedDataDir": "bogus", "Reload": "maybe",
                                                 "FeaturizeInstanceType": "big", "InputUri": "/local"}
        found = problems_of(example)
        assert "schedules[0].parameters.Nope: no pipeline parameter 'Nope' (known: CombineInstanceType, " \
               "EncodeInstanceType, EncodedDataDir, ExperimentName, FeaturizeInstanceType, InputUri, " \
               "ReconcileInstanceType, Reload)" in found
        for name in ("EncodedDataDir", "Reload", "FeaturizeInstanceType", "InputUri"):
            assert any(p.startswith(f"schedules[0].parameters.{name}:") for p in found), name

    def test_network_isolation_with_managed_image_and_reconcile(self, example):
        example["aws"]["network"]["enable_network_isolation"] = True
        found = problems_of(example)
        assert any("installs steps/requirements.txt" in p for p in found)
        assert any("stages.reconcile calls the S3 API" in p for p in found)

    def test_network_isolation_with_own_image_and_no_reconcile(self, example):
        example["aws"]["network"]["enable_network_isolation"] = True
        example["image"]["uri"] = "123456789012.dkr.ecr.us-east-1.amazonaws.com/wavepipe:1"
        del example["stages"]["reconcile"], example["stages"]["encode"]
        example["stages"]["featurize"]["macroshards"] = ["30"]
        assert validate_config(example).aws.network.enable_network_isolation
