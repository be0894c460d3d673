"""The storages the record cache is tested on: the local storage root and the moto server."""

from __future__ import annotations

import pytest

from steps.io import storage as st

BUCKET = "cache-bucket"
CACHE = f"s3://{BUCKET}/experiments/e/record-cache/k"


@pytest.fixture(params=["local", "moto"])
def storage(request, tmp_path) -> st.Storage:
    if request.param == "local":
        return st.LocalStorage(tmp_path / "s3")
    import boto3

    request.getfixturevalue("aws")
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    return st.S3Storage(max_connections=20)
