"""Featurize: one ProcessingStep per macroshard, all in parallel.

Its input is the shard's whole file set on one instance (FullyReplicated: a WFDB record's
header and data files depend on each other): the manifest Reconcile wrote for the shard, or,
without Reconcile, a key prefix (e.g. a MIMIC-III group folder) under the input URI.

Where the features go decides whether Combine can find them when Featurize steps are cached
(a cached step's outputs stay where its earlier execution wrote them):

- After Reconcile, outputs are content-addressed: `<shards_uri>/features/<featurize key>/
  <shard>`, where `shards_uri` (read from Reconcile's report.json with JsonGet) names the
  manifests by a digest of every file they list, and the key hashes everything static in the
  step (code, settings, image, environment). Same data and step, same URI: a cache hit finds
  its outputs there, and Combine reads the single prefix above the shards (no per-shard
  reference, no API limit). Two executions computing the same features concurrently write
  identical files to the same place; different data or settings never share a place.
- Over raw prefixes, outputs go under the execution id, and Combine gets each shard's output
  by property reference as a container argument (SageMaker allows 100 arguments, hence the
  config's limit on prefixes).
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Union

from pydantic import Field, field_validator

from pipeline.config.models import INSTANCE_TYPE, Config, Model, StageInfra
from pipeline.names import step_name
from pipeline.parameters import INPUT_URI
from pipeline.stages import reconcile as reconcile_stage
from pipeline.stages.common import BuildContext, environment, processing_step, s3_input, s3_output
from pipeline.stages.registry import Stage, Upstream
from steps import contract as c
from steps.featurize.settings import FeaturizeSettings

NAME = "featurize"
DATA = c.input_dir("data")
OUTPUT = c.output_dir("features")
# Combine's own arguments leave 90 of SageMaker's 100 container arguments for shard outputs.
MAX_PREFIX_SHARDS = 90
# The definition is capped at 1 MiB (CreatePipeline). Measured on config/example.yaml: about
# 3,090 bytes per Featurize step (compact), so 336 fit; 300 leaves room for longer names, tags and
# environment. `validate` and `upsert` measure the real definition (tests/pipeline/test_validate.py).
MAX_COUNTED_SHARDS = 300
SHARD_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$")


class Prefix(Model):
    name: str = Field(pattern=SHARD_NAME.pattern)
    prefix: str = Field(description="Key prefix under the input URI, e.g. a MIMIC-III group folder `30`.")


class FeaturizeStage(StageInfra, FeaturizeSettings):
    """`stages.featurize`: `macroshards: N` with Reconcile, or `prefixes: [...]` without."""

    instance_type: str = Field("ml.m5.4xlarge", pattern=INSTANCE_TYPE)
    macroshards: int | None = Field(
        None, ge=1, le=MAX_COUNTED_SHARDS,
        description="How many macroshards Reconcile splits the artifacts into (balanced by bytes), one step each.")
    prefixes: list[Prefix] | None = Field(
        None, min_length=1, description="Key prefixes under InputUri, one step each (without Reconcile): a prefix "
        "`30`, or {name, prefix}.")

    # Editors see what may be written (a string or a mapping); the model keeps one shape.
    @field_validator("prefixes", mode="before", json_schema_input_type=list[Union[str, Prefix]] | None)
    @classmethod
    def _named(cls, value):
        if isinstance(value, list):
            return [{"name": v.strip("/"), "prefix": v} if isinstance(v, str) else v for v in value]
        return value

    @field_validator("prefixes")
    @classmethod
    def _unique(cls, value):
        names = [p.name for p in value or []]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate prefix names: {dupes}")
        return value

    def shard_names(self) -> list[str]:
        if self.prefixes is not None:
            return [p.name for p in self.prefixes]
        return [c.shard_name(i) for i in range(self.macroshards or 0)]


def checks(cfg: Config) -> list[str]:
    section = cfg.stages.featurize
    with_reconcile = cfg.stages.reconcile is not None
    if section.macroshards is not None and section.prefixes is not None:
        return ["stages.featurize: give macroshards (a count, with reconcile) or prefixes (without), not both"]
    if with_reconcile and section.macroshards is None:
        return ["stages.featurize.macroshards: with reconcile, give a count (Reconcile assigns artifacts to shards "
                "by bytes); prefixes are for raw folders without reconcile"]
    if not with_reconcile and section.prefixes is None:
        return ["stages.featurize.prefixes: without reconcile, list the key prefixes (e.g. the group folders "
                "30..39), one step each"]
    if section.prefixes is not None and len(section.prefixes) > MAX_PREFIX_SHARDS:
        return [f"stages.featurize.prefixes: {len(section.prefixes)}, at most {MAX_PREFIX_SHARDS} (Combine receives "
                "each shard's output as a container argument, and SageMaker allows 100); use reconcile and a "
                "macroshards count for more"]
    return []


def featurize_key(ctx: BuildContext) -> str:
    infra = ctx.cfg.stages.featurize
    static = {
        "code": ctx.assets.code_hash,
        "settings": ctx.assets.settings_uri(NAME),
        "image": ctx.image_uri,
        "environment": environment(ctx, NAME, infra),
    }
    return hashlib.sha256(json.dumps(static, sort_keys=True).encode()).hexdigest()[:16]


def features_root(ctx: BuildContext, reconcile_step):
    """The prefix holding every shard's features, after Reconcile (see the module doc)."""
    from sagemaker.core.workflow.functions import Join

    return Join(on="/", values=[reconcile_stage.shards_uri(reconcile_step), c.FEATURES_FOLDER, featurize_key(ctx), ""])


def _io(ctx: BuildContext, shard: str, reconcile_step) -> tuple:
    from sagemaker.core.workflow.functions import Join

    if reconcile_step is not None:
        shards = reconcile_stage.shards_uri(reconcile_step)
        manifest = Join(on="/", values=[shards, shard + c.MANIFEST_SUFFIX])
        out = Join(on="/", values=[shards, c.FEATURES_FOLDER, featurize_key(ctx), shard])
        return s3_input("data", manifest, DATA, data_type="ManifestFile"), s3_output("features", out, OUTPUT)
    prefix = next(p.prefix for p in ctx.cfg.stages.featurize.prefixes if p.name == shard)
    # The trailing slash matters: S3 prefixes are string prefixes, and `30` would also match `300/`.
    uri = Join(on="/", values=[ctx.params[INPUT_URI], prefix.strip("/") + "/"])
    return s3_input("data", uri, DATA), s3_output("features", ctx.execution_uri(NAME, shard), OUTPUT)


def build(ctx: BuildContext, upstream: Upstream) -> list:
    infra = ctx.cfg.stages.featurize
    reconcile_step = next(iter(upstream.get("reconcile") or []), None)
    steps = []
    for shard in infra.shard_names():
        data, features = _io(ctx, shard, reconcile_step)
        steps.append(processing_step(
            ctx, step_name(NAME, shard), NAME, infra,
            [c.ARG_INPUT, DATA, c.ARG_OUTPUT, OUTPUT, c.ARG_SHARD, shard],
            inputs=[data], outputs=[features],
        ))
    return steps


def output_uri(step):
    return step.properties.ProcessingOutputConfig.Outputs["features"].S3Output.S3Uri


STAGE = Stage(name=NAME, section=FeaturizeStage, settings=FeaturizeSettings, build=build,
              functions=("feature_function",), checks=checks)
