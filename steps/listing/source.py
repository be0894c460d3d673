"""The objects of a stage's source: a concurrent listing, or an S3 Inventory report."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Iterator

from steps.io import inventory as s3inventory
from steps.io import storage as st
from steps.listing.settings import ListingOptions

log = logging.getLogger("steps.listing")


@dataclass
class Source:
    """How the source will be read (`facts`, for the report) and a way to read a prefix of it."""

    storage: st.Storage
    source_uri: str
    options: ListingOptions
    depth: int
    manifest: s3inventory.Manifest | None = None
    facts: dict = field(default_factory=dict)
    _rows: object = None  # the report's rows under source_uri, read once for every prefix

    def objects(self, prefix_uri: str) -> Iterator[st.ObjectInfo]:
        """Objects under `prefix_uri` (inside source_uri) in key order, whichever way they are read."""
        if self.manifest is None:
            return self.storage.list(prefix_uri, depth=self.depth, workers=self.options.threads)
        if self._rows is None:
            self._rows = s3inventory.load_rows(self.storage, self.manifest, self.source_uri.rstrip("/") + "/")
        return s3inventory.iter_objects(self._rows, prefix_uri)


def open_source(storage: st.Storage, source_uri: str, options: ListingOptions, default_depth: int) -> Source:
    """Check the inventory report (if configured) before anything is read: InventoryError names
    the manifest when it is missing, malformed, of another bucket or too old."""
    depth = default_depth if options.depth is None else options.depth
    if options.inventory is None:
        return Source(storage, source_uri, options, depth, facts={"listing": "ListObjectsV2", "listing_threads": options.threads,
                                                      "listing_depth": depth})
    manifest = s3inventory.read_manifest(storage, options.inventory)
    age = s3inventory.check_usable(manifest, source_uri, options.inventory_max_age_hours)
    log.info("reading the S3 Inventory report of %s (%.1f h old)", manifest.created.isoformat(), age)
    return Source(storage, source_uri, options, depth, manifest,
                  facts={"listing": "S3 Inventory", **manifest.facts(), "inventory_age_hours": round(age, 2)})
