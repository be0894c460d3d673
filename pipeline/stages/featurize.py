"""Featurize: one ProcessingStep per work shard, all in parallel.

A work shard is what the record cache lacks (steps/work.py): the step that lists the data
(Reconcile, or the listing step) keys every artifact folder from the listing, looks it up in
the record cache (`<base>/record-cache/<record cache key>/`, steps/featurize/cache/) and
publishes the folders it did not find at content-addressed places, read at run time from that
step's report.json (PropertyFile + JsonGet; see `steps/publish.py`). Each job's input is its
work shard's files on one instance (FullyReplicated: a WFDB record's header and data files
depend on each other); it featurizes all of it and keeps its output in the record cache as a
pack. Combine assembles the current table from the packs and tonight's outputs.

- `macroshards: auto`: one ForEach over the work shards, packed by bytes (target_shard_size):
  a change starts about ceil(changed bytes / target) jobs, whatever macroshards it touches.
- a counted `macroshards: N` or `prefixes`: one step per macroshard, reading that macroshard's
  work (its missing folders; an untouched one's empty work is a step-cache hit once it ran).

A step's input and output URIs name its work shard's place: the same work (a retry, or what
failed before and still fails) is a cache hit, its outputs where an earlier execution wrote
them: `<place>/features/<featurize key>/`, the key hashing everything static in the step.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Annotated, Literal, Union

from pydantic import ByteSize, Field, field_validator

from pipeline.config.models import INSTANCE_TYPE, Config, Model, StageInfra
from pipeline.stages.names import body_name, step_name
from pipeline.stages.common import BuildContext, processing_step, report_value, s3_input, s3_output, step_key
from pipeline.stages.registry import ReportReading, Stage, Upstream
from steps import contract as c
from steps.featurize.settings import FeaturizeSettings

NAME = "featurize"
DATA = c.input_dir("data")
MANIFEST = c.input_dir("manifest")
INDEX = c.input_dir("index")
SHARD = c.input_dir("shard")
OUTPUT = c.output_dir("features")
# The listing step's own arguments leave 90 of SageMaker's 100 container arguments for prefixes.
MAX_PREFIX_SHARDS = 90
# The definition is capped at 1 MiB (CreatePipeline). Measured on config/example.yaml: about
# 3,740 bytes per Featurize step (compact; its manifest, shard.json, record cache, code sha256), so 280
# fit; 250 leaves room for longer names, tags and environment. `validate` and `upsert` measure the real definition.
MAX_COUNTED_SHARDS = 250
SHARD_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$")
AUTO = "auto"
DEFAULT_TARGET_SHARD_SIZE = "20GB"
# SageMaker runs at most 50 iterations of a ForEach at once (SDK 3.27 MAX_CONCURRENCY_MAX).
MAX_CONCURRENCY = 50
DEFAULT_CONCURRENCY = 20


class Prefix(Model):
    name: str = Field(pattern=SHARD_NAME.pattern)
    prefix: str = Field(description="Key prefix under the input URI, e.g. a MIMIC-III group folder `30`.")


class FeaturizeStage(StageInfra, FeaturizeSettings):
    """`stages.featurize`: `macroshards: N` with Reconcile, or `prefixes: [...]` without."""

    instance_type: str = Field("ml.m5.4xlarge", pattern=INSTANCE_TYPE)
    macroshards: Annotated[int, Field(ge=1, le=MAX_COUNTED_SHARDS)] | Literal["auto"] | None = Field(
        None, description="How many macroshards Reconcile splits the artifacts into, one step each; or `auto`: "
        "Reconcile decides the count at run time from the bytes it found (target_shard_size) and one "
        "ForEach step runs a Featurize job per shard (max_concurrency at once).")
    target_shard_size: ByteSize | None = Field(
        None, ge=1000, description=f"With macroshards: auto, about how many bytes per shard, e.g. `20GB` (default "
        f"{DEFAULT_TARGET_SHARD_SIZE}). The count is rounded up to a power of two, so shards average between "
        "half this and this, and the count changes only when the data doubles.")
    max_concurrency: int | None = Field(
        None, ge=1, le=MAX_CONCURRENCY, description=f"With macroshards: auto, how many Featurize jobs run at "
        f"once (at most {MAX_CONCURRENCY}, SageMaker's ForEach limit; default {DEFAULT_CONCURRENCY}).")
    prefixes: list[Prefix] | None = Field(
        None, min_length=1, description="Key prefixes under InputUri, one step each (without Reconcile): a prefix "
        "`30`, or {name, prefix}.")

    @field_validator("macroshards", mode="before")
    @classmethod
    def _count_or_auto(cls, value):
        # One message for both spellings, instead of pydantic's one per union member.
        if value is None or value == AUTO:
            return value
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_COUNTED_SHARDS:
            raise ValueError(f"give a count from 1 to {MAX_COUNTED_SHARDS} (one step each in the definition, "
                             f"which is capped at 1 MiB), or {AUTO!r} (decided at run time, any count), "
                             f"got {value!r}")
        return value

    # Editors see what may be written (a string or a mapping); the model keeps one shape.
    @field_validator("prefixes", mode="before", json_schema_input_type=list[Union[str, Prefix]] | None)
    @classmethod
    def _named(cls, value):
        if isinstance(value, list):
            return [{"name": v.strip("/"), "prefix": v} if isinstance(v, str) else v for v in value]
        return value

    @field_validator("prefixes")
    @classmethod
    def _unique(cls, value):
        names = [p.name for p in value or []]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate prefix names: {dupes}")
        return value

    record_cache: bool = Field(
        True, description="Reuse the rows of records already featurized with the same featurize code, feature "
        "modules, settings, image and numeric libraries (content-addressed under record-cache/; the job reads and "
        "writes S3 itself).")
    record_cache_scope: Literal["pipeline", "experiment"] = Field(
        "pipeline", description="`pipeline`: one record cache for every experiment of the pipeline "
        "(`<output prefix>/<pipeline>/record-cache/`), so a new ExperimentName over the same data reuses its "
        "rows. `experiment`: each experiment its own (`experiments/<name>/record-cache/`).")

    @property
    def auto(self) -> bool:
        return self.macroshards == AUTO

    @property
    def target_bytes(self) -> int:
        if self.target_shard_size is None:
            return int(ByteSize._validate(DEFAULT_TARGET_SHARD_SIZE, None))
        return int(self.target_shard_size)

    def shard_names(self) -> list[str]:
        """The shards' names known when the definition is built (none with `auto`)."""
        if self.prefixes is not None:
            return [p.name for p in self.prefixes]
        if self.auto:
            return []
        return [c.shard_name(i) for i in range(self.macroshards or 0)]


def checks(cfg: Config) -> list[str]:
    section = cfg.stages.featurize
    with_reconcile = cfg.stages.reconcile is not None
    if section.macroshards is not None and not section.auto and section.prefixes is not None:
        return ["stages.featurize: give macroshards (a count, with reconcile) or prefixes (without), not both"]
    if with_reconcile and section.macroshards is None:
        return ["stages.featurize.macroshards: with reconcile, give a count (Reconcile assigns artifacts to shards "
                "by bytes); prefixes are for raw folders without reconcile"]
    if not section.auto:
        given = [k for k in ("target_shard_size", "max_concurrency") if getattr(section, k) is not None]
        if given:
            return [f"stages.featurize.{given[0]}: only with macroshards: auto"]
    if with_reconcile and section.auto and section.prefixes is not None:
        return ["stages.featurize.prefixes: with reconcile and macroshards: auto, Reconcile shards the artifacts; "
                "prefixes are for raw folders without reconcile"]
    if not with_reconcile and section.macroshards is not None and not section.auto:
        return ["stages.featurize.macroshards: a count needs reconcile (it assigns the artifacts); without "
                "reconcile, list prefixes or set macroshards: auto"]
    if not with_reconcile and section.prefixes is None and not section.auto:
        return ["stages.featurize.prefixes: without reconcile, list the key prefixes (e.g. the group folders "
                "30..39), one step each; or set macroshards: auto to split InputUri by bytes"]
    if section.prefixes is not None and len(section.prefixes) > MAX_PREFIX_SHARDS:
        return [f"stages.featurize.prefixes: {len(section.prefixes)}, at most {MAX_PREFIX_SHARDS} (the listing step "
                "receives each prefix as a container argument, and SageMaker allows 100); use reconcile and a "
                "macroshards count for more"]
    return []


def featurize_key(ctx: BuildContext) -> str:
    """The features' place under a shard. Several instances write `hosts/<host>/` files instead
    of one set, so their count is in the key: output folders of other layouts never mix."""
    key = step_key(ctx, NAME)
    count = ctx.cfg.stages.featurize.instance_count
    if count == 1:
        return key
    return hashlib.sha256(f"{key}/hosts={count}".encode()).hexdigest()[:16]


def source_step(upstream: Upstream):
    """The step that published the shards: Reconcile, or the listing step over prefixes."""
    (step,) = upstream.get("reconcile") or upstream["listing"]
    return step


def shard_uri(source, index: int):
    """The content-addressed place of the work of macroshard `index` (0-based), from the
    source's report: the folders of that macroshard the record cache lacks (steps/work.py)."""
    return report_value(source, f"{c.REPORT_WORK}[{index}].uri")


# How a job gets its records, not what it computes from them: left out of the record cache's key,
# so switching to streaming (or to more instances) reuses every record featurized before.
TRANSPORT_SETTINGS = ("read_mode", "stream")
# The libraries whose versions can change a row's numbers (pinned in steps/requirements.txt).
NUMERIC_LIBRARIES = ("numpy", "pandas", "pyarrow", "scipy", "wfdb")


def numeric_pins() -> dict[str, str]:
    """name -> pinned specifier of NUMERIC_LIBRARIES in the jobs' requirements (the lock's export)."""
    from pipeline.build.wheelhouse import pinned

    return dict(sorted((r.name.lower(), str(r.specifier)) for r in pinned() if r.name.lower() in NUMERIC_LIBRARIES))


def feature_code(feature_function: str) -> list[str]:
    """Bundle names (prefixes) of the code that computes a record's rows: steps/featurize/, the
    top-level package (or module) of the feature function, the stages' or the user's own, and
    the user's requirements (installed after the locked ones, they may replace a library)."""
    module = feature_function.split(":", 1)[0].split(".")
    top = f"steps/{module[1]}" if module[0] == "steps" and len(module) > 1 else \
        "steps" if module[0] == "steps" else f"{c.USER_CODE_DIR}/{module[0]}"
    return ["steps/featurize/", f"{top}/", f"{top}.py", c.USER_REQUIREMENTS]


def record_cache_key(ctx: BuildContext) -> str:
    """A hash of what decides a record's rows: the featurize code and feature modules (not the
    rest of the bundle: editing Encode or a README keeps every row), the settings (but how
    records are fetched), the image, the numeric libraries' pins, the user's environment
    variables and whether the job installs its requirements."""
    section = ctx.section(NAME)
    settings = {k: v for k, v in ctx.registry[NAME].container_settings(ctx.cfg).items() if k not in TRANSPORT_SETTINGS}
    static = {"code": ctx.assets.members_digest(feature_code(section.feature_function)), "settings": settings,
              "image": ctx.image_uri, "libraries": numeric_pins(), "installs": ctx.install_requirements,
              "environment": dict(sorted(section.environment.items()))}
    return hashlib.sha256(json.dumps(static, sort_keys=True).encode()).hexdigest()[:16]


def record_cache_uri(ctx: BuildContext):
    """`<base>/record-cache/<record cache key>` (or the experiment's own with
    `record_cache_scope: experiment`): rows of records already featurized, by content (see
    steps/featurize/cache/); shared by every execution, and by default every experiment."""
    from sagemaker.core.workflow.functions import Join

    scope = ctx.experiment_uri() if ctx.cfg.stages.featurize.record_cache_scope == "experiment" else ctx.base_uri
    return Join(on="/", values=[scope, c.RECORD_CACHE_FOLDER, record_cache_key(ctx)])


def shard_inputs(read_mode: str, place) -> tuple[list, list]:
    """(inputs, arguments) that give a Featurize job its shard, from its place alone (the
    place's files have fixed names).

    download: the manifest as a ManifestFile input (SageMaker copies every file it lists to the
    volume before the job starts). stream: the manifest file itself as an S3Prefix input of its
    one object (nothing else is copied), and the index every fetch is checked against; the
    job's workers fetch the records. (A download job needs no index: the record cache is
    looked up before it, and the definition is capped at 1 MiB: every input counts.)"""
    from sagemaker.core.workflow.functions import Join

    manifest = Join(on="/", values=[place, c.MANIFEST_FILE])
    if read_mode == "stream":
        index = s3_input("index", Join(on="/", values=[place, c.INDEX_FILE]), INDEX)
        return [s3_input("manifest", manifest, MANIFEST), index], \
            [c.ARG_MANIFEST, f"{MANIFEST}/{c.MANIFEST_FILE}", c.ARG_INDEX, f"{INDEX}/{c.INDEX_FILE}"]
    return [s3_input("data", manifest, DATA, data_type="ManifestFile")], [c.ARG_INPUT, DATA]


def shard_step(ctx: BuildContext, name: str, place):
    """The Featurize job of one work shard at `place` (its content-addressed folder): a counted
    macroshard's work, or a ForEach iteration's (`place` is the bare current item). The job
    reads the shard's name and its folders (keys, macroshards) from the place's `shard.json`."""
    from sagemaker.core.workflow.functions import Join

    infra = ctx.cfg.stages.featurize
    inputs, arguments = shard_inputs(infra.read_mode, place)
    arguments += [c.ARG_OUTPUT, OUTPUT]
    inputs.append(s3_input("shard", Join(on="/", values=[place, c.SHARD_FILE]), SHARD))
    arguments += [c.ARG_SHARD_FILE, f"{SHARD}/{c.SHARD_FILE}"]
    if infra.instance_count > 1:
        # In the cache key (the arguments are; outputs are not): a step built for another count
        # never serves outputs laid out for this one (featurize_key puts them elsewhere).
        arguments += [c.ARG_HOSTS, str(infra.instance_count)]
    if infra.record_cache:
        arguments += [c.ARG_RECORD_CACHE, record_cache_uri(ctx)]
    features = Join(on="/", values=[place, c.FEATURES_FOLDER, featurize_key(ctx)])
    return processing_step(ctx, name, NAME, infra, arguments, inputs=inputs,
                           outputs=[s3_output("features", features, OUTPUT)])


def for_each_step(ctx: BuildContext, source):
    """`macroshards: auto`: one ForEach over the shards the source step published
    (`shard_items` of its report: plain strings, each a shard's place), whatever their number;
    the definition does not grow with it. Each iteration is a cacheable `FeaturizeShard-<i>`
    whose inputs and outputs are its shard's content-addressed place, exactly like a counted
    shard's step. The body reads only the bare current item, never a field of it: it is the
    first value of each `Std:Join` that names a file of the place (an S3 URI must name the
    object, and the features' folder is under the place, so the item cannot be used whole)."""
    from sagemaker.mlops.workflow.for_each_step import CurrentItem, ForEachStep

    infra = ctx.cfg.stages.featurize
    body = shard_step(ctx, body_name(NAME), CurrentItem())
    return ForEachStep(name=step_name(NAME), iterable_items=report_value(source, c.REPORT_SHARD_ITEMS),
                       max_concurrency=infra.max_concurrency or DEFAULT_CONCURRENCY, for_each_body=[body])


def build(ctx: BuildContext, upstream: Upstream) -> list:
    infra = ctx.cfg.stages.featurize
    source = source_step(upstream)
    if infra.auto:
        return [for_each_step(ctx, source)]
    return [shard_step(ctx, step_name(NAME, shard), shard_uri(source, index))
            for index, shard in enumerate(infra.shard_names())]


def splits_by_host(cfg: Config) -> bool:
    """Streaming jobs split a shard's records across instances; downloading ones cannot."""
    return cfg.stages.featurize.read_mode == "stream"


def slots(cfg: Config, steps: int) -> int:
    """How many Featurize jobs run at once: the pipeline's parallelism, and with
    `macroshards: auto` the ForEach's max_concurrency (at most 50)."""
    if cfg.stages.featurize.auto:
        return min(cfg.max_parallel_steps, cfg.stages.featurize.max_concurrency or DEFAULT_CONCURRENCY)
    return min(cfg.max_parallel_steps, steps)


def s3_access(cfg: Config) -> str | None:
    """Streaming jobs fetch their records, and the record cache lives in S3."""
    if cfg.stages.featurize.read_mode == "stream":
        return "stages.featurize with read_mode stream fetches the shard's records from S3 itself"
    if cfg.stages.featurize.record_cache:
        return "stages.featurize reads and writes its record cache in S3 (record_cache: false turns it off)"
    return None


STAGE = Stage(name=NAME, section=FeaturizeStage, settings=FeaturizeSettings, build=build,
              functions=("feature_function",), checks=checks, splits_by_host=splits_by_host,
              host_split_hint="set stages.featurize.read_mode: stream, whose jobs split a shard's records across "
                              "instances, or use 1",
              fans_out=True, cost="fan-out", slots=slots, s3_access=s3_access,
              report=ReportReading(shard_reports=True))
