"""Container entrypoint: check and unpack the code bundle shipped beside this file, then run a stage.

`python3 /opt/ml/processing/input/code/bootstrap.py steps.featurize --input ...`

Standard library only: it runs before anything is installed. On an AWS-managed framework
image (`WAVEPIPE_PIP_INSTALL=1`) it first installs `steps/requirements.txt` and the user's
`user/requirements.txt` (code.requirements), so the same bundle runs on the project's own
image (everything preinstalled) and on a stock one. It installs from the wheelhouse staged at
`WAVEPIPE_WHEELHOUSE` with `--no-index` (no job reaches a package index), or from
`WAVEPIPE_PIP_INDEX_URL` (a private index).

What it runs is checked first, because the role may write its own `code/` and `wheels/`
prefixes: the bundle's sha256 against `WAVEPIPE_CODE_SHA256` (set by the builder from the
bundle it uploads), and every wheel of the wheelhouse against the sha256 uv.lock records for
that file (`steps/wheel-hashes.json`, inside the checked bundle). A mismatch exits 2 naming the
object, before anything is unpacked or installed.

The packages go to a place the job owns, never into the image's system Python (Ubuntu 24.04's,
marked EXTERNALLY-MANAGED by PEP 668: pip may not replace Debian's packages there): `pip install
--target <code input>/site`, on `sys.path` and `PYTHONPATH` (for the stage's joblib workers)
after the bundle and before everything of the image. (`.pth` files of the installed packages are
not run: among the pins only setuptools has one, its `distutils` shim.) Locally, an interpreter in a virtual environment the
local runner made and installed the wheelhouse into (`local --install-requirements`) installs
there instead: everything is found satisfied, and no step copies the wheels again.
"""

import hashlib
import json
import os
import runpy
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

# steps/contract.py's ENV_CODE_SHA256: read before the bundle (and the contract in it) is unpacked.
ENV_CODE_SHA256 = "WAVEPIPE_CODE_SHA256"


class Tampered(Exception):
    """A staged object is not the one the definition names."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_bundle(bundle: Path, expected: str) -> None:
    actual = sha256_of(bundle)
    if actual != expected:
        raise Tampered(f"code bundle {bundle} (the code input's bundle.tar.gz) has sha256 {actual}, but the "
                       f"pipeline definition names {expected} ({ENV_CODE_SHA256}): the object in S3 changed after "
                       "upsert uploaded it; run upsert again, and keep other writers out of the code/ prefix")


def check_wheelhouse(folder: Path, table: Path) -> None:
    """Every wheel in `folder` must be a file uv.lock records, with the sha256 it records."""
    locked = json.loads(table.read_text())
    for wheel in sorted(folder.glob("*.whl")):
        expected, actual = locked.get(wheel.name), sha256_of(wheel)
        if actual != expected:
            why = f"uv.lock records {expected}" if expected else "uv.lock records no such wheel"
            raise Tampered(f"wheelhouse object {wheel.name} (staged at {wheel}) has sha256 {actual}; {why} "
                           f"({table.name} in the code bundle): the wheels/ prefix was changed after upsert "
                           "uploaded it; delete that wheelhouse folder in S3 and run upsert again")


def preinstalled_venv() -> bool:
    """Whether this interpreter is a virtual environment the local runner installed the wheelhouse into."""
    from steps.contract import PREINSTALLED_VENV_MARKER

    return sys.prefix != sys.base_prefix and (Path(sys.prefix) / PREINSTALLED_VENV_MARKER).is_file()


def pip_install_command(requirements: list, env: dict, target: str | None = None) -> list:
    """The pip command that installs the requirements the way this job was told to (into
    `target` with `--target`, else into the running environment)."""
    from steps.contract import ENV_PIP_INDEX_URL, ENV_WHEELHOUSE

    argv = [sys.executable, "-m", "pip", "install", "--quiet", "--no-input", "--disable-pip-version-check"]
    if target:
        argv += ["--target", target]
    if env.get(ENV_WHEELHOUSE):
        argv += ["--no-index", "--find-links", env[ENV_WHEELHOUSE]]
    elif env.get(ENV_PIP_INDEX_URL):
        argv += ["--index-url", env[ENV_PIP_INDEX_URL]]
    return argv + [a for f in requirements for a in ("-r", str(f))]


def install_requirements(requirements: list, site: Path) -> str | None:
    """Install; the folder the packages went to (to put first on the path), None for a venv's own."""
    target = None if preinstalled_venv() else str(site)
    env = dict(os.environ, PIP_ROOT_USER_ACTION="ignore")
    subprocess.run(pip_install_command(requirements, env, target), check=True, env=env)
    return target


def writable_dir(preferred: Path, prefix: str) -> Path:
    """`preferred`, inside the job's own code input (and, locally, the step's sandbox), so nothing is
    left behind in a shared temp folder; a temp folder only when the input is read-only."""
    try:
        preferred.mkdir(exist_ok=True)
        return preferred
    except OSError:
        return Path(tempfile.mkdtemp(prefix=prefix))


def main(argv: list) -> int:
    if not argv:
        print("usage: bootstrap.py <module> [args...]", file=sys.stderr)
        return 2
    here = Path(__file__).resolve().parent
    bundle = here / "bundle.tar.gz"
    try:
        if os.environ.get(ENV_CODE_SHA256):
            check_bundle(bundle, os.environ[ENV_CODE_SHA256])
        target = writable_dir(here / "unpacked", "wavepipe-code-")
        with tarfile.open(bundle) as tar:
            tar.extractall(target, filter="data") if hasattr(tarfile, "data_filter") else tar.extractall(target)
        sys.path.insert(0, str(target))
        # the bundle's own contract
        from steps.contract import ENV_PIP_INSTALL, ENV_WHEELHOUSE, USER_CODE_DIR, USER_REQUIREMENTS, WHEEL_HASHES

        if os.environ.get(ENV_PIP_INSTALL) == "1" and os.environ.get(ENV_WHEELHOUSE):
            check_wheelhouse(Path(os.environ[ENV_WHEELHOUSE]), target / WHEEL_HASHES)
    except Tampered as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    # The user's code (code.paths) right after the bundle root: importable by its own name in
    # this process and in every worker it starts, while steps/ stays the stages' own.
    user = target / USER_CODE_DIR
    sys.path.insert(1, str(user))
    paths = [str(target), str(user)]
    if os.environ.get(ENV_PIP_INSTALL) == "1":
        # The user's requirements (code.requirements) with the stages' own, in one pip call, so
        # one resolver sees both and a user pin cannot silently replace a stage's.
        site = install_requirements([f for f in (target / "steps" / "requirements.txt", target / USER_REQUIREMENTS)
                                     if f.is_file()], writable_dir(here / "site", "wavepipe-site-"))
        if site:  # before the image's own packages (after the bundle), here and in every child process
            sys.path.insert(2, site)
            paths.append(site)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [*paths, os.environ.get("PYTHONPATH")]))
    module, sys.argv = argv[0], [argv[0]] + argv[1:]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as done:
        code = done.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
