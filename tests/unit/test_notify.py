"""Notifiers: a real HTTP server on 127.0.0.1 for the webhook, a real file for JSON lines."""

from __future__ import annotations

import base64
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
from batchdrop.notify.webhook import WebhookNotifier, redact_url
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
        self.paths: list[str] = []
        self.auth: list[str | None] = []


@pytest.fixture
def hook() -> Iterator[tuple[str, Hook]]:
    state = Hook()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.paths.append(self.path)
            state.auth.append(self.headers.get("Authorization"))
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
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
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


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "https://hooks.slack.com/services/T0/B0/XXXXXXXX",
            "https://hooks.slack.com/[redacted]",
        ),
        (
            "https://user:pw@example.com:8443/hook?token=abc#x",
            "https://example.com:8443/[redacted]",
        ),
        ("https://example.com/?token=abc", "https://example.com/[redacted]"),
        ("https://example.com", "https://example.com/"),
        ("https://example.com/", "https://example.com/"),
        ("http://[::1]:9000/p", "http://[::1]:9000/[redacted]"),
        ("not a url", "[redacted]"),
        ("https://example.com:notaport/x", "[redacted]"),
    ],
)
def test_redact_url_keeps_only_scheme_host_and_port(url: str, shown: str) -> None:
    assert redact_url(url) == shown


SECRETS = ("user", "s3cret", "services/T0/B0", "XXXXXXXX", "token", "abcdef")


def test_a_failing_webhook_names_its_host_only(hook: tuple[str, Hook]) -> None:
    url, state = hook
    state.fail_first = 5
    secret = url.replace("http://", "http://user:s3cret@") + "/services/T0/B0/XXXXXXXX?token=abcdef"
    notifier = WebhookNotifier(secret, attempts=2, backoff=0)
    with pytest.raises(TransientError) as caught:
        notifier.send(receipt())
    message = str(caught.value)
    host = url.removeprefix("http://").split("/")[0]
    assert message == (
        f"webhook http://{host}/[redacted] did not accept the notification: "
        "HTTP 503 Service Unavailable"
    )
    assert caught.value.__cause__ is None and caught.value.__context__ is None
    for piece in SECRETS:
        assert piece not in repr(notifier)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:1/services/T0/B0/XXXXXXXX?token=abcdef",  # nothing listens
        "http://127.0.0.1:1/services/T0/B0/XXXXXXXX has a space?token=abcdef",  # InvalidURL
        "http://user:s3cret@no-such-host.invalid/services/T0/B0/XXXXXXXX?token=abcdef",
    ],
)
def test_a_webhook_that_cannot_be_reached_is_reported_without_its_secrets(url: str) -> None:
    with pytest.raises(TransientError) as caught:
        WebhookNotifier(url, attempts=1, backoff=0, timeout=2).send(receipt())
    message = str(caught.value)
    assert "did not accept the notification" in message
    for piece in SECRETS:
        assert piece not in message


def test_a_webhook_with_user_info_sends_it_as_basic_auth(hook: tuple[str, Hook]) -> None:
    url, state = hook
    WebhookNotifier(url.replace("http://", "http://ops%40corp:p%3Ass@") + "?k=1").send(receipt())
    assert state.paths == ["/hook?k=1"]
    assert state.auth == ["Basic " + base64.b64encode(b"ops@corp:p:ss").decode()]
