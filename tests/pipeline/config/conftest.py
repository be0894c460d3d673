from __future__ import annotations

import pytest
import yaml

from pipeline.config import ConfigError, validate_config
from tests.conftest import EXAMPLE_CONFIG


@pytest.fixture
def example() -> dict:
    return yaml.safe_load(EXAMPLE_CONFIG.read_text())


@pytest.fixture
def raw_prefixes(example) -> dict:
    """The example without Reconcile and Encode: Featurize + Combine over key prefixes."""
    del example["stages"]["reconcile"], example["stages"]["encode"], example["stages"]["featurize"]["macroshards"]
    example["stages"]["featurize"]["prefixes"] = ["30", "31"]
    return example


def problems_of(data: dict) -> list[str]:
    with pytest.raises(ConfigError) as err:
        validate_config(data, "cfg.yaml")
    assert str(err.value).startswith("cfg.yaml: ")
    return err.value.problems
