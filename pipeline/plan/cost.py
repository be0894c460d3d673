"""The cost model of a run: plain arithmetic over published figures (`pipeline/plan/prices.py`).

- A Featurize job moves its shard's bytes and computes over them. Download mode (SageMaker
  File mode) copies the whole input to the job's gp2 volume before the container starts (at
  the lower of the network's baseline and the volume's cap), then computes while reading it
  back from the volume: copy + max(compute, read). Stream mode reads from S3 inside the job,
  overlapping transfer and compute: the slower of the two binds.
- Compute is bytes x CPU-seconds per GB over the job's vCPUs (joblib uses every one).
- Every job pays a start-up; only its billed part is in the instance-hours.
- Jobs of a stage run at most `slots` at once: longest first onto the slot that frees first.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

from pipeline.plan import prices as data
from steps import contract as c

GB = 1e9
MIB = 1024**2


class UnknownInstance(LookupError):
    """An instance type with no published figures here."""

    def __init__(self, instance_type: str) -> None:
        super().__init__(f"{instance_type}: no vCPU, network or price figures for it in pipeline/plan/prices.py; "
                         f"give them with --price {instance_type}=USD_PER_HOUR:VCPUS:BASELINE_GBPS")
        self.instance_type = instance_type


@dataclass(frozen=True)
class Instance:
    type: str
    vcpus: int
    baseline_gbps: float
    usd_per_hour: float
    burst_gbps: float | None = None

    @property
    def network_bytes_s(self) -> float:
        return self.baseline_gbps * 1e9 / 8


def parse_price(item: str) -> Instance | tuple[str, float]:
    """`TYPE=USD` (a new price for a listed type) or `TYPE=USD:VCPUS:GBPS` (a type of its own)."""
    name, sep, value = item.partition("=")
    parts = value.split(":")
    try:
        if not sep or not name or len(parts) not in (1, 3):
            raise ValueError
        if len(parts) == 1:
            return name, float(parts[0])
        return Instance(name, int(parts[1]), float(parts[2]), float(parts[0]))
    except ValueError:
        raise ValueError(f"--price expects TYPE=USD or TYPE=USD:VCPUS:BASELINE_GBPS, got {item!r}") from None


class Catalog:
    """The instance types a plan can price: the published table, with the user's prices."""

    def __init__(self, overrides: list[str] = ()) -> None:
        self.instances = {name: Instance(name, vcpus, base, usd, burst)
                          for name, (vcpus, base, burst, usd) in data.INSTANCES.items()}
        self.overridden: set[str] = set()
        for item in overrides:
            parsed = parse_price(item)
            if isinstance(parsed, Instance):
                self.instances[parsed.type] = parsed
                self.overridden.add(parsed.type)
                continue
            name, usd = parsed
            if name not in self.instances:
                raise UnknownInstance(name)
            self.instances[name] = Instance(name, self.instances[name].vcpus, self.instances[name].baseline_gbps, usd,
                                            self.instances[name].burst_gbps)
            self.overridden.add(name)

    def get(self, instance_type: str) -> Instance:
        if instance_type not in self.instances:
            raise UnknownInstance(instance_type)
        return self.instances[instance_type]


def gp2_bytes_s(volume_gb: int) -> float:
    return (data.GP2_SMALL_MIB_S if volume_gb <= data.GP2_SMALL_GIB else data.GP2_LARGE_MIB_S) * MIB


@dataclass(frozen=True)
class JobTime:
    compute_s: float
    transfer_s: float
    run_s: float
    transfer_limit: str = "network"  # or "gp2 volume": what caps the transfer rate

    @property
    def binds(self) -> str:
        return self.transfer_limit if self.transfer_s > self.compute_s else "compute"


def featurize_time(nbytes: int, instance: Instance, count: int, cpu_s_per_gb: float, read_mode: str,
                   volume_gb: int, compute_bytes: int | None = None) -> JobTime:
    """Run time of one Featurize job that moves `nbytes` and computes over `compute_bytes`
    (default all of them: a full run; tonight, the records the cache lacks), start-up excluded."""
    compute_bytes = nbytes if compute_bytes is None else compute_bytes
    compute = compute_bytes / GB * cpu_s_per_gb / (instance.vcpus * count)
    if read_mode == "stream":
        transfer = nbytes / (instance.network_bytes_s * count)
        return JobTime(compute, transfer, max(compute, transfer))
    # File mode: each host copies the whole (FullyReplicated) input to its own volume first,
    # then the featurizer reads it back from there: a shard worth sizing is larger than the
    # instance's memory, so the page cache does not hold it, and gp2's cap is per volume.
    rate = min(instance.network_bytes_s, gp2_bytes_s(volume_gb))
    # Only the files of the records it featurizes are read back; the rest of the copy lies unused.
    copy, read = nbytes / rate, min(nbytes, compute_bytes) / gp2_bytes_s(volume_gb)
    limit = "network" if rate == instance.network_bytes_s and copy > read else "gp2 volume"
    return JobTime(compute, copy + read, copy + max(compute, read), limit)


def makespan(durations: list[float], slots: int) -> float:
    """Wall time of jobs run at most `slots` at once, longest first onto the first free slot."""
    finish = [0.0] * max(1, min(slots, len(durations)))
    for duration in sorted(durations, reverse=True):
        heapq.heappush(finish, heapq.heappop(finish) + duration)
    return max(finish) if durations else 0.0


@dataclass(frozen=True)
class StageCost:
    stage: str
    jobs: int
    bytes: int
    instance: Instance
    count: int
    wall_s: float
    instance_hours: float
    binds: str = ""

    @property
    def usd(self) -> float:
        return self.instance_hours * self.instance.usd_per_hour


def stage_cost(stage: str, run_seconds: list[float], instance: Instance, count: int, slots: int,
               nbytes: int = 0, binds: str = "") -> StageCost:
    """Each job's start-up plus run time, scheduled over `slots`; billed per instance."""
    walls = [data.START_WALL_S + s for s in run_seconds]
    billed = sum(data.START_BILLED_S + s for s in run_seconds) * count
    return StageCost(stage, len(run_seconds), nbytes, instance, count, makespan(walls, slots), billed / 3600, binds)


@dataclass(frozen=True)
class Throughput:
    cpu_s_per_gb: float
    source: str


def select_throughput(reports: list[c.FeaturizeReport], given: float | None = None,
                      min_bytes: int = data.MIN_MEASURED_BYTES) -> Throughput:
    """Featurize CPU-seconds per GB: measured by this experiment's reports if they read enough,
    else the figure the user measured (`given`), else the measured figure in docs/benchmarks.md."""
    measured = [r for r in reports
                if r.get(c.REPORT_RECORDS_FEATURIZED) and r.get(c.REPORT_BYTES_READ) and r.get(c.REPORT_CPU_SECONDS)]
    nbytes = sum(r[c.REPORT_BYTES_READ] for r in measured)
    if measured and nbytes >= min_bytes:
        rate = sum(r[c.REPORT_CPU_SECONDS] for r in measured) / (nbytes / GB)
        note = f"; --cpu-seconds-per-gb {given:g} not used" if given is not None else ""
        return Throughput(rate, f"measured by {len(measured)} Featurize report(s) of this experiment "
                                f"({nbytes / GB:.1f} GB read){note}")
    why = f" ({len(measured)} report(s) read only {nbytes / 1e6:.0f} MB)" if measured else ""
    if given is not None:
        return Throughput(given, f"given with --cpu-seconds-per-gb{why}")
    return Throughput(data.DEFAULT_CPU_S_PER_GB, data.DEFAULT_CPU_S_SOURCE + why)
