"""Fixtures shared by every test: a real moto server on loopback, and the PhysioNet data."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_CONFIG = ROOT / "config" / "example.yaml"
PHYSIONET = ROOT.parent / "shared" / "data" / "physionet"
REGION = "us-east-1"

# For the whole session, before any fixture of any scope creates a client: fake credentials and
# a region (the per-test fixture below restores them for each test). Without this, a module-
# scoped fixture would depend on an earlier test having set them. What was there is kept for
# the acceptance tests on a real account (tests/aws), which alone put it back.
REAL_AWS_ENV = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                                                 "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_PROFILE",
                                                 "AWS_EC2_METADATA_DISABLED")}
for _key, _value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                     "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": REGION,
                     "AWS_REGION": REGION, "AWS_EC2_METADATA_DISABLED": "true"}.items():
    os.environ[_key] = _value
os.environ.pop("AWS_PROFILE", None)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(autouse=True)
def _no_real_aws(monkeypatch, tmp_path_factory):
    """Every test runs with fake credentials and no SDK telemetry, so nothing can reach AWS."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


@pytest.fixture(scope="session")
def moto_server():
    """A moto server in server mode on 127.0.0.1 and a free port; yields its endpoint URL.

    Tests talk to it through the real boto3 / SageMaker SDK clients over HTTP by setting
    `AWS_ENDPOINT_URL` (see the `aws` fixture)."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws(moto_server, monkeypatch):
    """Point every boto3 client of this test at the moto server; reset its state afterwards."""
    import requests

    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    yield moto_server
    requests.post(f"{moto_server}/moto-api/reset", timeout=10)


@pytest.fixture(scope="session")
def physionet() -> Path:
    if not PHYSIONET.is_dir():
        pytest.skip(f"real PhysioNet records not found at {PHYSIONET} (a user's clone without shared/)")
    return PHYSIONET
