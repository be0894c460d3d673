"""One module per stage (its section model, step builder and registry entry) and the registry
of them, in DAG order: Listing (raw prefixes) or Reconcile -> Featurize-<shard> x N -> Combine
-> Encode."""

from __future__ import annotations

from functools import lru_cache

from pipeline.stages.registry import Registry, Stage


@lru_cache(maxsize=1)
def default_registry() -> Registry:
    from pipeline.stages import combine, encode, featurize, listing, reconcile

    return Registry((listing.STAGE, reconcile.STAGE, featurize.STAGE, combine.STAGE, encode.STAGE))


__all__ = ["Registry", "Stage", "default_registry"]
