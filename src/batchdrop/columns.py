"""Table Schema fields → one converter of whole chunks of rows, a column at a time.

The row converter (schema.py) runs one compiled Python function per row. Most chunks of a file
are entirely valid, and for them the same checks can be made over each column at once with
builtins that loop in C: ``all(column)`` for a required value, ``all(map(pattern.fullmatch,
column))``, ``max(map(len, column))``, ``list(map(int, column))``, and the rows put back
together with ``zip``. Checks a field does not have cost nothing.

Typed columns are checked as one text: the column's values joined, each between newlines, so
that ``"\\nNA\\n" in text`` finds a missing value and one regular expression over the whole text
accepts a column of integers, without a Python call per value. That text only ever *accepts*:
when it cannot (a value too long for it, a newline inside a value), the values are checked one
by one as before. A pass that needs only the rows' keys (``validate``) converts the key columns
and merely checks the others.

This converter only ever decides "every row of the chunk converts, to these values" or "some
row may not": then the engine walks the chunk row by row with the row converter, which says
which line and column is wrong and why. It applies the very functions the row converter
applies to each value (the same regular expressions, ``int``, ``Decimal``, ``fromisoformat``,
``strptime``, the same bounds), so the two agree on every value; a chunk it refuses for any
reason at all (an exception included) is simply converted the slow way.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal
from itertools import chain, filterfalse, repeat
from operator import contains, itemgetter
from typing import Any

from .config import SchemaField, TableSchema
from .patterns import compile_pattern
from .schema import (
    INT_RE,
    ISO_DATE_RE,
    ISO_DATETIME_RE,
    NON_ASCII_DIGIT_OR_SPACE,
    NUM_RE,
    _typed_bound,
)

Column = Sequence[str]
Values = Sequence[Any]
Rows = list[tuple[Any, ...]]
Step = Callable[[Column], Values]
Check = Callable[[Column], None]

#: whole columns of integers and numbers, each value between newlines: strict subsets of
#: INT_RE and NUM_RE (at most 18 digits, exponents of at most 9), so that a value they accept
#: always converts, as int() refuses past 4,300 digits and Decimal past an exponent of 10^18
INT_TEXT = re.compile(r"\n(?:[+-]?+[0-9]{1,18}+\n)*+")
NUM_TEXT = re.compile(
    r"\n(?:[+-]?+(?:[0-9]++(?:\.[0-9]*+)?+|\.[0-9]++)(?:[eE][+-]?+[0-9]{1,9}+)?+\n)*+"
)

#: whole columns of ISO dates and times (which must still convert: 2026-02-30 does not)
DATE_TEXT = re.compile(rf"\n(?:{ISO_DATE_RE.pattern}\n)*+")
TIME_TEXT = re.compile(rf"\n(?:{ISO_DATETIME_RE.pattern}\n)*+")


def _text(values: Column) -> str:
    """The values, each between newlines."""
    return "\n" + "\n".join(values) + "\n"


def _accepts(whole: re.Pattern[str], text: str, count: int) -> bool:
    """``whole`` matches the text of ``count`` values, none of which holds a newline."""
    return whole.fullmatch(text) is not None and text.count("\n") == count + 1


class _Refused(Exception):
    """Some value of the column may not convert: the chunk goes row by row."""


def _all(test: Callable[[str], Any]) -> Callable[[Column], None]:
    def check(values: Column) -> None:
        if not all(map(test, values)):
            raise _Refused

    return check


#: the whole-column text check of a type whose values it accepts always convert
WHOLE = {"integer": INT_TEXT, "number": NUM_TEXT}
Typed = Callable[[Column, "str | None"], Values]


def _typed(field: SchemaField) -> Typed | None:
    """The type conversion of the present values of a column (None: the text itself), each
    value first checked exactly as the row converter checks it; given the values' text
    (``_text``), a typed column is first checked as a whole."""
    t, fmt = field.type, field.format
    if t == "string":
        return None
    if t == "integer":
        return _matched(INT_RE.fullmatch, int, INT_TEXT)
    if t == "number":
        return _matched(NUM_RE.fullmatch, Decimal, NUM_TEXT)
    if t == "boolean":
        # the row converter tries the true values first
        table = dict.fromkeys(field.false_values, False) | dict.fromkeys(field.true_values, True)
        return lambda values, _: list(map(table.__getitem__, values))  # KeyError: refused
    if t in ("date", "datetime") and fmt in ("default", "any"):
        regex, whole = (ISO_DATE_RE, DATE_TEXT) if t == "date" else (ISO_DATETIME_RE, TIME_TEXT)
        return _matched(
            regex.fullmatch, date.fromisoformat if t == "date" else datetime.fromisoformat, whole
        )
    if t in ("date", "datetime"):
        # strptime reads %Y, %H, %M… with Unicode \d and a space in the format as Unicode \s
        ascii_only = fmt.isascii()
        foreign = NON_ASCII_DIGIT_OR_SPACE.search

        def parse(values: Column, _: str | None) -> Values:
            if ascii_only:
                if not all(map(str.isascii, values)):
                    raise _Refused
            elif any(map(foreign, values)):
                raise _Refused
            stamps = list(map(datetime.strptime, values, repeat(fmt)))
            return list(map(datetime.date, stamps)) if t == "date" else stamps

        return parse
    return None  # pragma: no cover - the config model allows no other type


def _matched(
    test: Callable[[str], Any], convert: Callable[[str], Any], whole: re.Pattern[str] | None = None
) -> Typed:
    def typed(values: Column, text: str | None) -> Values:
        accepted = whole is not None and _accepts(whole, text or _text(values), len(values))
        if not accepted and not all(map(test, values)):
            raise _Refused
        return list(map(convert, values))

    return typed


def _checks(field: SchemaField) -> tuple[list[Callable[[Column], None]], list[Any]]:
    """The field's constraints: checks of the present texts, and of their typed values."""
    c = field.constraints
    on_text: list[Callable[[Column], None]] = []
    on_value: list[Any] = []
    if c.pattern is not None:
        on_text.append(_all(compile_pattern(c.pattern).fullmatch))
    if c.min_length is not None:
        shortest = c.min_length

        def long_enough(values: Column) -> None:
            if min(map(len, values)) < shortest:
                raise _Refused

        on_text.append(long_enough)
    if c.max_length is not None:
        longest = c.max_length

        def short_enough(values: Column) -> None:
            if max(map(len, values)) > longest:
                raise _Refused

        on_text.append(short_enough)
    if c.enum is not None:
        allowed = frozenset(_typed_bound(field, v, "enum") for v in c.enum)

        def listed(values: Values) -> None:
            if not allowed.issuperset(values):
                raise _Refused

        on_value.append(listed)
    if c.minimum is not None:
        low = _typed_bound(field, c.minimum, "minimum")

        def high_enough(values: Values) -> None:
            # min() compares the values with each other: a set of them without a total order
            # (naive and aware datetimes) raises, and the chunk goes row by row
            if min(values) < low:
                raise _Refused

        on_value.append(high_enough)
    if c.maximum is not None:
        high = _typed_bound(field, c.maximum, "maximum")

        def low_enough(values: Values) -> None:
            if max(values) > high:
                raise _Refused

        on_value.append(low_enough)
    return on_text, on_value


def _unconstrained(field: SchemaField) -> bool:
    c = field.constraints
    bounds = (c.pattern, c.enum, c.min_length, c.max_length, c.minimum, c.maximum)
    return all(b is None for b in bounds)


def _step(
    field: SchemaField, missing: frozenset[str], required: bool, separator: str | None
) -> tuple[Step, Check]:
    """The converted values of one column, or _Refused; and the check that they would
    convert, which does not convert what it need not."""
    typed = _typed(field)
    on_text, on_value = _checks(field)
    whole = WHOLE.get(field.type)
    blank_only = missing == frozenset({""})
    #: a missing value m is in a column's text as "\nm\n" (a value holding a newline can
    #: only make a column look gappy, which is then looked at value by value)
    needles = tuple(f"\n{m}\n" for m in missing)
    by_text = bool(missing) and (whole is not None or not blank_only)
    as_none = dict.fromkeys(missing)

    def gappy(col: Column, text: str | None) -> bool:
        if text is not None:
            return any(map(text.__contains__, needles))
        return bool(missing) and not all(col)  # blank_only: "" is the one missing value

    def step(col: Column) -> Values:
        if separator is not None and any(map(contains, col, repeat(separator))):
            raise _Refused
        text = _text(col) if by_text else None
        gaps = gappy(col, text)
        if gaps and required:
            raise _Refused
        values = list(filterfalse(missing.__contains__, col)) if gaps else col
        if not values:
            return [None] * len(col)
        for check in on_text:
            check(values)
        out = values if typed is None else typed(values, None if gaps else text)
        for check in on_value:
            check(out)
        if not gaps:
            return out
        if typed is None:
            return list(map(as_none.get, col, col))  # a missing value → None, others as they are
        converted = dict(zip(values, out, strict=True))
        converted.update(as_none)
        return list(map(converted.__getitem__, col))

    if whole is None or on_value or separator is not None:
        return step, step  # type: ignore[return-value]  # the values are the check

    def check(col: Column) -> None:
        """Every value of an integer or number column converts: known from the text of its
        present values alone when it can be, else by converting them."""
        text = _text(col)
        if missing and any(map(text.__contains__, needles)):
            if required:
                raise _Refused
            col = list(filterfalse(missing.__contains__, col))
            if not col:
                return
            text = _text(col)
        for test in on_text:
            test(col)
        if not _accepts(whole, text, len(col)):
            typed(col, text)  # type: ignore[misc]  # an integer or number column has a type

    return step, check


class ChunkConverter:
    """Converts a chunk of CSV rows, all ``width`` cells wide, into the tuples the row
    converter gives, in schema field order; or says that some row may not convert."""

    def __init__(
        self, schema: TableSchema, positions: Sequence[int], key: Sequence[str], width: int
    ):
        missing = frozenset(schema.missing_values)
        key_set = set(key)
        joined: frozenset[str] = getattr(key, "joined", frozenset())
        separator: str = getattr(key, "separator", "")
        self._steps: list[tuple[Step, int]] = []
        #: for a pass that needs only the keys: the key columns converted, the others checked
        self._key_steps: list[tuple[Step, int]] = []
        self._checks: list[tuple[Check, int]] = []
        steps = {}
        for field, pos in zip(schema.fields, positions, strict=True):
            required = field.constraints.required or field.name in key_set
            sep = separator if field.name in joined and field.type == "string" else None
            step, check = _step(field, missing, required, sep)
            self._steps.append((step, pos))
            steps[field.name] = (step, pos)
            if field.name not in key_set:
                self._checks.append((check, pos))
        self._key_steps = [steps[k] for k in key]
        # Text that is taken as it is (strings with no constraint but ``required``): a row is
        # its cells picked in field order, valid unless a cell is missing (then the columns
        # say whether that is allowed)
        self._plain = all(
            f.type == "string" and _unconstrained(f) and f.name not in joined for f in schema.fields
        )
        pick: Callable[[list[str]], tuple[Any, ...]]
        if list(positions) == list(range(width)):
            pick = tuple
        elif len(positions) == 1:
            only = itemgetter(positions[0])

            def pick(row: list[str]) -> tuple[Any, ...]:
                return (only(row),)

        else:
            pick = itemgetter(*positions)
        self._pick = pick
        self._missing = missing
        self._blank_only = missing == frozenset({""})
        # the keys of rows whose text is taken as it is are their cells: a chunk's keys are
        # picked from it, and its rows are valid unless a required cell is missing
        names = [f.name for f in schema.fields]
        where = dict(zip(names, positions, strict=True))
        #: the columns of the key's fields, in the key's order
        self.key_positions = [where[k] for k in key]
        self._key_cells = itemgetter(*self.key_positions)
        self._tuple_keys = len(key) > 1
        needed = [f.name for f in schema.fields if f.constraints.required and f.name not in key_set]
        self._also_required = [itemgetter(where[n]) for n in needed]

    def keys(self, chunk: list[list[str]]) -> Sequence[Any] | None:
        """The keys of the rows of ``chunk`` when every row converts, found without
        converting more than the key columns (None: some row may not convert)."""
        if not self._plain:
            columns = list(zip(*chunk, strict=True))
            try:
                for check, pos in self._checks:
                    check(columns[pos])
                parts = [step(columns[pos]) for step, pos in self._key_steps]
            except Exception:  # as in convert: the rows say what is wrong, one by one
                return None
            return list(zip(*parts, strict=True)) if self._tuple_keys else parts[0]
        keys = list(map(self._key_cells, chunk))
        if self._missing:
            if not self._present(chain.from_iterable(keys) if self._tuple_keys else keys):
                return None
            for cells in self._also_required:
                if not self._present(map(cells, chunk)):
                    return None
        return keys

    @property
    def missing(self) -> frozenset[str]:
        """The texts that stand for a missing value."""
        return self._missing

    @property
    def keys_alone(self) -> bool:
        """A row of the right width is valid when its key fields are present: every field is
        text taken as it is, and no other field is required."""
        return self._plain and not self._also_required

    def _present(self, cells: Iterable[str]) -> bool:
        """No cell is a missing value."""
        return all(cells) if self._blank_only else self._missing.isdisjoint(cells)

    def convert(self, chunk: list[list[str]]) -> Rows | None:
        """The converted rows of ``chunk``, or None when some row may not convert."""
        if self._plain:
            rows = list(map(self._pick, chunk))
            if self._present(chain.from_iterable(rows)):
                return rows
        columns = list(zip(*chunk, strict=True))
        try:
            out = [step(columns[pos]) for step, pos in self._steps]
        except Exception:  # as the row converter: any failure is the row's, said row by row
            return None
        return list(zip(*out, strict=True))
