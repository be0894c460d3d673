"""The operating commands of `deploy.py` (iam-policy, retry, stop, logs): their
arguments and dispatch, kept apart from `pipeline/cli.py`, which only hooks them in."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

COMMANDS = ("iam-policy", "retry", "stop", "logs")


def add_parsers(sub, config_args: Callable[[argparse.ArgumentParser], None]) -> None:
    p = sub.add_parser("iam-policy", help="least-privilege IAM policy for this config (offline)")
    config_args(p)
    p.add_argument("--for", dest="who", choices=["role", "trust", "deployer"], default="role",
                   help="role: the pipeline role's permissions; trust: its trust policy; deployer: yours")
    p.add_argument("--format", choices=["json", "cloudformation"], default="json",
                   help="cloudformation: a template making the role (or the deployer's managed policy)")
    p.add_argument("--out", help="file to write (default: stdout)")
    for name, text in (("retry", "retry a failed or stopped execution (RetryPipelineExecution)"),
                       ("stop", "stop a running execution")):
        p = sub.add_parser(name, help=text)
        config_args(p)
        p.add_argument("execution", metavar="EXECUTION", help="execution id or ARN")
    p = sub.add_parser("logs", help="an execution's processing-job logs from CloudWatch")
    config_args(p)
    p.add_argument("execution", metavar="EXECUTION", help="execution id or ARN")
    p.add_argument("step", metavar="STEP", nargs="?", help="only this step (default: every processing step)")
    p.add_argument("--follow", action="store_true", help="keep printing until the execution ends")


def run(args, cfg) -> int:
    if args.command == "iam-policy":
        from pipeline.deploy.iam_policy import render

        try:
            text = render(cfg, args.who, args.format)
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        if args.out:
            Path(args.out).write_text(text)
        else:
            sys.stdout.write(text)
        return 0
    from pipeline.deploy import operate

    if args.command == "retry":
        return operate.retry(cfg, args.execution)
    if args.command == "stop":
        return operate.stop(cfg, args.execution)
    return operate.logs(cfg, args.execution, args.step, args.follow)
