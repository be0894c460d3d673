"""A stage is declared once, in the registry: a toy stage added through it alone is validated,
gets its settings file and instance-type parameter, builds into the definition, and shows in
`plan`, the sizing table, `iam-policy` (and the network-isolation check) and `report`."""

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
from pipeline.stages.registry import ReportReading, S3Access, Stage
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


RULES = "s3://audit-rules/rules.json"
AUDIT_SUMMARY = "audit_summary.parquet"

TOY = default_registry().with_stage(Stage(
    name="audit", section=AuditStage, settings=AuditSettings, build=build_audit, needs=("combine",),
    checks=audit_checks, rough_seconds=(120.0, 0.0), access=lambda cfg: S3Access(objects=(RULES,)),
    s3_access=lambda cfg: "stages.audit reads its rules from S3", report=ReportReading(summary_file=AUDIT_SUMMARY)))


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


class TestValidToyStageEverywhere:
    """Plan, sizing table, IAM, network isolation and report learn of the toy stage from its
    registry entry alone."""

    @pytest.fixture(scope="class")
    def toy_cfg(self):
        return validate_config(config({"threshold": 5}), str(EXAMPLE_CONFIG), registry=TOY)

    def test_plan_and_sizing_table(self, toy_cfg, tmp_path):
        from pipeline.local.command import ensure_sample_data
        from pipeline.plan.predict import make_sized_plan
        from pipeline.plan.table import format_sizing

        ensure_sample_data(toy_cfg, tmp_path, "local")
        plans, sizing = make_sized_plan(toy_cfg, tmp_path, "local", {})
        assert (plans[-1].name, plans[-1].state, plans[-1].why) == ("Audit", "Runs", "runs: it never completed here")
        [audit] = [r for r in sizing.full if r.stage == "Audit"]
        assert audit.jobs == 1 and audit.usd > 0
        assert "Combine, Encode and Audit times are rough figures" in format_sizing(sizing)

    def test_iam_policy_and_network_isolation(self, toy_cfg):
        from pipeline.deploy.iam_policy import role_policy

        reads = next(s for s in role_policy(toy_cfg)["Statement"] if s["Sid"] == "ReadInputData")
        assert "arn:aws:s3:::audit-rules/rules.json" in reads["Resource"]
        data = config({"threshold": 5})
        data.setdefault("aws", {}).setdefault("network", {})["enable_network_isolation"] = True
        with pytest.raises(ConfigError) as err:
            validate_config(data, "toy.yaml", registry=TOY)
        assert any(p.startswith("aws.network.enable_network_isolation: stages.audit reads its rules from S3")
                   for p in err.value.problems)

    def test_report(self, toy_cfg, tmp_path):
        import pandas as pd

        from pipeline.report.facts import gather
        from pipeline.report.html import render
        from pipeline.report.sources import Execution, Step
        from steps.io.storage import LocalStorage

        storage = LocalStorage(tmp_path)
        summary = pd.DataFrame({"signal": ["II"], "signal_normalised": ["II"], "mean": [0.5], "std": [0.1],
                                "frac_nan": [0.0], "shard": ["shard-0001"]})
        storage.write_bytes(f"s3://b/run/audit/{AUDIT_SUMMARY}", summary.to_parquet())
        definition = json.loads(build(toy_cfg).definition)
        execution = Execution("e1", "wavepipe-example", "Succeeded", "local (test)", None,
                              [Step("Audit", "Succeeded", outputs={"audit": "s3://b/run/audit"})], definition, storage)
        facts = gather(execution, TOY)
        assert facts.summary["signal"].tolist() == ["II"]
        assert "Audit" in render(execution, facts)
