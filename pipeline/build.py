"""The composition root: a validated config becomes a SageMaker `Pipeline`, its assets and its
definition JSON. Nothing here talks to AWS; the definition is a pure function of config + code."""

from __future__ import annotations

import json
from dataclasses import dataclass

from pipeline.bundle import Assets, build_assets
from pipeline.config import Config
from pipeline.sdk import pipeline_session

def _settings_models() -> dict:
    """Stage name -> the settings model its container validates (`steps/<stage>/settings.py`)."""
    from steps.combine.settings import CombineSettings
    from steps.encode.settings import EncodeSettings
    from steps.featurize.settings import FeaturizeSettings
    from steps.reconcile.settings import ReconcileSettings

    return {"reconcile": ReconcileSettings, "featurize": FeaturizeSettings,
            "combine": CombineSettings, "encode": EncodeSettings}


@dataclass(frozen=True)
class Built:
    pipeline: object
    assets: Assets
    definition: str


def stage_settings(cfg: Config) -> dict[str, dict]:
    """Each enabled stage's container settings: its config section minus the builder's fields."""
    out = {}
    for stage, section in cfg.stages.enabled().items():
        model = _settings_models()[stage]
        values = {k: getattr(section, k) for k in model.model_fields}
        if stage == "combine":
            values["expected_shards"] = cfg.stages.featurize.shard_names()
        out[stage] = model.model_validate(values).model_dump(mode="json")
    return out


def resolve_image(cfg: Config) -> tuple[str, bool]:
    """The processing image, and whether the job installs the requirements at start.

    The managed image URI comes from the SDK's bundled tables: no AWS call."""
    image = cfg.image
    if image.uri:
        return image.uri, bool(image.install_requirements)
    from sagemaker.core import image_uris

    uri = image_uris.retrieve(
        image.framework, cfg.aws.region, version=image.framework_version, py_version=image.py_version,
        instance_type="ml.m5.xlarge", image_scope="training",
    )
    return uri, image.install_requirements is not False


def canonical(definition: str) -> str:
    """Sorted keys and no whitespace: byte-identical for the same pipeline, and 44 % smaller than
    the SDK's output, which matters against the API's 1 MiB definition limit at 300 shards."""
    return json.dumps(json.loads(definition), separators=(",", ":"), sort_keys=True)


def pretty(definition: str) -> str:
    return json.dumps(json.loads(definition), indent=2, sort_keys=True) + "\n"


def build(cfg: Config) -> Built:
    session = pipeline_session(cfg.aws.region, cfg.aws.bucket)  # first: it prepares the SDK import
    from sagemaker.core.workflow.pipeline_definition_config import PipelineDefinitionConfig
    from sagemaker.mlops.workflow.pipeline import Pipeline

    from pipeline.parameters import build_params
    from pipeline.sdk import cheap_processing_steps
    from pipeline.stages.common import BuildContext, base_uri

    assets = build_assets(base_uri(cfg), stage_settings(cfg))
    image_uri, install = resolve_image(cfg)
    params = build_params(cfg)
    ctx = BuildContext(cfg=cfg, session=session, params=params, assets=assets,
                       image_uri=image_uri, install_requirements=install)
    with cheap_processing_steps():
        steps = _steps(ctx, cfg.stages.enabled())
        pipeline = Pipeline(
            name=cfg.pipeline.name,
            parameters=params.all(),
            steps=steps,
            sagemaker_session=session,
            # Keep job names out of the definition: they would defeat caching and versioning.
            pipeline_definition_config=PipelineDefinitionConfig(use_custom_job_prefix=False),
            # No Experiment/Trial per execution: the SDK's default differs by region (only where
            # Experiments is GA) and needs permissions and cleanup nobody asked for.
            pipeline_experiment_config=None,
        )
        definition = canonical(pipeline.definition())
    return Built(pipeline=pipeline, assets=assets, definition=definition)


def _steps(ctx, enabled: dict) -> list:
    """Reconcile -> Featurize-<shard> x N -> Combine -> Encode, leaving out disabled stages."""
    from pipeline.stages import combine, encode, featurize, reconcile

    reconcile_step = reconcile.build(ctx) if "reconcile" in enabled else None
    featurize_steps = featurize.build(ctx, reconcile_step) if "featurize" in enabled else []
    combine_step = combine.build(ctx, featurize_steps, reconcile_step) if "combine" in enabled else None
    encode_step = encode.build(ctx, reconcile_step, combine_step) if "encode" in enabled else None
    return [s for s in [reconcile_step, *featurize_steps, combine_step, encode_step] if s is not None]
