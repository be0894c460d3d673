"""Options of the reconcile stage: the YAML section `stages.reconcile` and the container's
`--settings` file are this one model."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from steps.resolve import FUNC_REF
from steps.listing.settings import ListingOptions

PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class LabelsSource(BaseModel):
    """Where the labels come from: a SQLite file, or a SQLAlchemy URL whose credentials live in
    AWS Secrets Manager (never in the config)."""

    # A rejected URL may hold a password: errors must not echo the input.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    sqlite_uri: str | None = Field(
        default=None,
        description="Local path or s3:// URI of a SQLite file (read through steps.io.storage).",
    )
    url: str | None = Field(
        default=None,
        description="SQLAlchemy URL without a password, e.g. postgresql+psycopg2://db.internal:5432/labels.",
    )
    secret_arn: str | None = Field(
        default=None,
        description="Secrets Manager secret (ARN or name) holding username/password/host/port/dbname "
        "JSON, as RDS secrets do. Only with `url`.",
    )
    query: str = Field(
        default="SELECT artifact_id, label FROM labels",
        description="SQL returning at least the id and label columns; may use bound parameters "
        "such as :experiment_name (values come from --sql-param, never formatted into the text).",
    )
    # exclude: never in the settings file, so configs without it keep their settings hash.
    query_file: str | None = Field(
        default=None,
        exclude=True,
        description="Instead of `query`: a .sql file relative to the config file; the builder reads it into "
        "`query` (the jobs get the text, never the file).",
    )
    id_column: str = Field(default="artifact_id", description="Column of the query holding the artifact id.")
    label_column: str = Field(default="label", description="Column of the query holding the label.")
    connect_timeout_seconds: int = Field(
        default=30, ge=1, description="How long to wait for the database before failing."
    )

    @field_validator("sqlite_uri")
    @classmethod
    def _sqlite_scheme(cls, value: str | None) -> str | None:
        if value and "://" in value and not value.startswith("s3://"):
            raise ValueError(f"sqlite_uri is a local path or an s3:// URI of a SQLite file, not "
                             f"{value.partition('://')[0]}://; a database server is given as url")
        return value

    @field_validator("url")
    @classmethod
    def _sqlalchemy_url(cls, value: str | None) -> str | None:
        if not value:
            return value
        from sqlalchemy.engine import make_url

        try:
            parsed = make_url(value)
        except Exception as err:  # noqa: BLE001 - SQLAlchemy raises several types
            raise ValueError(f"url is not a SQLAlchemy URL: {err}") from None
        if parsed.password:
            raise ValueError("url must not contain a password; put credentials in secret_arn")
        try:
            parsed.get_dialect()
        except Exception:  # noqa: BLE001 - NoSuchModuleError, or a dialect that fails to load
            raise ValueError(f"url: {parsed.drivername}:// is not a SQLAlchemy database URL (e.g. "
                             "postgresql+psycopg2://host:5432/db, mysql+pymysql://host/db)") from None
        return value

    @model_validator(mode="after")
    def _one_source(self) -> "LabelsSource":
        if self.sqlite_uri and self.url:
            raise ValueError("give either sqlite_uri or url, not both")
        if self.secret_arn and not self.url:
            raise ValueError("secret_arn needs url (the secret supplies its credentials)")
        return self


class DedupSettings(BaseModel):
    """Duplicates are artifacts whose content hash is equal; the smallest artifact id survives."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(default=True, description="Drop artifacts whose content duplicates another's.")
    file: str | None = Field(
        default=None,
        description="File name (or glob) whose content identifies an artifact; null hashes all its files.",
    )
    hash: Literal["etag", "sha256"] = Field(
        default="etag",
        description="`etag`: size and S3 ETag from the listing (no extra request; objects written "
        "with SSE-KMS never compare equal); `sha256`: read and hash the content.",
    )


class ReconcileSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    labels: LabelsSource = Field(default_factory=LabelsSource, description="Where the labels come from.")
    key_pattern: str = Field(
        default="{artifact_id}/{file}",
        description="Layout of keys under --source-uri; MIMIC style is {group}/{artifact_id}/{file}. "
        "A trailing {file} may contain '/'.",
    )
    files_from_prod: tuple[str, ...] = Field(
        default=("*",), description="File names or glob patterns to take from production."
    )
    files_on_research: tuple[str, ...] = Field(
        default=(),
        description="Files (names or globs) every artifact must have in the experiment folder "
        "after copy and process_func; missing ones are repaired or fail the step.",
    )
    dedup: DedupSettings = Field(default_factory=DedupSettings, description="Duplicate detection.")
    process_func: str | None = Field(
        default=None,
        description="Optional `module:function` run per artifact after its files are in place: "
        "func(row, files, experiment_uri, reload).",
    )
    max_process_failures: int = Field(
        default=0, ge=0, description="How many artifacts process_func may fail on before the step fails."
    )
    copy_threads: int = Field(default=32, ge=1, le=512, description="Parallel server-side copies.")
    listing: ListingOptions = Field(
        default_factory=ListingOptions,
        description="How --source-uri is listed: concurrent requests, folder depth, or an S3 Inventory report.",
    )
    featurize_reads: Literal["copy", "production"] = Field(
        default="copy",
        description="What the manifests point at: the experiment copy, or the production files "
        "(then nothing is copied).",
    )
    sample_size: int = Field(default=20, ge=0, description="How many example ids the report lists.")

    @property
    def listing_depth(self) -> int:
        """Folder levels of the key pattern above {file}: where artifacts' folders are."""
        return self.key_pattern.split("{file}")[0].count("/")

    @field_validator("key_pattern")
    @classmethod
    def _pattern(cls, value: str) -> str:
        names = PLACEHOLDER.findall(value)
        for required in ("artifact_id", "file"):
            if names.count(required) != 1:
                raise ValueError(f"key_pattern needs {{{required}}} exactly once: {value!r}")
        if len(set(names)) != len(names):
            raise ValueError(f"key_pattern repeats a placeholder: {value!r}")
        if value.startswith("/"):
            raise ValueError(f"key_pattern is relative to --source-uri, no leading '/': {value!r}")
        return value

    @field_validator("process_func")
    @classmethod
    def _func(cls, value: str | None) -> str | None:
        if value is not None and not FUNC_REF.match(value):
            raise ValueError(f"process_func must look like 'package.module:function': {value!r}")
        return value

    @field_validator("files_from_prod")
    @classmethod
    def _some_files(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("files_from_prod must name at least one file or glob")
        return value
