"""The listing stage: each raw key prefix published as a content-addressed shard."""
