"""Loading one file into SQLite: in this process, or, for a big file, in a writer process.

Either way the file's rows go in one transaction that also records the run as committed, so a
crash at any point leaves all of the file or none of it.

A big file is parsed and validated here while a second process does SQLite's share of the
work, on the machine's second core: the rows travel through a pipe in batches, and the writer
answers only at the end. If this process dies, the writer sees its input close and rolls back.
The writer stages the rows and writes them into the table in key order (sqlite_stage.py), so a
file in random key order does not pay a random page of the table per row. Those flushes stop
the writer for up to a second; it reads its pipe on a thread meanwhile, holding up to
INBOX_BYTES of batches, so this process goes on parsing (sqlite_pipe.py). Binding the values of
a batch costs about as much as SQLite's share of staging it, and whichever process has time
does it: this process binds a batch (and sends it as a small database) while the writer is
more than BEHIND batches behind, and sends it as plain values otherwise.

Duplicate keys are found by the upsert itself: it never overwrites a row written by the same run
(``_batchdrop_run``). In this process, a batch whose change count falls short of its length
holds a key seen before in this file; only such a batch is replayed row by row to apply the
policy. The writer process keeps the repeats it finds in a temporary file past a few thousand
(a file of millions of repeats must not fill its memory) and streams them back at the end.

A load that may keep rows as the table holds them (``write: changed_only``, ``only_if_newer``)
stages its rows in this process too, and a snapshot deletes the rows the file does not hold
before the run is recorded, in the same transaction (sqlite_modes.py). What only the table
knows (rows stale, unchanged, deleted) goes into the receipt as the load commits; a snapshot
that would delete more than ``max_deletes`` raises a DataError instead, and nothing is written.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import astuple
from typing import TYPE_CHECKING, Any, BinaryIO

from ..errors import ConfigError, TransientError
from .sqlite_modes import Modes, Snapshot, drop_seen, open_snapshot, settle, to_receipt
from .sqlite_pipe import Inbox, Repeats, RepeatSpool, Taken, get, put, took
from .sqlite_stage import PACKED, STAGE, Flushes, Packer, Stage
from .sqlite_types import column_to_sql, fit_integers

if TYPE_CHECKING:
    from ..ports import Claim
    from ..report import Receipt
    from .sqlite import SqliteTable

#: files at least this big are written by a writer process
WRITER_MIN_BYTES = 16 << 20
#: batches the writer process holds while it flushes, at most (see sqlite_pipe.Inbox)
INBOX_BYTES = 12 << 20
#: batches the writer may be behind before this process binds rows for it (see Packer)
BEHIND = 32
#: when the writer process writes its staged rows into the table (see sqlite_stage.Flushes)
FLUSHES = Flushes()


def write_batch(
    conn: sqlite3.Connection,
    upsert: str,
    overwrite: str,
    last_wins: bool,
    rows: Sequence[Sequence[Any]],
    lines: Sequence[int],
    key_at: Sequence[int],
) -> Repeats:
    """Upsert ``rows``; (line, key) of those whose key this run wrote before."""
    before = conn.total_changes
    conn.execute("SAVEPOINT batch")
    conn.executemany(upsert, rows)
    if conn.total_changes - before == len(rows):
        conn.execute("RELEASE batch")
        return []
    conn.execute("ROLLBACK TO batch")
    # Repeats within the batch are settled here first (the policy's row of each key goes on),
    # so a batch of one key repeated thousands of times costs one statement, not thousands.
    keys = [tuple(row[i] for i in key_at) for row in rows]
    winner: dict[tuple[Any, ...], int] = {}
    for i, key in enumerate(keys):
        if last_wins or key not in winner:
            winner[key] = i
    repeated = [(lines[i], key) for i, key in enumerate(keys) if winner[key] != i]
    keep = sorted(winner.values())
    before = conn.total_changes
    conn.executemany(upsert, [rows[i] for i in keep])
    if conn.total_changes - before < len(keep):  # some key was written by an earlier batch
        conn.execute("ROLLBACK TO batch")
        for i in keep:
            if conn.execute(upsert, rows[i]).rowcount == 0:
                repeated.append((lines[i], keys[i]))
                if last_wins:
                    conn.execute(overwrite, rows[i])
    conn.execute("RELEASE batch")
    repeated.sort()
    return repeated


class Statements:
    """The SQL of one load, and how to turn engine values into SQLite values (``params``)."""

    def __init__(self, table: SqliteTable, seq: int):
        from .sqlite_db import RUN_COL, q

        cols = [*table.columns, RUN_COL]
        set_cols = [c for c in table.columns if c not in table.key] + [RUN_COL]
        sets = ", ".join(f"{q(c)} = excluded.{q(c)}" for c in set_cols)
        values = ", ".join(["?"] * len(table.columns) + [str(seq)])  # seq: our own integer
        base = f"INSERT INTO {q(table.name)} ({', '.join(map(q, cols))}) VALUES ({values})"
        conflict = f" ON CONFLICT ({', '.join(map(q, table.key))}) DO UPDATE SET {sets}"
        self.upsert = base + conflict + f" WHERE {q(table.name)}.{q(RUN_COL)} IS NOT {seq}"
        self.overwrite = base + conflict
        self.last_wins = table.config.duplicates == "last_wins"
        self.key_at = [table.columns.index(k) for k in table.key]
        writers = [(i, w) for i, f in enumerate(table.fields) if (w := column_to_sql(f))]
        self.convert: Callable[[list[tuple[Any, ...]]], list[Any]] | None = None
        if writers:

            def convert(rows: list[tuple[Any, ...]]) -> list[Any]:
                # a column at a time: only the columns that change are converted
                if not rows:
                    return rows
                columns: list[Sequence[Any]] = list(zip(*rows, strict=True))
                for i, w in writers:
                    columns[i] = w(columns[i])
                return list(zip(*columns, strict=True))

            self.convert = convert
        self.integers = [i for i, f in enumerate(table.fields) if f.type == "integer"]
        config = table.config
        snapshot = config.mode == "snapshot"
        self.modes = Modes(
            config.only_if_newer,
            config.write == "changed_only",
            config.snapshot_scope if snapshot else None,
            config.table.partition_columns if config.snapshot_scope == "partition" else (),
        )

    def params(self, rows: list[tuple[Any, ...]]) -> list[Any]:
        params = self.convert(rows) if self.convert else rows
        return fit_integers(params, self.integers) if self.integers else params


def begin_load(table: SqliteTable, claim: Claim, ledger: Any) -> SqliteLoad | WriterLoad:
    if claim.ref.size >= WRITER_MIN_BYTES:
        return WriterLoad(table, claim, ledger)
    return SqliteLoad(table, claim, ledger)


class SqliteLoad:
    """One file's rows, in one transaction on the table's own connection."""

    def __init__(self, table: SqliteTable, claim: Claim, ledger: Any):
        from .sqlite_db import translate

        self.table, self.claim, self.ledger = table, claim, ledger
        self.conn = table.conn
        seq = int(claim.extra["seq"])
        self.sql = sql = Statements(table, seq)
        self._translate = translate
        #: a load that keeps rows stages them, as the writer process does (sqlite_stage.py)
        self.stage: Stage | None = None
        self.snapshot: Snapshot | None = None
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            if sql.modes.keeping:
                booleans = [table.fields[i].type == "boolean" for i in sql.key_at]
                self.stage = Stage(
                    self.conn, table.name, table.columns, table.key, seq, sql.last_wins,
                    booleans, FLUSHES, sql.modes,
                )  # fmt: skip
            self.snapshot = open_snapshot(self.conn, table.name, table.key, seq, sql.modes)
        except sqlite3.OperationalError as e:
            self.abort()
            raise translate(e, table.path) from None

    def write(self, rows: list[tuple[Any, ...]], lines: list[int]) -> Repeats:
        sql = self.sql
        params = sql.params(rows)
        try:
            if self.stage is not None:
                repeats: Repeats = []
                self.stage.add(params, lines, repeats.extend)
                return repeats
            return write_batch(
                self.conn, sql.upsert, sql.overwrite, sql.last_wins, params, lines, sql.key_at
            )
        except sqlite3.OperationalError as e:
            raise self._translate(e, self.table.path) from None

    def finish(self) -> Repeats:
        repeats: Repeats = []
        if self.stage is not None:
            try:
                self.stage.flush(repeats.extend)
            except sqlite3.OperationalError as e:
                raise self._translate(e, self.table.path) from None
        return repeats

    def commit(self, receipt: Receipt) -> None:
        try:
            settled = settle(self.stage, self.snapshot)
        except sqlite3.OperationalError as e:
            raise self._translate(e, self.table.path) from None
        before = to_receipt(self.table.config, self.claim.ref.name, settled, receipt)
        try:
            if self.stage is not None:
                drop_seen(self.conn)
                self.conn.execute(f"DROP TABLE IF EXISTS {STAGE}")
            self.ledger.record(self.claim, "committed", receipt)
            self.conn.execute("COMMIT")
        except BaseException as e:
            receipt.restore(before)
            if isinstance(e, sqlite3.OperationalError):
                raise self._translate(e, self.table.path) from None
            raise

    def abort(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")


class WriterLoad:
    """The same transaction, run by a writer process (``python -m batchdrop.tables.sqlite_load``)
    fed batches on its stdin; it answers on its stdout."""

    def __init__(self, table: SqliteTable, claim: Claim, ledger: Any):
        self.table, self.claim, self.ledger = table, claim, ledger
        self.sql = Statements(table, int(claim.extra["seq"]))
        self.packer = Packer(len(table.columns))
        self.sent, self.taken = 0, Taken()
        compressed = claim.ref.name.lower().endswith(".gz")
        self.bytes_left = 0.0 if compressed else float(claim.ref.size)
        self.bytes_per_row = 0.0
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "batchdrop.tables.sqlite_load", str(self.taken.writer_fd)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                pass_fds=(self.taken.writer_fd,),
            )
        except BaseException:
            self.packer.close()
            self.taken.close()
            raise
        finally:
            self.taken.handed_over()
        booleans = [table.fields[table.columns.index(k)].type == "boolean" for k in table.key]
        flushes = astuple(FLUSHES)
        begin = (table.name, table.columns, list(table.key), int(claim.extra["seq"]))
        modes = self.sql.modes.as_tuple()
        self._ask("begin", (table.path, *begin, self.sql.last_wins, booleans, flushes, modes))

    def _send(self, kind: str, payload: Any = None) -> None:
        try:
            put(self.process.stdin, (kind, payload))  # type: ignore[arg-type]
        except (BrokenPipeError, OSError):
            self._stopped()

    def _stopped(self) -> None:
        code = self.process.wait(timeout=30)
        raise TransientError(
            f"{self.table.path}: the SQLite writer process stopped (exit code {code})"
        )

    def _ask(self, kind: str, payload: Any = None) -> Any:
        self._send(kind, payload)
        try:
            status, answer = get(self.process.stdout)  # type: ignore[arg-type]
        except (BrokenPipeError, EOFError, OSError):
            self._stopped()
        if status == "error":
            kind_, message = answer
            raise (TransientError if kind_ == "busy" else ConfigError)(
                f"{self.table.path}: {message}"
            )
        return answer

    def write(self, rows: list[tuple[Any, ...]], lines: list[int]) -> Repeats:
        params = self.sql.params(rows)
        behind = self.sent - self.taken.taken() > BEHIND
        self._send("rows", (self.packer.pack(params, lines, bind=behind), self._left(rows)))
        self.sent += 1
        return []  # repeats come back from finish()

    def _left(self, rows: list[tuple[Any, ...]]) -> int | None:
        """About how many rows the file holds after ``rows``: its size over the bytes its
        first rows' values take. None once the guess has run out, or for a compressed file
        (its size says little of its rows): the writer's flushes then go on growing."""
        if not self.bytes_left or not rows:
            return None
        if not self.bytes_per_row:
            sample = rows[:1000]
            values = sum(len(str(v)) for row in sample for v in row)
            self.bytes_per_row = values / len(sample) + len(sample[0])  # commas, line end
        self.bytes_left -= self.bytes_per_row * len(rows)
        return int(self.bytes_left / self.bytes_per_row) if self.bytes_left > 0 else None

    def finish(self) -> Iterator[tuple[int, Any]]:
        """Every row is written once this returns; the repeats follow, a message at a time,
        as the iterator is read (it must be read to its end before ``commit``)."""
        first = self._ask("finish")
        return self._repeats(first)

    def _repeats(self, part: Repeats | None) -> Iterator[tuple[int, Any]]:
        while part is not None:
            yield from part
            part = self._ask("more")

    def commit(self, receipt: Receipt) -> None:
        settled = self._ask("settle")
        before = to_receipt(self.table.config, self.claim.ref.name, settled, receipt)
        try:
            self._ask("commit", self.ledger.statement(self.claim, "committed", receipt))
        except BaseException:
            receipt.restore(before)
            raise
        self._close()

    def abort(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(TransientError, ConfigError):
                self._ask("abort")
        self._close()

    def _close(self) -> None:
        self.packer.close()
        self.taken.close()
        for stream in (self.process.stdin, self.process.stdout):
            with contextlib.suppress(OSError):
                stream.close()  # type: ignore[union-attr]
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


def serve(stream: BinaryIO, outbox: BinaryIO, taken: int | None = None) -> None:
    """The writer process: one transaction, fed batches until told to commit or abort. An inbox
    that closes first (the parent died) rolls the transaction back."""
    conn: sqlite3.Connection | None = None
    stage: Stage | None = None
    snapshot: Snapshot | None = None
    inbox = Inbox(stream, INBOX_BYTES)
    repeated = RepeatSpool()
    failed: tuple[str, str] | None = None
    # Millions of rows arrive as short-lived tuples and strings, and no cycle is ever made:
    # the collector's passes over them would be pure cost.
    gc.disable()

    def answer(status: str, value: Any = None) -> None:
        put(outbox, (status, value))

    try:
        while True:
            kind, payload = inbox.get()
            try:
                if failed is not None and kind != "abort":
                    if kind != "rows":
                        answer("error", failed)
                    continue
                if kind == "begin":
                    path, name, columns, key, seq, last_wins, booleans, given, m = payload
                    modes, flushes = Modes.of(m), Flushes(*given)
                    conn = sqlite3.connect(path, isolation_level=None, timeout=60.0)
                    conn.execute("PRAGMA synchronous=NORMAL")
                    conn.execute(f"ATTACH ':memory:' AS {PACKED}")
                    conn.execute("BEGIN IMMEDIATE")
                    stage = Stage(
                        conn, name, columns, key, seq, last_wins, booleans, flushes,
                        modes,
                    )  # fmt: skip
                    snapshot = open_snapshot(conn, name, key, seq, modes)
                    answer("ok")
                elif kind == "rows":
                    assert stage is not None
                    rows, stage.left = payload
                    if isinstance(rows, bytes):
                        stage.add_packed(rows, repeated.add)
                    else:
                        plain, lines = rows
                        stage.add(plain, lines, repeated.add)
                    took(taken)
                elif kind == "finish":
                    assert stage is not None
                    stage.flush(repeated.add)
                    answer("ok", repeated.next_part())  # None: no more
                elif kind == "more":
                    answer("ok", repeated.next_part())
                elif kind == "settle":
                    answer("ok", settle(stage, snapshot))
                elif kind == "commit":
                    sql, params = payload
                    conn.execute(sql, params)  # type: ignore[union-attr]
                    conn.execute("COMMIT")  # type: ignore[union-attr]
                    answer("ok")
                    return
                elif kind == "abort":
                    if conn is not None and conn.in_transaction:
                        conn.execute("ROLLBACK")
                    answer("ok")
                    return
            except sqlite3.Error as e:
                text = str(e)
                failed = ("busy" if "locked" in text or "busy" in text else "error", text)
                if kind != "rows":
                    answer("error", failed)
    except EOFError:
        pass  # the parent is gone: nothing is committed
    finally:
        repeated.close()
        if conn is not None:
            if conn.in_transaction:
                conn.rollback()
            conn.close()


if __name__ == "__main__":
    taken = int(sys.argv[1]) if len(sys.argv) > 1 else None
    if taken is not None:
        os.set_blocking(taken, False)
    serve(open(0, "rb", buffering=0), open(1, "wb", buffering=0), taken)  # noqa: SIM115
