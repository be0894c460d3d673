"""The stage registry: everything that makes a stage, declared once per stage.

The composition root (`pipeline.build.compose`), the config model, the per-stage settings files, the
function-reference checks, the cross-checks, the pipeline parameters, the plan and its sizing
table, validation, the IAM policy and the report all iterate a `Registry`; adding a stage means
adding one `Stage` plus its own folders (see `tests/pipeline/stages/test_registry.py` for a toy
one). Nothing outside `pipeline/stages/` keeps a table keyed by stage or step name."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping

from pydantic import BaseModel

from pipeline.config.models import Config, StageInfra, config_model

if TYPE_CHECKING:
    from pipeline.stages.common import BuildContext

# Upstream steps, by stage name, of the stages built before this one (registry order).
Upstream = Mapping[str, list]

COSTS = ("fan-out", "source", "fixed")


@dataclass(frozen=True)
class S3Access:
    """What a stage's job reaches beyond the pipeline's own prefix and its input URI; the
    pipeline role's IAM policy is the union over the stages of a config."""

    inventories: tuple[str, ...] = ()  # S3 Inventory manifests whose report folder it lists and reads
    objects: tuple[str, ...] = ()  # single objects it reads (a SQLite file of labels)
    secrets: tuple[str, ...] = ()  # Secrets Manager ARNs it reads
    glue: Any = None  # where it registers a Glue table (`location`, `database`, `table`), if it does


@dataclass(frozen=True)
class ReportReading:
    """Which of a stage's outputs `deploy.py report` reads (names from `steps/contract.py`)."""

    shard_reports: bool = False  # its report.json (+ features, errors) per macroshard: the per-shard facts
    summary_file: str | None = None  # the per-signal summary table it writes
    splits_file: str | None = None  # the split metadata it writes, anywhere under its output


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

    What the plan, the cost model, validation, network/IAM and the report need:

    - `always_runs`: why its step is never a cache hit (it reads what its cache key cannot
      see), as `deploy.py plan` says it; None for a cacheable stage.
    - `publishes_shards`: its report names the macroshards (`shards`) the fan-out reads;
      `predict(arguments, settings, storage)` is that report, as far as addresses go, without
      running the step; `copies(settings)`: whether it also copies the files it lists.
    - `fans_out`: one step per macroshard (`<Step>-<shard>`, or a ForEach's iterations).
    - `replan(arguments, source_report, rerun, storage) -> (why, predicted report)`: for an
      always-running step whose outputs are content-addressed, what it would reuse.
    - `cost`: how the sizing table prices its run: `fan-out` (bytes over measured throughput),
      `source` (keys listed, bytes copied) or `fixed` (`rough_seconds`: (base, per shard),
      rough figures); `slots(cfg, steps)`: how many of its jobs run at once.
    - `s3_access(cfg)`: why its job calls S3 itself (network isolation forbids it), or None;
      `access(cfg)`: what else its job reads or writes (the IAM policy).
    - `report`: which of its outputs `deploy.py report` reads.
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
    always_runs: str | None = None
    publishes_shards: bool = False
    predict: Callable[[dict, dict, Any], dict] | None = None
    copies: Callable[[dict], bool] = lambda settings: False
    fans_out: bool = False
    replan: Callable[[dict, dict, list[str], Any], tuple[str, dict]] | None = None
    cost: str = "fixed"
    rough_seconds: tuple[float, float] = (0.0, 0.0)
    slots: Callable[[Config, int], int] | None = None
    s3_access: Callable[[Config], str | None] = lambda cfg: None
    access: Callable[[Config], S3Access] = lambda cfg: S3Access()
    report: ReportReading = ReportReading()

    def __post_init__(self) -> None:
        if self.cost not in COSTS:
            raise ValueError(f"stage {self.name}: cost {self.cost!r} is not one of {', '.join(COSTS)}")

    @property
    def step(self) -> str:
        """Its step's name (`Featurize`), the prefix of its shard steps' names (`Featurize-<shard>`)."""
        return self.name.capitalize()

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

    def get(self, name: str) -> Stage | None:
        return next((s for s in self.stages if s.name == name), None)

    def of_step(self, step: str) -> Stage | None:
        """The stage a step name belongs to (`Featurize-shard-0001`, `FeaturizeShard-3`: featurize)."""
        from pipeline.stages.names import stage_of

        return self.get(stage_of(step))

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
