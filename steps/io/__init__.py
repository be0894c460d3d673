"""Where container code meets object storage: one storage module, prefix listing, S3 Inventory reports."""
