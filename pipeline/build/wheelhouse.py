"""The wheels of `steps/requirements.txt` for the job image's platform and Python: a wheelhouse.

On a managed image every job installs the requirements at start. From PyPI that is the same
~170 MB for every shard, and it fails in a VPC without a NAT gateway. Instead `upsert` builds
the wheelhouse once per (requirements, Python, platform), uploads it under
`<base>/wheels/<key>/` and the jobs install from it with `pip install --no-index`, staged by
SageMaker as one more ProcessingInput.

The key is derived from the requirements' bytes and the target, never from downloaded wheels,
so the definition naming it stays a pure function of config + code (no network at build time).
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from pipeline.build.bundle import STEPS_DIR
from pipeline.build.images import IMPLEMENTATION, PLATFORMS
from steps.contract import WHEEL_HASHES as WHEEL_HASHES_NAME

REQUIREMENTS = STEPS_DIR / "requirements.txt"
LOCK = STEPS_DIR.parent / "uv.lock"
WHEEL_HASHES = STEPS_DIR.parent / WHEEL_HASHES_NAME
# Written last, locally and in S3: a wheelhouse with its marker is complete.
MARKER = "wheelhouse.json"


class WheelhouseError(RuntimeError):
    """pip could not download a wheel of every requirement for the target."""


@dataclass(frozen=True)
class Wheelhouse:
    requirements_sha256: str
    python: str
    platforms: tuple[str, ...] = PLATFORMS
    implementation: str = IMPLEMENTATION

    @classmethod
    def for_python(cls, python: str, requirements: Path = REQUIREMENTS) -> "Wheelhouse":
        return cls(hashlib.sha256(requirements.read_bytes()).hexdigest(), python)

    @property
    def key(self) -> str:
        target = {"requirements": self.requirements_sha256, "python": self.python,
                  "platforms": list(self.platforms), "implementation": self.implementation}
        return hashlib.sha256(json.dumps(target, sort_keys=True).encode()).hexdigest()[:16]

    def uri(self, base_uri: str) -> str:
        """`<base>/wheels/<key>/`, beside the code bundle."""
        return f"{base_uri}/wheels/{self.key}/"

    def describe(self) -> str:
        return f"cp{self.python.replace('.', '')} {'/'.join(self.platforms)}"


def _version(executable: str) -> str | None:
    try:
        proc = subprocess.run([executable, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def find_python(version: str) -> str | None:
    """An interpreter of `version` ("3.12") on this machine: this one, `pythonX.Y` on PATH, or pyenv's."""
    pyenv = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    candidates = [sys.executable, shutil.which(f"python{version}"),
                  *sorted(glob.glob(f"{pyenv}/versions/{version}.*/bin/python{version}"), reverse=True)]
    return next((c for c in candidates if c and _version(c) == version), None)


def target_environment(python: str) -> dict[str, str]:
    """PEP 508 marker values of the jobs' interpreter: CPython `python` on Linux x86_64."""
    return {"python_version": python, "python_full_version": f"{python}.0", "sys_platform": "linux",
            "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
            "implementation_name": "cpython", "platform_python_implementation": "CPython"}


def target_requirements(requirements: Path, python: str) -> list[str]:
    """The exact pins of `requirements` (the lock's export: every package of the closure, with
    environment markers) that apply on the jobs' interpreter, markers evaluated for it here."""
    return [f"{req.name}{req.specifier}" for req in pinned(requirements)
            if req.marker is None or req.marker.evaluate(target_environment(python))]


def pinned(requirements: Path | None = None) -> list:
    """Every requirement of `requirements` (default: the jobs' requirements, the lock's export:
    every package of the closure, with environment markers), parsed (packaging's Requirement);
    comments and hashes left out."""
    from packaging.requirements import Requirement

    lines = (line.split("#", 1)[0].split(" --hash", 1)[0].strip()
             for line in (requirements or REQUIREMENTS).read_text().replace("\\\n", " ").splitlines())
    return [Requirement(line) for line in lines if line]


def _pins(requirements: Path) -> set[tuple[str, str]]:
    """(normalised name, version) of every `name==version` line, whatever its markers."""
    from packaging.utils import canonicalize_name

    return {(canonicalize_name(req.name), spec.version) for req in pinned(requirements)
            for spec in req.specifier if spec.operator == "=="}


def locked_wheel_hashes(lock: Path = LOCK, requirements: Path = REQUIREMENTS) -> dict[str, str]:
    """Wheel file name -> sha256, of every wheel uv.lock records for a pin of `requirements` that
    a Linux x86_64 job could install (platform `any` or a linux x86_64 tag). Shipped in the code
    bundle (steps/wheel-hashes.json, written by .ci/export-requirements): the jobs check the
    wheelhouse against it, so a wheel changed in S3 after upload is never installed."""
    import tomllib

    from packaging.utils import canonicalize_name

    pins = _pins(requirements)
    out = {}
    for package in tomllib.loads(lock.read_text())["package"]:
        if (canonicalize_name(package["name"]), package.get("version")) not in pins:
            continue
        for wheel in package.get("wheels", []):
            name = wheel["url"].rsplit("/", 1)[1]
            platform = name[:-4].split("-")[-1]
            if platform == "any" or ("linux" in platform and "x86_64" in platform):
                out[name] = wheel["hash"].removeprefix("sha256:")
    return dict(sorted(out.items()))


def write_wheel_hashes(path: Path = WHEEL_HASHES) -> None:
    path.write_text(json.dumps(locked_wheel_hashes(), indent=0, sort_keys=True) + "\n")


def unlocked_wheels(wheels: dict[str, str], table: dict[str, str]) -> list[str]:
    """The wheels (file name -> sha256) whose sha256 is not the one uv.lock records for that file."""
    return [f"{name}: sha256 {digest}, uv.lock has {table[name] if name in table else 'no such wheel'}"
            for name, digest in sorted(wheels.items()) if table.get(name) != digest]


def download_command(wheelhouse: Wheelhouse, requirements: Path, dest: Path, python: str = "python3") -> list[str]:
    """`pip download` of exactly the pinned wheels for the target (never sdists: nothing is
    compiled, and what was built here could not run there). `requirements` holds the target's
    pins, markers already evaluated (`target_requirements`): the export is the whole closure, so
    pip resolves nothing (`--no-deps`) and any Python can build any target's wheelhouse (pip would
    evaluate markers against its own interpreter, whatever `--python-version` says)."""
    argv = [python, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
            "--only-binary=:all:", "--implementation", wheelhouse.implementation,
            "--python-version", wheelhouse.python]
    for platform in wheelhouse.platforms:
        argv += ["--platform", platform]
    return argv + ["-d", str(dest), "-r", str(requirements)]


def default_cache() -> Path:
    """Where built wheelhouses are kept on this machine (shared by upsert and local)."""
    from pipeline.build.cached import cache_root

    return cache_root() / "wheelhouses"


def build(wheelhouse: Wheelhouse, cache: Path | None = None, requirements: Path = REQUIREMENTS,
          python: str | None = None) -> Path:
    """The wheelhouse's folder, downloaded unless this machine already has it complete; `python`
    (default: this one) runs pip, whatever the wheelhouse's Python."""
    if hashlib.sha256(requirements.read_bytes()).hexdigest() != wheelhouse.requirements_sha256:
        raise WheelhouseError(f"{requirements} is not the requirements file this wheelhouse is for")
    folder = (cache or default_cache()) / wheelhouse.key
    if (folder / MARKER).is_file():
        return folder
    partial = folder.with_name(f"{wheelhouse.key}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    pins = partial.with_name(partial.name + ".txt")
    pins.write_text("\n".join(target_requirements(requirements, wheelhouse.python)) + "\n")
    proc = subprocess.run(download_command(wheelhouse, pins, partial, python or sys.executable),
                          capture_output=True, text=True)
    pins.unlink()
    if proc.returncode != 0:
        shutil.rmtree(partial, ignore_errors=True)
        detail = "\n".join(line for line in proc.stderr.splitlines() if not line.startswith("WARNING"))[-1500:]
        raise WheelhouseError(f"pip download for {wheelhouse.describe()} failed:\n{detail}")
    wheels = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(partial.glob("*.whl"))}
    # The jobs refuse any other wheel (steps/bootstrap.py): fail here, before anything is uploaded.
    if bad := unlocked_wheels(wheels, json.loads(WHEEL_HASHES.read_text())):
        shutil.rmtree(partial, ignore_errors=True)
        raise WheelhouseError(f"pip download for {wheelhouse.describe()} got wheels uv.lock does not record "
                              f"({WHEEL_HASHES.name} is its export: run 'bash .ci/lock'):\n" + "\n".join(bad))
    (partial / requirements.name).write_bytes(requirements.read_bytes())
    (partial / MARKER).write_text(json.dumps({
        "key": wheelhouse.key, "python": wheelhouse.python, "platforms": list(wheelhouse.platforms),
        "implementation": wheelhouse.implementation, "requirements_sha256": wheelhouse.requirements_sha256,
        "wheels": wheels}, indent=2, sort_keys=True) + "\n")
    try:
        partial.rename(folder)
    except OSError:  # built meanwhile by another process: theirs is as good
        shutil.rmtree(partial, ignore_errors=True)
    return folder


def files(folder: Path) -> list[Path]:
    """The wheelhouse's files in upload order: the marker last."""
    return sorted((p for p in folder.iterdir() if p.is_file()), key=lambda p: (p.name == MARKER, p.name))
