"""The config models and their JSON Schema, as an editor uses it."""

from __future__ import annotations

import json

import pydantic
import pytest
import yaml

from pipeline.config import json_schema, load_config
from tests.conftest import EXAMPLE_CONFIG, ROOT

SHIPPED = ["example.yaml", "mimic3wdb.yaml", "documents.yaml"]


class TestValidModels:
    @pytest.mark.parametrize("name", SHIPPED)
    def test_shipped_configs_load(self, name):
        assert load_config(ROOT / "config" / name).stages.enabled()

    def test_models_are_frozen(self):
        cfg = load_config(EXAMPLE_CONFIG)
        with pytest.raises(pydantic.ValidationError, match="frozen"):
            cfg.aws.bucket = "other"

    def test_stages_in_registry_order(self):
        assert list(load_config(EXAMPLE_CONFIG).stages.enabled()) == ["reconcile", "featurize", "combine", "encode"]

    @pytest.mark.parametrize("name", SHIPPED)
    def test_schema_accepts_shipped_configs_as_an_editor_would(self, name):
        import jsonschema

        schema = json.loads((ROOT / "config" / "schema.json").read_text())
        jsonschema.validate(yaml.safe_load((ROOT / "config" / name).read_text()), schema)

    def test_schema_file_is_current(self):
        """config/schema.json is what editors use; regenerate: python deploy.py schema --out config/schema.json"""
        assert json.loads((ROOT / "config" / "schema.json").read_text()) == json_schema()


class TestInvalidModels:
    def test_schema_rejects_unknown_keys_as_an_editor_would(self, example):
        import jsonschema

        example["stages"]["featurize"]["shards"] = 3
        schema = json.loads((ROOT / "config" / "schema.json").read_text())
        with pytest.raises(jsonschema.ValidationError, match="'shards' was unexpected"):
            jsonschema.validate(example, schema)
