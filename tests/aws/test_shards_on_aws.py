"""A big file read as shards on the moto server, driven as Lambda's SQS event source drives the
function: the S3 event and then every shard task are messages on the events queue, each taken up
by an invocation of its own, in the order the queue gives them. Everything runs as the loader
role, under the template's own policy (SendMessageBatch, the ledger's counts, the state
location)."""

from __future__ import annotations

import csv
import io
import json
import random
from collections import Counter
from typing import Any

import pytest

from batchdrop import checkpoint
from batchdrop.aws import handler as lambda_handler
from batchdrop.aws.handler import Runtime

from .conftest import IamStack, Stack
from .test_resume_on_aws import FIELDS, budget_from_now, sqs_event
from .test_worker import notify_queue

pytestmark = pytest.mark.aws


def partner_file(rows: int, seed: int, invalid_at: int | None = None) -> bytes:
    """Random key order, quoted commas and line breaks, one key repeated in the first and the
    last rows (first and last shard), and (``invalid_at``) one invalid row."""
    rng = random.Random(seed)
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["student_id", "fname", "lname", "course"])
    for n, i in enumerate(rng.sample(range(10**6), rows)):
        sid = f"A{i:06d}"
        course = rng.choice(["Chemistry, Advanced", "Opera", "Law\nand Order"])
        fname = "" if n == invalid_at else f"F{n}"
        w.writerow([sid, fname, f'O"Brien {n}', course])
    w.writerow(["A999999", "First", "x", "Opera"])
    body = out.getvalue()
    return (
        "student_id,fname,lname,course\nA999999,Early,x,Opera\n" + body.split("\n", 1)[1]
    ).encode()


def drive(stack: Stack, queue: str, runtime: Runtime, limit: int = 400) -> Counter[str]:
    """Invoke the handler for each message, as the event source mapping would (batch size 1,
    messages in the order the queue gives them), until the queue is empty: the steps seen."""
    arn = stack.sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    seen: Counter[str] = Counter()
    for _ in range(limit):
        msgs = stack.sqs.receive_message(
            QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1
        ).get("Messages", [])
        if not msgs:
            return seen
        for m in msgs:
            body = json.loads(m["Body"])
            seen[body.get("step", "s3-event")] += 1
            reply = runtime.handle(sqs_event(m, arn), budget_from_now(60))
            assert reply["batchItemFailures"] == [], reply
            stack.sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])
    raise AssertionError(f"the file did not load in {limit} rounds")


def items(stack: Stack) -> dict[str, dict[str, str]]:
    return {
        i["student_id"]["S"]: {k: v["S"] for k, v in i.items()}
        for page in stack.ddb.get_paginator("scan").paginate(TableName=stack.table)
        for i in page["Items"]
    }


@pytest.mark.parametrize("duplicates", ["last_wins", "first_wins"])
def test_a_sharded_file_loads_exactly_once_as_the_loader_role(
    iam_stack: IamStack, monkeypatch: pytest.MonkeyPatch, duplicates: str
) -> None:
    stack = iam_stack
    body = partner_file(6000, seed=4)
    monkeypatch.setattr(lambda_handler, "MIN_START", checkpoint.PAUSE_MARGIN_S + 20)
    config = stack.config(
        schema={"fields": FIELDS},
        duplicates=duplicates,
        shards={"shard_bytes": 30_000},
    )
    stack.run_as("Role")
    stack.receipts(wait=0)
    stack.upload("incoming/big.csv", body)

    seen = drive(stack, stack.events_queue, Runtime(config))

    shards = seen["check"]
    assert shards >= 8 and seen["write"] == shards and seen["conclude"] == 1
    expected = {
        row["student_id"]: row
        for row in csv.DictReader(io.StringIO(body.decode()))
        if duplicates == "last_wins" or row["student_id"] != "A999999"
    }
    expected.setdefault(
        "A999999", {"student_id": "A999999", "fname": "Early", "lname": "x", "course": "Opera"}
    )
    assert items(stack) == expected
    receipts = stack.receipts()
    assert len(receipts) == 1
    r = json.loads(receipts[0]["Message"])["receipt"]
    assert (r["status"], r["rows_read"], r["rows_loaded"], r["rows_duplicate"]) == (
        "loaded",
        6002,
        6001,
        1,
    )
    assert stack.keys(stack.inbound) == [] and stack.keys(stack.archive) == ["big.csv"]
    assert not [k for k in stack.keys(stack.errors) if "_batchdrop/state/" in k]


def test_one_bad_row_in_the_last_shard_writes_nothing_on_aws(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = partner_file(6000, seed=5, invalid_at=5990)
    monkeypatch.setattr(lambda_handler, "MIN_START", checkpoint.PAUSE_MARGIN_S + 20)
    config = stack.config(schema={"fields": FIELDS}, shards={"shard_bytes": 30_000})
    queue = notify_queue(stack)
    stack.receipts(wait=0)
    stack.upload("incoming/big.csv", body)

    seen = drive(stack, queue, Runtime(config))

    assert seen["check"] >= 8 and seen["write"] == 0
    assert items(stack) == {}
    receipts = stack.receipts()
    assert len(receipts) == 1
    r: dict[str, Any] = json.loads(receipts[0]["Message"])["receipt"]
    assert (r["status"], r["rows_read"], r["rows_rejected"]) == ("rejected", 6002, 6002)
    assert [e["column"] for e in r["errors"]] == ["fname"]
    assert stack.keys(stack.inbound) == []
    assert "rejected/big.csv" in stack.keys(stack.errors)


def test_two_queue_workers_share_the_shards_of_one_file(stack: Stack) -> None:
    """The queue worker takes shard tasks as the function does, and hands on what they leave
    to its queue (named by URL): two workers, one file, each doing part of it."""
    import threading

    from batchdrop.aws.worker import Worker

    body = partner_file(6000, seed=6)
    config = stack.config(schema={"fields": FIELDS}, shards={"shard_bytes": 30_000})
    url = notify_queue(stack)
    stack.receipts(wait=0)
    stack.upload("incoming/big.csv", body)
    workers = [Worker(Runtime(config), url, wait_seconds=1) for _ in range(2)]
    stats: list[Any] = []
    threads = [
        threading.Thread(target=lambda w=w: stats.append(w.run(until_empty=True))) for w in workers
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    expected = {row["student_id"]: row for row in csv.DictReader(io.StringIO(body.decode()))}
    assert items(stack) == expected
    receipts = stack.receipts()
    assert len(receipts) == 1
    r = json.loads(receipts[0]["Message"])["receipt"]
    assert (r["status"], r["rows_loaded"], r["rows_duplicate"]) == ("loaded", 6001, 1)
    assert len(stats) == 2 and all(s.deleted >= 3 for s in stats), stats  # both took a share
