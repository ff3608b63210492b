"""The run ledger in DynamoDB (``dynamodb://TABLE-ledger``): one claim per file version.

Table: partition key ``pk`` (string), on-demand, and one global secondary index ``runs`` (partition
``run_list``, sort ``run_id``, all attributes projected) so ``runs()`` is a Query, never a Scan.
Two kinds of item share it:

- ``file#<url>?version=<version>``: the claim on one file version: state, run_id, an owner token
  and, while a run holds it (running, committed), a lease ``expires_at`` (epoch seconds).
  Conditional writes make it exclusive: of two invocations for one S3 object, one gets "new".
  A lease not renewed within ``aws.claim_ttl_seconds`` belonged to a crashed run; the next claim
  takes it over (a crashed "running" run is retried, a crashed "committed" one resumed).
- ``run#<run_id>``: the run record (the shape every ledger returns), carrying ``run_list = "runs"``
  so it appears in the index (run ids sort by time, so the index is newest first when reversed).
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, TransientError
from ..ports import RUN_FIELDS, Claim, FileRef, RunState, iso_time, new_run_id
from ..report import LOADED, LOADED_WITH_REJECTS

if TYPE_CHECKING:
    from ..config import Config
    from ..report import Receipt

RUNS_INDEX = "runs"
RUN_LIST = "runs"
CLAIM_ATTEMPTS = 5
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


def _loaded(file_item: dict[str, Any]) -> bool:
    """Whether the run recorded on a file version's item loaded it (rather than rejecting it)."""
    receipt = json.loads(file_item["receipt"]) if file_item.get("receipt") else {}
    return receipt.get("status") in (LOADED, LOADED_WITH_REJECTS)


def _now_iso() -> str:
    return iso_time()


def _enc(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int | float | Decimal):
        return {"N": str(value)}
    return {"S": str(value)}


def _item(values: dict[str, Any]) -> dict[str, Any]:
    return {k: a for k, v in values.items() if (a := _enc(v)) is not None}


def _dec(item: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, attr in item.items():
        kind, v = next(iter(attr.items()))
        if kind == "N":
            d = Decimal(v)
            out[name] = int(d) if d == d.to_integral_value() else d
        else:
            out[name] = v
    return out


class DynamoLedger:
    def __init__(self, config: Config, *, client: Any = None, table_name: str | None = None):
        self.config = config
        url = config.ledger_url
        if not url.startswith("dynamodb://"):
            raise ConfigError(f"{url!r} is not a DynamoDB ledger", key="ledger")
        self.name = table_name or url.removeprefix("dynamodb://").strip("/")
        self.ttl = config.aws.claim_ttl_seconds
        self._client = client

    @classmethod
    def from_config(cls, config: Config) -> DynamoLedger:
        return cls(config)

    @property
    def client(self) -> Any:
        if self._client is None:
            from ..aws.clients import client

            self._client = client("dynamodb", self.config)
        return self._client

    @staticmethod
    def file_pk(ref: FileRef) -> str:
        return f"file#{ref.url}?version={ref.version}"

    # --- claims -------------------------------------------------------------------------------

    def claim(self, ref: FileRef, *, force: bool = False) -> Claim:
        pk = self.file_pk(ref)
        for _ in range(CLAIM_ATTEMPTS):
            now = time.time()
            run_id, token = new_run_id(), secrets.token_hex(8)
            # Read, then put on condition that nothing changed since: the attempt number comes
            # from the item it replaces, and of two racing claims one finds the item changed.
            old = self._get(pk)
            names: dict[str, str] = {}
            values: dict[str, Any] = {}
            if old is None:
                condition, attempt = "attribute_not_exists(pk)", 1
            else:
                state = old.get("state")
                lapsed = state == "running" and float(old.get("expires_at") or 0) < now
                # a rejected file wrote nothing: dropped again (its config fixed), it is loaded
                again = state == "done" and (force or not _loaded(old))
                if not (state == "failed" or lapsed or again):
                    claim = self._held(ref, old, now)
                    if claim is not None:
                        return claim
                    continue
                # a set-aside file's last run recorded attempt 0: it starts again at 1
                attempt = 1 if state == "done" else int(old.get("attempt", 1)) + 1
                condition = "run_id = :old_run AND #state = :old_state"
                names["#state"] = "state"
                values.update({":old_run": old.get("run_id", ""), ":old_state": state})
            item = {
                "pk": pk,
                "kind": "file",
                "state": "running",
                "run_id": run_id,
                "token": token,
                "expires_at": int(now) + self.ttl,
                "file": ref.name,
                "source": ref.url,
                "version": ref.version,
                "attempt": attempt,
                "updated_at": _now_iso(),
            }
            try:
                self._call(
                    "put_item",
                    TableName=self.name,
                    Item=_item(item),
                    ConditionExpression=condition,
                    **({"ExpressionAttributeNames": names} if names else {}),
                    **({"ExpressionAttributeValues": _item(values)} if values else {}),
                )
            except _ConditionFailed:
                continue  # changed under us: look again
            if old is not None and old.get("state") == "running" and old.get("run_id"):
                self._mark_abandoned(old["run_id"])
            self._put_run(run_id, ref, "running", None, attempt)
            return Claim(
                "new", run_id, ref, extra={"token": token, "renewed_at": now}, attempt=attempt
            )
        raise TransientError(f"could not claim {ref.url}: the ledger kept changing under us")

    def _held(self, ref: FileRef, old: dict[str, Any], now: float) -> Claim | None:
        state, run_id = old.get("state"), str(old.get("run_id", ""))
        receipt = json.loads(old["receipt"]) if old.get("receipt") else None
        live = float(old.get("expires_at", 0)) >= now
        if state == "done":
            return Claim("done", run_id, ref, receipt=receipt)
        if state in ("running", "committed") and live:
            return Claim("busy", run_id, ref)
        if state != "committed":
            return None  # failed, or a lapsed running claim: the next put takes it
        # Rows committed by a run that stopped before moving the file: take its lease, finish it.
        token = secrets.token_hex(8)
        try:
            self._call(
                "update_item",
                TableName=self.name,
                Key=_item({"pk": self.file_pk(ref)}),
                UpdateExpression="SET #token = :new, expires_at = :exp",
                ConditionExpression="#state = :committed AND #token = :old",
                ExpressionAttributeNames={"#state": "state", "#token": "token"},
                ExpressionAttributeValues=_item(
                    {
                        ":new": token,
                        ":exp": int(now) + self.ttl,
                        ":committed": "committed",
                        ":old": old.get("token", ""),
                    }
                ),
            )
        except _ConditionFailed:
            return None
        return Claim(
            "resume", run_id, ref, receipt=receipt, extra={"token": token, "renewed_at": now}
        )

    def renew(self, claim: Claim) -> None:
        """Extend the claim's lease (called as a long load goes on); fails if it was lost."""
        now = time.time()
        if now - float(claim.extra.get("renewed_at", 0)) < self.ttl / 3:
            return
        try:
            self._call(
                "update_item",
                TableName=self.name,
                Key=_item({"pk": self.file_pk(claim.ref)}),
                UpdateExpression="SET expires_at = :exp",
                ConditionExpression="#token = :token",
                ExpressionAttributeNames={"#token": "token"},
                ExpressionAttributeValues=_item(
                    {":exp": int(now) + self.ttl, ":token": claim.extra.get("token", "")}
                ),
            )
        except _ConditionFailed:
            raise TransientError(
                f"the claim on {claim.ref.url} was taken over by another run "
                "(this one held it past aws.claim_ttl_seconds)"
            ) from None
        claim.extra["renewed_at"] = now

    def record(self, claim: Claim, state: RunState, receipt: Receipt) -> None:
        now = time.time()
        data = receipt.to_json()
        names = {"#state": "state", "#token": "token", "#receipt": "receipt"}
        values = {
            ":state": state,
            ":rid": claim.run_id,
            ":receipt": data,
            ":at": _now_iso(),
            ":token": claim.extra.get("token", ""),
        }
        ended = state == "done" or receipt.set_aside  # the next claim is attempt 1 again
        values[":attempt"] = 0 if ended else claim.attempt
        update = (
            "SET #state = :state, run_id = :rid, #receipt = :receipt, updated_at = :at, "
            "attempt = :attempt"
        )
        if state in ("running", "committed"):
            update += ", expires_at = :exp"
            values[":exp"] = int(now) + self.ttl
        else:
            update += " REMOVE expires_at"
        run = self._run_item(claim.run_id, claim.ref, state, receipt, claim.attempt)
        if state in ("done", "failed"):  # its notification is in the outbox until ``sent``
            run["outbox"] = {"N": str(int(now) + OUTBOX_LEASE_S)}
        try:
            self._call(
                "transact_write_items",
                TransactItems=[
                    {
                        "Update": {
                            "TableName": self.name,
                            "Key": _item({"pk": self.file_pk(claim.ref)}),
                            "UpdateExpression": update,
                            "ConditionExpression": "#token = :token",
                            "ExpressionAttributeNames": names,
                            "ExpressionAttributeValues": _item(values),
                        }
                    },
                    {"Put": {"TableName": self.name, "Item": run}},
                ],
            )
        except _ConditionFailed:
            raise TransientError(
                f"the claim on {claim.ref.url} was taken over by another run "
                "(this one held it past aws.claim_ttl_seconds)"
            ) from None
        claim.extra["renewed_at"] = now

    # --- run records --------------------------------------------------------------------------

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
            "started_at": _now_iso(),
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
                values["finished_at"] = r.get("finished_at") or _now_iso()
        return _item(values)

    def _put_run(
        self, run_id: str, ref: FileRef, state: str, receipt: Receipt | None, attempt: int
    ) -> None:
        item = self._run_item(run_id, ref, state, receipt, attempt)
        self._call("put_item", TableName=self.name, Item=item)

    def _mark_abandoned(self, run_id: str) -> None:
        with contextlib.suppress(_ConditionFailed):
            self._call(
                "update_item",
                TableName=self.name,
                Key=_item({"pk": f"run#{run_id}"}),
                UpdateExpression="SET #state = :failed, reason = :why, finished_at = :at",
                ConditionExpression="#state = :running",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues=_item(
                    {
                        ":failed": "failed",
                        ":running": "running",
                        ":at": _now_iso(),
                        ":why": "the run stopped without finishing; its claim expired and "
                        "the file was retried",
                    }
                ),
            )

    @staticmethod
    def _record(item: dict[str, Any]) -> dict[str, Any]:
        raw = _dec(item)
        out = {k: raw.get(k) for k in RECORD_FIELDS}
        for k in ("rows_read", "rows_loaded", "rows_rejected", "rows_duplicate", "size"):
            out[k] = int(out[k] or 0)
        out["receipt"] = json.loads(raw["receipt"]) if raw.get("receipt") else None
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
            "ExpressionAttributeValues": _item({":all": RUN_LIST, ":before": before}),
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

    def unfinished(self) -> list[dict[str, Any]]:
        """Recent runs whose rows were committed and whose claim lapsed without the file being
        recorded as moved: their run died between the move and the record. Each carries
        ``claim_extra``, what ``record`` needs to finish it."""
        out = []
        now = time.time()
        for rec in self.runs(status="committed", limit=RECENT_RUNS):
            if rec["state"] != "committed":
                continue
            ref = FileRef(rec["file"], rec["size"], rec["version"], 0.0, rec["source"] or "")
            claim = self._get(self.file_pk(ref))
            if (
                claim is None
                or claim.get("state") != "committed"
                or claim.get("run_id") != rec["run_id"]
                or float(claim.get("expires_at") or 0) > now
            ):
                continue  # finished since, taken over, or its owner's lease still holds
            rec["claim_extra"] = {"token": claim.get("token", "")}
            rec["attempt"] = int(claim.get("attempt") or 1)
            out.append(rec)
        return out

    def outbox(self) -> list[dict[str, Any]]:
        """Recent finished runs whose notification was not marked sent within its owner's
        lease, oldest first."""
        args: dict[str, Any] = {
            "TableName": self.name,
            "IndexName": RUNS_INDEX,
            "ScanIndexForward": False,
            "KeyConditionExpression": "run_list = :all",
            "FilterExpression": "outbox < :now",
            "ExpressionAttributeValues": _item({":all": RUN_LIST, ":now": int(time.time())}),
            "Limit": RECENT_RUNS,
        }
        reply = self._call("query", **args)
        return [self._record(i) for i in reversed(reply.get("Items", []))]

    def sent(self, run_id: str) -> None:
        with contextlib.suppress(_ConditionFailed):  # no such run: nothing to take out
            self._call(
                "update_item",
                TableName=self.name,
                Key=_item({"pk": f"run#{run_id}"}),
                UpdateExpression="REMOVE outbox",
                ConditionExpression="attribute_exists(pk)",
            )

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        item = self._get(f"run#{run_id}", raw=True)
        return self._record(item) if item else None

    def _get(self, pk: str, raw: bool = False) -> dict[str, Any] | None:
        reply = self._call(
            "get_item", TableName=self.name, Key=_item({"pk": pk}), ConsistentRead=True
        )
        item = reply.get("Item")
        if not item:
            return None
        return item if raw else _dec(item)

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
                raise _ConditionFailed(_dec(item) if item else None) from e
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


class _ConditionFailed(Exception):
    def __init__(self, item: dict[str, Any] | None):
        super().__init__("condition failed")
        self.item = item
