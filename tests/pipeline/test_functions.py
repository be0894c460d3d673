"""Function references are checked at build time, before N jobs each fail on them."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipeline.build import build
from pipeline.config import ConfigError, validate_config
from pipeline.functions import function_problems
from tests.conftest import EXAMPLE_CONFIG, ROOT



@pytest.fixture
def example() -> dict:
    return yaml.safe_load((EXAMPLE_CONFIG).read_text())


class TestValidReferences:
    @pytest.mark.parametrize("name", ["example.yaml", "documents.yaml", "mimic3wdb.yaml"])
    def test_shipped_configs(self, name):
        cfg = validate_config(yaml.safe_load((ROOT / "config" / name).read_text()))
        assert function_problems(cfg) == []

    def test_own_image_may_provide_other_modules(self, example):
        example["image"]["uri"] = "123456789012.dkr.ecr.us-east-1.amazonaws.com/wavepipe:1"
        example["stages"]["featurize"]["feature_function"] = "mycompany.features:summarize"
        assert function_problems(validate_config(example)) == []


class TestInvalidReferences:
    def test_missing_module_and_function(self, example):
        example["stages"]["featurize"]["feature_function"] = "steps.featurize.nosuch:f"
        example["stages"]["encode"]["encode_data"] = "steps.recipes.waveform:nosuch"
        with pytest.raises(ConfigError) as err:  # the config edge reports them, by key path
            validate_config(example)
        found = err.value.problems
        assert found == [
            "stages.featurize.feature_function: 'steps.featurize.nosuch:f': no module 'steps.featurize.nosuch' under steps/",
            "stages.encode.encode_data: 'steps.recipes.waveform:nosuch': module 'steps.recipes.waveform' defines no 'nosuch'",
        ]

    def test_outside_the_bundle_on_the_managed_image(self, example):
        example["stages"]["reconcile"]["process_func"] = "mycompany.labels:write_truth"
        with pytest.raises(ConfigError, match="stages.reconcile.process_func: 'mycompany.labels:write_truth' is not in the code bundle"):
            build(validate_config(example))
