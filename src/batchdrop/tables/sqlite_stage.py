"""Rows on their way into a SQLite table: staged, then written in key order.

Inserting rows in file order puts each one at a random place of the primary key's B-tree: once
the table outgrows the page cache, nearly every row reads and writes a page of its own. So rows
are first appended to a temporary table (in SQLite's temporary database, a file that SQLite
deletes itself; no key, so appending is cheap), many rows per statement, and every so often the
staged rows go into the table in one ``INSERT … SELECT … ORDER BY`` the key: SQLite sorts them
and walks the B-tree once, page after page. Staged rows are flushed when they reach a share of
the rows already written, so the walks of a growing table add up to a few times its size, and
the last flush, which the load waits for, stays a fraction of the file.

The upsert never overwrites a row this run wrote (``_batchdrop_run``): a key written before in
this file meets its earlier row, and a SQL function notes the key (it is called for those rows
only; ``last_wins`` lets the later row overwrite, the other policies keep the first). Rows are
applied in (key, file order), so a flush that noted nothing had no repeats, and one that noted
some reads back the lines of the repeated rows: of the rows of a noted key in this flush, the
last as many as were noted (the first of them was written, unless an earlier flush had the key).

A load that keeps rows as the table holds them (``write: changed_only``, ``only_if_newer``,
see sqlite_modes.py) finds its repeats by the keys it met instead, and counts the rows it kept.

A statement journal (a copy of each page a statement changes that the database had before
it, kept to undo a statement that fails halfway) would copy most of the table at every flush.
``INSERT OR IGNORE`` spares the flushes one (the only constraint it could ignore is NOT NULL on
the key, which the staging table checks as rows arrive), but a SQL function anywhere in a
statement makes SQLite keep one (on SQLite 3.40, a flush of 500,000 rows into as many made
29,612 writes with the function and 17,452 without). So, until a file shows a repeat, flushes
go without it: they leave out each row that meets a row of this run, and count the rows they
wrote. The staged rows stay staged meanwhile. The first flush that wrote fewer rows than it
had staged had a repeat; as no flush before it had one, its repeats are the staged rows whose
key an earlier staged row has, and the table holds each repeated key's first row
(``last_wins`` then writes the last one over it). From then on, flushes note repeats with the
function, and the staging table is emptied after each.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .sqlite_db import RUN_COL, q
from .sqlite_modes import Modes, keeping_where, seen_table

STAGE = "temp._batchdrop_stage"
#: the schema a packed batch of rows is read from (an in-memory database)
PACKED = "_batchdrop_packed"
NOTED = "temp._batchdrop_noted"
#: rows per INSERT statement: one statement binds all their values, one step through SQLite
ROWS_PER_INSERT = 200
#: bound parameters per statement, at most (SQLite's limit is 32766)
MAX_PARAMS = 32_000

Repeats = list[tuple[int, Any]]
#: takes the repeats a flush finds, a part at a time (the first 4096 or fewer), in line order
Sink = Callable[[Repeats], None]
PART = 4096


def rows_per_insert(ncols: int) -> int:
    """Rows per staging INSERT for rows of ``ncols`` values (and their line)."""
    return max(1, min(ROWS_PER_INSERT, MAX_PARAMS // (ncols + 1)))


def statement_parts(
    rows: Sequence[Sequence[Any]], lines: Sequence[int], per_insert: int
) -> tuple[list[list[Any]], list[tuple[Any, ...]]]:
    """``rows``, each after its line, as the parameters of staging INSERTs of ``per_insert``
    rows each (their values in one flat list per statement), and the rows left over, for
    one-row INSERTs. (All in C: each column goes into its places of the flat list in one
    slice assignment.)"""
    if not rows:
        return [], []
    n, width = len(rows), len(rows[0]) + 1
    whole = n - n % per_insert
    flat: list[Any] = [None] * (whole * width)
    flat[0::width] = lines[:whole]
    for i, column in enumerate(zip(*rows[:whole], strict=True), start=1):
        flat[i::width] = column
    step = per_insert * width
    rest = list(zip(lines[whole:], *zip(*rows[whole:], strict=True), strict=True))
    return [flat[i : i + step] for i in range(0, len(flat), step)], rest


class Packer:
    """Rows packed for the writer process, one of two ways. Bound here: as a small SQLite
    database in memory, its bytes (``sqlite3.Connection.serialize``), which the writer reads
    with ``Stage.add_packed`` in C, making no Python object per value. Or as they are, rows
    and lines, which the writer unpacks, cuts into statements and binds itself
    (``Stage.add``). Binding costs this process about what it saves the writer, so the
    load binds only while the writer is behind (see ``WriterLoad``). Where Python's sqlite3
    cannot serialize (SQLite before 3.36 may lack it), rows always go as they are."""

    def __init__(self, ncols: int):
        self.ncols, self.per_insert = ncols, rows_per_insert(ncols)
        self.conn = sqlite3.connect(":memory:", isolation_level=None)
        self.can_bind = hasattr(self.conn, "serialize")
        one = "(" + ", ".join("?" * (ncols + 1)) + ")"
        self.insert_one = f"INSERT INTO rows VALUES {one}"
        self.insert_many = "INSERT INTO rows VALUES " + ", ".join([one] * self.per_insert)

    def pack(
        self, rows: Sequence[Sequence[Any]], lines: Sequence[int], bind: bool
    ) -> bytes | tuple[Any, ...]:
        """``rows`` (read at ``lines``) as one message's payload: bytes for
        ``Stage.add_packed`` when ``bind`` (and this Python can), else the arguments of
        ``Stage.add`` as they are (the writer cuts them into statements)."""
        if not (bind and self.can_bind):
            return rows, lines
        flat, rest = statement_parts(rows, lines, self.per_insert)
        conn = self.conn
        conn.execute("DROP TABLE IF EXISTS rows")
        conn.execute(f"CREATE TABLE rows (line, {', '.join(f'c{i}' for i in range(self.ncols))})")
        conn.execute("BEGIN")
        if flat:
            conn.executemany(self.insert_many, flat)
        if rest:
            conn.executemany(self.insert_one, rest)
        conn.execute("COMMIT")
        return conn.serialize()

    def close(self) -> None:
        self.conn.close()


@dataclass(frozen=True)
class Flushes:
    """When staged rows go into the table: at ``min_rows`` staged rows, or at ``share`` of
    the rows already flushed, whichever is more; but, once the rows still to come in the file
    are fewer than that, at as many as are still to come (and never under ``min_rows``): the
    flushes then halve as the file ends, and the last one, which the load waits for after
    the file's last row, stays small. ``cache_kib``: the temporary database's page cache
    (the staged rows a flush sorts without reading them back from its file)."""

    min_rows: int = 50_000
    share: float = 0.25
    cache_kib: int = 4_000


class Stage:
    """One load's rows: ``add`` them in file order, ``flush`` them into the table."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        table: str,
        columns: Sequence[str],
        key: Sequence[str],
        seq: int,
        last_wins: bool,
        booleans: Sequence[bool],
        flushes: Flushes,
        modes: Modes | None = None,
    ):
        self.conn, self.flushes, self.last_wins = conn, flushes, last_wins
        modes = modes or Modes()
        self.key, self.booleans = list(key), list(booleans)  # booleans: per key column
        self.ncols = len(columns)
        declared = {r[1]: r[2] for r in conn.execute(f"PRAGMA main.table_info({q(table)})")}
        # the table's own column types: staged values take the affinity they will have there,
        # so the staging table sorts and compares them as the table's key does
        cols = ", ".join(
            f"{q(c)} {declared.get(c, '')}" + (" NOT NULL" if c in key else "") for c in columns
        )
        # the staged rows' order, their line: an alias of the rowid, under a name no column
        # has (kept in the staging table, not in memory: a stage may hold millions of rows)
        order = "_batchdrop_order"
        while order.lower() in {c.lower() for c in columns}:
            order += "_"
        self.order = q(order)
        self._ks = [f"k{i}" for i in range(len(key))]  # the key's columns in NOTED
        conn.execute(f"PRAGMA temp.cache_size = -{flushes.cache_kib}")
        conn.execute(f"DROP TABLE IF EXISTS {STAGE}")
        conn.execute(f"CREATE TABLE {STAGE} ({self.order} INTEGER PRIMARY KEY, {cols})")
        names, keys = ", ".join(map(q, columns)), ", ".join(map(q, key))
        one = "(" + ", ".join("?" * (self.ncols + 1)) + ")"
        self.per_insert = rows_per_insert(self.ncols)
        lined = f"{self.order}, {names}"
        self.insert_one = f"INSERT INTO {STAGE} ({lined}) VALUES {one}"
        packed = ", ".join(f"c{i}" for i in range(self.ncols))
        self.insert_packed = (
            f"INSERT INTO {STAGE} ({lined}) SELECT line, {packed} FROM {PACKED}.rows"
        )
        self.insert_many = f"INSERT INTO {STAGE} ({lined}) VALUES " + ", ".join(
            [one] * self.per_insert
        )
        sets = ", ".join(f"{q(c)} = excluded.{q(c)}" for c in [*columns, RUN_COL] if c not in key)
        note = f"batchdrop_repeat({', '.join(f'excluded.{q(k)}' for k in key)})"
        # CASE, not OR: the function is called for rows that meet a row of this run only
        this_run = f"{q(table)}.{q(RUN_COL)} IS NOT {seq}"
        where = f"CASE WHEN {this_run} THEN 1 ELSE {note} END"
        #: rows left as the table held them: the same (unchanged), or not newer (stale)
        self.unchanged = self.stale = 0
        if modes.keeping:
            seen_table(conn, table, key)
            where = keeping_where(table, columns, key, modes.only_if_newer)
            conn.create_function("batchdrop_unchanged", 0, self._unchanged)
            conn.create_function("batchdrop_stale", 0, self._stale)
        into = f"INSERT OR IGNORE INTO main.{q(table)} ({names}, {q(RUN_COL)}) "
        upsert = (
            f"{into}SELECT {names}, {seq} FROM {STAGE} WHERE {self.order} > ? "
            f"ORDER BY {keys}, {self.order} ON CONFLICT ({keys}) DO UPDATE SET {sets} WHERE "
        )
        #: the staged rows after a line into the table, each key's repeats noted
        self.apply = upsert + where
        #: the same with no SQL function, until a flush meets a row of this run (see the
        #: module's docstring); None once one has, and for a load that keeps rows
        self.apply_plain: str | None = None if modes.keeping else upsert + this_run
        #: the staged rows whose lines ``NOTED`` holds, over the table's rows of their keys
        self.overwrite = (
            f"{into}SELECT {names}, {seq} FROM {STAGE} WHERE {self.order} IN "
            f"(SELECT max(r) FROM {NOTED} GROUP BY {', '.join(self._ks)}) "
            f"ON CONFLICT ({keys}) DO UPDATE SET {sets}"
        )
        conn.create_function("batchdrop_repeat", len(key), self._note)
        self.noted: Counter[tuple[Any, ...]] = Counter()
        self.staged = self.flushed = 0
        #: the last line flushed: the staged rows up to it are in the table
        self.done = 0
        #: how many rows the file still holds after those added, as far as the caller knows
        self.left: int | None = None

    def _note(self, *key: Any) -> int:
        self.noted[key] += 1
        return 1 if self.last_wins else 0

    def _unchanged(self) -> int:
        self.unchanged += 1
        return 0

    def _stale(self) -> int:
        self.stale += 1
        return 0

    def add(self, rows: Sequence[Sequence[Any]], lines: Sequence[int], sink: Sink) -> None:
        """Stage ``rows`` (read at ``lines``, which only grow); a flush this causes gives
        ``sink`` its repeats."""
        self.add_parts(*statement_parts(rows, lines, self.per_insert), sink)

    def add_parts(self, flat: list[list[Any]], rest: Sequence[Sequence[Any]], sink: Sink) -> None:
        """``add``, of rows already cut by ``statement_parts``."""
        if flat:
            self.conn.executemany(self.insert_many, flat)
        if rest:
            self.conn.executemany(self.insert_one, rest)
        self._added(len(flat) * self.per_insert + len(rest), sink)

    def add_packed(self, packed: bytes, sink: Sink) -> None:
        """``add``, of rows packed by ``Packer``: the database is read as it is, in C; the
        connection must have ``PACKED`` attached."""
        self.conn.deserialize(packed, name=PACKED)
        self._added(self.conn.execute(self.insert_packed).rowcount, sink)

    def _added(self, count: int, sink: Sink) -> None:
        self.staged += count
        due = self.flushes.share * self.flushed
        if self.left is not None:
            due = min(due, self.left)
        if self.staged >= max(self.flushes.min_rows, due):
            self.flush(sink)

    def flush(self, sink: Sink) -> None:
        """Every staged row into the table; ``sink`` gets the (line, key) of the rows whose
        key this run wrote before, in line order."""
        if not self.staged:
            return
        conn = self.conn
        if self.apply_plain is not None:
            before = conn.total_changes
            conn.execute(self.apply_plain, (self.done,))
            if conn.total_changes - before < self.staged:  # a row met a row of this run
                self._first_repeats(sink)
                self.apply_plain = None
        else:
            self.noted.clear()
            conn.execute(self.apply, (self.done,))
            if self.noted:
                self._repeats(sink)
            self.noted.clear()
        if self.apply_plain is None:
            conn.execute(f"DELETE FROM {STAGE}")
        else:  # kept while they may be needed to place the first repeat (_first_repeats)
            (self.done,) = conn.execute(f"SELECT max({self.order}) FROM {STAGE}").fetchone()
        self.flushed += self.staged
        self.staged = 0

    def _first_repeats(self, sink: Sink) -> None:
        """The first flush with a repeat, written by ``apply_plain``: each row that met a row
        of this run was left out. No flush before it left a row out, and their rows are all
        still staged, so the repeats are the staged rows whose key an earlier staged row has.
        The table holds each key's first row, as the policies that keep the first row want;
        ``last_wins`` then writes each repeated key's last row over it."""
        conn, ks = self.conn, self._ks
        keys = ", ".join(map(q, self.key))
        named = ", ".join(f"{q(c)} AS {k}" for c, k in zip(self.key, ks, strict=True))
        conn.execute(f"DROP TABLE IF EXISTS {NOTED}")
        conn.execute(
            f"CREATE TABLE {NOTED} AS SELECT r, {', '.join(ks)} FROM (SELECT {self.order} AS r,"
            f" {named}, row_number() OVER (PARTITION BY {keys} ORDER BY {self.order}) AS n"
            f" FROM {STAGE}) WHERE n > 1"
        )
        self._send(f"SELECT r, {', '.join(ks)} FROM {NOTED} ORDER BY r", sink)
        if self.last_wins:
            conn.execute(self.overwrite)
        conn.execute(f"DROP TABLE {NOTED}")

    def _repeats(self, sink: Sink) -> None:
        """The staged rows of each noted key, the last as many as were noted, by line."""
        conn, key, ks = self.conn, self.key, self._ks
        conn.execute(f"DROP TABLE IF EXISTS {NOTED}")
        conn.execute(f"CREATE TABLE {NOTED} ({', '.join(ks)}, n INTEGER)")
        conn.executemany(
            f"INSERT INTO {NOTED} VALUES ({', '.join('?' * (len(key) + 1))})",
            ((*k, n) for k, n in self.noted.items()),
        )
        match = " AND ".join(f"s.{q(c)} = d.{k}" for c, k in zip(key, ks, strict=True))
        sql = (
            f"SELECT r, {', '.join(ks)} FROM (SELECT s.{self.order} AS r, "
            + ", ".join(f"s.{q(c)} AS {k}" for c, k in zip(key, ks, strict=True))
            + f", d.n AS n, row_number() OVER (PARTITION BY {', '.join(f's.{q(c)}' for c in key)}"
            f" ORDER BY s.{self.order} DESC) AS back FROM {STAGE} AS s JOIN {NOTED} AS d"
            f" ON {match})"
            " WHERE back <= n ORDER BY r"
        )
        self._send(sql, sink)
        conn.execute(f"DROP TABLE {NOTED}")

    def _send(self, sql: str, sink: Sink) -> None:
        """The (line, key …) rows ``sql`` finds, to ``sink`` a part at a time, each key a
        tuple of the values it was read as (booleans were staged as 0 and 1)."""
        booleans = self.booleans

        def key_of(values: Sequence[Any]) -> tuple[Any, ...]:
            return tuple(bool(v) if b else v for b, v in zip(booleans, values, strict=True))

        found = self.conn.execute(sql)
        while part := found.fetchmany(PART):
            sink([(line, key_of(k)) for line, *k in part])
