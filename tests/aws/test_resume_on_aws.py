"""A file far bigger than one invocation's time loads completely on the moto server.

The handler is driven as Lambda's SQS event source drives it: messages are received from the
stack's events queue (where S3's notification lands), handed over with a time budget per
invocation far shorter than the file needs, and deleted unless reported failed. A run that runs
out of time pauses at a checkpoint and queues its file again; the next invocation goes on from
there. Everything runs as the loader role, under the template's own policy.
"""

from __future__ import annotations

import csv
import io
import json
import random
import time
from typing import Any

import pytest

from batchdrop import checkpoint
from batchdrop.aws import handler as lambda_handler
from batchdrop.aws.handler import BatchFailed, Runtime

from .conftest import IamStack, Stack, s3_event
from .test_worker import notify_queue

pytestmark = pytest.mark.aws

FIELDS = [
    {"name": "student_id", "type": "string", "constraints": {"pattern": "A[0-9]{6}"}},
    {"name": "fname", "type": "string", "constraints": {"required": True}},
    {"name": "lname", "type": "string"},
    {"name": "course", "type": "string"},
]


def partner_file(rows: int, seed: int) -> tuple[bytes, dict[tuple[str, str], dict[str, str]], int]:
    """A CSV in random key order with quoted commas and line breaks inside fields, some rows
    invalid (no first name) and some keys repeated far apart: the bytes, what the table must
    hold after a last_wins load, and how many rows are invalid."""
    rng = random.Random(seed)
    ids = rng.sample(range(10**6), rows)
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["student_id", "fname", "lname", "course"])
    expected: dict[tuple[str, str], dict[str, str]] = {}
    invalid = 0
    keys: list[tuple[str, str]] = []
    for n, i in enumerate(ids):
        sid, course = f"A{i:06d}", rng.choice(["Chemistry, Advanced", "Opera", "Law\nand Order"])
        if keys and rng.random() < 0.004:  # a key seen before, far back in the file
            sid, course = rng.choice(keys)
        fname = "" if rng.random() < 0.001 else f"F{n}"
        row = {"student_id": sid, "fname": fname, "lname": f'O"Brien {n}', "course": course}
        w.writerow(row.values())
        if not fname:
            invalid += 1
            continue
        keys.append((sid, course))
        expected[(sid, course)] = row
    return out.getvalue().encode(), expected, invalid


def budget_from_now(budget: float) -> Any:
    """Lambda's remaining time, for an invocation that may work ``budget`` seconds before the
    engine's margins (the pause comes when they are all that is left)."""
    started = time.monotonic()
    return lambda: checkpoint.PAUSE_MARGIN_S + 20 + budget - (time.monotonic() - started)


def sqs_event(message: dict[str, Any], arn: str) -> dict[str, Any]:
    """A received message as Lambda's SQS event source hands it to the function."""
    return {
        "Records": [
            {
                "eventSource": "aws:sqs",
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "eventSourceARN": arn,
            }
        ]
    }


def drive(stack: Stack, queue: str, runtime: Runtime, budget: float, limit: int = 400) -> int:
    """Invoke the handler as the event source mapping would, until the queue is empty: how
    many invocations it took."""
    arn = stack.sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    invocations = 0
    redelivered = 0
    while invocations < limit:
        msgs = stack.sqs.receive_message(
            QueueUrl=queue, MaxNumberOfMessages=1, WaitTimeSeconds=1
        ).get("Messages", [])
        if not msgs:
            assert redelivered == 0  # every pause came back as a message of its own
            return invocations
        m = msgs[0]
        reply = runtime.handle(sqs_event(m, arn), budget_from_now(budget))
        invocations += 1
        if reply["batchItemFailures"]:  # back on the queue at once (a short visibility)
            redelivered += 1
            stack.sqs.change_message_visibility(
                QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0
            )
        else:
            stack.sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])
    raise AssertionError(f"the file did not load in {limit} invocations")


@pytest.mark.parametrize(
    ("enforced", "rows", "budget"),
    [
        (True, 30_000, 1.0),  # as the loader role, under the template's policy (slower)
        (False, 100_000, 2.0),
    ],
)
def test_a_file_many_invocations_long_loads_exactly_once(
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    enforced: bool,
    rows: int,
    budget: float,
) -> None:
    stack: Stack
    if enforced:
        stack = request.getfixturevalue("iam_stack")
        queue = stack.events_queue  # type: ignore[attr-defined]
    else:
        stack = request.getfixturevalue("stack")
        queue = notify_queue(stack)
    body, expected, invalid = partner_file(rows, seed=10)
    monkeypatch.setattr(lambda_handler, "MIN_START", checkpoint.PAUSE_MARGIN_S + 20)
    config = stack.config(
        schema={"fields": FIELDS},
        on_error="skip_rows",
        checkpoint={"every_bytes": 1_000_000, "every_seconds": 5},
    )
    if isinstance(stack, IamStack):
        stack.run_as("Role")
    stack.receipts(wait=0)
    stack.upload("incoming/big.csv", body)

    invocations = drive(stack, queue, Runtime(config), budget=budget)

    # each budget was far shorter than the file needs: it paused at least twice (how many
    # times more depends on the machine's speed; 4 to 6 on the project's 2-core machine)
    assert invocations >= 3
    items = {
        (i["student_id"]["S"], i["course"]["S"]): {k: v["S"] for k, v in i.items()}
        for page in stack.ddb.get_paginator("scan").paginate(TableName=stack.table)
        for i in page["Items"]
    }
    assert len(items) == len(expected)
    assert all(
        {k: items[key][k] for k in ("student_id", "fname", "lname", "course")} == row
        for key, row in expected.items()
    )
    receipts = stack.receipts()
    assert len(receipts) == 1
    r = json.loads(receipts[0]["Message"])["receipt"]
    valid = rows - invalid
    assert (r["status"], r["rows_read"], r["rows_rejected"]) == (
        "loaded_with_rejects",
        rows,
        invalid,
    )
    assert (r["rows_loaded"], r["rows_duplicate"]) == (len(expected), valid - len(expected))
    assert stack.keys(stack.inbound) == []
    archived = [k for k in stack.keys(stack.archive)]
    assert archived == ["big.csv"]
    report = [k for k in stack.keys(stack.errors) if k.endswith(".rejected.csv")]
    assert len(report) == 1
    lines = stack.s3.get_object(Bucket=stack.errors, Key=report[0])["Body"].read().decode()
    listed = list(csv.DictReader(io.StringIO(lines)))
    assert len(listed) == invalid
    assert [int(x["line"]) for x in listed] == sorted(int(x["line"]) for x in listed)
    assert not [k for k in stack.keys(stack.errors) if "_batchdrop/state/" in k]
    runs = json.loads(json.dumps(Runtime(config).pipeline.backends.ledger.runs()))
    assert [(x["state"], x["status"]) for x in runs] == [("done", "loaded_with_rejects")]


def test_a_direct_invocation_that_pauses_fails_so_the_retry_goes_on(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a queue to send the file to again, the invocation fails: Lambda's own retry of
    the event (here, the same event again) goes on from the checkpoint."""
    body, expected, _ = partner_file(8_000, seed=3)
    monkeypatch.setattr(lambda_handler, "MIN_START", checkpoint.PAUSE_MARGIN_S + 20)
    config = stack.config(
        schema={"fields": FIELDS},
        on_error="skip_rows",
        checkpoint={"every_bytes": 20_000, "every_seconds": 5},
    )
    put = stack.upload("incoming/direct.csv", body)
    event = s3_event(
        stack.inbound, "incoming/direct.csv", size=len(body), etag=put["ETag"].strip('"')
    )
    runtime = Runtime(config)
    failures = 0
    reply: dict[str, Any] = {}
    for _ in range(1000):  # a busy machine does less in each budget
        # each retry may take a little longer: on a loaded machine, reading back the run's
        # checkpoints could take all of a fixed 0.3 s, and no retry would ever move on; 1 s at
        # most: with 1 s each the file takes five invocations, so only a retry that goes on
        # from the checkpoints can finish it
        budget = min(0.3 * 1.03**failures, 1.0)
        try:
            reply = runtime.handle(event, budget_from_now(budget))
        except BatchFailed as e:
            assert "paused" in str(e)
            failures += 1
            assert runtime.pipeline.backends.ledger.runs()[0]["state"] == "paused"
            continue
        break
    assert failures >= 2
    assert reply, "the file did not load in 1000 invocations"
    assert reply["results"][0]["status"] == "loaded_with_rejects"
    count = sum(
        p["Count"]
        for p in stack.ddb.get_paginator("scan").paginate(TableName=stack.table, Select="COUNT")
    )
    assert count == len(expected)
