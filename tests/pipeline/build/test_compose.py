"""The definition of the shipped configs: golden JSON, determinism, graph shape, offline build.

Regenerate the golden file after an intended change:

    python -c "from tests.pipeline.build.test_compose import regenerate; regenerate()"

The golden comparison replaces the hashes derived from the code under steps/ (the bundle
hash, its sha256 and the featurize key) by placeholders, so editing container code does not churn it; a
change to the config, the builder or the settings defaults does.
"""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import pytest

from pipeline.build.compose import build
from pipeline.definition.model import pretty
from pipeline.config import load_config, validate_config
from pipeline.definition.model import step_dependencies
from pipeline.definition.validate import check_definition
from tests.conftest import EXAMPLE_CONFIG, ROOT

GOLDEN = Path(__file__).parents[1] / "golden" / "example.definition.json"


def normalized(built) -> str:
    text = pretty(built.definition)
    text = text.replace(built.assets.bundle_sha256, "<bundle-sha256>").replace(built.assets.code_hash, "<code-hash>")
    # Step keys (hashes of a stage's code, settings, image and environment) are values of their own.
    return re.sub(r'"[0-9a-f]{16}"', '"<step-key>"', text)


def regenerate() -> None:
    """Write the golden file from the current build (after an intended change)."""
    GOLDEN.write_text(normalized(build(load_config(EXAMPLE_CONFIG))))


@pytest.fixture(scope="module")
def example():
    return build(load_config(EXAMPLE_CONFIG))


@pytest.fixture(scope="module")
def example_def(example) -> dict:
    return json.loads(example.definition)


def steps_by_name(definition: dict) -> dict:
    return {s["Name"]: s for s in definition["Steps"]}


class TestValidDefinition:
    def test_golden(self, example):
        golden = GOLDEN.read_text().replace("\r\n", "\n")
        assert normalized(example) == golden, "regenerate: see this module's docstring"

    def test_byte_identical_rebuild(self, example):
        again = build(load_config(EXAMPLE_CONFIG))
        assert again.definition == example.definition
        assert again.assets.files == example.assets.files

    def test_builds_with_no_network(self, monkeypatch):
        def refuse(*args, **kwargs):
            raise AssertionError(f"network call during build: {args}")

        monkeypatch.setattr(socket.socket, "connect", refuse)
        # No credentials and the metadata service allowed: exactly where the SDK would probe it.
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_EC2_METADATA_DISABLED"):
            monkeypatch.delenv(key, raising=False)
        built = build(load_config(ROOT / "config" / "mimic3wdb.yaml"))
        assert json.loads(built.definition)["Steps"]

    def test_shape(self, example_def):
        steps = steps_by_name(example_def)
        assert list(steps) == ["Reconcile", "Featurize-shard-0001", "Featurize-shard-0002", "Combine", "Encode"]
        shards = [n for n in steps if n.startswith("Featurize-")]
        assert step_dependencies(steps["Combine"]) == set(shards) | {"Reconcile"}
        for name in shards:
            assert step_dependencies(steps[name]) == {"Reconcile"}
        assert step_dependencies(steps["Encode"]) == {"Reconcile", "Combine"}

    def test_every_parameter_has_a_default(self, example_def):
        params = {p["Name"]: p for p in example_def["Parameters"]}
        assert {"InputUri", "ExperimentName", "FeaturizeInstanceType", "EncodedDataDir"} <= set(params)
        assert all(p.get("DefaultValue") not in (None, "") for p in params.values())

    def test_outputs_under_execution_id(self, example_def):
        for step in example_def["Steps"]:
            for out in step["Arguments"]["ProcessingOutputConfig"]["Outputs"]:
                assert "Execution.PipelineExecutionId" in json.dumps(out["S3Output"]["S3Uri"]) or \
                    "Steps.Reconcile" in json.dumps(out["S3Output"]["S3Uri"]), out

    def test_arguments_stable_across_executions(self, example_def):
        """Container arguments feed the cache key: they must never contain the execution id."""
        for step in example_def["Steps"]:
            assert "PipelineExecutionId" not in json.dumps(step["Arguments"]["AppSpecification"])

    def test_retries_cache_and_code_bundle(self, example_def, example):
        for step in example_def["Steps"]:
            kinds = {e for r in step["RetryPolicies"] for e in r["ExceptionType"]}
            assert {"SageMaker.CAPACITY_ERROR", "SageMaker.JOB_INTERNAL_ERROR"} <= kinds
            # Reconcile and Combine read what their cache keys cannot see: never cached.
            enabled = step["Name"] not in ("Reconcile", "Combine")
            assert step["CacheConfig"] == {"Enabled": enabled, "ExpireAfter": "P30D"}
            inputs = {i["InputName"]: i["S3Input"]["S3Uri"] for i in step["Arguments"]["ProcessingInputs"]}
            assert inputs["code"] == example.assets.code_uri

    def test_shipped_configs_validate(self):
        for name in ("example.yaml", "documents.yaml", "mimic3wdb.yaml"):
            definition = json.loads(build(load_config(ROOT / "config" / name)).definition)
            assert check_definition(definition) == [], name

    def test_stages_left_out(self):
        definition = json.loads(build(load_config(ROOT / "config" / "documents.yaml")).definition)
        assert [s["Name"] for s in definition["Steps"]] == ["Reconcile", "Encode"]

    def test_config_change_moves_only_its_step(self, example_def):
        import yaml

        raw = yaml.safe_load((EXAMPLE_CONFIG).read_text())
        raw["stages"]["combine"]["signal_aliases"] = {"II": ["II"]}
        changed = steps_by_name(json.loads(build(validate_config(raw)).definition))
        before = steps_by_name(example_def)
        assert changed["Featurize-shard-0001"] == before["Featurize-shard-0001"]
        assert changed["Combine"] != before["Combine"]
