"""Combine: every shard's features into one table and signal statistics.

It depends on the shard steps by name (with `run_when_shards_fail`, via StepDependency ANY, so
it starts even when a shard failed, combines what exists and reports the rest). How it finds
the shard outputs is explained in `pipeline.stages.featurize`."""

from __future__ import annotations

from pipeline.names import step_name
from pipeline.stages import featurize as featurize_stage
from pipeline.stages.common import PROCESSING, BuildContext, processing_step, s3_input, s3_output

SHARDS = f"{PROCESSING}/input/shards"
OUTPUT = f"{PROCESSING}/output/combine"


def build(ctx: BuildContext, featurize_steps: list, reconcile_step=None):
    from sagemaker.core.workflow.functions import Join
    from sagemaker.mlops.workflow.step_dependency import StepDependency, TriggerCondition

    infra = ctx.cfg.stages.combine
    if infra.run_when_shards_fail:
        depends_on = [StepDependency(s, TriggerCondition.ANY) for s in featurize_steps]
    else:
        depends_on = [s.name for s in featurize_steps]
    names = ctx.cfg.stages.featurize.shard_names()
    if reconcile_step is not None:
        inputs = [s3_input("shards", featurize_stage.features_root(ctx, reconcile_step), SHARDS)]
        arguments = ["--input", SHARDS]
    else:
        inputs = []
        arguments = ["--shard-outputs"] + [
            Join(on="", values=[f"{name}=", featurize_stage.output_uri(step)])
            for name, step in zip(names, featurize_steps)
        ]
    return processing_step(
        ctx, step_name("combine"), "combine", infra, ["--output", OUTPUT, *arguments],
        inputs=inputs,
        outputs=[s3_output("combine", ctx.execution_uri("combine"), OUTPUT)],
        depends_on=depends_on,
    )


def output_uri(step):
    return step.properties.ProcessingOutputConfig.Outputs["combine"].S3Output.S3Uri
