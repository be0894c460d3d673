"""`python deploy.py <command>` (or `wavepipe <command>`): the command line. Parsing and exit codes
only: the commands are one table (`pipeline/cli/verbs.py`), each handled by the room that does
its work; `deploy.py` and `operate.py` here are the deploy and operate commands' own."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.cli.verbs import GROUPS, VERBS, UsageError, parse_params

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = str(ROOT / "config" / "example.yaml")
PROJECT_CONFIG = "wavepipe.yaml"

__all__ = ["DEFAULT_CONFIG", "PROJECT_CONFIG", "UsageError", "find_config", "main", "parse_params", "parser", "run"]


def _config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help=f"pipeline YAML (default: {PROJECT_CONFIG} in this folder or the nearest parent "
                   "holding one; in the wavepipe checkout without one, the embedded example config/example.yaml)")
    p.add_argument("--env", help="overlay config/env/<ENV>.yaml beside the config file")
    p.add_argument("--overlay", action="append", default=[], help="another overlay YAML (repeatable)")


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def parser() -> argparse.ArgumentParser:
    groups = "; ".join(f"{g}: {', '.join(v.name for v in VERBS if v.group == g)}" for g in GROUPS)
    ap = argparse.ArgumentParser(
        description="Build, check, run and deploy a wavepipe pipeline: one YAML config becomes a SageMaker "
                    "Pipelines DAG (Reconcile, Featurize per macroshard, Combine, Encode). Start with "
                    "`deploy.py local`, which runs the example on this machine with no AWS and no Docker.",
        epilog=f"Commands by purpose: {groups}. Exit codes: 0 ok, 1 a step or check failed, 2 a bad config or "
               "command line. Each command has its own --help.",
    )
    sub = ap.add_subparsers(dest="command", required=True)
    for verb in VERBS:
        p = sub.add_parser(verb.name, help=verb.help, description=_sentence(verb.help),
                           epilog=f"example:\n  {verb.example}" if verb.example else None,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        if verb.config:
            _config_args(p)
        verb.arguments(p)
    return ap


def find_config(start: Path | None = None) -> Path | None:
    """The nearest `wavepipe.yaml`: in `start` (default: the current folder) or a parent."""
    start = (start or Path.cwd()).resolve()
    return next((folder / PROJECT_CONFIG for folder in (start, *start.parents)
                 if (folder / PROJECT_CONFIG).is_file()), None)


def _in_checkout(folder: Path) -> bool:
    """Whether `folder` is inside the wavepipe checkout this code runs from (not an installed copy)."""
    folder = folder.resolve()
    checkout = (ROOT / "deploy.py").is_file() and Path(DEFAULT_CONFIG).is_file()
    return checkout and (folder == ROOT or ROOT in folder.parents)


def config_path(given: str | None, embedded_default: bool = False, note=print) -> str:
    """The config a command uses: `--config`; else the nearest `wavepipe.yaml`; else, in the
    checkout (or through `deploy.py`, the checkout's front door), the embedded example."""
    if given:
        return given
    found = find_config()
    if found is not None:
        if found.parent != Path.cwd().resolve():
            note(f"config: {found} (the nearest {PROJECT_CONFIG})")
        return str(found)
    if embedded_default or _in_checkout(Path.cwd()):
        note(f"config: the embedded example {Path(DEFAULT_CONFIG).relative_to(ROOT)} (no {PROJECT_CONFIG} "
             "here or above; as `python deploy.py <command>` in the checkout)")
        return DEFAULT_CONFIG
    raise UsageError(f"no {PROJECT_CONFIG} in {Path.cwd()} or any parent folder: run this inside a project, write "
                     f"one with `wavepipe init DIR` (or `wavepipe init DIR --raw FOLDER` over a folder of your WFDB "
                     f"records), or name a config with --config FILE")


def _found_here(config: str) -> bool:
    """Whether `wavepipe <command>` given no --config in the current folder would use `config`."""
    try:
        implied = config_path(None, note=lambda _: None)
    except UsageError:
        return False
    return Path(implied).resolve() == Path(config).resolve()


def run(args, embedded_default: bool = False) -> int:
    verb = next(v for v in VERBS if v.name == args.command)
    if not verb.config:
        return verb.run(args)
    from pipeline.config import load_config  # here: `--help` must not wait for the models
    from pipeline.config.paths import local_inputs

    args.config = config_path(args.config, embedded_default, note=lambda text: print(text, file=sys.stderr))
    # Whether the next `wavepipe` command typed here (`report` after `local`) finds this config by
    # itself (`deploy.py`'s fallback to the example anywhere is not `wavepipe`'s).
    args.config_found_here = _found_here(args.config)
    cfg = load_config(args.config, env=args.env, overlays=args.overlay)
    if local_inputs(cfg):
        cfg = _folder_inputs(args, cfg)
    return verb.run(args, cfg)


def _folder_inputs(args, cfg):
    """Data on this machine (a folder, the labels' SQLite file) as an input: refused by what
    deploys; a folder is mirrored into the storage of a local run (`local`, `plan`); every
    command sees the config naming the mirror."""
    from pipeline.local.folders import MIRROR_PREFIX, folders, localized, mirror, refuse

    if problem := refuse(cfg, args.command):
        raise UsageError(problem)
    if args.command in ("local", "plan") and folders(cfg):
        from pipeline.local.command import storage_for

        workdir = Path(args.workdir or cfg.local.workdir or ".wavepipe")
        storage = args.s3_endpoint or ("aws" if args.s3 == "aws" else "local")
        try:
            mirror(cfg, storage_for(workdir, storage), state=workdir / MIRROR_PREFIX)
        except ValueError as err:
            raise UsageError(str(err)) from None
    return localized(cfg)


def main(argv: list[str] | None = None, embedded_default: bool = False) -> int:
    """`wavepipe <command>`; `embedded_default` (`deploy.py`): without a project, the example."""
    args = parser().parse_args(argv)
    from pipeline.config import ConfigError

    try:
        return run(args, embedded_default)
    except (ConfigError, UsageError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
