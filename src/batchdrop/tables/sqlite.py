"""SQLite: the local table and its run ledger, in one database file.

The table is created from the schema, ``WITHOUT ROWID`` with the key as its primary key, plus a
``_batchdrop_run`` column naming the run that wrote each row (``_batchdrop_runs.seq``). The
database uses a rollback journal: a big load writes each page once (a write-ahead log would
write it twice), at the price of readers waiting while a load commits. Loading is in
sqlite_load.py.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from ..config import Config, SchemaField
from ..errors import ConfigError, TransientError
from ..ports import RUN_FIELDS, Claim, FileRef, Page, new_run_id
from ..report import LOADED, LOADED_WITH_REJECTS, Receipt

RUNS = "_batchdrop_runs"
RUN_COL = "_batchdrop_run"
SQL_TYPES = {
    "string": "TEXT",
    "integer": "INTEGER",
    "number": "TEXT",
    "boolean": "INTEGER",
    "date": "TEXT",
    "datetime": "TEXT",
}
BUSY_TIMEOUT_S = 60.0


def q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def connect(path: str) -> sqlite3.Connection:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = sqlite3.connect(
            path, isolation_level=None, timeout=BUSY_TIMEOUT_S, check_same_thread=False
        )
        conn.execute("PRAGMA journal_mode=DELETE")
        conn.execute("PRAGMA synchronous=NORMAL")
    except sqlite3.OperationalError as e:
        raise translate(e, path) from None
    except sqlite3.DatabaseError as e:
        raise ConfigError(f"{path} is not a SQLite database ({e})") from None
    return conn


def translate(e: sqlite3.Error, path: str) -> Exception:
    text = str(e)
    if "locked" in text or "busy" in text:
        return TransientError(
            f"{path}: the database is locked by another batchdrop process "
            f"(waited {BUSY_TIMEOUT_S:.0f} s); try again"
        )
    return ConfigError(f"{path}: {text}")


def _to_sql(field: SchemaField) -> Callable[[Any], Any] | None:
    if field.type in ("number", "date", "datetime"):
        return lambda v: (
            None if v is None else (str(v) if isinstance(v, Decimal) else v.isoformat())
        )
    return None


def _from_sql(field: SchemaField) -> Callable[[Any], Any]:
    t = field.type
    if t == "number":
        return lambda v: None if v is None else Decimal(v)
    if t == "boolean":
        return lambda v: None if v is None else bool(v)
    if t == "date":
        return lambda v: None if v is None else date.fromisoformat(v)
    if t == "datetime":
        return lambda v: None if v is None else datetime.fromisoformat(v)
    return lambda v: v


class SqliteTable:
    single_pass = True
    row_check: Callable[[tuple[Any, ...]], tuple[str, str] | None] | None = None

    def __init__(self, path: str, name: str, config: Config):
        self.path = path
        self.name = name
        self.config = config
        self.key = config.table.key
        self.fields = list(config.schema_.fields)
        self.columns = [f.name for f in self.fields]
        self.conn = connect(path)
        self.ledger = SqliteLedger(self.conn, path, config.aws.claim_ttl_seconds)
        self._readers = [_from_sql(f) for f in self.fields]
        self._writers = [_to_sql(f) for f in self.fields]

    @classmethod
    def from_config(cls, config: Config) -> SqliteTable:
        return cls(config.table.url.removeprefix("sqlite:///"), config.table.table_name, config)

    def prepare(self) -> None:
        cols = [
            f"{q(f.name)} {SQL_TYPES[f.type]}" + (" NOT NULL" if f.name in self.key else "")
            for f in self.fields
        ]
        ddl = (
            f"CREATE TABLE IF NOT EXISTS {q(self.name)} ({', '.join(cols)}, "
            f"{q(RUN_COL)} INTEGER, PRIMARY KEY ({', '.join(map(q, self.key))})) WITHOUT ROWID"
        )
        try:
            self.conn.execute(ddl)
            have = [r[1] for r in self.conn.execute(f"PRAGMA table_info({q(self.name)})")]
            pk = [
                r[1]
                for r in sorted(
                    (r for r in self.conn.execute(f"PRAGMA table_info({q(self.name)})") if r[5]),
                    key=lambda r: r[5],
                )
            ]
        except sqlite3.Error as e:
            raise translate(e, self.path) from None
        missing = [c for c in [*self.columns, RUN_COL] if c not in have]
        if missing or pk != list(self.key):
            raise ConfigError(
                f"table {self.name!r} in {self.path} exists with columns {have} and key {pk}, "
                f"which do not fit the schema (columns {self.columns}, key {list(self.key)}); "
                "use another table name (table.name) or database"
            )

    def begin(self, claim: Claim, ledger: Any) -> Any:
        from .sqlite_load import begin_load

        return begin_load(self, claim, ledger)

    def _row(self, values: Sequence[Any]) -> dict[str, Any]:
        return {c: conv(v) for c, conv, v in zip(self.columns, self._readers, values, strict=True)}

    def _select(self) -> str:
        return f"SELECT {', '.join(map(q, self.columns))} FROM {q(self.name)}"

    def get(self, key: Sequence[Any]) -> dict[str, Any] | None:
        where = " AND ".join(f"{q(k)} = ?" for k in self.key)
        params = [self._bind(k, v) for k, v in zip(self.key, key, strict=True)]
        try:
            row = self.conn.execute(f"{self._select()} WHERE {where}", params).fetchone()
        except sqlite3.OperationalError as e:
            if "no such table" in str(e):
                return None
            raise translate(e, self.path) from None
        return self._row(row) if row else None

    def _bind(self, column: str, value: Any) -> Any:
        conv = self._writers[self.columns.index(column)]
        return conv(value) if conv else value

    def query(
        self, partition: Any, *, begins_with: str | None = None, after: Any = None, limit: int = 100
    ) -> Page:
        pk = self.key[0]
        sk = self.key[1] if len(self.key) > 1 else None
        sql = f"{self._select()} WHERE {q(pk)} = ?"
        params: list[Any] = [self._bind(pk, partition)]
        if sk is not None:
            if begins_with:
                sql += f" AND substr({q(sk)}, 1, ?) = ?"
                params += [len(begins_with), begins_with]
            if after is not None:
                sql += f" AND {q(sk)} > ?"
                params.append(after)
            sql += f" ORDER BY {q(sk)}"
        sql += " LIMIT ?"
        params.append(limit + 1)
        try:
            rows = self.conn.execute(sql, params).fetchall()
        except sqlite3.OperationalError as e:
            if "no such table" in str(e):
                return Page([])
            raise translate(e, self.path) from None
        more = len(rows) > limit
        rows = rows[:limit]
        nxt = rows[-1][self.columns.index(sk)] if (more and sk is not None) else None
        return Page([self._row(r) for r in rows], nxt)

    def close(self) -> None:
        self.conn.close()


def _alive(pid: int, host: str) -> bool:
    if host != socket.gethostname():
        return True  # cannot tell from here: rely on the lease
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
    receipt TEXT
);
CREATE INDEX IF NOT EXISTS {RUNS}_version ON {RUNS} (file, version);
"""
RECORD_COLS = (*RUN_FIELDS, "receipt")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class SqliteLedger:
    """The run ledger: one row per file run, in the table's database."""

    def __init__(self, conn: sqlite3.Connection, path: str, claim_ttl: float = 900.0):
        self.conn = conn
        self.path = path
        self.claim_ttl = claim_ttl
        try:
            conn.executescript(LEDGER_DDL)
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
            f"SELECT seq, run_id, state, status, pid, host, lease_until, receipt FROM {RUNS} "
            "WHERE file = ? AND version = ? ORDER BY seq DESC",
            (ref.name, ref.version),
        ).fetchall()
        now = time.time()
        for seq, run_id, state, status, pid, host, lease_until, receipt in rows:
            mine = pid == os.getpid() and host == socket.gethostname()  # an earlier run of ours
            live = not mine and _alive(pid, host) and (lease_until or 0) > now
            if state == "committed":  # rows in; the file not yet moved
                if live:
                    return Claim("busy", run_id, ref)  # its own run is moving it now
                return Claim("resume", run_id, ref, json.loads(receipt), {"seq": seq})
            if state == "running":
                if live:
                    return Claim("busy", run_id, ref)
                self.conn.execute(
                    f"UPDATE {RUNS} SET state = 'failed', status = 'failed', finished_at = ?, "
                    "reason = 'interrupted: the run stopped before it finished' WHERE seq = ?",
                    (_now(), seq),
                )
            if state == "done" and status in (LOADED, LOADED_WITH_REJECTS) and not force:
                return Claim(
                    "done", run_id, ref, json.loads(receipt) if receipt else None, {"seq": seq}
                )
        run_id = new_run_id()
        cur = self.conn.execute(
            f"INSERT INTO {RUNS} (run_id, file, source, version, size, state, pid, host, "
            "lease_until, started_at) VALUES (?, ?, ?, ?, ?, 'running', ?, ?, ?, ?)",
            (
                run_id,
                ref.name,
                ref.url,
                ref.version,
                ref.size,
                os.getpid(),
                socket.gethostname(),
                now + self.claim_ttl,
                _now(),
            ),
        )
        return Claim("new", run_id, ref, None, {"seq": cur.lastrowid})

    def record(self, claim: Claim, state: str, receipt: Receipt) -> None:
        sql, params = self.statement(claim, state, receipt)
        try:
            self.conn.execute(sql, params)
        except sqlite3.OperationalError as e:
            raise translate(e, self.path) from None

    def statement(self, claim: Claim, state: str, receipt: Receipt) -> tuple[str, tuple[Any, ...]]:
        """The UPDATE that records a run's state (a writer process runs it in its transaction)."""
        r = receipt
        sql = (
            f"UPDATE {RUNS} SET state = ?, status = ?, finished_at = ?, rows_read = ?, "
            "rows_loaded = ?, rows_rejected = ?, rows_duplicate = ?, reason = ?, moved_to = ?, "
            "rejected_rows_report = ?, receipt = ? WHERE run_id = ?"
        )
        params = (
            state,
            r.status,
            r.finished_at or _now(),
            r.rows_read,
            r.rows_loaded,
            r.rows_rejected,
            r.rows_duplicate,
            r.reason,
            r.moved_to,
            r.rejected_rows_report,
            r.to_json(),
            claim.run_id,
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

    def unfinished(self, older_than_s: float = 60.0) -> list[dict[str, Any]]:
        """Runs whose rows were committed but whose file was never recorded as moved."""
        cutoff = datetime.fromtimestamp(time.time() - older_than_s, UTC).strftime(
            "%Y-%m-%dT%H:%M:%S.%fZ"
        )  # the receipts' own format, so the strings compare
        rows = self.conn.execute(
            f"SELECT {', '.join(RECORD_COLS)} FROM {RUNS} WHERE state = 'committed' "
            "AND finished_at < ? ORDER BY seq",
            (cutoff,),
        ).fetchall()
        return [self._record(r) for r in rows]

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        row = self.conn.execute(
            f"SELECT {', '.join(RECORD_COLS)} FROM {RUNS} WHERE run_id = ?", (run_id,)
        ).fetchone()
        return self._record(row) if row else None

    @staticmethod
    def _record(row: Sequence[Any]) -> dict[str, Any]:
        rec = dict(zip(RECORD_COLS, row, strict=True))
        rec["receipt"] = json.loads(rec["receipt"]) if rec["receipt"] else None
        return rec
