"""Uploading the jobs' wheelhouse (pipeline/build/wheelhouse.py) beside the code bundle, once per key.

The marker file is uploaded last, so a wheelhouse whose marker is in S3 is complete: then
nothing is built or uploaded (the usual upsert). Otherwise it is built on this machine (kept in
the local cache for the next time) and every file not already there is uploaded.
"""

from __future__ import annotations

import time
from pathlib import Path

from pipeline.deploy.assets import split_uri, upload
from pipeline.deploy.clients import Aws
from pipeline.deploy.errors import DeployError
from pipeline.build.wheelhouse import MARKER, REQUIREMENTS, Wheelhouse, WheelhouseError, build, download_command, files


def ensure(aws: Aws, wheelhouse: Wheelhouse, uri: str, kms_key_id: str | None = None,
           requirements: Path = REQUIREMENTS, cache: Path | None = None) -> None:
    """Upload the wheelhouse to `uri` unless it is complete there (its marker present)."""
    bucket, key = split_uri(uri + MARKER)
    if aws.read("s3", "head_object", uri + MARKER, missing_ok=True, Bucket=bucket, Key=key) is not None:
        aws.echo(f"wheelhouse {wheelhouse.key} ({wheelhouse.describe()}) already in place")
        return
    if aws.dry_run:
        aws.echo(f"would build wheelhouse {wheelhouse.key} ({' '.join(download_command(wheelhouse, 'requirements.txt', 'DIR'))})"
                 f" and upload it to {uri}")
        return
    began = time.monotonic()
    try:
        folder = build(wheelhouse, cache, requirements)
    except WheelhouseError as err:
        raise DeployError(f"wheelhouse for the jobs: {err}") from None
    paths = files(folder)
    uploaded = 0
    for path in paths:  # one at a time: a wheelhouse is ~170 MB
        uploaded += upload(aws, {uri + path.name: path.read_bytes()}, kms_key_id)[0]
    size = sum(p.stat().st_size for p in paths)
    aws.echo(f"wheelhouse {wheelhouse.key} ({wheelhouse.describe()}): {len(paths)} files, {size / 1e6:.0f} MB, "
             f"{uploaded} uploaded, in {time.monotonic() - began:.0f} s")
