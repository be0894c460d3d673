"""`python -m steps.listing --source-uri URI --experiment-uri URI --output DIR --prefix NAME=PREFIX ...`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from steps import contract as c
from steps.entry import BadInput, run_stage, stage_parser
from steps.listing.settings import ListingSettings


def parser() -> argparse.ArgumentParser:
    p = stage_parser("listing", "List each prefix under --source-uri and publish its files as a content-addressed "
                     f"shard under <experiment-uri>/{c.SHARDS_FOLDER}/; {c.REPORT_FILE} lists the shards.",
                     ListingSettings)
    p.add_argument(c.ARG_SOURCE_URI, required=True, help="s3:// folder holding the prefixes (the InputUri).")
    p.add_argument(c.ARG_EXPERIMENT_URI, required=True, help="s3:// folder under which the shards are published.")
    p.add_argument(c.ARG_OUTPUT, required=True, type=Path, help=f"Local folder for {c.REPORT_FILE}.")
    p.add_argument(c.ARG_PREFIX, nargs="+", required=True, metavar="NAME=PREFIX",
                   help="A shard name and its key prefix under --source-uri, in shard order.")
    return p


def _run(args: argparse.Namespace, settings: ListingSettings) -> None:
    from steps.listing.run import parse_prefixes, run_listing

    try:
        report = run_listing(settings, args.source_uri, args.experiment_uri, parse_prefixes(args.prefix), args.output)
    except ValueError as err:  # a URI that is no s3:// URI
        raise BadInput(str(err)) from None
    print(json.dumps({k: report[k] for k in ("objects_listed", "seconds")}))


def main(argv: list[str] | None = None) -> int:
    return run_stage("listing", parser(), ListingSettings, _run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
