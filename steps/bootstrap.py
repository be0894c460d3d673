"""Container entrypoint: unpack the code bundle shipped beside this file, then run a stage.

`python3 /opt/ml/processing/input/code/bootstrap.py steps.featurize --input ...`

Standard library only: it runs before anything is installed. On an AWS-managed framework
image (`WAVEPIPE_PIP_INSTALL=1`) it first installs `steps/requirements.txt` and the user's
`user/requirements.txt` (code.requirements), so the same bundle runs on the project's own
image (everything preinstalled) and on a stock one. It installs from the wheelhouse staged at
`WAVEPIPE_WHEELHOUSE` with `--no-index` (no job reaches a package index), or from
`WAVEPIPE_PIP_INDEX_URL` (a private index).
"""

import os
import runpy
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path


def pip_install_command(requirements: list, env: dict) -> list:
    """The pip command that installs the requirements the way this job was told to."""
    from steps.contract import ENV_PIP_INDEX_URL, ENV_WHEELHOUSE

    argv = [sys.executable, "-m", "pip", "install", "--quiet", "--no-input", "--disable-pip-version-check"]
    if env.get(ENV_WHEELHOUSE):
        argv += ["--no-index", "--find-links", env[ENV_WHEELHOUSE]]
    elif env.get(ENV_PIP_INDEX_URL):
        argv += ["--index-url", env[ENV_PIP_INDEX_URL]]
    return argv + [a for f in requirements for a in ("-r", str(f))]


def install_requirements(requirements: list) -> None:
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
    from steps.contract import ENV_PIP_INSTALL, USER_CODE_DIR, USER_REQUIREMENTS  # the bundle's own contract

    # The user's code (code.paths) right after the bundle root: importable by its own name in
    # this process and in every worker it starts, while steps/ stays the stages' own.
    user = target / USER_CODE_DIR
    sys.path.insert(1, str(user))
    if os.environ.get(ENV_PIP_INSTALL) == "1":
        # The user's requirements (code.requirements) with the stages' own, in one pip call, so
        # one resolver sees both and a user pin cannot silently replace a stage's.
        install_requirements([f for f in (target / "steps" / "requirements.txt", target / USER_REQUIREMENTS)
                              if f.is_file()])
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(target), str(user), os.environ.get("PYTHONPATH")]))
    module, sys.argv = argv[0], [argv[0]] + argv[1:]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as done:
        code = done.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
