"""`status`, `logs` and `report` on local executions: where a local run happened (the workdir of
the config in use, or `--workdir`), these read its execution records instead of SageMaker's.
`--sagemaker` (or a workdir with no execution of this pipeline) means the deployed pipeline."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pipeline.config import Config
from pipeline.local.state import ExecutionStore

DEFAULT_WORKDIR = ".wavepipe"


def workdir_of(cfg: Config, given: str | None) -> Path:
    """The workdir `local` would use: `--workdir`, else local.workdir (relative to the config file)."""
    return Path(given or cfg.local.workdir or DEFAULT_WORKDIR)


def records(cfg: Config, workdir: Path) -> list[dict]:
    """This pipeline's local executions in `workdir`, newest first."""
    return ExecutionStore(workdir / "executions").records(cfg.pipeline.name)


def local_workdir(cfg: Config, args) -> Path | None:
    """The workdir whose executions a command reads, or None for SageMaker's: `--sagemaker`
    says SageMaker; otherwise local when this pipeline ran there (said on stderr, with how to
    ask for SageMaker). `--workdir` naming a folder with no execution is an error (ValueError)."""
    if getattr(args, "sagemaker", False):
        return None
    workdir = workdir_of(cfg, args.workdir)
    if records(cfg, workdir):
        print(f"local executions of {cfg.pipeline.name} in {workdir} (--sagemaker: the deployed pipeline's)",
              file=sys.stderr)
        return workdir
    if args.workdir:
        raise ValueError(f"--workdir {args.workdir}: no local execution of {cfg.pipeline.name} there")
    return None


def _find(cfg: Config, workdir: Path, execution: str | None) -> dict:
    found = records(cfg, workdir)
    if execution:
        found = [r for r in found if r["ExecutionId"] == execution.rsplit("/", 1)[-1]]
    if not found:
        raise ValueError(f"execution {execution} not found under {workdir / 'executions'}")
    return found[0]


def step_line(name: str, info: dict) -> str:
    reason = f": {info['Reason']}" if info.get("Reason") else ""
    return f"{name}: {info.get('State', 'Pending')}{reason}"


def _in_step_order(workdir: Path, record: dict) -> list[str]:
    """The record's steps in the order of the definition it ran (kept beside the record; the
    record's own order is by name), or as recorded when an older run kept no definition."""
    from pipeline.definition.model import step_order
    from pipeline.local.runner import DEFINITION_FILE

    names = list(record.get("Steps", {}))
    try:
        definition = json.loads((ExecutionStore(workdir / "executions").folder(record["ExecutionId"])
                                 / DEFINITION_FILE).read_text())
    except (OSError, ValueError):
        return names
    return step_order(definition, names)


def show_status(cfg: Config, workdir: Path, limit: int) -> int:
    """The `limit` newest local executions with their step states in the pipeline's step order,
    as `status` shows SageMaker's."""
    for record in records(cfg, workdir)[:limit]:
        print(f"{record['ExecutionId']}  {record.get('Status', '?')}  started {record.get('Started', '-')}")
        for name in _in_step_order(workdir, record):
            print("  " + step_line(name, record["Steps"][name]))
    return 0


def show_logs(cfg: Config, workdir: Path, execution: str | None, step: str | None) -> int:
    """Every step log of a local execution (default: the newest), `[<step>] <line>`, step by
    step in the pipeline's order."""
    record = _find(cfg, workdir, execution)
    steps = record.get("Steps", {})
    if step and step not in steps:
        raise ValueError(f"execution {record['ExecutionId']} has no step {step!r}: {', '.join(steps)}")
    for name in _in_step_order(workdir, record):
        info = steps[name]
        log = Path(info["Log"]) if info.get("Log") else None
        if step in (None, name) and log is not None and log.is_file():
            for line in log.read_text(errors="replace").splitlines():
                print(f"[{name}] {line}")
    return 0
