"""A stage is declared once, in the registry: a toy stage added through it alone is validated,
gets its settings file and instance-type parameter, and builds into the definition."""

from __future__ import annotations

import json

import pytest
import yaml
from pydantic import BaseModel, ConfigDict, Field

from pipeline.build.compose import build
from pipeline.config import ConfigError, validate_config
from pipeline.config.models import StageInfra
from pipeline.stages.names import step_name
from pipeline.stages import default_registry
from pipeline.stages.common import processing_step, s3_output
from pipeline.stages.registry import Stage
from steps.contract import CONTRACT_VERSION
from tests.conftest import EXAMPLE_CONFIG


class AuditSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    threshold: int = Field(3, ge=0)


class AuditStage(StageInfra, AuditSettings):
    pass


def build_audit(ctx, upstream):
    (combine,) = upstream["combine"]
    return [processing_step(ctx, step_name("audit"), "audit", ctx.cfg.stages.audit, ["--output", "/opt/ml/x"],
                            inputs=[], outputs=[s3_output("audit", ctx.execution_uri("audit"), "/opt/ml/x")],
                            depends_on=[combine.name])]


def audit_checks(cfg):
    return ["stages.audit.threshold: above 10 audits nothing"] if cfg.stages.audit.threshold > 10 else []


TOY = default_registry().with_stage(Stage(name="audit", section=AuditStage, settings=AuditSettings,
                                          build=build_audit, needs=("combine",), checks=audit_checks))


def config(audit: dict | None) -> dict:
    data = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    data["stages"]["audit"] = audit
    return data


class TestValidToyStage:
    def test_builds_into_the_definition(self):
        built = build(validate_config(config({"threshold": 5}), registry=TOY))
        definition = json.loads(built.definition)
        audit = definition["Steps"][-1]
        assert audit["Name"] == "Audit" and audit["DependsOn"] == ["Combine"]
        assert audit["Arguments"]["AppSpecification"]["ContainerArguments"][0] == "steps.audit"
        assert [p["Name"] for p in definition["Parameters"]][-1] == "AuditInstanceType"
        settings = next(body for uri, body in built.assets.files.items() if "/settings/audit-" in uri)
        assert json.loads(settings) == {"contract_version": CONTRACT_VERSION, "settings": {"threshold": 5}, "stage": "audit"}

    def test_left_out_it_changes_nothing(self):
        with_registry = build(validate_config(config(None), registry=TOY)).definition
        assert with_registry == build(validate_config(yaml.safe_load(EXAMPLE_CONFIG.read_text()))).definition


class TestInvalidToyStage:
    def test_its_section_rejects_unknown_keys(self):
        with pytest.raises(ConfigError) as err:
            validate_config(config({"thresh": 5}), "toy.yaml", registry=TOY)
        assert err.value.problems == ["stages.audit.thresh: unknown key; did you mean threshold?"]

    def test_its_own_rule_and_needs(self):
        data = config({"threshold": 11})
        del data["stages"]["combine"], data["stages"]["encode"]
        with pytest.raises(ConfigError) as err:
            validate_config(data, "toy.yaml", registry=TOY)
        assert err.value.problems == ["stages.audit: needs stages.combine", "stages.audit.threshold: above 10 audits nothing"]

    def test_the_default_registry_does_not_know_it(self):
        with pytest.raises(ConfigError) as err:
            validate_config(config({"threshold": 5}), "x.yaml")
        assert err.value.problems[0].startswith("stages.audit: unknown key; the keys here are combine, encode, ")
