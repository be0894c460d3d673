"""Reading a stage's `--settings` file into its settings model, the same way for every stage.

Errors name the file and each key path but never echo the value given: a value may be a
secret (a database URL with a password)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


def load_settings(model: type[M], path: Path | None) -> M:
    """The settings in `path`, or the model's defaults without one; ValueError otherwise."""
    if path is None:
        return model()
    try:
        return model.model_validate(json.loads(Path(path).read_text()))
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"cannot read settings {path}: {err}") from None
    except ValidationError as err:
        lines = [f"  {'.'.join(map(str, e['loc'])) or '(top)'}: {e['msg']}" for e in err.errors(include_input=False)]
        raise ValueError(f"invalid settings in {path}:\n" + "\n".join(lines)) from None
