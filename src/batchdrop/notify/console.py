"""Notifications on the terminal (stderr) and as JSON lines appended to a file."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TextIO

from ..report import FAILED, REJECTED, Receipt
from . import feed_message


class ConsoleNotifier:
    """Writes each notification to stderr: the subject, then the readable text."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream

    def send(self, receipt: Receipt) -> None:
        out = self.stream or sys.stderr
        msg = feed_message(receipt)
        bar = "!" if receipt.status in (REJECTED, FAILED) else "-"
        out.write(f"{bar * 3} {msg['subject']}\n{msg['text']}\n\n")
        out.flush()


class JsonLinesNotifier:
    """Appends one JSON object per notification to a file (one line each)."""

    def __init__(self, path: str):
        self.path = Path(path)

    def send(self, receipt: Receipt) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(feed_message(receipt), ensure_ascii=False, default=str) + "\n"
        # one write() of a whole line on an O_APPEND file: concurrent runs do not interleave
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode("utf-8"))
        finally:
            os.close(fd)
