"""What the locked moto enforces on S3, and the adapter (tests/moto_iam.py) that makes it enforce
what AWS documents. The first test pins moto's own behaviour: when a moto upgrade authorizes S3
by IAM action, it fails, and the adapter's action map can go."""

from __future__ import annotations

import json
from importlib.metadata import version

import boto3
import pytest
import requests

from tests.moto_iam import UnsupportedCondition, conditions_hold, decide, s3_authorization

BUCKET = "moto-iam-probe"
PREFIXES = ["data/*"]


@pytest.fixture
def lister(aws):
    """A user whose only permission is s3:ListBucket on BUCKET under `data/`, and its S3 client;
    enforcement is on while the test runs."""
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    iam = boto3.client("iam")
    iam.create_user(UserName="lister")
    iam.put_user_policy(UserName="lister", PolicyName="list", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": [f"arn:aws:s3:::{BUCKET}"],
            "Condition": {"StringLike": {"s3:prefix": PREFIXES}}}]}))
    key = iam.create_access_key(UserName="lister")["AccessKey"]
    requests.post(f"{aws}/moto-api/reset-auth", data=b"0", timeout=10).raise_for_status()
    try:
        yield boto3.client("s3", aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"],
                           aws_session_token=None)
    finally:
        requests.post(f"{aws}/moto-api/reset-auth", data=b"inf", timeout=10).raise_for_status()


def denied(client, prefix: str) -> bool:
    try:
        client.list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    except client.exceptions.ClientError as err:
        assert err.response["Error"]["Code"] == "AccessDenied"
        return True
    return False


def test_the_locked_moto_authorizes_s3_by_operation_name_and_ignores_s3_prefix(lister):
    # moto 5.2.6 asks for `s3:ListObjectsV2`, an action IAM does not have, so s3:ListBucket (what
    # AWS checks for ListObjectsV2) never grants a listing; and it passes no `s3:prefix` context.
    assert version("moto") == "5.2.6", "a new moto: check what it enforces, then update this test"
    assert denied(lister, "data/")
    assert denied(lister, "elsewhere/")


def test_with_the_adapter_listing_is_ListBucket_under_the_policy_prefixes_only(lister):
    with s3_authorization():
        assert not denied(lister, "data/")
        assert not denied(lister, "data/x/y")
        assert denied(lister, "elsewhere/")
        assert denied(lister, "")  # the whole bucket: no prefix the policy names


class TestConditions:
    def test_string_like_matches_wildcards_and_a_missing_key_fails(self):
        cond = {"StringLike": {"s3:prefix": ["a/*", "b"]}}
        assert conditions_hold(cond, {"s3:prefix": "a/x"})
        assert conditions_hold(cond, {"s3:prefix": "b"})
        assert not conditions_hold(cond, {"s3:prefix": "bb"})
        assert not conditions_hold(cond, {})

    def test_an_operator_it_does_not_implement_is_an_error_not_a_pass(self):
        with pytest.raises(UnsupportedCondition, match="ArnLike"):
            conditions_hold({"ArnLike": {"aws:SourceArn": "arn:*"}}, {})

    def test_an_explicit_deny_wins_and_an_unmet_condition_only_skips_its_statement(self):
        allow = {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::b"}
        scoped = {**allow, "Condition": {"StringLike": {"s3:prefix": "x/*"}}}
        deny = {**allow, "Effect": "Deny"}
        assert decide([scoped, allow], "s3:ListBucket", "arn:aws:s3:::b", {"s3:prefix": "y/"})
        assert not decide([allow, deny], "s3:ListBucket", "arn:aws:s3:::b", {})
        assert not decide([allow], "s3:ListBucket", "arn:aws:s3:::other", {})
        assert decide([{**allow, "Action": "s3:*"}], "s3:ListBucket", "arn:aws:s3:::b", {})
