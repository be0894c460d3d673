"""Pipeline parameters: what a Studio user changes per run. Every one has a default, because
schedules created with the SDK's put_triggers send none."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.config import Config, instance_type_param_name


@dataclass(frozen=True)
class Params:
    input_uri: object
    experiment_name: object
    encoded_data_dir: object
    reload: object
    instance_types: dict  # stage -> ParameterString

    def all(self) -> list:
        return [self.input_uri, self.experiment_name, self.encoded_data_dir, self.reload,
                *self.instance_types.values()]


def build_params(cfg: Config) -> Params:
    from sagemaker.core.workflow.parameters import ParameterString

    p = cfg.parameters
    return Params(
        input_uri=ParameterString("InputUri", default_value=p.input_uri),
        experiment_name=ParameterString("ExperimentName", default_value=p.experiment_name),
        encoded_data_dir=ParameterString(
            "EncodedDataDir", default_value=p.encoded_data_dir, enum_values=["full_dataset", "partial_dataset"]
        ),
        # A string, not ParameterBoolean: it is passed as a container argument, which must be text.
        reload=ParameterString("Reload", default_value=str(p.reload).lower(), enum_values=["false", "true"]),
        instance_types={
            stage: ParameterString(instance_type_param_name(stage), default_value=infra.instance_type)
            for stage, infra in cfg.stages.enabled().items()
        },
    )


def parameter_names(cfg: Config) -> set[str]:
    from pipeline.config import parameter_names as names

    return names(cfg.stages.enabled())
