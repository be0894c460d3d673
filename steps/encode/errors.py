"""The two ways the encode stage fails, mapped to the exit codes of the step contract."""


class EncodeInputError(Exception):
    """Bad settings, missing or malformed inputs (exit code 2)."""


class EncodeError(Exception):
    """The stage ran and failed: a user function raised, nothing was left to encode (exit code 1)."""
