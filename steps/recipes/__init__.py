"""Built-in recipes of the encode stage, referenced from a config as `module:function` like a user's own.

- `steps.recipes.waveform`: one fixed-length float vector per WFDB record from combine's summary.
- `steps.recipes.documents`: `raw_text.json` tokenized with a `tokenizers` tokenizer.

A recipe is two functions, `get_dataset_features(options)` and `encode_data(instance, options)`,
where `options` is the config's `recipe_options`. `encode_data` runs once per artifact in every
`Dataset.map` worker, so anything expensive is built through `per_worker`: once per process and
options, then reused for every call.
"""

from __future__ import annotations

import functools
import json
from typing import Any, Callable, Mapping, TypeVar

T = TypeVar("T")


def options_key(options: Mapping[str, Any]) -> str:
    """Canonical JSON of the options: equal options, equal key."""
    return json.dumps(options, sort_keys=True, separators=(",", ":"), default=str)


def per_worker(build: Callable[[Mapping[str, Any]], T]) -> Callable[[Mapping[str, Any]], T]:
    """`build(options)` run once per process and distinct options; later calls return the same object.

    Workers forked after a build inherit the parent's objects, which is what we want for read-only
    ones such as a tokenizer (the parent only loads it, it never encodes in parallel)."""
    cache: dict[str, T] = {}

    @functools.wraps(build)
    def cached(options: Mapping[str, Any]) -> T:
        key = options_key(options)
        if key not in cache:
            cache[key] = build(options)
        return cache[key]

    cached.cache = cache  # type: ignore[attr-defined]
    return cached


def check_options(options: Mapping[str, Any], known: set[str], recipe: str) -> None:
    """Fail on an option the recipe does not know (a typo would otherwise be silently ignored)."""
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"{recipe}: unknown recipe_options {unknown}; known: {sorted(known)}")
