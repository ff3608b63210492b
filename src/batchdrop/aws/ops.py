"""What ``status``, ``redrive`` and ``retry`` ask of SQS: how much waits in a queue, dead-letter
messages moved back to the queue they came from, and a file's event queued again.

The redrive receives, sends and deletes in batches of ten rather than starting an SQS message
move task: it works on any SQS (emulators too), counts exactly what it moved, names the files
of the messages, and can show what would move without moving it. A message is deleted from the
dead-letter queue only once the events queue has taken it: a redrive stopped halfway leaves
each message in one queue or, at worst, in both, and a file's event delivered twice loads it
once (the ledger's claim).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote_plus

from ..errors import TransientError
from .events import parse_event

#: how long a message taken from the dead-letter queue stays hidden while it is moved (or,
#: for a dry run, looked at): long enough for one batch, short enough to come back soon
HOLD_SECONDS = 60


@dataclass(frozen=True)
class QueueDepth:
    waiting: int  # ApproximateNumberOfMessages
    in_flight: int  # taken by a consumer, not yet deleted
    delayed: int


def queue_depth(sqs: Any, url: str) -> QueueDepth:
    attrs = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=[
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ],
    )["Attributes"]
    return QueueDepth(
        int(attrs.get("ApproximateNumberOfMessages", 0)),
        int(attrs.get("ApproximateNumberOfMessagesNotVisible", 0)),
        int(attrs.get("ApproximateNumberOfMessagesDelayed", 0)),
    )


def describe(body: str) -> str:
    """What a message of the events queue is about, for people: its files, or a shard task."""
    parsed = parse_event({"Records": [{"eventSource": "aws:sqs", "messageId": "", "body": body}]})
    msg = parsed.messages[0]
    if msg.task is not None:
        task = msg.task
        return f"{task.get('file', '?')} (shard task: {task.get('step', '?')})"
    if msg.objects:
        return ", ".join(f"s3://{o.bucket}/{o.key}" for o in msg.objects)
    doc = _json(body)
    payload = doc.get("requestPayload") if isinstance(doc, dict) else None
    if payload is not None:  # a direct trigger's failed invocation (its on-failure record)
        return describe(json.dumps(payload))
    return msg.error or (", ".join(msg.ignored) or "not an S3 event")


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


@dataclass
class Redrive:
    """What a redrive moved (or, with ``dry_run``, would move)."""

    moved: int = 0
    failed: int = 0
    messages: list[str] = field(default_factory=list)  # each message's files


def redrive(
    sqs: Any,
    dead_letters: str,
    queue: str,
    *,
    dry_run: bool = False,
    limit: int | None = None,
    each: Callable[[str], None] | None = None,
) -> Redrive:
    """Move the messages of the queue ``dead_letters`` to ``queue`` (both URLs), at most
    ``limit``; ``each(description)`` is told of every message moved. With ``dry_run``, the
    messages are only looked at, and released at once."""
    out = Redrive()
    held: list[dict[str, str]] = []  # a dry run's messages, released at the end
    wait = 1  # a short long-poll: SQS's short polls may miss messages of a small queue
    try:
        while limit is None or out.moved < limit:
            want = 10 if limit is None else min(10, limit - out.moved)
            reply = sqs.receive_message(
                QueueUrl=dead_letters,
                MaxNumberOfMessages=want,
                WaitTimeSeconds=wait,
                VisibilityTimeout=HOLD_SECONDS,
                MessageAttributeNames=["All"],
            )
            batch = reply.get("Messages", [])
            if not batch:
                break
            if dry_run:
                held += [
                    {"Id": str(len(held) + i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(batch)
                ]
                for m in batch:
                    _tell(out, m["Body"], each)
                    out.moved += 1
                continue
            _move(sqs, dead_letters, queue, batch, out, each)
    finally:
        for i in range(0, len(held), 10):  # back in the dead-letter queue at once
            sqs.change_message_visibility_batch(
                QueueUrl=dead_letters,
                Entries=[{**h, "VisibilityTimeout": 0} for h in held[i : i + 10]],
            )
    return out


def _tell(out: Redrive, body: str, each: Callable[[str], None] | None) -> None:
    what = describe(body)
    out.messages.append(what)
    if each is not None:
        each(what)


def _move(
    sqs: Any,
    dead_letters: str,
    queue: str,
    batch: list[dict[str, Any]],
    out: Redrive,
    each: Callable[[str], None] | None,
) -> None:
    entries = []
    for i, m in enumerate(batch):
        entry: dict[str, Any] = {"Id": str(i), "MessageBody": m["Body"]}
        if m.get("MessageAttributes"):
            entry["MessageAttributes"] = m["MessageAttributes"]
        entries.append(entry)
    reply = sqs.send_message_batch(QueueUrl=queue, Entries=entries)
    sent = {int(s["Id"]) for s in reply.get("Successful", [])}
    out.failed += len(batch) - len(sent)  # they stay in the dead-letter queue
    if not sent:
        failed = reply.get("Failed") or [{}]
        raise TransientError(
            f"the events queue refused the messages: {failed[0].get('Code', '?')} "
            f"{failed[0].get('Message', '')}".strip()
        )
    done = [{"Id": str(i), "ReceiptHandle": batch[i]["ReceiptHandle"]} for i in sorted(sent)]
    sqs.delete_message_batch(QueueUrl=dead_letters, Entries=done)
    for i in sorted(sent):
        _tell(out, batch[i]["Body"], each)
        out.moved += 1


def s3_event(bucket: str, key: str) -> str:
    """An S3 ObjectCreated event for one object, as S3 sends it (the key URL-encoded): what
    the function takes from the events queue."""
    record = {
        "eventSource": "aws:s3",
        "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": bucket}, "object": {"key": quote_plus(key, safe="/")}},
    }
    return json.dumps({"Records": [record]})


def requeue(sqs: Any, queue: str, bucket: str, key: str) -> str:
    """Send the event of ``s3://bucket/key`` to the events queue; returns the message id."""
    reply = sqs.send_message(QueueUrl=queue, MessageBody=s3_event(bucket, key))
    return str(reply["MessageId"])
