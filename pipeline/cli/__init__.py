"""`python deploy.py <command>` (or `wavepipe <command>`): the command line. Parsing and exit codes
only; each command's work is in its own module."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pipeline.cli import ops as ops_cli
from pipeline.config import ConfigError, json_schema, load_config

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = str(ROOT / "config" / "example.yaml")


def _config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default=DEFAULT_CONFIG, help="pipeline YAML (default: config/example.yaml)")
    p.add_argument("--env", help="overlay config/env/<ENV>.yaml beside the config file")
    p.add_argument("--overlay", action="append", default=[], help="another overlay YAML (repeatable)")


class UsageError(Exception):
    """A bad command-line value; exit code 2 like a config error."""


def parse_params(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--param expects KEY=VALUE, got {item!r}")
        out[key] = value
    return out


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="deploy.py",
        description="Build, check, run and deploy a wavepipe pipeline: one YAML config becomes a SageMaker "
                    "Pipelines DAG (Reconcile, Featurize per macroshard, Combine, Encode). Start with "
                    "`deploy.py local`, which runs the example on this machine with no AWS and no Docker.",
        epilog="Exit codes: 0 ok, 1 a step or check failed, 2 a bad config or command line. "
               "Each command has its own --help.",
    )
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("definition", help="print the pipeline definition JSON (offline, deterministic)")
    _config_args(p)
    p.add_argument("--pretty", action="store_true", help="indented, for reading (upsert sends it compact)")
    p = sub.add_parser("validate", help="check config, graph and every step request (offline)")
    _config_args(p)
    p = sub.add_parser("graph", help="write the DAG as a Mermaid diagram or an SVG image")
    _config_args(p)
    p.add_argument("--out", help="file to write (default: stdout)")
    p.add_argument("--format", choices=["mermaid", "svg"], default="mermaid")
    p = sub.add_parser("schema", help="write the config JSON Schema (for editors)")
    p.add_argument("--out", help="file to write (default: stdout)")

    p = sub.add_parser("init", help="write a new project: a config and your own functions, tests, README")
    p.add_argument("dir", help="the project folder (created)")
    p.add_argument("--package", help="name of the project's Python package (default: from the folder's name)")
    p.add_argument("--force", action="store_true", help="overwrite files the project would write")

    p = sub.add_parser("local", help="run the pipeline on this machine (no AWS, no Docker)")
    _config_args(p)
    p.add_argument("--workdir", help="local storage, sandboxes, logs, cache (default: local.workdir of the "
                   "config, `.wavepipe` beside the config file)")
    p.add_argument("--param", action="append", default=[], metavar="K=V", help="pipeline parameter value")
    p.add_argument("--s3-endpoint", help="read and write this S3 API endpoint instead of <workdir>/s3")
    p.add_argument("--s3", choices=["local", "aws"], default="local", help="aws: your real S3 with your credentials")
    p.add_argument("--only", action="append", default=[], metavar="STEP", help="run only these steps")
    p.add_argument("--no-cache", action="store_true", help="ignore earlier local results")
    p.add_argument("--retry", nargs="?", const="latest", metavar="EXECUTION_ID",
                   help="resume a failed execution (default: the newest) with the inputs it read, as SageMaker's "
                        "RetryPipelineExecution; without it every run is a new execution")
    p.add_argument("--max-parallel", type=int, help="at most N steps at once (default: max_parallel_steps)")
    p.add_argument("--install-requirements", action="store_true",
                   help="run the jobs' install path: build the wheelhouse, install it offline into a virtual "
                        "environment of the image's Python (made once per wheelhouse) and run the steps there")
    p = sub.add_parser("plan", help="what `local` would run now and why (writes nothing)")
    _config_args(p)
    p.add_argument("--workdir", help="the local run's storage, executions and cache (default: as `local`)")
    p.add_argument("--param", action="append", default=[], metavar="K=V", help="pipeline parameter value")
    p.add_argument("--s3-endpoint", help="read this S3 API endpoint instead of <workdir>/s3")
    p.add_argument("--s3", choices=["local", "aws"], default="local", help="aws: your real S3 with your credentials")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.add_argument("--price", action="append", default=[], metavar="TYPE=USD",
                   help="on-demand USD per hour of an instance type (repeatable); TYPE=USD:VCPUS:BASELINE_GBPS for a "
                        "type the sizing table does not list")
    p.add_argument("--cpu-seconds-per-gb", type=float, metavar="X",
                   help="Featurize throughput you measured (benchmarks/featurize_bench.py), used when this "
                        "experiment's own reports read too little")
    p = sub.add_parser("sample-data", help="write the generated sample dataset")
    p.add_argument("--out", default=".wavepipe/sample", help="folder to write")
    p.add_argument("--size", choices=["small", "medium"], default="small")
    p.add_argument("--seed", type=int, default=0)

    p = sub.add_parser("upsert", help="create or update the pipeline (a new version only when changed)")
    _config_args(p)
    p.add_argument("--alias", help="point this version alias at the resulting version")
    p.add_argument("--dry-run", action="store_true", help="print the AWS calls instead of making them")
    p = sub.add_parser("start", help="start an execution")
    _config_args(p)
    p.add_argument("--param", action="append", default=[], metavar="K=V")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--version", type=int, help="pipeline version to run")
    group.add_argument("--alias", help="version alias to run")
    p.add_argument("--wait", action="store_true", help="follow the step states until the end")
    p.add_argument("--dry-run", action="store_true")
    p = sub.add_parser("schedule", help="make the EventBridge schedules match the config")
    _config_args(p)
    p.add_argument("--dry-run", action="store_true")
    p = sub.add_parser("versions", help="list the pipeline's versions")
    _config_args(p)
    p = sub.add_parser("status", help="recent executions and their step states")
    _config_args(p)
    p.add_argument("--limit", type=int, default=5)
    p = sub.add_parser("delete", help="delete the pipeline and its schedules")
    _config_args(p)
    p.add_argument("--dry-run", action="store_true")
    ops_cli.add_parsers(sub, _config_args)
    return ap


def _load(args):
    return load_config(args.config, env=args.env, overlays=args.overlay)


def _write(text: str, out: str | None) -> None:
    if out:
        Path(out).write_text(text)
    else:
        sys.stdout.write(text)


def _init(args) -> int:
    from pipeline.project.create import InitError, init_project

    try:
        project = init_project(args.dir, package=args.package, force=args.force)
    except InitError as err:
        raise UsageError(str(err)) from None
    print(f"wrote {len(project.files)} files to {project.root} (package {project.package}); next:\n"
          f"  wavepipe validate --config {project.config}\n  wavepipe local --config {project.config}")
    return 0


def run(args) -> int:
    cmd = args.command
    if cmd == "schema":
        _write(json.dumps(json_schema(), indent=2) + "\n", args.out)
        return 0
    if cmd == "sample-data":
        from pipeline.local.sample_data import write_sample_data

        summary = write_sample_data(Path(args.out), size=args.size, seed=args.seed)
        groups = sorted({r.split("/")[0] for r in summary.records})
        print(f"wrote {len(summary.records)} records in groups {', '.join(groups)}, {len(summary.documents)} "
              f"documents, labels.sqlite and a tokenizer ({summary.bytes / 1e6:.1f} MB) to {summary.out}")
        for kind, where in sorted(summary.defects.items()):
            print(f"  defect on purpose: {kind}: {where}")
        return 0
    if cmd == "init":
        return _init(args)
    cfg = _load(args)
    if cmd in ("definition", "validate", "graph"):
        from pipeline.build.compose import build

        built = build(cfg)
        if cmd == "definition":
            from pipeline.definition.model import pretty

            sys.stdout.write(pretty(built.definition) if args.pretty else built.definition + "\n")
            return 0
        definition = json.loads(built.definition)
        if cmd == "graph":
            from pipeline.definition.mermaid import mermaid
            from pipeline.definition.svg import svg

            _write((svg if args.format == "svg" else mermaid)(definition), args.out)
            return 0
        from pipeline.definition.validate import check_definition

        problems = check_definition(definition)
        for problem in problems:
            print(f"{args.config}: {problem}", file=sys.stderr)
        if problems:
            print(f"{len(problems)} problem(s) found", file=sys.stderr)
            return 1
        from pipeline.definition.validate import measure

        print(f"{args.config}: valid ({len(definition['Steps'])} steps, "
              f"{len(definition['Parameters'])} parameters, {measure(definition).line()})")
        return 0
    if cmd in ops_cli.COMMANDS:
        return ops_cli.run(args, cfg)
    if cmd == "local":
        from pipeline.local.command import run_local

        return run_local(cfg, args, parse_params(args.param))
    if cmd == "plan":
        from pipeline.plan.predict import run_plan

        return run_plan(cfg, args, parse_params(args.param))
    from pipeline.cli import deploy as commands

    if cmd == "upsert":
        return commands.upsert(cfg, alias=args.alias, dry_run=args.dry_run)
    if cmd == "start":
        return commands.start(cfg, params=parse_params(args.param), version=args.version,
                              alias=args.alias, wait=args.wait, dry_run=args.dry_run)
    if cmd == "schedule":
        return commands.schedule(cfg, dry_run=args.dry_run)
    if cmd == "versions":
        return commands.versions(cfg)
    if cmd == "status":
        return commands.status(cfg, limit=args.limit)
    if cmd == "delete":
        return commands.delete(cfg, dry_run=args.dry_run)
    raise AssertionError(cmd)


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
