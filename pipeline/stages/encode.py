"""Encode: a HuggingFace `datasets` DatasetDict from the reconciled artifacts and labels
(and, for waveforms, the combined features), saved under the EncodedDataDir parameter."""

from __future__ import annotations

from pipeline.config.models import StageInfra
from pipeline.stages.names import step_name
from pipeline.build.parameters import ENCODED_DATA_DIR, EXPERIMENT
from pipeline.stages import combine as combine_stage
from pipeline.stages import reconcile as reconcile_stage
from pipeline.stages.common import BuildContext, processing_step, s3_input, s3_output
from pipeline.plan import prices
from pipeline.stages.registry import ReportReading, Stage, Upstream
from steps import contract as c
from steps.encode.settings import EncodeSettings

NAME = "encode"
LABELS = c.input_dir("labels")
ARTIFACTS = c.input_dir("artifacts")
FEATURES = c.input_dir("features")
OUTPUT = c.output_dir(NAME)


class EncodeStage(StageInfra, EncodeSettings):
    """`stages.encode`."""


def build(ctx: BuildContext, upstream: Upstream) -> list:
    from sagemaker.core.workflow.functions import Join

    infra = ctx.cfg.stages.encode
    (reconcile_step,) = upstream["reconcile"]
    combine_step = next(iter(upstream.get("combine") or []), None)
    p = ctx.params
    arguments = [c.ARG_OUTPUT, OUTPUT, c.ARG_ENCODED_DATA_DIR, p[ENCODED_DATA_DIR], c.ARG_LABELS, LABELS]
    # Both content-addressed: Encode is a cache hit exactly when its labels, the artifacts'
    # files (in the labels' digest) and the combined features are what it encoded before.
    inputs = [s3_input("labels", reconcile_stage.labels_uri(reconcile_step), LABELS)]
    if infra.model_input_files:
        artifacts = Join(on="/", values=[ctx.base_uri, "experiments", p[EXPERIMENT], *c.RECONCILED_ARTIFACTS.split("/"), ""])
        inputs.append(s3_input("artifacts", artifacts, ARTIFACTS))
        arguments += [c.ARG_ARTIFACTS, ARTIFACTS]
    if infra.use_features and combine_step is not None:
        inputs.append(s3_input("features", combine_stage.combined_uri(combine_step), FEATURES))
        arguments += [c.ARG_FEATURES, FEATURES]
    return [processing_step(
        ctx, step_name(NAME), NAME, infra, arguments, inputs=inputs,
        outputs=[s3_output(NAME, ctx.execution_uri(NAME), OUTPUT)],
    )]


STAGE = Stage(name=NAME, section=EncodeStage, settings=EncodeSettings, build=build, needs=("reconcile",),
              functions=("get_dataset_features", "encode_data"), rough_seconds=(prices.ENCODE_S, 0.0),
              report=ReportReading(splits_file=c.SPLIT_METADATA_FILE))
