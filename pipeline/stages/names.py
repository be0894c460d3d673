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
    """`Featurize-shard-0001`, `FeaturizeShard-3`, `Featurize` -> `featurize`."""
    head = name.split("-", 1)[0]
    return head.removesuffix(BODY_SUFFIX).lower() if "-" in name else head.lower()


def is_featurize_job(name: str) -> bool:
    """A Featurize job's step: `Featurize-<shard>`, or an iteration `FeaturizeShard-<i>` (not the ForEach)."""
    return stage_of(name) == "featurize" and "-" in name
