"""One file's items on their way into a DynamoDB table: batched, governed, bounded retries.

- Items wait in a window of about ``WINDOW`` before they are sent, and each request takes 25
  items spread evenly over the window (every ``n``-th), so a file sorted by key does not send
  the items of one partition together. The window holds each key once, the later row winning,
  so no request holds a key twice (DynamoDB refuses such a request).
- The requests in flight are governed (``dynamodb_governor``): they grow while the table keeps
  up and shrink when it throttles, up to ``aws.max_workers``, and spend at most
  ``aws.max_write_units_per_s`` when it is set.
- UnprocessedItems and throttling are retried with exponential backoff and full jitter, at most
  ``aws.max_retries`` times; then the run fails as retryable (TransientError), never as rejected.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, TransientError
from ..ports import Claim, Ledger
from .dynamodb_body import ItemText
from .dynamodb_governor import Governor
from .dynamodb_wire import consumed, sender, unprocessed

if TYPE_CHECKING:
    from ..report import Receipt
    from .dynamodb import DynamoTable

__all__ = ["BATCH_LIMIT", "WINDOW", "DynamoLoad"]

BATCH_LIMIT = 25
#: items held back to be spread over requests (a multiple of BATCH_LIMIT)
WINDOW = 4000


class DynamoLoad:
    """One file's items on their way into the table, several requests in flight."""

    def __init__(self, table: DynamoTable, claim: Claim, ledger: Ledger):
        self.table = table
        self.claim = claim
        self.ledger = ledger
        aws = table.config.aws
        cap = aws.max_workers
        self.governor = Governor(cap, units_per_s=aws.max_write_units_per_s)
        self._pacing = aws.max_write_units_per_s is not None
        self._sender = sender(table.client)
        self._pool = ThreadPoolExecutor(max_workers=cap, thread_name_prefix="batchdrop-ddb")
        self._pending: deque[Future[None]] = deque()
        self._max_pending = cap * 2
        self._lock = threading.Lock()
        self._text = ItemText(table.codec)
        self._key = itemgetter(*table.codec.key_index)
        #: key → item text, in arrival order: the items not sent yet
        self._window: dict[Any, str] = {}
        self.requests = 0  # BatchWriteItem requests made, retries included
        self.items_written = 0
        self.retries = 0
        self.write_units = 0.0  # the write units the replies say were consumed

    def write(self, rows: list[tuple[Any, ...]], lines: list[int]) -> list[tuple[int, Any]]:
        renew = getattr(self.ledger, "renew", None)
        if renew is not None:
            renew(self.claim)  # a long file keeps its claim alive
        # The engine gives each key once per load; should one repeat, the later row wins, as it
        # would have had the rows been written in order.
        self._window.update(zip(map(self._key, rows), self._text.items(rows), strict=True))
        if len(self._window) >= WINDOW:
            self._spread(last=False)
        return []

    def _spread(self, *, last: bool) -> None:
        """Send the window's items, 25 to a request, each request taking every n-th item; a
        short last request waits for more items unless this is the ``last`` call."""
        texts = list(self._window.values())
        full = len(texts) - len(texts) % BATCH_LIMIT
        if last or full == len(texts):
            self._window.clear()
        else:
            keys = list(self._window)
            self._window = dict(zip(keys[full:], texts[full:], strict=True))
        n = full // BATCH_LIMIT
        for start in range(n):
            self._submit(texts[start:full:n])
        if last and full < len(texts):
            self._submit(texts[full:])

    def _submit(self, batch: list[str]) -> None:
        while len(self._pending) >= self._max_pending:
            self._pending.popleft().result()  # raises the first failure
        self._pending.append(self._pool.submit(self._send, batch))

    def _send(self, items: Sequence[str]) -> None:
        from ..aws.clients import error_code, is_transient

        table = self.table
        name, governor = table.name, self.governor
        attempt = 0
        while True:
            throttled = ""
            units: float | None = None
            ticket = governor.acquire(_estimate(items) if self._pacing else 0.0)
            try:
                reply = self._sender.send(name, items)
            except Exception as e:
                governor.release(ticket, throttled=is_transient(e))
                if not is_transient(e):
                    code = error_code(e)
                    # 403: a refusal without a code (the signature's or a policy's)
                    if code in ("ResourceNotFoundException", "AccessDeniedException", "403"):
                        raise ConfigError(f"DynamoDB refused to write {name} ({code}): {e}") from e
                    # Some batches may be in the table already, so the file must not be called
                    # rejected and moved away: it fails, stays in inbound, and is retried
                    # (and, on AWS, ends in the dead-letter queue if it keeps failing).
                    raise TransientError(
                        f"DynamoDB refused a batch of {len(items)} items for {name}: {e}"
                    ) from e
                left, throttled = list(items), error_code(e) or type(e).__name__
            else:
                left, units = unprocessed(reply, name), consumed(reply, name)
                governor.release(ticket, throttled=bool(left), units=units)
            with self._lock:
                self.requests += 1
                self.items_written += len(items) - len(left)
                self.write_units += units or 0.0
            if not left:
                return
            if attempt >= table.config.aws.max_retries:
                why = f" ({throttled})" if throttled else ""
                raise TransientError(
                    f"DynamoDB left {len(left)} item(s) of {name} unwritten after "
                    f"{attempt} retries{why}: the table is throttled; the file stays in place "
                    "and a retry will finish it"
                )
            with self._lock:
                self.retries += 1
            time.sleep(table.backoff(attempt))
            attempt += 1
            items = left

    def _drain(self) -> None:
        first: BaseException | None = None
        while self._pending:
            future = self._pending.popleft()
            try:
                future.result()
            except BaseException as e:  # keep draining: no request may outlive the load
                first = first or e
        if first is not None:
            raise first

    def finish(self) -> list[tuple[int, Any]]:
        """Send what the window holds and wait for the requests in flight (their failures
        surface here)."""
        try:
            self._spread(last=True)
        finally:
            self._drain()
        return []

    def commit(self, receipt: Receipt) -> None:
        try:
            self.finish()
        finally:
            self._pool.shutdown(wait=True)
        self.ledger.record(self.claim, "committed", receipt)

    def abort(self) -> None:
        self._window.clear()
        for future in self._pending:
            future.cancel()
        with contextlib.suppress(BaseException):  # the load is being abandoned already
            self._drain()
        self._pool.shutdown(wait=True)


def _estimate(items: Sequence[str]) -> float:
    """Write units before the reply tells: one per started KB of each item's JSON text (a
    little more than DynamoDB's size of the item, which the reply corrects)."""
    return float(sum(len(text) // 1024 + 1 for text in items))
