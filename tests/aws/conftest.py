"""The acceptance tests run on the user's own AWS account: the fake credentials every other
test gets are not put in place here, and the real environment is given back."""

from __future__ import annotations

import os

import pytest

from tests.conftest import REAL_AWS_ENV

NEEDED = ("WAVEPIPE_TEST_BUCKET",)  # the role: made by each run for its prefix (tests/aws/acceptance.py)


@pytest.fixture(autouse=True)
def _no_real_aws(monkeypatch):
    """Overrides tests/conftest.py's fixture of this name: real credentials, real endpoints."""
    for key, value in REAL_AWS_ENV.items():
        if value is None:
            monkeypatch.delenv(key, raising=False)
        else:
            monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    missing = [name for name in NEEDED if not os.environ.get(name)]
    if missing:
        pytest.skip(f"set {' and '.join(missing)} to run the acceptance test on your AWS account")
    import boto3

    if boto3.Session().get_credentials() is None:
        pytest.skip("no AWS credentials (environment, profile or instance role)")
