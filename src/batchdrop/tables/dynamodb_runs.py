"""The DynamoDB ledger's table and its run records.

A ``run#<run_id>`` item is the run record (the shape every ledger returns), carrying
``run_list = "runs"`` so it appears in the ``runs`` index (run ids sort by time, so the index is
newest first when reversed). The claims on file versions, which share the table, are in
dynamodb_ledger.py.
"""

from __future__ import annotations

import contextlib
import json
import time
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, TransientError
from ..ports import RUN_FIELDS, FileRef, iso_time

if TYPE_CHECKING:
    from ..config import Config
    from ..report import Receipt

RUNS_INDEX = "runs"
RUN_LIST = "runs"
RECORD_FIELDS = RUN_FIELDS
#: how long a run's own process has to send its notification before another process may
OUTBOX_LEASE_S = 120
#: how many of the newest runs are looked at for unfinished runs and unsent notifications
RECENT_RUNS = 200


def ledger_table_spec(name: str) -> dict[str, Any]:
    """CreateTable arguments for a ledger table (the deploy template mirrors this)."""
    return {
        "TableName": name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "run_list", "AttributeType": "S"},
            {"AttributeName": "run_id", "AttributeType": "S"},
        ],
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": RUNS_INDEX,
                "KeySchema": [
                    {"AttributeName": "run_list", "KeyType": "HASH"},
                    {"AttributeName": "run_id", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
    }


def progress_of(data: str | None) -> dict[str, Any] | None:
    return json.loads(data) if data else None  # type: ignore[no-any-return]


def now_iso() -> str:
    return iso_time()


def encode(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int | float | Decimal):
        return {"N": str(value)}
    return {"S": str(value)}


def item_of(values: dict[str, Any]) -> dict[str, Any]:
    return {k: a for k, v in values.items() if (a := encode(v)) is not None}


def decode(item: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, attr in item.items():
        kind, v = next(iter(attr.items()))
        if kind == "N":
            d = Decimal(v)
            out[name] = int(d) if d == d.to_integral_value() else d
        else:
            out[name] = v
    return out


class ConditionFailed(Exception):
    """A conditional write found the item changed (``item``: as it is now, when DynamoDB says)."""

    def __init__(self, item: dict[str, Any] | None):
        super().__init__("condition failed")
        self.item = item


class LedgerTable:
    """The ledger's table: its client, the run records, and DynamoDB's errors in our terms."""

    def __init__(self, config: Config, *, client: Any = None, table_name: str | None = None):
        self.config = config
        url = config.ledger_url
        if not url.startswith("dynamodb://"):
            raise ConfigError(f"{url!r} is not a DynamoDB ledger", key="ledger")
        self.name = table_name or url.removeprefix("dynamodb://").strip("/")
        self.ttl = config.aws.claim_ttl_seconds
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            from ..aws.clients import client

            self._client = client("dynamodb", self.config)
        return self._client

    def _run_item(
        self, run_id: str, ref: FileRef, state: str, receipt: Receipt | None, attempt: int = 1
    ) -> dict[str, Any]:
        values: dict[str, Any] = {
            "pk": f"run#{run_id}",
            "kind": "run",
            "run_list": RUN_LIST,
            "run_id": run_id,
            "file": ref.name,
            "source": ref.url,
            "version": ref.version,
            "size": ref.size,
            "state": state,
            "started_at": now_iso(),
            "attempt": attempt,
        }
        if receipt is not None:
            r = receipt.to_dict()
            values.update({k: r.get(k) for k in RECORD_FIELDS if k in r and r.get(k) is not None})
            values.update(
                state=state,
                run_id=run_id,
                started_at=r.get("started_at") or values["started_at"],
                receipt=receipt.to_json(),
            )
            if state in ("done", "failed"):
                values["finished_at"] = r.get("finished_at") or now_iso()
        return item_of(values)

    def _put_run(
        self, run_id: str, ref: FileRef, state: str, receipt: Receipt | None, attempt: int
    ) -> None:
        item = self._run_item(run_id, ref, state, receipt, attempt)
        self._call("put_item", TableName=self.name, Item=item)

    def _mark_abandoned(self, run_id: str) -> None:
        with contextlib.suppress(ConditionFailed):
            self._call(
                "update_item",
                TableName=self.name,
                Key=item_of({"pk": f"run#{run_id}"}),
                UpdateExpression="SET #state = :failed, reason = :why, finished_at = :at",
                ConditionExpression="#state = :running",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues=item_of(
                    {
                        ":failed": "failed",
                        ":running": "running",
                        ":at": now_iso(),
                        ":why": "the run stopped without finishing; its claim expired and "
                        "the file was retried",
                    }
                ),
            )

    @staticmethod
    def _record(item: dict[str, Any]) -> dict[str, Any]:
        raw = decode(item)
        out = {k: raw.get(k) for k in RECORD_FIELDS}
        for k in ("rows_read", "rows_loaded", "rows_rejected", "rows_duplicate", "size"):
            out[k] = int(out[k] or 0)
        out["receipt"] = json.loads(raw["receipt"]) if raw.get("receipt") else None
        out["progress"] = progress_of(raw.get("progress"))
        return out

    def runs(
        self, *, status: str | None = None, limit: int = 50, before: str | None = None
    ) -> list[dict[str, Any]]:
        args: dict[str, Any] = {
            "TableName": self.name,
            "IndexName": RUNS_INDEX,
            "ScanIndexForward": False,
            "KeyConditionExpression": "run_list = :all"
            + (" AND run_id < :before" if before else ""),
            "ExpressionAttributeValues": item_of({":all": RUN_LIST, ":before": before}),
        }
        if status:
            args["FilterExpression"] = "#status = :s OR #state = :s"
            args["ExpressionAttributeNames"] = {"#status": "status", "#state": "state"}
            args["ExpressionAttributeValues"][":s"] = {"S": status}
        out: list[dict[str, Any]] = []
        while len(out) < limit:
            args["Limit"] = max(limit - len(out), 25) if status else limit - len(out)
            reply = self._call("query", **args)
            out.extend(self._record(i) for i in reply.get("Items", []))
            if not reply.get("LastEvaluatedKey"):
                break
            args["ExclusiveStartKey"] = reply["LastEvaluatedKey"]
        return out[:limit]

    def _reopen_run(self, run_id: str, attempt: int, progress: str | None) -> None:
        """The run going on from its checkpoint is "running" again: what it recorded when it
        stopped (paused, failed) is no longer so. Its started_at stays. A failed attempt's
        notification not yet sent goes too: the run's outcome, under the same run id, is told
        when it finishes. (After the claim's own write, as for a new run: a claimant that
        stops between the two leaves a record that the next claim of the run reopens.)"""
        names = {"#state": "state", "#status": "status", "#receipt": "receipt"}
        removed = (
            "#status, finished_at, reason, outbox, #receipt, moved_to, rejected_rows_report, "
            "rows_read, rows_loaded, rows_rejected, rows_duplicate"
        )
        values: dict[str, Any] = {":running": "running", ":attempt": attempt}
        update = "SET #state = :running, attempt = :attempt"
        if progress is None:
            removed += ", progress"
        else:
            update += ", progress = :progress"
            values[":progress"] = progress
        self._call(
            "update_item",
            TableName=self.name,
            Key=item_of({"pk": f"run#{run_id}"}),
            UpdateExpression=f"{update} REMOVE {removed}",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=item_of(values),
        )

    def outbox(self) -> list[dict[str, Any]]:
        """Recent finished runs whose notification was not marked sent within its owner's
        lease, oldest first."""
        args: dict[str, Any] = {
            "TableName": self.name,
            "IndexName": RUNS_INDEX,
            "ScanIndexForward": False,
            "KeyConditionExpression": "run_list = :all",
            "FilterExpression": "outbox < :now",
            "ExpressionAttributeValues": item_of({":all": RUN_LIST, ":now": int(time.time())}),
            "Limit": RECENT_RUNS,
        }
        reply = self._call("query", **args)
        return [self._record(i) for i in reversed(reply.get("Items", []))]

    def sent(self, run_id: str) -> None:
        with contextlib.suppress(ConditionFailed):  # no such run: nothing to take out
            self._call(
                "update_item",
                TableName=self.name,
                Key=item_of({"pk": f"run#{run_id}"}),
                UpdateExpression="REMOVE outbox",
                ConditionExpression="attribute_exists(pk)",
            )

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        item = self._get(f"run#{run_id}", raw=True)
        return self._record(item) if item else None

    def _get(self, pk: str, raw: bool = False) -> dict[str, Any] | None:
        reply = self._call(
            "get_item", TableName=self.name, Key=item_of({"pk": pk}), ConsistentRead=True
        )
        item = reply.get("Item")
        if not item:
            return None
        return item if raw else decode(item)

    def _call(self, op: str, **kwargs: Any) -> dict[str, Any]:
        from ..aws.clients import error_code, is_transient

        try:
            return getattr(self.client, op)(**kwargs)  # type: ignore[no-any-return]
        except Exception as e:
            code = error_code(e)
            if code == "ConditionalCheckFailedException" or (
                code == "TransactionCanceledException" and "ConditionalCheckFailed" in str(e)
            ):
                item = getattr(e, "response", {}).get("Item")
                raise ConditionFailed(decode(item) if item else None) from e
            if code == "ResourceNotFoundException":
                raise ConfigError(
                    f"the ledger table {self.name!r} does not exist: deploy the "
                    "stack (batchdrop deploy) or create it (see the README)",
                    key="ledger",
                ) from e
            if code == "ValidationException" and "index" in str(e).lower():
                raise ConfigError(
                    f"the ledger table {self.name!r} has no {RUNS_INDEX!r} index "
                    "(see the README for its definition)",
                    key="ledger",
                ) from e
            if code == "ValidationException":  # the request itself is wrong: no retry helps
                raise ValueError(f"the ledger {self.name} refused {op}: {e}") from e
            if code in ("AccessDeniedException", "UnrecognizedClientException"):
                raise ConfigError(
                    f"DynamoDB refused {op} on the ledger {self.name!r} ({code})", key="ledger"
                ) from e
            kind = "could not" if is_transient(e) else "failed to"
            raise TransientError(f"the ledger {self.name} {kind} {op} ({code}): {e}") from e
