"""User functions (`module:function`) and the batched map function that calls them.

`EncodeBatch` is what `Dataset.map(batched=True)` runs: it holds only the function references,
the options and a few column names (strings and plain dicts pickle cheaply and identically to
every worker), resolves the functions by name in each worker, turns a batch into instances, calls
`encode_data` per instance and gathers the dicts it returns, dropping the Nones.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

import datasets

from steps.encode.errors import EncodeError, EncodeInputError
from steps.resolve import load_function

ARTIFACT_ID = "__artifact_id"
LABEL_ID = "__label_id"


def resolve(reference: str) -> Callable:
    """The callable named by `package.module:function` (EncodeInputError otherwise)."""
    try:
        return load_function(reference, "encode function")
    except ValueError as err:
        raise EncodeInputError(str(err)) from err


def takes_options(function: Callable, positional: int) -> bool:
    """Whether `function` takes an `options` parameter, or a positional one after `positional` others."""
    try:
        params = list(inspect.signature(function).parameters.values())
    except (TypeError, ValueError):
        return False
    if any(p.name == "options" for p in params):
        return True
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(p.kind in kinds for p in params) > positional or any(p.kind is p.VAR_POSITIONAL for p in params)


def dataset_features(reference: str, options: dict[str, Any]) -> datasets.Features:
    """Call the user's `get_dataset_features` and check it returns `datasets.Features`."""
    function = resolve(reference)
    try:
        features = function(options) if takes_options(function, 0) else function()
    except Exception as exc:
        raise EncodeInputError(f"{reference} failed: {type(exc).__name__}: {exc}") from exc
    if isinstance(features, dict) and not isinstance(features, datasets.Features):
        features = datasets.Features(features)
    if not isinstance(features, datasets.Features) or not features:
        raise EncodeInputError(f"{reference} must return a non-empty datasets.Features, got {type(features).__name__}")
    return features


class EncodeBatch:
    """The `Dataset.map(batched=True)` function around one user `encode_data`."""

    def __init__(
        self,
        reference: str,
        options: dict[str, Any],
        output_columns: list[str],
        keep_columns: list[str],
        label_count: int | None = None,
    ):
        """`label_count`: the `label` output is a class id, checked to be below it."""
        self.reference = reference
        self.label_count = label_count
        self.options = options
        self.output_columns = output_columns
        self.keep_columns = keep_columns
        self._function: Callable | None = None
        self._with_options = False

    def __getstate__(self) -> dict:
        # Workers resolve the function by name: user modules need not pickle by value.
        return {**self.__dict__, "_function": None}

    def _encode(self, instance: dict) -> dict | None:
        if self._function is None:
            self._function = resolve(self.reference)
            self._with_options = takes_options(self._function, 1)
        if self._with_options:
            return self._function(instance, self.options)
        return self._function(instance)

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        names = list(batch)
        size = len(batch[names[0]]) if names else 0
        out: dict[str, list] = {c: [] for c in (*self.output_columns, *self.keep_columns, ARTIFACT_ID, LABEL_ID)}
        expected = set(self.output_columns)
        for i in range(size):
            instance = {name: batch[name][i] for name in names}
            try:
                encoded = self._encode(instance)
            except Exception as exc:
                raise EncodeError(
                    f"{self.reference} raised on artifact {instance.get('artifact_id')!r}: {type(exc).__name__}: {exc}"
                ) from exc
            if encoded is None:
                continue
            if not isinstance(encoded, dict) or set(encoded) != expected:
                got = sorted(encoded) if isinstance(encoded, dict) else type(encoded).__name__
                raise EncodeError(
                    f"{self.reference} returned {got} for artifact {instance.get('artifact_id')!r}; "
                    f"expected a dict with keys {sorted(expected)} (the dataset features) or None"
                )
            if self.label_count is not None and not 0 <= encoded["label"] < self.label_count:
                raise EncodeError(
                    f"{self.reference} returned label {encoded['label']!r} for artifact {instance.get('artifact_id')!r}; "
                    f"label ids are 0..{self.label_count - 1} (label2id.json)"
                )
            for column in self.output_columns:
                out[column].append(encoded[column])
            for column in self.keep_columns:
                out[column].append(instance[column])
            out[ARTIFACT_ID].append(instance["artifact_id"])
            out[LABEL_ID].append(instance["label_id"])
        return out
