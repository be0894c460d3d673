"""Step names: derived from the config by this one function, never from timestamps
(they are the steps' cache and UI identities)."""

from __future__ import annotations

import re

STEP_NAME = re.compile(r"^[A-Za-z0-9\-_]{1,64}$")


def step_name(stage: str, shard: str | None = None) -> str:
    name = stage.capitalize() + (f"-{shard}" if shard else "")
    if not STEP_NAME.match(name):
        raise ValueError(f"step name {name!r} does not match {STEP_NAME.pattern}")
    return name
