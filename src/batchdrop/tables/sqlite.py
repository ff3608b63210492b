"""SQLite: the local table and its run ledger, in one database file.

The table is created from the schema, ``WITHOUT ROWID`` with the key as its primary key, plus a
``_batchdrop_run`` column naming the run that wrote each row (``_batchdrop_runs.seq``). The
database uses a rollback journal: a big load writes each page once (a write-ahead log would
write it twice), at the price of readers waiting while a load commits. Loading is in
sqlite_load.py, the ledger in sqlite_ledger.py.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from ..config import Config
from ..errors import ConfigError
from ..ports import Claim, Page
from .sqlite_db import RUN_COL, connect, q, translate
from .sqlite_ledger import SqliteLedger
from .sqlite_types import (
    SQL_TYPES,
    from_sql,
    integer_from_sql,
    integer_to_sql,
    number_from_sql,
    number_to_sql,
    to_sql,
)


class SqliteTable:
    single_pass = True
    row_check: Callable[[tuple[Any, ...]], tuple[str, str] | None] | None = None

    def __init__(self, path: str, name: str, config: Config):
        self.path = path
        self.name = name
        self.config = config
        self.key: tuple[str, ...] = config.table.key
        self.fields = list(config.schema_.fields)
        self.columns = [f.name for f in self.fields]
        self.conn = connect(path)
        self.ledger = SqliteLedger(self.conn, path, config.aws.claim_ttl_seconds)
        self._readers = [from_sql(f) for f in self.fields]
        self._writers = [to_sql(f) for f in self.fields]

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
        if conv is None and isinstance(value, int):
            return integer_to_sql(value)
        return conv(value) if conv else value

    def query(
        self, partition: Any, *, begins_with: str | None = None, after: Any = None, limit: int = 100
    ) -> Page:
        """``partition``: the partition key's value, a tuple of them for a composite one.
        A composite sort key orders by its columns; ``after`` is then a tuple, and
        ``begins_with`` is matched against their values joined as in a DynamoDB item."""
        table = self.config.table
        pks, sks = table.partition_columns, table.sort_columns
        values = partition if len(pks) > 1 else (partition,)
        sql = f"{self._select()} WHERE " + " AND ".join(f"{q(c)} = ?" for c in pks)
        params: list[Any] = [self._bind(c, v) for c, v in zip(pks, values, strict=True)]
        if sks:
            if begins_with:
                sql += f" AND substr({self._joined(sks)}, 1, ?) = ?"
                params += [len(begins_with), begins_with]
            if after is not None:
                if len(sks) > 1:
                    sql += f" AND ({', '.join(map(q, sks))}) > ({', '.join('?' * len(sks))})"
                    params += [self._position(c, v) for c, v in zip(sks, after, strict=True)]
                else:
                    sql += f" AND {q(sks[0])} > ?"
                    params.append(self._position(sks[0], after))
            sql += f" ORDER BY {', '.join(map(q, sks))}"
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
        nxt = None
        if more and sks:
            last = [self._cursor(c, rows[-1][self.columns.index(c)]) for c in sks]
            nxt = tuple(last) if len(last) > 1 else last[0]
        return Page([self._row(r) for r in rows], nxt)

    def _cursor(self, column: str, stored: Any) -> Any:
        """A sort key's stored value as a page position: a number as its decimal text, the
        form every table hands out (SQLite stores it as an integer, a REAL or a BLOB), and an
        integer past 64 bits (a BLOB of its text) as that integer."""
        kind = self.fields[self.columns.index(column)].type
        if kind == "number":
            return str(number_from_sql(stored))
        if kind == "integer":
            return integer_from_sql(stored)
        return stored

    def _position(self, column: str, after: Any) -> Any:
        """A page position as the stored value it continues after. Integers past 64 bits
        are BLOBs, which SQLite sorts after every number: the pages follow that same order."""
        kind = self.fields[self.columns.index(column)].type
        if kind == "number" and isinstance(after, str):
            return number_to_sql(Decimal(after))
        if kind == "integer" and isinstance(after, int):
            return integer_to_sql(after)
        return after

    def _joined(self, columns: Sequence[str]) -> str:
        """SQL for the text of a key's columns joined by the separator (one column: itself)."""
        if len(columns) == 1:
            return q(columns[0])
        sep = "'" + self.config.table.key_separator.replace("'", "''") + "'"
        parts = []
        for c in columns:
            kind = self.fields[self.columns.index(c)].type
            if kind == "boolean":
                parts.append(f"(CASE {q(c)} WHEN 1 THEN 'true' ELSE 'false' END)")
            else:
                parts.append(f"CAST({q(c)} AS TEXT)")
        return f" || {sep} || ".join(parts)

    def close(self) -> None:
        self.conn.close()
