"""The container's requirements (installed at job start on managed images, and by the
Dockerfile) pin exactly the project's runtime dependencies, minus the builder-only ones,
each pin inside pyproject.toml's range; and they resolve, as wheels for the image's platform, for
every Python the project claims and for the default image's."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from pipeline.images import IMPLEMENTATION, PLATFORMS, SUPPORTED_PYTHONS, managed_python
from tests.conftest import ROOT

BUILDER_ONLY = {"sagemaker", "pyyaml"}


def requirements(lines) -> dict[str, Requirement]:
    out = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if line:
            req = Requirement(line)
            out[re.sub(r"[-_.]+", "-", req.name).lower()] = req
    return out


def test_container_pins_every_runtime_dependency_within_its_range():
    project = requirements(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"])
    runtime = {k: v for k, v in project.items() if k not in BUILDER_ONLY}
    container = requirements((ROOT / "steps" / "requirements.txt").read_text().splitlines())
    assert sorted(container) == sorted(runtime)
    for name, req in container.items():
        (spec,) = req.specifier
        assert spec.operator == "==", f"{name}: pin an exact version, not {spec}"
        assert runtime[name].specifier.contains(spec.version), f"{name} {spec.version} outside {runtime[name].specifier}"


def test_dockerfile_installs_the_container_requirements():
    assert "steps/requirements.txt" in (ROOT / "Dockerfile").read_text()


# --- Python versions: requires-python, the README and the pins agree (issue 12) -------------------


def default_image_python() -> str:
    from pipeline.config.models import ImageConfig

    image = ImageConfig()
    return managed_python(image.framework, image.framework_version)


def test_requires_python_and_readme_claim_exactly_the_supported_pythons():
    from packaging.specifiers import SpecifierSet

    spec = SpecifierSet(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"])
    claimed = tuple(f"3.{minor}" for minor in range(6, 16) if spec.contains(f"3.{minor}.0"))
    assert claimed == SUPPORTED_PYTHONS
    assert f"Python {SUPPORTED_PYTHONS[0]} to {SUPPORTED_PYTHONS[-1]}" in (ROOT / "README.md").read_text()
    assert default_image_python() in SUPPORTED_PYTHONS


def resolve(python: str, cache: Path) -> dict:
    """pip's resolution of steps/requirements.txt for a CPython on the image's platform, as
    wheels only, from PyPI metadata (PEP 658: no wheel is downloaded), run by an interpreter of
    that Python (pip evaluates environment markers against its own). Kept per (requirements,
    target) in `cache`: resolving the 64 packages takes ~25 s per Python."""
    import hashlib
    import json
    import subprocess

    from pipeline.wheelhouse import find_python

    requirements = ROOT / "steps" / "requirements.txt"
    key = hashlib.sha256(requirements.read_bytes() + f"{python}{PLATFORMS}{IMPLEMENTATION}".encode()).hexdigest()[:16]
    report = cache / f"resolved-{key}.json"
    if report.is_file():
        return json.loads(report.read_text())
    interpreter = find_python(python)
    if interpreter is None:
        pytest.skip(f"no python{python} on this machine to resolve the pins with (pyenv install {python})")
    cache.mkdir(parents=True, exist_ok=True)
    argv = [interpreter, "-m", "pip", "install", "--dry-run", "--quiet", "--ignore-installed",
            "--disable-pip-version-check", "--report", str(report) + ".partial",
            "--target", str(cache / "never-written"),  # pip 23 wants it with --python-version
            "--only-binary=:all:", "--implementation", IMPLEMENTATION, "--python-version", python,
            *[arg for platform in PLATFORMS for arg in ("--platform", platform)], "-r", str(requirements)]
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0 and ("NewConnectionError" in proc.stderr or "Could not fetch URL" in proc.stderr):
        pytest.skip(f"the package index is unreachable: {proc.stderr.strip()[-200:]}")
    assert proc.returncode == 0, f"steps/requirements.txt does not resolve for Python {python}:\n{proc.stderr[-1500:]}"
    Path(str(report) + ".partial").rename(report)
    return json.loads(report.read_text())


@pytest.mark.parametrize("python", sorted(set(SUPPORTED_PYTHONS) | {default_image_python()}))
def test_pins_resolve_as_wheels_for_every_claimed_python_and_the_default_image(python):
    from pipeline.wheelhouse import default_cache

    report = resolve(python, default_cache().parent / "resolved")
    installed = {re.sub(r"[-_.]+", "-", item["metadata"]["name"]).lower(): item["metadata"]["version"]
                 for item in report["install"]}
    pinned = requirements((ROOT / "steps" / "requirements.txt").read_text().splitlines())
    for name, req in pinned.items():
        assert installed.get(name) == next(iter(req.specifier)).version, name
