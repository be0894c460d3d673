"""S3 authorization on the moto server as AWS documents it, for the IAM proofs.

moto 5.2 authorizes an S3 request by its API operation's name (`s3:ListObjectsV2`, `s3:HeadObject`),
which no IAM policy can grant: AWS authorizes ListObjectsV2 as `s3:ListBucket` and HeadObject as
`s3:GetObject` ("Required permissions for Amazon S3 API operations",
https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjectsV2.html and the page of each
operation). It also evaluates only `StringEquals` conditions, with no S3 request context, so an
`s3:prefix` condition is never checked. `s3_authorization()` replaces moto's S3 check with one that
maps each operation to its documented IAM action and evaluates the policy's conditions against the
request's own context (`s3:prefix` of a listing), by AWS's evaluation logic: an explicit Deny
wins; otherwise an Allow whose action, resource and every condition match grants. Signatures and
every other service stay moto's. `tests/test_moto_iam.py` pins what the locked moto does without it.
"""

from __future__ import annotations

import contextlib
import fnmatch
from collections.abc import Iterator

from moto.iam import access_control

# The IAM action AWS checks for each S3 operation the pipeline makes (the operation's API page,
# "Permissions"). CopyObject also needs s3:GetObject on its source, which moto cannot see here
# (it authorizes the destination only): tests/pipeline/deploy/test_iam_policy.py says so.
S3_ACTIONS = {
    "ListObjectsV2": "s3:ListBucket", "ListObjects": "s3:ListBucket", "HeadBucket": "s3:ListBucket",
    "HeadObject": "s3:GetObject", "GetObject": "s3:GetObject", "GetObjectAttributes": "s3:GetObject",
    "PutObject": "s3:PutObject", "CopyObject": "s3:PutObject", "CreateMultipartUpload": "s3:PutObject",
    "UploadPart": "s3:PutObject", "UploadPartCopy": "s3:PutObject", "CompleteMultipartUpload": "s3:PutObject",
    "AbortMultipartUpload": "s3:AbortMultipartUpload", "DeleteObject": "s3:DeleteObject",
    "DeleteObjects": "s3:DeleteObject", "ListObjectVersions": "s3:ListBucketVersions",
    "ListMultipartUploads": "s3:ListBucketMultipartUploads", "ListParts": "s3:ListMultipartUploadParts",
}


class UnsupportedCondition(AssertionError):
    """A policy uses a condition this evaluator does not implement: say so, never guess."""


def _matches(patterns: str | list[str], value: str) -> bool:
    """IAM's wildcard match of actions and resources: `*` any run, `?` one character, case-sensitive."""
    return any(fnmatch.fnmatchcase(value, p) for p in ([patterns] if isinstance(patterns, str) else patterns))


def conditions_hold(conditions: dict, context: dict[str, str]) -> bool:
    """Every operator and key must hold; a key the request has no value for does not (IAM's rule
    for operators without `IfExists`)."""
    for operator, keys in conditions.items():
        if operator not in ("StringEquals", "StringLike"):
            raise UnsupportedCondition(f"condition operator {operator} is not evaluated by tests/moto_iam.py")
        for key, expected in keys.items():
            if key not in context:
                return False
            values = [expected] if isinstance(expected, str) else expected
            if operator == "StringEquals" and context[key] not in values:
                return False
            if operator == "StringLike" and not _matches(values, context[key]):
                return False
    return True


def decide(statements: list[dict], action: str, resource: str, context: dict[str, str]) -> bool:
    """Whether `statements` (every policy of the principal) allow `action` on `resource`."""
    allowed = False
    for st in statements:
        if not (_matches(st["Action"], action) and _matches(st.get("Resource", "*"), resource)):
            continue
        if not conditions_hold(st.get("Condition", {}), context):
            continue
        if st["Effect"] == "Deny":
            return False
        allowed = True
    return allowed


def _statements(policies: list) -> list[dict]:
    out = []
    for policy in policies:
        document = access_control.IAMPolicy(policy)._policy_json
        statement = document["Statement"]
        out += statement if isinstance(statement, list) else [statement]
    return out


def _check_s3(self, resource: str) -> None:
    operation = self._action.split(":", 1)[1]
    action = S3_ACTIONS.get(operation, self._action)
    context = {}
    if action == "s3:ListBucket":
        context["s3:prefix"] = (self._data.get("prefix") or [""])[0] if isinstance(self._data, dict) else ""
    if not decide(_statements(self._access_key.collect_policies()), action, resource, context):
        self._raise_access_denied()


@contextlib.contextmanager
def s3_authorization() -> Iterator[None]:
    """While open, the (in-process) moto server authorizes S3 requests as described above."""
    original = access_control.S3IAMRequest.check_action_permitted
    access_control.S3IAMRequest.check_action_permitted = _check_s3
    try:
        yield
    finally:
        access_control.S3IAMRequest.check_action_permitted = original
