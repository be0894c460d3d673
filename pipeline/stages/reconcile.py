"""Reconcile: labels (SQL) joined with raw files (S3), copied per experiment, split into shards."""

from __future__ import annotations

from pipeline.names import step_name
from pipeline.stages.common import PROCESSING, BuildContext, processing_step, s3_output

OUTPUT = f"{PROCESSING}/output/reconcile"
SHARDS = f"{PROCESSING}/output/shards"


def build(ctx: BuildContext):
    from sagemaker.core.workflow.functions import Join

    stages = ctx.cfg.stages.enabled()
    featurize = stages.get("featurize")
    p = ctx.params
    arguments = [
        "--source-uri", p.input_uri,
        "--experiment-uri", ctx.experiment_uri(),
        "--output", OUTPUT,
        "--manifests", SHARDS,
        "--macroshards", str(featurize.macroshards if featurize else 1),
        "--reload", p.reload,
        # Bound as a SQL parameter by the container, never formatted into the query text.
        "--sql-param", Join(on="", values=["experiment_name=", p.experiment_name]),
    ]
    return processing_step(
        ctx, step_name("reconcile"), "reconcile", stages["reconcile"], arguments,
        inputs=[],
        outputs=[
            s3_output("reconcile", ctx.execution_uri("reconcile"), OUTPUT),
            # Its own output, so Encode (which reads `reconcile`) never downloads shard features.
            s3_output("shards", ctx.execution_uri("shards"), SHARDS),
        ],
    )


def output_uri(step, name: str = "reconcile"):
    return step.properties.ProcessingOutputConfig.Outputs[name].S3Output.S3Uri
