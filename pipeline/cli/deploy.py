"""The deploy commands of `pipeline/cli/verbs.py`: each prints what it did and returns an exit code.

AWS failures become one `error: <Operation> on <resource>: <Code>: <message>` line on stderr
and exit 1; bad input (unknown parameters) exits 2. `--dry-run` prints the changing calls and
makes none; it still reads (describe/list/get/head) to print the real plan.
"""

from __future__ import annotations

import sys
from typing import Callable

from pipeline.config import Config
from pipeline.deploy import clients, executions, pipelines, schedules, versions as pipeline_versions
from pipeline.deploy.errors import DeployError
from pipeline.deploy.provenance import provenance


def _run(action: Callable[[], int]) -> int:
    try:
        return action()
    except DeployError as err:
        sys.stdout.flush()
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code


def upsert(cfg: Config, alias: str | None = None, dry_run: bool = False) -> int:
    """Upload the assets, then create or update the pipeline (a new version only on change)."""
    def action() -> int:
        from pipeline.build.compose import build
        from pipeline.deploy import wheel_upload as wheelhouse

        built = build(cfg)
        checked(built.definition)
        aws = clients.connect(cfg.aws.region, dry_run)
        wheels = None if built.wheelhouse is None else \
            (lambda: wheelhouse.ensure(aws, built.wheelhouse, built.wheelhouse_uri, cfg.aws.kms_key_id))
        pipelines.upsert(aws, cfg, built.definition, built.assets.files,
                         provenance(cfg, built.assets.code_hash), alias, then_upload=wheels)
        return 0
    return _run(action)


def checked(definition: str) -> None:
    """`validate`'s checks of the definition, before anything is uploaded: a definition the
    service would refuse (over 1 MiB, a bad request shape) is not deployed."""
    import json

    from pipeline.definition.validate import check_definition, measure

    parsed = json.loads(definition)
    problems = check_definition(parsed)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if problems:
        raise DeployError(f"{len(problems)} problem(s) in the definition (see `deploy.py validate`); nothing deployed")
    print(f"definition: {measure(parsed).line()}")


def start(cfg: Config, params: dict[str, str], version: int | None = None, alias: str | None = None,
          wait: bool = False, dry_run: bool = False) -> int:
    """Start an execution; with `wait`, follow its steps and exit non-zero unless it succeeded."""
    def action() -> int:
        aws = clients.connect(cfg.aws.region, dry_run)
        arn = executions.start(aws, cfg, params, version, alias)
        if not wait or arn is None:
            return 0
        return 0 if executions.follow(aws, arn) == "Succeeded" else 1
    return _run(action)


def schedule(cfg: Config, dry_run: bool = False) -> int:
    """Make the pipeline's EventBridge Scheduler schedules equal `cfg.schedules`."""
    def action() -> int:
        aws = clients.connect(cfg.aws.region, dry_run)
        counts = schedules.sync(aws, cfg)
        aws.echo(("plan: " if dry_run else "") + ", ".join(f"{n} {k}" for k, n in counts.items()))
        return 0
    return _run(action)


def versions(cfg: Config) -> int:
    """List the pipeline's versions with their display names, descriptions and aliases."""
    def action() -> int:
        aws = clients.connect(cfg.aws.region)
        pipelines.pipeline_arn(aws, cfg.pipeline.name)  # a clear error when there is no pipeline
        pipeline_versions.show_versions(aws, cfg.pipeline.name)
        return 0
    return _run(action)


def status(cfg: Config, limit: int = 5) -> int:
    """Recent executions and their step states."""
    def action() -> int:
        aws = clients.connect(cfg.aws.region)
        pipelines.pipeline_arn(aws, cfg.pipeline.name)
        executions.show_status(aws, cfg, limit)
        return 0
    return _run(action)


def delete(cfg: Config, dry_run: bool = False) -> int:
    """Delete the pipeline's schedules first (none may outlive it), then the pipeline."""
    def action() -> int:
        aws = clients.connect(cfg.aws.region, dry_run)
        current = pipelines.describe(aws, cfg.pipeline.name)
        schedules.delete_all(aws, cfg, current["PipelineArn"] if current else None)
        if current is None:
            aws.echo(f"pipeline {cfg.pipeline.name} does not exist")
        else:
            pipelines.delete(aws, cfg.pipeline.name)
        return 0
    return _run(action)
