"""Container entrypoint: unpack the code bundle shipped beside this file, then run a stage.

`python3 /opt/ml/processing/input/code/bootstrap.py steps.featurize --input ...`

Standard library only: it runs before anything is installed. On an AWS-managed framework
image (`WAVEPIPE_PIP_INSTALL=1`) it first installs `steps/requirements.txt`, so the same
bundle runs on the project's own image (everything preinstalled) and on a stock one. It
installs from the wheelhouse staged at `WAVEPIPE_WHEELHOUSE` with `--no-index` (no job
reaches a package index), or from `WAVEPIPE_PIP_INDEX_URL` (a private index).
"""

import os
import runpy
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path


def pip_install_command(requirements: Path, env: dict) -> list:
    """The pip command that installs the requirements the way this job was told to."""
    from steps.contract import ENV_PIP_INDEX_URL, ENV_WHEELHOUSE

    argv = [sys.executable, "-m", "pip", "install", "--quiet", "--no-input", "--disable-pip-version-check"]
    if env.get(ENV_WHEELHOUSE):
        argv += ["--no-index", "--find-links", env[ENV_WHEELHOUSE]]
    elif env.get(ENV_PIP_INDEX_URL):
        argv += ["--index-url", env[ENV_PIP_INDEX_URL]]
    return argv + ["-r", str(requirements)]


def install_requirements(requirements: Path) -> None:
    # The 1.4-2-py312 image's Python is Ubuntu 24.04's, marked EXTERNALLY-MANAGED (PEP 668):
    # plain `pip install` refuses. Its own Dockerfile installs with --break-system-packages;
    # the environment variable is that option, and older pips ignore it.
    env = dict(os.environ, PIP_BREAK_SYSTEM_PACKAGES="1", PIP_ROOT_USER_ACTION="ignore")
    subprocess.run(pip_install_command(requirements, env), check=True, env=env)


def main(argv: list) -> int:
    if not argv:
        print("usage: bootstrap.py <module> [args...]", file=sys.stderr)
        return 2
    here = Path(__file__).resolve().parent
    # Unpacked beside the bundle, inside the job's own code input (and, locally, the step's
    # sandbox), so nothing is left behind in a shared temp folder; a temp folder only when the
    # input is read-only.
    target = here / "unpacked"
    try:
        target.mkdir(exist_ok=True)
    except OSError:
        target = Path(tempfile.mkdtemp(prefix="wavepipe-code-"))
    with tarfile.open(here / "bundle.tar.gz") as tar:
        tar.extractall(target, filter="data") if hasattr(tarfile, "data_filter") else tar.extractall(target)
    sys.path.insert(0, str(target))
    from steps.contract import ENV_PIP_INSTALL  # the unpacked bundle's own contract

    if os.environ.get(ENV_PIP_INSTALL) == "1":
        install_requirements(target / "steps" / "requirements.txt")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(target), os.environ.get("PYTHONPATH")]))
    module, sys.argv = argv[0], [argv[0]] + argv[1:]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as done:
        code = done.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
