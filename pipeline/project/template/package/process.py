"""The `process_func` of `stages.reconcile`: a file of your own beside each artifact's files."""

from __future__ import annotations

import json

from steps.io import storage

LABEL_FILE = "label.json"


def label_file_uri(experiment_uri: str, artifact_id: str) -> str:
    """Where `write_label_file` writes: the artifact's folder in the experiment."""
    return storage.join_uri(experiment_uri, "data", "reconciled_artifacts", artifact_id, LABEL_FILE)


def write_label_file(row: dict, files: list[str], experiment_uri: str, reload: bool) -> None:
    """Write `label.json` (the artifact's label, patient and file names) beside its files.

    `row` is the artifact's row of the labels query (labels.sql), `files` the URIs of its files in
    the experiment folder. Written through `steps.io.storage.from_env()`, so it lands in S3 in
    SageMaker and in the local runner's storage locally. `files_on_research` in wavepipe.yaml
    lists `label.json`, so Reconcile checks that every artifact has one and calls this again for
    any artifact that lost it. Same row and files, same bytes: a rerun rewrites nothing new.
    """
    body = {
        "artifact_id": str(row["artifact_id"]),
        "label": str(row["label"]),
        "patient_id": None if row.get("patient_id") is None else str(row["patient_id"]),
        "files": sorted(uri.rsplit("/", 1)[-1] for uri in files),
    }
    data = json.dumps(body, indent=2, sort_keys=True).encode()
    storage.from_env().write_bytes(label_file_uri(experiment_uri, body["artifact_id"]), data)
