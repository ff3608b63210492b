"""The engine's promises on S3 + DynamoDB, as the loader role (IAM enforced): odd object keys,
a file that keeps failing, and a notification a dead run left unsent."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

import pytest

from batchdrop.aws.handler import Runtime
from batchdrop.pipeline import Pipeline
from batchdrop.tables import dynamodb, dynamodb_ledger

from .conftest import STUDENTS_CSV, IamStack, event_file, s3_event, sqs_event

pytestmark = pytest.mark.aws


def drop(stack: IamStack, name: str, body: str = STUDENTS_CSV) -> dict[str, Any]:
    put = stack.upload("incoming/" + name, body)
    return s3_event(stack.inbound, "incoming/" + name, size=len(body), etag=put["ETag"].strip('"'))


@pytest.mark.parametrize("name", ["../../x.csv", "a/../b.csv", "./c.csv", "d//e.csv", "/f.csv"])
def test_a_key_with_dot_or_empty_segments_is_rejected_and_set_aside_under_a_safe_name(
    iam_stack: IamStack, name: str
) -> None:
    stack = iam_stack
    runtime = Runtime(stack.config())
    reply = runtime.handle(drop(stack, name), lambda: 600.0)
    (result,) = reply["results"]
    assert (result["status"], result["retry"]) == ("rejected", False)
    assert "path segments" in result["detail"]
    assert stack.keys(stack.inbound) == []
    safe = quote(name, safe="")
    assert "/" not in safe
    assert f"rejected/{safe}" in stack.keys(stack.errors)
    assert f"rejected/{safe.removesuffix('.csv')}.receipt.json" in stack.keys(stack.errors)
    assert stack.items() == []
    (receipt,) = stack.receipts()
    assert receipt["MessageAttributes"]["status"]["Value"] == "rejected"


def test_a_file_that_keeps_failing_is_set_aside_and_not_retried(
    iam_stack: IamStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = iam_stack

    def broken(self: Any, claim: Any, ledger: Any) -> Any:
        raise RuntimeError("a bug that only this deployment meets")

    monkeypatch.setattr(dynamodb.DynamoTable, "begin", broken)
    runtime = Runtime(stack.config(max_attempts=2))
    event = drop(stack, "students.csv")

    def deliver() -> tuple[Any, list[Any]]:
        """The event as the queue delivers it; what the function answers, and its results."""
        reply = runtime.handle(sqs_event(event), lambda: 600.0)
        return reply["batchItemFailures"], runtime.last_results

    failures, (first,) = deliver()
    assert (first.status, first.retry, len(failures)) == ("failed", True, 1)
    assert stack.keys(stack.inbound) == ["incoming/students.csv"]
    failures, (second,) = deliver()
    assert (second.status, second.retry, failures) == ("failed", False, [])  # not retried
    assert "failed 2 times" in second.detail
    assert stack.keys(stack.inbound) == []
    assert "rejected/students.csv" in stack.keys(stack.errors)
    assert "rejected/students.receipt.json" in stack.keys(stack.errors)
    failures, (third,) = deliver()
    assert (third.status, third.retry, failures) == ("gone", False, [])
    sent = stack.receipts()
    assert [m["MessageAttributes"]["status"]["Value"] for m in sent] == ["failed", "failed"]


def test_a_notification_a_dead_run_left_unsent_goes_out_from_the_next_container(
    iam_stack: IamStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = iam_stack
    monkeypatch.setattr(dynamodb_ledger, "OUTBOX_LEASE_S", 1)

    class Died(BaseException):
        """The container is gone between recording the run and notifying."""

    def die(self: Any, receipt: Any) -> None:
        raise Died

    with monkeypatch.context() as m:
        m.setattr(Pipeline, "_notify", die)
        with pytest.raises(Died):
            Runtime(stack.config()).handle(drop(stack, "students.csv"), lambda: 600.0)
    assert stack.keys(stack.inbound) == [] and len(stack.items()) == 4
    assert stack.receipts(wait=0) == []

    fresh = Runtime(stack.config())  # the next container: it looks once, at its first event
    assert fresh.pipeline.backends.ledger.outbox() == []  # the owner's lease still holds
    time.sleep(2.1)
    fresh.handle(event_file("s3_test_event.json"), lambda: 600.0)
    (sent,) = stack.receipts()
    assert sent["MessageAttributes"]["status"]["Value"] == "loaded"
    assert fresh.pipeline.backends.ledger.outbox() == []
    Runtime(stack.config()).handle(event_file("s3_test_event.json"), lambda: 600.0)
    assert stack.receipts(wait=0) == []  # sent once
