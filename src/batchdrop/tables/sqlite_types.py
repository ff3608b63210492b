"""Schema types ↔ SQLite values and column types.

An integer column holds integers; one beyond SQLite's 64 bits (which a DynamoDB number holds)
goes in as its exact text in a BLOB, which INTEGER affinity leaves alone, and reads back as
the same integer. Rows are checked a column at a time (``fit_integers``), so the usual batch,
with no such value, costs one ``max`` per integer column.

A number column has NUMERIC affinity, so SQL sorts, compares and sums numbers as numbers. Each
value goes in as an integer or a REAL when either holds that very value (read back it prints
as the file wrote it, trailing zeros aside), else as its exact text in a BLOB: NUMERIC affinity
would round text that looks like a number to a REAL, and leaves a BLOB alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime
from decimal import Decimal
from functools import partial
from operator import eq, is_not, itemgetter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the writer process imports this module without the config
    from ..config import SchemaField

#: column types: SQL compares and aggregates numbers as numbers (see ``number_to_sql``); a
#: table made when numbers were TEXT keeps its columns and loads as before
SQL_TYPES = {
    "string": "TEXT",
    "integer": "INTEGER",
    "number": "NUMERIC",
    "boolean": "INTEGER",
    "date": "TEXT",
    "datetime": "TEXT",
}
INT64 = (-(2**63), 2**63 - 1)
INFINITIES = (float("inf"), float("-inf"))


def number_to_sql(v: Decimal | None) -> int | float | bytes | None:
    """A number as SQLite holds it in a NUMERIC column: an integer or a REAL when either
    holds this very value (read back, it prints as the file wrote it, but for trailing zeros),
    else its exact text as a BLOB, which affinity leaves alone (text that looks like a number
    would be rounded to a REAL)."""
    if v is None:
        return None
    if v.adjusted() < 19:
        i = int(v)
        if i == v and INT64[0] <= i <= INT64[1]:
            return i
    f = float(v)
    if f not in INFINITIES and Decimal(repr(f)) == v:
        return f
    return str(v).encode("ascii")


def number_from_sql(v: Any) -> Decimal | None:
    if v is None:
        return None
    if isinstance(v, float):
        return Decimal(repr(v))
    if isinstance(v, bytes):
        return Decimal(v.decode("ascii"))
    return Decimal(v)  # an int, or the text of a table made by a batchdrop before NUMERIC


def integer_to_sql(v: Any) -> Any:
    if v is None or isinstance(v, bool) or INT64[0] <= v <= INT64[1]:
        return v
    return str(v).encode("ascii")


def integer_from_sql(v: Any) -> Any:
    return int(v.decode("ascii")) if isinstance(v, bytes) else v


def fit_integers(rows: list[Any], at: Sequence[int]) -> list[Any]:
    """``rows`` with every integer SQLite cannot bind (at the columns ``at``) as its text."""
    for i in at:
        values = filter(None, map(itemgetter(i), rows))  # None (and 0) left out, in C
        if max(map(abs, values), default=0) > INT64[1]:
            break
    else:
        return rows
    fit = set(at)
    return [tuple(integer_to_sql(v) if j in fit else v for j, v in enumerate(row)) for row in rows]


def numbers_to_sql(column: Sequence[Decimal | None]) -> list[int | float | bytes | None]:
    """``number_to_sql`` of each value, a column at a time: a value that is not a whole number
    and that a float holds (the usual price, rate or measure) is decided by C calls alone;
    the others (whole numbers, and text past a float's digits) go through ``number_to_sql``."""
    # by identity: ``None in column`` would compare each Decimal with None, which asks
    # numbers.Rational (an ABC) every time
    present: Sequence[Decimal] = list(filter(partial(is_not, None), column))  # type: ignore[arg-type]
    if len(present) == len(column):
        present = column  # type: ignore[assignment]
    floats = list(map(float, present))
    # the test of number_to_sql: the float, written the shortest way, is the very number
    same = map(eq, map(Decimal, map(repr, floats)), present)
    out = [
        f if kept and not f.is_integer() else number_to_sql(v)
        for f, kept, v in zip(floats, same, present, strict=True)
    ]
    if present is column:
        return out
    converted = iter(out)
    return [None if v is None else next(converted) for v in column]


def _isoformats(method: Callable[[Any], str], column: Sequence[Any]) -> list[str | None]:
    if None in column:
        return [None if v is None else method(v) for v in column]
    return list(map(method, column))


def column_to_sql(field: SchemaField) -> Callable[[Sequence[Any]], Sequence[Any]] | None:
    """A column of engine values → SQLite values (None: they go in as they are)."""
    if field.type == "number":
        return numbers_to_sql
    if field.type == "date":
        return partial(_isoformats, date.isoformat)
    if field.type == "datetime":
        return partial(_isoformats, datetime.isoformat)
    return None


def to_sql(field: SchemaField) -> Callable[[Any], Any] | None:
    if field.type == "number":
        return number_to_sql
    if field.type in ("date", "datetime"):
        return lambda v: None if v is None else v.isoformat()
    return None


def from_sql(field: SchemaField) -> Callable[[Any], Any]:
    t = field.type
    if t == "number":
        return number_from_sql
    if t == "boolean":
        return lambda v: None if v is None else bool(v)
    if t == "integer":
        return integer_from_sql
    if t == "date":
        return lambda v: None if v is None else date.fromisoformat(v)
    if t == "datetime":
        return lambda v: None if v is None else datetime.fromisoformat(v)
    return lambda v: v
