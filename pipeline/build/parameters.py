"""Pipeline parameters: what a Studio user (or a schedule) changes per run, defined once here.

Every one has a default, because schedules created with the SDK's put_triggers send none.
Values are strings: they are passed as container arguments, which must be text (so Reload is
a ParameterString with the choices false/true, not a ParameterBoolean)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from pipeline.config.models import EXPERIMENT_NAME, INSTANCE_TYPE, S3_URI, Config
from pipeline.build.images import has_instance_storage
from steps.contract import ENCODED_DATA_DIRS

INPUT_URI = "InputUri"
EXPERIMENT = "ExperimentName"
ENCODED_DATA_DIR = "EncodedDataDir"
RELOAD = "Reload"


@dataclass(frozen=True)
class ParameterSpec:
    name: str
    default: Callable[[Config], str]
    choices: tuple[str, ...] = ()
    pattern: str | None = None
    example: str = ""
    # An instance type whose definition sends a VolumeKmsKeyId: one with instance storage fails.
    no_instance_storage: bool = False

    def problem(self, value: str) -> str | None:
        """Why `value` is no good for this parameter, or None."""
        if self.choices and value not in self.choices:
            return f"{value!r} is not one of {', '.join(self.choices)}"
        if self.pattern and not re.match(self.pattern, value):
            return f"{value!r} is not {self.example}" if self.example else f"{value!r} does not match {self.pattern}"
        if self.no_instance_storage and has_instance_storage(value):
            return (f"{value!r} has instance storage, which takes no volume KMS key, and this pipeline sends "
                    "aws.kms_key_id as VolumeKmsKeyId: pick a type without instance storage")
        return None


PIPELINE_PARAMETERS = (
    ParameterSpec(INPUT_URI, lambda cfg: cfg.parameters.input_uri, pattern=S3_URI),
    ParameterSpec(EXPERIMENT, lambda cfg: cfg.parameters.experiment_name, pattern=EXPERIMENT_NAME),
    ParameterSpec(ENCODED_DATA_DIR, lambda cfg: cfg.parameters.encoded_data_dir, choices=ENCODED_DATA_DIRS),
    ParameterSpec(RELOAD, lambda cfg: str(cfg.parameters.reload).lower(), choices=("false", "true")),
)


def instance_type_param_name(stage: str) -> str:
    return f"{stage.capitalize()}InstanceType"


def instance_type_spec(stage: str, volume_key: bool = False) -> ParameterSpec:
    return ParameterSpec(instance_type_param_name(stage), lambda cfg: cfg.registry[stage].section_of(cfg).instance_type,
                         pattern=INSTANCE_TYPE, example="an instance type such as ml.m5.xlarge",
                         no_instance_storage=volume_key)


def parameter_specs(cfg: Config) -> list[ParameterSpec]:
    """Every parameter of this config's pipeline: the pipeline-wide ones, then one instance
    type per stage it has (in registry order)."""
    def volume_key(stage: str) -> bool:
        return bool(cfg.aws.kms_key_id) and not has_instance_storage(getattr(cfg.stages, stage).instance_type)

    return [*PIPELINE_PARAMETERS,
            *(instance_type_spec(s.name, volume_key(s.name)) for s in cfg.registry.enabled(cfg))]


def value_problems(cfg: Config, values: dict[str, object], where: str) -> list[str]:
    """Every given value (`start --param`, a schedule's) checked as validate checks the default:
    one line per problem, `<where>.<name>: ...`; unknown names are reported too."""
    specs = {spec.name: spec for spec in parameter_specs(cfg)}
    problems = []
    for name, value in values.items():
        spec = specs.get(name)
        if spec is None:
            problems.append(f"{where}.{name}: no pipeline parameter {name!r} (known: {', '.join(sorted(specs))})")
        elif msg := spec.problem(str(value).lower() if isinstance(value, bool) else str(value)):
            problems.append(f"{where}.{name}: {msg}")
    return problems


def parameter_names(cfg: Config) -> list[str]:
    return [spec.name for spec in parameter_specs(cfg)]


def build_params(cfg: Config) -> dict[str, object]:
    """Parameter name -> the SDK's ParameterString, in definition order."""
    from sagemaker.core.workflow.parameters import ParameterString

    return {spec.name: ParameterString(spec.name, default_value=spec.default(cfg),
                                       enum_values=list(spec.choices) or None)
            for spec in parameter_specs(cfg)}
