"""On paper: the full MIMIC-III Waveform Database run (67,830 records, about 6.7 TB) priced by
the sizing plan's own model (`pipeline/plan/cost.py`), so the README's figures can be reproduced:

    .venv/bin/python benchmarks/sizing_paper.py [--cpu-seconds-per-gb X] [--price TYPE=USD ...]

Two fleets: 10 x ml.m5.4xlarge (one job per group folder 30..39, all at once, as
config/mimic3wdb.yaml) and 100 x ml.m5.xlarge (100 shards, at most 50 at once: ForEachStep's
limit and the default max_parallel_steps, so two waves). Each in both read modes: download
(SageMaker File mode: the shard is copied to the job's gp2 volume, then featurized) and
stream (read from S3 inside the job, transfer and compute overlapped). Featurize throughput is
the README's measured per-core figure unless given; Listing and Combine use the model's rough
figures, with an assumed 15 files per record for the listing.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.plan import prices as data  # noqa: E402
from pipeline.plan.cost import Catalog, featurize_time, gp2_bytes_s, stage_cost  # noqa: E402

RECORDS = 67_830
TOTAL_BYTES = 6.7e12
FILES_PER_RECORD = 15  # assumed: master and segment headers, data files, numerics
FLEETS = (("ml.m5.4xlarge", 10, 1024), ("ml.m5.xlarge", 100, 100))  # type, shards, volume GB


def fleet_lines(catalog: Catalog, instance_type: str, shards: int, volume_gb: int, cpu_s_per_gb: float,
                read_mode: str) -> list[str]:
    instance = catalog.get(instance_type)
    slots = min(shards, data.FOREACH_MAX_CONCURRENCY)
    shard_bytes = TOTAL_BYTES / shards
    t = featurize_time(int(shard_bytes), instance, 1, cpu_s_per_gb, read_mode, volume_gb)
    featurize = stage_cost("Featurize", [t.run_s] * shards, instance, 1, slots)
    listing = stage_cost("Listing", [RECORDS * FILES_PER_RECORD / 1000 * data.LIST_S_PER_1000_KEYS],
                         catalog.get("ml.m5.xlarge"), 1, 1)
    combine = stage_cost("Combine", [data.COMBINE_S + data.COMBINE_S_PER_SHARD * shards], catalog.get("ml.m5.xlarge"),
                         1, 1)
    stages = (listing, featurize, combine)
    network = f"network {instance.baseline_gbps:g} Gbps baseline, {instance.network_bytes_s / 1e6:.0f} MB/s"
    io = f"transfer ({network}) {t.transfer_s / 60:.1f} min, overlapped with compute"
    if read_mode == "download":
        volume = gp2_bytes_s(volume_gb)
        copy = shard_bytes / min(volume, instance.network_bytes_s)
        io = (f"copy to the {volume_gb} GB gp2 volume (its cap {volume / 1e6:.0f} MB/s; {network}) {copy / 60:.1f} min, "
              f"then compute while reading it back at {volume / 1e6:.0f} MB/s ({shard_bytes / volume / 60:.1f} min)")
    return [
        f"{shards} x {instance_type} ({instance.vcpus} vCPUs, ${instance.usd_per_hour}/h), {read_mode}:",
        f"  shard {shard_bytes / 1e9:.0f} GB; compute {shard_bytes / 1e9:.0f} GB x {cpu_s_per_gb:g} CPU-s/GB / "
        f"{instance.vcpus} vCPUs = {t.compute_s / 60:.1f} min; {io}; {t.binds} binds; job {t.run_s / 60:.1f} min",
        f"  {shards} jobs over {slots} slots = {math.ceil(shards / slots)} wave(s) of "
        f"{data.START_WALL_S / 60:.0f} min start-up + {t.run_s / 60:.1f} min: Featurize {featurize.wall_s / 3600:.2f} h "
        f"wall, {featurize.instance_hours:.1f} instance-h, ${featurize.usd:.2f}",
        f"  with Listing and Combine (rough): {sum(s.wall_s for s in stages) / 3600:.2f} h, "
        f"${sum(s.usd for s in stages):.2f} on demand",
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpu-seconds-per-gb", type=float, default=data.DEFAULT_CPU_S_PER_GB)
    ap.add_argument("--price", action="append", default=[], metavar="TYPE=USD")
    args = ap.parse_args(argv)
    catalog = Catalog(args.price)
    print(f"MIMIC-III WDB: {RECORDS:,} records, {TOTAL_BYTES / 1e12:.1f} TB; Featurize at "
          f"{args.cpu_seconds_per_gb:g} CPU-s/GB ({TOTAL_BYTES / 1e9 * args.cpu_seconds_per_gb / 3600:.1f} CPU-hours in "
          f"all); each job {data.START_WALL_S / 60:.0f} min to start, {data.START_BILLED_S / 60:.0f} of it billed")
    for instance_type, shards, volume_gb in FLEETS:
        for read_mode in ("download", "stream"):
            print("\n".join(fleet_lines(catalog, instance_type, shards, volume_gb, args.cpu_seconds_per_gb, read_mode)))
    print(f"prices: {data.PRICE_SOURCE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
