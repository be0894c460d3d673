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

from pydantic import BaseModel, ConfigDict

from pipeline.config.models import Config, StageInfra
from pipeline.stages.names import step_name
from pipeline.build.parameters import INPUT_URI
from pipeline.stages.common import BuildContext, processing_step, report_file, s3_output
from pipeline.stages.registry import Stage, Upstream
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
    if prefixes:
        arguments += [c.ARG_PREFIX, *prefixes]
    return [processing_step(
        ctx, step_name(NAME), NAME, ctx.section(NAME), arguments,
        inputs=[], outputs=[s3_output(NAME, ctx.execution_uri(NAME), OUTPUT)],
        property_files=[report_file(REPORT, NAME)], cacheable=False,
    )]


def output_uri(step):
    return step.properties.ProcessingOutputConfig.Outputs[NAME].S3Output.S3Uri


STAGE = Stage(name=NAME, section=ListingStage, settings=ListingSettings, build=build, implied=implied)
