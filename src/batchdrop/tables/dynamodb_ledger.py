"""The run ledger in DynamoDB (``dynamodb://TABLE-ledger``): one claim per file version.

Table: partition key ``pk`` (string), on-demand, and one global secondary index ``runs`` (partition
``run_list``, sort ``run_id``, all attributes projected) so ``runs()`` is a Query, never a Scan.
Two kinds of item share it:

- ``file#<url>?version=<version>``: the claim on one file version: state, run_id, an owner token
  and, while a run holds it (running, committed), a lease ``expires_at`` (epoch seconds).
  Conditional writes make it exclusive: of two invocations for one S3 object, one gets "new".
  A lease not renewed within ``aws.claim_ttl_seconds`` belonged to a crashed run; the next claim
  takes it over (a crashed "running" run is retried, a crashed "committed" one resumed). A run's
  last checkpoint is kept there too (``progress``, JSON): a run that paused, or failed or crashed
  after a checkpoint, goes on from it under the same run id. The shards of a sharded run that
  finished each phase are number sets there too (``shards_<phase>``): one UpdateItem adds an
  index, renews the lease and returns the count, exact however many shards finish at once, with
  no transaction to conflict with the others. A run that goes on keeps its sets; a new run's
  put replaces the item, so it starts with none.
- ``run#<run_id>``: the run record (the shape every ledger returns): dynamodb_runs.py.
- ``feed#<feed>``: which load's state (feed_state.py) tells what a feed's table holds, for the
  write modes that compare with the last load. The commit that records a run names its state
  in the same transaction, on condition that it still replaces the state its plan compared
  with: of two files of one feed loaded at once, the second to commit fails and is retried.
"""

from __future__ import annotations

import json
import random
import re
import secrets
import time
from typing import TYPE_CHECKING, Any

from ..errors import TransientError
from ..ports import Claim, FileRef, RunState, new_run_id
from ..report import LOADED, LOADED_WITH_REJECTS
from .dynamodb_runs import (
    OUTBOX_LEASE_S,
    RECENT_RUNS,
    RUNS_INDEX,
    ConditionFailed,
    LedgerTable,
    item_of,
    ledger_table_spec,
    now_iso,
    progress_of,
)

if TYPE_CHECKING:
    from ..config import Config
    from ..report import Receipt

__all__ = ["RUNS_INDEX", "DynamoLedger", "ledger_table_spec"]

CLAIM_ATTEMPTS = 5
#: the prefix of the number sets of shards done (``shards_check``, ``shards_check+``)
SHARDS_PREFIX = "shards_"
#: what a phase's name may be
PHASE = re.compile(r"[a-z+]{1,40}")
#: tries of a shard's UpdateItem that met a transaction in flight on the claim (a checkpoint)
SHARD_ATTEMPTS = 5


def _loaded(file_item: dict[str, Any]) -> bool:
    """Whether the run recorded on a file version's item loaded it (rather than rejecting it)."""
    receipt = json.loads(file_item["receipt"]) if file_item.get("receipt") else {}
    return receipt.get("status") in (LOADED, LOADED_WITH_REJECTS)


class DynamoLedger(LedgerTable):
    @classmethod
    def from_config(cls, config: Config) -> DynamoLedger:
        return cls(config)

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
            progress: str | None = None
            going_on = False
            if old is None:
                condition, attempt = "attribute_not_exists(pk)", 1
            else:
                state = old.get("state")
                lapsed = state == "running" and float(old.get("expires_at") or 0) < now
                # a rejected file wrote nothing: dropped again (its config fixed), it is loaded
                again = state == "done" and (force or not _loaded(old))
                if not (state in ("failed", "paused") or lapsed or again):
                    claim = self._held(ref, old, now)
                    if claim is not None:
                        return claim
                    continue
                if state == "paused" or (state != "done" and old.get("progress")):
                    # the run goes on from its last checkpoint, as the same run
                    run_id, progress, going_on = str(old["run_id"]), old.get("progress"), True
                # a set-aside file's last run recorded attempt 0: it starts again at 1; a
                # paused run did not fail: the same attempt goes on
                failed = state != "paused"
                attempt = 1 if state == "done" else int(old.get("attempt", 1)) + failed
                # the token too: a run going on keeps its run id, so only the token tells
                # the item it read from the one a racing claim just wrote
                condition = "run_id = :old_run AND #state = :old_state AND "
                names.update({"#state": "state", "#token": "token"})
                values.update({":old_run": old.get("run_id", ""), ":old_state": state})
                if "token" in old:
                    condition += "#token = :old_token"
                    values[":old_token"] = old["token"]
                else:
                    condition += "attribute_not_exists(#token)"
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
                "updated_at": now_iso(),
                "progress": progress,
            }
            attrs = item_of(item)
            if going_on and old is not None:  # the run's shards done so far are its own still
                attrs.update({k: {"NS": v} for k, v in old.items() if k.startswith(SHARDS_PREFIX)})
            put = {
                "TableName": self.name,
                "Item": attrs,
                "ConditionExpression": condition,
                **({"ExpressionAttributeNames": names} if names else {}),
                **({"ExpressionAttributeValues": item_of(values)} if values else {}),
            }
            try:
                self._call("put_item", **put)
            except ConditionFailed:
                continue  # changed under us: look again
            if going_on:
                self._reopen_run(run_id, attempt, progress)
            else:
                if old is not None and old.get("state") == "running" and old.get("run_id"):
                    self._mark_abandoned(old["run_id"])
                self._put_run(run_id, ref, "running", None, attempt)
            extra: dict[str, Any] = {"token": token, "renewed_at": now}
            if progress is not None:
                extra["progress"] = progress
            return Claim(
                "new", run_id, ref, extra=extra, attempt=attempt, progress=progress_of(progress)
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
                Key=item_of({"pk": self.file_pk(ref)}),
                UpdateExpression="SET #token = :new, expires_at = :exp",
                ConditionExpression="#state = :committed AND #token = :old",
                ExpressionAttributeNames={"#state": "state", "#token": "token"},
                ExpressionAttributeValues=item_of(
                    {
                        ":new": token,
                        ":exp": int(now) + self.ttl,
                        ":committed": "committed",
                        ":old": old.get("token", ""),
                    }
                ),
            )
        except ConditionFailed:
            return None
        extra: dict[str, Any] = {"token": token, "renewed_at": now}
        if old.get("progress"):
            extra["progress"] = old["progress"]
        return Claim(
            "resume",
            run_id,
            ref,
            receipt=receipt,
            extra=extra,
            progress=progress_of(old.get("progress")),
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
                Key=item_of({"pk": self.file_pk(claim.ref)}),
                UpdateExpression="SET expires_at = :exp",
                ConditionExpression="#token = :token",
                ExpressionAttributeNames={"#token": "token"},
                ExpressionAttributeValues=item_of(
                    {":exp": int(now) + self.ttl, ":token": claim.extra.get("token", "")}
                ),
            )
        except ConditionFailed:
            raise _taken_over(claim) from None
        claim.extra["renewed_at"] = now

    def record(self, claim: Claim, state: RunState, receipt: Receipt) -> None:
        now = time.time()
        data = receipt.to_json()
        names = {"#state": "state", "#token": "token", "#receipt": "receipt"}
        values = {
            ":state": state,
            ":rid": claim.run_id,
            ":receipt": data,
            ":at": now_iso(),
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
        # a failed run keeps its checkpoint, for the next attempt to go on from; a run that
        # ended starts the next claim of this version at the top
        if ended:
            update += ", progress" if " REMOVE " in update else " REMOVE progress"
            claim.extra.pop("progress", None)
        run = self._run_item(claim.run_id, claim.ref, state, receipt, claim.attempt)
        feed = claim.extra.get("feed_state") if state == "committed" else None
        if claim.extra.get("progress"):
            run["progress"] = {"S": claim.extra["progress"]}
        if state in ("done", "failed"):  # its notification is in the outbox until ``sent``
            run["outbox"] = {"N": str(int(now) + OUTBOX_LEASE_S)}
        try:
            self._call(
                "transact_write_items",
                TransactItems=[
                    {
                        "Update": {
                            "TableName": self.name,
                            "Key": item_of({"pk": self.file_pk(claim.ref)}),
                            "UpdateExpression": update,
                            "ConditionExpression": "#token = :token",
                            "ExpressionAttributeNames": names,
                            "ExpressionAttributeValues": item_of(values),
                        }
                    },
                    {"Put": {"TableName": self.name, "Item": run}},
                    *([self._feed_update(*feed)] if feed else []),
                ],
            )
        except ConditionFailed:
            now_named = self.feed_state(feed[0]) if feed else None
            if feed and (now_named[0] if now_named else None) not in (feed[1], feed[2]):
                raise TransientError(
                    f"another file of feed {feed[0]} was loaded while {claim.ref.url} was: "
                    "it is loaded again, compared with that one"
                ) from None
            raise _taken_over(claim) from None
        claim.extra["renewed_at"] = now

    def feed_state(self, slug: str) -> tuple[str, str] | None:
        """(run id, bucketing) of the load whose state tells what feed ``slug``'s table holds;
        None before its first load."""
        item = self._get(f"feed#{slug}")
        if not item or not item.get("current"):
            return None
        return str(item["current"]), str(item.get("by") or "key")

    def _feed_update(self, slug: str, base: str | None, run_id: str, by: str) -> dict[str, Any]:
        values = {":new": run_id, ":by": by, ":at": now_iso()}
        if base is None:
            condition = "attribute_not_exists(#cur) OR #cur = :new"
        else:
            condition = "#cur = :base OR #cur = :new"
            values[":base"] = base
        return {
            "Update": {
                "TableName": self.name,
                "Key": item_of({"pk": f"feed#{slug}"}),
                "UpdateExpression": "SET #cur = :new, #by = :by, updated_at = :at",
                "ConditionExpression": condition,
                "ExpressionAttributeNames": {"#cur": "current", "#by": "by"},
                "ExpressionAttributeValues": item_of(values),
            }
        }

    def checkpoint(self, claim: Claim, progress: dict[str, Any]) -> None:
        """One transaction: the progress on the claim (with a renewed lease) and on the run
        record, so ``runs()`` shows how far a run got."""
        now = time.time()
        data = json.dumps(progress, ensure_ascii=False, separators=(",", ":"))
        key = {"pk": self.file_pk(claim.ref)}
        values = {
            ":p": data,
            ":one": 1,
            ":exp": int(now) + self.ttl,
            ":at": now_iso(),
            ":token": claim.extra.get("token", ""),
        }
        try:
            self._call(
                "transact_write_items",
                TransactItems=[
                    {
                        "Update": {
                            "TableName": self.name,
                            "Key": item_of(key),
                            "UpdateExpression": "SET progress = :p, expires_at = :exp, "
                            "attempt = :one, updated_at = :at",
                            "ConditionExpression": "#token = :token",
                            "ExpressionAttributeNames": {"#token": "token"},
                            "ExpressionAttributeValues": item_of(values),
                        }
                    },
                    {
                        "Update": {
                            "TableName": self.name,
                            "Key": item_of({"pk": f"run#{claim.run_id}"}),
                            "UpdateExpression": "SET progress = :p, attempt = :one",
                            "ExpressionAttributeValues": item_of({":p": data, ":one": 1}),
                        }
                    },
                ],
            )
        except ConditionFailed:
            raise _taken_over(claim) from None
        claim.extra.update(progress=data, renewed_at=now)
        claim.attempt = 1

    def shard_done(self, claim: Claim, phase: str, index: int) -> int:
        """One UpdateItem on the claim, conditional on its token: DynamoDB applies the updates
        of one item one at a time, so each caller's set holds its own index and every one
        added before it. A transaction in flight on the item (a checkpoint) refuses the update
        for a moment: adding an index is idempotent, so it is simply tried again."""
        if not PHASE.fullmatch(phase):
            raise ValueError(f"{phase!r} is not a phase name (lowercase letters and '+')")
        from ..aws.clients import error_code

        attr = SHARDS_PREFIX + phase
        for attempt in range(1, SHARD_ATTEMPTS + 1):
            now = time.time()
            values = {
                ":exp": int(now) + self.ttl,
                ":token": claim.extra.get("token", ""),
                ":running": "running",
            }
            try:
                reply = self._call(
                    "update_item",
                    TableName=self.name,
                    Key=item_of({"pk": self.file_pk(claim.ref)}),
                    UpdateExpression="ADD #done :index SET expires_at = :exp",
                    ConditionExpression="#token = :token AND #state = :running",
                    ExpressionAttributeNames={"#done": attr, "#token": "token", "#state": "state"},
                    ExpressionAttributeValues={
                        **item_of(values),
                        ":index": {"NS": [str(int(index))]},
                    },
                    # not UPDATED_NEW: an index added again changes nothing, and an attribute
                    # left as it was may be missing from that answer
                    ReturnValues="ALL_NEW",
                )
            except ConditionFailed:
                raise _taken_over(claim) from None
            except TransientError as e:
                cause = e.__cause__
                conflict = cause is not None and error_code(cause) == "TransactionConflictException"
                if not conflict or attempt == SHARD_ATTEMPTS:
                    raise
                time.sleep(random.uniform(0.02, 0.1) * attempt)
                continue
            claim.extra["renewed_at"] = now
            return len(reply["Attributes"][attr]["NS"])
        raise AssertionError("unreachable")

    def shards_done(self, run_id: str, phase: str) -> int:
        """The run record says which file version the run is of; that version's item holds
        the sets while the run is its current one."""
        run = self._get(f"run#{run_id}")
        if run is None:
            return 0
        ref = FileRef(run["file"], 0, run["version"], 0.0, run.get("source") or "")
        reply = self._call(
            "get_item",
            TableName=self.name,
            Key=item_of({"pk": self.file_pk(ref)}),
            ConsistentRead=True,
            ProjectionExpression="run_id, #done",
            ExpressionAttributeNames={"#done": SHARDS_PREFIX + phase},
        )
        item = reply.get("Item") or {}
        if item.get("run_id", {}).get("S") != run_id:
            return 0
        return len(item.get(SHARDS_PREFIX + phase, {}).get("NS", []))

    def pause(self, claim: Claim, receipt: Receipt) -> None:
        """The claim's lease goes at once (the next claim is not "busy"); its progress and
        token stay, for that claim to go on from and to be conditional on."""
        run = self._run_item(claim.run_id, claim.ref, "paused", receipt, claim.attempt)
        if claim.extra.get("progress"):
            run["progress"] = {"S": claim.extra["progress"]}
        values = {
            ":paused": "paused",
            ":receipt": receipt.to_json(),
            ":at": now_iso(),
            ":token": claim.extra.get("token", ""),
        }
        try:
            self._call(
                "transact_write_items",
                TransactItems=[
                    {
                        "Update": {
                            "TableName": self.name,
                            "Key": item_of({"pk": self.file_pk(claim.ref)}),
                            "UpdateExpression": "SET #state = :paused, #receipt = :receipt, "
                            "updated_at = :at REMOVE expires_at",
                            "ConditionExpression": "#token = :token",
                            "ExpressionAttributeNames": {
                                "#state": "state",
                                "#receipt": "receipt",
                                "#token": "token",
                            },
                            "ExpressionAttributeValues": item_of(values),
                        }
                    },
                    {"Put": {"TableName": self.name, "Item": run}},
                ],
            )
        except ConditionFailed:
            raise _taken_over(claim) from None

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
            if claim.get("progress"):
                rec["claim_extra"]["progress"] = claim["progress"]
            rec["progress"] = progress_of(claim.get("progress"))
            rec["attempt"] = int(claim.get("attempt") or 1)
            out.append(rec)
        return out


def _taken_over(claim: Claim) -> TransientError:
    return TransientError(
        f"the claim on {claim.ref.url} was taken over by another run "
        "(this one held it past aws.claim_ttl_seconds)"
    )
