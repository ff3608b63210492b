"""SNS receipts read back through an SQS subscription: subject, size, attributes."""

from __future__ import annotations

import json

import pytest

from batchdrop.notify.sns import MAX_BYTES, SnsNotifier, build
from batchdrop.report import Receipt

from .conftest import Stack

pytestmark = pytest.mark.aws


def receipt(**kw: object) -> Receipt:
    base = dict(
        file="2026/a very long name " + "x" * 150 + ".csv",
        source="s3://in/x.csv",
        version="e1",
        size=10,
        run_id="20261127T090000Z-abc123",
        status="rejected",
        rows_read=5,
        rows_loaded=0,
        rows_rejected=5,
        reason="bad\nrows",
        rejected_rows_report="s3://err/rejected/x.rejected.csv",
    )
    base.update(kw)
    return Receipt(**base)  # type: ignore[arg-type]


def test_subject_message_and_status_attribute(stack: Stack) -> None:
    r = receipt()
    r.errors = [{"line": 2, "column": "student_id", "value": "=cmd()", "reason": "no match"}]
    SnsNotifier(stack.topic_arn, stack.config()).send(r)
    (envelope,) = stack.receipts()
    assert len(envelope["Subject"]) <= 100 and "\n" not in envelope["Subject"]
    assert envelope["Subject"].startswith("batchdrop: a very long name xxx")  # the base name
    assert "REJECTED" in envelope["Subject"]
    assert envelope["MessageAttributes"]["status"] == {"Type": "String", "Value": "rejected"}
    doc = json.loads(envelope["Message"])
    assert doc["receipt"]["rejected_rows_report"] == "s3://err/rejected/x.rejected.csv"
    assert doc["receipt"]["errors"][0]["line"] == 2
    assert "Rejected rows: s3://err/rejected/x.rejected.csv" in doc["text"]


def test_huge_receipt_is_trimmed_under_256_kb(stack: Stack) -> None:
    r = receipt(reason="r" * 300_000)
    r.errors = [
        {"line": i, "column": "c", "value": "v" * 80, "reason": "x" * 30_000} for i in range(10)
    ]
    _subject, body = build(r)
    assert len(body.encode()) < MAX_BYTES
    SnsNotifier(stack.topic_arn, stack.config()).send(r)
    (envelope,) = stack.receipts()
    doc = json.loads(envelope["Message"])
    assert doc["receipt"]["errors_trimmed"] is True
    assert doc["receipt"]["status"] == "rejected" and doc["receipt"]["rows_rejected"] == 5
    assert len(envelope["Message"].encode()) < MAX_BYTES


def test_email_gets_the_readable_text() -> None:
    _, body = build(receipt(status="loaded", rows_loaded=5, rows_rejected=0))
    per_protocol = json.loads(body)
    assert per_protocol["email"].startswith("File:       s3://in/x.csv")
    assert json.loads(per_protocol["default"])["receipt"]["status"] == "loaded"


def test_subject_is_one_line_within_100_characters() -> None:
    from batchdrop.notify.sns import clean_subject

    assert clean_subject("a\r\nb\tc") == "a b c"
    long = clean_subject("é" * 300)
    assert len(long) == 100 and long.endswith("…")
    assert clean_subject("\n") == "batchdrop receipt"
