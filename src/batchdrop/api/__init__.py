"""The query API (FastAPI): ``create_app(config)``; ``batchdrop serve`` and the Lambda adapter."""
