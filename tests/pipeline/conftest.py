"""Fixtures shared by the pipeline tests."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from pipeline.cli import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = str(ROOT / "config" / "example.yaml")
DOCUMENTS = str(ROOT / "config" / "documents.yaml")
# An overlay of the example: Listing, Featurize over the sample's group folders 30 and 31 (one
# shard each) and Combine, the fastest pipeline with a Featurize fan-out.
RAW = "stages:\n  reconcile: null\n  encode: null\n  featurize:\n    macroshards: null\n    prefixes: ['30', '31']\n"


def copy_workdir(workdir: Path, dest: Path) -> Path:
    """A copy of a finished run's workdir (its executions, step cache, storage and outputs),
    where a test runs again instead of repeating that run."""
    shutil.copytree(workdir, dest, symlinks=True)
    return dest


def captured_main(argv: list[str]) -> SimpleNamespace:
    """`main(argv)` with its stdout and stderr kept: code, out, err (for fixtures, which have
    no capsys)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return SimpleNamespace(code=code, out=out.getvalue(), err=err.getvalue())


@pytest.fixture(scope="session")
def example_run(tmp_path_factory):
    """One run of the example on local storage (about 25 s), never run again in place: the
    local-run tests read its outputs, the report tests render its first execution, and tests
    that run again start from a copy of it (`copy_workdir`). Their modules share the pytest-xdist
    group `example_run`, so that one worker makes it once."""
    workdir = tmp_path_factory.mktemp("local")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    code = main(["local", "--config", EXAMPLE, "--workdir", str(workdir)])
    return workdir, code


@pytest.fixture
def example_copy(example_run, tmp_path) -> Path:
    """A workdir of the test's own, just after the example's first run: a copy of example_run's
    (its executions, step cache, sample data and outputs), instead of running it again."""
    workdir, code = example_run
    assert code == 0
    return copy_workdir(workdir, tmp_path / "w")


@pytest.fixture(scope="session")
def raw_download_run(tmp_path_factory) -> Path:
    """RAW in download mode on local storage with `max_parallel_steps: 1`, run once and never run
    again in place (group `example_run` too): the parallelism test reads its step times, the
    streaming test compares its summary, the sizing table's tests plan on a copy of it."""
    folder = tmp_path_factory.mktemp("raw")
    (folder / "one.yaml").write_text("max_parallel_steps: 1\n" + RAW)
    workdir = folder / "work"
    assert main(["local", "--config", EXAMPLE, "--overlay", str(folder / "one.yaml"), "--workdir", str(workdir)]) == 0
    return workdir


@pytest.fixture(scope="session")
def failed_documents_run(tmp_path_factory):
    """One run of the documents recipe whose labels query fails in Reconcile (exit 1, the
    other steps skipped): the command test reads its table, the report test renders it."""
    folder = tmp_path_factory.mktemp("failed")
    overlay = folder / "bad.yaml"
    overlay.write_text("stages:\n  reconcile:\n    labels:\n      query: SELECT nope FROM nowhere\n")
    args = ["--config", DOCUMENTS, "--overlay", str(overlay)]
    run = captured_main(["local", *args, "--workdir", str(folder / "w")])
    run.args, run.workdir = args, folder / "w"
    return run
