"""Integers beyond SQLite's 64 bits (sqlite_types.fit_integers): exactly the values SQLite
cannot bind become their text, found a column at a time, with no warning on the way. And the
column-wise conversions of numbers and dates give what the value-wise ones give."""

from __future__ import annotations

import sqlite3
import warnings
from decimal import Decimal
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from batchdrop.config import SchemaField
from batchdrop.tables.sqlite_types import (
    INT64,
    column_to_sql,
    fit_integers,
    integer_from_sql,
    number_to_sql,
    numbers_to_sql,
)

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


#: numbers at the edges of number_to_sql's three answers: whole numbers in and past 64 bits,
#: whole numbers a float holds but SQLite's integers do not (1E+19), a float's digits and past
#: them, a whole number's float that is not that number (1152921504606847000), -0, tiny and
#: huge exponents
EDGE_NUMBERS = [
    "0", "-0", "0.0", "5", "5.0", "5.00", "-7", "343.89", "0.1", "1e-7", "1E+3", "1E+18",
    "1E+19", "9223372036854775807", "9223372036854775808", "-9223372036854775808",
    "1152921504606847000", "12345678901234567890", "0.12345678901234567890",
    "3.141592653589793", "1.0000000000000000001", "1e400", "1e-400", "1E+999999999",
    "123456789.123456789",
]  # fmt: skip
numbers = st.one_of(
    st.none(),
    st.sampled_from(EDGE_NUMBERS).map(Decimal),
    st.decimals(allow_nan=False, allow_infinity=False),
    st.floats(allow_nan=False, allow_infinity=False).map(lambda f: Decimal(repr(f))),
    st.integers().map(Decimal),
)


@given(st.lists(numbers, max_size=40))
def test_a_column_of_numbers_converts_as_each_number_does(column: list[Decimal | None]) -> None:
    want = [number_to_sql(v) for v in column]
    got = numbers_to_sql(tuple(column))
    assert got == want
    assert list(map(type, got)) == list(map(type, want))  # 5 is not 5.0


def test_the_edge_numbers_take_every_way() -> None:
    """The column above meets all three answers, and the per-number fallback."""
    out = numbers_to_sql([Decimal(v) for v in EDGE_NUMBERS])
    assert {type(v) for v in out} == {int, float, bytes}
    assert out == [number_to_sql(Decimal(v)) for v in EDGE_NUMBERS]


@given(st.lists(st.one_of(st.none(), st.dates()), max_size=20))
def test_a_column_of_dates_is_their_iso_text(column: list[Any]) -> None:
    field = SchemaField(name="d", type="date")
    convert = column_to_sql(field)
    assert convert is not None
    assert convert(tuple(column)) == [None if d is None else d.isoformat() for d in column]
