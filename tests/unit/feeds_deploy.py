"""A deployed config with three feeds, for the template and stack tests of feeds.

``students`` (a prefix; text keys), ``grades`` (a glob; a number partition key; only_if_newer),
``late-fees`` (a prefix; a composite partition key; a ``-`` in its name).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from batchdrop.config import Config, load_config

FEEDS: dict[str, Any] = {
    "inbound": "s3://in/incoming/",
    "archive": "s3://archive/done/",
    "errors": "s3://errors/",
    "notify": ["console"],
    "feeds": [
        {
            "name": "students",
            "match": {"prefix": "students/"},
            "table": {
                "url": "dynamodb://students",
                "partition_key": "student_id",
                "sort_key": "course",
            },
            "schema": {"fields": [{"name": "student_id"}, {"name": "fname"}, {"name": "course"}]},
        },
        {
            "name": "grades",
            "match": {"glob": "grades_*.csv"},
            "table": {
                "url": "dynamodb://grades",
                "partition_key": "exam",
                "sort_key": "student_id",
            },
            "schema": {
                "fields": [
                    {"name": "exam", "type": "integer"},
                    {"name": "student_id"},
                    {"name": "grade", "type": "number"},
                    {"name": "graded_on", "type": "date"},
                ]
            },
            "only_if_newer": "graded_on",
        },
        {
            "name": "late-fees",
            "match": {"prefix": "fees/"},
            "table": {"url": "dynamodb://fees", "partition_key": ["student_id", "term"]},
            "schema": {
                "fields": [
                    {"name": "student_id"},
                    {"name": "term", "type": "date"},
                    {"name": "amount", "type": "number"},
                ]
            },
            "mode": "snapshot",
        },
    ],
}

#: each feed's table: logical id, key schema, attribute types
TABLES = {
    "students": (
        "FeedStudentsTable",
        [("student_id", "HASH"), ("course", "RANGE")],
        {"student_id": "S", "course": "S"},
    ),
    "grades": (
        "FeedGradesTable",
        [("exam", "HASH"), ("student_id", "RANGE")],
        {"exam": "N", "student_id": "S"},
    ),
    "late-fees": ("FeedLateFeesTable", [("student_id#term", "HASH")], {"student_id#term": "S"}),
}


def feeds_data(*, modes: bool = True, **changes: Any) -> dict[str, Any]:
    """The three feeds' settings; ``modes=False`` leaves out the write modes (only_if_newer,
    snapshot)."""
    data = copy.deepcopy(FEEDS)
    if not modes:
        for feed in data["feeds"]:
            feed.pop("only_if_newer", None)
            feed.pop("mode", None)
    data.update(changes)
    return data


def write_feeds(tmp: Path, deploy: dict[str, Any] | None = None, **changes: Any) -> Path:
    modes = changes.pop("modes", True)
    data = feeds_data(modes=modes, **changes)
    if deploy:
        data["deploy"] = deploy
    path = tmp / "batchdrop.yaml"
    path.write_text("# three feeds\n" + yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def feeds_config(tmp: Path, deploy: dict[str, Any] | None = None, **changes: Any) -> Config:
    return load_config(write_feeds(tmp, deploy, **changes), environ={})
