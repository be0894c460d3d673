"""Fixtures shared by the pipeline tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline.cli import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = str(ROOT / "config" / "example.yaml")


@pytest.fixture(scope="session")
def example_run(tmp_path_factory):
    """One run of the example on local storage (about 25 s): the local-run tests read its
    outputs and run again in its workdir; the report tests render its first execution."""
    workdir = tmp_path_factory.mktemp("local")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    code = main(["local", "--config", EXAMPLE, "--workdir", str(workdir)])
    return workdir, code
