"""A stage's `--settings` file: written by the builder, read by the container, one format.

The file is `{"contract_version": N, "stage": "<stage>", "settings": {...}}`. The version is
checked first: a settings file from another release of the builder would otherwise be read
with today's defaults for whatever it lacks, silently. Errors name the file and each key path
but never echo the value given: a value may be a secret (a database URL with a password)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from steps.contract import CONTRACT_VERSION, SETTINGS_BODY_KEY, SETTINGS_STAGE_KEY, SETTINGS_VERSION_KEY

M = TypeVar("M", bound=BaseModel)


def settings_document(stage: str, settings: dict[str, Any]) -> dict[str, Any]:
    """What the builder writes as `<stage>.json`: the settings under the contract's version."""
    return {SETTINGS_VERSION_KEY: CONTRACT_VERSION, SETTINGS_STAGE_KEY: stage, SETTINGS_BODY_KEY: settings}


def write_settings(path: Path, stage: str, settings: BaseModel | dict[str, Any]) -> Path:
    """Write a settings file for `stage` (tests and benchmarks use this, as the builder does)."""
    body = settings.model_dump(mode="json") if isinstance(settings, BaseModel) else settings
    Path(path).write_text(json.dumps(settings_document(stage, body), indent=2, sort_keys=True))
    return Path(path)


def load_settings(model: type[M], path: Path | None, stage: str) -> M:
    """The settings in `path`, or the model's defaults without one; ValueError otherwise."""
    if path is None:
        return model()
    try:
        document = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"cannot read settings {path}: {err}") from None
    if not isinstance(document, dict) or SETTINGS_VERSION_KEY not in document:
        raise ValueError(f"settings {path}: no {SETTINGS_VERSION_KEY!r}: written by a builder older than "
                         f"contract version {CONTRACT_VERSION}; deploy the pipeline again with this code")
    version = document[SETTINGS_VERSION_KEY]
    if version != CONTRACT_VERSION:
        raise ValueError(f"settings {path} were written for contract version {version}, this code speaks "
                         f"version {CONTRACT_VERSION}: the definition and the code bundle come from different "
                         "releases; deploy the pipeline again")
    if document.get(SETTINGS_STAGE_KEY) != stage:
        raise ValueError(f"settings {path} are for stage {document.get(SETTINGS_STAGE_KEY)!r}, not {stage!r}")
    try:
        return model.model_validate(document.get(SETTINGS_BODY_KEY) or {})
    except ValidationError as err:
        lines = [f"  {'.'.join(map(str, e['loc'])) or '(top)'}: {e['msg']}" for e in err.errors(include_input=False)]
        raise ValueError(f"invalid settings in {path}:\n" + "\n".join(lines)) from None
