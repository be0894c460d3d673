"""The docs site's configuration reference (docs/hooks/config_reference.py, run by `mkdocs build`)
is generated from the config's JSON Schema; these check it without MkDocs: every key the shipped
configs set has a row, and the page keeps the line the hook replaces. `.ci/run` builds the whole
site with `mkdocs build --strict`."""

from __future__ import annotations

import importlib.util

import pytest
import yaml

from pipeline.config import json_schema
from tests.conftest import ROOT

SHIPPED = sorted(p.name for p in (ROOT / "config").glob("*.yaml"))


def hook():
    spec = importlib.util.spec_from_file_location("config_reference", ROOT / "docs" / "hooks" / "config_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def documented() -> set[str]:
    """Full key paths: each row's key under its section's heading."""
    keys, section = set(), ""
    for line in hook().reference(json_schema()).splitlines():
        if line.startswith("### `"):
            section = line.split("`")[1]
        elif line.startswith("| `"):
            key = line.split("`")[1]
            keys.add(key if section == "top level" else f"{section}.{key}".replace(".[]", "[]"))
    return keys


def set_keys(data, path: str = ""):
    """Key paths a YAML file sets, a list of mappings as `key[]`."""
    for key, value in data.items():
        here = f"{path}.{key}" if path else key
        yield here, value
        items = value if isinstance(value, list) else [value]
        for item in items:
            if isinstance(item, dict):
                yield from set_keys(item, here + ("[]" if isinstance(value, list) else ""))


class TestValidReference:
    @pytest.mark.parametrize("name", SHIPPED)
    def test_every_key_a_shipped_config_sets_has_a_row(self, name, documented):
        data = yaml.safe_load((ROOT / "config" / name).read_text())
        missing = [key for key, value in set_keys(data)
                   if key not in documented and not any(d.startswith(key + ".") or d.startswith(key + "[]")
                                                        for d in documented)
                   and not any(key.startswith(d + ".") for d in documented)]  # inside a documented mapping
        assert not missing, f"config/{name} sets keys the generated reference lacks: {missing}"

    def test_every_stage_has_a_section(self):
        reference = hook().reference(json_schema())
        stages = json_schema()["$defs"]["Stages"]["properties"]
        assert all(f"### `stages.{stage}`" in reference for stage in stages)

    def test_the_page_keeps_the_line_the_hook_replaces(self):
        assert hook().MARKER in (ROOT / "docs" / "configuration.md").read_text()
