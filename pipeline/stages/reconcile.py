"""Reconcile: labels (SQL) joined with raw files (S3), copied per experiment, split into shards.

It is never cached: its cache key (arguments, code, settings) cannot see what it reads, a
database and an S3 listing that change between runs, so a cached Reconcile would serve stale
labels and miss new files. Rerunning it is cheap when nothing changed (identical copies are
skipped), and it publishes the shard manifests content-addressed (`shards_uri` in its
report.json), which is what keeps the expensive Featurize steps cacheable."""

from __future__ import annotations

from pipeline.names import step_name
from pipeline.stages.common import PROCESSING, BuildContext, processing_step, s3_output

OUTPUT = f"{PROCESSING}/output/reconcile"
REPORT = "ReconcileReport"


def build(ctx: BuildContext):
    from sagemaker.core.workflow.functions import Join
    from sagemaker.core.workflow.properties import PropertyFile

    stages = ctx.cfg.stages.enabled()
    featurize = stages.get("featurize")
    p = ctx.params
    arguments = [
        "--source-uri", p.input_uri,
        "--experiment-uri", ctx.experiment_uri(),
        "--output", OUTPUT,
        "--macroshards", str(featurize.macroshards if featurize else 1),
        "--reload", p.reload,
        # Bound as a SQL parameter by the container, never formatted into the query text.
        "--sql-param", Join(on="", values=["experiment_name=", p.experiment_name]),
    ]
    report = PropertyFile(name=REPORT, output_name="reconcile", path="report.json")
    return processing_step(
        ctx, step_name("reconcile"), "reconcile", stages["reconcile"], arguments,
        inputs=[], outputs=[s3_output("reconcile", ctx.execution_uri("reconcile"), OUTPUT)],
        property_files=[report], cacheable=False,
    )


def output_uri(step):
    return step.properties.ProcessingOutputConfig.Outputs["reconcile"].S3Output.S3Uri


def shards_uri(step):
    """`<experiment>/shards/<digest of every listed file>`: where Reconcile published the manifests."""
    from sagemaker.core.workflow.functions import JsonGet

    return JsonGet(step_name=step.name, property_file=step.property_files[0], json_path="shards_uri")
