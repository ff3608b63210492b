"""How the runtime's logs look: JSON inside Lambda, readable lines in a terminal.

The handler and the worker log through one Powertools ``Logger`` (``handler.logger``), which
writes JSON: what CloudWatch Logs and Lambda's JSON log format index. A person running
``batchdrop worker`` reads the same records as ``time level message key=value …`` lines on
stderr; inside Lambda (``AWS_LAMBDA_FUNCTION_NAME`` set) they stay JSON.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import IO, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.formatter import BasePowertoolsFormatter

#: attributes every LogRecord has; the others are the ``extra`` keys of a call
STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}
#: keys Powertools adds to every record, which say nothing to a person at a terminal
QUIET = frozenset({"service", "sampling_rate"})


def in_lambda(environ: Mapping[str, str] = os.environ) -> bool:
    return bool(environ.get("AWS_LAMBDA_FUNCTION_NAME"))


def _value(v: Any) -> str:
    text = v if isinstance(v, str) else json.dumps(v, default=str, ensure_ascii=False)
    if not text or any(c.isspace() or c in '="' for c in text):
        return json.dumps(text, ensure_ascii=False)
    return text


class TerminalFormatter(BasePowertoolsFormatter):
    """``2026-11-28 06:55:01 INFO    file processed file=students.csv status=loaded …``"""

    def __init__(self) -> None:
        super().__init__()
        self._keys: dict[str, Any] = {}
        self._local = threading.local()

    def append_keys(self, **additional_keys: Any) -> None:
        self._keys.update(additional_keys)

    def get_current_keys(self) -> dict[str, Any]:
        return dict(self._keys)

    def remove_keys(self, keys: Iterable[str]) -> None:
        for k in keys:
            self._keys.pop(k, None)

    def clear_state(self) -> None:
        self._keys.clear()

    def _thread_keys(self) -> dict[str, Any]:
        if not hasattr(self._local, "keys"):
            self._local.keys = {}
        return self._local.keys  # type: ignore[no-any-return]

    def thread_safe_append_keys(self, **additional_keys: Any) -> None:
        self._thread_keys().update(additional_keys)

    def thread_safe_get_current_keys(self) -> dict[str, Any]:
        return dict(self._thread_keys())

    def thread_safe_remove_keys(self, keys: Iterable[str]) -> None:
        for k in keys:
            self._thread_keys().pop(k, None)

    def thread_safe_clear_keys(self) -> None:
        self._thread_keys().clear()

    def format(self, record: logging.LogRecord) -> str:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.created))
        extras = {**self._keys, **self._thread_keys()}
        extras.update((k, v) for k, v in record.__dict__.items() if k not in STANDARD)
        pairs = " ".join(
            f"{k}={_value(v)}" for k, v in extras.items() if k not in QUIET and v is not None
        )
        line = f"{when} {record.levelname:<7} {record.getMessage()}"
        if pairs:
            line += " " + pairs
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


@contextlib.contextmanager
def to_terminal(logger: Logger, stream: IO[str] | None = None) -> Iterator[None]:
    """While in the block, ``logger``'s records go to ``stream`` (stderr): JSON inside Lambda,
    else readable lines. The logger is shared with the Lambda entrypoint, so it is restored."""
    handler = logger.registered_handler
    formatter = handler.formatter
    old_stream = None
    if isinstance(handler, logging.StreamHandler):
        old_stream = handler.setStream(stream or sys.stderr)
    if not in_lambda():
        handler.setFormatter(TerminalFormatter())
    try:
        yield
    finally:
        handler.setFormatter(formatter)
        if old_stream is not None and isinstance(handler, logging.StreamHandler):
            handler.setStream(old_stream)
