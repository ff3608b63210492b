"""The AWS runtime: Lambda entrypoint, SQS worker, event parsing and the boto3 clients."""
