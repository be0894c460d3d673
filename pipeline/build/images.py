"""What a job runs on, as far as the service's rules and `steps/requirements.txt` go: the
image's Python and platform, and whether the instance type has its own storage. All known
offline, from the config alone, so the definition (which names the wheelhouse built for the
image's Python and platform) stays a pure function of config + code.

The pins of `steps/requirements.txt` decide which Pythons can run the jobs: numpy 2.4.6 and
SQLAlchemy 2.1.9 publish wheels for 3.11 and later only. `SUPPORTED_PYTHONS` is the one list;
`requires-python`, the README and the tests (tests/test_requirements.py resolves the pins for
each of these and for the default image's Python) agree with it.
"""

from __future__ import annotations

import re

from pipeline.config.models import Config

SUPPORTED_PYTHONS = ("3.11", "3.12")

# The managed scikit-learn images run Ubuntu 24.04 (glibc 2.39) on x86_64 (their published
# Dockerfiles). numpy 2.3+ and pyarrow ship only manylinux_2_27/2_28 wheels and pip does not
# widen a `--platform` to older glibc tags, so both the new and the manylinux2014 tag are named.
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux2014_x86_64")
IMPLEMENTATION = "cp"

# Framework versions without a `-pyXYZ` suffix, from the images' Dockerfiles
# (aws/sagemaker-scikit-learn-container, docker/<version>/base/Dockerfile.cpu: PYTHON_VERSION).
MANAGED_PYTHONS = {("sklearn", "1.4-2"): "3.10", ("sklearn", "1.4-2-py312"): "3.12"}
_SUFFIX = re.compile(r"-py(3)(\d+)$")


def managed_python(framework: str, framework_version: str) -> str | None:
    """The Python of a managed framework image, or None when it is not known here."""
    if match := _SUFFIX.search(framework_version):
        return f"{match.group(1)}.{match.group(2)}"
    return MANAGED_PYTHONS.get((framework, framework_version))


def installs_requirements(cfg: Config) -> bool:
    """Whether the jobs pip-install steps/requirements.txt at start (managed images by default)."""
    if cfg.image.uri:
        return bool(cfg.image.install_requirements)
    return cfg.image.install_requirements is not False


def job_python(cfg: Config) -> str | None:
    """The Python the jobs run: `image.python` for an own image, else the managed image's."""
    if cfg.image.uri:
        return cfg.image.python
    return managed_python(cfg.image.framework, cfg.image.framework_version)


def python_problems(cfg: Config) -> list[str]:
    """The jobs' Python must be one the pins install on, and be known when a wheelhouse is built for it."""
    image = cfg.image
    where = "image.python" if image.uri else "image.framework_version"
    python = job_python(cfg)
    if image.uri and not installs_requirements(cfg):
        return []  # an image from the Dockerfile: its Python is whatever it was built with
    if python is None:
        if image.uri:
            return ["image.python: image.uri installs steps/requirements.txt at job start, so name its Python "
                    f"(one of {', '.join(SUPPORTED_PYTHONS)}): the wheelhouse is built for it"]
        known = ", ".join(f"{v} (Python {p})" for (f, v), p in sorted(MANAGED_PYTHONS.items()) if f == image.framework)
        return [f"image.framework_version: which Python the {image.framework} image {image.framework_version!r} "
                f"ships is not known here (known: {known or 'none'}); use 1.4-2-py312, or set image.uri to an "
                "image built from the Dockerfile"]
    if python not in SUPPORTED_PYTHONS:
        subject = f"{image.framework} {image.framework_version!r} ships" if not image.uri else "the image runs"
        return [f"{where}: {subject} Python {python}, but steps/requirements.txt pins packages that need Python "
                f"{' or '.join(SUPPORTED_PYTHONS)} (numpy 2.4.6, SQLAlchemy 2.1.9); use framework_version "
                "1.4-2-py312 (Python 3.12), or set image.uri to an image built from the Dockerfile"]
    return []


# Instance families with instance storage (NVMe SSD): the service rejects a VolumeKmsKeyId for
# them (their local storage is encrypted by the instance's hardware). A `d` after the generation
# (m5d, m5ad, c6gd, g4dn, p3dn, p4d, z1d) marks most; the rest are storage or GPU families.
_STORAGE_SUFFIX = re.compile(r"^[a-z]+\d+[a-z]*d[a-z]*$")
_STORAGE_FAMILIES = {"i3", "i3en", "i4i", "g5", "g6", "g6e", "p5", "p5e", "x1", "x1e", "d2", "d3", "h1", "trn1",
                     "trn1n"}


def has_instance_storage(instance_type: str) -> bool:
    """`ml.m5d.xlarge` -> True: the instance has its own storage (and takes no volume KMS key)."""
    parts = instance_type.split(".")
    family = parts[1] if len(parts) == 3 else ""
    return family in _STORAGE_FAMILIES or bool(_STORAGE_SUFFIX.match(family))
