"""`deploy.py plan`: what `deploy.py local` would run now, and why, from the same keys it uses.

Nothing is written. The step that publishes the shards (Reconcile, or the listing step) is
predicted from the sources it reads (labels and the production listing; no copy), which
gives every shard's content address; each step's arguments are then resolved as the runner
resolves them, and its cache key looked up in the same cache. A Featurize step that would
run is also asked, folder by folder, which of its artifacts the record cache already holds.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

from pipeline.build.cached import CachedBuild, cached_build
from pipeline.config import Config
from pipeline.stages.common import argument as _arg
from pipeline.stages.names import is_shard_job
from steps import contract as c
from steps.io.storage import key_problem


@dataclass
class StepPlan:
    name: str
    state: str  # Cached, Reused (a resume keeps it) or Runs
    why: str
    featurize: int | None = None  # Featurize: artifacts it would featurize
    reuse: int | None = None  # ... and reuse from the record cache
    details: dict[str, Any] = field(default_factory=dict)
    # What the sizing table prices (pipeline/plan/table.py):
    resources: tuple[str, int, int] | None = None  # instance type, count, volume GB
    bytes: int | None = None  # Featurize: its shard's; Reconcile/Listing: all files listed
    bytes_todo: int | None = None  # Featurize that runs: of the records to featurize; Reconcile: to copy
    keys: int | None = None  # Reconcile/Listing: objects listed
    # Featurize that runs: its records, those the record cache lacks (featurized), and what it moves:
    records: int | None = None
    records_todo: int | None = None
    bytes_staged: int | None = None  # copied to its volume before it starts (download: the whole shard)
    bytes_fetched: int | None = None  # fetched by the job itself (stream: every header, the data it featurizes)

    @property
    def bytes_moved(self) -> int | None:
        """What a Featurize job that runs transfers from S3: staged plus fetched."""
        if self.bytes_staged is None and self.bytes_fetched is None:
            return None
        return (self.bytes_staged or 0) + (self.bytes_fetched or 0)


def _settings(built: CachedBuild, stage: str) -> dict:
    return json.loads(built.stage_settings(stage))[c.SETTINGS_BODY_KEY]


def _why(previous: dict | None, arguments: dict) -> str:
    """Which part of the cache key differs from the step's newest completed run."""
    if previous is None:
        return "runs: it never completed here"
    changed = []
    old_app, new_app = previous.get("AppSpecification") or {}, arguments.get("AppSpecification") or {}
    if old_app.get("ImageUri") != new_app.get("ImageUri"):
        changed.append("image")
    if old_app.get("ContainerArguments") != new_app.get("ContainerArguments"):
        changed.append("arguments")
    if (previous.get("Environment") or {}) != (arguments.get("Environment") or {}):
        changed.append("environment")
    old_in = {i["InputName"]: i["S3Input"]["S3Uri"] for i in previous.get("ProcessingInputs") or []}
    for item in arguments.get("ProcessingInputs") or []:
        input_name, uri = item["InputName"], item["S3Input"]["S3Uri"]
        if old_in.get(input_name) != uri:
            changed.append({"code": "code", "settings": "settings"}.get(input_name, f"input data ({input_name})"))
    if not changed:
        return "runs: its earlier outputs expired or are gone"
    return "runs: changed " + ", ".join(dict.fromkeys(changed))


def _shard_files(report: dict, shard: str, storage) -> tuple[dict[str, dict], dict[str, str]]:
    """A shard's files (size, ETag) and where each is now: predicted, or, for a source step
    that already ran (a resume), from the index and manifest it published."""
    if "files" in report:
        return report["files"][shard], report["sources"][shard]
    place = next(s["uri"] for s in report[c.REPORT_WORK] if s["name"] == shard)
    files = json.loads(storage.read_bytes(f"{place}/{c.INDEX_FILE}"))
    prefix = json.loads(storage.read_bytes(f"{place}/{c.MANIFEST_FILE}"))[0]["prefix"]
    return files, {key: prefix + key for key in files}


def _shard_of(arguments: dict, report: dict) -> str:
    """A Featurize step's work shard: the one the source's report publishes at the place its
    features go under (a step is given only the place)."""
    features = arguments["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"]
    place = features.rsplit("/", 2)[0]  # <place>/features/<featurize key>
    return next(s["name"] for s in report[c.REPORT_WORK] if s["uri"] == place)


@dataclass(frozen=True)
class _Work:
    """What a Featurize job that runs will do, predicted as the job decides it."""

    folders_todo: int
    folders_reused: int
    records: int
    records_todo: int
    bytes_todo: int  # the files of the artifact folders it featurizes
    bytes_staged: int
    bytes_fetched: int


def transfer(read_mode: str, files: dict[str, dict], todo_data: int) -> tuple[int, int]:
    """(staged, fetched) bytes of a Featurize job, manifest, index and shard.json (a few KB)
    left out. Its work shard holds only the folders the record cache lacks (steps/work.py).

    download: SageMaker's File mode copies every file the ManifestFile input names: the work
    shard. stream: nothing but the manifest and index is staged; the job fetches every header
    of the work shard (its skeleton, `build_skeleton`) and its records' data files
    (`record_objects`)."""
    if read_mode != "stream":
        return _size(files), 0
    headers = sum(int(f["size"]) for key, f in files.items() if key.endswith(".hea") and not key_problem(key))
    return 0, headers + todo_data


def _record_counts(arguments: dict, shard: str, files: dict[str, dict], sources: dict[str, str], settings: dict,
                   storage) -> _Work:
    """What a Featurize step that runs would featurize and move: its work shard's headers are
    fetched from where they are now (never the data). Every record of a work shard is
    featurized: the step that listed the data left out what the record cache holds."""
    from steps.featurize.cache import folder_of
    from steps.featurize.discovery import discover_records
    from steps.featurize.stream import build_skeleton, record_objects

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        # The streaming job's skeleton: headers fetched, data files sparse (sizes and ETags from the index).
        build_skeleton(root, files, lambda key, path: storage.download(sources[key], path))
        records = discover_records(root, shard=shard, include_numerics=settings["include_numerics"])
        todo = records
        folders = (len({PurePosixPath(key).parent.as_posix() for key in files}), 0)
        todo_data = sum(record_objects(r, root, "", files).bytes for r in todo)
    # A folder's files are what the job reads for its records (sizes from the index: the data
    # files here are empty stand-ins).
    folders_todo = {folder_of(r) for r in todo}
    nbytes = sum(int(f["size"]) for key, f in files.items() if PurePosixPath(key).parent.as_posix() in folders_todo)
    staged, fetched = transfer(settings.get("read_mode", "download"), files, todo_data)
    return _Work(folders[0], folders[1], len(records), len(todo), nbytes, staged, fetched)


def _size(files: dict[str, dict]) -> int:
    return sum(int(f["size"]) for f in files.values())


def _resources(arguments: dict) -> tuple[str, int, int]:
    cluster = arguments["ProcessingResources"]["ClusterConfig"]
    return cluster["InstanceType"], int(cluster["InstanceCount"]), int(cluster["VolumeSizeInGB"])


def _source_sizes(arguments: dict, report: dict, copies: bool) -> dict:
    """Objects and bytes the source step lists, and what it copies (Reconcile): the files that
    are still production files after the copies already in the experiment (none for a step
    that copies nothing, e.g. with `featurize_reads: production`)."""
    out = {"keys": sum(int(s["files"]) for s in report.get(c.REPORT_SHARDS, [])),
           "bytes": sum(int(s["bytes"]) for s in report.get(c.REPORT_SHARDS, []))}
    if copies:
        out["bytes_todo"] = report.get("bytes_to_copy", 0)
    return out


class _Planner:
    """The runner's view of one run to come: the same definition, execution start, cache and
    storage; steps are planned in graph order, each seeing what the ones before it publish."""

    def __init__(self, cfg: Config, workdir: Path, storage: str, params: dict[str, str],
                 retry: str | None = None) -> None:
        from pipeline.local.backend import open_backend
        from pipeline.local.cache import CacheStore
        from pipeline.local.supported import load_definition
        from pipeline.local.readiness import build_graph
        from pipeline.local.start import plan_start
        from pipeline.local.state import ExecutionStore

        # The definition and settings, stored when config and code are unchanged (no SDK import,
        # no bundle); what follows reads the data anew every time.
        self.cfg, self.built = cfg, cached_build(cfg)
        self.definition = load_definition(self.built.definition)
        self.graph = build_graph(self.definition)
        self.parameters = self.definition.resolve_parameters(params)
        self.backend = open_backend(storage, Path(workdir))
        self.store = ExecutionStore(Path(workdir) / "executions")
        self.cache = CacheStore(Path(workdir) / "cache")
        self.now = datetime.now(timezone.utc)
        self.start = plan_start(self.definition, self.graph, self.store, pipeline=cfg.pipeline.name,
                                parameters=self.parameters, storage=self.backend.label, only=None, use_cache=True,
                                now=self.now, retry=retry)
        self.predicted: dict[str, dict] = {}  # step -> its property file, as far as plan can tell
        self.resolved: dict[str, dict] = {}  # step -> resolved arguments (its properties, to the steps after it)
        self.runs: set[str] = set()
        self.experiment_uri: str | None = None  # from the source step: where the Featurize reports are
        self.featurize_key: str | None = None

    def _stage(self, name: str):
        return self.cfg.registry.of_step(name)

    def _shard_job(self, name: str) -> bool:
        stage = self._stage(name)
        return stage is not None and stage.fans_out and is_shard_job(name)

    def _source(self) -> str | None:
        """The step that publishes the shards (Reconcile or the listing step), once predicted."""
        return next((n for n in self.predicted if self._stage(n) is not None and self._stage(n).publishes_shards),
                    None)

    def plan(self) -> list[StepPlan]:
        plans = []
        for name in self.graph.order:
            step = self.definition.steps[name]
            plans += self._for_each(step) if step.for_each is not None and name not in self.start.reused \
                else [self._step(name)]
        return plans

    def _scope(self, item=None):
        from pipeline.local.expressions import Scope

        return Scope(self.parameters, self.start.variables, self.resolved.get, {}, self._property_file, item)

    def _for_each(self, step) -> list[StepPlan]:
        """A ForEach step and each of its iterations, from the items its source would publish."""
        from pipeline.local.expressions import evaluate
        from pipeline.local.foreach import iterations, resolve_items

        try:
            items = resolve_items(step, self._scope())
        except LookupError as err:
            self.runs.add(step.name)
            return [StepPlan(step.name, "Runs", f"runs: after {err.args[0]}, whose outputs change")]
        plans = []
        for child in iterations(step, items):
            arguments = self.resolved[child.name] = evaluate(child.body.arguments, self._scope(child.item))
            plans.append(self._cacheable(child.name, arguments, child.body.cache))
            plans[-1].resources = _resources(arguments)
        running = sum(p.state == "Runs" for p in plans)
        if running:
            self.runs.add(step.name)
        why = f"runs: a ForEach over {len(items)} shards, {step.for_each.max_concurrency} at once; " \
              f"{running} iterations run, {len(plans) - running} cached"
        # A ForEach is never a cache hit itself, and runs no job of its own.
        return [StepPlan(step.name, "Runs", why, details={"for_each": True})] + plans

    def _property_file(self, step: str, _name: str) -> Any:
        if step not in self.predicted:
            raise LookupError(step)
        return self.predicted[step]

    def _step(self, name: str) -> StepPlan:
        from pipeline.local.expressions import evaluate

        if name in self.start.reused:
            return self._reused(name)
        try:
            arguments = self.resolved[name] = evaluate(self.definition.steps[name].arguments, self._scope())
        except LookupError as err:
            self.runs.add(name)
            plan = StepPlan(name, "Runs", f"runs: after {err.args[0]}, whose outputs change")
            # Its instances depend on parameters only: the sizing table can still price the step.
            resources = self.definition.steps[name].arguments["ProcessingResources"]
            plan.resources = _resources({"ProcessingResources": evaluate(resources, self._scope())})
            return plan
        stage = self._stage(name)
        if stage is not None and stage.publishes_shards:
            return self._source_step(stage, name, arguments)
        if stage is not None and stage.replan is not None:
            rerun = sorted(r for r in self.runs if self._shard_job(r))
            why, report = stage.replan(arguments, self.predicted.get(self._source()) or {}, rerun,
                                       self.backend.storage)
            if report:
                self.predicted[name] = report
            return StepPlan(name, "Runs", f"{stage.always_runs}; {why}", details=report,
                            resources=_resources(arguments))
        plan = self._cacheable(name, arguments, self.definition.steps[name].cache)
        plan.resources = _resources(arguments)
        return plan

    def _source_step(self, stage, name: str, arguments: dict) -> StepPlan:
        """The step that publishes the shards: predicted from what it reads (no copy)."""
        settings = _settings(self.built, stage.name)
        self.predicted[name] = stage.predict(arguments, settings, self.backend.storage)
        self.experiment_uri = _arg(arguments, c.ARG_EXPERIMENT_URI)
        plan = StepPlan(name, "Runs", stage.always_runs, resources=_resources(arguments),
                        **_source_sizes(arguments, self.predicted[name], stage.copies(settings)))
        report = self.predicted[name]
        if "folders_total" in report:
            rejected = report.get("record_cache_rejected_count", 0)
            plan.details["work"] = (
                f"tonight's work: {report['folders_todo']} of {report['folders_total']} artifact folders "
                f"({report['bytes_todo'] / 1e6:.2f} of {report['bytes_total'] / 1e6:.2f} MB) in "
                f"{report['work_shards']} work shard(s); the rest from the record cache"
                + (f"; {rejected} cache object(s) refused" if rejected else ""))
        return plan

    def _reused(self, name: str) -> StepPlan:
        from pipeline.local.properties import read_property_file

        step, properties = self.definition.steps[name], self.start.reused[name].properties
        self.resolved[name] = properties
        if step.property_files:
            self.predicted[name] = read_property_file(step, step.property_files[0]["PropertyFileName"], properties,
                                                      self.backend.storage)
        plan = StepPlan(name, "Reused", "completed in the failed execution this run resumes")
        try:  # for the sizing table's full run; tonight's does not run it
            plan.resources = _resources(properties)
        except (KeyError, TypeError):
            pass
        source = self._source()
        if self._shard_job(name) and source:
            report = self.predicted[source]
            files, _ = _shard_files(report, _shard_of(properties, report), self.backend.storage)
            plan.bytes = _size(files)
        return plan

    def _cacheable(self, name: str, arguments: dict, cache: dict | None) -> StepPlan:
        from pipeline.local.cache import cache_key

        pipeline, storage = self.cfg.pipeline.name, self.backend.storage
        key = cache_key(self.backend.label, pipeline, name, arguments)
        files = sources = None
        if self._shard_job(name):
            report = self.predicted[self._source()]
            shard = _shard_of(arguments, report)
            files, sources = _shard_files(report, shard, storage)
            # The step's output folder is named by the featurize key (code, settings, image, environment).
            self.featurize_key = arguments["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"].rsplit("/", 1)[-1]
        nbytes = _size(files) if files is not None else None
        entry, changed = self.cache.hit(pipeline, name, key, cache, storage, self.now)
        if entry is not None:
            return StepPlan(name, "Cached", "cached: same code, settings, image, environment and inputs", bytes=nbytes)
        self.runs.add(name)
        previous = self.store.source_properties(pipeline, name)
        why = f"runs again: {changed}" if changed else _why(previous[1] if previous else None, arguments)
        plan = StepPlan(name, "Runs", why, bytes=nbytes)
        if files is not None:
            work = _record_counts(arguments, shard, files, sources, _settings(self.built, self._stage(name).name), storage)
            plan.featurize, plan.reuse, plan.bytes_todo = work.folders_todo, work.folders_reused, work.bytes_todo
            plan.records, plan.records_todo = work.records, work.records_todo
            plan.bytes_staged, plan.bytes_fetched = work.bytes_staged, work.bytes_fetched
        return plan


def make_plan(cfg: Config, workdir: Path, storage: str, params: dict[str, str],
              retry: str | None = None) -> list[StepPlan]:
    """Each step of the next `deploy.py local` run (with `retry`: of `local --retry`): Cached,
    Reused or Runs, and why."""
    return _Planner(cfg, workdir, storage, params, retry).plan()


def make_sized_plan(cfg: Config, workdir: Path, storage: str, params: dict[str, str], prices: list[str] = (),
                    cpu_s_per_gb: float | None = None, retry: str | None = None):
    """The step plans and their sizing table (`pipeline/plan/table.py`), throughput measured
    by the experiment's own Featurize reports when they read enough."""
    from pipeline.plan.table import experiment_reports, size_plan

    planner = _Planner(cfg, workdir, storage, params, retry)
    plans = planner.plan()
    reports = experiment_reports(planner.backend.storage, planner.experiment_uri, planner.featurize_key) \
        if planner.experiment_uri and planner.featurize_key else []
    source = planner.predicted.get(planner._source() or "", {})
    return plans, size_plan(plans, cfg, reports, prices, cpu_s_per_gb, full_jobs(source))


def full_jobs(report: dict) -> list[int] | None:
    """The bytes of each Featurize job of a full run (nothing in the record cache): every
    macroshard's, or with `macroshards: auto` the data packed by the target (steps/work.py)."""
    if c.REPORT_SHARDS not in report:
        return None
    target = report.get("target_shard_bytes")
    if not target:
        return [int(s["bytes"]) for s in report[c.REPORT_SHARDS]]
    total = sum(int(s["bytes"]) for s in report[c.REPORT_SHARDS])
    jobs = max(1, -(-total // int(target)))
    return [total // jobs + (1 if i < total % jobs else 0) for i in range(jobs)]


def format_plan(plans: list[StepPlan]) -> str:
    width = max(len(p.name) for p in plans)
    lines = [f"{'STEP':<{width}}  {'PLAN':<7} WHY"]
    for p in plans:
        unit, scale, digits = ("GB", 1e9, 1) if (p.bytes or 0) >= 1e9 else ("MB", 1e6, 2)
        records = ""
        if p.featurize is not None:
            moved = f"stages {p.bytes_staged / scale:.{digits}f} {unit}" if p.bytes_staged \
                else f"fetches {p.bytes_fetched / scale:.{digits}f} {unit} (its headers and data)"
            records = f" (its work: {p.featurize} artifact folders, {p.records} records, " \
                      f"{p.bytes / scale:.{digits}f} {unit}; {moved})"
        elif p.details.get("work"):
            records = f" ({p.details['work']})"
        lines.append(f"{p.name:<{width}}  {p.state:<7} {p.why}{records}")
    return "\n".join(lines) + "\n"


def run_plan(cfg: Config, args, params: dict[str, str]) -> int:
    import sys

    from steps.entry import BadInput, StageFailed
    from steps.reconcile.labels import LabelsError

    from pipeline.plan.cost import UnknownInstance, parse_price
    from pipeline.plan.table import format_sizing, sizing_json

    storage = args.s3_endpoint or ("aws" if args.s3 == "aws" else "local")
    try:
        for item in args.price:
            parse_price(item)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        # The workdir `local` would use: --workdir, else local.workdir (relative to the config file).
        plans, sizing = make_sized_plan(cfg, Path(args.workdir or cfg.local.workdir or ".wavepipe"), storage, params,
                                        args.price, args.cpu_seconds_per_gb, getattr(args, "retry", None))
    except UnknownInstance as err:  # a --price for a type with no figures, given without them
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (ValueError, LabelsError, BadInput, StageFailed, FileNotFoundError) as err:
        # What the step that publishes the shards would fail on, it fails on here too.
        print(f"error: cannot plan: {err}", file=sys.stderr)
        if cfg.local.sample_data_uri:
            print(f"(the sample data at {cfg.local.sample_data_uri} is written by the first `deploy.py local`)",
                  file=sys.stderr)
        return 2
    if args.format == "json":
        steps = [{**{k: v for k, v in asdict(p).items() if k != "details"}, "bytes_moved": p.bytes_moved}
                 for p in plans]
        sys.stdout.write(json.dumps({"steps": steps, "sizing": sizing_json(sizing)}, indent=2) + "\n")
    else:
        sys.stdout.write(format_plan(plans) + format_sizing(sizing))
    return 0
