"""Step names: derived from the config by this one function, never from timestamps
(they are the steps' cache and UI identities)."""

from __future__ import annotations

from pipeline.definition.model import STEP_NAME


def step_name(stage: str, shard: str | None = None) -> str:
    name = stage.capitalize() + (f"-{shard}" if shard else "")
    if not STEP_NAME.match(name):
        raise ValueError(f"step name {name!r} does not match {STEP_NAME.pattern}")
    return name


BODY_SUFFIX = "Shard"


def body_name(stage: str) -> str:
    """The ForEach body step of `stage` (`FeaturizeShard`); its iterations are `FeaturizeShard-<i>`."""
    return step_name(stage) + BODY_SUFFIX


def stage_of(name: str) -> str:
    """`Featurize-shard-0001`, `FeaturizeShard-3`, `Featurize` -> `featurize`: the stage's
    registry name (the one function that maps a step to its stage)."""
    head = name.split("-", 1)[0]
    return head.removesuffix(BODY_SUFFIX).lower() if "-" in name else head.lower()


def is_shard_job(name: str) -> bool:
    """One macroshard's job of a fan-out: `Featurize-<shard>`, or an iteration `FeaturizeShard-<i>`
    (not the stage's ForEach step itself, nor a single-step stage)."""
    return "-" in name
