"""Every command of `deploy.py` (or `wavepipe`), in one table grouped by what it is for: run
locally, deploy, operate, inspect. Each verb names its arguments and its handler; the handler
parses nothing and calls one function of the room that does the work."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from pipeline.gc import collect as gc

GROUPS = ("run locally", "deploy", "operate", "inspect")


class UsageError(Exception):
    """A bad command-line value; exit code 2 like a config error."""


@dataclass(frozen=True)
class Verb:
    name: str
    group: str  # one of GROUPS
    help: str
    arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable  # (args, cfg) -> exit code; (args) when `config` is False
    config: bool = True  # takes --config/--env/--overlay and gets the loaded config
    example: str = ""  # what a user types, shown at the end of the verb's --help


def parse_params(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--param expects KEY=VALUE, got {item!r}")
        out[key] = value
    return out


def _write(text: str, out: str | None) -> None:
    if out:
        Path(out).write_text(text)
    else:
        sys.stdout.write(text)


def _none(p: argparse.ArgumentParser) -> None:
    pass


def _out(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", help="file to write (default: stdout)")


def _execution(p: argparse.ArgumentParser) -> None:
    p.add_argument("execution", metavar="EXECUTION", help="execution id or ARN")


def _dry_run(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dry-run", action="store_true", help="print the AWS calls instead of making them")


def _storage(p: argparse.ArgumentParser, verb: str) -> None:
    p.add_argument("--param", action="append", default=[], metavar="K=V", help="pipeline parameter value")
    p.add_argument("--s3-endpoint", help=f"{verb} this S3 API endpoint instead of <workdir>/s3")
    p.add_argument("--s3", choices=["local", "aws"], default="local", help="aws: your real S3 with your credentials")


# --- run locally -------------------------------------------------------------------------------

def _local_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workdir", help="local storage, sandboxes, logs, cache (default: local.workdir of the "
                   "config, `.wavepipe` beside the config file)")
    _storage(p, "read and write")
    p.add_argument("--only", action="append", default=[], metavar="STEP", help="run only these steps")
    p.add_argument("--no-cache", action="store_true", help="ignore earlier local results")
    p.add_argument("--retry", nargs="?", const="latest", metavar="EXECUTION_ID",
                   help="resume a failed execution (default: the newest) with the inputs it read, as SageMaker's "
                        "RetryPipelineExecution; without it every run is a new execution")
    p.add_argument("--max-parallel", type=int, help="at most N steps at once (default: max_parallel_steps)")
    p.add_argument("--install-requirements", action="store_true",
                   help="run the jobs' install path: build the wheelhouse, install it offline into a virtual "
                        "environment of the image's Python (made once per wheelhouse) and run the steps there")


def _local(args, cfg) -> int:
    from pipeline.local.command import run_local

    return run_local(cfg, args, parse_params(args.param))


def _plan_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workdir", help="the local run's storage, executions and cache (default: as `local`)")
    _storage(p, "read")
    p.add_argument("--format", choices=["text", "json"], default="text", help="json: for scripts (default: text)")
    p.add_argument("--retry", nargs="?", const="latest", metavar="EXECUTION_ID",
                   help="plan `local --retry`: what resuming that failed execution would run")
    p.add_argument("--price", action="append", default=[], metavar="TYPE=USD",
                   help="on-demand USD per hour of an instance type (repeatable); TYPE=USD:VCPUS:BASELINE_GBPS for a "
                        "type the sizing table does not list")
    p.add_argument("--cpu-seconds-per-gb", type=float, metavar="X",
                   help="Featurize throughput you measured (benchmarks/featurize_bench.py), used when this "
                        "experiment's own reports read too little")


def _plan(args, cfg) -> int:
    from pipeline.plan.predict import run_plan

    return run_plan(cfg, args, parse_params(args.param))


def _sample_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default=".wavepipe/sample", help="folder to write")
    p.add_argument("--size", choices=["small", "medium"], default="small",
                   help="small: 24 records (the example's); medium: 120")
    p.add_argument("--seed", type=int, default=0, help="the random seed: the same seed writes the same files")


def _sample_data(args) -> int:
    from pipeline.local.sample_data import write_sample_data

    summary = write_sample_data(Path(args.out), size=args.size, seed=args.seed)
    groups = sorted({r.split("/")[0] for r in summary.records})
    print(f"wrote {len(summary.records)} records in groups {', '.join(groups)}, {len(summary.documents)} "
          f"documents, labels.sqlite and a tokenizer ({summary.bytes / 1e6:.1f} MB) to {summary.out}")
    for kind, where in sorted(summary.defects.items()):
        print(f"  defect on purpose: {kind}: {where}")
    return 0


def _init_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("dir", help="the project folder (created)")
    p.add_argument("--package", help="name of the project's Python package (default: from the folder's name)")
    p.add_argument("--force", action="store_true", help="overwrite files the project would write")
    p.add_argument("--raw", metavar="FOLDER", help="a folder of your WFDB records (no labels): the project "
                   "featurizes it (Featurize + Combine), with no package of its own")


def _init(args) -> int:
    from pipeline.project.create import InitError, init_project

    try:
        project = init_project(args.dir, package=args.package, force=args.force, raw=args.raw)
    except InitError as err:
        raise UsageError(str(err)) from None
    what = f"over the records in {args.raw}" if args.raw else f"package {project.package}"
    print(f"wrote {len(project.files)} files to {project.root} ({what}); next:\n"
          f"  cd {project.root}\n  wavepipe validate\n  wavepipe local")
    return 0


# --- deploy --------------------------------------------------------------------------------------

def _upsert_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--alias", help="point this version alias at the resulting version")
    _dry_run(p)


def _start_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--param", action="append", default=[], metavar="K=V", help="pipeline parameter value")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--version", type=int, help="pipeline version to run")
    group.add_argument("--alias", help="version alias to run")
    p.add_argument("--wait", action="store_true", help="follow the step states until the end")
    p.add_argument("--dry-run", action="store_true", help="print the AWS calls instead of making them")


def _deploy(command: str) -> Callable:
    """The handler of a deploy command of `pipeline/cli/deploy.py`."""
    def handler(args, cfg) -> int:
        from pipeline.cli import deploy

        if command == "upsert":
            return deploy.upsert(cfg, alias=args.alias, dry_run=args.dry_run)
        if command == "start":
            return deploy.start(cfg, params=parse_params(args.param), version=args.version, alias=args.alias,
                                wait=args.wait, dry_run=args.dry_run)
        if command in ("schedule", "delete"):
            return getattr(deploy, command)(cfg, dry_run=args.dry_run)
        if command == "status":
            return deploy.status(cfg, limit=args.limit)
        return deploy.versions(cfg)
    return handler


# --- operate -------------------------------------------------------------------------------------

def _where(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workdir", help="a local run's workdir (default: the config's, as `local` uses it)")
    p.add_argument("--sagemaker", action="store_true", help="the deployed pipeline's executions, not the local "
                   "ones (the default when the workdir has no local execution of this pipeline)")


def _local_workdir(args, cfg) -> Path | None:
    from pipeline.local.operations import local_workdir

    try:
        return local_workdir(cfg, args)
    except ValueError as err:
        raise UsageError(str(err)) from None


def _limit_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--limit", type=int, default=5, help="how many executions, newest first (default 5)")
    _where(p)


def _status(args, cfg) -> int:
    workdir = _local_workdir(args, cfg)
    if workdir is None:
        return _deploy("status")(args, cfg)
    from pipeline.local.operations import show_status

    return show_status(cfg, workdir, args.limit)


def _logs_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("execution", metavar="EXECUTION", nargs="?", help="execution id or ARN (default: the newest)")
    p.add_argument("step", metavar="STEP", nargs="?", help="only this step (default: every processing step)")
    p.add_argument("--follow", action="store_true", help="keep printing until the execution ends (SageMaker)")
    _where(p)


def _operate(command: str) -> Callable:
    """The handler of retry, stop and logs (`pipeline/cli/operate.py`); logs of a local
    execution where one ran (`pipeline/local/operations.py`)."""
    def handler(args, cfg) -> int:
        from pipeline.cli import operate

        if command == "logs":
            workdir = _local_workdir(args, cfg)
            if workdir is None:
                return operate.logs(cfg, args.execution, args.step, args.follow)
            from pipeline.local.operations import show_logs

            try:
                return show_logs(cfg, workdir, args.execution, args.step)
            except ValueError as err:
                raise UsageError(str(err)) from None
        return getattr(operate, command)(cfg, args.execution)
    return handler


def _report_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("execution", metavar="EXECUTION", nargs="?",
                   help="execution id or ARN (default: the newest, local where a local run happened)")
    p.add_argument("--out", help="the HTML file to write (default: report.html beside a local execution's record, "
                   "report-<execution id>.html here for SageMaker's)")
    _where(p)


def _report(args, cfg) -> int:
    from pipeline.report import write_report

    workdir = _local_workdir(args, cfg)
    return write_report(cfg, args.execution, str(workdir) if workdir else None, Path(args.out) if args.out else None)


# --- inspect -------------------------------------------------------------------------------------

def _definition_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pretty", action="store_true", help="indented, for reading (upsert sends it compact)")


def _definition(args, cfg) -> int:
    from pipeline.build.cached import cached_definition
    from pipeline.definition.model import pretty

    definition = cached_definition(cfg)
    sys.stdout.write(pretty(definition) if args.pretty else definition + "\n")
    return 0


def _validate(args, cfg) -> int:
    from pipeline.build.cached import cached_definition, cached_problems
    from pipeline.definition.validate import measure

    text = cached_definition(cfg)
    definition = json.loads(text)
    problems = cached_problems(cfg, text, _check)
    for problem in problems:
        print(f"{args.config}: {problem}", file=sys.stderr)
    if problems:
        print(f"{len(problems)} problem(s) found", file=sys.stderr)
        return 1
    print(f"{args.config}: valid ({len(definition['Steps'])} steps, "
          f"{len(definition['Parameters'])} parameters, {measure(definition).line()})")
    return 0


def _check(text: str) -> list[str]:
    from pipeline.definition.validate import check_definition

    return check_definition(json.loads(text))


def _graph_args(p: argparse.ArgumentParser) -> None:
    _out(p)
    p.add_argument("--format", choices=["mermaid", "svg"], default="mermaid",
                   help="mermaid: text for Markdown (default); svg: an image")


def _graph(args, cfg) -> int:
    from pipeline.build.cached import cached_definition
    from pipeline.definition.mermaid import mermaid
    from pipeline.definition.svg import svg

    _write((svg if args.format == "svg" else mermaid)(json.loads(cached_definition(cfg))), args.out)
    return 0


def _schema(args) -> int:
    from pipeline.config import json_schema

    _write(json.dumps(json_schema(), indent=2) + "\n", args.out)
    return 0


def _iam_policy_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--for", dest="who", choices=["role", "trust", "deployer"], default="role",
                   help="role: the pipeline role's permissions; trust: its trust policy; deployer: yours")
    p.add_argument("--format", choices=["json", "cloudformation"], default="json",
                   help="cloudformation: a template making the role (or the deployer's managed policy)")
    _out(p)


def _iam_policy(args, cfg) -> int:
    from pipeline.deploy.iam_policy import render

    try:
        text = render(cfg, args.who, args.format)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    _write(text, args.out)
    return 0


def _preflight(args, cfg) -> int:
    from pipeline.deploy.preflight import preflight

    return preflight(cfg)


VERBS = (
    Verb("local", "run locally", "run the pipeline on this machine (no AWS, no Docker)", _local_args, _local,
         example="wavepipe local                      # the nearest wavepipe.yaml's pipeline, on this machine\n"
                 "  wavepipe local --retry              # resume the newest failed execution"),
    Verb("plan", "run locally", "what `local` would run now and why (writes nothing)", _plan_args, _plan,
         example='wavepipe plan --format json'),
    Verb("sample-data", "run locally", "write the generated sample dataset", _sample_data_args, _sample_data,
         config=False,
         example='wavepipe sample-data --out /tmp/sample --size medium'),
    Verb("init", "run locally", "write a new project: a config and your own functions, tests, README", _init_args,
         _init, config=False,
         example="wavepipe init my-waves && cd my-waves && wavepipe local\n"
                 "  wavepipe init my-waves --raw ~/records   # over a folder of your WFDB records, no labels"),
    Verb("preflight", "deploy", "check the account before the first deploy (read-only calls): role, trust, "
         "permissions, quotas, bucket region, KMS key, subnets, definition limits", _none, _preflight,
         example='wavepipe preflight --config wavepipe.yaml'),
    Verb("upsert", "deploy", "create or update the pipeline (a new version only when changed)", _upsert_args,
         _deploy("upsert"),
         example='wavepipe upsert --dry-run          # the AWS calls it would make'),
    Verb("start", "deploy", "start an execution", _start_args, _deploy("start"),
         example='wavepipe start --param ExperimentName=nightly --wait'),
    Verb("schedule", "deploy", "make the EventBridge schedules match the config", _dry_run, _deploy("schedule"),
         example='wavepipe schedule --dry-run'),
    Verb("delete", "deploy", "delete the pipeline and its schedules", _dry_run, _deploy("delete"),
         example='wavepipe delete --dry-run'),
    Verb("versions", "operate", "list the pipeline's versions", _none, _deploy("versions"),
         example='wavepipe versions'),
    Verb("status", "operate", "recent executions and their step states", _limit_args, _status,
         example="wavepipe status --limit 3          # local executions where a local run happened\n"
                 "  wavepipe status --sagemaker"),
    Verb("retry", "operate", "retry a failed or stopped execution (RetryPipelineExecution)", _execution,
         _operate("retry"),
         example='wavepipe retry <execution id>'),
    Verb("stop", "operate", "stop a running execution", _execution, _operate("stop"),
         example='wavepipe stop <execution id>'),
    Verb("logs", "operate", "an execution's step logs (local, or the processing jobs' in CloudWatch)", _logs_args,
         _operate("logs"),
         example="wavepipe logs                      # every step log of the newest local execution\n"
                 "  wavepipe logs --sagemaker <execution id> Reconcile --follow"),
    Verb("gc", "operate", "list (--delete: remove) cache, shard and combined objects nothing current refers to",
         gc.arguments, gc.verb,
         example="wavepipe gc                  # what would go, and why the rest stays (a dry run)\n"
                 "  wavepipe gc --delete --grace 14d"),
    Verb("report", "operate", "a self-contained HTML report of a local or SageMaker execution", _report_args,
         _report,
         example='wavepipe report                    # the newest local execution, written beside it'),
    Verb("definition", "inspect", "print the pipeline definition JSON (offline, deterministic)", _definition_args,
         _definition,
         example='wavepipe definition --pretty | less'),
    Verb("validate", "inspect", "check config, graph and every step request (offline)", _none, _validate,
         example='wavepipe validate --config my-waves/wavepipe.yaml'),
    Verb("graph", "inspect", "write the DAG as a Mermaid diagram or an SVG image", _graph_args, _graph,
         example='wavepipe graph --format svg --out dag.svg'),
    Verb("schema", "inspect", "write the config JSON Schema (for editors)", _out, _schema, config=False,
         example='wavepipe schema --out config/schema.json'),
    Verb("iam-policy", "inspect", "least-privilege IAM policy for this config (offline)", _iam_policy_args,
         _iam_policy,
         example='wavepipe iam-policy --for role --format cloudformation --out role.yaml'),
)
