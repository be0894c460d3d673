"""Settings of the encode stage: the `stages.encode` section of the config, and `--settings`.

How user functions see their options (one rule for the built-in recipes and a user's own):

- `get_dataset_features` and `encode_data` are `module:function` references, resolved once in the
  parent process (a bad reference fails before any worker starts) and again, by name, in each
  worker.
- A function that takes a parameter named `options` (or a second positional parameter for
  `encode_data`, a first for `get_dataset_features`) is called with `recipe_options`; otherwise
  it is called as `get_dataset_features()` / `encode_data(instance)`.
- Expensive objects (a tokenizer) are built once per worker process by a cache keyed by the
  options: `steps.recipes.per_worker` turns a builder `f(options)` into exactly that.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

WAVEFORM_FEATURES = "steps.recipes.waveform:get_dataset_features"
WAVEFORM_ENCODE = "steps.recipes.waveform:encode_data"


def _check_reference(value: str) -> str:
    module, sep, name = value.partition(":")
    if not sep or not module or not name.isidentifier() or not all(
        part.isidentifier() for part in module.split(".")
    ):
        raise ValueError(f"expected 'package.module:function', got {value!r}")
    return value


class SplitSettings(BaseModel):
    """Percentages of the encoded rows in each split; they add up to 100. A split at 0 is left out."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    train: float = Field(default=80.0, ge=0, le=100, description="Percent of rows in the `train` split.")
    valid: float = Field(default=10.0, ge=0, le=100, description="Percent of rows in the `valid` split.")
    test: float = Field(default=10.0, ge=0, le=100, description="Percent of rows in the `test` split.")

    @model_validator(mode="after")
    def _sum_to_100(self) -> "SplitSettings":
        total = self.train + self.valid + self.test
        if abs(total - 100.0) > 1e-6:
            raise ValueError(f"split percentages add up to {total:g}, not 100")
        return self

    def nonzero(self) -> dict[str, float]:
        """The splits that get rows, in the fixed order train, valid, test."""
        return {name: pct for name, pct in (("train", self.train), ("valid", self.valid), ("test", self.test)) if pct > 0}


class EncodeSettings(BaseModel):
    """Options of `python -m steps.encode` (YAML: `stages.encode`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    get_dataset_features: str = Field(
        default=WAVEFORM_FEATURES,
        description=(
            "`module:function` returning the `datasets.Features` of what `encode_data` returns; called "
            "as f() or f(options) with `recipe_options`. An integer `label` feature is stored as a "
            "`ClassLabel` named from id2label.json."
        ),
    )
    encode_data: str = Field(
        default=WAVEFORM_ENCODE,
        description=(
            "`module:function` called once per artifact as f(instance) or f(instance, options); returns a "
            "dict with exactly the keys of the features, or None to drop the artifact (counted in "
            "report.json). `instance` holds `artifact_id`, `label` (name), `label_id` (int), every other "
            "column of labels.parquet, one column per `model_input_files` entry (the local file path) and, "
            "with `use_features`, `waveform_summary` (the record's rows of waveform_summary.parquet as "
            "dicts). Build expensive objects once per worker with `steps.recipes.per_worker`."
        ),
    )
    recipe_options: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "JSON object handed to both functions as `options`, e.g. for the documents recipe "
            "{tokenizer, max_length, truncation, padding}, for the waveform recipe {signals, statistics}."
        ),
    )
    model_input_files: list[str] = Field(
        default_factory=list,
        description=(
            "File names (relative to `<artifacts>/<artifact_id>/`) the model reads; each becomes an instance "
            "column of that name holding the file's local path. An artifact missing one is handled by "
            "`missing_inputs`."
        ),
    )
    use_features: bool = Field(
        default=True,
        description=(
            "Give each instance its rows of `waveform_summary.parquet` from `--features` (`record` = artifact "
            "id) as `waveform_summary`; an artifact with no rows counts as a missing input."
        ),
    )
    missing_inputs: Literal["fail", "drop"] = Field(
        default="fail",
        description="An artifact missing a model input file or its summary rows: `fail` the step, or `drop` it. Either way it is reported by id.",
    )
    ignored_labels: list[str] = Field(
        default_factory=list, description="Labels whose artifacts are left out (compared as strings)."
    )
    min_label_count: int = Field(
        default=1,
        ge=1,
        description="Labels with fewer artifacts than this (after ignored labels and missing inputs) are dropped and reported.",
    )
    splits: SplitSettings = Field(
        default_factory=SplitSettings,
        description=(
            "Train/valid/test percentages. A label with at least 100/min(percent) rows is split on its own "
            "(stratified); rarer labels are pooled and split together. Seeded by `seed`."
        ),
    )
    seed: int = Field(default=42, description="Seed of the splits and of the partial dataset's choice of artifacts.")
    partial_max_artifacts: int = Field(
        default=1000,
        ge=1,
        description=(
            "With `--encoded-data-dir partial_dataset`: at most this many artifacts, chosen deterministically "
            "(seeded hash of the id, proportional over labels). Label maps are those of the full dataset."
        ),
    )
    num_proc: int | None = Field(
        default=None, ge=1, description="Processes of `Dataset.map`; null = every vCPU of the instance."
    )
    batch_size: int = Field(default=1000, ge=1, description="Rows per `Dataset.map` batch.")
    keep_columns: list[str] = Field(
        default_factory=lambda: ["artifact_id"],
        description="Instance columns copied into the encoded dataset next to what `encode_data` returns.",
    )

    @field_validator("get_dataset_features", "encode_data")
    @classmethod
    def _reference(cls, value: str) -> str:
        return _check_reference(value)

    @field_validator("model_input_files")
    @classmethod
    def _relative_names(cls, value: list[str]) -> list[str]:
        for name in value:
            parts = name.replace("\\", "/").split("/")
            if not name or name.startswith("/") or ".." in parts or "" in parts:
                raise ValueError(f"model input file {name!r} must be a relative path inside the artifact folder")
        if len(set(value)) != len(value):
            raise ValueError("model_input_files lists a name twice")
        return value
