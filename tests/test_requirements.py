"""The container's requirements (installed at job start on managed images, and by the
Dockerfile) are the project's runtime dependencies minus the builder-only ones."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUILDER_ONLY = {"sagemaker", "pyyaml"}


def parse(lines) -> dict[str, str]:
    out = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if line:
            name, spec = re.match(r"^([A-Za-z0-9_.-]+)(.*)$", line).groups()
            out[name.lower()] = spec.replace(" ", "")
    return out


def test_container_requirements_match_runtime_dependencies():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    runtime = {k: v for k, v in parse(project).items() if k not in BUILDER_ONLY}
    container = parse((ROOT / "steps" / "requirements.txt").read_text().splitlines())
    assert container == runtime


def test_dockerfile_installs_the_container_requirements():
    assert "steps/requirements.txt" in (ROOT / "Dockerfile").read_text()
