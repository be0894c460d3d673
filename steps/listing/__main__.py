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
    p.add_argument(c.ARG_TARGET_SHARD_BYTES, type=int, help="macroshards: auto. Split what is listed (the "
                   "prefixes, or the whole source) by bytes into shards of whole folders, about this many bytes each "
                   "(a power of two of them).")
    p.add_argument(c.ARG_PREFIX, nargs="*", default=[], metavar="NAME=PREFIX",
                   help="A shard name and its key prefix under --source-uri, in shard order (one shard each, "
                   f"or with {c.ARG_TARGET_SHARD_BYTES} what is listed).")
    p.add_argument(c.ARG_RECORD_CACHE, default=None, metavar="URI", help="The record cache Featurize fills: "
                   "folders it holds are not featurized again (tonight's work is what it lacks).")
    return p


def _run(args: argparse.Namespace, settings: ListingSettings) -> None:
    from steps.listing.run import parse_prefixes, run_listing

    try:
        if not args.prefix and args.target_shard_bytes is None:
            raise BadInput(f"give {c.ARG_PREFIX} NAME=PREFIX ..., or {c.ARG_TARGET_SHARD_BYTES}")
        report = run_listing(settings, args.source_uri, args.experiment_uri, parse_prefixes(args.prefix), args.output,
                             target_shard_bytes=args.target_shard_bytes, record_cache=args.record_cache)
    except ValueError as err:  # a URI that is no s3:// URI
        raise BadInput(str(err)) from None
    print(json.dumps({k: report[k] for k in ("objects_listed", "folders_total", "folders_todo", "work_shards", "seconds")}))


def main(argv: list[str] | None = None) -> int:
    return run_stage("listing", parser(), ListingSettings, _run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
