"""`python -m steps.featurize (--input DIR | --manifest F --index F) --output DIR [--jobs N] [--shard NAME | --shard-file F]
[--settings F]`.

`--input`: the shard's files staged by SageMaker (`read_mode: download`). `--manifest`: only the
shard's manifest was staged (`read_mode: stream`); the workers fetch the records themselves, and
with several instances each takes its share (`/opt/ml/config/resourceconfig.json`).

The shard's name is `--shard` (a counted shard's step), or read from `--shard-file`, the
`shard.json` its place holds (a ForEach iteration, whose only item is the place).

Exit codes: 0 ok; 1 the shard ran but more records failed than `max_error_fraction` allows
(outputs are still written); 2 bad arguments, settings or input.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from steps import contract as c
from steps.entry import BadInput, StageFailed, run_stage, stage_parser
from steps.featurize.settings import FeaturizeSettings


def parser() -> argparse.ArgumentParser:
    p = stage_parser("featurize", f"Summarise every WFDB record under --input (one macroshard) into "
                     f"{c.FEATURES_FILE}, {c.ERRORS_FILE} and {c.REPORT_FILE} under --output.", FeaturizeSettings)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument(c.ARG_INPUT, type=Path, help="Folder holding the shard's WFDB files (any layout).")
    source.add_argument(c.ARG_MANIFEST, type=Path, help=f"The shard's {c.MANIFEST_SUFFIX} file (read_mode stream, "
                        f"with {c.ARG_INDEX}): its records are fetched from S3 by the workers.")
    p.add_argument(c.ARG_OUTPUT, required=True, type=Path, help=f"Folder for {c.FEATURES_FILE}, {c.ERRORS_FILE}, "
                   f"{c.REPORT_FILE} and {c.PROGRESS_FILE}.")
    p.add_argument(c.ARG_JOBS, type=int, default=None, help="Worker processes (default: settings.jobs, else every vCPU).")
    name = p.add_mutually_exclusive_group()
    name.add_argument(c.ARG_SHARD, default="", help="Macroshard name, recorded in the report and used as the "
                      "group of records whose folder does not reveal one.")
    name.add_argument(c.ARG_SHARD_FILE, type=Path, default=None, help=f"The shard's {c.SHARD_FILE} (published at "
                      f"its place, {{\"{c.SHARD_FILE_KEY}\": NAME}}): the name, for a job given only the place.")
    p.add_argument(c.ARG_INDEX, type=Path, default=None, help=f"The shard's {c.INDEX_FILE} (each file's size and "
                   "ETag), which keys the record cache without reading the files.")
    p.add_argument(c.ARG_HOSTS, type=int, default=1, help="How many instances the job was built for (default 1); "
                   "the resource config must agree.")
    p.add_argument(c.ARG_RECORD_CACHE, default=None, metavar="URI", help="s3:// prefix of the per-record feature "
                   "cache: unchanged records reuse their rows from there, featurized ones are added.")
    return p


def read_shard_file(path: Path) -> tuple[str, dict[str, dict] | None]:
    """The shard's name and, a work shard's, its folders (folder -> {"key", "shard"}) from its
    place's `shard.json`; BadInput naming the file when it holds neither properly."""
    try:
        body = json.loads(Path(path).read_text())
        name = body.get(c.SHARD_FILE_KEY)
    except (OSError, ValueError, AttributeError) as err:
        raise BadInput(f"{c.ARG_SHARD_FILE} {path}: no shard name ({err})") from None
    if not isinstance(name, str) or not name:
        raise BadInput(f"{c.ARG_SHARD_FILE} {path}: no shard name (expected {{\"{c.SHARD_FILE_KEY}\": NAME}})")
    folders = body.get(c.SHARD_FILE_FOLDERS)
    if folders is None:
        return name, None
    if not isinstance(folders, dict) or not all(
            isinstance(v, dict) and isinstance(v.get("key"), str) and isinstance(v.get("shard"), str)
            for v in folders.values()):
        raise BadInput(f"{c.ARG_SHARD_FILE} {path}: {c.SHARD_FILE_FOLDERS!r} must map each folder to "
                       "{\"key\": FOLDER KEY, \"shard\": MACROSHARD}")
    return name, folders


def shard_name(path: Path) -> str:
    """The shard's name from its place's `shard.json`; BadInput when it holds none."""
    return read_shard_file(path)[0]


def _run(args: argparse.Namespace, settings: FeaturizeSettings) -> None:
    from steps.featurize.settings import load_function

    args.work = None
    if args.shard_file is not None:
        args.shard, args.work = read_shard_file(args.shard_file)
    try:
        load_function(settings.feature_function)
    except ValueError as err:
        raise BadInput(str(err)) from None
    if args.jobs is not None and args.jobs < 1:
        raise BadInput("--jobs must be at least 1")
    report = _streamed(args, settings) if args.manifest is not None else _downloaded(args, settings)
    print(json.dumps({k: report[k] for k in ("records_total", "records_featurized", "records_reused", "records_ok",
                                             "records_failed", "rows", "seconds")}))
    # One of several hosts may get no record, and a work shard may be empty (nothing missing).
    if report["records_total"] == 0 and not report.get("hosts") and args.work is None:
        raise BadInput(f"no WFDB record found under {args.input or args.manifest}")
    if report["status"] != "ok" and not report.get("hosts"):
        # With several hosts the error fraction is the shard's, not one host's share: Combine
        # decides it when it merges the hosts' outputs (steps/combine/hosts.py).
        raise StageFailed(failure_line(report, settings.max_error_fraction, args.output / c.ERRORS_FILE))


def failure_line(report: dict, limit: float, errors: Path) -> str:
    """`7/10 records failed (max_error_fraction 0.5); most common: read_error (6 records: ...); every
    error: <errors.parquet>`: why the shard failed, in the first line a reader sees."""
    top = report.get(c.REPORT_TOP_ERROR)
    records = f"{top['records']} record{'s' if top['records'] != 1 else ''}" if top else ""
    common = f"; most common: {top['kind']} ({records}, e.g. {top['example']})" if top else ""
    return (f"{report['records_failed']}/{report['records_total']} records failed, more than max_error_fraction="
            f"{limit}{common}; every error, one row per record: {errors}")


def _downloaded(args: argparse.Namespace, settings: FeaturizeSettings) -> dict:
    from steps.featurize.run import featurize
    from steps.featurize.stream import current_hosts

    try:
        several = current_hosts().count > 1
    except ValueError as err:
        raise BadInput(str(err)) from None
    if several:
        raise BadInput("this job runs on several instances, but with read_mode download each would featurize the "
                       "whole shard; set stages.featurize.read_mode: stream (or instance_count: 1)")
    if not args.input.is_dir():
        raise BadInput(f"input folder {args.input} does not exist")
    return featurize(args.input, args.output, settings, jobs=args.jobs, shard=args.shard, work=args.work,
                     record_cache=args.record_cache)


def _streamed(args: argparse.Namespace, settings: FeaturizeSettings) -> dict:
    from steps.featurize.fetch import FetchError
    from steps.featurize.run import featurize_streamed
    from steps.featurize.stream import current_hosts

    try:
        hosts = current_hosts()
    except ValueError as err:
        raise BadInput(str(err)) from None
    if hosts.count != args.hosts:
        raise BadInput(f"{c.ARG_HOSTS} {args.hosts}, but the resource config names {hosts.count} host(s) "
                       f"({', '.join(hosts.all)}): the step and the job disagree on the instance count")
    for name, path in ((c.ARG_MANIFEST, args.manifest), (c.ARG_INDEX, args.index)):
        if path is None or not path.is_file():
            raise BadInput(f"{name} {path or ''} does not exist; {c.ARG_MANIFEST} needs {c.ARG_INDEX} (the files' "
                           "sizes and ETags, which every fetch is checked against)")
    try:
        return featurize_streamed(args.manifest, args.index, args.output, settings, jobs=args.jobs, shard=args.shard,
                                  work=args.work, record_cache=args.record_cache, hosts=hosts)
    except FetchError as err:  # a header: without it the shard's records cannot even be found
        raise StageFailed(f"fetching the shard's headers: {err}") from None
    except ValueError as err:
        raise BadInput(str(err)) from None


def main(argv: list[str] | None = None) -> int:
    return run_stage("featurize", parser(), FeaturizeSettings, _run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
