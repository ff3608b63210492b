"""The DynamoDB table (``dynamodb://TABLE``): batched, governed, bounded-retry writes.

- Writes (``dynamodb_load``): BatchWriteItem in requests of at most 25 items, never two items
  with the same key in one request, sent on the wire (``dynamodb_wire``), the requests in
  flight governed up to ``aws.max_workers``; UnprocessedItems and throttling retried with
  backoff at most ``aws.max_retries`` times, then the run fails as retryable (TransientError).
- Every other call (DescribeTable, GetItem, Query, the ledger) goes through the botocore client.
- DynamoDB cannot roll a file back, so ``single_pass`` is False: the engine validates the whole
  file (``row_check`` included) before the first write, and a retry rewrites the same items.
- ``mode: snapshot`` and ``write: changed_only`` compare a load with the feed's last one
  (``plan``, dynamodb_modes.py); ``only_if_newer`` writes conditional puts (dynamodb_load.py).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, TransientError
from ..ports import Claim, Ledger, Page
from .dynamodb_items import KEY_TYPES, ItemCodec
from .dynamodb_ledger import DynamoLedger
from .dynamodb_load import BATCH_LIMIT, DynamoLoad
from .dynamodb_modes import Collector, Plan, feed_slug, folder, keeps_state, make_plan

if TYPE_CHECKING:
    from ..config import Config
    from ..state import StateStore

log = logging.getLogger("batchdrop")

__all__ = ["BATCH_LIMIT", "DynamoLedger", "DynamoLoad", "DynamoTable"]


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
        #: the plans made for loads not begun yet, by run id
        self._plans: dict[str, Plan] = {}
        self._feed_store: StateStore | None = None

    @classmethod
    def from_config(cls, config: Config) -> DynamoTable:
        return cls(config)

    @property
    def keeps_state(self) -> bool:
        """Whether a load compares with the feed's last load (dynamodb_modes.py): such a file
        is read by one process, never in shards."""
        return keeps_state(self.config)

    def plan(
        self,
        run_id: str,
        file_name: str,
        ledger: Ledger,
        read: Callable[[Collector], object],
        *,
        dry: bool = False,
    ) -> Plan:
        """Before the write pass of a load that compares with the last one: ``read`` gives
        the collector every row the write pass will write; the plan made of them waits for
        ``begin``. A snapshot over ``max_deletes`` raises a DataError here, before any write.
        ``dry``: only the plan's counts, nothing kept (``validate``)."""
        config = self.config
        last = getattr(ledger, "feed_state", None)
        if last is None:
            raise ConfigError(
                f"{'mode: snapshot' if config.mode == 'snapshot' else 'write: changed_only'} "
                "on a DynamoDB table needs a SQLite or DynamoDB ledger, which names the "
                "feed's last load",
                key="ledger",
            )
        by_partition = config.mode == "snapshot" and config.snapshot_scope == "partition"
        by = "partition" if by_partition else "key"
        base = last(feed_slug(config))
        collector = Collector(self.codec, by)
        try:
            read(collector)
        except BaseException:
            collector.abort()
            raise
        plan = make_plan(config, collector, self.feed_store, base, run_id, file_name, dry=dry)
        if not dry:
            old = self._plans.pop(run_id, None)
            if old is not None:
                old.close()
            self._plans[run_id] = plan
        return plan

    @property
    def feed_store(self) -> StateStore:
        if self._feed_store is None:
            from ..state import FEEDS_PREFIX, open_state

            self._feed_store = open_state(self.config, FEEDS_PREFIX)
        return self._feed_store

    def forget_state(self, plan: Plan) -> None:
        """The last load's state, replaced by ``plan``'s now committed (best effort: what is
        left is never read again)."""
        if plan.base is None or plan.base == plan.run_id:
            return
        try:
            self.feed_store.drop(folder(plan.slug, plan.base))
        except Exception as e:  # the load is committed: a leftover costs storage only
            log.warning("could not remove the state of run %s: %s", plan.base, e)

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
        return DynamoLoad(self, claim, ledger, self._plans.pop(claim.run_id, None))

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
