"""The composition root: a validated config becomes a SageMaker `Pipeline`, its assets and its
definition JSON. Nothing here talks to AWS; the definition is a pure function of config + code."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.build.bundle import Assets, build_assets, user_files
from pipeline.config.models import Config
from pipeline.definition.model import canonical
from pipeline.build.images import installs_requirements, job_python
from pipeline.build.sdk import pipeline_session
from pipeline.build.wheelhouse import Wheelhouse


@dataclass(frozen=True)
class Built:
    assets: Assets
    definition: str
    # What the jobs install from, when they install at start (pipeline/build/wheelhouse.py).
    wheelhouse: Wheelhouse | None = None
    wheelhouse_uri: str | None = None


def stage_settings(cfg: Config) -> dict[str, dict]:
    """Each stage's container settings, by stage name."""
    return {stage.name: stage.container_settings(cfg) for stage in cfg.registry.enabled(cfg)}


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
    return uri, installs_requirements(cfg)


def job_wheelhouse(cfg: Config, install: bool) -> Wheelhouse | None:
    """The wheelhouse the jobs install from: when they install, and from no private index."""
    python = job_python(cfg)
    if not install or cfg.image.pip_index_url or python is None:
        return None
    return Wheelhouse.for_python(python)


def build(cfg: Config) -> Built:
    """The pipeline of `cfg`, built by the stages of the registry it was validated with."""
    registry = cfg.registry
    session = pipeline_session(cfg.aws.region, cfg.aws.bucket)  # first: it prepares the SDK import
    from sagemaker.core.workflow.pipeline_definition_config import PipelineDefinitionConfig
    from sagemaker.mlops.workflow.pipeline import Pipeline

    from pipeline.build.parameters import build_params
    from pipeline.build.sdk import cheap_processing_steps
    from pipeline.stages.common import BuildContext, base_uri

    assets = build_assets(base_uri(cfg), stage_settings(cfg), user_files(cfg.code.paths, cfg.code.requirements))
    image_uri, install = resolve_image(cfg)
    params = build_params(cfg)
    wheelhouse = job_wheelhouse(cfg, install)
    wheelhouse_uri = wheelhouse.uri(base_uri(cfg)) if wheelhouse else None
    ctx = BuildContext(cfg=cfg, session=session, params=params, assets=assets,
                       image_uri=image_uri, install_requirements=install, registry=registry,
                       wheelhouse_uri=wheelhouse_uri, pip_index_url=cfg.image.pip_index_url if install else None)
    with cheap_processing_steps():
        upstream: dict[str, list] = {}
        for stage in registry.enabled(cfg):
            upstream[stage.name] = stage.build(ctx, upstream)
        pipeline = Pipeline(
            name=cfg.pipeline.name,
            parameters=list(params.values()),
            steps=[step for steps in upstream.values() for step in steps],
            sagemaker_session=session,
            # Keep job names out of the definition: they would defeat caching and versioning.
            pipeline_definition_config=PipelineDefinitionConfig(use_custom_job_prefix=False),
            # No Experiment/Trial per execution: the SDK's default differs by region (only where
            # Experiments is GA) and needs permissions and cleanup nobody asked for.
            pipeline_experiment_config=None,
        )
        definition = canonical(pipeline.definition())
    return Built(assets=assets, definition=definition, wheelhouse=wheelhouse, wheelhouse_uri=wheelhouse_uri)
