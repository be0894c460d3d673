"""The contracts of the functions a user writes, one Protocol each; docs/functions.md quotes these
docstrings, and a test keeps the two equal.

A config names each function as `module:function`. The module lives under `steps/` (the
built-ins) or in a folder of `code.paths` (the user's own code, shipped in the same bundle), so
the builder finds it without importing it, and every job imports it by that name.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Protocol


class FeatureFunction(Protocol):
    def __call__(self, record: Any, **feature_options: Any) -> Any:
        """`stages.featurize.feature_function`: the features of one WFDB record.

        Arguments: `record`, a `steps.featurize.records.RecordRef` (its files are under
        `record.directory`; `record.artifact` is the artifact id, `record.group`, `record.record`,
        `record.kind`, `record.is_numerics`), and `stages.featurize.feature_options` as keyword
        arguments. Returns a `FeatureResult` (rows and error rows), a pandas DataFrame or an
        iterable of row dicts; None means no rows. Rows of one record become rows of the shard's
        features.parquet and then of waveform_summary.parquet (Combine): keep `artifact`, `record`,
        `group` and `signal` on every row (Encode joins on `artifact`) and list your columns in
        `stages.combine.required_columns` when they differ from the built-in summary's. Raise
        `RecordError(kind, message)` to turn the record into one error row of that kind; any other
        exception becomes a `feature_function_error` row. A record with an error row counts as
        failed (`max_error_fraction`); it never crashes the shard.

        Runs in the Featurize job of the record's macroshard, in one of its joblib worker processes
        (one per vCPU), once per record. It may read the record's files (local disk); it writes
        nothing itself: what it returns is written by the stage.

        Example (the built-in summary plus a column of its own):

            from steps.featurize.summary import summarize_record

            def summarize_with_range(record, **options):
                result = summarize_record(record, **options)
                for row in result.rows:
                    row["peak_to_peak"] = row["max"] - row["min"]
                return result
        """


class ProcessFunc(Protocol):
    def __call__(self, row: dict, files: list[str], experiment_uri: str, reload: bool) -> None:
        """`stages.reconcile.process_func`: extra work per artifact, after its files are in place.

        Arguments: `row`, the artifact's row of the labels query (every column it selects);
        `files`, the URIs of the artifact's files (its copies in the experiment folder, or the
        production files with `featurize_reads: production`); `experiment_uri`, the experiment
        folder (`s3://.../experiments/<ExperimentName>`); `reload`, the Reload parameter. The
        return value is ignored; raising counts the artifact as failed (the step fails past
        `max_process_failures`).

        Runs in the Reconcile job, in its pool of `copy_threads` threads (so it must be
        thread-safe), once per artifact that is new or changed in this run, on Reload, or when a
        file it writes is missing and Reconcile regenerates it. It may read the artifact's files
        and write under `<experiment_uri>/data/reconciled_artifacts/<artifact_id>/`, through
        `steps.io.storage.from_env()` (S3 in SageMaker, the local runner's storage locally); list
        what it writes in `files_on_research` so Reconcile checks every artifact has it.

        Example (a label file beside each artifact's files):

            import json
            from steps.io import storage

            def write_label_file(row, files, experiment_uri, reload):
                uri = storage.join_uri(experiment_uri, "data/reconciled_artifacts", row["artifact_id"], "label.json")
                storage.from_env().write_bytes(uri, json.dumps({"label": row["label"]}).encode())
        """


class DatasetFeaturesFunction(Protocol):
    def __call__(self, options: Mapping[str, Any]) -> Any:
        """`stages.encode.get_dataset_features`: the columns of the encoded dataset.

        Arguments: `options`, `stages.encode.recipe_options` (a function without parameters is
        called without). Returns a `datasets.Features` (or a dict of them), never empty: exactly
        the keys `encode_data` returns. An integer `label` column is stored as a `ClassLabel` named
        from id2label.json.

        Runs once in the Encode job, before the map. It may read nothing but `options`; it writes nothing.

        Example (the built-in waveform vector plus one value per signal):

            import datasets
            from steps.recipes import waveform

            def get_dataset_features(options):
                features = waveform.get_dataset_features({"signals": options["signals"]})
                features["peak_to_peak"] = datasets.List(datasets.Value("float32"), length=len(options["signals"]))
                return features
        """


class EncodeDataFunction(Protocol):
    def __call__(self, instance: dict, options: Mapping[str, Any]) -> Optional[dict]:
        """`stages.encode.encode_data`: one artifact as one row of the dataset, or None.

        Arguments: `instance`, the artifact's row of labels.parquet (`artifact_id`, `label`, the
        query's other columns, `n_files`, `bytes`, `shard`) plus `label_id` (its id in
        label2id.json), one local file path per `model_input_files` entry and, with
        `use_features`, `waveform_summary` (the record's rows of waveform_summary.parquet as dicts);
        `options`, `stages.encode.recipe_options` (optional parameter). Returns a dict with exactly
        the keys of `get_dataset_features`, or None to leave the artifact out: Encode counts those
        in its report.json (`encode_data.dropped_none`, with their ids). Raising fails the step.

        Runs in the Encode job, inside `Dataset.map(batched=True)` in `num_proc` worker processes,
        once per artifact. It may read the instance's files; it writes nothing. Build expensive
        objects once per worker with `steps.recipes.per_worker`.

        Example (short recordings left out):

            from steps.recipes import waveform

            def encode_data(instance, options):
                rows = [r for r in instance["waveform_summary"] if not r["is_numerics"]]
                seconds = sum(r["duration_s"] for r in rows if r["signal_index"] == 0)  # once per segment
                if seconds < options["min_duration_s"]:
                    return None
                return waveform.encode_data(instance, {"signals": options["signals"]})
        """


CONTRACTS = {
    "feature function": FeatureFunction,
    "process_func": ProcessFunc,
    "get_dataset_features": DatasetFeaturesFunction,
    "encode_data": EncodeDataFunction,
}
