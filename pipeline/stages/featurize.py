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

from pipeline.names import step_name
from pipeline.stages import reconcile as reconcile_stage
from pipeline.stages.common import PROCESSING, BuildContext, environment, processing_step, s3_input, s3_output

DATA = f"{PROCESSING}/input/data"
OUTPUT = f"{PROCESSING}/output/features"


def featurize_key(ctx: BuildContext) -> str:
    infra = ctx.cfg.stages.featurize
    static = {
        "code": ctx.assets.code_hash,
        "settings": ctx.assets.settings_uri("featurize"),
        "image": ctx.image_uri,
        "environment": environment(ctx, "featurize", infra),
    }
    return hashlib.sha256(json.dumps(static, sort_keys=True).encode()).hexdigest()[:16]


def features_root(ctx: BuildContext, reconcile_step):
    """The prefix holding every shard's features, after Reconcile (see the module doc)."""
    from sagemaker.core.workflow.functions import Join

    return Join(on="/", values=[reconcile_stage.shards_uri(reconcile_step), "features", featurize_key(ctx), ""])


def _io(ctx: BuildContext, shard, reconcile_step) -> tuple:
    from sagemaker.core.workflow.functions import Join

    if reconcile_step is not None:
        shards = reconcile_stage.shards_uri(reconcile_step)
        manifest = Join(on="/", values=[shards, f"{shard}.manifest"])
        out = Join(on="/", values=[shards, "features", featurize_key(ctx), shard])
        return s3_input("data", manifest, DATA, data_type="ManifestFile"), s3_output("features", out, OUTPUT)
    # The trailing slash matters: S3 prefixes are string prefixes, and `30` would also match `300/`.
    prefix = Join(on="/", values=[ctx.params.input_uri, shard.prefix.strip("/") + "/"])
    return s3_input("data", prefix, DATA), s3_output("features", ctx.execution_uri("featurize", shard.name), OUTPUT)


def build(ctx: BuildContext, reconcile_step=None) -> list:
    infra = ctx.cfg.stages.featurize
    shards = infra.macroshards if isinstance(infra.macroshards, list) else infra.shard_names()
    steps = []
    for shard in shards:
        name = shard if isinstance(shard, str) else shard.name
        data, features = _io(ctx, shard, reconcile_step)
        steps.append(processing_step(
            ctx, step_name("featurize", name), "featurize", infra,
            ["--input", DATA, "--output", OUTPUT, "--shard", name],
            inputs=[data], outputs=[features],
        ))
    return steps


def output_uri(step):
    return step.properties.ProcessingOutputConfig.Outputs["features"].S3Output.S3Uri
