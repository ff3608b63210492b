"""Notifiers: a real HTTP server on 127.0.0.1 for the webhook, a real file for JSON lines."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from batchdrop.errors import TransientError
from batchdrop.notify.console import ConsoleNotifier, JsonLinesNotifier
from batchdrop.notify.webhook import WebhookNotifier
from batchdrop.report import Receipt, subject


def receipt(**changes: Any) -> Receipt:
    base = dict(
        file="in/students.csv",
        source="/data/in/students.csv",
        version="sha256:ab",
        size=10,
        run_id="r1",
        status="loaded_with_rejects",
        rows_read=12,
        rows_loaded=10,
        rows_rejected=2,
    )
    return Receipt(**{**base, **changes})


class Hook:
    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.fail_first = 0


@pytest.fixture
def hook() -> Iterator[tuple[str, Hook]]:
    state = Hook()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if state.fail_first:
                state.fail_first -= 1
                self.send_response(503)
            else:
                assert self.headers["Content-Type"] == "application/json"
                state.bodies.append(json.loads(body))
                self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook", state
    server.shutdown()
    server.server_close()


def test_webhook_posts_subject_text_and_receipt(hook: tuple[str, Hook]) -> None:
    url, state = hook
    WebhookNotifier(url, backoff=0).send(receipt())

    [body] = state.bodies
    assert body["subject"] == "batchdrop: students.csv loaded with rejects (10/12 rows)"
    assert "Rows:       12 read, 10 loaded, 2 rejected, 0 duplicate" in body["text"]
    assert body["receipt"]["run_id"] == "r1" and body["receipt"]["rows_rejected"] == 2


def test_webhook_retries_a_failing_receiver_then_gives_up(hook: tuple[str, Hook]) -> None:
    url, state = hook
    state.fail_first = 2
    WebhookNotifier(url, attempts=3, backoff=0).send(receipt())
    assert len(state.bodies) == 1

    state.fail_first = 5
    with pytest.raises(TransientError, match="did not accept the notification"):
        WebhookNotifier(url, attempts=2, backoff=0).send(receipt())


def test_json_lines_appends_one_line_per_notification(tmp_path: Path) -> None:
    path = tmp_path / "log" / "receipts.jsonl"
    notifier = JsonLinesNotifier(str(path))
    notifier.send(receipt())
    notifier.send(receipt(status="rejected", rows_loaded=0, rows_rejected=12))

    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert [m["receipt"]["status"] for m in lines] == ["loaded_with_rejects", "rejected"]


def test_console_prints_subject_and_text() -> None:
    out = io.StringIO()
    ConsoleNotifier(out).send(receipt(status="rejected", reason="bad header: missing column"))
    text = out.getvalue()
    assert text.startswith("!!! batchdrop: students.csv REJECTED")
    assert "Reason:     bad header: missing column" in text


def test_subject_stays_within_100_characters() -> None:
    long = receipt(file="x" * 300 + ".csv")
    assert len(subject(long)) <= 100
    assert subject(long).endswith("loaded with rejects (10/12 rows)")
