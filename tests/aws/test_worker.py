"""The worker consuming the real S3 event messages of a bucket notifying an SQS queue.

Run on the IAM-enforcing server as a user holding exactly the loader role's policy
(``iam_stack``), on the stack's own queue, which the inbound bucket notifies as the template says.
"""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner

from batchdrop.aws.cli import worker as worker_command
from batchdrop.aws.handler import Runtime
from batchdrop.aws.worker import Worker

from .conftest import IamStack, Stack
from .test_runtime_e2e import EXAMPLE, EXPECTED_KEYS, example_config

pytestmark = pytest.mark.aws


@pytest.fixture
def stack(iam_stack: IamStack) -> IamStack:
    return iam_stack


def notify_queue(stack: Stack) -> str:
    """The stack's events queue, which the inbound bucket notifies on every ObjectCreated event
    of a .csv or .csv.gz file (an enforced stack's role may consume only that queue)."""
    if isinstance(stack, IamStack):
        return stack.events_queue
    url = stack.sqs.create_queue(
        QueueName=f"events-{stack.suffix}", Attributes={"VisibilityTimeout": "120"}
    )["QueueUrl"]
    arn = stack.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    stack.s3.put_bucket_notification_configuration(
        Bucket=stack.inbound,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "QueueArn": arn,
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {
                        "Key": {
                            "FilterRules": [
                                {"Name": "prefix", "Value": "incoming/"},
                                {"Name": "suffix", "Value": ".csv"},
                            ]
                        }
                    },
                }
            ]
        },
    )
    return url


def waiting(stack: Stack, url: str) -> int:
    attrs = stack.sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(
        attrs["ApproximateNumberOfMessagesNotVisible"]
    )


def test_worker_processes_real_s3_notifications(stack: Stack) -> None:
    url = notify_queue(stack)
    body = (EXAMPLE / "students.csv").read_bytes()
    stack.upload("incoming/term one.csv", body)
    stack.upload("incoming/sub dir/term+two.csv", body.replace(b"A10001", b"A20001"))
    w = Worker(Runtime(example_config(stack)), url, wait_seconds=1, batch=10)
    stats = w.run(until_empty=True)
    assert stats.received >= 2 and stats.failed == 0 and stats.deleted == stats.received
    assert waiting(stack, url) == 0
    assert stack.keys(stack.inbound) == []
    assert sorted(stack.keys(stack.archive)) == ["sub dir/term+two.csv", "term one.csv"]
    keys = {(i["student_id"], i["course"]) for i in stack.items()}
    assert set(EXPECTED_KEYS) <= keys and ("A20001", "Military Medicine") in keys
    statuses = sorted(r["MessageAttributes"]["status"]["Value"] for r in stack.receipts())
    assert statuses == ["loaded_with_rejects", "loaded_with_rejects"]


def test_failed_message_stays_on_the_queue(stack: Stack) -> None:
    url = notify_queue(stack)
    stack.upload("incoming/held.csv", (EXAMPLE / "students.csv").read_bytes())
    runtime = Runtime(example_config(stack))
    ref = runtime.pipeline.inbound.stat("held.csv")
    assert runtime.pipeline.backends.ledger.claim(ref).outcome == "new"  # a live run holds it
    w = Worker(runtime, url, wait_seconds=1)
    stats = w.run(until_empty=True)
    assert stats.failed == 1
    assert waiting(stack, url) == 1  # invisible now, delivered again after the timeout
    assert stack.keys(stack.inbound) == ["incoming/held.csv"]
    assert stack.receipts(wait=0) == []


def test_worker_command(stack: Stack) -> None:
    url = notify_queue(stack)
    stack.upload("incoming/cli.csv", (EXAMPLE / "students.csv").read_bytes())
    config = example_config(stack)
    obj: Any = SimpleNamespace(config=lambda: config)
    result = CliRunner().invoke(
        worker_command, ["--queue", url, "--wait", "1", "--until-empty"], obj=obj
    )
    assert result.exit_code == 0, result.output
    assert "0 left for a retry" in result.output
    assert stack.keys(stack.archive) == ["cli.csv"]
    (msg,) = stack.receipts()
    assert json.loads(msg["Message"])["receipt"]["file"] == "cli.csv"


def test_two_workers_and_a_duplicated_event_load_once(stack: Stack) -> None:
    import threading

    url = notify_queue(stack)
    stack.upload("incoming/twice.csv", (EXAMPLE / "students.csv").read_bytes())
    bodies = []
    while True:  # take the real S3 messages off the queue, then deliver the event twice
        got = stack.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        if not got.get("Messages"):
            break
        for m in got["Messages"]:
            bodies.append(m["Body"])
            stack.sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    (event_body,) = [b for b in bodies if "ObjectCreated" in b]
    for _ in range(2):
        stack.sqs.send_message(QueueUrl=url, MessageBody=event_body)
    workers = [Worker(Runtime(example_config(stack)), url, wait_seconds=1) for _ in range(2)]
    # moto's UpdateItem checks the condition, creates the item, then applies the update, with
    # no lock: two claims of a new item at the same instant both pass there (DynamoDB decides
    # them atomically). So the second worker starts once the first has claimed the file.
    ledger = workers[0].runtime.pipeline.backends.ledger
    claimed, real_claim = threading.Event(), ledger.claim

    def claim(*args: Any, **kw: Any) -> Any:
        try:
            return real_claim(*args, **kw)
        finally:
            claimed.set()

    ledger.claim = claim  # type: ignore[method-assign]

    def second() -> None:
        claimed.wait(30)
        workers[1].run(until_empty=True)

    threads = [
        threading.Thread(target=workers[0].run, kwargs={"until_empty": True}),
        threading.Thread(target=second),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(w.stats.received for w in workers) == 2
    assert stack.keys(stack.archive) == ["twice.csv"]
    assert [(i["student_id"], i["course"]) for i in stack.items()] == EXPECTED_KEYS
    statuses = [r["MessageAttributes"]["status"]["Value"] for r in stack.receipts()]
    assert statuses == ["loaded_with_rejects"]


def test_a_batch_that_raises_does_not_stop_the_worker(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    """Whatever one batch raises (a bug, a fault nothing catches), the worker logs it, leaves
    that batch's messages to come back, and goes on with the next batch."""
    url = notify_queue(stack)
    stack.sqs.purge_queue(QueueUrl=url)  # S3's test event: only the files' events from here
    body = (EXAMPLE / "students.csv").read_bytes()
    stack.upload("incoming/first.csv", body)
    stack.upload("incoming/second.csv", body)
    runtime = Runtime(example_config(stack))
    real_handle, calls = runtime.handle, []

    def handle(event: Any, remaining: Any = None) -> Any:
        calls.append(event)
        if len(calls) == 1:
            raise RuntimeError("a bug in the first batch")
        return real_handle(event, remaining)

    runtime.handle = handle  # type: ignore[method-assign]
    stats = Worker(runtime, url, wait_seconds=1).run(until_empty=True)
    assert (stats.received, stats.deleted, stats.failed) == (2, 1, 1)
    assert waiting(stack, url) == 1  # invisible now, delivered again after the timeout
    assert len(stack.keys(stack.inbound)) == 1 and len(stack.keys(stack.archive)) == 1
    assert any(
        r.getMessage() == "batch failed; its messages will be delivered again" and r.exc_info
        for r in caplog.records
    )
