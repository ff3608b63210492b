"""Runs that go on from a checkpoint, the same on every ledger: a paused run, or one that failed
or crashed after a checkpoint, is claimed again as the same run with its progress; a run that
ended starts the next claim at the top."""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from batchdrop.errors import TransientError
from batchdrop.ports import Claim, FileRef, Ledger
from batchdrop.report import PAUSED, Receipt

from .conftest import AwsEnv

PROGRESS = {"v": 1, "stage": "check", "offset": 4096, "line": 120, "stages": {"check": 2}}
LATER = {"v": 1, "stage": "write", "offset": 8192, "line": 240, "stages": {"check": 4}}


class Ledgers:
    """Ledger instances on one store, as separate processes would open them."""

    kind = ""

    def make(self, ttl: float = 900) -> Any:
        raise NotImplementedError

    def race(self, ref: FileRef) -> list[str]:
        """The outcomes of two claims of ``ref`` made at the same moment by two claimants that
        stay alive until both are done."""
        raise NotImplementedError

    def ref(self) -> FileRef:
        return FileRef("2026/big.csv", 10_000, "v1", 0.0, self.url + "2026/big.csv")

    url = ""


class SqliteLedgers(Ledgers):
    kind = "sqlite"

    def __init__(self, path: Path):
        self.path = str(path)
        self.url = str(path.parent / "inbound") + "/"
        self.opened: list[Any] = []

    def make(self, ttl: float = 900) -> Any:
        from batchdrop.tables.sqlite_db import connect
        from batchdrop.tables.sqlite_ledger import SqliteLedger

        ledger = SqliteLedger(connect(self.path), self.path, ttl)
        self.opened.append(ledger)
        return ledger

    def race(self, ref: FileRef) -> list[str]:
        # processes: a run of this very process never counts as live on SQLite
        ctx = multiprocessing.get_context("fork")
        start, stop, out = ctx.Barrier(2), ctx.Barrier(2), ctx.Queue()
        procs = [
            ctx.Process(target=_claim_in_child, args=(self.path, ref, start, stop, out))
            for _ in range(2)
        ]
        for p in procs:
            p.start()
        outcomes = [out.get(timeout=60) for _ in procs]
        for p in procs:
            p.join(timeout=60)
        return outcomes

    def close(self) -> None:
        for ledger in self.opened:
            ledger.conn.close()


def _claim_in_child(path: str, ref: FileRef, start: Any, stop: Any, out: Any) -> None:
    from batchdrop.tables.sqlite_ledger import SqliteLedger

    ledger = SqliteLedger.open(path)
    start.wait(timeout=30)
    try:
        out.put(ledger.claim(ref).outcome)
    except Exception as e:
        out.put(repr(e))
    stop.wait(timeout=30)  # alive until both claimed: a live holder is "busy", a dead one not


class DynamoLedgers(Ledgers):
    kind = "dynamodb"

    def __init__(self, env: AwsEnv):
        self.env = env
        self.config = env.config()
        self.url = f"s3://{env.buckets['inbound']}/drop/"

    def make(self, ttl: float = 900) -> Any:
        from batchdrop.tables.dynamodb_ledger import DynamoLedger

        ledger = DynamoLedger(self.config)
        ledger.ttl = int(ttl)
        return ledger

    def race(self, ref: FileRef) -> list[str]:
        ledgers = [self.make(), self.make()]
        barrier = threading.Barrier(2)
        outcomes: list[str] = []

        def claim(ledger: Any) -> None:
            barrier.wait()
            outcomes.append(ledger.claim(ref).outcome)

        threads = [threading.Thread(target=claim, args=(x,)) for x in ledgers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return outcomes

    def close(self) -> None:
        pass


@pytest.fixture(params=["sqlite", "dynamodb"])
def ledgers(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Ledgers]:
    made: SqliteLedgers | DynamoLedgers
    if request.param == "sqlite":
        made = SqliteLedgers(tmp_path / "db.sqlite")
    else:
        from batchdrop.aws import clients

        env = AwsEnv(request.getfixturevalue("aws_env"), request.getfixturevalue("unique"))
        made = DynamoLedgers(env)
    try:
        yield made
    finally:
        made.close()
        if request.param == "dynamodb":
            clients.clear_cache()


def receipt(claim: Claim, status: str, **fields: Any) -> Receipt:
    r = claim.ref
    return Receipt(
        r.name,
        r.url,
        r.version,
        r.size,
        run_id=claim.run_id,
        status=status,
        attempt=claim.attempt,
        started_at="2026-11-28T09:00:00.000000Z",
        finished_at="2026-11-28T09:00:05.000000Z",
        **fields,
    )


def runs_of(ledger: Ledger, ref: FileRef) -> list[dict[str, Any]]:
    return [x for x in ledger.runs(limit=50) if x["file"] == ref.name]


def test_a_paused_run_is_claimed_again_as_the_same_run_with_its_progress(
    ledgers: Ledgers,
) -> None:
    ledger = ledgers.make()
    ref = ledgers.ref()
    first = ledger.claim(ref)
    assert first.outcome == "new" and first.progress is None
    ledger.checkpoint(first, PROGRESS)
    ledger.pause(first, receipt(first, PAUSED, rows_read=120, reason="paused at line 121"))

    (run,) = runs_of(ledger, ref)
    assert run["run_id"] == first.run_id
    assert run["state"] == "paused" and run["status"] == "paused"
    assert run["progress"] == PROGRESS
    assert ledger.get_run(first.run_id)["progress"] == PROGRESS  # type: ignore[index]
    assert ledger.unfinished() == [] and ledger.outbox() == []  # nothing to finish or tell

    again = ledgers.make().claim(ref)  # the redelivered event, in another process
    assert again.outcome == "new" and again.run_id == first.run_id
    assert again.progress == PROGRESS
    assert again.attempt == 1  # a pause is not a failure
    (run,) = runs_of(ledger, ref)  # one run for the whole file, running again
    assert run["state"] == "running" and run["status"] is None and run["progress"] == PROGRESS


def test_a_paused_run_is_never_busy_and_one_of_two_racing_claims_takes_it(
    ledgers: Ledgers,
) -> None:
    ledger = ledgers.make()
    ref = ledgers.ref()
    first = ledger.claim(ref)
    ledger.checkpoint(first, PROGRESS)
    ledger.pause(first, receipt(first, PAUSED))
    assert sorted(ledgers.race(ref)) == ["busy", "new"]
    (run,) = runs_of(ledger, ref)
    assert run["run_id"] == first.run_id and run["state"] == "running"


def test_a_run_that_crashed_after_a_checkpoint_goes_on_as_one_more_attempt(
    ledgers: Ledgers,
) -> None:
    crashed = ledgers.make(ttl=-1)  # its lease is over at once, as if the process had died
    ref = ledgers.ref()
    first = crashed.claim(ref)
    crashed.checkpoint(first, PROGRESS)

    live = ledgers.make()
    again = live.claim(ref)
    assert again.outcome == "new" and again.run_id == first.run_id
    assert again.progress == PROGRESS and again.attempt == 2
    assert [x["run_id"] for x in runs_of(live, ref)] == [first.run_id]

    # the crashed run, were it still at work, finds its claim gone, whatever it does next
    with pytest.raises(TransientError, match="taken over by another run"):
        crashed.checkpoint(first, LATER)
    with pytest.raises(TransientError, match="taken over by another run"):
        crashed.pause(first, receipt(first, PAUSED))
    with pytest.raises(TransientError, match="taken over by another run"):
        crashed.record(first, "failed", receipt(first, "failed"))
    run = live.get_run(first.run_id)
    assert run is not None and run["state"] == "running" and run["progress"] == PROGRESS


def test_of_two_claims_racing_for_a_crashed_run_one_goes_on_with_it(ledgers: Ledgers) -> None:
    crashed = ledgers.make(ttl=-1)
    ref = ledgers.ref()
    first = crashed.claim(ref)
    crashed.checkpoint(first, PROGRESS)
    # the run id stays the same, so the claims must tell the item apart by more than it
    assert sorted(ledgers.race(ref)) == ["busy", "new"]
    (run,) = runs_of(crashed, ref)
    assert run["run_id"] == first.run_id and run["state"] == "running"


def test_a_failed_run_without_progress_is_retried_as_a_new_run(ledgers: Ledgers) -> None:
    ledger = ledgers.make()
    ref = ledgers.ref()
    first = ledger.claim(ref)
    ledger.record(first, "failed", receipt(first, "failed", reason="throttled"))
    again = ledger.claim(ref)
    assert again.outcome == "new" and again.run_id != first.run_id
    assert again.progress is None and again.attempt == 2


def test_a_checkpoint_resets_the_attempts_and_a_failed_run_goes_on_from_it(
    ledgers: Ledgers,
) -> None:
    ledger = ledgers.make()
    ref = ledgers.ref()
    first = ledger.claim(ref)
    ledger.record(first, "failed", receipt(first, "failed"))
    second = ledger.claim(ref)
    assert second.attempt == 2
    ledger.checkpoint(second, PROGRESS)
    assert second.attempt == 1  # progress made: the count starts again
    ledger.record(second, "failed", receipt(second, "failed"))
    assert ledger.get_run(second.run_id)["progress"] == PROGRESS  # type: ignore[index]

    third = ledger.claim(ref)
    assert third.outcome == "new" and third.run_id == second.run_id
    assert third.progress == PROGRESS and third.attempt == 2
    ledger.checkpoint(third, LATER)
    ledger.pause(third, receipt(third, PAUSED))
    fourth = ledger.claim(ref)
    assert fourth.run_id == second.run_id and fourth.progress == LATER and fourth.attempt == 1


def test_a_loaded_run_clears_its_progress(ledgers: Ledgers) -> None:
    ledger = ledgers.make()
    ref = ledgers.ref()
    first = ledger.claim(ref)
    ledger.checkpoint(first, PROGRESS)
    ledger.record(first, "committed", receipt(first, "loaded", rows_read=3, rows_loaded=3))
    assert ledger.get_run(first.run_id)["progress"] == PROGRESS  # type: ignore[index]
    ledger.record(first, "done", receipt(first, "loaded", rows_read=3, rows_loaded=3))
    assert ledger.get_run(first.run_id)["progress"] is None

    dropped_again = ledger.claim(ref)
    assert dropped_again.outcome == "done" and dropped_again.run_id == first.run_id
    forced = ledger.claim(ref, force=True)
    assert forced.outcome == "new" and forced.run_id != first.run_id
    assert forced.progress is None and forced.attempt == 1


def test_a_run_set_aside_clears_its_progress(ledgers: Ledgers) -> None:
    ledger = ledgers.make()
    ref = ledgers.ref()
    first = ledger.claim(ref)
    ledger.checkpoint(first, PROGRESS)
    ledger.record(first, "failed", receipt(first, "failed", set_aside=True))
    assert ledger.get_run(first.run_id)["progress"] is None  # type: ignore[index]
    again = ledger.claim(ref)  # dropped again: a fresh start
    assert again.outcome == "new" and again.run_id != first.run_id
    assert again.progress is None and again.attempt == 1


def test_a_committed_run_resumed_after_a_crash_carries_its_progress(ledgers: Ledgers) -> None:
    crashed = ledgers.make(ttl=-1)
    ref = ledgers.ref()
    first = crashed.claim(ref)
    crashed.checkpoint(first, PROGRESS)
    crashed.record(first, "committed", receipt(first, "loaded", rows_read=3, rows_loaded=3))

    live = ledgers.make()
    (left,) = live.unfinished()  # the run the engine's recovery finishes (and drops the state of)
    assert left["run_id"] == first.run_id and left["progress"] == PROGRESS
    resumed = live.claim(ref)
    assert resumed.outcome == "resume" and resumed.run_id == first.run_id
    assert resumed.progress == PROGRESS
    live.record(resumed, "done", receipt(resumed, "loaded", rows_read=3, rows_loaded=3))
    assert live.get_run(first.run_id)["progress"] is None  # type: ignore[index]
    assert live.claim(ref).outcome == "done"


def test_runs_show_the_progress_of_every_run(ledgers: Ledgers) -> None:
    ledger = ledgers.make()
    plain, big = ledgers.ref(), FileRef("big2.csv", 1, "v9", 0.0, ledgers.url + "big2.csv")
    a = ledger.claim(plain)
    b = ledger.claim(big)
    ledger.checkpoint(b, LATER)
    by_id = {x["run_id"]: x for x in ledger.runs(limit=50)}
    assert by_id[a.run_id]["progress"] is None and by_id[b.run_id]["progress"] == LATER
    assert [x["run_id"] for x in ledger.runs(status=PAUSED)] == []
    ledger.pause(b, receipt(b, PAUSED))
    assert [x["run_id"] for x in ledger.runs(status=PAUSED)] == [b.run_id]
