"""Options of the listing stage (`stages.listing` in the YAML), and how any stage lists its
source (`ListingOptions`, also `stages.reconcile.listing`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class ListingOptions(BaseModel):
    """How the source prefix is listed: concurrent ListObjectsV2 over key ranges cut at folders
    `depth` levels down (`steps/io/prefix_listing.py`), or an S3 Inventory report (`steps/io/inventory.py`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    threads: int = Field(32, ge=1, le=256, description="Concurrent list requests (1: one paginator).")
    depth: int | None = Field(
        None, ge=0, le=8,
        description="Folder levels discovered with Delimiter='/' before the key space is cut into ranges "
        "listed at once (0: one paginator). Default: Reconcile, the folder levels of key_pattern before "
        "{file} (MIMIC: 2, group and record); the listing stage, 1 (the record folders of a prefix).",
    )
    inventory: str | None = Field(
        None,
        description="S3 Inventory report of the input's bucket (CSV or Parquet), read instead of listing: "
        "the s3:// URI of one report's manifest.json, or of the report configuration's folder "
        "(`s3://<destination>/<prefix>/<source bucket>/<config id>/`), whose newest manifest is read. "
        "A report is up to a day (or week) old: see inventory_max_age_hours.",
    )
    inventory_max_age_hours: float = Field(
        48, gt=0,
        description="A report created longer ago than this is refused: objects written or deleted since are "
        "not in it, and the run would publish shards of a stale listing.",
    )

    @field_validator("inventory")
    @classmethod
    def _manifest(cls, value: str | None) -> str | None:
        if value is not None and not (value.startswith("s3://") and value.endswith(("/manifest.json", "/"))):
            raise ValueError("inventory must be the s3:// URI of an inventory report's manifest.json, or of its "
                             f"configuration's folder (ending with '/'): {value!r}")
        return value


class ListingSettings(ListingOptions):
    """`stages.listing`: the prefixes are listed one after another, each with `threads` requests."""
