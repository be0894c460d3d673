"""Encode: a HuggingFace `datasets` DatasetDict from the reconciled artifacts and labels
(and, for waveforms, the combined features), saved under the EncodedDataDir parameter."""

from __future__ import annotations

from pipeline.names import step_name
from pipeline.stages import combine as combine_stage
from pipeline.stages import reconcile as reconcile_stage
from pipeline.stages.common import PROCESSING, BuildContext, processing_step, s3_input, s3_output

LABELS = f"{PROCESSING}/input/labels"
ARTIFACTS = f"{PROCESSING}/input/artifacts"
FEATURES = f"{PROCESSING}/input/features"
OUTPUT = f"{PROCESSING}/output/encode"


def build(ctx: BuildContext, reconcile_step, combine_step=None):
    from sagemaker.core.workflow.functions import Join

    infra = ctx.cfg.stages.encode
    p = ctx.params
    arguments = ["--output", OUTPUT, "--encoded-data-dir", p.encoded_data_dir, "--labels", LABELS]
    inputs = [s3_input("labels", reconcile_stage.output_uri(reconcile_step), LABELS)]
    if infra.model_input_files:
        artifacts = Join(on="/", values=[ctx.base_uri, "experiments", p.experiment_name,
                                         "data", "reconciled_artifacts", ""])
        inputs.append(s3_input("artifacts", artifacts, ARTIFACTS))
        arguments += ["--artifacts", ARTIFACTS]
    if infra.use_features and combine_step is not None:
        inputs.append(s3_input("features", combine_stage.output_uri(combine_step), FEATURES))
        arguments += ["--features", FEATURES]
    return processing_step(
        ctx, step_name("encode"), "encode", infra, arguments, inputs=inputs,
        outputs=[s3_output("encode", ctx.execution_uri("encode"), OUTPUT)],
    )
