"""The configuration's models: frozen, rejecting unknown keys, importing nothing from `pipeline/`
outside `pipeline/config/`. A stage's own section model lives with its stage (`pipeline/stages/<stage>.py`)
and is joined into `Config` by `config_model`, from the stage registry."""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Mapping, Union

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator, model_validator

from pipeline.config.schedules import expression_problem, timezone_problem
from steps.contract import ENCODED_DATA_DIRS, FULL_DATASET

INSTANCE_TYPE = r"^ml\.[a-z0-9-]+\.[a-z0-9]+$"
S3_URI = r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$"
# A folder on this machine, as an input of local runs only (`pipeline/local/folders.py`); a path
# in the YAML is made a `file://` URI of its absolute path when the config is loaded.
FILE_URI = r"^file:///.+$"
EXPERIMENT_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PipelineMeta(Model):
    name: str = Field(
        pattern=r"^[A-Za-z0-9](-*[A-Za-z0-9]){0,255}$",
        description="SageMaker pipeline name (letters, digits, hyphens).",
    )
    version: str = Field(description="Version of this configuration, recorded on every pipeline version.")
    description: str = Field("", max_length=3072)
    tags: dict[str, str] = Field(default_factory=dict, description="Tags on the pipeline and its jobs.")


class NetworkConfig(Model):
    subnets: list[str] = Field(default_factory=list)
    security_groups: list[str] = Field(default_factory=list)
    enable_network_isolation: bool = False
    encrypt_inter_container_traffic: bool = True

    @model_validator(mode="after")
    def _both_or_neither(self) -> "NetworkConfig":
        if bool(self.subnets) != bool(self.security_groups):
            raise ValueError("subnets and security_groups must be given together (VPC config)")
        return self


class AwsConfig(Model):
    region: str = Field(pattern=r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d$")
    role_arn: str = Field(
        pattern=r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$",
        description="Execution role of the pipeline and its jobs (trusts sagemaker and scheduler).",
    )
    bucket: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
    output_prefix: str = Field("wavepipe", description="Key prefix under which everything is written.")
    kms_key_id: str | None = Field(None, description="KMS key for volumes, outputs and S3 writes.")
    network: NetworkConfig = NetworkConfig()

    @field_validator("output_prefix")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip("/")


class ImageConfig(Model):
    uri: str | None = Field(
        None, pattern=r"^[^:/]+(:\d+)?/[^:]+(:[\w.-]+|@sha256:[0-9a-f]{64})?$",
        description="Image built from the project's Dockerfile, as `registry/repository:tag` (no scheme). "
        "Empty: the managed framework image.",
    )
    framework: str = Field("sklearn", description="Managed framework image used when `uri` is empty.")
    framework_version: str = "1.4-2-py312"
    py_version: str = "py3"
    install_requirements: bool | None = Field(
        None, description="pip-install steps/requirements.txt at job start (default: only for managed images)."
    )
    python: str | None = Field(
        None, pattern=r"^3\.\d+$",
        description="Python of `uri` when it installs the requirements at start (the wheelhouse is built for it).",
    )
    pip_index_url: str | None = Field(
        None, pattern=r"^https://\S+$",
        description="Private package index (e.g. a CodeArtifact URL) the jobs install from instead of the "
                    "wheelhouse `upsert` uploads; the jobs then need a network path to it.",
    )


class ResourceLimitRetry(Model):
    """SageMaker.RESOURCE_LIMIT (the account's processing-instance quota is in use): its own,
    long-interval policy, since a fan-out of many shards waits for earlier shards to finish."""

    max_attempts: int = Field(10, ge=1, le=20)
    interval_seconds: int = Field(300, ge=1, le=3600)
    backoff_rate: float = Field(1.0, ge=1.0)


class RetryConfig(Model):
    max_attempts: int = Field(3, ge=1, le=20)
    interval_seconds: int = Field(30, ge=1, le=3600)
    backoff_rate: float = Field(2.0, ge=1.0)
    on: list[Literal["CAPACITY_ERROR", "INTERNAL_ERROR", "SERVICE_FAULT", "THROTTLING"]] = Field(
        default_factory=lambda: ["CAPACITY_ERROR", "INTERNAL_ERROR", "SERVICE_FAULT", "THROTTLING"],
        description="Failures retried: SageMaker job errors and pipeline service errors.",
    )
    resource_limit: ResourceLimitRetry | None = Field(
        ResourceLimitRetry(), description="Retry of SageMaker.RESOURCE_LIMIT (instance quota); null: none.")

    @field_validator("on", mode="before")
    @classmethod
    def _resource_limit_apart(cls, value):
        if isinstance(value, list) and "RESOURCE_LIMIT" in value:
            raise ValueError("RESOURCE_LIMIT has its own policy with a long interval: set retry.resource_limit "
                             "(max_attempts, interval_seconds, backoff_rate) instead")
        return value


class StageInfra(Model):
    """The builder's fields of every stage section; the rest of a section is the container's
    settings model (`steps/<stage>/settings.py`). A stage is switched off by leaving its
    section out (or setting it to null in an overlay)."""

    instance_type: str = Field("ml.m5.xlarge", pattern=INSTANCE_TYPE)
    instance_count: int = Field(1, ge=1, le=100)
    volume_size_gb: int = Field(30, ge=1, le=16384)
    max_runtime_s: int = Field(86400, ge=1, le=432000)
    environment: dict[str, str] = Field(default_factory=dict)
    retry: RetryConfig = RetryConfig()


class CacheConfig(Model):
    enabled: bool = True
    expire_after: str = Field("P30D", description="ISO 8601 duration, e.g. P30D or PT12H.")


class Parameters(Model):
    """Defaults of the pipeline parameters a Studio user changes per run."""

    input_uri: str = Field(pattern=f"{S3_URI}|{FILE_URI}", description="InputUri: an s3:// prefix; for local runs "
                           "only, also a folder (a path, relative to the config file, or a file:// URI)")
    experiment_name: str = Field("default", pattern=EXPERIMENT_NAME)
    encoded_data_dir: Literal[ENCODED_DATA_DIRS] = FULL_DATASET  # type: ignore[valid-type]
    reload: bool = False

    @field_validator("input_uri")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")


class Schedule(Model):
    name: str = Field(pattern=r"^[0-9A-Za-z_.-]{1,64}$")
    expression: str = Field(
        pattern=r"^(cron\(.+\)|rate\(\d+ (minute|minutes|hour|hours|day|days)\)|at\(.+\))$",
        description="EventBridge Scheduler expression: cron(minutes hours day-of-month month day-of-week year) "
        "with ? in one day field, rate(1 day) / rate(5 minutes), or at(yyyy-mm-ddThh:mm:ss).",
    )
    timezone: str = Field("UTC", description="IANA time zone of the expression, e.g. UTC or Europe/Paris.")
    enabled: bool = True
    description: str = ""
    parameters: dict[str, Union[str, int, float, bool]] = Field(
        default_factory=dict, description="Pipeline parameter values for runs started by this schedule."
    )

    @field_validator("expression", mode="before")
    @classmethod
    def _grammar(cls, value):
        if isinstance(value, str) and (problem := expression_problem(value)):
            raise ValueError(problem)
        return value

    @field_validator("timezone")
    @classmethod
    def _iana(cls, value: str) -> str:
        if problem := timezone_problem(value):
            raise ValueError(problem)
        return value


class LocalConfig(Model):
    sample_data_uri: str | None = Field(
        None, pattern=S3_URI,
        description="s3:// URI where `deploy.py local` writes the generated sample data when it is missing.",
    )
    sample_size: Literal["small", "medium"] = "small"
    sample_seed: int = 0
    workdir: str | None = Field(
        None, description="`deploy.py local`'s storage, sandboxes, logs and cache, relative to the config file; "
        "empty: `.wavepipe` beside the config file. `--workdir` (relative to the current folder) wins.",
    )


class CodeConfig(Model):
    """The user's own code, shipped in the code bundle with steps/ (see pipeline/build/bundle.py)."""

    paths: list[str] = Field(
        default_factory=list,
        description="Folders (packages) or .py files, relative to the config file, shipped with the code bundle "
        "and importable in every job under their own name (`mypkg/` gives `import mypkg`). Hidden files, "
        "__pycache__ and *.pyc are left out; anything else under a listed folder is shipped and hashed. "
        "Each must be inside the project (the config file's folder), or under an entry of `allow_outside`.",
    )
    allow_outside: list[str] = Field(
        default_factory=list,
        description="Folders or files outside the project (relative to the config file, or absolute) that "
        "`code.paths` and `stages.reconcile.labels.query_file` may name: code and queries are shipped to the "
        "jobs, so a file from elsewhere is only read when it is allowed here by name. Data inputs (input_uri, "
        "sqlite_uri) may be anywhere and need no entry.",
    )
    requirements: list[str] = Field(
        default_factory=list,
        description="Extra pip requirements of the user's functions, installed after steps/requirements.txt "
        "in jobs that install (the managed image). Not installed by `deploy.py local`: have them in this Python.",
    )


class StagesBase(Model):
    """`stages:`; one optional field per registered stage (see `config_model`)."""

    def enabled(self) -> dict[str, StageInfra]:
        """The stages in this config, in registry order."""
        return {name: section for name in type(self).model_fields if (section := getattr(self, name)) is not None}


class Config(Model):
    # The stage registry this config was validated with (set by `Registry.config_model`).
    registry: ClassVar[Any] = None

    pipeline: PipelineMeta
    aws: AwsConfig
    image: ImageConfig = ImageConfig()
    parameters: Parameters
    stages: StagesBase
    cache: CacheConfig = CacheConfig()
    max_parallel_steps: int = Field(50, ge=1, le=256)
    schedules: list[Schedule] = Field(default_factory=list)
    local: LocalConfig = LocalConfig()
    code: CodeConfig = CodeConfig()


def config_model(sections: Mapping[str, type[StageInfra]]) -> type[Config]:
    """`Config` whose `stages` has one optional section per stage, in the given order."""
    stages = create_model("Stages", __base__=StagesBase,
                          **{name: (model | None, None) for name, model in sections.items()})
    return create_model("Config", __base__=Config, stages=(stages, ...))
