"""SNS receipts (``sns://TOPIC_ARN``): one message per file, sized to SNS's limits.

Subject within 100 characters, message within 256 KB (the receipt's error list is trimmed first,
then the text), and ``status`` (and with feeds, ``feed``) message attributes so subscribers can
filter on failures, or on one feed.
Email subscribers get the readable text; every other protocol gets the JSON document
{subject, text, receipt} (one publish with a per-protocol message).
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from ..errors import TransientError
from ..report import Receipt
from . import feed_message

if TYPE_CHECKING:
    from ..config import Config

MAX_SUBJECT = 100
MAX_BYTES = 256 * 1024
#: room for the message attributes and the JSON envelope of the per-protocol message
ATTRIBUTE_ROOM = 2048
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def clean_subject(text: str) -> str:
    """One line, no control characters, at most 100 characters: what SNS accepts."""
    text = _CONTROL.sub(" ", text).strip() or "batchdrop receipt"
    return text if len(text) <= MAX_SUBJECT else text[: MAX_SUBJECT - 1] + "…"


def _size(text: str) -> int:
    return len(text.encode("utf-8"))


def build(receipt: Receipt, limit: int = MAX_BYTES - ATTRIBUTE_ROOM) -> tuple[str, str]:
    """(subject, Message for MessageStructure=json), within ``limit`` bytes."""
    msg = feed_message(receipt)
    doc = {"subject": msg["subject"], "text": msg["text"], "receipt": dict(msg["receipt"])}

    def render() -> str:
        machine = json.dumps(doc, ensure_ascii=False, default=str)
        return json.dumps({"default": machine, "email": doc["text"]}, ensure_ascii=False)

    body = render()
    errors = list(doc["receipt"].get("errors") or [])
    while _size(body) > limit and errors:
        errors = errors[: len(errors) // 2]
        doc["receipt"]["errors"] = errors
        doc["receipt"]["errors_trimmed"] = True
        body = render()
    # Still too big (a huge reason or file name): cut the long strings, keeping their starts.
    cut = 4096
    while _size(body) > limit and cut >= 16:
        doc["text"] = doc["text"][:cut]
        for k in ("reason", "file", "source", "moved_to", "rejected_rows_report"):
            v = doc["receipt"].get(k)
            if isinstance(v, str) and len(v) > cut:
                doc["receipt"][k] = v[:cut] + "…"
        cut //= 2
        body = render()
    return clean_subject(msg["subject"]), body


class SnsNotifier:
    def __init__(self, topic_arn: str, config: Config | None = None, *, client: Any = None):
        self.topic_arn = topic_arn
        self.config = config
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            from ..aws.clients import client

            self._client = client("sns", self.config)
        return self._client

    def send(self, receipt: Receipt) -> None:
        subject, body = build(receipt)
        args: dict[str, Any] = {
            "TopicArn": self.topic_arn,
            "Subject": subject,
            "Message": body,
            "MessageStructure": "json",
            "MessageAttributes": {
                "status": {"DataType": "String", "StringValue": receipt.status},
                "rows_rejected": {"DataType": "Number", "StringValue": str(receipt.rows_rejected)},
            },
        }
        if receipt.feed:  # subscribers of one feed filter on it
            args["MessageAttributes"]["feed"] = {"DataType": "String", "StringValue": receipt.feed}
        if self.topic_arn.endswith(".fifo"):
            args["MessageGroupId"] = "batchdrop"
            args["MessageDeduplicationId"] = f"{receipt.run_id}-{receipt.status}"[:128]
        try:
            self.client.publish(**args)
        except Exception as e:
            from ..aws.clients import error_code

            raise TransientError(
                f"SNS did not take the receipt for {receipt.file} "
                f"({error_code(e) or type(e).__name__}): {e}"
            ) from e
