"""Published figures the sizing plan (`pipeline/plan/cost.py`) prices a run with. Data only.

Prices change and differ by region: `deploy.py plan --price TYPE=USD` overrides one, and
`--price TYPE=USD:VCPUS:GBPS` adds a type that is not here.
"""

from __future__ import annotations

# SageMaker Processing, On-Demand, US East (N. Virginia), USD per instance-hour: the
# "Processing" tab of https://aws.amazon.com/sagemaker/pricing/ (the figures every public
# table found on 2026-12-01 agrees on, e.g. JHUAPL-DTC-TA2/wiki docs/sagemaker_instances.md;
# not fetched live, so check the page before relying on a figure).
PRICE_REGION = "us-east-1"
PRICE_SOURCE = "https://aws.amazon.com/sagemaker/pricing/ (Processing, On-Demand, us-east-1), as listed on 2026-12-01"

# Network: baseline Gbps, the rate an instance sustains for hours, and the burst of the
# "up to 10 Gbps" sizes, which lasts minutes (its credits are small), so a multi-hour
# transfer is sized on the baseline. From the EC2 Instance Types guide's network
# specifications (https://docs.aws.amazon.com/ec2/latest/instancetypes/gp.html, co.html,
# mo.html); c5 baselines as also collected in gist.github.com/DingGGu/25f011cff71b2eab36f0317ce127a2ae;
# fixed-rate sizes as DescribeInstanceTypes' NetworkPerformance
# (gist.github.com/nerdalert/e048f0bfd2c2eb7061db0ed1d4154f80: m5.12xlarge and c5.9xlarge
# "10 Gigabit", the lower of the two figures AWS has published for them).
NETWORK_SOURCE = "EC2 Instance Types guide, network specifications (baseline bandwidth)"

# type: (vCPUs, baseline Gbps, burst Gbps or None, USD per hour)
INSTANCES: dict[str, tuple[int, float, float | None, float]] = {
    "ml.t3.medium": (2, 0.256, 5.0, 0.05),
    "ml.m5.large": (2, 0.75, 10.0, 0.115),
    "ml.m5.xlarge": (4, 1.25, 10.0, 0.23),
    "ml.m5.2xlarge": (8, 2.5, 10.0, 0.461),
    "ml.m5.4xlarge": (16, 5.0, 10.0, 0.922),
    "ml.m5.12xlarge": (48, 10.0, None, 2.765),
    "ml.m5.24xlarge": (96, 25.0, None, 5.53),
    "ml.c5.xlarge": (4, 1.25, 10.0, 0.204),
    "ml.c5.2xlarge": (8, 2.5, 10.0, 0.408),
    "ml.c5.4xlarge": (16, 5.0, 10.0, 0.816),
    "ml.c5.9xlarge": (36, 10.0, None, 1.836),
    "ml.c5.18xlarge": (72, 25.0, None, 3.672),
    "ml.r5.large": (2, 0.75, 10.0, 0.151),
    "ml.r5.xlarge": (4, 1.25, 10.0, 0.302),
    "ml.r5.2xlarge": (8, 2.5, 10.0, 0.605),
    "ml.r5.4xlarge": (16, 5.0, 10.0, 1.21),
    "ml.r5.8xlarge": (32, 10.0, None, 2.419),
    "ml.r5.12xlarge": (48, 10.0, None, 3.629),
    "ml.r5.16xlarge": (64, 20.0, None, 4.838),
    "ml.r5.24xlarge": (96, 25.0, None, 7.258),
}

# SageMaker Processing volumes are gp2 (the "ML storage" of the pricing page; DESIGN.md §4).
# gp2 throughput per volume: 128 MiB/s up to 170 GiB, 250 MiB/s above
# (https://docs.aws.amazon.com/ebs/latest/userguide/general-purpose.html#gp2-performance).
# Baseline IOPS are 3 per GiB, but a shard's copy is one sequential burst of 256 KiB I/Os and
# the 5.4 million initial I/O credits last hours at these rates, so the cap is what binds.
GP2_SMALL_GIB = 170
GP2_SMALL_MIB_S = 128.0
GP2_LARGE_MIB_S = 250.0

# Start-up of a processing job, assumed: about 5 minutes from CreateProcessingJob to the
# container running (an 8-minute start for a 30-second job is reported in
# aws/sagemaker-python-sdk#4358), of which provisioning is not billed (billing starts with
# the instance, aws/sagemaker-python-sdk#30); the billed minute is the image pull, the code
# bundle and, on the managed image, the offline install from the wheelhouse.
START_WALL_S = 300.0
START_BILLED_S = 60.0

# Featurize throughput when no report of this experiment measured one:
# `benchmarks/featurize_bench.py --only mixed --size 1G` (docs/benchmarks.md):
# 1.0 GB of formats 80/16/212 in 2.35 s on 2 workers, 425 MB/s, so 4.7 CPU-seconds per GB.
DEFAULT_CPU_S_PER_GB = 4.7
DEFAULT_CPU_S_SOURCE = "assumed from benchmarks/featurize_bench.py on an AMD EPYC, 2 vCPUs (213 MB/s per core)"
# Reports that read less than this measure mostly a job's fixed start (interpreter, imports,
# discovery: about 0.6 CPU-s, README), not its per-byte cost.
MIN_MEASURED_BYTES = 1_000_000_000

# Rough figures, not measured at scale; they are small next to Featurize on terabytes.
LIST_S_PER_1000_KEYS = 0.2  # one ListObjectsV2 page
COPY_MB_S_PER_THREAD = 50.0  # a server-side copy (CopyObject / UploadPartCopy)
COMBINE_S = 60.0  # reading every shard's features.parquet and writing the summary
COMBINE_S_PER_SHARD = 0.5
ENCODE_S = 120.0  # building and saving the dataset
# ForEachStep runs at most 50 iterations at once (DESIGN.md §4).
FOREACH_MAX_CONCURRENCY = 50
