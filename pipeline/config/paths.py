"""Paths in a config are relative to the config file, never to the current folder, so
`wavepipe local --config DIR/wavepipe.yaml` means the same from anywhere.

Resolved here, on the merged YAML before validation (overlays included: their paths are relative
to the base config file too). The path-like keys:

- `code.paths[]`: folders or .py files shipped in the code bundle (made absolute);
- `local.workdir`: the local runner's folder (made absolute; default `.wavepipe` beside the file);
- `stages.reconcile.labels.sqlite_uri` when it is a local path or a `file://` URI, not `s3://`
  (made the absolute path; a local SQLite file only exists for local runs);
- `parameters.input_uri` when it is a folder (a path or `file://` URI, not `s3://`): made the
  `file://` URI of its absolute path (a folder only local runs read: `pipeline/local/folders.py`);
- `stages.reconcile.labels.query_file`: a `.sql` file read here into `labels.query`, so the query
  text (not the file's location) is what the settings file, and so the cache key, holds.

Of these, the data inputs a job reads (`INPUT_KEYS`: the input folder and the labels' SQLite file)
may be on this machine for local runs only; `local_inputs` names those that are, for the commands
that deploy to refuse them by key (`pipeline/local/folders.py`). The other keys that name a place
take `s3://` only: `stages.*.listing.inventory` (an S3 Inventory report) and `local.sample_data_uri`
(where `local` writes the sample, in the run's storage).

Code and query files are shipped to the jobs, so they must be inside the project (the config
file's folder tree, symbolic links followed) or under an entry of `code.allow_outside`: a config
naming `/etc/ssl` would otherwise bundle it. Data inputs may be anywhere; they are only read.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

DEFAULT_WORKDIR = ".wavepipe"
# The data inputs a config names by location, by key path (after resolve_paths: a folder is a
# `file://` URI, a local file its absolute path).
INPUT_KEYS = ("parameters.input_uri", "stages.reconcile.labels.sqlite_uri")


def _absolute(base: Path, value: Any) -> Any:
    if not isinstance(value, str) or not value:
        return value  # the models report the wrong type
    return str((base / Path(value).expanduser()).resolve())


def _section(data: dict, *keys: str) -> dict | None:
    for key in keys:
        data = data.get(key) if isinstance(data, dict) else None
    return data if isinstance(data, dict) else None


def _outside(path: Path, base: Path, allowed: list[Path]) -> bool:
    return not any(path == root or root in path.parents for root in [base, *allowed])


def _outside_problem(key: str, path: Path, base: Path) -> str:
    return (f"{key}: {path} is outside the project ({base}, the config file's folder): move it into the "
            "project, or name it in code.allow_outside to allow it")


def _allowed(data: dict, base: Path) -> list[Path]:
    code = _section(data, "code")
    entries = code.get("allow_outside") if code is not None else None
    return [Path(_absolute(base, e)) for e in entries if isinstance(e, str) and e] if isinstance(entries, list) else []


def _labels(data: dict, base: Path, allowed: list[Path]) -> list[str]:
    labels = _section(data, "stages", "reconcile", "labels")
    if labels is None:
        return []
    sqlite_uri = labels.get("sqlite_uri")
    if isinstance(sqlite_uri, str) and sqlite_uri and ("://" not in sqlite_uri or sqlite_uri.startswith("file://")):
        labels["sqlite_uri"] = _absolute(base, sqlite_uri.removeprefix("file://"))
    query_file = labels.get("query_file")
    if not isinstance(query_file, str) or not query_file:
        return []
    key = "stages.reconcile.labels.query_file"
    if "query" in labels:
        return [f"{key}: give query or query_file, not both"]
    path = Path(_absolute(base, query_file))
    if _outside(path, base, allowed):
        return [_outside_problem(key, path, base)]
    try:
        labels["query"] = path.read_text(encoding="utf-8").strip()
    except OSError as err:
        return [f"{key}: cannot read {path}: {err.strerror or err}"]
    if not labels["query"]:
        return [f"{key}: {path} is empty"]
    return []


def resolve_paths(data: dict, base: Path) -> tuple[dict, list[str]]:
    """A copy of the merged config with every path-like key resolved against `base` (the config
    file's folder), and the problems found doing it (each starting with its key path)."""
    data = copy.deepcopy(data)
    base = Path(base).resolve()
    allowed, problems = _allowed(data, base), []
    code = _section(data, "code")
    if code is not None and isinstance(code.get("paths"), list):
        code["paths"] = [_absolute(base, p) for p in code["paths"]]
        problems += [_outside_problem(f"code.paths[{i}]", Path(p), base) for i, p in enumerate(code["paths"])
                     if isinstance(p, str) and p and _outside(Path(p), base, allowed)]
    local = _section(data, "local")
    if local is None and "local" not in data:
        local = data["local"] = {}
    if local is not None:
        local["workdir"] = _absolute(base, local.get("workdir") or DEFAULT_WORKDIR)
    parameters = _section(data, "parameters")
    if parameters is not None:
        parameters["input_uri"] = _folder_uri(base, parameters.get("input_uri"))
    return data, problems + _labels(data, base, allowed)


def _folder_uri(base: Path, value: Any) -> Any:
    """A local folder (`data/raw`, `~/waves`, `file:///abs`) -> `file:///<absolute path>`; an
    `s3://` URI (or any other scheme, which the model reports) is kept as given."""
    if not isinstance(value, str) or not value or ("://" in value and not value.startswith("file://")):
        return value
    return "file://" + _absolute(base, value.removeprefix("file://"))


def _at(model: Any, key: str) -> Any:
    for part in key.split("."):
        model = getattr(model, part, None)
    return model


def local_inputs(cfg: Any) -> dict[str, Path]:
    """Key path -> the folder or file on this machine, for each data input of the validated
    config `cfg` that names one (not `s3://`); a stage left out of the config has none."""
    found = {}
    for key in INPUT_KEYS:
        value = _at(cfg, key)
        if isinstance(value, str) and value and ("://" not in value or value.startswith("file://")):
            found[key] = Path(value.removeprefix("file://"))
    return found
