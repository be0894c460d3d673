"""`python -m steps.featurize --input DIR --output DIR [--jobs N] [--shard NAME] [--settings F]`.

Exit codes: 0 ok; 1 the shard ran but more records failed than `max_error_fraction` allows
(outputs are still written); 2 bad arguments, settings or input.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from steps.featurize.settings import FeaturizeSettings
from steps.settings_file import load_settings


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m steps.featurize",
        description="Summarise every WFDB record under --input (one macroshard) into features.parquet, "
        "errors.parquet and report.json under --output.",
    )
    parser.add_argument("--input", required=True, type=Path, help="Folder holding the shard's WFDB files (any layout).")
    parser.add_argument("--output", required=True, type=Path, help="Folder for features.parquet, errors.parquet, "
                        "report.json and progress.json.")
    parser.add_argument("--jobs", type=int, default=None, help="Worker processes (default: settings.jobs, else every vCPU).")
    parser.add_argument("--shard", default="", help="Macroshard name, recorded in the report and used as the "
                        "group of records whose folder does not reveal one.")
    parser.add_argument("--settings", type=Path, default=None, help="JSON file validated by FeaturizeSettings "
                        "(the config's stages.featurize section); defaults apply without it.")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on bad arguments, 0 on --help
        return int(exc.code or 0)
    from steps.featurize.run import featurize
    from steps.featurize.settings import load_function

    try:
        settings = load_settings(FeaturizeSettings, args.settings)
        load_function(settings.feature_function)
    except ValueError as err:
        print(f"featurize: {err}", file=sys.stderr)
        return 2
    if args.jobs is not None and args.jobs < 1:
        print("featurize: --jobs must be at least 1", file=sys.stderr)
        return 2
    if not args.input.is_dir():
        print(f"featurize: input folder {args.input} does not exist", file=sys.stderr)
        return 2
    report = featurize(args.input, args.output, settings, jobs=args.jobs, shard=args.shard)
    print(json.dumps({k: report[k] for k in ("records_total", "records_ok", "records_failed", "rows", "seconds")}))
    if report["records_total"] == 0:
        print(f"featurize: no WFDB record found under {args.input}", file=sys.stderr)
        return 2
    if report["status"] != "ok":
        print(f"featurize: {report['records_failed']}/{report['records_total']} records failed, more than "
              f"max_error_fraction={settings.max_error_fraction}; see errors.parquet", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
