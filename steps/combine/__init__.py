"""Combine stage: every macroshard's features in one table with normalised signal names,
per-signal statistics, and an optional Glue Data Catalog table."""
