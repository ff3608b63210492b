"""The worker consuming the real S3 event messages of a bucket notifying an SQS queue."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner

from batchdrop.aws.cli import worker as worker_command
from batchdrop.aws.handler import Runtime
from batchdrop.aws.worker import Worker

from .conftest import Stack
from .test_runtime_e2e import EXAMPLE, EXPECTED_KEYS, example_config

pytestmark = pytest.mark.aws


def notify_queue(stack: Stack) -> str:
    """An events queue the inbound bucket notifies on every ObjectCreated (.csv) event."""
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
    threads = [threading.Thread(target=w.run, kwargs={"until_empty": True}) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(w.stats.received for w in workers) == 2
    assert stack.keys(stack.archive) == ["twice.csv"]
    assert [(i["student_id"], i["course"]) for i in stack.items()] == EXPECTED_KEYS
    statuses = [r["MessageAttributes"]["status"]["Value"] for r in stack.receipts()]
    assert statuses == ["loaded_with_rejects"]
