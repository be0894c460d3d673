"""`deploy.py report`: one execution (local or SageMaker) as a self-contained HTML page."""

from __future__ import annotations

import sys
from pathlib import Path

from pipeline.config import Config


def write_report(cfg: Config, execution: str | None, workdir: str | None, out: Path | None = None) -> int:
    """With `workdir`, a local run's execution; otherwise the deployed pipeline's (AWS calls).
    Without `out`: `report.html` beside a local execution's record, `report-<id>.html` here."""
    from pipeline.report.facts import gather
    from pipeline.report.html import render

    if workdir:
        from pipeline.report.sources import local_execution

        try:
            found = local_execution(cfg, Path(workdir), execution)
        except LookupError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    else:
        from pipeline.deploy import clients
        from pipeline.cli.deploy import _run
        from pipeline.report.sources import sagemaker_execution

        holder = {}

        def action() -> int:
            holder["execution"] = sagemaker_execution(cfg, clients.connect(cfg.aws.region), execution)
            return 0

        if _run(action):
            return 1
        found = holder["execution"]
    if out is None:
        out = Path(workdir) / "executions" / found.id / "report.html" if workdir else Path(f"report-{found.id}.html")
    out.write_text(render(found, gather(found, cfg.registry)))
    print(f"wrote {out} (execution {found.id}, {found.status}, {len(found.steps)} steps)")
    return 0
