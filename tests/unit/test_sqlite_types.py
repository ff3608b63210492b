"""Integers beyond SQLite's 64 bits (sqlite_types.fit_integers): exactly the values SQLite
cannot bind become their text, found a column at a time, with no warning on the way."""

from __future__ import annotations

import sqlite3
import warnings
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from batchdrop.tables.sqlite_types import INT64, fit_integers, integer_from_sql

cells = st.one_of(
    st.none(),
    st.integers(min_value=INT64[0], max_value=INT64[1]),
    st.integers(min_value=INT64[1] - 2, max_value=INT64[1] + 2),
    st.integers(min_value=INT64[0] - 2, max_value=INT64[0] + 2),
    st.integers(),
)


@given(st.lists(st.tuples(cells, st.text(max_size=3), cells), max_size=30))
def test_only_what_sqlite_cannot_bind_becomes_text(rows: list[tuple[Any, ...]]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # None.__ne__ in a filter warns on every value
        fit = fit_integers(rows, [0, 2])
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (a INTEGER, b TEXT, c INTEGER)")
    conn.executemany("INSERT INTO t VALUES (?, ?, ?)", fit)  # no OverflowError
    back = [
        (integer_from_sql(a), b, integer_from_sql(c))
        for a, b, c in conn.execute("SELECT a, b, c FROM t ORDER BY rowid")
    ]
    assert back == [tuple(r) for r in rows]
    for row, out in zip(rows, fit, strict=True):
        for v, w in zip(row, out, strict=True):
            fits = v is None or isinstance(v, str) or INT64[0] <= v <= INT64[1]
            assert (w == v) if fits else (w == str(v).encode())
