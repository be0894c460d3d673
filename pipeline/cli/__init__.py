"""`python deploy.py <command>` (or `wavepipe <command>`): the command line. Parsing and exit codes
only: the commands are one table (`pipeline/cli/verbs.py`), each handled by the room that does
its work; `deploy.py` and `operate.py` here are the deploy and operate commands' own."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.cli.verbs import GROUPS, VERBS, UsageError, parse_params
from pipeline.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = str(ROOT / "config" / "example.yaml")

__all__ = ["DEFAULT_CONFIG", "UsageError", "main", "parse_params", "parser", "run"]


def _config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default=DEFAULT_CONFIG, help="pipeline YAML (default: config/example.yaml)")
    p.add_argument("--env", help="overlay config/env/<ENV>.yaml beside the config file")
    p.add_argument("--overlay", action="append", default=[], help="another overlay YAML (repeatable)")


def parser() -> argparse.ArgumentParser:
    groups = "; ".join(f"{g}: {', '.join(v.name for v in VERBS if v.group == g)}" for g in GROUPS)
    ap = argparse.ArgumentParser(
        prog="deploy.py",
        description="Build, check, run and deploy a wavepipe pipeline: one YAML config becomes a SageMaker "
                    "Pipelines DAG (Reconcile, Featurize per macroshard, Combine, Encode). Start with "
                    "`deploy.py local`, which runs the example on this machine with no AWS and no Docker.",
        epilog=f"Commands by purpose: {groups}. Exit codes: 0 ok, 1 a step or check failed, 2 a bad config or "
               "command line. Each command has its own --help.",
    )
    sub = ap.add_subparsers(dest="command", required=True)
    for verb in VERBS:
        p = sub.add_parser(verb.name, help=verb.help)
        if verb.config:
            _config_args(p)
        verb.arguments(p)
    return ap


def run(args) -> int:
    verb = next(v for v in VERBS if v.name == args.command)
    if not verb.config:
        return verb.run(args)
    return verb.run(args, load_config(args.config, env=args.env, overlays=args.overlay))


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return run(args)
    except (ConfigError, UsageError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
