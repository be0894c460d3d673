"""Container entrypoint: unpack the code bundle shipped beside this file, then run a stage.

`python3 /opt/ml/processing/input/code/bootstrap.py steps.featurize --input ...`

Standard library only: it runs before anything is installed. On an AWS-managed framework
image (`WAVEPIPE_PIP_INSTALL=1`) it first installs `steps/requirements.txt` and the user's
`user/requirements.txt` (code.requirements), so the same bundle runs on the project's own
image (everything preinstalled) and on a stock one.
"""

import os
import runpy
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path


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
        files = [f for f in (target / "steps" / "requirements.txt", target / USER_REQUIREMENTS) if f.is_file()]
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-input", *(a for f in files for a in ("-r", str(f)))],
            check=True,
        )
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
