"""Feeds in the Lambda handler and the queue worker, on the moto server: one function, one
queue, one ledger; each event's file loaded into its own feed's table, a file that matches no
feed rejected with its receipt, and a config without feeds as it always was."""

from __future__ import annotations

import json
from typing import Any

import pytest

from batchdrop.aws.handler import Runtime
from batchdrop.aws.worker import Worker
from batchdrop.config import Config, parse_config

from .conftest import STUDENT_FIELDS, STUDENTS_CSV, Stack, create_table, s3_event
from .test_worker import notify_queue

pytestmark = pytest.mark.aws
GRADES_CSV = "id,course,grade\nA1,maths,17\nA2,art,12\n"


def feeds_config(stack: Stack) -> Config:
    grades = f"grades-{stack.suffix}"
    if grades not in stack.ddb.list_tables()["TableNames"]:
        create_table(stack.ddb, grades, key=("id", "course"))
    data: dict[str, Any] = {
        "inbound": f"s3://{stack.inbound}/incoming/",
        "archive": f"s3://{stack.archive}/",
        "errors": f"s3://{stack.errors}/rejected/",
        "ledger": f"dynamodb://{stack.ledger}",
        "notify": [f"sns://{stack.topic_arn}"],
        "aws": {"endpoint_url": stack.endpoint, "region": "us-east-1", "max_workers": 4},
        "feeds": [
            {
                "name": "students",
                "match": {"prefix": "students/"},
                "table": {
                    "url": f"dynamodb://{stack.table}",
                    "partition_key": "student_id",
                    "sort_key": "course",
                },
                "schema": {"fields": STUDENT_FIELDS},
            },
            {
                "name": "grades",
                "match": {"glob": "grades_*.csv"},
                "table": {
                    "url": f"dynamodb://{grades}",
                    "partition_key": "id",
                    "sort_key": "course",
                },
                "schema": {
                    "fields": [
                        {"name": "id"},
                        {"name": "course"},
                        {"name": "grade", "type": "integer"},
                    ]
                },
            },
        ],
    }
    return parse_config(data, source="test", environ={})


def grade_items(stack: Stack) -> list[tuple[str, str, str]]:
    reply = stack.ddb.scan(TableName=f"grades-{stack.suffix}", ConsistentRead=True)
    return sorted((i["id"]["S"], i["course"]["S"], i["grade"]["N"]) for i in reply["Items"])


def drop_all(stack: Stack) -> list[dict[str, Any]]:
    """One file of each feed and one that matches no feed; their S3 events."""
    files = {
        "incoming/students/term1.csv": STUDENTS_CSV,
        "incoming/grades_2026.csv": GRADES_CSV,
        "incoming/teachers.csv": "id,name\nT1,Grace\n",
    }
    events = []
    for key, body in files.items():
        put = stack.upload(key, body)
        events.append(s3_event(stack.inbound, key, size=len(body), etag=put["ETag"].strip('"')))
    return events


def emf_lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(x) for x in out.splitlines() if x.startswith('{"_aws"')]


def test_each_event_loads_its_feeds_table_and_an_unmatched_file_gets_a_receipt(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    runtime = Runtime(feeds_config(stack))
    capsys.readouterr()
    results = [runtime.handle(event, lambda: 600.0)["results"][0] for event in drop_all(stack)]

    assert [r["status"] for r in results] == ["loaded", "loaded", "rejected"]
    assert {i["student_id"] for i in stack.items()} == {"A10001", "A10002", "A10003"}
    assert grade_items(stack) == [("A1", "maths", "17"), ("A2", "art", "12")]
    assert stack.keys(stack.inbound) == []
    assert "rejected/teachers.csv" in stack.keys(stack.errors)
    beside = stack.s3.get_object(Bucket=stack.errors, Key="rejected/teachers.receipt.json")
    why = json.loads(beside["Body"].read())
    assert why["status"] == "rejected" and why["feed"] is None
    assert "teachers.csv matches no feed" in why["reason"]
    assert "grades: glob 'grades_*.csv'" in why["reason"]
    # one ledger: every run in it, each with its feed
    runs = runtime.pipeline.backends.ledger.runs()
    assert sorted((r["file"], r["receipt"]["feed"]) for r in runs) == [
        ("grades_2026.csv", "grades"),
        ("students/term1.csv", "students"),
        ("teachers.csv", None),
    ]
    # the notifications name the feed, and carry it as an attribute subscribers filter on
    sent = {m["MessageAttributes"].get("feed", {}).get("Value"): m for m in stack.receipts()}
    assert set(sent) == {"students", "grades", None}
    assert sent["grades"]["Subject"].startswith("batchdrop [grades]: grades_2026.csv loaded")
    # metrics: a Feed dimension beside the service's
    emf = emf_lines(capsys.readouterr().out)
    loaded = [m for m in emf if "FilesLoaded" in m]
    assert {m["Feed"] for m in loaded} == {"students", "grades"}
    assert all(
        m["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["service", "Feed"]] for m in loaded
    )
    assert [m["Feed"] for m in emf if "FilesRejected" in m] == ["(none)"]


def test_the_worker_routes_each_queued_event_to_its_feed(stack: Stack) -> None:
    url = notify_queue(stack)
    drop_all(stack)
    stats = Worker(Runtime(feeds_config(stack)), url, wait_seconds=1, batch=10).run(
        until_empty=True
    )

    assert stats.failed == 0 and stats.deleted >= 3  # and the s3:TestEvent
    assert grade_items(stack) == [("A1", "maths", "17"), ("A2", "art", "12")]
    assert len(stack.items()) == 4
    assert stack.keys(stack.inbound) == []
    assert {"rejected/teachers.csv", "rejected/teachers.receipt.json"} <= set(
        stack.keys(stack.errors)
    )


def test_a_config_without_feeds_is_as_it_was(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    from batchdrop.aws.handler import metrics

    metrics.clear_metrics()  # figures another test left unflushed in this process
    runtime = Runtime(stack.config())
    capsys.readouterr()
    body = STUDENTS_CSV
    put = stack.upload("incoming/students.csv", body)
    event = s3_event(
        stack.inbound, "incoming/students.csv", size=len(body), etag=put["ETag"].strip('"')
    )
    (result,) = runtime.handle(event, lambda: 600.0)["results"]

    assert result["status"] == "loaded"
    (run,) = runtime.pipeline.backends.ledger.runs()
    assert run["receipt"]["feed"] is None
    (msg,) = stack.receipts()
    assert msg["Subject"] == "batchdrop: students.csv loaded (4/4 rows)"
    assert "feed" not in msg["MessageAttributes"]
    assert "Feed:" not in json.loads(msg["Message"])["text"]
    emf = emf_lines(capsys.readouterr().out)
    assert emf == []  # the handler's figures go out when the invocation flushes them
    metrics.flush_metrics()
    (flushed,) = emf_lines(capsys.readouterr().out)
    assert flushed["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["service"]]
    assert "Feed" not in flushed and flushed["FilesLoaded"] == [1.0]


def test_a_feeds_big_file_is_sharded_through_the_queue_into_its_own_table(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from batchdrop import checkpoint
    from batchdrop.aws import handler as lambda_handler

    from .test_shards_on_aws import drive

    monkeypatch.setattr(lambda_handler, "MIN_START", checkpoint.PAUSE_MARGIN_S + 20)
    url = notify_queue(stack)
    config = feeds_config(stack)
    for feed in config.feeds:  # a deployment setting: every feed's
        feed.config.shards.shard_bytes = 20_000
    rows = [f"B{i:05d},course {i % 7},{i % 20}" for i in range(3000)]
    stack.upload("incoming/grades_big.csv", "id,course,grade\n" + "\n".join(rows) + "\n")

    seen = drive(stack, url, Runtime(config))

    assert seen["check"] >= 2 and seen["conclude"] == 1
    loaded = grade_items(stack)
    assert len(loaded) == 3000 and loaded[0] == ("B00000", "course 0", "0")
    assert stack.items() == []  # nothing in the first feed's table
    (msg,) = [m for m in stack.receipts() if "grades_big" in m["Subject"]]
    assert msg["Subject"].startswith("batchdrop [grades]: grades_big.csv loaded")
