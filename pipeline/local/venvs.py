"""The jobs' install path on this machine (`deploy.py local --install-requirements`): a virtual
environment of the image's Python, made once per wheelhouse, that has nothing but what the
wheelhouse installs offline. The jobs then run under it and install exactly as in SageMaker
(`steps/bootstrap.py`, `--no-index` from the staged wheelhouse), finding everything there."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from pipeline.build.wheelhouse import REQUIREMENTS, Wheelhouse
from steps.bootstrap import pip_install_command
from steps.contract import PREINSTALLED_VENV_MARKER
from steps.contract import ENV_WHEELHOUSE

COMPLETE = PREINSTALLED_VENV_MARKER


def offline_env() -> dict[str, str]:
    """This process's environment without its pip configuration: only the wheelhouse counts."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") and k != "PYTHONPATH"}
    env["PIP_CONFIG_FILE"] = os.devnull
    return env


def job_venv(root: Path, wheelhouse: Wheelhouse, folder: Path, interpreter: str,
             requirements: Path = REQUIREMENTS) -> Path:
    """`<root>/<wheelhouse key>/bin/python`, with the requirements installed from `folder` with
    `--no-index` (the bootstrap's own command), made unless already complete. Installed here once,
    so the concurrent jobs' own installs only find everything satisfied."""
    venv = root / wheelhouse.key
    python = venv / "bin" / "python"
    if (venv / COMPLETE).is_file():
        return python
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([interpreter, "-m", "venv", str(venv)], check=True, capture_output=True)
    argv = pip_install_command(list(requirements) if isinstance(requirements, (list, tuple)) else [requirements],
                               {ENV_WHEELHOUSE: str(folder)})
    subprocess.run([str(python), *argv[1:]], check=True, env=offline_env())
    (venv / COMPLETE).write_text(wheelhouse.key + "\n")
    return python
