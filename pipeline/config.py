"""The pipeline's configuration: one YAML file (plus optional overlays) validated once, here.

Every model is frozen and rejects unknown keys. A stage's section combines the builder's
infrastructure fields (`StageInfra`) with the container's own settings model from
`steps/<stage>/settings.py`, so a YAML key and the container option it feeds are defined once.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from steps.combine.settings import CombineSettings
from steps.encode.settings import EncodeSettings
from steps.featurize.settings import FeaturizeSettings
from steps.reconcile.settings import ReconcileSettings

STAGES = ("reconcile", "featurize", "combine", "encode")
# Combine's own arguments leave 90 of SageMaker's 100 container arguments for shard outputs.
MAX_PREFIX_SHARDS = 90
INSTANCE_TYPE = r"^ml\.[a-z0-9-]+\.[a-z0-9]+$"
SHARD_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$")


class ConfigError(Exception):
    """A configuration problem; its lines name the file and the key path."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("\n".join(f"{source}: {p}" for p in problems))


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
        None, description="Image built from the project's Dockerfile. Empty: the managed framework image."
    )
    framework: str = Field("sklearn", description="Managed framework image used when `uri` is empty.")
    framework_version: str = "1.4-2-py312"
    py_version: str = "py3"
    install_requirements: bool | None = Field(
        None, description="pip-install steps/requirements.txt at job start (default: only for managed images)."
    )


class RetryConfig(Model):
    max_attempts: int = Field(3, ge=1, le=20)
    interval_seconds: int = Field(30, ge=1, le=3600)
    backoff_rate: float = Field(2.0, ge=1.0)
    on: list[Literal["CAPACITY_ERROR", "INTERNAL_ERROR", "RESOURCE_LIMIT", "SERVICE_FAULT", "THROTTLING"]] = Field(
        default_factory=lambda: ["CAPACITY_ERROR", "INTERNAL_ERROR", "SERVICE_FAULT", "THROTTLING"],
        description="Failures retried: SageMaker job errors and pipeline service errors.",
    )


class StageInfra(Model):
    enabled: bool = True
    instance_type: str = Field("ml.m5.xlarge", pattern=INSTANCE_TYPE)
    instance_count: int = Field(1, ge=1, le=100)
    volume_size_gb: int = Field(30, ge=1, le=16384)
    max_runtime_s: int = Field(86400, ge=1, le=432000)
    environment: dict[str, str] = Field(default_factory=dict)
    retry: RetryConfig = RetryConfig()


class Macroshard(Model):
    name: str = Field(pattern=SHARD_NAME.pattern)
    prefix: str = Field(description="Key prefix under the input URI, e.g. a MIMIC-III group folder `30`.")


class ReconcileStage(StageInfra, ReconcileSettings):
    pass


class FeaturizeStage(StageInfra, FeaturizeSettings):
    instance_type: str = Field("ml.m5.4xlarge", pattern=INSTANCE_TYPE)
    macroshards: Union[int, list[Union[str, Macroshard]]] = Field(
        4, description="A count N (artifacts split by Reconcile) or a list of key prefixes, one step each."
    )

    @field_validator("macroshards")
    @classmethod
    def _shards(cls, value):
        if isinstance(value, int):
            if not 1 <= value <= 500:
                raise ValueError("macroshard count must be between 1 and 500")
            return value
        shards = [Macroshard(name=v.strip("/"), prefix=v) if isinstance(v, str) else v for v in value]
        names = [s.name for s in shards]
        if not shards:
            raise ValueError("at least one macroshard")
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate macroshard names: {dupes}")
        return shards

    def shard_names(self) -> list[str]:
        if isinstance(self.macroshards, int):
            return [f"shard-{i:04d}" for i in range(1, self.macroshards + 1)]
        return [s.name for s in self.macroshards]


class CombineStage(StageInfra, CombineSettings):
    run_when_shards_fail: bool = Field(
        False, description="Run Combine when some Featurize steps failed (StepDependency ANY)."
    )


class EncodeStage(StageInfra, EncodeSettings):
    pass


class Stages(Model):
    reconcile: ReconcileStage | None = None
    featurize: FeaturizeStage | None = None
    combine: CombineStage | None = None
    encode: EncodeStage | None = None

    def enabled(self) -> dict[str, StageInfra]:
        return {name: getattr(self, name) for name in STAGES if getattr(self, name) and getattr(self, name).enabled}


class CacheConfig(Model):
    enabled: bool = True
    expire_after: str = Field("P30D", description="ISO 8601 duration, e.g. P30D or PT12H.")

    @field_validator("expire_after")
    @classmethod
    def _iso(cls, value: str) -> str:
        from pipeline.local.cache import parse_duration

        parse_duration(value)  # ValueError naming the value, e.g. "... such as P30D or PT1H"
        return value


class Parameters(Model):
    """Defaults of the pipeline parameters a Studio user changes per run."""

    input_uri: str = Field(pattern=r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$", description="InputUri")
    experiment_name: str = Field("default", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
    encoded_data_dir: Literal["full_dataset", "partial_dataset"] = "full_dataset"
    reload: bool = False

    @field_validator("input_uri")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")


def instance_type_param_name(stage: str) -> str:
    return f"{stage.capitalize()}InstanceType"


def parameter_names(enabled_stages) -> set[str]:
    """Every pipeline parameter of a pipeline with these stages enabled."""
    return set(PARAMETER_NAMES.values()) | {instance_type_param_name(s) for s in enabled_stages}


PARAMETER_NAMES = {
    "input_uri": "InputUri",
    "experiment_name": "ExperimentName",
    "encoded_data_dir": "EncodedDataDir",
    "reload": "Reload",
}


class Schedule(Model):
    name: str = Field(pattern=r"^[0-9A-Za-z_.-]{1,64}$")
    expression: str = Field(
        pattern=r"^(cron\(.+\)|rate\(\d+ (minute|minutes|hour|hours|day|days)\)|at\(.+\))$",
        description="EventBridge Scheduler expression: cron(...), rate(...) or at(...).",
    )
    timezone: str = "UTC"
    enabled: bool = True
    description: str = ""
    parameters: dict[str, Union[str, int, float, bool]] = Field(
        default_factory=dict, description="Pipeline parameter values for runs started by this schedule."
    )


class LocalConfig(Model):
    sample_data_uri: str | None = Field(
        None, description="Where `deploy.py local` writes the generated sample data when it is missing."
    )
    sample_size: Literal["small", "medium"] = "small"
    sample_seed: int = 0


class Config(Model):
    pipeline: PipelineMeta
    aws: AwsConfig
    image: ImageConfig = ImageConfig()
    parameters: Parameters
    stages: Stages
    cache: CacheConfig = CacheConfig()
    max_parallel_steps: int = Field(50, ge=1, le=256)
    schedules: list[Schedule] = Field(default_factory=list)
    local: LocalConfig = LocalConfig()

    @model_validator(mode="after")
    def _cross_checks(self) -> "Config":
        enabled = self.stages.enabled()
        if not enabled:
            raise ValueError("stages: at least one stage must be enabled")
        featurize = enabled.get("featurize")
        if featurize is not None:
            if "reconcile" in enabled and not isinstance(featurize.macroshards, int):
                raise ValueError(
                    "stages.featurize.macroshards: with reconcile enabled, give a count "
                    "(Reconcile assigns artifacts to shards by bytes)"
                )
            if "reconcile" not in enabled and isinstance(featurize.macroshards, int):
                raise ValueError(
                    "stages.featurize.macroshards: without reconcile, list the key prefixes "
                    "(e.g. the group folders 30..39), one step each"
                )
            if "reconcile" not in enabled and len(featurize.macroshards) > MAX_PREFIX_SHARDS:
                raise ValueError(
                    f"stages.featurize.macroshards: at most {MAX_PREFIX_SHARDS} prefixes without reconcile "
                    "(Combine receives each shard's output as a container argument, and SageMaker "
                    "allows 100); enable reconcile and give a count for more"
                )
        if "combine" in enabled and "featurize" not in enabled:
            raise ValueError("stages.combine: needs stages.featurize")
        if "encode" in enabled and "reconcile" not in enabled:
            raise ValueError("stages.encode: needs stages.reconcile (its labels)")
        names = [s.name for s in self.schedules]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"schedules: duplicate names {dupes}")
        problems = [p for i, s in enumerate(self.schedules) for p in schedule_problems(s, i, enabled)]
        if self.aws.network.enable_network_isolation:
            if self.image.uri is None or self.image.install_requirements:
                problems.append("aws.network.enable_network_isolation: the job installs steps/requirements.txt "
                                "from PyPI at start, which isolation forbids; set image.uri to an image "
                                "built from the Dockerfile")
            if "reconcile" in enabled:
                problems.append("aws.network.enable_network_isolation: stages.reconcile calls the S3 API "
                                "and the database itself; run it without network isolation")
        if problems:
            raise ValueError("; ".join(problems))
        return self


def schedule_problems(schedule: "Schedule", index: int, enabled: dict) -> list[str]:
    """A schedule's parameter values, checked here: a bad one would otherwise fail inside
    EventBridge at every firing, where nobody looks."""
    allowed = {"InputUri": Parameters.model_fields["input_uri"].metadata,
               "ExperimentName": Parameters.model_fields["experiment_name"].metadata}
    problems = []
    for name, value in schedule.parameters.items():
        where = f"schedules[{index}].parameters.{name}"
        text = str(value).lower() if isinstance(value, bool) else str(value)
        if name == "EncodedDataDir" and text not in ("full_dataset", "partial_dataset"):
            problems.append(f"{where}: {text!r} is not full_dataset or partial_dataset")
        elif name == "Reload" and text not in ("true", "false"):
            problems.append(f"{where}: {text!r} is not true or false")
        elif name in {instance_type_param_name(s) for s in enabled}:
            if not re.match(INSTANCE_TYPE, text):
                problems.append(f"{where}: {text!r} is not an instance type such as ml.m5.xlarge")
        elif name in allowed:
            pattern = next(m.pattern for m in allowed[name] if hasattr(m, "pattern"))
            if not re.match(pattern, text):
                problems.append(f"{where}: {text!r} does not match {pattern}")
        elif name not in ("EncodedDataDir", "Reload"):
            known = sorted(parameter_names(enabled))
            problems.append(f"{where}: no pipeline parameter {name!r} (known: {', '.join(known)})")
    return problems


def deep_merge(base: dict, overlay: dict) -> dict:
    """Overlay wins key by key; mappings merge recursively, lists and scalars replace."""
    out = dict(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def key_path(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("int", "list[union[str,Macroshard]]", "str", "Macroshard") or "[" in str(part):
            # pydantic names union members in the location; they are not YAML keys.
            continue
        else:
            out += ("." if out else "") + str(part)
    return out or "<root>"


def _read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(str(path), ["file not found"]) from None
    except yaml.YAMLError as err:
        raise ConfigError(str(path), [f"not valid YAML: {err}"]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(str(path), ["<root>: expected a mapping"])
    return data


def overlay_path(base: Path, env: str) -> Path:
    """`config/example.yaml` + `dev` -> `config/env/dev.yaml`."""
    return base.parent / "env" / f"{env}.yaml"


def load_config(path: str | Path, env: str | None = None, overlays: list[str | Path] = ()) -> Config:
    """Read, merge and validate a config; raises ConfigError naming the file(s) and key paths."""
    path = Path(path)
    files = [path] + ([overlay_path(path, env)] if env else []) + [Path(o) for o in overlays]
    data: dict[str, Any] = {}
    for file in files:
        data = deep_merge(data, _read_yaml(file))
    return validate_config(data, " + ".join(str(f) for f in files))


def validate_config(data: dict, source: str = "<config>") -> Config:
    """The validated config, function references included; ConfigError naming `source` otherwise."""
    try:
        cfg = Config.model_validate(data)
    except ValidationError as err:
        problems = []
        for e in err.errors():
            msg = e["msg"].removeprefix("Value error, ")
            if e["loc"]:
                problems.append(f"{key_path(e['loc'])}: {msg}")
            else:  # cross-key checks: each message starts with its own key path
                problems.extend(msg.split("; "))
        raise ConfigError(source, problems) from None
    from pipeline.functions import function_problems  # imports this module: import here

    problems = function_problems(cfg)
    if problems:
        raise ConfigError(source, problems)
    return cfg


def json_schema() -> dict:
    schema = Config.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "wavepipe pipeline configuration"
    return schema
