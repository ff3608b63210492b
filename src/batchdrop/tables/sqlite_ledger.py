"""The run ledger in SQLite: one row per file run, in the table's database (``_batchdrop_runs``).

A claim is a row written in a ``BEGIN IMMEDIATE`` transaction; a run's process is live while its
pid answers on this host and its lease has not lapsed. The shards of a sharded run that finished
each phase are rows of ``_batchdrop_shards``, keyed by run id, phase and shard index.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import socket
import sqlite3
import time
from collections.abc import Iterator, Sequence
from typing import Any

from ..errors import TransientError
from ..ports import RUN_FIELDS, Claim, FileRef, iso_time, new_run_id
from ..report import LOADED, LOADED_WITH_REJECTS, Receipt
from .sqlite_db import RUNS, connect, translate

SHARDS = "_batchdrop_shards"
#: which load's state tells what a feed's table holds (feed_state.py), for the write modes
#: that compare a load with the last one on a DynamoDB table
FEEDS = "_batchdrop_feeds"
#: what a phase's name may be (the DynamoDB ledger makes an attribute name of it)
PHASE = re.compile(r"[a-z+]{1,40}")


def _live(pid: int | None, host: str | None, lease_until: float | None, now: float) -> bool:
    """Whether the process that holds a run may still be at work on it: it is alive (on this
    host; elsewhere we cannot tell) and its lease has not lapsed. An earlier run of this very
    process is not: a process does one file at a time."""
    if pid is None or (pid == os.getpid() and host == socket.gethostname()):
        return False
    return _alive(pid, host or "") and (lease_until or 0) > now


def _alive(pid: int, host: str) -> bool:
    if host != socket.gethostname():
        return True  # cannot tell from here: rely on the lease
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    """A process that died and was not reaped yet (its parent died too, in a container whose
    first process reaps nothing) still answers ``kill 0``: Linux says it is a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (OSError, IndexError):
        return False


LEDGER_DDL = f"""
CREATE TABLE IF NOT EXISTS {RUNS} (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL UNIQUE,
    file TEXT NOT NULL,
    source TEXT,
    version TEXT NOT NULL,
    size INTEGER,
    state TEXT NOT NULL,
    status TEXT,
    pid INTEGER,
    host TEXT,
    lease_until REAL,
    started_at TEXT,
    finished_at TEXT,
    rows_read INTEGER, rows_loaded INTEGER, rows_rejected INTEGER, rows_duplicate INTEGER,
    reason TEXT,
    moved_to TEXT,
    rejected_rows_report TEXT,
    receipt TEXT,
    attempt INTEGER,
    outbox REAL,
    token TEXT,
    progress TEXT
);
CREATE INDEX IF NOT EXISTS {RUNS}_version ON {RUNS} (file, version);
CREATE TABLE IF NOT EXISTS {SHARDS} (
    run_id TEXT NOT NULL,
    phase TEXT NOT NULL,
    idx INTEGER NOT NULL,
    PRIMARY KEY (run_id, phase, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS {FEEDS} (
    slug TEXT PRIMARY KEY,
    current TEXT NOT NULL,
    by TEXT NOT NULL,
    updated_at REAL
) WITHOUT ROWID;
"""
RECORD_COLS = (*RUN_FIELDS, "receipt", "progress")
#: columns added since the first ledgers were written: added to an older database on open
ADDED_COLUMNS = {"attempt": "INTEGER", "outbox": "REAL", "token": "TEXT", "progress": "TEXT"}
#: what a run's record says once it is running again (going on from its checkpoint): what it
#: recorded when it stopped (paused, failed) is no longer so
REOPENED = (
    "state = 'running', status = NULL, finished_at = NULL, reason = NULL, moved_to = NULL, "
    "rejected_rows_report = NULL, receipt = NULL, rows_read = NULL, rows_loaded = NULL, "
    "rows_rejected = NULL, rows_duplicate = NULL, outbox = NULL"
)
#: how long a run's own process has to send its notification before another process may
OUTBOX_LEASE_S = 60.0


class SqliteLedger:
    """The run ledger: one row per file run, in the table's database. A run that paused, or
    failed or crashed after a checkpoint, keeps its row: the next claim goes on with it (same
    run id, its ``progress``), under a new ``token`` that tells the claims apart."""

    def __init__(self, conn: sqlite3.Connection, path: str, claim_ttl: float = 900.0):
        self.conn = conn
        self.path = path
        self.claim_ttl = claim_ttl
        try:
            conn.executescript(LEDGER_DDL)
            have = {r[1] for r in conn.execute(f"PRAGMA table_info({RUNS})")}
            for column, kind in ADDED_COLUMNS.items():
                if column not in have:
                    with contextlib.suppress(sqlite3.OperationalError):  # another process did
                        conn.execute(f"ALTER TABLE {RUNS} ADD COLUMN {column} {kind}")
        except sqlite3.OperationalError as e:
            raise translate(e, path) from None

    @classmethod
    def open(cls, path: str) -> SqliteLedger:
        return cls(connect(path), path)

    def claim(self, ref: FileRef, *, force: bool = False) -> Claim:
        conn = self.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                claim = self._claim(ref, force)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.OperationalError as e:
            raise translate(e, self.path) from None
        return claim

    def _claim(self, ref: FileRef, force: bool) -> Claim:
        rows = self.conn.execute(
            f"SELECT seq, run_id, state, status, pid, host, lease_until, receipt, attempt, "
            f"progress FROM {RUNS} WHERE file = ? AND version = ? ORDER BY seq DESC",
            (ref.name, ref.version),
        ).fetchall()
        now = time.time()
        attempt = 1
        for i, row in enumerate(rows):
            seq, run_id, state, status, pid, host, lease_until, receipt, tried, progress = row
            live = _live(pid, host, lease_until, now)
            if state == "committed":  # rows in; the file not yet moved
                if live:
                    return Claim("busy", run_id, ref)  # its own run is moving it now
                return Claim(
                    "resume",
                    run_id,
                    ref,
                    json.loads(receipt),
                    {"seq": seq},
                    progress=json.loads(progress) if progress else None,
                )
            if state == "running":
                if live:
                    return Claim("busy", run_id, ref)
                if i == 0 and progress:  # crashed after a checkpoint: one more attempt of it
                    return self._go_on(ref, seq, run_id, (tried or 1) + 1, progress, now)
                self.conn.execute(
                    f"UPDATE {RUNS} SET state = 'failed', status = 'failed', finished_at = ?, "
                    "reason = 'interrupted: the run stopped before it finished' WHERE seq = ?",
                    (iso_time(), seq),
                )
                state = "failed"
            if i == 0 and state == "paused":  # it did not fail: the same attempt goes on
                return self._go_on(ref, seq, run_id, tried or 1, progress, now)
            if i == 0 and state == "failed":  # the last run failed: this is one more attempt
                if progress:  # a set-aside run's was cleared: it starts at the top
                    return self._go_on(ref, seq, run_id, (tried or 1) + 1, progress, now)
                set_aside = bool(receipt and json.loads(receipt).get("set_aside"))
                attempt = 1 if set_aside else (tried or 1) + 1
            if state == "done" and status in (LOADED, LOADED_WITH_REJECTS) and not force:
                return Claim(
                    "done", run_id, ref, json.loads(receipt) if receipt else None, {"seq": seq}
                )
        run_id, token = new_run_id(), secrets.token_hex(8)
        cur = self.conn.execute(
            f"INSERT INTO {RUNS} (run_id, file, source, version, size, state, pid, host, "
            "lease_until, started_at, attempt, token) "
            "VALUES (?, ?, ?, ?, ?, 'running', ?, ?, ?, ?, ?, ?)",
            (
                run_id,
                ref.name,
                ref.url,
                ref.version,
                ref.size,
                os.getpid(),
                socket.gethostname(),
                now + self.claim_ttl,
                iso_time(now),
                attempt,
                token,
            ),
        )
        extra = {"seq": cur.lastrowid, "token": token}
        return Claim("new", run_id, ref, None, extra, attempt=attempt)

    def _go_on(
        self, ref: FileRef, seq: int, run_id: str, attempt: int, progress: str | None, now: float
    ) -> Claim:
        """Claim the run in row ``seq`` again, to go on from its checkpoint (``progress``)."""
        token = secrets.token_hex(8)
        self.conn.execute(
            f"UPDATE {RUNS} SET {REOPENED}, pid = ?, host = ?, lease_until = ?, attempt = ?, "
            "token = ? WHERE seq = ?",
            (os.getpid(), socket.gethostname(), now + self.claim_ttl, attempt, token, seq),
        )
        return Claim(
            "new",
            run_id,
            ref,
            None,
            {"seq": seq, "token": token},
            attempt=attempt,
            progress=json.loads(progress) if progress else None,
        )

    def record(self, claim: Claim, state: str, receipt: Receipt) -> None:
        sql, params = self.statement(claim, state, receipt)
        feed = claim.extra.get("feed_state") if state == "committed" else None
        if feed:
            with self._transaction():
                self._update(claim, sql, params)
                self._name_feed_state(claim, *feed)
            return
        if not (state == "done" or receipt.set_aside):
            self._update(claim, sql, params)
            return
        # a run that ended never goes on under its run id: its shard counts go with it
        with self._transaction():
            self._update(claim, sql, params)
            self.conn.execute(f"DELETE FROM {SHARDS} WHERE run_id = ?", (claim.run_id,))

    def feed_state(self, slug: str) -> tuple[str, str] | None:
        """(run id, bucketing) of the load whose state tells what feed ``slug``'s table holds;
        None before its first load."""
        try:
            row = self.conn.execute(
                f"SELECT current, by FROM {FEEDS} WHERE slug = ?", (slug,)
            ).fetchone()
        except sqlite3.OperationalError as e:
            raise translate(e, self.path) from None
        return (str(row[0]), str(row[1])) if row else None

    def _name_feed_state(
        self, claim: Claim, slug: str, base: str | None, run_id: str, by: str
    ) -> None:
        """In the commit's transaction: this load's state is the feed's, if the state it was
        compared with still is (of two files of one feed loaded at once, the second to commit
        fails, to be loaded again against the first)."""
        now = self.feed_state(slug)
        if now is not None and now[0] not in (base, run_id):
            raise TransientError(
                f"another file of feed {slug} was loaded while {claim.ref.url} was: "
                "it is loaded again, compared with that one"
            )
        self.conn.execute(
            f"INSERT OR REPLACE INTO {FEEDS} (slug, current, by, updated_at) VALUES (?, ?, ?, ?)",
            (slug, run_id, by, time.time()),
        )

    def shard_done(self, claim: Claim, phase: str, index: int) -> int:
        """The ownership check, the lease, the index and the count in one ``BEGIN IMMEDIATE``
        transaction: of several processes finishing shards at once, each counts in turn."""
        if not PHASE.fullmatch(phase):
            raise ValueError(f"{phase!r} is not a phase name (lowercase letters and '+')")
        # the lease only: the run stays the claimant's (the process whose workers these are),
        # so a run whose claimant died is free for the next one even if a worker lingers
        sql = (
            f"UPDATE {RUNS} SET lease_until = ? "
            "WHERE run_id = ? AND state = 'running' AND token IS ?"
        )
        params = (time.time() + self.claim_ttl, claim.run_id, claim.extra.get("token"))
        with self._transaction():
            self._update(claim, sql, params, always=True)
            self.conn.execute(
                f"INSERT OR IGNORE INTO {SHARDS} (run_id, phase, idx) VALUES (?, ?, ?)",
                (claim.run_id, phase, int(index)),
            )
            return self._count(claim.run_id, phase)

    def shards_done(self, run_id: str, phase: str) -> int:
        try:
            return self._count(run_id, phase)
        except sqlite3.OperationalError as e:
            raise translate(e, self.path) from None

    def _count(self, run_id: str, phase: str) -> int:
        row = self.conn.execute(
            f"SELECT count(*) FROM {SHARDS} WHERE run_id = ? AND phase = ?", (run_id, phase)
        ).fetchone()
        return int(row[0])

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """A ``BEGIN IMMEDIATE`` transaction, or the one the connection is in (a load's rows
        and its record commit together)."""
        if self.conn.in_transaction:
            yield
            return
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
        except sqlite3.OperationalError as e:
            raise translate(e, self.path) from None

    def checkpoint(self, claim: Claim, progress: dict[str, Any]) -> None:
        now = time.time()
        sql = (
            f"UPDATE {RUNS} SET progress = ?, lease_until = ?, pid = ?, host = ?, attempt = 1 "
            "WHERE run_id = ? AND state = 'running' AND token IS ?"
        )
        data = json.dumps(progress, ensure_ascii=False, separators=(",", ":"))
        params = (
            data,
            now + self.claim_ttl,
            os.getpid(),
            socket.gethostname(),
            claim.run_id,
            claim.extra.get("token"),
        )
        self._update(claim, sql, params, always=True)
        claim.attempt = 1

    def pause(self, claim: Claim, receipt: Receipt) -> None:
        """No pid and no lease: the row is not live, and the next claim goes on with it."""
        sql = (
            f"UPDATE {RUNS} SET state = 'paused', {RECEIPT_COLS}, outbox = NULL, pid = NULL, "
            "lease_until = NULL WHERE run_id = ? AND state = 'running' AND token IS ?"
        )
        params = (*_receipt_params(receipt), claim.run_id, claim.extra.get("token"))
        self._update(claim, sql, params, always=True)

    def _update(
        self, claim: Claim, sql: str, params: tuple[Any, ...], *, always: bool = False
    ) -> None:
        """Run an UPDATE of the claim's run; raise TransientError when it matched no row and
        the claim has a token (``always``: whether or not it has one): the run was claimed by
        another process since."""
        try:
            cur = self.conn.execute(sql, params)
        except sqlite3.OperationalError as e:
            raise translate(e, self.path) from None
        if cur.rowcount == 0 and (always or claim.extra.get("token")):
            raise TransientError(
                f"the claim on {claim.ref.url} was taken over by another run "
                f"(this one held it past its lease of {self.claim_ttl:.0f} s)"
            )

    def sent(self, run_id: str) -> None:
        try:
            self.conn.execute(f"UPDATE {RUNS} SET outbox = NULL WHERE run_id = ?", (run_id,))
        except sqlite3.OperationalError as e:
            raise translate(e, self.path) from None

    def outbox(self) -> list[dict[str, Any]]:
        return self._orphaned("outbox IS NOT NULL", lease="outbox")

    def statement(self, claim: Claim, state: str, receipt: Receipt) -> tuple[str, tuple[Any, ...]]:
        """The UPDATE that records a run's state (a writer process runs it in its transaction).
        A claim with a token records only while its run is still its own."""
        sql = (
            f"UPDATE {RUNS} SET state = ?, {RECEIPT_COLS}, outbox = ?, pid = ?, host = ?, "
            "progress = CASE WHEN ? THEN NULL ELSE progress END "
            "WHERE run_id = ? AND (? IS NULL OR token = ?)"
        )
        # a finished run's notification is in the outbox until ``sent``; this process owns it
        outbox = time.time() + OUTBOX_LEASE_S if state in ("done", "failed") else None
        # a failed run keeps its checkpoint, for the next attempt to go on from; a run that
        # ended starts the next claim of this version at the top
        ended = state == "done" or receipt.set_aside
        token = claim.extra.get("token")
        params = (
            state,
            *_receipt_params(receipt),
            outbox,
            os.getpid(),
            socket.gethostname(),
            ended,
            claim.run_id,
            token,
            token,
        )
        return sql, params

    def runs(
        self, *, status: str | None = None, limit: int = 50, before: str | None = None
    ) -> list[dict[str, Any]]:
        sql = f"SELECT {', '.join(RECORD_COLS)} FROM {RUNS} WHERE 1=1"
        params: list[Any] = []
        if status:
            sql += " AND status = ?"
            params.append(status)
        if before:
            sql += f" AND seq < (SELECT seq FROM {RUNS} WHERE run_id = ?)"
            params.append(before)
        sql += " ORDER BY seq DESC LIMIT ?"
        params.append(limit)
        return [self._record(r) for r in self.conn.execute(sql, params)]

    def unfinished(self) -> list[dict[str, Any]]:
        """Runs whose rows were committed but whose file was never recorded as moved, and
        whose process is gone: it died between the commit (or the move) and the record."""
        return self._orphaned("state = 'committed'", lease="lease_until")

    def _orphaned(self, where: str, *, lease: str) -> list[dict[str, Any]]:
        """Run records matching ``where`` whose process is gone (dead, or its ``lease``
        column lapsed), oldest first, each with the ``claim_extra`` that records it."""
        now = time.time()
        rows = self.conn.execute(
            f"SELECT {', '.join(RECORD_COLS)}, pid, host, {lease}, seq FROM {RUNS} "
            f"WHERE {where} ORDER BY seq"
        ).fetchall()
        n = len(RECORD_COLS)
        out = []
        for r in rows:
            if not _live(r[n], r[n + 1], r[n + 2], now):
                rec = self._record(r[:n])
                rec["claim_extra"] = {"seq": r[n + 3]}
                out.append(rec)
        return out

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        row = self.conn.execute(
            f"SELECT {', '.join(RECORD_COLS)} FROM {RUNS} WHERE run_id = ?", (run_id,)
        ).fetchone()
        return self._record(row) if row else None

    @staticmethod
    def _record(row: Sequence[Any]) -> dict[str, Any]:
        rec = dict(zip(RECORD_COLS, row, strict=True))
        rec["receipt"] = json.loads(rec["receipt"]) if rec["receipt"] else None
        rec["progress"] = json.loads(rec["progress"]) if rec["progress"] else None
        return rec


#: the columns a receipt sets, for ``_receipt_params``
RECEIPT_COLS = (
    "status = ?, finished_at = ?, rows_read = ?, rows_loaded = ?, rows_rejected = ?, "
    "rows_duplicate = ?, reason = ?, moved_to = ?, rejected_rows_report = ?, receipt = ?"
)


def _receipt_params(r: Receipt) -> tuple[Any, ...]:
    return (
        r.status,
        r.finished_at or iso_time(),
        r.rows_read,
        r.rows_loaded,
        r.rows_rejected,
        r.rows_duplicate,
        r.reason,
        r.moved_to,
        r.rejected_rows_report,
        r.to_json(),
    )
