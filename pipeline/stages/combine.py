"""Combine: every shard's features into one table and signal statistics.

It always runs (uncached), because what it reads, the shards' feature outputs, can be missing
or failed in ways no cache key sees: a Combine that ran over a failed shard (with
`run_when_shards_fail`) must not be served once that shard has succeeded. It is cheap when
nothing changed: it lists the shards' outputs, digests what it found (each file's ETag, and
which shards are missing) and, when `<experiment>/combined/<combine key>/<digest>/` already
holds a combine of exactly that, reuses it instead of combining again. Encode reads the
combined folder from Combine's report.json (JsonGet), so Encode's cache key changes exactly
when the combined data does.

It depends on the shard steps by name (with `run_when_shards_fail`, via StepDependency ANY, so
it starts even when a shard failed, combines what exists and reports the rest)."""

from __future__ import annotations

from pydantic import Field

from pipeline.config.models import Config, StageInfra
from pipeline.stages.names import step_name
from pipeline.stages import featurize as featurize_stage
from pipeline.plan import prices
from pipeline.stages.common import (
    BuildContext, argument, processing_step, report_file, report_value, s3_input, s3_output, step_key)
from pipeline.stages.registry import ReportReading, S3Access, Stage, Upstream
from steps import contract as c
from steps.combine.settings import CombineSettings

NAME = "combine"
SHARDS = c.input_dir("shards")
OUTPUT = c.output_dir(NAME)
REPORT = "CombineReport"


class CombineStage(StageInfra, CombineSettings):
    """`stages.combine`."""

    run_when_shards_fail: bool = Field(
        False, description="Run Combine when some Featurize steps failed (StepDependency ANY)."
    )
    require_all_shards: bool | None = Field(
        None, description="Fail when a shard is missing, failed or invalid (after writing what exists). Default: "
        "true, unless run_when_shards_fail (then Combine combines what exists and reports the rest).")


def derived_settings(cfg: Config) -> dict:
    """Combine reports the shards it expected and did not find: their names come from Featurize.

    Unless `run_when_shards_fail` asks to combine what exists, every shard is required: Combine
    then runs only after every Featurize step completed, so a missing, failed (on several hosts,
    the shard's error fraction is decided here) or invalid shard is an inconsistency, and a
    Combine that succeeded over part of the data would be served as the whole."""
    section = cfg.stages.combine
    required = not section.run_when_shards_fail if section.require_all_shards is None else section.require_all_shards
    return {"expected_shards": cfg.stages.featurize.shard_names(), "require_all_shards": required}


def build(ctx: BuildContext, upstream: Upstream) -> list:
    from sagemaker.mlops.workflow.step_dependency import StepDependency, TriggerCondition

    infra = ctx.cfg.stages.combine
    featurize_steps = upstream["featurize"]
    source = featurize_stage.source_step(upstream)
    if infra.run_when_shards_fail:
        depends_on = [StepDependency(s, TriggerCondition.ANY) for s in featurize_steps]
    else:
        depends_on = [s.name for s in featurize_steps]
    # The source step's report lists every shard's place; the features are under each place.
    arguments = [c.ARG_OUTPUT, OUTPUT, c.ARG_SHARDS_REPORT, f"{SHARDS}/{c.REPORT_FILE}",
                 c.ARG_FEATURIZE_KEY, featurize_stage.featurize_key(ctx),
                 c.ARG_EXPERIMENT_URI, ctx.experiment_uri(), c.ARG_COMBINE_KEY, step_key(ctx, NAME)]
    return [processing_step(
        ctx, step_name(NAME), NAME, infra, arguments,
        inputs=[s3_input("shards", source.properties.ProcessingOutputConfig.Outputs[source_output(source)]
                         .S3Output.S3Uri, SHARDS)],
        outputs=[s3_output(NAME, ctx.execution_uri(NAME), OUTPUT)],
        depends_on=depends_on, property_files=[report_file(REPORT, NAME)], cacheable=False,
    )]


def source_output(step) -> str:
    """The output name of the step that published the shards (its stage's name)."""
    return step.property_files[0].output_name


def combined_uri(step):
    """The content-addressed folder holding this execution's combine (from its report.json)."""
    return report_value(step, c.REPORT_COMBINED_URI)


def replan(arguments: dict, source_report: dict, rerun: list[str], storage) -> tuple[str, dict]:
    """What Combine would do (`deploy.py plan`): combine anew after shard steps that rerun, or
    reuse the content-addressed combine of exactly these shard outputs; and its report."""
    from steps.combine.published import read_digest
    from steps.io.storage import join_uri

    if rerun:
        return f"combines anew after {', '.join(rerun)}", {}
    key = argument(arguments, c.ARG_FEATURIZE_KEY)
    outputs = {s["name"]: join_uri(s["uri"], c.FEATURES_FOLDER, key) for s in source_report[c.REPORT_WORK]}
    combine_key = argument(arguments, c.ARG_COMBINE_KEY)
    place = join_uri(argument(arguments, c.ARG_EXPERIMENT_URI), c.COMBINED_FOLDER, combine_key,
                     read_digest(storage, outputs, combine_key, source_report.get("table_sha256", "")))
    reused = storage.head(join_uri(place, c.REPORT_FILE)) is not None
    return ("reuses the combine of these shard outputs" if reused else "these shard outputs were never combined"), \
        {c.REPORT_COMBINED_URI: place}


def access(cfg: Config) -> S3Access:
    section = cfg.stages.enabled().get(NAME)
    return S3Access(glue=section.glue) if section is not None and section.glue is not None else S3Access()


STAGE = Stage(name=NAME, section=CombineStage, settings=CombineSettings, build=build, needs=("featurize",),
              derived_settings=derived_settings,
              always_runs="always runs: whether each shard's output exists is not in its cache key",
              replan=replan, rough_seconds=(prices.COMBINE_S, prices.COMBINE_S_PER_SHARD),
              s3_access=lambda cfg: "stages.combine reads the shards' outputs and keeps its own content-addressed "
                                    "outputs in S3",
              access=access, report=ReportReading(summary_file=c.SUMMARY_FILE))
