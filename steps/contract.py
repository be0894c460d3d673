"""Every name the builder (`pipeline/`) and the containers (`steps/`) share, in one place.

Standard library only and versioned: the builder writes `CONTRACT_VERSION` into every stage's
settings file and each container entry refuses a settings file written for another version
(exit 2, naming both), so a bundle and a definition from different releases never half-agree.
Bump the version whenever a name below changes meaning or an argument is added or removed.
"""

from __future__ import annotations

from typing import Any, TypedDict

CONTRACT_VERSION = 5

# --- exit codes of every `python -m steps.<stage>` ------------------------------------------
EXIT_OK = 0
EXIT_FAILED = 1  # the stage ran and failed (its outputs are still written where it can)
EXIT_BAD_INPUT = 2  # bad arguments, settings or inputs: nothing was worth retrying

# --- folders inside a processing job ---------------------------------------------------------
PROCESSING_ROOT = "/opt/ml/processing"
CODE_DIR = f"{PROCESSING_ROOT}/input/code"
SETTINGS_DIR = f"{PROCESSING_ROOT}/input/settings"
WHEELHOUSE_INPUT = "wheels"  # the wheels of steps/requirements.txt for the job's platform and Python
WHEELHOUSE_DIR = f"{PROCESSING_ROOT}/input/{WHEELHOUSE_INPUT}"


def input_dir(name: str) -> str:
    """`/opt/ml/processing/input/<name>`: where a step's input `name` is staged."""
    return f"{PROCESSING_ROOT}/input/{name}"


def output_dir(name: str) -> str:
    """`/opt/ml/processing/output/<name>`: uploaded as the step's output `name`."""
    return f"{PROCESSING_ROOT}/output/{name}"


def settings_path(stage: str) -> str:
    return f"{SETTINGS_DIR}/{stage}.json"


# --- the settings file (`--settings`) ---------------------------------------------------------
SETTINGS_VERSION_KEY = "contract_version"
SETTINGS_STAGE_KEY = "stage"
SETTINGS_BODY_KEY = "settings"

# --- arguments --------------------------------------------------------------------------------
ARG_SETTINGS = "--settings"
ARG_INPUT = "--input"
ARG_OUTPUT = "--output"
ARG_SHARD = "--shard"
ARG_SHARD_FILE = "--shard-file"  # Featurize in a ForEach: the shard's SHARD_FILE, instead of --shard
ARG_JOBS = "--jobs"
ARG_SOURCE_URI = "--source-uri"
ARG_EXPERIMENT_URI = "--experiment-uri"
ARG_MANIFESTS = "--manifests"
ARG_MACROSHARDS = "--macroshards"
# With `macroshards: auto`: Reconcile decides the count from the bytes it found (steps/reconcile/shards.py).
ARG_TARGET_SHARD_BYTES = "--target-shard-bytes"
ARG_RELOAD = "--reload"
ARG_SQL_PARAM = "--sql-param"
ARG_ENCODED_DATA_DIR = "--encoded-data-dir"
ARG_LABELS = "--labels"
ARG_ARTIFACTS = "--artifacts"
ARG_FEATURES = "--features"
ARG_INDEX = "--index"
ARG_RECORD_CACHE = "--record-cache"
ARG_SHARDS_REPORT = "--shards-report"
ARG_FEATURIZE_KEY = "--featurize-key"
ARG_COMBINE_KEY = "--combine-key"
ARG_PREFIX = "--prefix"
ARG_MANIFEST = "--manifest"  # Featurize, read_mode stream: the shard's manifest file (no data staged)
# Featurize on several instances: their count, also in the step's cache key (its outputs' layout,
# hosts/<host>/, depends on it; an output URI is not in SageMaker's cache key).
ARG_HOSTS = "--hosts"

# --- output files -----------------------------------------------------------------------------
REPORT_FILE = "report.json"
PROGRESS_FILE = "progress.json"
FEATURES_FILE = "features.parquet"
ERRORS_FILE = "errors.parquet"
LABELS_FILE = "labels.parquet"
UNIQUE_LABELS_FILE = "unique_labels_and_counts.json"
MISSING_FILES_FILE = "missing_files.json"
SUMMARY_FILE = "waveform_summary.parquet"
SIGNAL_STATS_FILE = "signal_stats.csv"
LABEL2ID_FILE = "label2id.json"
ID2LABEL_FILE = "id2label.json"
SPLIT_METADATA_FILE = "split_metadata.json"
MANIFEST_SUFFIX = ".manifest"
# A shard's place (`<experiment>/shards/<digest>/`) holds these three, under fixed names, so a
# ForEach iteration given only the place (a plain string item) can name each of them.
MANIFEST_FILE = "shard" + MANIFEST_SUFFIX  # its S3 ManifestFile
INDEX_FILE = "index.json"  # a shard's files with size and ETag, beside its manifest
SHARD_FILE = "shard.json"  # {"shard": name}: the shard's name, read by a Featurize job given none
SHARD_FILE_KEY = "shard"
SHARD_FILE_FOLDERS = "folders"  # a work shard's shard.json: folder -> {"key": folder key, "shard": its macroshard}
TABLE_FILE = "table.json"  # beside the shard source's report: every current folder and where its rows are
WORK_NONE = "work-none"  # the one empty work shard a ForEach gets when nothing is missing
SHARD_FILES = (FEATURES_FILE, ERRORS_FILE, REPORT_FILE)  # what one Featurize shard writes
# A Featurize job on several instances (read_mode stream): each host writes SHARD_FILES under
# `hosts/<host>/` of the shared output prefix, then HOST_DONE_FILE ({"host", "hosts"}) last.
HOSTS_FOLDER = "hosts"
HOST_DONE_FILE = "host-complete.json"

# --- report keys the pipeline reads (PropertyFile + JsonGet) ----------------------------------
REPORT_SHARDS = "shards"  # Reconcile / List: [{"name", "uri", "digest", "files", "bytes"}, ...] in shard order
# The same shards as a JSON list *string* of plain strings, each a shard's place (its "uri"
# above): what a ForEachStep iterates (`IterableItems` resolves to a JSON list string; each item
# is at most 12,800 characters). No objects and no field access: the service documents neither.
REPORT_SHARD_ITEMS = "shard_items"
REPORT_WORK = "work"  # Reconcile / List: the work shards [{"name", "uri", "digest", "files", "bytes", "folders"}]
REPORT_LABELS_URI = "labels_uri"  # Reconcile: the content-addressed labels folder
REPORT_COMBINED_URI = "combined_uri"  # Combine: the content-addressed combined folder

# --- a Featurize shard's report.json (one per macroshard; per host with read_mode stream) ------
# The containers write it (steps/featurize/run.py), Combine merges hosts' (steps/combine/hosts.py),
# the builder reads it: the cost model its throughput (pipeline/plan/cost.py), `deploy.py report`
# its counts (pipeline/report/). `FeaturizeReport` is every key with its type.
REPORT_STAGE = "stage"
REPORT_SHARD = "shard"
REPORT_STATUS = "status"
REPORT_RECORDS_TOTAL = "records_total"
REPORT_RECORDS_OK = "records_ok"
REPORT_RECORDS_FAILED = "records_failed"
REPORT_RECORDS_FEATURIZED = "records_featurized"  # the records this run computed (the rest reused)
REPORT_BYTES_READ = "bytes_read"
REPORT_SECONDS = "seconds"
REPORT_CPU_SECONDS = "cpu_seconds"  # of the job's whole process tree
REPORT_RECORDS_PER_S = "records_per_s"
REPORT_MB_PER_S = "mb_per_s"
REPORT_JOBS = "jobs"
REPORT_BALANCE = "balance_efficiency"
REPORT_WORKERS = "workers"  # [{"pid", "tasks", "records", "bytes", "busy_s", "peak_rss_mb"}]
WORKER_BUSY_S = "busy_s"
REPORT_HOSTS = "hosts"  # a merged multi-host report: the hosts it was merged from
REPORT_TOP_ERROR = "top_error"  # the most common record error: {"kind", "records", "example"}; None: none failed


class FeaturizeReport(TypedDict, total=False):
    """A Featurize shard's report.json (contract version 4)."""

    stage: str
    shard: str
    status: str  # "ok" or "failed" (error_fraction over max_error_fraction)
    feature_function: str
    records_total: int
    records_ok: int
    records_failed: int
    records_partial: int
    records_numerics: int
    error_fraction: float
    max_error_fraction: float
    errors_by_kind: dict[str, int]
    top_error: dict[str, Any] | None
    rows: int
    error_rows: int
    bytes_total: int
    bytes_read: int
    seconds: float
    records_per_s: float | None
    mb_per_s: float | None
    jobs: int
    microshards: int
    balance_efficiency: float
    peak_rss_mb_per_worker: float | None
    read_mode: str
    bytes_fetched: int
    bytes_headers_fetched: int  # read_mode stream: every header of its share, fetched before the records
    fetch_wait_s: float
    records_in_flight_peak: int
    workers: list[dict[str, Any]]
    cpu_seconds: float
    records_featurized: int  # every record of its work shard (the step that planned it left out what is cached)
    records_reused: int  # 0: reuse is planned before the job (steps/work.py)
    folders: int  # the work shard's artifact folders
    record_cache: str | None
    record_cache_pack: str | None  # its features.parquet, kept in the record cache
    record_cache_written: int  # folders indexed (those without a failed record)
    record_cache_uncached: list[str]
    host: str
    hosts: list[str]


# --- folders under an experiment and under a shards place ------------------------------------
RECONCILED_ARTIFACTS = "data/reconciled_artifacts"
SHARDS_FOLDER = "shards"
FEATURES_FOLDER = "features"
LABELS_FOLDER = "labels"
COMBINED_FOLDER = "combined"
RECORD_CACHE_FOLDER = "record-cache"

# --- choices of the EncodedDataDir pipeline parameter ------------------------------------------
FULL_DATASET = "full_dataset"
PARTIAL_DATASET = "partial_dataset"
ENCODED_DATA_DIRS = (FULL_DATASET, PARTIAL_DATASET)

# --- environment variables --------------------------------------------------------------------
ENV_STAGE = "WAVEPIPE_STAGE"
ENV_KMS_KEY_ID = "WAVEPIPE_KMS_KEY_ID"
ENV_PIP_INSTALL = "WAVEPIPE_PIP_INSTALL"
ENV_WHEELHOUSE = "WAVEPIPE_WHEELHOUSE"  # install with --no-index from this folder
ENV_PIP_INDEX_URL = "WAVEPIPE_PIP_INDEX_URL"  # or from this (private) index
# The code bundle's sha256, set by the builder: steps/bootstrap.py checks the staged bundle before
# unpacking it (it names the variable itself: it runs before the bundle, and this file, exist).
ENV_CODE_SHA256 = "WAVEPIPE_CODE_SHA256"
# In the bundle: file name -> sha256 of every wheel uv.lock records for steps/requirements.txt on
# Linux x86_64; the wheelhouse is checked against it before anything is installed.
WHEEL_HASHES = "steps/wheel-hashes.json"
# In a virtual environment the local runner made and installed a wheelhouse into: the jobs it
# runs install there (everything is found satisfied) instead of into a folder of their own.
PREINSTALLED_VENV_MARKER = ".wavepipe-complete"
ENV_S3_ROOT = "WAVEPIPE_S3_ROOT"  # local runner: s3://bucket/key is <root>/bucket/key
ENV_LOCAL = "WAVEPIPE_LOCAL"  # set by the local runner
ENV_CURRENT_HOST = "WAVEPIPE_CURRENT_HOST"
# SageMaker describes the job's instances here ({"current_host": "algo-1", "hosts": [...]});
# the local runner writes one per instance and names it in ENV_RESOURCE_CONFIG.
RESOURCE_CONFIG = "/opt/ml/config/resourceconfig.json"
ENV_RESOURCE_CONFIG = "WAVEPIPE_RESOURCE_CONFIG"
# SageMaker's failure-reason file of a processing job: what the container writes there (at most
# 1 KiB) becomes the job's FailureReason (docs.aws.amazon.com/sagemaker/latest/dg/
# build-your-own-processing-container.html). The local runner names one per instance in
# ENV_FAILURE_MESSAGE and shows it in its table.
FAILURE_MESSAGE = "/opt/ml/output/message"
FAILURE_MESSAGE_BYTES = 1024
ENV_FAILURE_MESSAGE = "WAVEPIPE_FAILURE_MESSAGE"

# --- the user's own code in the code bundle (`code.paths`, `code.requirements`) ---------------
# `<bundle>/user/<name>/...`: each listed folder or file at the import root under its own name;
# bootstrap puts `<bundle>/user` on sys.path and PYTHONPATH after the bundle root (steps/ wins).
USER_CODE_DIR = "user"
# `code.requirements`, one per line; installed after steps/requirements.txt when the job installs.
USER_REQUIREMENTS = f"{USER_CODE_DIR}/requirements.txt"


def shard_name(index: int) -> str:
    """`shard-0001`..: the name of the macroshard at 0-based `index` of a counted split."""
    return f"shard-{index + 1:04d}"


def work_name(index: int) -> str:
    """`work-0001`..: the name of the work shard at 0-based `index` of a run's packed work."""
    return f"work-{index + 1:04d}"
