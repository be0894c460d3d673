"""What every stage's step shares: the processor, the code and settings inputs, retries, cache,
and where an execution writes (a prefix containing the execution id)."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.build.bundle import Assets
from pipeline.config.models import Config, StageInfra
from pipeline.build.images import has_instance_storage
from pipeline.build.parameters import EXPERIMENT, instance_type_param_name
from steps import contract as c

ENTRYPOINT = ["python3", f"{c.CODE_DIR}/bootstrap.py"]


def base_uri(cfg: Config) -> str:
    """`s3://<bucket>/<output prefix>/<pipeline>`: assets, experiments and executions live here."""
    return f"s3://{cfg.aws.bucket}/{cfg.aws.output_prefix}/{cfg.pipeline.name}"


@dataclass(frozen=True)
class BuildContext:
    cfg: Config
    session: object
    params: dict  # parameter name -> ParameterString (pipeline.build.parameters)
    assets: Assets
    image_uri: str
    install_requirements: bool
    registry: object  # pipeline.stages.registry.Registry
    wheelhouse_uri: str | None = None  # where the jobs install from (pipeline.build.wheelhouse), if they install
    pip_index_url: str | None = None  # or a private index instead (image.pip_index_url)

    def section(self, stage: str) -> StageInfra:
        return self.registry[stage].section_of(self.cfg)

    @property
    def base_uri(self) -> str:
        return base_uri(self.cfg)

    def execution_uri(self, *parts: str):
        """`<base>/<execution id>/<parts>`: no two executions ever write to the same place."""
        from sagemaker.core.workflow.execution_variables import ExecutionVariables
        from sagemaker.core.workflow.functions import Join

        return Join(on="/", values=[self.base_uri, ExecutionVariables.PIPELINE_EXECUTION_ID, *parts])

    def experiment_uri(self):
        from sagemaker.core.workflow.functions import Join

        return Join(on="/", values=[self.base_uri, "experiments", self.params[EXPERIMENT]])


def report_value(step, json_path: str):
    """A value of the report.json a step declares as its (first) property file, read at run
    time with JsonGet: how a step's content-addressed outputs reach the steps after it."""
    from sagemaker.core.workflow.functions import JsonGet

    return JsonGet(step_name=step.name, property_file=step.property_files[0], json_path=json_path)


def report_file(name: str, output_name: str):
    from sagemaker.core.workflow.properties import PropertyFile

    return PropertyFile(name=name, output_name=output_name, path=c.REPORT_FILE)


def step_key(ctx: "BuildContext", stage: str) -> str:
    """A hash of everything static in a stage's step (code, settings, image, environment):
    content-addressed outputs are written under it, so other code or settings never share
    (or overwrite) a place."""
    import hashlib
    import json

    static = {
        "code": ctx.assets.code_hash,
        "settings": ctx.assets.settings_uri(stage),
        "image": ctx.image_uri,
        "environment": environment(ctx, stage, ctx.section(stage)),
    }
    return hashlib.sha256(json.dumps(static, sort_keys=True).encode()).hexdigest()[:16]


def s3_input(name: str, uri, local_path: str, data_type: str = "S3Prefix"):
    from sagemaker.core.shapes import ProcessingInput, ProcessingS3Input

    return ProcessingInput(
        input_name=name,
        s3_input=ProcessingS3Input(
            s3_uri=uri,
            local_path=local_path,
            s3_data_type=data_type,
            s3_input_mode="File",
            s3_data_distribution_type="FullyReplicated",
        ),
    )


def s3_output(name: str, uri, local_path: str):
    from sagemaker.core.shapes import ProcessingOutput, ProcessingS3Output

    return ProcessingOutput(
        output_name=name,
        s3_output=ProcessingS3Output(s3_uri=uri, local_path=local_path, s3_upload_mode="EndOfJob"),
    )


def retry_policies(retry) -> list:
    from sagemaker.mlops.workflow.retry import (
        SageMakerJobExceptionTypeEnum,
        SageMakerJobStepRetryPolicy,
        StepExceptionTypeEnum,
        StepRetryPolicy,
    )

    common = dict(max_attempts=retry.max_attempts, interval_seconds=retry.interval_seconds,
                  backoff_rate=retry.backoff_rate)
    job = [SageMakerJobExceptionTypeEnum[e] for e in retry.on if e in SageMakerJobExceptionTypeEnum.__members__]
    step = [StepExceptionTypeEnum[e] for e in retry.on if e in StepExceptionTypeEnum.__members__]
    out = []
    if step:
        out.append(StepRetryPolicy(exception_types=step, **common))
    if job:
        out.append(SageMakerJobStepRetryPolicy(exception_types=job, **common))
    if (quota := retry.resource_limit) is not None:
        # Apart, with a long interval: at a fan-out wider than the account's instance quota the
        # shards beyond it wait for earlier ones to finish, minutes rather than seconds.
        out.append(SageMakerJobStepRetryPolicy(
            exception_types=[SageMakerJobExceptionTypeEnum.RESOURCE_LIMIT], max_attempts=quota.max_attempts,
            interval_seconds=quota.interval_seconds, backoff_rate=quota.backoff_rate))
    return out


def environment(ctx: BuildContext, stage: str, infra: StageInfra) -> dict[str, str]:
    env = {"AWS_DEFAULT_REGION": ctx.cfg.aws.region, "PYTHONUNBUFFERED": "1", c.ENV_STAGE: stage,
           c.ENV_CODE_SHA256: ctx.assets.bundle_sha256}
    if ctx.cfg.aws.kms_key_id:
        env[c.ENV_KMS_KEY_ID] = ctx.cfg.aws.kms_key_id
    if ctx.install_requirements:
        env[c.ENV_PIP_INSTALL] = "1"
        if ctx.pip_index_url:
            env[c.ENV_PIP_INDEX_URL] = ctx.pip_index_url
        elif ctx.wheelhouse_uri:
            env[c.ENV_WHEELHOUSE] = c.WHEELHOUSE_DIR
    env.update(infra.environment)
    return dict(sorted(env.items()))


def processing_step(ctx: BuildContext, name: str, stage: str, infra: StageInfra, arguments: list,
                    inputs: list, outputs: list, depends_on: list | None = None,
                    property_files: list | None = None, cacheable: bool = True):
    """One ProcessingStep running `python -m steps.<stage>` from the bundle."""
    from sagemaker.core.network import NetworkConfig
    from sagemaker.core.processing import Processor
    from sagemaker.mlops.workflow.steps import CacheConfig, ProcessingStep

    aws = ctx.cfg.aws
    net = aws.network
    processor = Processor(
        role=aws.role_arn,
        image_uri=ctx.image_uri,
        instance_count=infra.instance_count,
        instance_type=ctx.params[instance_type_param_name(stage)],
        entrypoint=ENTRYPOINT,
        volume_size_in_gb=infra.volume_size_gb,
        # Never for an instance with its own storage (validate rejects the pair; an instance type
        # given at build time is checked here too, so no request the service refuses is built).
        volume_kms_key=None if has_instance_storage(infra.instance_type) else aws.kms_key_id,
        output_kms_key=aws.kms_key_id,
        max_runtime_in_seconds=infra.max_runtime_s,
        base_job_name=name,
        sagemaker_session=ctx.session,
        env=environment(ctx, stage, infra),
        tags=[{"Key": k, "Value": v} for k, v in sorted(ctx.cfg.pipeline.tags.items())] or None,
        network_config=NetworkConfig(
            enable_network_isolation=net.enable_network_isolation,
            security_group_ids=net.security_groups or None,
            subnets=net.subnets or None,
            encrypt_inter_container_traffic=net.encrypt_inter_container_traffic,
        ),
    )
    shipped = [
        s3_input("code", ctx.assets.code_uri, c.CODE_DIR),
        s3_input("settings", ctx.assets.settings_uri(stage), c.SETTINGS_DIR),
    ]
    if ctx.install_requirements and ctx.wheelhouse_uri and not ctx.pip_index_url:
        # SageMaker stages it from S3 before the container starts: no job reaches a package index.
        shipped.append(s3_input(c.WHEELHOUSE_INPUT, ctx.wheelhouse_uri, c.WHEELHOUSE_DIR))
    step_args = processor.run(
        inputs=shipped + inputs,
        outputs=outputs,
        arguments=[ctx.registry[stage].entry, *arguments, c.ARG_SETTINGS, c.settings_path(stage)],
    )
    cache = ctx.cfg.cache
    return ProcessingStep(
        name=name,
        step_args=step_args,
        cache_config=CacheConfig(enable_caching=cache.enabled and cacheable, expire_after=cache.expire_after),
        retry_policies=retry_policies(infra.retry),
        depends_on=depends_on,
        property_files=property_files,
    )


def argument(arguments: dict, name: str):
    """The value after `name` in a step's resolved ContainerArguments, or None."""
    args = arguments["AppSpecification"]["ContainerArguments"]
    return args[args.index(name) + 1] if name in args else None
