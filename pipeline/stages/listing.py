"""Listing: over raw key prefixes (Featurize + Combine without Reconcile), list each prefix
under InputUri and publish its files as a content-addressed shard (`steps/publish.py`); with
`macroshards: auto`, list InputUri (or the prefixes) and split it by bytes into shards of whole
folders, as many as the bytes found call for.

It always runs (uncached): an S3 listing is exactly what a cache key cannot see. Without it a
prefix's Featurize step would be keyed by the prefix URI alone, and a changed, added or
deleted file would be served from the cache for the whole expiry. It is in the pipeline
whenever `stages.featurize.prefixes` is (or `macroshards: auto` without Reconcile);
`stages.listing` only sets its infrastructure."""

from __future__ import annotations

from pipeline.config.models import Config, StageInfra
from pipeline.stages.names import step_name
from pipeline.build.parameters import INPUT_URI
from pipeline.stages.common import BuildContext, argument, processing_step, report_file, s3_output
from pipeline.stages import featurize as featurize_stage
from pipeline.stages.registry import S3Access, Stage, Upstream
from steps import contract as c
from steps.listing.settings import ListingSettings

NAME = "listing"
OUTPUT = c.output_dir(NAME)
REPORT = "ListingReport"


class ListingStage(StageInfra, ListingSettings):
    """`stages.listing` (optional): the listing step's infrastructure."""


def implied(cfg: Config) -> bool:
    """Over raw prefixes, or `macroshards: auto` without Reconcile."""
    featurize = getattr(cfg.stages, "featurize", None)
    if featurize is None:
        return False
    return featurize.prefixes is not None or (featurize.auto and getattr(cfg.stages, "reconcile", None) is None)


def build(ctx: BuildContext, upstream: Upstream) -> list:
    featurize = ctx.cfg.stages.featurize
    prefixes = [f"{p.name}={p.prefix.strip('/')}" for p in featurize.prefixes or []]
    arguments = [c.ARG_SOURCE_URI, ctx.params[INPUT_URI], c.ARG_EXPERIMENT_URI, ctx.experiment_uri(),
                 c.ARG_OUTPUT, OUTPUT]
    if featurize.auto:
        arguments += [c.ARG_TARGET_SHARD_BYTES, str(featurize.target_bytes)]
    if featurize.record_cache:
        arguments += [c.ARG_RECORD_CACHE, featurize_stage.record_cache_uri(ctx)]
    if prefixes:
        arguments += [c.ARG_PREFIX, *prefixes]
    return [processing_step(
        ctx, step_name(NAME), NAME, ctx.section(NAME), arguments,
        inputs=[], outputs=[s3_output(NAME, ctx.execution_uri(NAME), OUTPUT)],
        property_files=[report_file(REPORT, NAME)], cacheable=False,
    )]


def output_uri(step):
    return step.properties.ProcessingOutputConfig.Outputs[NAME].S3Output.S3Uri


def predict(arguments: dict, settings: dict, storage) -> dict:
    """The report.json the listing step would write (`deploy.py plan`): the macroshards and
    tonight's work against the record cache as it is now, plus each work shard's files (size,
    ETag) and where each is now (`files`, `sources`)."""
    from steps.listing.run import logical_shards, parse_prefixes, plan_listing
    from steps.work import predicted_work

    args = arguments["AppSpecification"]["ContainerArguments"]
    prefixes = parse_prefixes(args[args.index(c.ARG_PREFIX) + 1:args.index(c.ARG_SETTINGS)]) \
        if c.ARG_PREFIX in args else []
    target = argument(arguments, c.ARG_TARGET_SHARD_BYTES)
    experiment = argument(arguments, c.ARG_EXPERIMENT_URI)
    _, planned, plan, _ = plan_listing(ListingSettings.model_validate(settings), storage,
                                       argument(arguments, c.ARG_SOURCE_URI), prefixes,
                                       int(target) if target else None, argument(arguments, c.ARG_RECORD_CACHE))
    where = {k: o.uri for _, _, objects in planned for k, o in objects.items()}
    return {c.REPORT_SHARDS: [s.as_report() for s in logical_shards(experiment, planned)],
            **predicted_work(experiment, plan, where, argument(arguments, c.ARG_RECORD_CACHE))}


def access(cfg: Config) -> S3Access:
    section = cfg.stages.enabled().get(NAME)
    return S3Access(inventories=(section.inventory,)) if section is not None and section.inventory else S3Access()


STAGE = Stage(name=NAME, section=ListingStage, settings=ListingSettings, build=build, implied=implied,
              always_runs="always runs: it reads a listing that its cache key cannot see",
              publishes_shards=True, predict=predict, cost="source",
              s3_access=lambda cfg: "the listing step (implied by stages.featurize.prefixes) lists S3 itself",
              access=access)
