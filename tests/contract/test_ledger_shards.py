"""The shards of one sharded run, counted in the ledger the same way on every ledger: each shard
that finishes a phase records its index, and the one that sees the full count goes on."""

from __future__ import annotations

import multiprocessing
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from batchdrop.errors import TransientError
from batchdrop.ports import Claim, FileRef
from batchdrop.report import PAUSED, Receipt

from .conftest import AwsEnv

PROGRESS = {"v": 1, "stage": "check", "offset": 0, "line": 1, "stages": {}}
#: rounds of the race: each a phase of its own, for a lost update to show in one of them
RACE_ROUNDS = 12


class Ledgers:
    """Ledger instances on one store, as separate processes would open them."""

    kind = ""
    url = ""

    def make(self, ttl: float = 900) -> Any:
        raise NotImplementedError

    def claim_elsewhere(self, ref: FileRef) -> str:
        """The outcome of a claim of ``ref`` by another live process."""
        raise NotImplementedError

    def race(self, claim: Claim, workers: int) -> list[list[int]]:
        """Each of ``workers`` shards records its index (0…workers-1) in every round's phase at
        the same moment as the others: the counts each one saw, round by round."""
        raise NotImplementedError

    def ref(self, name: str = "2026/big.csv", version: str = "v1") -> FileRef:
        return FileRef(name, 10_000, version, 0.0, self.url + name)


def _phase(i: int) -> str:
    return "race" + "abcdefghijklmnopqrstuvwxyz"[i]


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

    def claim_elsewhere(self, ref: FileRef) -> str:
        # another process: a run of this very process never counts as live on SQLite
        ctx = multiprocessing.get_context("fork")
        out = ctx.Queue()
        p = ctx.Process(target=_claim_in_child, args=(self.path, ref, out))
        p.start()
        outcome: str = out.get(timeout=60)
        p.join(timeout=60)
        return outcome

    def race(self, claim: Claim, workers: int) -> list[list[int]]:
        ctx = multiprocessing.get_context("fork")
        barrier, out = ctx.Barrier(workers), ctx.Queue()
        procs = [
            ctx.Process(target=_shards_in_child, args=(self.path, claim, i, barrier, out))
            for i in range(workers)
        ]
        for p in procs:
            p.start()
        seen = [out.get(timeout=120) for _ in procs]
        for p in procs:
            p.join(timeout=60)
        return [[counts[r] for counts in seen] for r in range(RACE_ROUNDS)]

    def close(self) -> None:
        for ledger in self.opened:
            ledger.conn.close()


def _claim_in_child(path: str, ref: FileRef, out: Any) -> None:
    from batchdrop.tables.sqlite_ledger import SqliteLedger

    try:
        out.put(SqliteLedger.open(path).claim(ref).outcome)
    except Exception as e:
        out.put(repr(e))


class _SlowStore:
    """A connection on a slow disk: every statement takes a moment more, so that a count that
    is not taken in the same transaction as its index shows as a repeated count."""

    def __init__(self, conn: Any):
        self._conn = conn

    def execute(self, *args: Any) -> Any:
        cursor = self._conn.execute(*args)
        time.sleep(0.002)
        return cursor

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def _shards_in_child(path: str, claim: Claim, index: int, barrier: Any, out: Any) -> None:
    from batchdrop.tables.sqlite_ledger import SqliteLedger

    ledger = SqliteLedger.open(path)
    ledger.conn = _SlowStore(ledger.conn)
    counts = []
    try:
        for r in range(RACE_ROUNDS):
            barrier.wait(timeout=60)
            counts.append(ledger.shard_done(claim, _phase(r), index))
    except Exception as e:
        counts.append(repr(e))  # type: ignore[arg-type]
    out.put(counts)


class DynamoLedgers(Ledgers):
    kind = "dynamodb"

    def __init__(self, env: AwsEnv):
        self.config = env.config()
        self.url = f"s3://{env.buckets['inbound']}/drop/"

    def make(self, ttl: float = 900) -> Any:
        from batchdrop.tables.dynamodb_ledger import DynamoLedger

        ledger = DynamoLedger(self.config)
        ledger.ttl = int(ttl)
        return ledger

    def claim_elsewhere(self, ref: FileRef) -> str:
        return str(self.make().claim(ref).outcome)

    def race(self, claim: Claim, workers: int) -> list[list[int]]:
        ledger = self.make()
        barrier = threading.Barrier(workers)
        seen: list[list[int]] = [[] for _ in range(RACE_ROUNDS)]

        def shard(index: int) -> None:
            for r in range(RACE_ROUNDS):
                barrier.wait(timeout=60)
                seen[r].append(ledger.shard_done(claim, _phase(r), index))

        threads = [threading.Thread(target=shard, args=(i,)) for i in range(workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return seen

    def close(self) -> None:
        pass


#: A moto server whose requests are served one at a time: DynamoDB applies the writes to one
#: item in turn, each answering with the item as that write left it; the emulator serves
#: requests in parallel threads without that isolation, so a race of writes to one item is
#: checked against it with its requests in turn (the callers still race, over HTTP).
SERIAL_MOTO = """
import threading
import moto.server as server

serve, lock = server.run_simple, threading.Lock()

def serial(host, port, app, **options):
    def one_at_a_time(environ, start_response):
        with lock:
            return list(app(environ, start_response))
    serve(host, port, one_at_a_time, **options)

server.run_simple = serial
server.main()
"""


@pytest.fixture(scope="module")
def serial_moto_server() -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-c", SERIAL_MOTO, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(url + "/moto-api/", timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the moto server did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _ledgers(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path, endpoint: str
) -> Iterator[Ledgers]:
    made: SqliteLedgers | DynamoLedgers
    if kind == "sqlite":
        made = SqliteLedgers(tmp_path / "db.sqlite")
    else:
        from batchdrop.aws import clients

        made = DynamoLedgers(AwsEnv(endpoint, request.getfixturevalue("unique")))
    try:
        yield made
    finally:
        made.close()
        if kind == "dynamodb":
            clients.clear_cache()


@pytest.fixture(params=["sqlite", "dynamodb"])
def ledgers(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Ledgers]:
    endpoint = request.getfixturevalue("aws_env") if request.param == "dynamodb" else ""
    yield from _ledgers(request.param, request, tmp_path, endpoint)


@pytest.fixture
def dynamodb_ledgers(
    request: pytest.FixtureRequest, tmp_path: Path, aws_env: str
) -> Iterator[Ledgers]:
    yield from _ledgers("dynamodb", request, tmp_path, aws_env)


@pytest.fixture(params=["sqlite", "dynamodb"])
def racing_ledgers(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Ledgers]:
    endpoint = ""
    if request.param == "dynamodb":
        request.getfixturevalue("aws_env")  # fake credentials
        endpoint = request.getfixturevalue("serial_moto_server")
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    yield from _ledgers(request.param, request, tmp_path, endpoint)


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


def test_each_shard_counts_once_and_the_count_includes_it(ledgers: Ledgers) -> None:
    ledger = ledgers.make()
    claim = ledger.claim(ledgers.ref())
    assert ledger.shards_done(claim.run_id, "check") == 0
    assert ledger.shard_done(claim, "check", 3) == 1
    assert ledger.shard_done(claim, "check", 0) == 2
    assert ledger.shard_done(claim, "check", 3) == 2  # a repeated task: the same shard
    assert ledger.shard_done(claim, "check", 1) == 3
    assert ledgers.make().shards_done(claim.run_id, "check") == 3  # seen by another process


def test_phases_and_runs_are_counted_apart(ledgers: Ledgers) -> None:
    ledger = ledgers.make()
    a = ledger.claim(ledgers.ref())
    b = ledger.claim(ledgers.ref("2026/other.csv"))
    assert ledger.shard_done(a, "check", 0) == 1
    assert ledger.shard_done(a, "check", 1) == 2
    assert ledger.shard_done(a, "check+", 0) == 1  # a phase of its own, however alike its name
    assert ledger.shard_done(a, "write", 1) == 1
    assert ledger.shard_done(b, "check", 1) == 1
    counts = {
        (run, phase): ledger.shards_done(run, phase)
        for run in (a.run_id, b.run_id)
        for phase in ("check", "check+", "write", "settle")
    }
    assert counts == {
        (a.run_id, "check"): 2,
        (a.run_id, "check+"): 1,
        (a.run_id, "write"): 1,
        (a.run_id, "settle"): 0,
        (b.run_id, "check"): 1,
        (b.run_id, "check+"): 0,
        (b.run_id, "write"): 0,
        (b.run_id, "settle"): 0,
    }
    assert ledger.shards_done("20261128T090000.000Z-000000", "check") == 0  # no such run


def test_a_claim_taken_over_is_refused_and_counts_nothing(ledgers: Ledgers) -> None:
    crashed = ledgers.make(ttl=-1)  # its lease is over at once, as if the process had died
    ref = ledgers.ref()
    first = crashed.claim(ref)
    crashed.checkpoint(first, PROGRESS)
    assert crashed.shard_done(first, "check", 0) == 1

    live = ledgers.make()
    again = live.claim(ref)  # goes on as the same run: only the claim's token tells them apart
    assert again.outcome == "new" and again.run_id == first.run_id
    with pytest.raises(TransientError, match="taken over by another run"):
        crashed.shard_done(first, "check", 1)
    with pytest.raises(TransientError, match="taken over by another run"):
        crashed.shard_done(first, "write", 0)
    assert live.shards_done(first.run_id, "check") == 1
    assert live.shards_done(first.run_id, "write") == 0
    assert live.shard_done(again, "check", 1) == 2  # the run's owner counts on


def test_a_claim_lost_to_a_new_run_is_refused(ledgers: Ledgers) -> None:
    crashed = ledgers.make(ttl=-1)
    ref = ledgers.ref()
    first = crashed.claim(ref)
    crashed.shard_done(first, "check", 0)
    second = ledgers.make().claim(ref)  # no checkpoint: the crashed run is over, a new one starts
    assert second.outcome == "new" and second.run_id != first.run_id
    with pytest.raises(TransientError, match="taken over by another run"):
        crashed.shard_done(first, "check", 1)
    assert crashed.shards_done(second.run_id, "check") == 0  # a new run starts with none done
    assert crashed.shard_done(second, "check", 1) == 1


def test_a_shard_done_renews_the_lease(ledgers: Ledgers) -> None:
    lapsing = ledgers.make(ttl=-1)  # every lease it takes is over at once
    busy, idle = ledgers.ref("busy.csv"), ledgers.ref("idle.csv")
    held = lapsing.claim(busy)
    lapsing.claim(idle)
    ledgers.make(ttl=900).shard_done(held, "check", 0)  # a shard that finished just now
    assert ledgers.claim_elsewhere(busy) == "busy"
    assert ledgers.claim_elsewhere(idle) == "new"  # the same lapsed lease, not renewed


def test_a_shard_done_leaves_progress_and_attempts_alone(ledgers: Ledgers) -> None:
    crashing = ledgers.make(ttl=-1)
    ref = ledgers.ref()
    first = crashing.claim(ref)
    crashing.checkpoint(first, PROGRESS)
    second = crashing.claim(ref)  # the first crashed: it goes on as one more attempt
    assert second.run_id == first.run_id and second.attempt == 2
    crashing.shard_done(second, "check", 4)
    third = crashing.claim(ref)  # crashed again: a shard done is no progress of the run's
    assert third.run_id == first.run_id and third.attempt == 3
    assert third.progress == PROGRESS
    assert crashing.shards_done(first.run_id, "check") == 1  # its shards stay done


def test_a_run_that_goes_on_keeps_its_counts(ledgers: Ledgers) -> None:
    ledger = ledgers.make()
    ref = ledgers.ref()
    first = ledger.claim(ref)
    ledger.checkpoint(first, PROGRESS)
    ledger.shard_done(first, "check", 0)
    ledger.shard_done(first, "check", 1)
    ledger.shard_done(first, "write", 0)
    ledger.pause(first, receipt(first, PAUSED))

    resumed = ledgers.make().claim(ref)
    assert resumed.outcome == "new" and resumed.run_id == first.run_id
    assert ledger.shards_done(first.run_id, "check") == 2
    assert ledger.shard_done(resumed, "check", 2) == 3
    assert ledger.shard_done(resumed, "write", 0) == 1

    ledger.record(resumed, "failed", receipt(resumed, "failed", reason="throttled"))
    retried = ledger.claim(ref)  # failed after a checkpoint: the same run, one more attempt
    assert retried.run_id == first.run_id
    assert ledger.shard_done(retried, "check", 1) == 3


def test_a_run_that_ended_leaves_the_next_run_none(ledgers: Ledgers) -> None:
    ledger = ledgers.make()
    ref = ledgers.ref()
    first = ledger.claim(ref)
    ledger.checkpoint(first, PROGRESS)
    ledger.shard_done(first, "check", 0)
    ledger.record(first, "failed", receipt(first, "failed", set_aside=True))
    second = ledger.claim(ref)
    assert second.run_id != first.run_id
    assert ledger.shard_done(second, "check", 1) == 1
    ledger.record(second, "done", receipt(second, "loaded", rows_read=1, rows_loaded=1))
    forced = ledger.claim(ref, force=True)
    assert ledger.shard_done(forced, "check", 0) == 1
    if ledgers.kind == "sqlite":  # the counts of ended runs are not kept for ever
        assert ledger.shards_done(first.run_id, "check") == 0
        assert ledger.shards_done(second.run_id, "check") == 0


@pytest.mark.parametrize("phase", ["", "Check", "check-1", "check phase"])
def test_a_phase_is_a_short_lowercase_name(ledgers: Ledgers, phase: str) -> None:
    ledger = ledgers.make()
    claim = ledger.claim(ledgers.ref())
    with pytest.raises(ValueError, match="not a phase name"):
        ledger.shard_done(claim, phase, 0)


def test_shards_finishing_at_once_each_see_their_own_count(racing_ledgers: Ledgers) -> None:
    """Lambda functions (DynamoDB) or worker processes (SQLite) finishing shards together: each
    sees a different count, so exactly one of them sees that all are done, in every phase."""
    ledgers = racing_ledgers
    workers = 32 if ledgers.kind == "dynamodb" else 8
    ledger = ledgers.make()
    claim = ledger.claim(ledgers.ref())
    seen = ledgers.race(claim, workers)
    everyone = list(range(1, workers + 1))
    assert [sorted(counts) for counts in seen] == [everyone] * RACE_ROUNDS
    assert ledger.shards_done(claim.run_id, _phase(RACE_ROUNDS - 1)) == workers


def test_a_shard_done_meeting_a_transaction_on_the_claim_tries_again(
    dynamodb_ledgers: Ledgers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A checkpoint's transaction in flight on the claim makes DynamoDB refuse the update for a
    moment: the shard tries again rather than failing its task."""
    from botocore.stub import Stubber

    from batchdrop.tables import dynamodb_ledger

    monkeypatch.setattr(dynamodb_ledger.time, "sleep", lambda _s: None)
    ledger = dynamodb_ledgers.make()
    claim = ledger.claim(dynamodb_ledgers.ref())
    conflict = ("TransactionConflictException", "Transaction is ongoing for the item", 400)
    done = {"Attributes": {"shards_check": {"NS": ["0", "3"]}}}
    with Stubber(ledger.client) as stub:
        stub.add_client_error("update_item", *conflict)
        stub.add_client_error("update_item", *conflict)
        stub.add_response("update_item", done)
        assert ledger.shard_done(claim, "check", 3) == 2
        stub.assert_no_pending_responses()

        for _ in range(dynamodb_ledger.SHARD_ATTEMPTS):
            stub.add_client_error("update_item", *conflict)
        with pytest.raises(TransientError, match="TransactionConflictException"):
            ledger.shard_done(claim, "check", 3)
        stub.assert_no_pending_responses()

        stub.add_client_error("update_item", "ConditionalCheckFailedException", "", 400)
        with pytest.raises(TransientError, match="taken over"):  # not tried again
            ledger.shard_done(claim, "check", 3)
        stub.assert_no_pending_responses()
