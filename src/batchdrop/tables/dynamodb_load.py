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
- The write modes (dynamodb_modes.py): with a ``Plan``, the items equal to the last load's are
  not sent (``write: changed_only``), and the snapshot's deletes go out as DeleteRequests once
  every row is written, before the run is recorded; with ``only_if_newer`` each item is a
  PutItem on condition that the stored item's version is not newer (DynamoDB has no condition
  in BatchWriteItem), and a refused one is a stale row.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Sequence
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, TransientError
from ..ports import Claim, Ledger
from ..report import count_write_units
from .dynamodb_body import ItemText, put_body, value_text
from .dynamodb_governor import Governor, Ticket
from .dynamodb_modes import Plan
from .dynamodb_senders import Senders
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

    def __init__(self, table: DynamoTable, claim: Claim, ledger: Ledger, plan: Plan | None = None):
        self.table = table
        self.plan = plan
        self.claim = claim
        self.ledger = ledger
        aws = table.config.aws
        cap = aws.max_workers
        self.governor = Governor(cap, units_per_s=aws.max_write_units_per_s)
        self._pacing = aws.max_write_units_per_s is not None
        self._sender = sender(table.client)
        self._senders = Senders(cap, "batchdrop-ddb")
        self._lock = threading.Lock()
        self._text = ItemText(table.codec)
        self._key = itemgetter(*table.codec.key_index)
        #: key → item text, in arrival order: the items not sent yet
        self._window: dict[Any, str] = {}
        self.requests = 0  # BatchWriteItem requests made, retries included
        self.items_written = 0
        self.retries = 0
        self.write_units = 0.0  # the write units the replies say were consumed
        self.rows_stale = 0  # only_if_newer: items the table holds a newer version of
        #: rows stale in the run's earlier invocations, up to its last checkpoint
        self.carried_stale = 0
        newer = table.config.only_if_newer
        #: only_if_newer: the version's column, and the conditions' attribute names (JSON)
        self._newer: tuple[int, str, str] | None = None
        if newer is not None:
            pk = '"#pk":' + json.dumps(table.attrs[0])
            both = "{" + pk + ',"#v":' + json.dumps(newer) + "}"
            self._newer = (table.codec.fields.index(newer), "{" + pk + "}", both)

    def write(self, rows: list[tuple[Any, ...]], lines: list[int]) -> list[tuple[int, Any]]:
        renew = getattr(self.ledger, "renew", None)
        if renew is not None:
            renew(self.claim)  # a long file keeps its claim alive
        plan = self.plan
        if plan is not None and plan.unchanged:
            rows = [row for row in rows if not plan.is_unchanged(row)]
        texts = self._text.items(rows)
        if self._newer is not None:
            for row, text in zip(rows, texts, strict=True):
                self._submit_put(row, text)
            return []
        # The engine gives each key once per load; should one repeat, the later row wins, as it
        # would have had the rows been written in order.
        self._window.update(zip(map(self._key, rows), texts, strict=True))
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

    def _submit(self, batch: list[str], *, delete: bool = False) -> None:
        self._senders.check()  # a request that failed fails the load now
        # The loading thread waits for room in flight, not the senders: a reply then wakes
        # no sender (the loading thread, busy reading, is seldom waiting), and with pacing
        # it is the reading that waits for write units. So the senders' queue holds no more
        # requests than the governor lets fly.
        ticket = self.governor.acquire(_estimate(batch) if self._pacing else 0.0)
        self._senders.submit(self._send, batch, delete, ticket)

    def _submit_put(self, row: tuple[Any, ...], text: str) -> None:
        assert self._newer is not None
        at, pk_only, both = self._newer
        version = row[at]
        if version is None:  # no version: written only where the table has no such item
            data = put_body(self.table.name, text, "attribute_not_exists(#pk)", pk_only)
        else:
            # an equal version is written again: a rerun after a crash finds its own items
            condition = "attribute_not_exists(#pk) OR attribute_not_exists(#v) OR #v <= :v"
            values = '{":v":' + value_text(version) + "}"
            data = put_body(self.table.name, text, condition, both, values)
        self._senders.check()
        ticket = self.governor.acquire(len(data) // 1024 + 1.0 if self._pacing else 0.0)
        self._senders.submit(self._put, data, ticket)

    def _put(self, data: bytes, ticket: Ticket) -> None:
        """One conditional PutItem, retried as a batch is; a refused condition is a stale row.
        ``ticket``: its place in flight, taken by the loading thread and kept through the
        retries."""
        from ..aws.clients import error_code, is_transient

        table, governor = self.table, self.governor
        attempt = 0
        governor.started(ticket)
        while True:
            if attempt:
                governor.again(ticket, len(data) // 1024 + 1.0 if self._pacing else 0.0)
            try:
                reply = self._sender.put(data)
            except Exception as e:
                code = error_code(e)
                retry = is_transient(e) and attempt < table.config.aws.max_retries
                governor.release(ticket, throttled=is_transient(e), keep=retry)
                if code == "ConditionalCheckFailedException":
                    with self._lock:
                        self.requests += 1
                        self.rows_stale += 1
                        self.write_units += 1.0  # a refused condition still costs a write
                    return
                if not is_transient(e):
                    if code in ("ResourceNotFoundException", "AccessDeniedException", "403"):
                        raise ConfigError(
                            f"DynamoDB refused to write {table.name} ({code}): {e}"
                        ) from e
                    raise TransientError(f"DynamoDB refused an item for {table.name}: {e}") from e
                if attempt >= table.config.aws.max_retries:
                    raise TransientError(
                        f"DynamoDB left an item of {table.name} unwritten after {attempt} "
                        f"retries ({code or type(e).__name__}): the table is throttled; the "
                        "file stays in place and a retry will finish it"
                    ) from e
                with self._lock:
                    self.retries += 1
                time.sleep(table.backoff(attempt))
                attempt += 1
                continue
            try:
                units = consumed(reply, table.name)
            finally:
                governor.release(ticket, throttled=False, units=None)
            with self._lock:
                self.requests += 1
                self.items_written += 1
                self.write_units += units or 0.0
            return

    def _send(self, items: Sequence[str], delete: bool, ticket: Ticket) -> None:
        """One BatchWriteItem and its retries; ``ticket``: its place in flight, taken by the
        loading thread and kept through the retries."""
        from ..aws.clients import error_code, is_transient

        table = self.table
        name, governor = table.name, self.governor
        attempt = 0
        retries = table.config.aws.max_retries
        governor.started(ticket)
        while True:
            throttled = ""
            units: float | None = None
            if attempt:
                governor.again(ticket, _estimate(items) if self._pacing else 0.0)
            try:
                reply = self._sender.send(name, items, delete=delete)
            except Exception as e:
                retry = is_transient(e) and attempt < retries
                governor.release(ticket, throttled=is_transient(e), keep=retry)
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
                retry = bool(left) and attempt < retries
                governor.release(ticket, throttled=bool(left), units=units, keep=retry)
            with self._lock:
                self.requests += 1
                self.items_written += len(items) - len(left)
                self.write_units += units or 0.0
            if not left:
                return
            if attempt >= retries:
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
        # every request ends before the first failure is raised: none may outlive the load
        self._senders.drain()

    def finish(self) -> list[tuple[int, Any]]:
        """Send what the window holds and wait for the requests in flight (their failures
        surface here)."""
        try:
            self._spread(last=True)
        finally:
            self._drain()
        return []

    def commit(self, receipt: Receipt) -> None:
        plan = self.plan
        try:
            self.finish()
            if plan is not None and plan.deleted:
                units = self.write_units
                self._delete(plan)
                if receipt.write_units is not None:  # counted by the engine before the deletes
                    price = self.table.config.aws.write_unit_price
                    extra = self.write_units - units
                    count_write_units(receipt, receipt.write_units + extra, price)
        finally:
            self._senders.shutdown()
        stale = self.carried_stale + self.rows_stale
        before = receipt.to_dict()
        if stale:
            receipt.rows_loaded -= stale
            receipt.rows_stale = stale
        if plan is not None:
            receipt.rows_unchanged = len(plan.unchanged)
            receipt.rows_deleted = plan.deleted
            # the ledger names this load's state the feed's in the same transaction
            self.claim.extra["feed_state"] = (plan.slug, plan.base, plan.run_id, plan.by)
        try:
            self.ledger.record(self.claim, "committed", receipt)
        except BaseException:
            type(receipt).restore(receipt, before)
            raise
        finally:
            self.claim.extra.pop("feed_state", None)
        if plan is not None:
            plan.close()
            self.table.forget_state(plan)

    def _delete(self, plan: Plan) -> None:
        """The snapshot's deletes, 25 keys to a request, once every row is written."""
        batch: list[str] = []
        for key in plan.delete_keys():
            batch.append(key)
            if len(batch) == BATCH_LIMIT:
                self._submit(batch, delete=True)
                batch = []
        if batch:
            self._submit(batch, delete=True)
        self._drain()

    def abort(self) -> None:
        if self.plan is not None:
            self.plan.close()
        self._window.clear()
        self._senders.cancel()
        with contextlib.suppress(BaseException):  # the load is being abandoned already
            self._drain()
        self._senders.shutdown()


def _estimate(items: Sequence[str]) -> float:
    """Write units before the reply tells: one per started KB of each item's JSON text (a
    little more than DynamoDB's size of the item, which the reply corrects)."""
    return float(sum(len(text) // 1024 + 1 for text in items))
