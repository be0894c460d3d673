"""Reconcile: labels (SQL) joined with raw files (S3), copied per experiment, split into shards.

It is never cached: its cache key (arguments, code, settings) cannot see what it reads, a
database and an S3 listing that change between runs, so a cached Reconcile would serve stale
labels and miss new files. Rerunning it is cheap when nothing changed (identical copies are
skipped), and it publishes each shard's manifest and the labels at content addresses (named in
its report.json, see `steps/publish.py`), which is what keeps the expensive Featurize steps and
Encode cacheable: a shard whose files did not change keeps its address."""

from __future__ import annotations

from pipeline.stages.names import step_name
from pipeline.build.parameters import EXPERIMENT, INPUT_URI, RELOAD
from pipeline.stages.common import BuildContext, argument, processing_step, report_file, report_value, s3_output
from pipeline.stages.registry import S3Access, Stage, Upstream
from pipeline.config.models import Config, StageInfra
from steps import contract as c
from steps.reconcile.settings import ReconcileSettings

NAME = "reconcile"
OUTPUT = c.output_dir(NAME)
REPORT = "ReconcileReport"


class ReconcileStage(StageInfra, ReconcileSettings):
    """`stages.reconcile`."""


def shard_arguments(featurize) -> list[str]:
    """How Reconcile splits the artifacts: a fixed count, or (auto) from the bytes it finds."""
    if featurize is not None and featurize.auto:
        return [c.ARG_TARGET_SHARD_BYTES, str(featurize.target_bytes)]
    return [c.ARG_MACROSHARDS, str(featurize.macroshards if featurize else 1)]


def build(ctx: BuildContext, upstream: Upstream) -> list:
    from sagemaker.core.workflow.functions import Join

    featurize = getattr(ctx.cfg.stages, "featurize", None)
    p = ctx.params
    arguments = [
        c.ARG_SOURCE_URI, p[INPUT_URI],
        c.ARG_EXPERIMENT_URI, ctx.experiment_uri(),
        c.ARG_OUTPUT, OUTPUT,
        *shard_arguments(featurize),
        c.ARG_RELOAD, p[RELOAD],
        # Bound as a SQL parameter by the container, never formatted into the query text.
        c.ARG_SQL_PARAM, Join(on="", values=["experiment_name=", p[EXPERIMENT]]),
    ]
    if featurize is not None and featurize.record_cache:
        from pipeline.stages.featurize import record_cache_uri

        # Tonight's work is what the record cache lacks (steps/work.py).
        arguments += [c.ARG_RECORD_CACHE, record_cache_uri(ctx)]
    report = report_file(REPORT, NAME)
    return [processing_step(
        ctx, step_name(NAME), NAME, ctx.cfg.stages.reconcile, arguments,
        inputs=[], outputs=[s3_output(NAME, ctx.execution_uri(NAME), OUTPUT)],
        property_files=[report], cacheable=False,
    )]


def output_uri(step):
    return step.properties.ProcessingOutputConfig.Outputs[NAME].S3Output.S3Uri


def labels_uri(step):
    """The content-addressed labels folder Reconcile published."""
    return report_value(step, c.REPORT_LABELS_URI)


def checks(cfg) -> list[str]:
    labels = cfg.stages.reconcile.labels
    if labels.sqlite_uri or labels.url:
        return []
    return ["stages.reconcile.labels: no source of labels: set sqlite_uri (a SQLite file: a path or s3:// URI) "
            "or url (a SQLAlchemy URL, credentials in secret_arn)"]


def predict(arguments: dict, settings: dict, storage) -> dict:
    """The report.json Reconcile would write, as far as addresses go (`deploy.py plan`): from
    the labels and the production listing, copying nothing."""
    from steps.reconcile.labels import parse_sql_params
    from steps.reconcile.run import predict as predict_report

    args = arguments["AppSpecification"]["ContainerArguments"]
    sql = [args[i + 1] for i, a in enumerate(args) if a == c.ARG_SQL_PARAM]
    target = argument(arguments, c.ARG_TARGET_SHARD_BYTES)
    return predict_report(ReconcileSettings.model_validate(settings), argument(arguments, c.ARG_SOURCE_URI),
                          argument(arguments, c.ARG_EXPERIMENT_URI),
                          macroshards=int(argument(arguments, c.ARG_MACROSHARDS) or 1),
                          target_shard_bytes=int(target) if target else None, sql_params=parse_sql_params(sql),
                          storage=storage, record_cache=argument(arguments, c.ARG_RECORD_CACHE))


def access(cfg: Config) -> S3Access:
    """The labels' SQLite file and secret, and an S3 Inventory report instead of a listing."""
    section = cfg.stages.enabled().get(NAME)
    if section is None:
        return S3Access()
    sqlite = section.labels.sqlite_uri
    return S3Access(inventories=tuple(u for u in [section.listing.inventory] if u),
                    objects=(sqlite,) if sqlite and sqlite.startswith("s3://") else (),
                    secrets=tuple(a for a in [section.labels.secret_arn] if a))


STAGE = Stage(name=NAME, section=ReconcileStage, settings=ReconcileSettings, build=build,
              functions=("process_func",),
              always_runs="always runs: it reads a database and a listing that its cache key cannot see",
              publishes_shards=True, predict=predict, copies=lambda settings: settings["featurize_reads"] == "copy",
              cost="source", s3_access=lambda cfg: "stages.reconcile calls the S3 API and the database itself",
              access=access, checks=checks)
