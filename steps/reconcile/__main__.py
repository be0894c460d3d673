"""`python -m steps.reconcile`: parse arguments, read settings, run the stage, exit 0/1/2."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from pydantic import ValidationError

from steps.reconcile.labels import parse_sql_params
from steps.reconcile.run import BadInput, StageFailed, reconcile
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


def load_settings(path: Path | None) -> ReconcileSettings:
    if path is None:
        return ReconcileSettings()
    try:
        return ReconcileSettings.model_validate(json.loads(path.read_text()))
    except (OSError, json.JSONDecodeError) as err:
        raise BadInput(f"cannot read settings {path}: {err}") from None
    except ValidationError as err:
        # Key path and message only: an input value may hold a secret (e.g. a URL with a password).
        lines = [f"  {'.'.join(map(str, e['loc'])) or '(top)'}: {e['msg']}" for e in err.errors(include_input=False)]
        raise BadInput(f"invalid settings in {path}:\n" + "\n".join(lines)) from None


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        args = parser().parse_args(argv)
    except SystemExit as exit_:
        return 0 if exit_.code == 0 else 2
    try:
        settings = load_settings(args.settings)
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
