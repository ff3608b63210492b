"""Notifiers: console and JSON lines (console.py), webhooks (webhook.py), SNS (sns.py)."""

from __future__ import annotations

from typing import Any

from ..report import Receipt, message, subject

#: SNS's limit on a subject, which every notifier keeps to
MAX_SUBJECT = 100


def feed_message(receipt: Receipt) -> dict[str, Any]:
    """What every notifier sends (report.message), naming the receipt's feed when the
    deployment has feeds: ``batchdrop [grades]: …`` and a ``Feed:`` line in the text."""
    msg = message(receipt)
    feed = receipt.feed
    if not feed:
        return msg
    tag = f"[{feed}]"
    head = subject(receipt, MAX_SUBJECT - len(tag) - 1)
    msg["subject"] = head.replace("batchdrop:", f"batchdrop {tag}:", 1)[:MAX_SUBJECT]
    lines = msg["text"].split("\n")
    lines.insert(1, f"Feed:       {feed}")
    msg["text"] = "\n".join(lines)
    return msg
