"""The container's requirements (installed at job start on managed images, and by the
Dockerfile) pin exactly the project's runtime dependencies, minus the builder-only ones,
each pin inside pyproject.toml's range."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
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
