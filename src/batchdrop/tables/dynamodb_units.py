"""DynamoDB's limits and write units, decided for a whole chunk of rows at once.

A row is refused by DynamoDB for an empty key string, a key over its size limit (2048 bytes for
a partition key, 1024 for a sort key), a number it cannot hold or an item over 400 KB. Checking
each row in Python costs more than converting it, and nearly every chunk of a real file is far
from those limits: ``ItemCheck.first`` finds that out from the schema (a key column that cannot
be empty, integers kept small by their constraints) and from the columns, with C builtins
(``zip(*rows)``, a column's text joined and measured at once, ``max(map(len, col))``, the ends
of a column of numbers), and only names a row to check one at a time when the chunk comes near a
limit.

A put costs one write unit per started KB of the item (``ceil(size / 1024)``). Counting them
for ``validate`` is just as cheap: a chunk whose largest item cannot pass 1 KB costs one unit
a row.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from functools import partial
from operator import is_not
from typing import TYPE_CHECKING, Any

from ..schema import join_key, key_text
from .dynamodb_items import MAX_DIGITS, MAX_ITEM_BYTES, number_problem

if TYPE_CHECKING:
    from ..config import Config
    from .dynamodb_items import ItemCodec

UNIT_BYTES = 1024  # a write unit covers an item of up to 1 KB
#: an integer below this in magnitude has at most 38 digits: DynamoDB holds it exactly
INT_LIMIT = 10**MAX_DIGITS
UTF8_MAX = 4  # bytes a character takes in UTF-8 at most
DATE_CHARS = 32  # the longest ISO 8601 text of a datetime (microseconds and an offset)
#: a composite key's text of a value is at most this many characters longer than str() of it
#: (a number written out without its exponent: 1E-29 → 0.000…1)
KEY_TEXT_SLACK = 40
#: more than the longest str() of a zero the schema reads (0E-999999999999999999: a longer
#: exponent is not a number), which ``filter(None, …)`` leaves out of a column's values
ZERO_CHARS = 24
NOT_NONE = partial(is_not, None)
KINDS = {"string": "s", "integer": "i", "number": "n", "boolean": "b", "date": "d"}
#: bytes a string key attribute may hold: the partition key's, the sort key's
KEY_LIMITS = (2048, 1024)
KEY_ROLES = ("partition key", "sort key")


def write_units(size: int) -> int:
    """The write units a put of an item of ``size`` bytes takes."""
    return max(1, -(-size // UNIT_BYTES))


class ItemCheck:
    """What DynamoDB would refuse of a row (a ``ports.RowCheck``), and, when ``counting``, the
    write units of the rows it passes (``units``): every row ``first`` lets through, and every
    row called on that passes."""

    def __init__(self, codec: ItemCodec, config: Config):
        self.codec = codec
        self.counting = False
        self.units = 0
        self.passed = 0  # rows whose units are in ``units``
        fields = config.schema_.fields
        self.kinds = [KINDS.get(f.type, "d") for f in fields]
        self.key_index = list(codec.key_index)
        missing = set(config.schema_.missing_values)
        #: key columns whose value may be an empty string: text, where "" is not a missing
        #: value (a key is required: a missing value is refused) and no minLength forbids it
        self.may_be_empty = [
            i
            for i in codec.key_index
            if fields[i].type == "string"
            and "" not in missing
            and not (fields[i].constraints.min_length or 0) >= 1
        ]
        #: columns that may hold None (not required, not part of the key)
        self.nullable = {
            i
            for i, f in enumerate(fields)
            if not f.constraints.required and i not in codec.key_index
        }
        self.texts = [i for i, kind in enumerate(self.kinds) if kind == "s"]
        #: the columns of numbers, in field order; those whose values may be out of reach
        self.numeric = [i for i, f in enumerate(fields) if f.type in ("integer", "number")]
        bounded = {i: _bounded(f) for i, f in enumerate(fields) if f.type == "integer"}
        self.ints = [i for i, b in bounded.items() if b is None]
        self.numbers = [i for i, f in enumerate(fields) if f.type == "number"]
        #: the longest str() of an integer column the constraints keep within 38 digits
        self.int_chars = {i: b for i, b in bounded.items() if b is not None}
        sep = len(codec.separator.encode("utf-8"))
        #: bytes every item may hold whatever its values: every name, each joined key's
        #: name and separators
        self.names = sum(codec._name_bytes) + sum(
            len(attr.encode("utf-8")) + sep * (len(at) - 1) for attr, at in codec.joined
        )
        self.joined_columns = [i for _, at in codec.joined for i in at]
        #: (role, byte limit, attribute, its columns) of each key attribute stored as text:
        #: a string column, or columns joined (numbers have no such limit)
        self.text_keys: list[tuple[str, int, str, list[int]]] = []
        joined = dict(codec.joined)
        for role, limit, attr in zip(
            KEY_ROLES, KEY_LIMITS, (codec.partition_attr, codec.sort_attr), strict=True
        ):
            if attr is None:
                continue
            at = joined.get(attr) or [codec.fields.index(attr)]
            if len(at) > 1 or self.kinds[at[0]] == "s":
                self.text_keys.append((role, limit, attr, at))

    def __call__(self, row: tuple[Any, ...]) -> tuple[str, str] | None:
        """(column, reason) when DynamoDB would refuse this row, else None."""
        codec = self.codec
        for i in codec.key_index:
            v = row[i]
            if v is None or v == "":
                return codec.fields[i], "a key attribute cannot be empty in DynamoDB"
        for role, limit, attr, at in self.text_keys:
            size = self._key_bytes(row, at)
            if size > limit:
                return attr, (
                    f"the {role} is {size} bytes, over DynamoDB's limit of {limit} bytes "
                    f"for a {role}"
                )
        for i in self.numeric:
            v = row[i]
            if v is not None and not isinstance(v, bool):
                problem = number_problem(v)
                if problem:
                    return codec.fields[i], problem
        size = codec.item_size(row)
        if size > MAX_ITEM_BYTES:
            return "", (
                f"the item is {size} bytes, over DynamoDB's limit of {MAX_ITEM_BYTES} "
                "bytes (400 KB)"
            )
        if self.counting:
            self.units += write_units(size)
            self.passed += 1
        return None

    def clear_text(self, text: str, rows: int) -> bool:
        """Whether no row of ``text`` (``rows`` whole lines, one row each, every field a string
        taken as it is: see rawkeys.py) can be refused, known from its longest line alone: a
        value weighs no more than its line, so an item weighs at most its names and its line,
        and a key attribute at most its line (an empty key is known to the caller). With
        ``counting``, the rows' units are added when no item can pass 1 KB. False: the rows
        are converted and checked one chunk at a time, as usual."""
        if len(self.texts) != len(self.kinds) or self.joined_columns or self.may_be_empty:
            return False
        longest = max(map(len, text.split("\n")))
        if not text.isascii():
            longest *= UTF8_MAX
        limit = min((limit for _, limit, _, _ in self.text_keys), default=MAX_ITEM_BYTES)
        if longest > limit or self.names + longest > MAX_ITEM_BYTES:
            return False
        if self.counting:
            if self.names + longest > UNIT_BYTES:
                return False
            self.units += rows
            self.passed += rows
        return True

    def first(self, rows: Sequence[tuple[Any, ...]]) -> int | None:
        """The index of the first row of ``rows`` that may be refused, or None when none can;
        with ``counting``, the units of the rows before it are added to ``units``."""
        if not rows:
            return None
        cols = list(zip(*rows, strict=True))
        at = self._first(rows, cols)
        if self.counting:
            ok = rows if at is None else rows[:at]
            self.units += self.chunk_units(ok, None if at is not None else cols)
            self.passed += len(ok)
        return at

    def _first(self, rows: Sequence[tuple[Any, ...]], cols: list[tuple[Any, ...]]) -> int | None:
        found: list[int] = []
        for i in self.may_be_empty:
            col = cols[i]
            found += [col.index(bad) for bad in (None, "") if bad in col]
        # the longest str() of a column's values, where known
        chars: dict[int, int] = dict(self.int_chars)
        for i in self.ints:
            nz = list(filter(None, cols[i]))
            if nz:
                hi, lo = max(nz), min(nz)
                chars[i] = len(str(max(hi, -lo))) + 1
                if hi >= INT_LIMIT or lo <= -INT_LIMIT:
                    found.append(_first_problem(cols[i]))
        for i in self.numbers:
            nz = list(filter(None, cols[i]))
            chars[i] = ZERO_CHARS
            if nz:
                chars[i] = max(ZERO_CHARS, *map(len, map(str, nz)))
                adjusted = list(map(Decimal.adjusted, nz))
                if (
                    chars[i] > MAX_DIGITS
                    or max(adjusted) > 125
                    or min(adjusted) < -130
                    or not all(map(Decimal.is_finite, nz))
                ):
                    found.append(_first_problem(cols[i]))
        for _, limit, _, columns in self.text_keys:
            bound = sum(
                max(map(len, cols[i]), default=0)
                if self.kinds[i] == "s"
                else chars.get(i, DATE_CHARS) + KEY_TEXT_SLACK
                for i in columns
            )
            if UTF8_MAX * (bound + len(self.codec.separator) * (len(columns) - 1)) > limit:
                found.append(self._first_long_key(rows, columns, limit))
        if (
            self._chunk_bytes(cols, chars) > MAX_ITEM_BYTES
            and self._size_bound(cols, chars) > MAX_ITEM_BYTES
        ):
            found.append(self._first_big(rows))
        at = min(found, default=len(rows))
        return at if at < len(rows) else None

    def _chunk_bytes(self, cols: list[tuple[Any, ...]], chars: dict[int, int]) -> int:
        """More than the values of the whole chunk weigh together, and so more than any one
        row's item: the text of each column joined (a copy in C) and measured at once."""
        n = len(cols[0]) if cols else 0
        total = self.names
        for i, kind in enumerate(self.kinds):
            if kind == "s":
                text = "".join(self._present(cols, i))
                size = len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
                total += size
                if i in self.joined_columns:
                    total += size
            elif kind in "in":
                total += n * ((chars.get(i, 1) + 1) // 2 + 1)
            else:
                total += n * (1 if kind == "b" else DATE_CHARS)
        for i in self.joined_columns:
            if self.kinds[i] != "s":
                total += n * UTF8_MAX * (chars.get(i, DATE_CHARS) + KEY_TEXT_SLACK)
        return total

    def _present(self, cols: list[tuple[Any, ...]], i: int) -> Any:
        """Column ``i``'s values, None left out where it may be there."""
        return filter(NOT_NONE, cols[i]) if i in self.nullable else cols[i]

    def _size_bound(self, cols: list[tuple[Any, ...]], chars: dict[int, int]) -> int:
        """More than any row's item can weigh, from each column's longest value."""
        total = self.names
        for i, kind in enumerate(self.kinds):
            if kind == "s":
                chars[i] = max(map(len, filter(None, cols[i])), default=0)
                total += UTF8_MAX * chars[i]
            elif kind in "in":
                total += (chars.get(i, 1) + 1) // 2 + 1
            elif kind == "b":
                total += 1
            else:
                total += DATE_CHARS
        for i in self.joined_columns:
            total += UTF8_MAX * (chars.get(i, DATE_CHARS) + KEY_TEXT_SLACK)
        return total

    def _key_bytes(self, row: Sequence[Any], at: list[int]) -> int:
        text = join_key([row[i] for i in at], self.codec.separator) if len(at) > 1 else row[at[0]]
        return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))

    def _first_long_key(self, rows: Sequence[tuple[Any, ...]], at: list[int], limit: int) -> int:
        """The first row whose key attribute made of the columns ``at`` is over ``limit``
        bytes (the bound from the columns' longest values only said that one may be)."""
        for k, row in enumerate(rows):
            if self._key_bytes(row, at) > limit:
                return k
        return len(rows)

    def _first_big(self, rows: Sequence[tuple[Any, ...]]) -> int:
        """The first row whose item may be over the limit (4 bytes for every character of its
        values, whatever their type, is more than they weigh)."""
        names, joined = self.names, self.joined_columns
        for k, row in enumerate(rows):
            text = sum(map(len, map(str, row)))
            text += sum(len(str(row[i])) + KEY_TEXT_SLACK for i in joined)
            if names + UTF8_MAX * text > MAX_ITEM_BYTES:
                return k
        return len(rows)  # the bound of the whole chunk was loose: no row comes near

    # --- write units ----------------------------------------------------------------------

    def chunk_units(
        self, rows: Sequence[tuple[Any, ...]], cols: list[tuple[Any, ...]] | None = None
    ) -> int:
        """The write units a put of each of ``rows`` takes, summed (``cols``: the rows'
        columns, when they are at hand)."""
        if not rows:
            return 0
        if self._tight_bound(cols or list(zip(*rows, strict=True))) <= UNIT_BYTES:
            return len(rows)  # no item can pass 1 KB: one unit each
        size = self.codec.item_size
        return sum(write_units(size(row)) for row in rows)

    def _tight_bound(self, cols: list[tuple[Any, ...]]) -> int:
        """At least any row's item size, and seldom more than a few bytes over it."""
        total = self.names
        codec = self.codec
        for i, kind in enumerate(self.kinds):
            if kind == "b":
                total += 1
                continue
            values = list(self._present(cols, i))
            if not values:
                continue
            if kind == "s":
                if "".join(values).isascii():
                    total += max(map(len, values))
                else:
                    total += max(map(len, map(str.encode, values)))
                continue
            digits = max(map(len, map(str, values)))  # the digits, and a sign or a point
            total += (digits + 1) // 2 + 1 if kind in "in" else digits
        for _, at in codec.joined:
            for i in at:
                values = list(filter(NOT_NONE, cols[i]))
                if values:
                    total += max(map(len, map(str.encode, map(key_text, values))))
        return total


def _bounded(field: Any) -> int | None:
    """When an integer column's constraints keep its values within 38 digits: the longest
    str() of its values; else None."""
    c = field.constraints
    try:
        low, high = int(c.minimum), int(c.maximum)
    except (TypeError, ValueError):
        return None
    if low > -INT_LIMIT and high < INT_LIMIT:
        return max(len(str(low)), len(str(high)))
    return None


def _first_problem(col: Sequence[Any]) -> int:
    """The first value of a column of numbers DynamoDB cannot hold (the chunk-wide test only
    said that one may be there)."""
    for k, v in enumerate(col):
        if v is not None and not isinstance(v, bool) and number_problem(v):
            return k
    return len(col)
