"""`python -m steps.reconcile`: parse arguments, read settings, run the stage, exit 0/1/2."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from steps.reconcile.labels import parse_sql_params
from steps.reconcile.run import BadInput, StageFailed, reconcile
from steps.reconcile.settings import ReconcileSettings
from steps.settings_file import load_settings

log = logging.getLogger("steps.reconcile")


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m steps.reconcile",
        description="Join labels from SQL with raw files under --source-uri, drop duplicates, copy the "
        "artifacts into <experiment-uri>/data/reconciled_artifacts/, validate and repair them, and "
        "write labels, per-shard manifests and a report. Exit 0 ok, 1 the stage failed, 2 bad "
        "arguments, settings or inputs.",
    )
    p.add_argument("--source-uri", required=True, help="s3:// prefix of the production files (one folder per artifact).")
    p.add_argument("--experiment-uri", required=True, help="s3:// folder of the experiment; artifacts are copied under data/reconciled_artifacts/.")
    p.add_argument("--output", required=True, type=Path, help="Local folder for report.json, labels.parquet, unique_labels_and_counts.json, manifests/.")
    p.add_argument("--manifests", type=Path, help="Local folder for the shard manifests (default: <output>/manifests).")
    p.add_argument("--macroshards", type=int, default=1, help="How many macroshards (manifests shard-0001..) to balance the artifacts over (default 1).")
    p.add_argument("--reload", type=_bool, default=None, help="true: copy again even identical files (default: the settings' reload).")
    p.add_argument("--sql-param", action="append", default=[], metavar="NAME=VALUE", help="A bound parameter of the labels query (repeatable), e.g. experiment_name=exp1.")
    p.add_argument("--settings", type=Path, help="JSON file validated by ReconcileSettings (default: all defaults).")
    return p


def read_settings(path: Path | None) -> ReconcileSettings:
    try:
        return load_settings(ReconcileSettings, path)
    except ValueError as err:
        raise BadInput(str(err)) from None


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        args = parser().parse_args(argv)
    except SystemExit as exit_:
        return 0 if exit_.code == 0 else 2
    try:
        settings = read_settings(args.settings)
        try:
            params = parse_sql_params(args.sql_param)
        except ValueError as err:
            raise BadInput(str(err)) from None
        report = reconcile(settings, args.source_uri, args.experiment_uri, args.output,
                           macroshards=args.macroshards, reload=args.reload, sql_params=params,
                           manifests=args.manifests)
    except BadInput as err:
        log.error("%s", err)
        return 2
    except StageFailed as err:
        log.error("reconcile failed: %s", err)
        return 1
    log.info("reconcile done: %s", json.dumps({k: v for k, v in report.items() if not isinstance(v, list)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
