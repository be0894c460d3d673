"""The jobs' wheelhouse (pipeline/build/wheelhouse.py): named from the requirements and the target
alone, so the definition stays pure; built for the default image's platform with the real
`pip download`, installed offline (`--no-index`) into a fresh virtual environment by the real
steps/bootstrap.py, and a stage runs from it."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from pipeline.build.compose import build
from pipeline.build.bundle import STEPS_DIR, pack_steps
from pipeline.config import load_config
from pipeline.config.models import ImageConfig
from pipeline.build.images import managed_python
from pipeline.build.wheelhouse import MARKER, REQUIREMENTS, Wheelhouse, build as build_wheelhouse, find_python
from steps import contract as c
from tests.conftest import EXAMPLE_CONFIG
from tests.steps.featurize import data as gen

DEFAULT_PYTHON = managed_python(ImageConfig().framework, ImageConfig().framework_version)
BASE = "s3://wavepipe-example/wavepipe/wavepipe-example"
# What `python -m steps.combine` imports; the whole set (66 wheels, ~170 MB) would make this test
# take minutes. That the whole set has wheels for the image is checked by tests/test_requirements.py,
# and `deploy.py local --install-requirements` runs the whole set the same way.
COMBINE_NEEDS = ("numpy", "pandas", "pyarrow", "pydantic")


def closure(names: tuple[str, ...]) -> set[str]:
    """`names` and everything they depend on, from uv.lock's graph (the requirements file is the
    lock's whole closure, downloaded with --no-deps: a subset must carry its dependencies)."""
    import tomllib

    from tests.conftest import ROOT

    graph = {p["name"]: [d["name"] for d in p.get("dependencies", [])]
             for p in tomllib.loads((ROOT / "uv.lock").read_text())["package"]}
    out, todo = set(), list(names)
    while todo:
        name = todo.pop()
        if name not in out:
            out.add(name)
            todo += graph[name]
    return out


def overlay(tmp_path: Path, text: str) -> str:
    path = tmp_path / "overlay.yaml"
    path.write_text(text)
    return str(path)


def inputs_of(step: dict) -> dict[str, dict]:
    return {i["InputName"]: i["S3Input"] for i in step["Arguments"]["ProcessingInputs"]}


class TestDefinition:
    def test_every_job_installs_from_the_wheelhouse_beside_the_code(self):
        built = build(load_config(EXAMPLE_CONFIG))
        expected = Wheelhouse.for_python("3.12")
        assert built.wheelhouse == expected
        assert built.wheelhouse_uri == f"{BASE}/wheels/{expected.key}/"
        bundle = next(body for uri, body in built.assets.files.items() if uri.endswith("/bundle.tar.gz"))
        for step in json.loads(built.definition)["Steps"]:
            env = step["Arguments"]["Environment"]
            assert env[c.ENV_PIP_INSTALL] == "1" and env[c.ENV_WHEELHOUSE] == c.WHEELHOUSE_DIR
            assert env[c.ENV_CODE_SHA256] == hashlib.sha256(bundle).hexdigest()  # what the job checks
            assert inputs_of(step)[c.WHEELHOUSE_INPUT] == {
                "S3Uri": built.wheelhouse_uri, "LocalPath": c.WHEELHOUSE_DIR, "S3DataType": "S3Prefix",
                "S3InputMode": "File", "S3DataDistributionType": "FullyReplicated", "S3CompressionType": "None"}

    def test_key_is_the_requirements_and_the_target_only(self, tmp_path):
        first, second = tmp_path / "a.txt", tmp_path / "b.txt"
        first.write_text("numpy==2.4.6\n")
        second.write_text("numpy==2.4.5\n")
        assert Wheelhouse.for_python("3.12", first) == Wheelhouse.for_python("3.12", first)
        keys = {Wheelhouse.for_python("3.12", first).key, Wheelhouse.for_python("3.12", second).key,
                Wheelhouse.for_python("3.11", first).key}
        assert len(keys) == 3

    def test_private_index_instead(self, tmp_path):
        url = "https://d-1.codeartifact.us-east-1.amazonaws.com/pypi/r/simple/"
        built = build(load_config(EXAMPLE_CONFIG, overlays=[overlay(tmp_path, f"image:\n  pip_index_url: {url}\n")]))
        assert built.wheelhouse is None
        for step in json.loads(built.definition)["Steps"]:
            assert step["Arguments"]["Environment"][c.ENV_PIP_INDEX_URL] == url
            assert c.WHEELHOUSE_INPUT not in inputs_of(step)

    def test_own_image_installs_nothing(self, tmp_path):
        uri = "123456789012.dkr.ecr.us-east-1.amazonaws.com/wavepipe:1"
        built = build(load_config(EXAMPLE_CONFIG, overlays=[overlay(tmp_path, f"image:\n  uri: {uri}\n")]))
        assert built.wheelhouse is None
        for step in json.loads(built.definition)["Steps"]:
            assert c.ENV_PIP_INSTALL not in step["Arguments"]["Environment"]
            assert c.WHEELHOUSE_INPUT not in inputs_of(step)


def bundle_with(requirements: bytes) -> bytes:
    """The real code bundle, its steps/requirements.txt replaced (the subset this test installs)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(pack_steps()))) as src, \
            tarfile.open(fileobj=out, mode="w") as dst:
        for member in src.getmembers():
            data = requirements if member.name == "steps/requirements.txt" else src.extractfile(member).read()
            member.size = len(data)
            dst.addfile(member, io.BytesIO(data))
    return gzip.compress(out.getvalue(), mtime=0)


def test_stage_runs_from_the_wheelhouse_installed_offline(tmp_path):
    python = find_python(DEFAULT_PYTHON)
    if python is None:
        pytest.skip(f"no python{DEFAULT_PYTHON} (the default image's) on this machine to build and install with")
    needed = closure(COMBINE_NEEDS)
    pins = [line for line in REQUIREMENTS.read_text().splitlines() if line.split("==")[0] in needed]
    subset = tmp_path / "requirements.txt"
    subset.write_text("\n".join(pins) + "\n")
    spec = Wheelhouse.for_python(DEFAULT_PYTHON, subset)

    began = time.monotonic()
    folder = build_wheelhouse(spec, tmp_path / "cache", subset, python)  # the real pip download
    built_in = time.monotonic() - began
    wheels = sorted(p.name for p in folder.glob("*.whl"))
    marker = json.loads((folder / MARKER).read_text())
    assert sorted(marker["wheels"]) == wheels and marker["platforms"] == list(spec.platforms)
    tag = f"cp{DEFAULT_PYTHON.replace('.', '')}"
    for wheel in wheels:  # every binary wheel is for the image's Python and a manylinux x86_64
        platform = wheel[:-4].split("-")[-1]
        assert platform == "any" or ("manylinux" in platform and platform.endswith("x86_64")), wheel
        assert "none-any" in wheel or tag in wheel or "abi3" in wheel, wheel
    assert any(w.startswith("pyarrow-21.0.0-") and "manylinux_2_28_x86_64" in w for w in wheels)

    venv = tmp_path / "venv"
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    code = tmp_path / "code"
    code.mkdir()
    (code / "bootstrap.py").write_bytes((STEPS_DIR / "bootstrap.py").read_bytes())
    bundle = bundle_with(subset.read_bytes())
    (code / "bundle.tar.gz").write_bytes(bundle)
    record = "3100001"
    gen.write_mimic3_record(tmp_path / "raw" / "31" / record, record)
    from steps.featurize.run import featurize

    featurize(tmp_path / "raw" / "31", tmp_path / "in" / "31", jobs=1, shard="31")

    # As in a job: no pip configuration, no index, nothing of this machine's site-packages.
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "PIP_CONFIG_FILE": os.devnull,
           c.ENV_PIP_INSTALL: "1", c.ENV_WHEELHOUSE: str(folder), c.ENV_CODE_SHA256: hashlib.sha256(bundle).hexdigest()}
    proc = subprocess.run([str(venv / "bin" / "python"), str(code / "bootstrap.py"), "steps.combine",
                           "--input", str(tmp_path / "in"), "--output", str(tmp_path / "out")],
                          env=env, capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "out" / c.SUMMARY_FILE).is_file()
    # Installed into the job's own folder beside its code (`pip install --target`), never into the
    # interpreter's environment (on the image: Ubuntu's system Python, PEP 668).
    site = code / "site"
    assert (site / "numpy").is_dir() and (site / "pyarrow").is_dir()
    python = str(venv / "bin" / "python")
    probe = "import importlib.util as u; print(u.find_spec('numpy') is None)"
    assert subprocess.run([python, "-c", probe], env=env, capture_output=True, text=True).stdout.split() == ["True"]
    versions = subprocess.run([python, "-c", "import numpy, pyarrow; print(numpy.__version__, pyarrow.__version__)"],
                              env={**env, "PYTHONPATH": str(site)}, capture_output=True, text=True,
                              check=True).stdout.split()
    assert versions == ["2.4.6", "21.0.0"]  # the pins, from the wheelhouse
    print(f"wheelhouse: {len(wheels)} wheels, {sum(p.stat().st_size for p in folder.glob('*.whl')) / 1e6:.0f} MB, "
          f"built in {built_in:.1f} s")
