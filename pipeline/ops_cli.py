"""The operating commands of `deploy.py` (iam-policy, retry, stop, logs, report): their
arguments and dispatch, kept apart from `pipeline/cli.py`, which only hooks them in."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

COMMANDS = ("iam-policy", "preflight", "retry", "stop", "logs", "report")


def add_parsers(sub, config_args: Callable[[argparse.ArgumentParser], None]) -> None:
    p = sub.add_parser("iam-policy", help="least-privilege IAM policy for this config (offline)")
    config_args(p)
    p.add_argument("--for", dest="who", choices=["role", "trust", "deployer"], default="role",
                   help="role: the pipeline role's permissions; trust: its trust policy; deployer: yours")
    p.add_argument("--format", choices=["json", "cloudformation"], default="json",
                   help="cloudformation: a template making the role (or the deployer's managed policy)")
    p.add_argument("--out", help="file to write (default: stdout)")
    p = sub.add_parser("preflight", help="check the account before the first deploy (read-only calls): role, "
                       "trust, permissions, quotas, bucket region, KMS key, subnets, definition limits")
    config_args(p)
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
    p = sub.add_parser("report", help="a self-contained HTML report of a local or SageMaker execution")
    config_args(p)
    p.add_argument("execution", metavar="EXECUTION", nargs="?",
                   help="execution id or ARN (default: the newest local execution in --workdir)")
    p.add_argument("--workdir", help="a local run's workdir: report on its executions")
    p.add_argument("--out", required=True, help="the HTML file to write")


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
    if args.command == "preflight":
        from pipeline.deploy.preflight import preflight

        return preflight(cfg)
    if args.command == "report":
        from pipeline.report import write_report

        return write_report(cfg, args.execution, args.workdir, Path(args.out))
    from pipeline.deploy import operate

    if args.command == "retry":
        return operate.retry(cfg, args.execution)
    if args.command == "stop":
        return operate.stop(cfg, args.execution)
    return operate.logs(cfg, args.execution, args.step, args.follow)
