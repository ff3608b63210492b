"""Every shape in which "an object was created" reaches batchdrop, as plain records.

- S3 event notifications, delivered directly to Lambda (``Records[].s3``);
- the same, wrapped in SQS messages (``Records[].body``), possibly inside an SNS envelope;
- EventBridge "Object Created" events (``detail.bucket`` / ``detail.object``);
- ``s3:TestEvent``, which S3 sends when a notification is configured: ignored.

S3 URL-encodes object keys in its events ("red flower.csv" arrives as "red+flower.csv"), so every
record's key is decoded with ``unquote_plus`` — every record, not only the first.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote_plus, unquote_plus

from ..shards import SHARD_MARK

EventKind = Literal["s3", "sqs", "eventbridge", "sns", "test", "unknown"]


@dataclass(frozen=True, slots=True)
class ObjectCreated:
    """One created object version, as the event told it."""

    bucket: str
    key: str  # decoded
    version: str | None = None  # the versionId (versioned buckets), else None
    etag: str | None = None
    size: int | None = None
    event: str = "ObjectCreated"


@dataclass
class Message:
    """One unit of delivery: an SQS message (``id`` is its messageId) or the whole event."""

    id: str | None
    objects: list[ObjectCreated] = field(default_factory=list)
    queue_arn: str | None = None  # the SQS queue it came from
    ignored: list[str] = field(default_factory=list)  # why parts of it were not objects
    error: str | None = None  # the message could not be read at all
    task: dict[str, Any] | None = None  # a shard task of a big file (shards.py), not an event


@dataclass
class ParsedEvent:
    kind: EventKind
    messages: list[Message]

    @property
    def objects(self) -> list[ObjectCreated]:
        return [o for m in self.messages for o in m.objects]


def parse_event(event: Any) -> ParsedEvent:
    """Turn a Lambda event (or a worker's batch in SQS-event form) into object records."""
    if not isinstance(event, dict):
        return ParsedEvent("unknown", [Message(None, error="the event is not a JSON object")])
    records = event.get("Records")
    if isinstance(records, list) and records and isinstance(records[0], dict):
        source = records[0].get("eventSource") or records[0].get("EventSource")
        if source == "aws:sqs":
            return ParsedEvent("sqs", [_sqs_message(r) for r in records])
        if source == "aws:sns":
            msg = Message(None)
            for r in records:
                _read_document(_loads(r.get("Sns", {}).get("Message"), msg), msg)
            return ParsedEvent("sns", [msg])
    if _is_test_event(event):
        return ParsedEvent("test", [Message(None, ignored=["s3:TestEvent"])])
    msg = Message(None)
    kind = _read_document(event, msg)
    return ParsedEvent(kind, [msg])


def _sqs_message(record: dict[str, Any]) -> Message:
    msg = Message(str(record.get("messageId") or ""), queue_arn=record.get("eventSourceARN"))
    body = _loads(record.get("body"), msg)
    if body is None:
        return msg
    # SNS → SQS without raw message delivery wraps the event once more.
    if isinstance(body, dict) and body.get("Type") == "Notification" and "Message" in body:
        body = _loads(body["Message"], msg)
        if body is None:
            return msg
    if isinstance(body, dict) and SHARD_MARK in body:
        msg.task = body
        return msg
    _read_document(body, msg)
    return msg


def _loads(text: Any, msg: Message) -> Any:
    if isinstance(text, dict):
        return text
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        msg.error = f"the message body is not JSON: {str(text)[:80]!r}"
        return None


def _read_document(doc: Any, msg: Message) -> EventKind:
    """Add the objects of one S3 notification or EventBridge event to ``msg``."""
    if not isinstance(doc, dict):
        if msg.error is None:
            msg.error = "not an S3 or EventBridge event"
        return "unknown"
    if _is_test_event(doc):
        msg.ignored.append("s3:TestEvent")
        return "test"
    if doc.get("source") == "aws.s3" and "detail" in doc:
        _eventbridge(doc, msg)
        return "eventbridge"
    records = doc.get("Records")
    if isinstance(records, list):
        for r in records:
            _s3_record(r, msg)
        return "s3"
    msg.error = "not an S3 or EventBridge event: " + ", ".join(sorted(map(str, doc)))[:120]
    return "unknown"


def _is_test_event(doc: dict[str, Any]) -> bool:
    return doc.get("Event") == "s3:TestEvent"


def _s3_record(record: Any, msg: Message) -> None:
    if not isinstance(record, dict) or "s3" not in record:
        msg.ignored.append("a record without an s3 section")
        return
    name = str(record.get("eventName", ""))
    if not name.startswith(("ObjectCreated:", "s3:ObjectCreated:")):
        # Every ObjectCreated counts (Put, Post, Copy, CompleteMultipartUpload); the rest does not.
        msg.ignored.append(f"{name or 'an unnamed event'} is not an ObjectCreated event")
        return
    s3 = record["s3"]
    obj = s3.get("object", {})
    try:
        msg.objects.append(
            ObjectCreated(
                bucket=str(s3["bucket"]["name"]),
                key=unquote_plus(str(obj["key"])),
                version=obj.get("versionId") or None,
                etag=obj.get("eTag") or None,
                size=_int(obj.get("size")),
                event=name.removeprefix("s3:"),
            )
        )
    except (KeyError, TypeError):
        msg.ignored.append(f"{name} without a bucket name or object key")


def _eventbridge(doc: dict[str, Any], msg: Message) -> None:
    kind = str(doc.get("detail-type", ""))
    if kind != "Object Created":
        msg.ignored.append(f"EventBridge {kind or 'event'} is not Object Created")
        return
    detail = doc.get("detail") or {}
    try:
        msg.objects.append(
            ObjectCreated(
                bucket=str(detail["bucket"]["name"]),
                key=unquote_plus(str(detail["object"]["key"])),
                version=detail["object"].get("version-id") or None,
                etag=detail["object"].get("etag") or None,
                size=_int(detail["object"].get("size")),
                event="ObjectCreated:" + str(detail.get("reason") or "EventBridge"),
            )
        )
    except (KeyError, TypeError):
        msg.ignored.append("Object Created without a bucket name or object key")


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def continuation(obj: ObjectCreated) -> str:
    """An S3 event for ``obj`` alone: sent to the queue again by a run that paused, so the
    file goes on in a fresh message (a redelivery would count towards maxReceiveCount)."""
    record: dict[str, Any] = {
        "eventSource": "aws:s3",
        "eventName": obj.event if obj.event.startswith("ObjectCreated") else "ObjectCreated:Put",
        "s3": {
            "bucket": {"name": obj.bucket},
            "object": {
                k: v
                for k, v in {
                    "key": quote_plus(obj.key, safe="/"),
                    "size": obj.size,
                    "eTag": obj.etag,
                    "versionId": obj.version,
                }.items()
                if v is not None
            },
        },
        "batchdrop": {"continues": True},
    }
    return json.dumps({"Records": [record]})


def queue_url(arn: str) -> str:
    """arn:aws:sqs:REGION:ACCOUNT:NAME → the queue's URL (a URL is one already: the worker
    names its queue by URL)."""
    if arn.startswith(("https://", "http://")):
        return arn
    _, partition, _, region, account, name = arn.split(":", 5)
    domain = "amazonaws.com.cn" if partition == "aws-cn" else "amazonaws.com"
    return f"https://sqs.{region}.{domain}/{account}/{name}"
