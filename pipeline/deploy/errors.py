"""One line per failure: what failed, on which resource, and AWS's own words. No tracebacks."""

from __future__ import annotations

import re

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError

NOT_FOUND_CODES = {"ResourceNotFound", "ResourceNotFoundException", "NoSuchEntity", "NoSuchKey", "NotFound", "404"}


class DeployError(Exception):
    """A failure the user can act on; `exit_code` 2 for bad input, 1 for AWS refusing."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def error_code(err: ClientError) -> str:
    return err.response.get("Error", {}).get("Code", "")


def is_not_found(err: ClientError) -> bool:
    """moto answers a missing pipeline with ValidationException, AWS with ResourceNotFound."""
    code, message = error_code(err), err.response.get("Error", {}).get("Message", "")
    if code in NOT_FOUND_CODES:
        return True
    return code == "ValidationException" and ("not find" in message or "does not exist" in message)


def _plain(message: str) -> str:
    """An HTML error page (a proxy, or moto's unimplemented operations) shown by its title."""
    if message.lstrip().startswith("<"):
        title = re.search(r"<title>(.*?)</title>", message, re.S | re.I)
        return title.group(1).strip() if title else re.sub(r"<[^>]+>", " ", message)
    return message


def one_line(operation: str, resource: str, err: Exception) -> str:
    """`CreatePipeline on pipeline p: ValidationException: ...` on a single line."""
    if isinstance(err, ClientError):
        info = err.response.get("Error", {})
        detail = f"{info.get('Code', '?')}: {_plain(info.get('Message', '')) or '(no message)'}"
    elif isinstance(err, NoCredentialsError):
        detail = "no AWS credentials found (set AWS_PROFILE, or run `aws configure` / `aws sso login`)"
    elif isinstance(err, NoRegionError):
        detail = "no AWS region (set aws.region in the config)"
    elif isinstance(err, BotoCoreError):
        detail = f"{type(err).__name__}: {err}"
    else:
        detail = str(err)
    return " ".join(f"{operation} on {resource}: {detail}".split())
