"""What every `python -m steps.<stage>` entry shares: the argument prelude, the settings file,
and the mapping of a stage's errors to the contract's exit codes (`steps.contract`).

A stage's entry only declares its own arguments and calls its one function:

    def main(argv=None) -> int:
        return run_stage("combine", parser(), CombineSettings, _run, argv)
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from pathlib import Path
from typing import Callable, TypeVar

from pydantic import BaseModel

from steps.contract import (ARG_SETTINGS, ENV_FAILURE_MESSAGE, EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK,
                            FAILURE_MESSAGE, FAILURE_MESSAGE_BYTES)
from steps.settings_file import load_settings

M = TypeVar("M", bound=BaseModel)


class BadInput(Exception):
    """Bad arguments, settings or inputs: exit 2 (retrying cannot help)."""


class StageFailed(Exception):
    """The stage ran and failed: exit 1 (outputs are written where they can be)."""


def os_error_line(err: OSError) -> str:
    """An OS error in one line naming its path: `No space left on device: /work/s3/b/k`."""
    paths = [str(p) for p in (err.filename, err.filename2) if p is not None]
    what = err.strerror or str(err) or type(err).__name__
    if paths:
        return f"{what}: {' -> '.join(paths)}"
    frames = traceback.extract_tb(err.__traceback__)  # a bare write() names no file: say where it was
    return f"{what} (at {frames[-1].filename}:{frames[-1].lineno})" if frames else what


def stage_parser(stage: str, description: str, settings_model: type[BaseModel]) -> argparse.ArgumentParser:
    """The stage's parser with the arguments every stage takes (`--settings`)."""
    p = argparse.ArgumentParser(
        prog=f"python -m steps.{stage}",
        description=f"{description} Exit {EXIT_OK} ok, {EXIT_FAILED} the stage ran and failed, "
                    f"{EXIT_BAD_INPUT} bad arguments, settings or inputs.",
    )
    p.add_argument(ARG_SETTINGS, type=Path, default=None,
                   help=f"JSON settings file written by the builder ({settings_model.__name__}, the config's "
                        f"stages.{stage} section); defaults apply without it.")
    return p


def write_failure_message(text: str) -> Path | None:
    """Write why the stage failed where SageMaker reads a processing job's FailureReason
    (`/opt/ml/output/message`, at most 1 KiB: the first line is what a reader sees), or where
    the local runner names it (ENV_FAILURE_MESSAGE). Outside both (a test, a shell) nothing is
    written. Returns the file written."""
    target = os.environ.get(ENV_FAILURE_MESSAGE) or (FAILURE_MESSAGE if Path("/opt/ml").is_dir() else None)
    if not target:
        return None
    data = text.strip().encode("utf-8")[:FAILURE_MESSAGE_BYTES].decode("utf-8", errors="ignore")
    try:
        path = Path(target)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(data, encoding="utf-8")
    except OSError:
        return None  # the reason is still on stderr, in the log
    return path


def _failed(stage: str, text: str, code: int) -> int:
    print(f"{stage}: {'failed: ' if code == EXIT_FAILED else ''}{text}", file=sys.stderr)
    write_failure_message(f"{stage}: {text}")
    return code


def run_stage(stage: str, parser: argparse.ArgumentParser, settings_model: type[M],
              work: Callable[[argparse.Namespace, M], int | None], argv: list[str] | None = None) -> int:
    """Parse, read the settings, run `work(args, settings)`; its errors become exit codes."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse: 0 for --help, 2 for bad arguments
        return EXIT_OK if exit_.code in (0, None) else EXIT_BAD_INPUT
    try:
        try:
            settings = load_settings(settings_model, args.settings, stage)
        except ValueError as err:
            raise BadInput(str(err)) from None
        code = work(args, settings)
    except BadInput as err:
        return _failed(stage, str(err), EXIT_BAD_INPUT)
    except StageFailed as err:
        return _failed(stage, str(err), EXIT_FAILED)
    except OSError as err:
        # Disk full, permission denied, a file too large...: the stage failed on this path, in
        # one line (a traceback wall says no more); rerunning once it is fixed resumes.
        return _failed(stage, os_error_line(err), EXIT_FAILED)
    except Exception as err:  # noqa: BLE001 - a bug or a user function's error: traceback, then why
        traceback.print_exc()
        return _failed(stage, f"{type(err).__name__}: {err}".splitlines()[0], EXIT_FAILED)
    return EXIT_OK if code is None else code
