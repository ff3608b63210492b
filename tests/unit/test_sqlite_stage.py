"""Staged rows written into a SQLite table in key order (sqlite_stage.py): each duplicates
policy ends with the rows it says, against rows an earlier run left in the table, with repeats
across and within flushes, and every repeat is reported at its line."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from batchdrop.tables.sqlite_stage import PACKED, Flushes, Packer, Stage, statement_parts

DDL = (
    'CREATE TABLE t (k TEXT NOT NULL, n INTEGER NOT NULL, v TEXT, flag INTEGER, "_batchdrop_run"'
    " INTEGER, PRIMARY KEY (k, n)) WITHOUT ROWID"
)
EARLIER_RUN, THIS_RUN = 1, 2


def add_via(via: str, stage: Stage, rows: list[Any], lines: list[int], sink: Any) -> None:
    """Rows into ``stage`` as this process binds them, or as the writer process gets them:
    packed as a database, or plain (its rows and lines, as they were given)."""
    if via == "bound":
        stage.add(rows, lines, sink)
    elif via == "packed":
        packed = Packer(stage.ncols).pack(rows, lines, bind=True)
        assert isinstance(packed, bytes)
        stage.add_packed(packed, sink)
    else:
        plain, at = Packer(stage.ncols).pack(rows, lines, bind=False)
        stage.add(plain, at, sink)


def load(
    db: Path,
    rows: list[tuple[Any, ...]],
    policy: str,
    flushes: Flushes,
    batch: int = 7,
    via: str = "bound",
) -> list[tuple[int, Any]]:
    """``rows`` (k, n, v, flag) at lines 2, 3, … through a Stage; the repeats it reported."""
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute(f"ATTACH ':memory:' AS {PACKED}")
    conn.execute("BEGIN IMMEDIATE")
    stage = Stage(
        conn, "t", ["k", "n", "v", "flag"], ["k", "n"], THIS_RUN, policy == "last_wins",
        [False, False], flushes,
    )  # fmt: skip
    repeats: list[tuple[int, Any]] = []
    for i in range(0, len(rows), batch):
        part = rows[i : i + batch]
        add_via(via, stage, part, list(range(i + 2, i + 2 + len(part))), repeats.extend)
    stage.flush(repeats.extend)
    conn.execute("COMMIT")
    conn.close()
    return repeats


def expected(
    earlier: dict[tuple[str, int], str], rows: list[tuple[Any, ...]], policy: str
) -> tuple[dict[tuple[str, int], tuple[str, int]], list[int]]:
    """What the policy leaves (key → (v, run)), and the lines of the repeats."""
    table = {k: (v, EARLIER_RUN) for k, v in earlier.items()}
    seen: set[tuple[str, int]] = set()
    repeated = []
    for line, (k, n, v, _) in enumerate(rows, start=2):
        if (k, n) in seen:
            repeated.append(line)
            if policy == "last_wins":
                table[k, n] = (v, THIS_RUN)
        else:
            seen.add((k, n))
            table[k, n] = (v, THIS_RUN)
    return table, repeated


def table_of(db: Path) -> dict[tuple[str, int], tuple[str, int]]:
    conn = sqlite3.connect(db)
    try:
        return {
            (k, n): (v, r) for k, n, v, r in conn.execute("SELECT k, n, v, _batchdrop_run FROM t")
        }
    finally:
        conn.close()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "t.db"
    conn = sqlite3.connect(path)
    conn.execute(DDL)
    conn.commit()
    conn.close()
    return path


def a_file(seed: int, rows: int, keys: int) -> list[tuple[Any, ...]]:
    """Rows in random key order, keys drawn from ``keys`` so some repeat near and far."""
    rnd = random.Random(seed)
    return [
        (f"S{rnd.randrange(keys):04d}", rnd.randrange(3), f"v{i}", rnd.randrange(2))
        for i in range(rows)
    ]


def earlier_rows(db: Path) -> dict[tuple[str, int], str]:
    """An earlier run's rows for every other key of ``a_file``'s 60."""
    earlier = {(f"S{k:04d}", n): f"old{k}" for k in range(0, 60, 2) for n in range(3)}
    conn = sqlite3.connect(db)
    conn.executemany("INSERT INTO t VALUES (?, ?, ?, 0, ?)",
                     [(k, n, v, EARLIER_RUN) for (k, n), v in earlier.items()])  # fmt: skip
    conn.commit()
    conn.close()
    return earlier


@pytest.mark.parametrize("policy", ["first_wins", "last_wins", "reject"])
@pytest.mark.parametrize(
    "flushes",
    [Flushes(min_rows=5, share=0.0, cache_kib=64), Flushes(min_rows=40, share=0.5, cache_kib=64)],
    ids=["small-flushes", "growing-flushes"],
)
@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("via", ["bound", "packed", "plain"])
def test_each_policy_leaves_its_rows_against_an_earlier_run(
    db: Path, policy: str, flushes: Flushes, seed: int, via: str
) -> None:
    """An earlier run's rows, then a file whose keys repeat within a flush, across flushes
    and over the earlier rows: the table and the repeated lines are exactly the policy's."""
    earlier = earlier_rows(db)
    rows = a_file(seed, 300, 60)

    repeats = load(db, rows, policy, flushes, batch=7 if via == "bound" else 23, via=via)

    table, repeated = expected(earlier, rows, policy)
    assert table_of(db) == table
    assert len(repeats) == len(repeated) > 0
    if policy != "last_wins":  # the repeats a policy that keeps the first row reports
        assert [line for line, _ in repeats] == repeated
        assert [key for _, key in repeats] == [rows[line - 2][:2] for line in repeated]


@pytest.mark.parametrize("policy", ["first_wins", "last_wins", "reject"])
@pytest.mark.parametrize("first_repeat", [3, 40, 250])
@pytest.mark.parametrize("via", ["bound", "packed"])
def test_rows_repeated_exactly_are_reported_at_their_lines(
    db: Path, policy: str, first_repeat: int, via: str
) -> None:
    """Repeats with the very values of the row before them (a file sent over and over), the
    first in the second, a middle or the last flush, its earlier row in a flush before: once
    a flush has written a row, the table cannot tell it from its repeat, and each repeat is
    still reported at its own line."""
    earlier = earlier_rows(db)
    rnd = random.Random(first_repeat)
    rows = [(f"S{k:04d}", k % 3, f"v{k}", 0) for k in rnd.sample(range(60), 60)] * 5
    rows = [(f"X{i:04d}", 0, "x", 0) for i in range(first_repeat)] + rows[:240]

    repeats = load(db, rows, policy, Flushes(40, 0.5, 64), batch=9, via=via)

    table, repeated = expected(earlier, rows, policy)
    assert table_of(db) == table
    assert [line for line, _ in repeats] == repeated
    assert repeated[0] == first_repeat + 62  # line of the 61st row after the first X rows
    assert [key for _, key in repeats] == [rows[line - 2][:2] for line in repeated]


@pytest.mark.parametrize("repeat_at", [None, 150, 470])
def test_flushes_call_no_sql_function_until_a_row_meets_a_row_of_this_run(
    db: Path, repeat_at: int | None
) -> None:
    """A SQL function in a flush makes SQLite copy every page it changes to a statement
    journal first: flushes go without one while no row has met a row of this run (rows of
    an earlier run are overwritten all the same), and note repeats with it from the flush
    that finds the first one."""
    earlier = earlier_rows(db)
    rows = [(f"S{k:04d}", n, f"v{k}", 0) for k in range(60) for n in range(3)]
    rows += [(f"N{i:04d}", 0, "v", 0) for i in range(400)]
    random.Random(6).shuffle(rows)
    if repeat_at is not None:
        rows.insert(repeat_at, rows[0])
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    stage = Stage(conn, "t", ["k", "n", "v", "flag"], ["k", "n"], THIS_RUN, False,
                  [False, False], Flushes(min_rows=100, share=0.0, cache_kib=64))  # fmt: skip
    flushes: list[str] = []
    conn.set_trace_callback(lambda sql: flushes.append(sql) if "ON CONFLICT" in sql else None)
    repeats: list[tuple[int, Any]] = []
    for i in range(0, len(rows), 10):
        stage.add(rows[i : i + 10], list(range(i + 2, i + 2 + len(rows[i : i + 10]))),
                  repeats.extend)  # fmt: skip
    stage.flush(repeats.extend)
    conn.execute("COMMIT")
    conn.close()

    with_function = ["batchdrop_repeat" in sql for sql in flushes]
    assert len(flushes) == -(-len(rows) // 100)
    if repeat_at is None:
        assert not any(with_function)
        assert repeats == []
    else:
        found = repeat_at // 100 + 1  # the flush holding the repeat: the first with one
        assert with_function == [False] * found + [True] * (len(flushes) - found)
        assert repeats == [(repeat_at + 2, rows[0][:2])]
    table, _ = expected(earlier, rows, "first_wins")
    assert table_of(db) == table


def test_a_file_without_repeats_reports_none_and_loads_every_row(db: Path) -> None:
    rows = [(f"S{k:04d}", n, "v", 1) for k in random.Random(4).sample(range(5000), 400)
            for n in range(2)]  # fmt: skip
    assert load(db, rows, "reject", Flushes(min_rows=50, share=0.25, cache_kib=64)) == []
    assert len(table_of(db)) == 800


def test_boolean_key_columns_come_back_as_booleans(tmp_path: Path) -> None:
    """A repeated key is reported as the engine holds it (True, not SQLite's 1)."""
    path = tmp_path / "b.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(
        'CREATE TABLE t (b INTEGER NOT NULL, v TEXT, "_batchdrop_run" INTEGER, '
        "PRIMARY KEY (b)) WITHOUT ROWID"
    )
    conn.execute("BEGIN IMMEDIATE")
    stage = Stage(conn, "t", ["b", "v"], ["b"], 1, False, [True], Flushes(2, 0.0, 64))
    repeats: list[tuple[int, Any]] = []
    stage.add([(True, "x"), (False, "y"), (True, "z")], [2, 3, 4], repeats.extend)
    stage.flush(repeats.extend)
    conn.execute("COMMIT")
    assert repeats == [(4, (True,))]
    assert conn.execute("SELECT b, v FROM t ORDER BY b").fetchall() == [(0, "y"), (1, "x")]


def test_a_row_without_its_key_fails_as_it_is_staged(db: Path) -> None:
    """The flush ignores nothing: a missing key is refused when the row arrives."""
    with pytest.raises(sqlite3.IntegrityError):
        load(db, [("S0001", 1, "v", 0), (None, 2, "v", 0)], "first_wins", Flushes(5, 0.0, 64))


def test_a_column_named_rowid_does_not_decide_which_row_comes_first(tmp_path: Path) -> None:
    """File order stays the staged order when the schema has a column called ``rowid``."""
    path = tmp_path / "r.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(
        'CREATE TABLE t ("rowid" TEXT, k TEXT NOT NULL, "_batchdrop_run" INTEGER, '
        "PRIMARY KEY (k)) WITHOUT ROWID"
    )
    conn.execute("BEGIN IMMEDIATE")
    stage = Stage(conn, "t", ["rowid", "k"], ["k"], 1, False, [False], Flushes(10, 0.0, 64))
    repeats: list[tuple[int, Any]] = []
    stage.add([("9", "a"), ("5", "a"), ("1", "a")], [2, 3, 4], repeats.extend)
    stage.flush(repeats.extend)
    conn.execute("COMMIT")
    assert conn.execute('SELECT "rowid", k FROM t').fetchall() == [("9", "a")]
    assert repeats == [(3, ("a",)), (4, ("a",))]


#: values whose storage depends on how they are bound and on the column's affinity
AWKWARD = [
    None, "", "0012", "12", "1e3", " 7", "12.50", "x" * 5000, "naïve ☃ 𝔘", "a\x00b",
    0, -1, 2**53 + 1, 2**63 - 1, -(2**63), 0.1, -0.0, 1e308, 3.0, b"", b"\x00\xff",
    True, False,
]  # fmt: skip
TYPED = (
    "CREATE TABLE t (k INTEGER NOT NULL, s TEXT, i INTEGER, r REAL, n NUMERIC, b BLOB, a,"
    ' "_batchdrop_run" INTEGER, PRIMARY KEY (k)) WITHOUT ROWID'
)


@pytest.mark.parametrize("via", ["packed", "plain"])
@pytest.mark.parametrize("seed", range(6))
def test_packed_rows_are_stored_exactly_as_bound_rows(tmp_path: Path, via: str, seed: int) -> None:
    """Every value, in every column affinity, ends in the table with the same type and the
    same bytes whether this process bound it or the writer read it packed."""
    rnd = random.Random(seed)
    rows = [(k, *(rnd.choice(AWKWARD) for _ in range(6))) for k in range(400)]
    stored = {}
    for how in ("bound", via):
        conn = sqlite3.connect(tmp_path / f"{how}.db", isolation_level=None)
        conn.execute(TYPED)
        conn.execute(f"ATTACH ':memory:' AS {PACKED}")
        conn.execute("BEGIN IMMEDIATE")
        cols = ["k", "s", "i", "r", "n", "b", "a"]
        stage = Stage(conn, "t", cols, ["k"], 1, False, [False], Flushes(150, 0.0, 64))
        for i in range(0, len(rows), 37):
            part = rows[i : i + 37]
            add_via(how, stage, part, list(range(i + 2, i + 2 + len(part))), lambda r: None)
        stage.flush(lambda r: None)
        conn.execute("COMMIT")
        cells = ", ".join(f"typeof({c}), quote({c})" for c in cols)
        stored[how] = conn.execute(f"SELECT {cells} FROM t ORDER BY k").fetchall()
        conn.close()
    assert len(stored["bound"]) == 400
    assert stored[via] == stored["bound"]


@pytest.mark.parametrize("told", [False, True])
def test_told_the_rows_to_come_the_flushes_shrink_as_the_file_ends(db: Path, told: bool) -> None:
    """The last flush is the one a load waits for once its file is read: told how many rows
    are still to come, the stage keeps it small; the table is the same either way."""
    rows = [(f"S{k:05d}", 0, "v", 0) for k in random.Random(5).sample(range(99999), 3000)]
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    stage = Stage(conn, "t", ["k", "n", "v", "flag"], ["k", "n"], THIS_RUN, False,
                  [False, False], Flushes(min_rows=20, share=0.5, cache_kib=64))  # fmt: skip
    sizes: list[int] = []
    flush = stage.flush

    def counted(sink: Any) -> None:
        sizes.append(stage.staged)
        flush(sink)

    stage.flush = counted  # type: ignore[method-assign]
    for i in range(0, len(rows), 10):
        stage.left = len(rows) - i - 10 if told else None
        stage.add(rows[i : i + 10], list(range(i + 2, i + 12)), lambda r: None)
    stage.flush(lambda r: None)
    conn.execute("COMMIT")
    conn.close()
    assert sum(sizes) == 3000
    assert len(table_of(db)) == 3000
    if told:
        assert sizes[-1] <= 20  # what was staged when the file ended
        assert sizes[-4:-1] == sorted(sizes[-4:-1], reverse=True)  # halving towards the end
    else:
        assert sizes[-1] > 200  # up to half of the rows flushed before


@pytest.mark.parametrize("n", [0, 1, 3, 4, 5, 8, 9, 13])
@pytest.mark.parametrize("width", [1, 3])
def test_statement_parts_hold_each_row_after_its_line_in_order(n: int, width: int) -> None:
    """Whole statements of ``per_insert`` rows, flat, then the rows left over, one each."""
    rows = [tuple(f"r{i}c{j}" for j in range(width)) for i in range(n)]
    lines = [10 + 3 * i for i in range(n)]
    flat, rest = statement_parts(rows, lines, 4)
    assert all(len(part) == 4 * (width + 1) for part in flat)
    assert len(rest) == n % 4
    values = [v for part in flat for v in part] + [v for row in rest for v in row]
    expected = [v for line, row in zip(lines, rows, strict=True) for v in (line, *row)]
    assert values == expected
