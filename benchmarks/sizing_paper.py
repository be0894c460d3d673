"""On paper: the full MIMIC-III Waveform Database run (67,830 records, about 6.7 TB) priced by
the sizing plan's own model (`pipeline/plan/cost.py`), so the figures in docs/benchmarks.md can be reproduced:

    .venv/bin/python benchmarks/sizing_paper.py [--cpu-seconds-per-gb X] [--price TYPE=USD ...]

Two fleets: 10 x ml.m5.4xlarge (one job per group folder 30..39, all at once, as
config/mimic3wdb.yaml) and 100 x ml.m5.xlarge (100 shards, at most 50 at once: ForEachStep's
limit and the default max_parallel_steps, so two waves). Each in both read modes: download
(SageMaker File mode: the shard is copied to the job's gp2 volume, then featurized) and
stream (read from S3 inside the job, transfer and compute overlapped). Featurize throughput is
the measured per-core figure (docs/benchmarks.md) unless given; Listing and Combine use the model's rough
figures, with an assumed 15 files per record for the listing.

Then tonight's cost of a 1 % change (678 records: changed or added) in the default
configuration, `macroshards: auto` at 20 GB (512 shards of about 13 GB), 20 Featurize jobs at
once (ForEach max_concurrency default), one ml.m5.4xlarge per job with a 30 GB volume: the design
before issue 21 (every shard holding a changed record starts a job; download copies that whole shard,
stream fetches its headers and the changed records) against the shipped design (the changed
records packed into work shards of at most 20 GB: ceil(changed / 20 GB) + 1 jobs, each moving
only its work) and against the full run, with the issue's targets: at most 3 % of the full
run's instance-hours, a nightly wall time of at most 20 minutes. Which shards 1 % of the
records touch is simulated with `steps/sharding.py`'s own `stable_index` over 67,830 ids.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.plan import prices as data  # noqa: E402
from pipeline.plan.cost import Catalog, featurize_time, gp2_bytes_s, stage_cost  # noqa: E402
from steps.sharding import auto_shard_count, stable_index  # noqa: E402

TARGET_SHARD = 20e9  # stages.featurize.target_shard_size default
CONCURRENCY = 20  # stages.featurize.max_concurrency default
VOLUME_GB = 30  # volume_size_gb default
CHANGED = 0.01
HEADER_BYTES = 10_000  # assumed: a record's headers (master, layout, segments), fetched whole in stream mode
TARGET_INSTANCE_HOURS = 0.03
TARGET_WALL_S = 20 * 60

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


def touched_shards(shards: int, seed: int = 0) -> list[int]:
    """Changed records per shard (shards without any left out), for 1 % of 67,830 ids."""
    import random

    ids = [f"3{i:06d}" for i in range(RECORDS)]
    changed = random.Random(seed).sample(ids, round(RECORDS * CHANGED))
    per: dict[int, int] = {}
    for rid in changed:
        per[stable_index(rid, shards)] = per.get(stable_index(rid, shards), 0) + 1
    return list(per.values())


def nightly(catalog: Catalog, cpu_s_per_gb: float, read_mode: str, jobs: list[tuple[float, float]], shards: int):
    """(Featurize stage cost, nightly wall s with Listing and Combine) of jobs given as (bytes moved,
    bytes computed)."""
    instance = catalog.get("ml.m5.4xlarge")
    runs = [featurize_time(int(moved), instance, 1, cpu_s_per_gb, read_mode, VOLUME_GB, compute_bytes=int(work)).run_s
            for moved, work in jobs]
    featurize = stage_cost("Featurize", runs, instance, 1, CONCURRENCY)
    small = catalog.get("ml.m5.xlarge")
    listing = stage_cost("Listing", [RECORDS * FILES_PER_RECORD / 1000 * data.LIST_S_PER_1000_KEYS], small, 1, 1)
    combine = stage_cost("Combine", [data.COMBINE_S + data.COMBINE_S_PER_SHARD * shards], small, 1, 1)
    return featurize, listing.wall_s + featurize.wall_s + combine.wall_s, \
        featurize.instance_hours + listing.instance_hours + combine.instance_hours


def change_lines(catalog: Catalog, cpu_s_per_gb: float) -> list[str]:
    shards = auto_shard_count(int(TOTAL_BYTES), int(TARGET_SHARD), RECORDS)
    shard_bytes, record_bytes = TOTAL_BYTES / shards, TOTAL_BYTES / RECORDS
    per_shard = touched_shards(shards)
    changed = sum(per_shard)
    changed_bytes = changed * record_bytes
    work = math.ceil(changed_bytes / TARGET_SHARD) + 1
    lines = [f"\n1 % change ({changed} records, {changed_bytes / 1e9:.0f} GB) at macroshards auto, "
             f"{TARGET_SHARD / 1e9:.0f} GB target: {shards} shards of {shard_bytes / 1e9:.1f} GB, "
             f"{CONCURRENCY} at once, 1 x ml.m5.4xlarge each ({VOLUME_GB} GB volume); it touches "
             f"{len(per_shard)} of {shards} shards ({len(per_shard) / shards:.0%})",
             f"{'read mode':<9} {'design':<18} {'jobs':>5} {'GB moved':>9} {'GB computed':>11} {'Featurize wall':>14} "
             f"{'nightly wall':>12} {'instance-h':>10} {'of full':>8} {'USD':>8}  targets (<= 3 %, <= 20 min)"]
    headers = shard_bytes / record_bytes * HEADER_BYTES
    for read_mode in ("download", "stream"):
        full, full_wall, full_h = nightly(catalog, cpu_s_per_gb, read_mode, [(shard_bytes, shard_bytes)] * shards,
                                          shards)
        moved = (lambda n: shard_bytes) if read_mode == "download" else (lambda n: headers + n * record_bytes)
        designs = (("full run", [(shard_bytes, shard_bytes)] * shards),
                   ("before (per shard)", [(moved(n), n * record_bytes) for n in per_shard]),
                   ("work shards", [(changed_bytes / work, changed_bytes / work)] * work))
        for name, jobs in designs:
            featurize, wall, hours = nightly(catalog, cpu_s_per_gb, read_mode, jobs, shards)
            met = "-" if name == "full run" else \
                ("met" if hours <= TARGET_INSTANCE_HOURS * full_h else f"MISSED x{hours / (TARGET_INSTANCE_HOURS * full_h):.1f}") \
                + ", " + ("met" if wall <= TARGET_WALL_S else f"MISSED x{wall / TARGET_WALL_S:.1f}")
            lines.append(f"{read_mode:<9} {name:<18} {len(jobs):>5} {sum(m for m, _ in jobs) / 1e9:>9.0f} "
                         f"{sum(w for _, w in jobs) / 1e9:>11.0f} {featurize.wall_s / 60:>12.0f} m "
                         f"{wall / 60:>10.0f} m {hours:>10.1f} {hours / full_h:>8.1%} "
                         f"{hours * catalog.get('ml.m5.4xlarge').usd_per_hour:>8.2f}  {met}")
    lines.append("nightly wall and instance-h include Listing and Combine (rough figures); instance-h are billed "
                 f"({data.START_BILLED_S / 60:.0f} min of each job's {data.START_WALL_S / 60:.0f} min start); "
                 "USD at the 4xlarge's price (Listing and Combine run on an xlarge: a few cents)")
    return lines


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
    print("\n".join(change_lines(catalog, args.cpu_seconds_per_gb)))
    print(f"prices: {data.PRICE_SOURCE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
