"""The sizing table of `deploy.py plan`: per stage, what a full run and tonight's run cost.

A full run does every step over all the current data; tonight's does only the steps the plan
says run, and inside a Featurize step only the records the record cache lacks. Featurize is
priced from the bytes it moves (tonight, in download mode, still its whole shard) and
computes over (what the record cache lacks), at measured throughput (`pipeline/plan/cost.py`); Reconcile and Listing from
their listing and the bytes they copy server-side, Combine and Encode from a fixed figure:
rough, labelled so, and small next to Featurize on terabytes.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from pipeline.plan import prices as data
from pipeline.config import Config
from pipeline.stages.registry import Stage
from pipeline.plan.cost import Catalog, StageCost, Throughput, UnknownInstance, featurize_time, select_throughput, \
    stage_cost
from steps import contract as c
from steps.io.storage import join_uri

def _computed(step, full: bool) -> int:
    """Bytes a Featurize step computes over: its whole shard in a full run, tonight what the record cache lacks."""
    return (step.bytes if full else step.bytes_todo) or 0


def _moved(step, full: bool) -> int:
    """Bytes a Featurize step transfers: its whole shard in a full run; tonight, in download
    mode still the whole shard (File mode copies everything its manifest names), in stream
    mode every header and the data of the records it featurizes (`predict.transfer`)."""
    if full:
        return step.bytes or 0
    moved = step.bytes_moved
    return step.bytes_todo or 0 if moved is None else moved


@dataclass
class Sizing:
    throughput: Throughput
    read_mode: str
    full: list[StageCost] = field(default_factory=list)
    tonight: list[StageCost] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    rough: list[str] = field(default_factory=list)  # stages timed from rough figures (all but the fan-out)
    fixed: list[str] = field(default_factory=list)  # stages whose time does not follow bytes (no GB shown)


def experiment_reports(storage, experiment_uri: str, featurize_key: str | None) -> list[dict]:
    """Every Featurize report.json under the experiment's shards, those of `featurize_key`
    (the code and settings of this run) when there are any."""
    found: dict[str, list[dict]] = {}
    for info in storage.list(join_uri(experiment_uri, c.SHARDS_FOLDER) + "/"):
        parts = info.uri.rsplit("/", 5)
        if parts[-1] != c.REPORT_FILE:
            continue
        if parts[-3] == c.FEATURES_FOLDER:
            key = parts[-2]
        elif parts[-5] == c.FEATURES_FOLDER and parts[-3] == c.HOSTS_FOLDER:  # one host's share (stream)
            key = parts[-4]
        else:
            continue
        found.setdefault(key, []).append(json.loads(storage.read_bytes(info.uri)))
    return found.get(featurize_key) or [r for reports in found.values() for r in reports]


class _Sizer:
    def __init__(self, cfg: Config, catalog: Catalog, throughput: Throughput) -> None:
        self.cfg, self.catalog, self.throughput = cfg, catalog, throughput
        featurize = cfg.stages.featurize
        # `read_mode: stream` reads from S3 inside the job; without the key, SageMaker's File mode.
        self.read_mode = featurize.read_mode if featurize else "download"
        reconcile = getattr(cfg.stages, "reconcile", None)
        self.copy_threads = reconcile.copy_threads if reconcile else 1

    def run_seconds(self, step, stage: Stage, full: bool, shards: int) -> float:
        """One job's run time, as the stage's `cost` says it is estimated."""
        count, volume = step.resources[1], step.resources[2]
        if stage.cost == "fan-out":
            return featurize_time(_moved(step, full), self.catalog.get(step.resources[0]), count,
                                  self.throughput.cpu_s_per_gb, self.read_mode, volume,
                                  compute_bytes=_computed(step, full)).run_s
        if stage.cost == "source":
            # bytes_todo: what it copies tonight; None for a step that copies nothing.
            copy = 0 if step.bytes_todo is None else step.bytes if full else step.bytes_todo
            return (step.keys or 0) / 1000 * data.LIST_S_PER_1000_KEYS + \
                copy / 1e6 / (self.copy_threads * data.COPY_MB_S_PER_THREAD)
        base, per_shard = stage.rough_seconds
        return base + per_shard * shards

    def full_fan_out(self, stage: Stage, steps: list, jobs: list[int]) -> StageCost:
        """A full run's Featurize: every folder missing, one job per `jobs` entry (its bytes)."""
        instance = self.catalog.get(steps[0].resources[0])
        count, volume = steps[0].resources[1], steps[0].resources[2]
        times = [featurize_time(b, instance, count, self.throughput.cpu_s_per_gb, self.read_mode, volume) for b in jobs]
        slots = stage.slots(self.cfg, len(jobs)) if stage.slots else min(self.cfg.max_parallel_steps, len(jobs))
        binds = max(times, key=lambda t: t.run_s).binds if times else ""
        return stage_cost(stage.step, [t.run_s for t in times], instance, count, slots, sum(jobs), binds)

    def stage(self, stage: Stage, steps: list, full: bool, shards: int) -> StageCost:
        runs = [s for s in steps if full or s.state == "Runs"]
        instance = self.catalog.get(steps[0].resources[0])
        count = steps[0].resources[1]
        slots = stage.slots(self.cfg, len(steps)) if stage.slots else min(self.cfg.max_parallel_steps, len(steps))
        fan_out = stage.cost == "fan-out"
        nbytes = sum(_moved(s, full) if fan_out else s.bytes or 0 for s in runs)
        binds = ""
        if fan_out and runs:  # what binds the longest job binds the stage
            biggest = max(runs, key=lambda s: self.run_seconds(s, stage, full, shards))
            binds = featurize_time(_moved(biggest, full), instance, count, self.throughput.cpu_s_per_gb,
                                   self.read_mode, biggest.resources[2], compute_bytes=_computed(biggest, full)).binds
        return stage_cost(stage.step, [self.run_seconds(s, stage, full, shards) for s in runs], instance, count,
                          slots, nbytes, binds)


def size_plan(plans: list, cfg: Config, reports: list[dict], prices: list[str] = (),
              cpu_s_per_gb: float | None = None, full_jobs: list[int] | None = None) -> Sizing:
    """The sizing table of these step plans (`pipeline.plan.predict.StepPlan`). `full_jobs`:
    the bytes of each Featurize job of a full run (nothing cached), from the source's report;
    tonight's jobs are the steps that run (the work the record cache lacks)."""
    catalog = Catalog(list(prices))
    sizer = _Sizer(cfg, catalog, select_throughput(reports, cpu_s_per_gb))
    out = Sizing(sizer.throughput, sizer.read_mode, rough=[s.step for s in cfg.registry if s.cost != "fan-out"],
                 fixed=[s.step for s in cfg.registry if s.cost == "fixed"])
    by_stage: dict[str, list] = {}
    for p in plans:
        if not p.details.get("for_each"):  # a ForEach runs no job: its iterations are priced
            by_stage.setdefault(cfg.registry.of_step(p.name).name, []).append(p)
    shards = sum(len(by_stage.get(s.name, [])) for s in cfg.registry if s.fans_out)
    for stage in (s for s in cfg.registry if s.name in by_stage):
        steps = by_stage[stage.name]
        if any(s.resources is None or (stage.cost == "fan-out" and s.bytes is None) for s in steps):
            out.notes.append(f"{stage.step}: not sized (its inputs are known only after the steps before it run)")
            continue
        try:
            out.full.append(sizer.full_fan_out(stage, steps, full_jobs) if stage.cost == "fan-out" and full_jobs
                            else sizer.stage(stage, steps, True, shards))
            out.tonight.append(sizer.stage(stage, steps, False, shards))
        except UnknownInstance as err:
            out.notes.append(f"{stage.step}: not sized: {err}")
    if cfg.aws.region != data.PRICE_REGION and not catalog.overridden:
        out.notes.append(f"prices are {data.PRICE_REGION}'s; aws.region is {cfg.aws.region}: give yours with --price")
    return out


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m"


def format_sizing(sizing: Sizing) -> str:
    """The table `deploy.py plan` prints under the steps."""
    lines = [f"\nSIZING (on-demand; Featurize at {sizing.throughput.cpu_s_per_gb:.2f} CPU-s/GB, "
             f"{sizing.throughput.source}; read mode {sizing.read_mode}, Featurize GB staged or fetched; each job {data.START_WALL_S / 60:.0f} min "
             f"to start, {data.START_BILLED_S / 60:.0f} billed, assumed)",
             f"{'RUN':<8} {'STAGE':<10} {'JOBS':>5} {'GB':>10} {'INSTANCES':<20} {'WALL':>7} {'INST-H':>9} "
             f"{'USD':>10}  BINDS"]
    for label, rows in (("full", sizing.full), ("tonight", sizing.tonight)):
        for r in rows:
            gb = "-" if r.stage in sizing.fixed else f"{r.bytes / 1e9:.3f}"
            lines.append(f"{label:<8} {r.stage:<10} {r.jobs:>5} {gb:>10} "
                         f"{f'{r.count} x {r.instance.type}':<20} {_duration(r.wall_s):>7} {r.instance_hours:>9.3f} "
                         f"{r.usd:>10.3f}  {r.binds}")
        lines.append(f"{label:<8} {'total':<10} {sum(r.jobs for r in rows):>5} {'':>10} {'':<20} "
                     f"{_duration(sum(r.wall_s for r in rows)):>7} {sum(r.instance_hours for r in rows):>9.3f} "
                     f"{sum(r.usd for r in rows):>10.3f}")
    rough = ", ".join(sizing.rough[:-1]) + " and " + sizing.rough[-1] if len(sizing.rough) > 1 else "".join(sizing.rough)
    lines.append(f"prices: {data.PRICE_SOURCE}; network: {data.NETWORK_SOURCE}; {rough} times are rough figures "
                 "(pipeline/plan/prices.py)")
    lines += [f"note: {n}" for n in sizing.notes]
    return "\n".join(lines) + "\n"


def sizing_json(sizing: Sizing) -> dict:
    """The table for `deploy.py plan --format json`."""
    def row(r: StageCost) -> dict:
        return {**asdict(r), "instance": r.instance.type, "usd": r.usd}

    return {"throughput": asdict(sizing.throughput), "read_mode": sizing.read_mode,
            "full": [row(r) for r in sizing.full], "tonight": [row(r) for r in sizing.tonight],
            "notes": sizing.notes, "prices": data.PRICE_SOURCE, "network": data.NETWORK_SOURCE}
