"""An HTTPS webhook: the notification POSTed as JSON, retried a few times on failure."""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request

from ..errors import TransientError
from ..report import Receipt, message

log = logging.getLogger("batchdrop")


class WebhookNotifier:
    def __init__(self, url: str, *, attempts: int = 3, timeout: float = 10.0, backoff: float = 0.5):
        self.url = url
        self.attempts = attempts
        self.timeout = timeout
        self.backoff = backoff

    def send(self, receipt: Receipt) -> None:
        body = json.dumps(message(receipt), ensure_ascii=False, default=str).encode("utf-8")
        last: Exception | None = None
        for attempt in range(self.attempts):
            req = urllib.request.Request(
                self.url,
                data=body,
                method="POST",
                headers={"Content-Type": "application/json", "User-Agent": "batchdrop"},
            )
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    resp.read()
                    return
            except urllib.error.HTTPError as e:
                last = e
                if 400 <= e.code < 500 and e.code not in (408, 429):
                    break  # the receiver refuses this message: retrying will not help
            except (urllib.error.URLError, TimeoutError, OSError) as e:
                last = e
            if attempt + 1 < self.attempts:
                time.sleep(self.backoff * 2**attempt)
        raise TransientError(f"webhook {self.url} did not accept the notification: {last}")
