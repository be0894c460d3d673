"""One lock, three places. uv.lock is the one resolution (pyproject.toml's ranges, every Python
requires-python accepts); the venv the README's commands make is synced from it, and the jobs'
steps/requirements.txt is its export (the Dockerfile, the wheelhouse `upsert` uploads and
`local --install-requirements` all install that). These tests fail when any of them drifts, naming
the command that moves them forward together (`bash .ci/lock`)."""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
from importlib.metadata import PackageNotFoundError, version

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.tags import Tag, parse_tag

from pipeline.build.images import SUPPORTED_PYTHONS, managed_python
from pipeline.build.wheelhouse import REQUIREMENTS, target_requirements
from tests.conftest import ROOT

BUILDER_ONLY = {"sagemaker"}
RELOCK = "run 'bash .ci/lock' and commit uv.lock and steps/requirements.txt"


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def uv() -> str:
    import uv as uv_package

    return uv_package.find_uv_bin()


def lock() -> dict:
    return tomllib.loads((ROOT / "uv.lock").read_text())


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def pins(python: str) -> dict[str, str]:
    """name -> version of the jobs' requirements that apply on CPython `python` (Linux x86_64)."""
    return {norm(Requirement(p).name): next(iter(Requirement(p).specifier)).version
            for p in target_requirements(REQUIREMENTS, python)}


def test_the_lock_is_current_with_pyproject():
    proc = subprocess.run([uv(), "lock", "--check", "--offline"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, f"uv.lock is stale against pyproject.toml: {RELOCK}\n{proc.stderr[-800:]}"


def test_the_jobs_requirements_are_the_locks_export(tmp_path):
    out = tmp_path / "requirements.txt"
    subprocess.run(["bash", str(ROOT / ".ci" / "export-requirements"), str(out)], cwd=ROOT, check=True,
                   env={"PATH": "/usr/bin:/bin", "UV": uv()})
    assert out.read_text() == REQUIREMENTS.read_text(), f"steps/requirements.txt is not uv.lock's export: {RELOCK}"


def test_the_jobs_wheel_hashes_are_the_locks():
    """steps/wheel-hashes.json (what the jobs check the wheelhouse against) is uv.lock's."""
    from pipeline.build.wheelhouse import WHEEL_HASHES, locked_wheel_hashes

    assert json.loads(WHEEL_HASHES.read_text()) == locked_wheel_hashes(), RELOCK
    for python in SUPPORTED_PYTHONS:  # every pin has a locked wheel for the jobs' platform
        tag = f"cp{python.replace('.', '')}"
        names = {norm(r.split("==")[0]) for r in target_requirements(REQUIREMENTS, python)}
        covered = {norm(w.split("-")[0]) for w in locked_wheel_hashes()
                   if w.endswith("-any.whl") or (tag in w or "abi3" in w) and "manylinux" in w}
        assert names <= covered, names - covered


def test_every_runtime_dependency_is_pinned_inside_its_range_for_every_python():
    ranges = {norm(Requirement(r).name): Requirement(r).specifier for r in pyproject()["project"]["dependencies"]}
    for python in SUPPORTED_PYTHONS:
        pinned = pins(python)
        for name, spec in ranges.items():
            if name in BUILDER_ONLY:
                assert name not in pinned, f"{name} is the builder's, not the jobs'"
            else:
                assert spec.contains(pinned[name]), f"{name} {pinned.get(name)} outside {spec} (Python {python})"


def test_every_python_gets_the_same_versions():
    # fork-strategy = "fewest": a 3.11 laptop and a 3.12 job compute with the same numpy.
    versions = [pins(python) for python in SUPPORTED_PYTHONS]
    shared = set.intersection(*(set(v) for v in versions))
    assert {name: {v[name] for v in versions} for name in shared} == {name: {versions[0][name]} for name in shared}


def test_this_environment_runs_exactly_the_locked_versions():
    """The laptop's (and CI's) venv and the jobs install the same numpy, pandas, pyarrow, wfdb ..."""
    python = "%d.%d" % __import__("sys").version_info[:2]
    drift = {}
    for name, pinned in pins(python).items():
        try:
            installed = version(name)
        except PackageNotFoundError:
            installed = None
        if installed != pinned:
            drift[name] = (installed, pinned)
    assert not drift, f"installed vs locked {drift}: sync the venv with the README's command"


@pytest.mark.parametrize("python", sorted(set(SUPPORTED_PYTHONS)))
def test_every_pin_has_a_wheel_for_the_jobs_platform(python):
    """Offline, from the lock's wheel list: what `upsert`'s wheelhouse downloads exists for every
    Python the project claims on manylinux x86_64 (the managed image's glibc is 2.39)."""
    accepted = {Tag(interp, abi, plat) for interp in (f"cp{python.replace('.', '')}", f"py{python.replace('.', '')}", "py3")
                for abi in (f"cp{python.replace('.', '')}", "abi3", "none")
                for plat in ("any", "manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_27_x86_64",
                             "manylinux_2_28_x86_64")}
    accepted |= {Tag(f"cp3{minor}", "abi3", plat) for minor in range(2, int(python.split(".")[1]) + 1)
                 for plat in ("manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_28_x86_64")}
    wheels = {norm(p["name"]): [w["url"].rsplit("/", 1)[1] for w in p.get("wheels", [])] for p in lock()["package"]}
    missing = []
    for name in pins(python):
        tags = [parse_tag("-".join(w[:-4].split("-")[-3:])) for w in wheels[name]]
        if not any(tag & accepted for tag in tags):
            missing.append(name)
    assert not missing, f"no wheel for CPython {python} manylinux x86_64 in uv.lock: {missing}"


def test_dockerfile_installs_the_jobs_requirements():
    assert "steps/requirements.txt" in (ROOT / "Dockerfile").read_text()


def test_requires_python_and_readme_claim_exactly_the_supported_pythons():
    from pipeline.config.models import ImageConfig

    spec = SpecifierSet(pyproject()["project"]["requires-python"])
    claimed = tuple(f"3.{minor}" for minor in range(6, 16) if spec.contains(f"3.{minor}.0"))
    assert claimed == SUPPORTED_PYTHONS
    assert SpecifierSet(lock()["requires-python"]) == spec
    assert f"Python {SUPPORTED_PYTHONS[0]} or {SUPPORTED_PYTHONS[-1]}" in (ROOT / "README.md").read_text()
    image = ImageConfig()
    assert managed_python(image.framework, image.framework_version) in SUPPORTED_PYTHONS
