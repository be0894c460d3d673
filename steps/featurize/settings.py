"""Options of the featurize stage: the YAML section `stages.featurize` and the container's
`--settings` file are this one model."""

from __future__ import annotations

from typing import Any, Callable, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from steps.resolve import FUNC_REF
from steps.resolve import load_function as load_functions_ref

BUILTIN_FEATURE_FUNCTION = "steps.featurize.summary:summarize_record"


class StreamSettings(BaseModel):
    """`stages.featurize.stream`: how workers fetch their records with `read_mode: stream`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    records_in_flight: int = Field(
        default=3, ge=1, le=64,
        description="Records each worker holds at once (the one being featurized plus those being "
        "prefetched): bounds the scratch space and memory to about this many records per worker.",
    )
    part_size_mb: int = Field(
        default=8, ge=5, le=512,
        description="Objects larger than this are fetched as concurrent ranged GETs of this size.",
    )
    threads: int = Field(
        default=8, ge=1, le=64,
        description="Concurrent GET requests per worker (its S3 connection pool).",
    )
    max_attempts: int = Field(
        default=8, ge=1, le=30,
        description="Attempts per request (botocore's standard retry mode: exponential backoff with jitter "
        "on throttling such as SlowDown and 503, RequestTimeout and connection errors) and per ranged part "
        "whose body breaks off mid-read (s3transfer). Past that the record becomes a fetch_error row.",
    )
    scratch_dir: str | None = Field(
        default=None,
        description="Where a record's files are written while it is featurized, deleted right after; "
        "empty: the system temporary folder.",
    )


class FeaturizeSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    feature_function: str = Field(
        default=BUILTIN_FEATURE_FUNCTION,
        description="Per-record feature function as `module:function`. It receives one discovered "
        "record (steps.featurize.records.RecordRef) plus `feature_options` as keyword arguments and "
        "returns a FeatureResult, a DataFrame or an iterable of row dicts. The built-in is the "
        "per (record, segment, signal) waveform summary.",
    )
    feature_options: dict[str, Any] = Field(
        default_factory=dict,
        description="Keyword arguments of the feature function (JSON values). The built-in takes "
        "`window_samples` (frames read per window, bounds memory) and `verify_checksum`.",
    )
    jobs: int | None = Field(
        default=None,
        ge=1,
        description="Worker processes per instance; empty: every vCPU, except that a downloaded shard of under "
        "64 MiB for the built-in function is featurized in the job's own process (a pool would take longer to "
        "start than the work takes). The --jobs argument wins.",
    )
    max_error_fraction: float = Field(
        default=0.05,
        ge=0.0,
        le=1.0,
        description="Fail the step (exit 1, outputs still written) when more than this fraction of "
        "the shard's records has at least one error row.",
    )
    include_numerics: bool = Field(
        default=True,
        description="Featurize numerics records (`<record>n`, about one sample per minute) too; "
        "their rows carry is_numerics=true.",
    )
    microshards_per_worker: int = Field(
        default=8,
        ge=1,
        le=1000,
        description="Records are packed into about this many microshards (joblib tasks) per worker, "
        "largest first: more gives better balance, fewer less dispatch overhead.",
    )
    read_mode: Literal["download", "stream"] = Field(
        default="download",
        description="`download`: SageMaker copies the whole shard to the job's volume before it starts (File "
        "mode). `stream`: the job receives only the shard's manifest and index; its workers fetch each "
        "record's objects from S3 themselves (concurrent ranged GETs, a bounded prefetch, retries), so "
        "transfer overlaps compute, the volume holds no data, and `instance_count > 1` splits one shard's "
        "records across instances.",
    )
    stream: StreamSettings = Field(default_factory=StreamSettings,
                                   description="Options of `read_mode: stream`.")
    progress_interval_s: float = Field(
        default=1.0,
        gt=0,
        description="Minimum seconds between rewrites of progress.json in the output folder.",
    )

    @field_validator("feature_function")
    @classmethod
    def _func_ref(cls, value: str) -> str:
        if not FUNC_REF.match(value):
            raise ValueError(f"not a `module:function` reference: {value!r}")
        return value


def load_function(ref: str) -> Callable[..., Any]:
    """Import the feature function; ValueError naming the reference when it does not resolve."""
    return load_functions_ref(ref, "feature function")
