"""Definition build time and size by macroshard count, counted and `auto`.

    python benchmarks/definition_bench.py [--shards 10 100 250] [--auto 10 500 5000]

Prints, per counted shard count: the time to build and serialize the definition in a warm
process, the time of the whole `deploy.py definition` command in a fresh interpreter (what a
user waits for), the definition's size against the API's 1 MiB limit, and what the SDK would
do with it (it uploads definitions over 100 KB to S3 and passes PipelineDefinitionS3Location).

With `macroshards: auto` the count is decided at run time, so the definition cannot depend on
it: for each `--auto` count it builds the definition with the target shard size that gives
that count over the MIMIC-III WDB's 6.7 TB, and prints the same figures, plus what does grow
with the count at run time: Reconcile's `shard_items` (the ForEach's items) and report.json.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
API_LIMIT = 1024 * 1024  # CreatePipeline.PipelineDefinition max length
SDK_S3_THRESHOLD = 100 * 1024  # sagemaker.mlops Pipeline: larger definitions go through S3


MIMIC_BYTES = 6_700 * 10**9  # the seed's dataset, about 6.7 TB


def config_with(shards: int, folder: Path, auto: bool = False) -> Path:
    raw = yaml.safe_load((ROOT / "config" / "example.yaml").read_text())
    if auto:
        raw["stages"]["featurize"].update(macroshards="auto", target_shard_size=-(-MIMIC_BYTES // shards))
    else:
        raw["stages"]["featurize"]["macroshards"] = shards
    path = folder / f"example-{'auto-' if auto else ''}{shards}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def runtime_items(shards: int) -> tuple[int, int]:
    """Bytes of `shard_items` and of the shards' part of Reconcile's report.json for `shards`
    shards at realistic addresses (the example's experiment folder, 20-hex digests)."""
    import json

    from steps.publish import PublishedShard, shard_items

    base = "s3://wavepipe-example/wavepipe/wavepipe-example/experiments/example/shards"
    published = [PublishedShard(f"shard-{i + 1:04d}", f"{base}/{i:020x}", f"{i:020x}", 1000, 13 * 10**9)
                 for i in range(shards)]
    items = shard_items(published)
    report = json.dumps({"shards": [s.as_report() for s in published], "shard_items": items}, indent=1)
    return len(items), len(report)


def sdk_threshold() -> int:
    """The SDK's own threshold, read from its source rather than assumed."""
    import re

    import sagemaker.mlops.workflow.pipeline as sdk_pipeline

    text = Path(sdk_pipeline.__file__).read_text()
    match = re.search(r"< 1024 \* (\d+):", text)
    return 1024 * int(match.group(1)) if match else SDK_S3_THRESHOLD


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shards", type=int, nargs="+", default=[10, 100, 250])
    ap.add_argument("--auto", type=int, nargs="+", default=[10, 500, 5000])
    args = ap.parse_args()
    from pipeline.build.compose import build
    from pipeline.definition.model import pretty
    from pipeline.config import load_config

    with tempfile.TemporaryDirectory() as tmp:
        warm = build(load_config(ROOT / "config" / "example.yaml"))  # SDK imported once
        del warm
        threshold = sdk_threshold()
        print(f"{'shards':>11} {'build (warm)':>12} {'CLI (cold)':>10} {'compact KB':>10} {'indented KB':>11} "
              f"{'of 1 MiB':>8}  SDK path")
        for auto, counts in ((False, args.shards), (True, args.auto)):
            for n in counts:
                path = config_with(n, Path(tmp), auto)
                t0 = time.perf_counter()
                built = build(load_config(path))
                warm_s = time.perf_counter() - t0
                t0 = time.perf_counter()
                subprocess.run([sys.executable, str(ROOT / "deploy.py"), "definition", "--config", str(path)],
                               check=True, capture_output=True)
                cold_s = time.perf_counter() - t0
                size, indented = len(built.definition), len(pretty(built.definition))
                where = "S3 location" if size > threshold else "inline"
                label = f"auto {n}" if auto else str(n)
                print(f"{label:>11} {warm_s:>11.2f}s {cold_s:>9.2f}s {size / 1024:>10.1f} {indented / 1024:>11.1f} "
                      f"{size / API_LIMIT:>7.1%}  {where}{'  OVER LIMIT' if size > API_LIMIT else ''}")
        print(f"SDK S3 threshold: {threshold // 1024} KB; API limit: {API_LIMIT // 1024} KB")
        print("At run time, with auto (what grows with the count instead of the definition):")
        for n in args.auto:
            items, report = runtime_items(n)
            print(f"  {n:>5} shards: shard_items {items / 1024:.0f} KB, Reconcile report.json shards part "
                  f"{report / 1024:.0f} KB")


if __name__ == "__main__":
    main()
