"""The two ways the encode stage fails, mapped to the contract's exit codes by `steps.entry`."""

from steps.entry import BadInput, StageFailed


class EncodeInputError(BadInput):
    """Bad settings, missing or malformed inputs (exit code 2)."""


class EncodeError(StageFailed):
    """The stage ran and failed: a user function raised, nothing was left to encode (exit code 1)."""
