"""The DynamoDB ledger: exclusive claims, expiry of crashed runs, resume, run records."""

from __future__ import annotations

import threading

import pytest

from batchdrop.errors import TransientError
from batchdrop.ports import FileRef
from batchdrop.report import Receipt
from batchdrop.tables.dynamodb_ledger import DynamoLedger

from .conftest import Stack

pytestmark = pytest.mark.aws
RECORD_KEYS = {
    "run_id",
    "file",
    "source",
    "version",
    "size",
    "state",
    "status",
    "started_at",
    "finished_at",
    "rows_read",
    "rows_loaded",
    "rows_rejected",
    "rows_duplicate",
    "reason",
    "moved_to",
    "rejected_rows_report",
    "receipt",
    "progress",
}


def ref(name: str = "in dir/a+b.csv", version: str = "etag1") -> FileRef:
    return FileRef(
        name=name, size=42, version=version, modified=0.0, url=f"s3://bucket/incoming/{name}"
    )


def receipt(claim_run: str, r: FileRef, status: str = "loaded") -> Receipt:
    return Receipt(
        file=r.name,
        source=r.url,
        version=r.version,
        size=r.size,
        run_id=claim_run,
        status=status,
        rows_read=3,
        rows_loaded=3,
        started_at="2026-11-27T09:00:00Z",
        finished_at="2026-11-27T09:00:01Z",
        moved_to="s3://archive/x.csv",
    )


def test_new_then_done_then_force(stack: Stack) -> None:
    ledger = DynamoLedger(stack.config())
    r = ref()
    claim = ledger.claim(r)
    assert claim.outcome == "new"
    assert ledger.get_run(claim.run_id)["state"] == "running"  # type: ignore[index]
    ledger.record(claim, "committed", receipt(claim.run_id, r))
    ledger.record(claim, "done", receipt(claim.run_id, r))
    again = ledger.claim(r)
    assert again.outcome == "done" and again.run_id == claim.run_id
    assert again.receipt is not None and again.receipt["rows_loaded"] == 3
    assert ledger.claim(ref(version="etag2")).outcome == "new"  # another version: a new file
    forced = ledger.claim(r, force=True)
    assert forced.outcome == "new" and forced.run_id != claim.run_id


def test_two_threads_racing_get_exactly_one_new(stack: Stack) -> None:
    ledger = DynamoLedger(stack.config())
    r = ref()
    barrier = threading.Barrier(6)
    outcomes: list[str] = []

    def race() -> None:
        barrier.wait()
        outcomes.append(ledger.claim(r).outcome)

    threads = [threading.Thread(target=race) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["busy"] * 5 + ["new"]


def test_crashed_running_claim_expires_and_is_retried(stack: Stack) -> None:
    crashed = DynamoLedger(stack.config())
    crashed.ttl = -1  # its lease is already over, as if claim_ttl_seconds had passed
    r = ref()
    first = crashed.claim(r)
    live = DynamoLedger(stack.config())
    second = live.claim(r)
    assert second.outcome == "new" and second.run_id != first.run_id
    old = live.get_run(first.run_id)
    assert old is not None and old["state"] == "failed" and "claim expired" in old["reason"]
    with pytest.raises(TransientError, match="taken over"):
        crashed.record(first, "committed", receipt(first.run_id, r))
    assert live.claim(r).outcome == "busy"


def test_failed_run_is_claimed_again(stack: Stack) -> None:
    ledger = DynamoLedger(stack.config())
    r = ref()
    claim = ledger.claim(r)
    ledger.record(claim, "failed", receipt(claim.run_id, r, status="failed"))
    assert ledger.claim(r).outcome == "new"


def test_committed_then_crash_resumes_once(stack: Stack) -> None:
    crashed = DynamoLedger(stack.config())
    r = ref()
    claim = crashed.claim(r)
    crashed.ttl = -1
    crashed.record(claim, "committed", receipt(claim.run_id, r))
    a, b = DynamoLedger(stack.config()), DynamoLedger(stack.config())
    resumed = a.claim(r)
    assert resumed.outcome == "resume" and resumed.run_id == claim.run_id
    assert resumed.receipt is not None and resumed.receipt["rows_loaded"] == 3
    assert b.claim(r).outcome == "busy"  # the resumer holds a fresh lease
    a.record(resumed, "done", receipt(resumed.run_id, r))
    assert b.claim(r).outcome == "done"


def test_runs_newest_first_filtered_and_paged(stack: Stack) -> None:
    ledger = DynamoLedger(stack.config())
    ids = []
    for i, status in enumerate(["loaded", "rejected", "loaded", "failed"]):
        r = ref(name=f"f{i}.csv")
        claim = ledger.claim(r)
        claim.run_id = f"20261127T0900{i:02d}Z-abc{i}"  # run ids sort by time
        ledger.record(
            claim,
            "failed" if status == "failed" else "done",
            receipt(claim.run_id, r, status=status),
        )
        ids.append(claim.run_id)
    runs = [x for x in ledger.runs(limit=50) if x["run_id"] in ids]
    assert [x["run_id"] for x in runs] == ids[::-1]
    assert set(runs[0]) == RECORD_KEYS
    assert runs[0]["receipt"]["status"] == "failed" and runs[0]["rows_read"] == 3
    assert [x["run_id"] for x in ledger.runs(status="loaded")] == [ids[2], ids[0]]
    assert [x["run_id"] for x in ledger.runs(limit=2, before=ids[3])] == [ids[2], ids[1]]
    assert ledger.get_run("nope") is None
