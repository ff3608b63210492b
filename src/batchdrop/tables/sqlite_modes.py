"""The write modes in SQLite: rows kept as the table holds them, and a snapshot's deletes.

``write: changed_only`` and ``only_if_newer`` keep some rows of a file out of the table: the
upsert's WHERE leaves a stored row alone when the file's row is the same (unchanged) or not
newer by the version column (stale). A kept row is not rewritten, so it does not carry this
run's ``_batchdrop_run``, and a change count no longer tells a repeated key from a kept row.
So every key the load meets goes into a temporary table (``seen``, by a temporary trigger that
fires for every row the upsert is given, written or not), and a row whose key is there already
repeats an earlier row of the file, whatever happened to that row. The same table tells a
snapshot which keys the file holds.

Versions: a row is written when its version sorts strictly after the stored one; an empty
version sorts before every other. A row whose version equals the stored one is not written:
unchanged when the whole row is the same, else stale. A new row with no version is written
(there is nothing to compare with) and never replaces a row that has one. Of one key's rows
in a file, each later one is a duplicate; with ``duplicates: last_wins`` it is still written
when it is newer (and different), so the table ends with the newest of them.

``mode: snapshot``: after the rows, the rows of the table that the file does not hold are
deleted: of the whole table, or with ``snapshot_scope: partition`` of the partitions the file
holds. The rows the table held before this load are counted too, for ``max_deletes``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .sqlite_db import RUN_COL, q

if TYPE_CHECKING:
    from ..config import Config
    from ..report import Receipt
    from .sqlite_stage import Stage

SEEN = "temp._batchdrop_seen"
TRIGGER = "_batchdrop_seen_rows"


@dataclass(frozen=True)
class Modes:
    """What a load does besides writing every row (plain tuples: it travels to a writer
    process). ``snapshot``: None, "table" or "partition"; ``partition``: its columns."""

    only_if_newer: str | None = None
    changed_only: bool = False
    snapshot: str | None = None
    partition: tuple[str, ...] = ()

    @property
    def keeping(self) -> bool:
        """Whether the load may leave some of the file's rows out of the table."""
        return self.changed_only or self.only_if_newer is not None

    def as_tuple(self) -> tuple[str | None, bool, str | None, list[str]]:
        return (self.only_if_newer, self.changed_only, self.snapshot, list(self.partition))

    @classmethod
    def of(cls, value: Sequence[object] | None) -> Modes:
        if value is None:
            return cls()
        newer, changed, snapshot, partition = value
        return cls(newer, bool(changed), snapshot, tuple(partition))  # type: ignore[arg-type]


def seen_table(conn: sqlite3.Connection, table: str, key: Sequence[str]) -> None:
    """The temporary table of the keys the load met (``n``: how many rows of each), filled by
    a temporary trigger on the table: an upsert's rows pass through it before their conflict
    is settled, so a row met and left as the table holds it is counted too."""
    declared = {r[1]: r[2] for r in conn.execute(f"PRAGMA main.table_info({q(table)})")}
    ks = [f"k{i}" for i in range(len(key))]
    cols = ", ".join(f"{k} {declared.get(c, '')}" for k, c in zip(ks, key, strict=True))
    conn.execute(f"DROP TRIGGER IF EXISTS temp.{TRIGGER}")
    conn.execute(f"DROP TABLE IF EXISTS {SEEN}")
    conn.execute(
        f"CREATE TABLE {SEEN} ({cols}, n INTEGER, PRIMARY KEY ({', '.join(ks)})) WITHOUT ROWID"
    )
    new = ", ".join(f"NEW.{q(c)}" for c in key)
    conn.execute(
        f"CREATE TEMP TRIGGER {TRIGGER} BEFORE INSERT ON main.{q(table)} "
        f"BEGIN INSERT INTO {SEEN.removeprefix('temp.')} VALUES ({new}, 1) "
        f"ON CONFLICT ({', '.join(ks)}) DO UPDATE SET n = n + 1; END"
    )


def drop_seen(conn: sqlite3.Connection) -> None:
    """The trigger must not outlive the load: the connection may load other files."""
    conn.execute(f"DROP TRIGGER IF EXISTS temp.{TRIGGER}")
    conn.execute(f"DROP TABLE IF EXISTS {SEEN}")


def _seen_match(key: Sequence[str], row: str) -> str:
    return " AND ".join(f"k{i} = {row}.{q(c)}" for i, c in enumerate(key))


def keeping_where(
    table: str, columns: Sequence[str], key: Sequence[str], only_if_newer: str | None
) -> str:
    """The upsert's WHERE for a load that keeps rows. The functions count what it finds:
    ``batchdrop_repeat(key…)`` a repeated key (true: the policy lets a later row overwrite),
    ``batchdrop_unchanged()`` and ``batchdrop_stale()`` a kept row (they return 0)."""
    t = q(table)
    rest = [c for c in columns if c not in key]
    same = (
        f"({', '.join(f'{t}.{q(c)}' for c in rest)}) IS "
        f"({', '.join(f'excluded.{q(c)}' for c in rest)})"
        if rest
        else "1"
    )
    if only_if_newer is None:
        newer = "1"
    else:
        v = q(only_if_newer)
        newer = f"(excluded.{v} IS NOT NULL AND ({t}.{v} IS NULL OR excluded.{v} > {t}.{v}))"
    repeated = f"(SELECT n FROM {SEEN} WHERE {_seen_match(key, 'excluded')}) > 1"
    note = f"batchdrop_repeat({', '.join(f'excluded.{q(k)}' for k in key)})"
    return (
        f"CASE WHEN {repeated} THEN (CASE WHEN {note} THEN {newer} AND NOT {same} ELSE 0 END) "
        f"WHEN {same} THEN batchdrop_unchanged() "
        f"WHEN NOT {newer} THEN batchdrop_stale() ELSE 1 END"
    )


class Snapshot:
    """A snapshot's deletes, in the load's transaction: ``begin`` before the first row,
    ``delete`` after the last. ``seen``: the load kept a table of the keys it met."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        table: str,
        key: Sequence[str],
        partition: Sequence[str] | None,
        seq: int,
        seen: bool,
    ):
        self.conn, self.t, self.seq = conn, q(table), seq
        self.key, self.partition, self.seen = list(key), partition, seen
        self.before = 0

    def begin(self) -> None:
        (self.before,) = self.conn.execute(f"SELECT count(*) FROM {self.t}").fetchone()

    def delete(self) -> tuple[int, int, int]:
        """Delete the rows of the scope that this load did not meet: (rows deleted, rows the
        scope held before this load, partitions in the scope; 0 for the whole table)."""
        conn, t, run = self.conn, self.t, f"{self.t}.{q(RUN_COL)}"
        absent = f"{run} IS NOT {self.seq}"  # rows this load did not write…
        if self.seen:  # …nor meet and keep
            absent += f" AND NOT EXISTS (SELECT 1 FROM {SEEN} WHERE {_seen_match(self.key, t)})"
        (now,) = conn.execute(f"SELECT count(*) FROM {t}").fetchone()
        added = now - self.before
        if not self.partition:
            deleted = conn.execute(f"DELETE FROM {t} WHERE {absent}").rowcount
            return deleted, self.before, 0
        parts = ", ".join(map(q, self.partition))
        if self.seen:
            ks = ", ".join(f"k{self.key.index(c)}" for c in self.partition)
            present = f"SELECT DISTINCT {ks} FROM {SEEN}"
        else:
            present = f"SELECT DISTINCT {parts} FROM {t} WHERE {run} IS {self.seq}"
        conn.execute("DROP TABLE IF EXISTS temp._batchdrop_parts")
        conn.execute(f"CREATE TABLE temp._batchdrop_parts AS {present}")
        try:
            (partitions,) = conn.execute("SELECT count(*) FROM temp._batchdrop_parts").fetchone()
            within = f"({parts}) IN (SELECT * FROM temp._batchdrop_parts)"
            (held,) = conn.execute(f"SELECT count(*) FROM {t} WHERE {within}").fetchone()
            deleted = conn.execute(f"DELETE FROM {t} WHERE {within} AND {absent}").rowcount
        finally:
            conn.execute("DROP TABLE temp._batchdrop_parts")
        return deleted, held - added, partitions


def open_snapshot(
    conn: sqlite3.Connection, name: str, key: Sequence[str], seq: int, modes: Modes
) -> Snapshot | None:
    """The load's snapshot, counting the rows the table holds before the first row."""
    if modes.snapshot is None:
        return None
    snapshot = Snapshot(conn, name, key, modes.partition or None, seq, modes.keeping)
    snapshot.begin()
    return snapshot


#: the counts a load settles as it commits: rows stale, unchanged, deleted, and the rows and
#: partitions the snapshot's scope held before the load
Settled = tuple[int, int, int, int, int]


def settle(stage: Stage | None, snapshot: Snapshot | None) -> Settled:
    stale, unchanged = (stage.stale, stage.unchanged) if stage is not None else (0, 0)
    deleted, held, partitions = snapshot.delete() if snapshot is not None else (0, 0, 0)
    return stale, unchanged, deleted, held, partitions


def to_receipt(
    config: Config, name: str, settled: Sequence[int], receipt: Receipt
) -> dict[str, int]:
    """Check ``max_deletes``, then put the settled counts in the receipt; what it said before,
    to put back if the commit fails."""
    # imported here: the writer process imports this module, and must not pay for the config
    from ..outcome import check_deletes

    stale, unchanged, deleted, held, partitions = settled
    check_deletes(config, deleted, held, partitions, name)
    before = {
        "rows_loaded": receipt.rows_loaded,
        "rows_stale": receipt.rows_stale,
        "rows_unchanged": receipt.rows_unchanged,
        "rows_deleted": receipt.rows_deleted,
    }
    receipt.rows_loaded -= stale
    receipt.rows_stale, receipt.rows_unchanged, receipt.rows_deleted = stale, unchanged, deleted
    return before
