"""The encode stage (`python -m steps.encode`): see `steps.encode.run.run_encode`.

`run_encode` is imported lazily: importing `datasets` takes seconds, and the builder imports
`steps.encode.settings` (through this package) only to validate the config."""

from steps.encode.errors import EncodeError, EncodeInputError
from steps.encode.settings import EncodeSettings

__all__ = ["EncodeError", "EncodeInputError", "EncodeSettings", "run_encode"]


def __getattr__(name: str):
    if name == "run_encode":
        from steps.encode.run import run_encode

        return run_encode
    raise AttributeError(f"module 'steps.encode' has no attribute {name!r}")
