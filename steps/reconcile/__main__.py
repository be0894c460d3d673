"""`python -m steps.reconcile`: parse arguments, read settings, run the stage, exit 0/1/2."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from steps import contract as c
from steps.entry import BadInput, run_stage, stage_parser
from steps.reconcile.labels import parse_sql_params
from steps.reconcile.run import reconcile
from steps.reconcile.settings import ReconcileSettings

log = logging.getLogger("steps.reconcile")


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def parser() -> argparse.ArgumentParser:
    p = stage_parser(
        "reconcile",
        "Join labels from SQL with raw files under --source-uri, drop duplicates, copy the artifacts into "
        f"<experiment-uri>/{c.RECONCILED_ARTIFACTS}/, validate and repair them, and write labels, per-shard "
        "manifests and a report.",
        ReconcileSettings,
    )
    p.add_argument(c.ARG_SOURCE_URI, required=True, help="s3:// prefix of the production files (one folder per artifact).")
    p.add_argument(c.ARG_EXPERIMENT_URI, required=True, help="s3:// folder of the experiment; artifacts are copied "
                   f"under {c.RECONCILED_ARTIFACTS}/.")
    p.add_argument(c.ARG_OUTPUT, required=True, type=Path, help=f"Local folder for {c.REPORT_FILE}, {c.LABELS_FILE}, "
                   f"{c.UNIQUE_LABELS_FILE}, manifests/.")
    p.add_argument(c.ARG_MANIFESTS, type=Path, help="Local folder for the shard manifests (default: <output>/manifests).")
    p.add_argument(c.ARG_MACROSHARDS, type=int, default=1, help="How many macroshards (manifests shard-0001..) to "
                   "balance the artifacts over (default 1).")
    p.add_argument(c.ARG_TARGET_SHARD_BYTES, type=int, help="macroshards: auto. Decide the count from the bytes "
                   f"found: about this many per shard, a power of two (overrides {c.ARG_MACROSHARDS}).")
    p.add_argument(c.ARG_RELOAD, type=_bool, default=False, help="true: copy again even identical files (default false).")
    p.add_argument(c.ARG_SQL_PARAM, action="append", default=[], metavar="NAME=VALUE",
                   help="A bound parameter of the labels query (repeatable), e.g. experiment_name=exp1.")
    p.add_argument(c.ARG_RECORD_CACHE, default=None, metavar="URI", help="The record cache Featurize fills: "
                   "folders it holds are not featurized again (tonight's work is what it lacks).")
    return p


def _run(args: argparse.Namespace, settings: ReconcileSettings) -> None:
    try:
        params = parse_sql_params(args.sql_param)
    except ValueError as err:
        raise BadInput(str(err)) from None
    report = reconcile(settings, args.source_uri, args.experiment_uri, args.output,
                       macroshards=args.macroshards, target_shard_bytes=args.target_shard_bytes, reload=args.reload, sql_params=params,
                       manifests=args.manifests, record_cache=args.record_cache)
    log.info("reconcile done: %s", json.dumps({k: v for k, v in report.items() if not isinstance(v, list)}))


def main(argv: list[str] | None = None) -> int:
    return run_stage("reconcile", parser(), ReconcileSettings, _run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
