"""Limits that hold against hostile files, and exact counts for files of millions of repeats:
the same behaviour on every adapter pair."""

from __future__ import annotations

import csv
import gzip
import io
from typing import Any

import pytest

import batchdrop.spill as spill
from batchdrop.reader import OVERLONG
from batchdrop.report import summary
from batchdrop.tables import sqlite_pipe

from .conftest import Env

HEADER = "student_id,fname,lname,course,credits,grade,enrolled\n"
ROW = "A{n:05d},John,Watson,Course {c},5,,\n"


def rows(count: int, start: int = 10000) -> str:
    return "".join(ROW.format(n=start + i, c=i % 7) for i in range(count))


def report_rows(env: Env, name: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(env.read("errors", name).decode())))[1:]


def assert_rejected_whole(env: Env, receipt: Any, name: str, setting: str) -> None:
    assert receipt.status == "rejected"
    assert setting in (receipt.reason or "")
    assert receipt.rows_rejected == receipt.rows_read and receipt.reconciles
    assert env.items() == []
    assert env.where(name) == ["errors"]
    assert [r.status for r in env.notes.sent] == ["rejected"]


def test_a_compression_bomb_is_rejected_before_it_is_read_whole(env: Env) -> None:
    data = HEADER + rows(10) + (ROW.format(n=10001, c=1) + "\n") * 200_000  # repeats, blanks
    bomb = gzip.compress(data.encode(), 9)
    env.drop("bomb.csv.gz", bomb)
    receipt = env.pipeline(env.config(limits={"max_compression_ratio": 50})).process("bomb.csv.gz")

    assert_rejected_whole(env, receipt, "bomb.csv.gz", "limits.max_compression_ratio")
    assert 0 < receipt.rows_read < 200_000 / 2  # it stopped early: 50 × the file's size
    assert "expands to more than 50 times its size" in receipt.reason


def test_a_file_over_max_bytes_is_rejected_without_reading_it(env: Env) -> None:
    env.drop("big.csv", (HEADER + rows(2000)).encode())
    receipt = env.pipeline(env.config(limits={"max_bytes": "10kB"})).process("big.csv")

    assert_rejected_whole(env, receipt, "big.csv", "limits.max_bytes")
    assert receipt.rows_read == 0


def test_blank_lines_count_toward_max_bytes(env: Env) -> None:
    data = gzip.compress((HEADER + rows(2) + "\n" * 500_000).encode())
    env.drop("blank.csv.gz", data)
    config = env.config(limits={"max_bytes": 100_000, "max_compression_ratio": 10_000})
    receipt = env.pipeline(config).process("blank.csv.gz")

    assert_rejected_whole(env, receipt, "blank.csv.gz", "limits.max_bytes")
    assert receipt.rows_read == 2
    assert receipt.reason.startswith("line ")


def test_a_file_over_max_rows_is_rejected(env: Env) -> None:
    env.drop("rows.csv", (HEADER + rows(6000)).encode())
    receipt = env.pipeline(env.config(limits={"max_rows": 3000})).process("rows.csv")

    assert_rejected_whole(env, receipt, "rows.csv", "limits.max_rows")
    assert 3000 < receipt.rows_read < 6000


def test_the_rejected_rows_report_is_cut_at_max_report_rows(env: Env) -> None:
    bad = "".join(f"X{i},Bad,Row,Opera,1,,\n" for i in range(50))
    env.drop("bad.csv", (HEADER + rows(5) + bad).encode())
    config = env.config(on_error="skip_rows", limits={"max_report_rows": 10})
    receipt = env.pipeline(config).process("bad.csv")

    assert receipt.status == "loaded_with_rejects"
    assert (receipt.rows_read, receipt.rows_loaded, receipt.rows_rejected) == (55, 5, 50)
    assert [r[1] for r in report_rows(env, "bad.rejected.csv")] == [str(n) for n in range(7, 17)]
    assert receipt.report_rows_omitted == 40
    assert "Report cut: 40 more rejected rows not listed" in summary(env.notes.sent[0])


def test_a_rejected_file_stops_being_read_once_its_report_is_full(env: Env) -> None:
    """With on_error: reject_file the file is rejected at its first invalid row; once the
    report holds max_report_rows, the rest of a bomb of invalid rows is not read."""
    bad = "".join(f"X{i},Bad,Row,Opera,1,,\n" for i in range(20_000))
    env.drop("bad.csv", (HEADER + rows(5) + bad).encode())
    config = env.config(on_error="reject_file", limits={"max_report_rows": 10})
    receipt = env.pipeline(config).process("bad.csv")

    assert receipt.status == "rejected" and receipt.reconciles
    assert receipt.rows_read == 16 and receipt.rows_invalid == 11
    assert "reading stopped at line 17" in receipt.reason
    assert "limits.max_report_rows (10)" in receipt.reason
    assert len(report_rows(env, "bad.rejected.csv")) == 10
    assert receipt.report_rows_omitted == 1
    assert env.items() == [] and env.where("bad.csv") == ["errors"]


def test_rejected_duplicates_past_a_full_report_reject_the_file_with_exact_counts(
    env: Env,
) -> None:
    """Repeats the table reports while the file is read, or only at its end (the SQLite writer
    process): either way the report stops at its limit and the counts reconcile."""
    dups = "".join(f"A10001,Again{i},L,Course 1,1,,\n" for i in range(30))
    env.drop("dups.csv", (HEADER + rows(5) + dups).encode())
    config = env.config(
        duplicates="reject", on_error="reject_file", batch_size=4, limits={"max_report_rows": 3}
    )
    receipt = env.pipeline(config).process("dups.csv")

    assert receipt.status == "rejected" and receipt.reconciles
    assert receipt.rows_loaded == 0 and env.items() == []
    assert len(report_rows(env, "dups.rejected.csv")) == 3
    assert receipt.report_rows_omitted == receipt.rows_invalid - 3 > 0
    assert receipt.errors[0]["reason"].startswith("duplicate key")


def test_a_line_too_long_to_read_is_one_rejected_row_at_its_line(env: Env) -> None:
    """csv.max_field_size is 1024 in the corpus config: a line may hold 8 × 1024 characters.
    A longer one is rejected at its own line, in bounded memory, and the lines after it keep
    their numbers (a quoted field over two lines included)."""
    long_line = ",".join(["x" * 1000] * 9)  # no field over the limit, the line over 8192
    data = (
        HEADER
        + 'A10001,John,Watson,"Military\nMedicine",5,,\n'  # lines 2-3
        + long_line  # line 4
        + "\r\nA10002,Sherlock,Holmes,Deduction,10,,\n"  # line 5
        + "A1003,Bad,Id,X,,,\n"  # line 6
        + "y" * 20_000  # line 7, no line break at the end
    )
    env.drop("long.csv", data.encode())
    receipt = env.pipeline(env.config()).process("long.csv")

    assert (receipt.rows_read, receipt.rows_loaded, receipt.rows_rejected) == (5, 2, 3)
    too_long = "the line is longer than 8,192 characters (8 × csv.max_field_size)"
    assert [(e["line"], e["reason"]) for e in receipt.errors] == [
        (4, too_long),
        (6, "does not match the pattern A[0-9]{5}"),
        (7, too_long),
    ]
    assert sorted(i["student_id"] for i in env.items()) == ["A10001", "A10002"]
    assert not any(OVERLONG in v for r in report_rows(env, "long.rejected.csv") for v in r)


@pytest.fixture
def small_caps(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every bounded structure spills after a handful of entries."""
    monkeypatch.setattr(spill, "RUNS_IN_MEMORY", 2)
    monkeypatch.setattr(spill, "HASHES_IN_MEMORY", 4)
    monkeypatch.setattr(spill, "ROWS_IN_MEMORY", 4)
    monkeypatch.setattr(sqlite_pipe, "REPEATS_PER_MESSAGE", 3)


@pytest.mark.usefixtures("small_caps")
@pytest.mark.parametrize(
    ("policy", "loaded", "duplicate", "rejected"),
    [("last_wins", 60, 120, 4), ("first_wins", 60, 120, 4), ("reject", 60, 0, 124)],
)
def test_many_repeated_keys_are_counted_exactly_past_every_memory_cap(
    env: Env, policy: str, loaded: int, duplicate: int, rejected: int
) -> None:
    """40 keys four times each (twice far apart, then twice in a row), 20 keys once, 4 invalid
    rows in between: every count exact and the right row wins, with every structure spilled
    to disk."""
    lines = []
    for rnd in range(2):
        for k in range(40):
            lines.append(f"A{20000 + k},Round{rnd},L,C{k % 5},1,,\n")
            if k % 12 == 0 and rnd == 1:
                lines.append(f"X{k},Bad,Row,C,1,,\n")
    for k in range(40):
        lines += [f"A{20000 + k},Round{rnd},L,C{k % 5},1,,\n" for rnd in (2, 3)]
    lines += [f"A{30000 + k},Once,L,C,1,,\n" for k in range(20)]
    env.drop("rep.csv", (HEADER + "".join(lines)).encode())
    config = env.config(
        duplicates=policy, batch_size=7, on_error="skip_rows", max_duplicates="100%"
    )
    receipt = env.pipeline(config).process("rep.csv")

    assert (
        receipt.rows_read,
        receipt.rows_loaded,
        receipt.rows_duplicate,
        receipt.rows_rejected,
    ) == (184, loaded, duplicate, rejected)
    assert receipt.reconciles
    names = {i["student_id"]: i["fname"] for i in env.items()}
    assert len(names) == 60
    winner = "Round3" if policy == "last_wins" else "Round0"
    assert {names[f"A{20000 + k}"] for k in range(40)} == {winner}
    if policy == "reject":
        dup_lines = [int(r[1]) for r in report_rows(env, "rep.rejected.csv") if "duplicate" in r[4]]
        assert len(dup_lines) == 120 and dup_lines == sorted(dup_lines)


def test_a_deadline_stops_a_file_of_blank_and_invalid_rows_while_reading(env: Env) -> None:
    """No batch is ever written from such a file, so the deadline must be looked at while
    reading: the run fails (to be retried) instead of outliving its time."""
    data = HEADER + "X1,Bad,Row,Opera,1,,\n\n" * 20_000
    env.drop("slow.csv", data.encode())
    calls = 0

    def deadline() -> float:
        nonlocal calls
        calls += 1
        return 600.0 if calls < 5 else 1.0

    receipt = env.pipeline(env.config(on_error="skip_rows")).process("slow.csv", deadline=deadline)

    assert receipt.status == "failed"
    assert "too little time left" in (receipt.reason or "")
    assert env.where("slow.csv") == ["inbound"]
    assert env.items() == []
