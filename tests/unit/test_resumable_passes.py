"""The engine's checkpointed passes, paused and resumed again and again, end exactly where one
uninterrupted run ends: the same table, the same counts, the same rejected-rows report.

The table, ledger and state location here are small in-memory stand-ins with the ports' shape
(the real ones are tested against SQLite, local folders and the moto server elsewhere); the
files are real files read through the local store, the reader and the CSV parser.
"""

from __future__ import annotations

import csv
import gzip
import io
import random
from pathlib import Path
from typing import Any

import pytest

from batchdrop import checkpoint
from batchdrop.config import Config, parse_config
from batchdrop.errors import TransientError
from batchdrop.pipeline import Pipeline
from batchdrop.ports import Claim, FileRef
from batchdrop.report import PAUSED, Receipt
from batchdrop.tables.sqlite_ledger import SqliteLedger

FIELDS = [
    {"name": "id", "type": "string"},
    {"name": "n", "type": "integer", "constraints": {"minimum": 0}},
    {"name": "price", "type": "number"},
    {"name": "note", "type": "string"},
]


class Table:
    single_pass = False
    row_check = None

    def __init__(self) -> None:
        self.items: dict[Any, tuple[Any, ...]] = {}
        self.writes = 0

    def prepare(self) -> None: ...

    def begin(self, claim: Claim, ledger: Any) -> Load:
        return Load(self, claim, ledger)


class Load:
    def __init__(self, table: Table, claim: Claim, ledger: Any):
        self.table, self.claim, self.ledger = table, claim, ledger

    def write(self, rows: list[tuple[Any, ...]], lines: list[int]) -> list[Any]:
        for row in rows:
            self.table.items[row[0]] = row
        self.table.writes += len(rows)
        return []

    def finish(self) -> list[Any]:
        return []

    def commit(self, receipt: Receipt) -> None:
        self.ledger.record(self.claim, "committed", receipt)

    def abort(self) -> None: ...


class Ledger:
    """One file's claim: its state, progress and attempts."""

    def __init__(self) -> None:
        self.state, self.progress, self.attempt, self.runs = "", None, 1, 0
        self.checkpoints = 0

    def claim(self, ref: FileRef, *, force: bool = False) -> Claim:
        if self.state == "done":
            return Claim("done", "run-1", ref)
        self.state = "running"
        return Claim("new", "run-1", ref, progress=self.progress, attempt=self.attempt)

    def checkpoint(self, claim: Claim, progress: dict[str, Any]) -> None:
        self.progress, self.attempt = progress, 1
        self.checkpoints += 1

    def pause(self, claim: Claim, receipt: Receipt) -> None:
        assert receipt.status == PAUSED
        self.state = "paused"

    def record(self, claim: Claim, state: str, receipt: Receipt) -> None:
        self.state = state
        if state == "done":
            self.progress = None

    def sent(self, run_id: str) -> None: ...


class State:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}

    def put(self, run_id: str, name: str, data: bytes) -> None:
        self.objects[run_id, name] = data

    def get(self, run_id: str, name: str) -> bytes:
        return self.objects[run_id, name]

    def drop(self, run_id: str) -> None:
        self.objects = {k: v for k, v in self.objects.items() if k[0] != run_id}


class Backends:
    def __init__(self) -> None:
        self.table, self.ledger = Table(), Ledger()


def config(root: Path, **overrides: Any) -> Config:
    data: dict[str, Any] = {
        "inbound": str(root / "in"),
        "archive": str(root / "archive"),
        "errors": str(root / "errors"),
        "table": {"url": "dynamodb://t", "partition_key": "id"},
        "schema": {"fields": FIELDS},
        "notify": [],
        "on_error": "skip_rows",
        "checkpoint": {"every_bytes": 3000, "every_seconds": 60},
        "batch_size": 50,
    }
    data.update(overrides)
    return parse_config(data, source="test", environ={})


def partner_file(rows: int, seed: int) -> bytes:
    """Random key order; quoted commas, quotes and line breaks (LF, CR, CRLF) in fields; CRLF
    line ends; invalid rows; keys repeated far apart."""
    rng = random.Random(seed)
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(["id", "n", "price", "note"])
    ids = [f"K{i}" for i in rng.sample(range(10 * rows), rows)]
    for i in range(rows):
        key = rng.choice(ids[:i]) if i and rng.random() < 0.005 else ids[i]
        n = -1 if rng.random() < 0.01 else i
        note = rng.choice(["plain", 'a, "quoted" one', "two\nlines", "cr\ronly", "crlf\r\nx", ""])
        w.writerow([key, n, f"{rng.randrange(10**6)}.{rng.randrange(100):02d}0", note])
    return out.getvalue().encode()


def ticking(budget: float) -> Any:
    """A clock that advances one tick per look at it: a pause comes after ``budget`` looks."""
    calls = iter(range(10**9))
    return lambda: checkpoint.PAUSE_MARGIN_S + 20 + budget - next(calls)


def load(root: Path, body: bytes, name: str, budget: float | None, **overrides: Any) -> Any:
    """Run the file until it is done, each run with ``budget`` seconds (None: no deadline)."""
    (root / "in").mkdir(parents=True, exist_ok=True)
    (root / "in" / name).write_bytes(body)
    backends, state = Backends(), State()
    runs = 0
    while True:
        pipeline = Pipeline(config(root, **overrides), backends=backends, notifiers=[])  # type: ignore[arg-type]
        pipeline._state = state  # type: ignore[assignment]
        deadline = None if budget is None else ticking(budget)
        receipt = pipeline.process(name, deadline=deadline)
        runs += 1
        if receipt.status != PAUSED:
            break
        assert runs < 500
    report = None
    if receipt.rejected_rows_report:
        report = Path(receipt.rejected_rows_report).read_text()
    return backends, state, receipt, report, runs


FIELDS_OUT = ("status", "rows_read", "rows_loaded", "rows_rejected", "rows_duplicate", "errors")


@pytest.mark.parametrize("duplicates", ["last_wins", "first_wins", "reject"])
@pytest.mark.parametrize("gz", [False, True])
def test_paused_again_and_again_it_ends_as_one_run_does(
    tmp_path: Path, duplicates: str, gz: bool
) -> None:
    body = partner_file(6000, seed=len(duplicates) + gz)
    if gz:
        body = gzip.compress(body)
    name = "f.csv.gz" if gz else "f.csv"
    opts = {"duplicates": duplicates, "max_duplicates": "5%"}
    whole, _, one, one_report, _ = load(
        tmp_path / "a", body, name, None, **opts, checkpoint={"every_bytes": 10**9}
    )
    parts, state, many, many_report, runs = load(tmp_path / "b", body, name, 3, **opts)
    assert runs > 10  # it paused many times
    assert parts.ledger.checkpoints > 20
    assert parts.table.items == whole.table.items
    assert [getattr(many, f) for f in FIELDS_OUT] == [getattr(one, f) for f in FIELDS_OUT]
    assert many_report == one_report
    assert (
        many.rows_read == 6000
        and many.rows_rejected > 0
        and many.rows_duplicate + (many.rows_rejected if duplicates == "reject" else 0) > 0
    )
    assert state.objects == {}  # the finished run removed its state


def test_a_stray_quote_that_fools_the_cut_costs_time_not_rows(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """``5" screen`` holds one quote outside any quoted field: counting quotes from there, every
    line break inside a later quoted field looks like the end of a row."""
    lines = ["id,n,price,note"]
    for i in range(4000):
        note = '5" screen' if i == 10 else ('"two\nlines"' if i % 3 else "plain")
        lines.append(f"K{i},{i},1.5,{note}")
    body = ("\n".join(lines) + "\n").encode()
    whole, _, one, _, _ = load(
        tmp_path / "a", body, "f.csv", None, checkpoint={"every_bytes": 10**9}
    )
    parts, _, many, _, _runs = load(tmp_path / "b", body, "f.csv", 12)
    assert "ends inside a quoted field" in caplog.text
    assert len(whole.table.items) == 4000
    assert parts.table.items == whole.table.items
    assert [getattr(many, f) for f in FIELDS_OUT] == [getattr(one, f) for f in FIELDS_OUT]


class RefusingTable(Table):
    """A table that refuses (a retryable error) the batch holding the first line of
    ``refuse``: for ever when ``stuck``, else once, the next refusal coming further on."""

    def __init__(self, refuse: list[int], stuck: bool):
        super().__init__()
        self.refuse, self.stuck = refuse, stuck

    def begin(self, claim: Claim, ledger: Any) -> Load:
        return RefusingLoad(self, claim, ledger)


class RefusingLoad(Load):
    table: RefusingTable

    def write(self, rows: list[tuple[Any, ...]], lines: list[int]) -> list[Any]:
        refuse = self.table.refuse
        if refuse and lines[0] <= refuse[0] <= lines[-1]:
            if not self.table.stuck:
                refuse.pop(0)
            raise TransientError("the table is throttled")
        return super().write(rows, lines)


@pytest.mark.parametrize("moving", [False, True])
def test_a_run_that_keeps_failing_at_one_place_is_set_aside_one_that_moves_on_is_not(
    tmp_path: Path, moving: bool
) -> None:
    """Attempts count failures since the last checkpoint: the ledger is the real SQLite one."""
    body = partner_file(6000, seed=4)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "f.csv").write_bytes(body)
    backends = Backends()
    refuse = [2500, 4000, 5500, 7000] if moving else [2500]
    backends.table = RefusingTable(refuse, stuck=not moving)  # type: ignore[assignment]
    backends.ledger = SqliteLedger.open(str(tmp_path / "ledger.db"))  # type: ignore[assignment]
    statuses = []
    for _ in range(8):
        pipeline = Pipeline(config(tmp_path, max_attempts=2), backends=backends, notifiers=[])  # type: ignore[arg-type]
        if not (tmp_path / "in" / "f.csv").exists():
            break
        receipt = pipeline.process("f.csv")
        statuses.append((receipt.status, receipt.set_aside))
    runs = backends.ledger.runs()
    assert len({r["run_id"] for r in runs}) == 1  # one run, however many attempts
    if moving:  # four failures, each past a new checkpoint: never set aside, and loaded whole
        assert [s for s, _ in statuses].count("failed") >= 3
        assert statuses[-1] == ("loaded_with_rejects", False)
        assert (tmp_path / "archive" / "f.csv").exists()
    else:  # the same place twice: max_attempts (2) reached, set aside in errors
        assert statuses == [("failed", False), ("failed", True)]
        assert (tmp_path / "errors" / "f.csv").exists()


def test_a_segment_ends_once_its_journal_is_full_and_the_load_is_exact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """However far apart the checkpoint settings put the cuts, a segment's journal of key
    hashes stays bounded (scan.JOURNAL_ROWS): the pass cuts there, and the load ends as one
    uncut pass does."""
    import batchdrop.scan as scan_module

    body = partner_file(20000, seed=11)
    far = {"checkpoint": {"every_bytes": 10**9, "every_seconds": 400}}
    whole, _, one, _, _ = load(tmp_path / "a", body, "f.csv", None, **far)
    assert whole.ledger.checkpoints <= 2  # one per pass: the settings never cut

    monkeypatch.setattr(scan_module, "JOURNAL_ROWS", 500)
    sizes: list[int] = []
    save = checkpoint.Checkpoints.save

    def saving(self: Any, delta: Any) -> None:
        sizes.append(len(delta.hashes))
        save(self, delta)

    monkeypatch.setattr(checkpoint.Checkpoints, "save", saving)
    cut, _, many, _, _ = load(tmp_path / "b", body, "f.csv", None, **far)
    # a cut lands where the reader next asks, after its read block (about 2,400 rows here):
    # the check pass's 20,000 hashes come in many bounded deltas, not one
    assert cut.ledger.checkpoints >= 6
    assert 0 < max(sizes) <= 500 + 4000
    assert cut.table.items == whole.table.items
    assert [getattr(many, f) for f in FIELDS_OUT] == [getattr(one, f) for f in FIELDS_OUT]
