"""The encode stage (`python -m steps.encode`): see `steps.encode.stage.run_encode`."""

from steps.encode.errors import EncodeError, EncodeInputError
from steps.encode.settings import EncodeSettings
from steps.encode.stage import run_encode

__all__ = ["EncodeError", "EncodeInputError", "EncodeSettings", "run_encode"]
