"""The stage registry: everything that makes a stage, declared once per stage.

The composition root (`pipeline.build.compose`), the config model, the per-stage settings files, the
function-reference checks, the cross-checks and the pipeline parameters all iterate a
`Registry`; adding a stage means adding one `Stage` (see `tests/pipeline/stages/test_registry.py`
for a toy one)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping

from pydantic import BaseModel

from pipeline.config.models import Config, StageInfra, config_model

if TYPE_CHECKING:
    from pipeline.stages.common import BuildContext

# Upstream steps, by stage name, of the stages built before this one (registry order).
Upstream = Mapping[str, list]


@dataclass(frozen=True)
class Stage:
    """One stage of the DAG.

    - `section`: the model of `stages.<name>` in the YAML (StageInfra + the settings model).
    - `settings`: the container's settings model (`steps/<name>/settings.py`); the builder
      writes the section's fields of it (plus `derived_settings`) as `<name>.json`.
    - `functions`: the section fields that hold `module:function` references (None skips).
    - `build(ctx, upstream) -> [steps]`: its step(s), given the steps of the stages before it.
    - `needs`: stages that must be in the config with it.
    - `checks(cfg) -> [problems]`: rules of its own, each problem starting with its key path.
    - `splits_by_host`: whether its container divides its work across instances (a bool, or a
      function of the config); only then is `instance_count > 1` allowed (otherwise every
      instance would redo the whole work). `host_split_hint` replaces "use 1" in the refusal.
    - `implied(cfg)`: the stage is in the pipeline without a section of its own when this is
      true (the listing stage, implied by Featurize over prefixes); a section, if given, only
      sets its infrastructure.
    """

    name: str
    section: type[StageInfra]
    settings: type[BaseModel]
    build: Callable[["BuildContext", Upstream], list]
    functions: tuple[str, ...] = ()
    needs: tuple[str, ...] = ()
    checks: Callable[[Config], list[str]] = lambda cfg: []
    derived_settings: Callable[[Config], dict[str, Any]] = lambda cfg: {}
    splits_by_host: bool | Callable[[Config], bool] = False
    host_split_hint: str = "use 1"
    implied: Callable[[Config], bool] = lambda cfg: False

    @property
    def entry(self) -> str:
        """The container module: `python -m steps.<name>`."""
        return f"steps.{self.name}"

    def splits(self, cfg: Config) -> bool:
        """Whether this stage's jobs divide their work across instances with this config."""
        return self.splits_by_host(cfg) if callable(self.splits_by_host) else self.splits_by_host

    def section_of(self, cfg: Config) -> StageInfra:
        """This stage's section of `cfg` (its defaults for an implied stage without one)."""
        section = getattr(cfg.stages, self.name, None)
        return section if section is not None else self.section()

    def container_settings(self, cfg: Config) -> dict[str, Any]:
        """This stage's settings file body: its section minus the builder's fields, validated."""
        section = self.section_of(cfg)
        values = {k: getattr(section, k) for k in self.settings.model_fields if k in type(section).model_fields}
        values.update(self.derived_settings(cfg))
        return self.settings.model_validate(values).model_dump(mode="json")


@dataclass(frozen=True)
class Registry:
    stages: tuple[Stage, ...]
    _model: list = field(default_factory=list, compare=False, repr=False)

    def __iter__(self) -> Iterator[Stage]:
        return iter(self.stages)

    def __getitem__(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)

    def names(self) -> list[str]:
        return [s.name for s in self.stages]

    def with_stage(self, stage: Stage) -> "Registry":
        """A registry with one more stage, last (tests declare toy stages this way)."""
        return Registry(self.stages + (stage,))

    def config_model(self) -> type[Config]:
        if not self._model:
            model = config_model({s.name: s.section for s in self.stages})
            model.registry = self
            self._model.append(model)
        return self._model[0]

    def enabled(self, cfg: Config) -> list[Stage]:
        """The stages this config has, in registry order."""
        return [s for s in self.stages if getattr(cfg.stages, s.name, None) is not None or s.implied(cfg)]
