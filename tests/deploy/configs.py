"""Configs for the deploy tests: the students example with every deploy variant."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from batchdrop.config import Config, load_config

STUDENTS: dict[str, Any] = {
    "inbound": "s3://in/incoming/",
    "archive": "s3://archive/done/",
    "errors": "s3://errors/",
    "table": {"url": "dynamodb://students", "partition_key": "student_id", "sort_key": "course"},
    "schema": {
        "fields": [
            {"name": "student_id", "type": "string", "constraints": {"pattern": "A[0-9]{5}"}},
            {"name": "fname"},
            {"name": "lname"},
            {"name": "course"},
        ]
    },
    "notify": ["console", "https://hooks.example.com/batchdrop"],
}

#: name → deploy settings (and table changes); together they cover every switch of the template.
VARIANTS: dict[str, dict[str, Any]] = {
    "queue": {},
    "direct": {"trigger": "direct"},
    "no-sort-key": {
        "_no_sort_key": True,
        "billing": "provisioned",
        "read_capacity": 3,
        "write_capacity": 7,
    },
    "provisioned-sequential": {"billing": "provisioned", "sequential": True, "trigger": "direct"},
    "sequential-queue": {"sequential": True, "email": "ops@example.com", "versioning": True},
    "api": {"api": True, "tracing": True, "architecture": "x86_64"},
    "api-public": {"api": True, "api_auth": "none", "log_retention_days": 400},
    "existing-buckets": {
        "inbound_bucket": "corp-inbound",
        "archive_bucket": "corp-archive",
        "errors_bucket": "corp-errors",
    },
}


def write_config(tmp: Path, deploy: dict[str, Any] | None = None, **changes: Any) -> Path:
    data = yaml.safe_load(yaml.safe_dump(STUDENTS))
    deploy = dict(deploy or {})
    if deploy.pop("_no_sort_key", False):
        data["table"].pop("sort_key")
        data["table"]["partition_key"] = "student_id"
        data["schema"]["fields"] = [{"name": "student_id", "type": "integer"}, {"name": "fname"}]
    data.update(changes)
    if deploy:
        data["deploy"] = deploy
    path = tmp / "batchdrop.yaml"
    path.write_text(
        "# students, deployed\n" + yaml.safe_dump(data, sort_keys=False), encoding="utf-8"
    )
    return path


def make_config(tmp: Path, deploy: dict[str, Any] | None = None, **changes: Any) -> Config:
    return load_config(write_config(tmp, deploy, **changes), environ={})
