"""Options of the listing stage (`stages.listing` in the YAML)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ListingSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    threads: int = Field(16, ge=1, le=256, description="Prefixes listed at once.")
