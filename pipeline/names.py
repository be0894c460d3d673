"""Step names: derived from the config by this one function, never from timestamps
(they are the steps' cache and UI identities)."""

from __future__ import annotations

from pipeline.definition import STEP_NAME


def step_name(stage: str, shard: str | None = None) -> str:
    name = stage.capitalize() + (f"-{shard}" if shard else "")
    if not STEP_NAME.match(name):
        raise ValueError(f"step name {name!r} does not match {STEP_NAME.pattern}")
    return name
