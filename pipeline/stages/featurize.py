"""Featurize: one ProcessingStep per macroshard, all in parallel.

Its input is the shard's whole file set on one instance (FullyReplicated: a WFDB record's
header and data files depend on each other), from the manifest that Reconcile (or, over raw
prefixes, the listing step) published at the shard's content address, read at run time from
that step's report.json (PropertyFile + JsonGet; see `steps/publish.py`).

Cost follows change twice over:

- A step's input and output URIs name its shard's place, which depends only on that shard's
  files; the artifact-to-shard assignment is stable (a hash of the artifact id). A changed
  file reruns its shard's step only; the others are cache hits, their outputs where an
  earlier execution wrote them: `<place>/features/<featurize key>/`, the key hashing
  everything static in the step (code, settings, image, environment).
- Inside a step that runs, the per-record cache (`<experiment>/record-cache/<featurize key>/`,
  `steps/featurize/cache.py`) reuses the rows of every record whose files did not change.
"""

from __future__ import annotations

import re
from typing import Union

from pydantic import Field, field_validator

from pipeline.config.models import INSTANCE_TYPE, Config, Model, StageInfra
from pipeline.names import step_name
from pipeline.stages.common import BuildContext, processing_step, report_value, s3_input, s3_output, step_key
from pipeline.stages.registry import Stage, Upstream
from steps import contract as c
from steps.featurize.settings import FeaturizeSettings

NAME = "featurize"
DATA = c.input_dir("data")
MANIFEST = c.input_dir("manifest")
INDEX = c.input_dir("index")
OUTPUT = c.output_dir("features")
# The listing step's own arguments leave 90 of SageMaker's 100 container arguments for prefixes.
MAX_PREFIX_SHARDS = 90
# The definition is capped at 1 MiB (CreatePipeline). Measured on config/example.yaml: about
# 3,760 bytes per Featurize step (compact; its manifest, index and record cache), so 278 fit; 250 leaves room
# for longer names, tags and environment. `validate` and `upsert` measure the real definition.
MAX_COUNTED_SHARDS = 250
SHARD_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$")


class Prefix(Model):
    name: str = Field(pattern=SHARD_NAME.pattern)
    prefix: str = Field(description="Key prefix under the input URI, e.g. a MIMIC-III group folder `30`.")


class FeaturizeStage(StageInfra, FeaturizeSettings):
    """`stages.featurize`: `macroshards: N` with Reconcile, or `prefixes: [...]` without."""

    instance_type: str = Field("ml.m5.4xlarge", pattern=INSTANCE_TYPE)
    macroshards: int | None = Field(
        None, ge=1, le=MAX_COUNTED_SHARDS,
        description="How many macroshards Reconcile splits the artifacts into (balanced by bytes), one step each.")
    prefixes: list[Prefix] | None = Field(
        None, min_length=1, description="Key prefixes under InputUri, one step each (without Reconcile): a prefix "
        "`30`, or {name, prefix}.")

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
        True, description="Reuse the rows of records already featurized with the same code and settings "
        "(content-addressed under the experiment's record-cache/; the job reads and writes S3 itself).")

    def shard_names(self) -> list[str]:
        if self.prefixes is not None:
            return [p.name for p in self.prefixes]
        return [c.shard_name(i) for i in range(self.macroshards or 0)]


def checks(cfg: Config) -> list[str]:
    section = cfg.stages.featurize
    with_reconcile = cfg.stages.reconcile is not None
    if section.macroshards is not None and section.prefixes is not None:
        return ["stages.featurize: give macroshards (a count, with reconcile) or prefixes (without), not both"]
    if with_reconcile and section.macroshards is None:
        return ["stages.featurize.macroshards: with reconcile, give a count (Reconcile assigns artifacts to shards "
                "by bytes); prefixes are for raw folders without reconcile"]
    if not with_reconcile and section.prefixes is None:
        return ["stages.featurize.prefixes: without reconcile, list the key prefixes (e.g. the group folders "
                "30..39), one step each"]
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
    import hashlib

    return hashlib.sha256(f"{key}/hosts={count}".encode()).hexdigest()[:16]


def source_step(upstream: Upstream):
    """The step that published the shards: Reconcile, or the listing step over prefixes."""
    (step,) = upstream.get("reconcile") or upstream["listing"]
    return step


def shard_uri(source, index: int):
    """The content-addressed place of shard `index` (0-based), from the source's report."""
    return report_value(source, f"{c.REPORT_SHARDS}[{index}].uri")


def features_uri(ctx: BuildContext, source, index: int):
    from sagemaker.core.workflow.functions import Join

    return Join(on="/", values=[shard_uri(source, index), c.FEATURES_FOLDER, featurize_key(ctx)])


def record_cache_uri(ctx: BuildContext):
    """`<experiment>/record-cache/<featurize key>`: rows of records already featurized, by
    content (see steps/featurize/cache.py); shared by every execution of the experiment."""
    from sagemaker.core.workflow.functions import Join

    return Join(on="/", values=[ctx.experiment_uri(), c.RECORD_CACHE_FOLDER, featurize_key(ctx)])


def shard_inputs(read_mode: str, place, shard: str) -> tuple[list, list]:
    """(inputs, arguments) that give a Featurize job its shard.

    download: the manifest as a ManifestFile input (SageMaker copies every file it lists to the
    volume before the job starts). stream: the manifest file itself as an S3Prefix input of its
    one object (nothing else is copied); the job's workers fetch the records."""
    from sagemaker.core.workflow.functions import Join

    manifest = Join(on="/", values=[place, shard + c.MANIFEST_SUFFIX])
    index = s3_input("index", Join(on="/", values=[place, c.INDEX_FILE]), INDEX)
    if read_mode == "stream":
        return [s3_input("manifest", manifest, MANIFEST), index], \
            [c.ARG_MANIFEST, f"{MANIFEST}/{shard}{c.MANIFEST_SUFFIX}"]
    return [s3_input("data", manifest, DATA, data_type="ManifestFile"), index], [c.ARG_INPUT, DATA]


def build(ctx: BuildContext, upstream: Upstream) -> list:
    infra = ctx.cfg.stages.featurize
    source = source_step(upstream)
    steps = []
    for index, shard in enumerate(infra.shard_names()):
        inputs, arguments = shard_inputs(infra.read_mode, shard_uri(source, index), shard)
        arguments += [c.ARG_OUTPUT, OUTPUT, c.ARG_SHARD, shard, c.ARG_INDEX, f"{INDEX}/{c.INDEX_FILE}"]
        if infra.record_cache:
            arguments += [c.ARG_RECORD_CACHE, record_cache_uri(ctx)]
        steps.append(processing_step(
            ctx, step_name(NAME, shard), NAME, infra, arguments, inputs=inputs,
            outputs=[s3_output("features", features_uri(ctx, source, index), OUTPUT)],
        ))
    return steps


def splits_by_host(cfg: Config) -> bool:
    """Streaming jobs split a shard's records across instances; downloading ones cannot."""
    return cfg.stages.featurize.read_mode == "stream"


STAGE = Stage(name=NAME, section=FeaturizeStage, settings=FeaturizeSettings, build=build,
              functions=("feature_function",), checks=checks, splits_by_host=splits_by_host,
              host_split_hint="set stages.featurize.read_mode: stream, whose jobs split a shard's records across "
                              "instances, or use 1")
