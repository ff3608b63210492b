"""An HTTPS webhook: the notification POSTed as JSON, retried a few times on failure.

A webhook URL is itself a credential (whoever holds a Slack-style URL may post to the channel),
so no log line or error message ever carries more of it than its scheme and host:
``redact_url`` is what every message naming a webhook shows.
"""

from __future__ import annotations

import base64
import json
import logging
import time
import urllib.error
import urllib.request
from urllib.parse import unquote, urlsplit, urlunsplit

from ..errors import TransientError
from ..redact import REDACTED, redact_url
from ..report import Receipt
from . import feed_message

log = logging.getLogger("batchdrop")


def _secret_parts(url: str) -> list[str]:
    """The pieces of ``url`` that must not appear in a message, longest first (pieces too short
    to be secrets are left, or every "/" and "a" of a message would go)."""
    try:
        parts = urlsplit(url)
        user, password = parts.username or "", parts.password or ""
    except ValueError:
        return [url]
    userinfo = parts.netloc.rpartition("@")[0]
    pieces = [url, parts.path, parts.query, parts.fragment, userinfo, user, password]
    pieces += [unquote(p) for p in pieces]
    return sorted({p for p in pieces if len(p) >= 4}, key=len, reverse=True)


def scrub(text: str, url: str) -> str:
    """``text`` with every secret piece of ``url`` replaced by a mark."""
    for piece in _secret_parts(url):
        text = text.replace(piece, REDACTED)
    return text


def _describe(error: BaseException, url: str) -> str:
    """What went wrong, in words that never repeat the URL's secret parts."""
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError):
        return scrub(str(error.reason), url)
    return scrub(f"{type(error).__name__}: {error}", url)


def _basic_auth(url: str) -> tuple[str, dict[str, str]]:
    """``url`` without its user info, and the Authorization header that carries it instead
    (urllib does not send the user info of a URL)."""
    parts = urlsplit(url)
    if parts.username is None:
        return url, {}
    netloc = parts.netloc.rpartition("@")[2]
    user = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
    token = base64.b64encode(user.encode("utf-8")).decode("ascii")
    return urlunsplit(parts._replace(netloc=netloc)), {"Authorization": f"Basic {token}"}


class WebhookNotifier:
    def __init__(self, url: str, *, attempts: int = 3, timeout: float = 10.0, backoff: float = 0.5):
        self.url = url
        self.attempts = attempts
        self.timeout = timeout
        self.backoff = backoff

    def __repr__(self) -> str:
        return f"WebhookNotifier({redact_url(self.url)!r})"

    def send(self, receipt: Receipt) -> None:
        body = json.dumps(feed_message(receipt), ensure_ascii=False, default=str).encode("utf-8")
        last: Exception | None = None
        for attempt in range(self.attempts):
            try:
                url, auth = _basic_auth(self.url)
                req = urllib.request.Request(
                    url,
                    data=body,
                    method="POST",
                    headers={
                        "Content-Type": "application/json",
                        "User-Agent": "batchdrop",
                        **auth,
                    },
                )
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    resp.read()
                    return
            except urllib.error.HTTPError as e:
                last = e
                if 400 <= e.code < 500 and e.code not in (408, 429):
                    break  # the receiver refuses this message: retrying will not help
            except Exception as e:  # network faults, and URLs http.client refuses (InvalidURL)
                last = e
            if attempt + 1 < self.attempts:
                time.sleep(self.backoff * 2**attempt)
        why = _describe(last, self.url) if last is not None else "no attempt was made"
        # from None: the original exception may quote the URL, and tracebacks get logged
        raise TransientError(
            f"webhook {redact_url(self.url)} did not accept the notification: {why}"
        ) from None
