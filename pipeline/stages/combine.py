"""Combine: every shard's features into one table and signal statistics.

It depends on the shard steps by name (with `run_when_shards_fail`, via StepDependency ANY, so
it starts even when a shard failed, combines what exists and reports the rest). How it finds
the shard outputs is explained in `pipeline.stages.featurize`."""

from __future__ import annotations

from pydantic import Field

from pipeline.config.models import Config, StageInfra
from pipeline.names import step_name
from pipeline.stages import featurize as featurize_stage
from pipeline.stages.common import BuildContext, processing_step, s3_input, s3_output
from pipeline.stages.registry import Stage, Upstream
from steps import contract as c
from steps.combine.settings import CombineSettings

NAME = "combine"
SHARDS = c.input_dir("shards")
OUTPUT = c.output_dir(NAME)


class CombineStage(StageInfra, CombineSettings):
    """`stages.combine`."""

    run_when_shards_fail: bool = Field(
        False, description="Run Combine when some Featurize steps failed (StepDependency ANY)."
    )


def derived_settings(cfg: Config) -> dict:
    """Combine reports the shards it expected and did not find: their names come from Featurize."""
    return {"expected_shards": cfg.stages.featurize.shard_names()}


def build(ctx: BuildContext, upstream: Upstream) -> list:
    from sagemaker.core.workflow.functions import Join
    from sagemaker.mlops.workflow.step_dependency import StepDependency, TriggerCondition

    infra = ctx.cfg.stages.combine
    featurize_steps = upstream["featurize"]
    reconcile_step = next(iter(upstream.get("reconcile") or []), None)
    if infra.run_when_shards_fail:
        depends_on = [StepDependency(s, TriggerCondition.ANY) for s in featurize_steps]
    else:
        depends_on = [s.name for s in featurize_steps]
    names = ctx.cfg.stages.featurize.shard_names()
    if reconcile_step is not None:
        inputs = [s3_input("shards", featurize_stage.features_root(ctx, reconcile_step), SHARDS)]
        arguments = [c.ARG_INPUT, SHARDS]
    else:
        inputs = []
        arguments = [c.ARG_SHARD_OUTPUTS] + [
            Join(on="", values=[f"{name}=", featurize_stage.output_uri(step)])
            for name, step in zip(names, featurize_steps)
        ]
    return [processing_step(
        ctx, step_name(NAME), NAME, infra, [c.ARG_OUTPUT, OUTPUT, *arguments],
        inputs=inputs,
        outputs=[s3_output(NAME, ctx.execution_uri(NAME), OUTPUT)],
        depends_on=depends_on,
    )]


def output_uri(step):
    return step.properties.ProcessingOutputConfig.Outputs[NAME].S3Output.S3Uri


STAGE = Stage(name=NAME, section=CombineStage, settings=CombineSettings, build=build, needs=("featurize",),
              derived_settings=derived_settings)
