"""Rules across keys, run on a validated config: one small function per rule, each returning
problems that start with the key path they are about. Stage-specific rules are declared with
their stage (`Stage.checks`) and run here too."""

from __future__ import annotations

from typing import Callable

from pipeline.config.models import Config
from pipeline.build.images import has_instance_storage, installs_requirements, python_problems
from pipeline.build.parameters import value_problems

Rule = Callable[[Config], list[str]]


def at_least_one_stage(cfg: Config) -> list[str]:
    return [] if cfg.registry.enabled(cfg) else ["stages: at least one stage is needed"]


def needed_stages_present(cfg: Config) -> list[str]:
    have = {s.name for s in cfg.registry.enabled(cfg)}
    return [f"stages.{s.name}: needs stages.{need}" for s in cfg.registry.enabled(cfg) for need in s.needs
            if need not in have]


def single_instance_unless_split(cfg: Config) -> list[str]:
    return [f"stages.{s.name}.instance_count: {s.section_of(cfg).instance_count}, but {s.name} does not "
            "split its work across instances (each instance would process all of it, at that many times the "
            f"cost, writing the same outputs); {s.host_split_hint}"
            for s in cfg.registry.enabled(cfg) if s.section_of(cfg).instance_count > 1 and not s.splits(cfg)]


def cache_duration(cfg: Config) -> list[str]:
    from pipeline.definition.model import parse_duration

    try:
        parse_duration(cfg.cache.expire_after)
    except ValueError as err:
        return [f"cache.expire_after: {err}"]
    return []


def unique_schedule_names(cfg: Config) -> list[str]:
    names = [s.name for s in cfg.schedules]
    dupes = sorted({n for n in names if names.count(n) > 1})
    return [f"schedules: duplicate names {dupes}"] if dupes else []


def schedule_parameters(cfg: Config) -> list[str]:
    """A schedule's parameter values, checked here: a bad one would otherwise fail inside
    EventBridge at every firing, where nobody looks."""
    return [p for index, schedule in enumerate(cfg.schedules)
            for p in value_problems(cfg, schedule.parameters, f"schedules[{index}].parameters")]


def network_isolation(cfg: Config) -> list[str]:
    if not cfg.aws.network.enable_network_isolation:
        return []
    problems = []
    if installs_requirements(cfg) and cfg.image.pip_index_url:
        problems.append("aws.network.enable_network_isolation: the job installs steps/requirements.txt from "
                        "image.pip_index_url at start, which isolation forbids; leave pip_index_url out (the jobs "
                        "then install from the wheelhouse upsert uploads) or set image.uri to an image built from "
                        "the Dockerfile")
    for stage in cfg.registry.enabled(cfg):
        if why := stage.s3_access(cfg):
            problems.append(f"aws.network.enable_network_isolation: {why}, which isolation forbids; "
                            "run it without network isolation (a VPC without internet access still works)")
    if cfg.aws.network.enable_network_isolation and getattr(cfg.stages, "combine", None) is not None \
            and cfg.stages.combine.glue is not None:
        problems.append("aws.network.enable_network_isolation: stages.combine.glue registers a Glue table, which "
                        "isolation forbids")
    return problems


def code_paths(cfg: Config) -> list[str]:
    from pipeline.build.bundle import code_path_problems

    return code_path_problems(cfg.code.paths)


def job_python(cfg: Config) -> list[str]:
    return python_problems(cfg)


def volume_key_and_instance_storage(cfg: Config) -> list[str]:
    """The service rejects a VolumeKmsKeyId for instance types with their own storage."""
    if not cfg.aws.kms_key_id:
        return []
    return [f"stages.{s.name}.instance_type: {infra.instance_type} has instance storage, for which the service "
            "rejects a volume KMS key (its storage is encrypted by the instance's hardware), and aws.kms_key_id is "
            "set: use a type without instance storage (e.g. ml.m5.xlarge instead of ml.m5d.xlarge), or leave "
            "aws.kms_key_id out"
            for s in cfg.registry.enabled(cfg)
            if has_instance_storage((infra := s.section_of(cfg)).instance_type)]


RULES: tuple[Rule, ...] = (at_least_one_stage, needed_stages_present, single_instance_unless_split, cache_duration,
                           unique_schedule_names, schedule_parameters, network_isolation, job_python,
                           volume_key_and_instance_storage, code_paths)


def cross_check(cfg: Config) -> list[str]:
    """Every rule's problems, then every stage's own."""
    problems = [p for rule in RULES for p in rule(cfg)]
    return problems + [p for s in cfg.registry.enabled(cfg) for p in s.checks(cfg)]
