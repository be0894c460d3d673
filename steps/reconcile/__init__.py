"""Reconcile: labels from SQL joined with raw files on S3; each experiment gets its own
deduplicated, validated copy and one manifest per macroshard. See `run.reconcile`."""
