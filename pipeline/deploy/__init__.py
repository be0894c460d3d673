"""Deploy commands: upsert, start, schedule, versions, status, delete (boto3 against AWS)."""
