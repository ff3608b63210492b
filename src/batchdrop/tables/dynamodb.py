"""The DynamoDB table (``dynamodb://TABLE``): batched, concurrent, bounded-retry writes.

- BatchWriteItem in requests of at most 25 items, never two items with the same key in one
  request (DynamoDB refuses such a request), ``aws.max_workers`` requests in flight at once.
- UnprocessedItems and throttling are retried with exponential backoff and full jitter, at most
  ``aws.max_retries`` times; then the run fails as retryable (TransientError), never as rejected.
- DynamoDB cannot roll a file back, so ``single_pass`` is False: the engine validates the whole
  file (``row_check`` included) before the first write, and a retry rewrites the same items.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, TransientError
from ..ports import Claim, Ledger, Page
from .dynamodb_items import KEY_TYPES, ItemCodec
from .dynamodb_ledger import DynamoLedger

if TYPE_CHECKING:
    from ..config import Config
    from ..report import Receipt

__all__ = ["BATCH_LIMIT", "DynamoLedger", "DynamoLoad", "DynamoTable"]

BATCH_LIMIT = 25


class DynamoTable:
    single_pass = False

    def __init__(self, config: Config, *, client: Any = None):
        self.config = config
        self.name = config.table.table_name
        self.key: tuple[str, ...] = config.table.key
        #: the key attributes: (partition, sort or None)
        self.attrs = config.table.physical_key
        self.codec = ItemCodec(config)
        self.row_check = self.codec.check
        self._client = client
        #: seconds: the first backoff's ceiling, and the largest (tests shrink them)
        self.backoff_base = 0.05
        self.backoff_cap = 5.0

    @classmethod
    def from_config(cls, config: Config) -> DynamoTable:
        return cls(config)

    @property
    def client(self) -> Any:
        if self._client is None:
            from ..aws.clients import client

            self._client = client("dynamodb", self.config)
        return self._client

    def prepare(self) -> None:
        """Check that the table exists and that its key is the config's key."""
        from ..aws.clients import error_code

        try:
            desc = self.client.describe_table(TableName=self.name)["Table"]
        except Exception as e:
            if error_code(e) == "ResourceNotFoundException":
                raise ConfigError(
                    f"DynamoDB table {self.name!r} does not exist: deploy the stack "
                    f"(batchdrop deploy) or create it with partition key "
                    f"{self.attrs[0]!r}"
                    + (f" and sort key {self.attrs[1]!r}" if self.attrs[1] else ""),
                    key="table.url",
                ) from e
            if error_code(e) in ("AccessDeniedException", "UnrecognizedClientException", "403"):
                raise ConfigError(
                    f"DynamoDB refused to describe the table {self.name!r} "
                    f"({error_code(e)}): check the role's permissions",
                    key="table.url",
                ) from e
            raise _transient(e, f"describe table {self.name}") from e
        roles = {k["KeyType"]: k["AttributeName"] for k in desc["KeySchema"]}
        found = (roles.get("HASH"),) + ((roles["RANGE"],) if "RANGE" in roles else ())
        want_key = tuple(a for a in self.attrs if a is not None)
        if found != want_key:
            raise ConfigError(
                f"DynamoDB table {self.name!r} has the key {list(found)}, the "
                f"config says {list(want_key)}",
                key="table",
            )
        types = {a["AttributeName"]: a["AttributeType"] for a in desc["AttributeDefinitions"]}
        for name in want_key:
            joined = name in self.codec.joined_names
            want = "S" if joined else KEY_TYPES.get(self.codec.types[name])
            if types.get(name) != want:
                why = (
                    "a composite key is text"
                    if joined
                    else (f"the schema's type {self.codec.types[name]!r} needs {want}")
                )
                raise ConfigError(
                    f"DynamoDB table {self.name!r} stores key {name!r} as type "
                    f"{types.get(name)}, but {why}",
                    key="table",
                )

    def begin(self, claim: Claim, ledger: Ledger) -> DynamoLoad:
        return DynamoLoad(self, claim, ledger)

    def get(self, key: Sequence[Any]) -> dict[str, Any] | None:
        try:
            reply = self.client.get_item(
                TableName=self.name, Key=self.codec.key_item(key), ConsistentRead=True
            )
        except Exception as e:
            raise _transient(e, f"get an item from {self.name}") from e
        item = reply.get("Item")
        return self.codec.decode(item) if item else None

    def query(
        self, partition: Any, *, begins_with: str | None = None, after: Any = None, limit: int = 100
    ) -> Page:
        """One partition in sort-key order: Query with a key condition, never a Scan.
        ``partition`` is a tuple of values for a composite partition key."""
        pk, sk = self.attrs
        names = {"#pk": pk}
        parts = partition if self.codec.parts[0] > 1 else (partition,)
        values = {":pk": self.codec.partition_value(parts)}
        condition = "#pk = :pk"
        if begins_with is not None:
            if sk is None:
                raise ValueError("begins_with needs a table with a sort key")
            names["#sk"] = sk
            values[":prefix"] = {"S": begins_with}
            condition += " AND begins_with(#sk, :prefix)"
        args: dict[str, Any] = {
            "TableName": self.name,
            "KeyConditionExpression": condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }
        start = None
        if after is not None and sk is not None:
            start = {pk: values[":pk"], sk: self.codec.key_value(sk, after)}
        items: list[dict[str, Any]] = []
        # Ask for one more than needed, so ``next`` is None exactly when nothing is left.
        while len(items) <= limit:
            if start:
                args["ExclusiveStartKey"] = start
            args["Limit"] = limit + 1 - len(items)
            try:
                reply = self.client.query(**args)
            except Exception as e:
                raise _transient(e, f"query {self.name}") from e
            items.extend(reply.get("Items", []))
            start = reply.get("LastEvaluatedKey")
            if not start:
                break
        more = len(items) > limit
        items = items[:limit]
        cursor = self.codec.cursor(items[-1]) if more and items else None
        return Page([self.codec.decode(i) for i in items], cursor)

    def close(self) -> None:
        pass

    def backoff(self, attempt: int) -> float:
        """Full jitter: a random wait up to an exponentially growing ceiling."""
        return random.uniform(0, min(self.backoff_cap, self.backoff_base * 2**attempt))


class DynamoLoad:
    """One file's items on their way into the table, several requests in flight."""

    def __init__(self, table: DynamoTable, claim: Claim, ledger: Ledger):
        self.table = table
        self.claim = claim
        self.ledger = ledger
        workers = table.config.aws.max_workers
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="batchdrop-ddb")
        self._pending: deque[Future[None]] = deque()
        self._max_pending = workers * 2
        self._lock = threading.Lock()
        self.requests = 0  # BatchWriteItem calls made, retries included
        self.items_written = 0
        self.retries = 0

    def write(self, rows: list[tuple[Any, ...]], lines: list[int]) -> list[tuple[int, Any]]:
        renew = getattr(self.ledger, "renew", None)
        if renew is not None:
            renew(self.claim)  # a long file keeps its claim alive
        codec = self.table.codec
        # The engine gives each key once per load; should one repeat, the later row wins, as it
        # would have had the rows been written in order.
        keys = list(map(codec.key_of, rows))
        last = {key: i for i, key in enumerate(keys)}
        if len(last) < len(rows):
            rows = [row for i, row in enumerate(rows) if last[keys[i]] == i]
        del keys, last
        # Items are made a request at a time: a whole batch of them would weigh megabytes.
        for start in range(0, len(rows), BATCH_LIMIT):
            self._submit([codec.item(row) for row in rows[start : start + BATCH_LIMIT]])
        return []

    def _submit(self, batch: list[dict[str, Any]]) -> None:
        while len(self._pending) >= self._max_pending:
            self._pending.popleft().result()  # raises the first failure
        self._pending.append(self._pool.submit(self._send, batch))

    def _send(self, items: list[dict[str, Any]]) -> None:
        table = self.table
        requests = [{"PutRequest": {"Item": item}} for item in items]
        attempt = 0
        while True:
            throttled = ""
            try:
                reply = table.client.batch_write_item(RequestItems={table.name: requests})
                unprocessed = reply.get("UnprocessedItems", {}).get(table.name, [])
            except Exception as e:
                from ..aws.clients import error_code, is_transient

                if not is_transient(e):
                    code = error_code(e)
                    if code in ("ResourceNotFoundException", "AccessDeniedException"):
                        raise ConfigError(
                            f"DynamoDB refused to write {table.name} ({code}): {e}"
                        ) from e
                    # Some batches may be in the table already, so the file must not be called
                    # rejected and moved away: it fails, stays in inbound, and is retried
                    # (and, on AWS, ends in the dead-letter queue if it keeps failing).
                    raise TransientError(
                        f"DynamoDB refused a batch of {len(requests)} items for {table.name}: {e}"
                    ) from e
                unprocessed, throttled = requests, error_code(e) or type(e).__name__
            with self._lock:
                self.requests += 1
                self.items_written += len(requests) - len(unprocessed)
            if not unprocessed:
                return
            if attempt >= table.config.aws.max_retries:
                why = f" ({throttled})" if throttled else ""
                raise TransientError(
                    f"DynamoDB left {len(unprocessed)} item(s) of {table.name} unwritten after "
                    f"{attempt} retries{why}: the table is throttled; the file stays in place "
                    "and a retry will finish it"
                )
            with self._lock:
                self.retries += 1
            time.sleep(table.backoff(attempt))
            attempt += 1
            requests = unprocessed

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
        """Wait for the requests in flight (their failures surface here)."""
        self._drain()
        return []

    def commit(self, receipt: Receipt) -> None:
        try:
            self._drain()
        finally:
            self._pool.shutdown(wait=True)
        self.ledger.record(self.claim, "committed", receipt)

    def abort(self) -> None:
        for future in self._pending:
            future.cancel()
        with contextlib.suppress(BaseException):  # the load is being abandoned already
            self._drain()
        self._pool.shutdown(wait=True)


def _transient(e: Exception, what: str) -> Exception:
    from ..aws.clients import error_code, is_transient

    code = error_code(e)
    if code in (
        "ResourceNotFoundException",
        "AccessDeniedException",
        "UnrecognizedClientException",
    ):
        return ConfigError(
            f"DynamoDB refused to {what} ({code}): check the table name in the "
            "config and the role's permissions"
        )
    if code == "ValidationException":
        return ValueError(f"DynamoDB refused to {what}: {e}")
    if is_transient(e):
        return TransientError(f"DynamoDB could not {what} ({code or type(e).__name__}): {e}")
    return TransientError(f"DynamoDB failed to {what}: {e}")
