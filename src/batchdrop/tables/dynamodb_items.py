"""Rows ↔ DynamoDB items, exactly: numbers as decimal strings, never floats.

Also the checks only DynamoDB needs, made while the file is validated, before anything is sent:
an item over 400 KB, an empty string in a key attribute, a number DynamoDB cannot hold (the
sizes and rules here; ``ItemCodec.check``, which decides them a chunk at a time, is in
dynamodb_units.py).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ..schema import join_key

if TYPE_CHECKING:
    from ..config import Config

MAX_ITEM_BYTES = 400 * 1024
MAX_DIGITS = 38  # DynamoDB numbers: 38 significant digits, magnitude 1E-130 to 9.99E+125
KEY_TYPES = {"string": "S", "date": "S", "datetime": "S", "integer": "N", "number": "N"}


def encode(value: Any) -> dict[str, Any]:
    """One converted value → a DynamoDB attribute value (``None`` is never sent)."""
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, int):
        return {"N": str(value)}
    if isinstance(value, Decimal):
        return {"N": _number(value)}
    if isinstance(value, dt.datetime | dt.date):
        return {"S": value.isoformat()}
    raise TypeError(f"cannot store a {type(value).__name__} in DynamoDB")


def _number(value: Decimal) -> str:
    # str() is exact (no context rounding); DynamoDB reads exponent notation too, as boto3 sends.
    return str(value)


def number_problem(value: Decimal | int) -> str | None:
    """Why DynamoDB cannot hold this number exactly, or None."""
    d = Decimal(value)
    if not d.is_finite():
        return "DynamoDB cannot store NaN or infinity"
    if d.is_zero():
        return None
    # Significant digits, counted without normalize(), which would round to the context's 28.
    digits = "".join(map(str, d.as_tuple().digits)).strip("0")
    if len(digits) > MAX_DIGITS:
        return f"more than {MAX_DIGITS} significant digits: DynamoDB cannot store it exactly"
    if d.adjusted() > 125 or d.adjusted() < -130:
        return "out of DynamoDB's number range (1E-130 to 9.99E+125)"
    return None


def value_size(attr: dict[str, Any]) -> int:
    """DynamoDB's size of one attribute value, in bytes (numbers rounded up)."""
    kind, v = next(iter(attr.items()))
    if kind == "S":
        return len(v.encode("utf-8"))
    if kind == "N":
        digits = sum(c.isdigit() for c in v)
        return (digits + 1) // 2 + 1
    return 1


class ItemCodec:
    """Encodes rows of one schema (field order) and decodes items back to Python values.

    A composite key (a list of columns) is stored twice: each column as its own typed
    attribute, and their values joined by the separator as the key attribute (type S)."""

    def __init__(self, config: Config):
        table = config.table
        self.fields = [f.name for f in config.schema_.fields]
        self.types = {f.name: f.type for f in config.schema_.fields}
        self.key = table.key
        self.key_index = [self.fields.index(k) for k in self.key]
        self.separator = table.key_separator
        self.partition_attr, self.sort_attr = table.physical_key
        #: (attribute, indexes of its columns in a row) of each key attribute that joins columns
        self.joined: list[tuple[str, list[int]]] = [
            (attr, [self.fields.index(c) for c in columns])
            for attr, columns in zip(
                table.physical_key, (table.partition_columns, table.sort_columns), strict=True
            )
            if attr is not None and len(columns) > 1
        ]
        self.joined_names = frozenset(attr for attr, _ in self.joined)
        self.parts = (len(table.partition_columns), len(table.sort_columns))
        self._name_bytes = [len(n.encode("utf-8")) for n in self.fields]
        #: what DynamoDB would refuse of a row (``ports.RowCheck``: a chunk that cannot fail
        #: is told at once), and the write units of the rows it passed when asked to count
        from .dynamodb_units import ItemCheck

        self.check = ItemCheck(self, config)

    def item(self, row: Sequence[Any]) -> dict[str, Any]:
        item = {name: encode(v) for name, v in zip(self.fields, row, strict=True) if v is not None}
        for attr, at in self.joined:
            item[attr] = {"S": join_key([row[i] for i in at], self.separator)}
        return item

    def key_of(self, row: Sequence[Any]) -> tuple[Any, ...]:
        return tuple(row[i] for i in self.key_index)

    def key_item(self, values: Sequence[Any]) -> dict[str, Any]:
        """The key attributes of the item whose key columns hold ``values`` (in key order)."""
        if len(values) != len(self.key):
            raise ValueError(f"the key is {', '.join(self.key)}: give {len(self.key)} value(s)")
        n = self.parts[0]
        out = {self.partition_attr: self.partition_value(values[:n])}
        if self.sort_attr is not None:
            sort = values[n:]
            out[self.sort_attr] = (
                {"S": join_key(sort, self.separator)}
                if len(sort) > 1
                else self.key_value(self.sort_attr, sort[0])
            )
        return out

    def partition_value(self, values: Sequence[Any]) -> dict[str, Any]:
        """The partition attribute's value for the partition key's column values."""
        if len(values) > 1:
            return {"S": join_key(values, self.separator)}
        return self.key_value(self.partition_attr, values[0])

    def key_value(self, name: str, value: Any) -> dict[str, Any]:
        if name in self.joined_names:
            return {"S": value if isinstance(value, str) else str(value)}  # a cursor
        if isinstance(value, str) and KEY_TYPES.get(self.types[name]) == "N":
            return {"N": value}  # a cursor or a key given as text
        return encode(value)

    def item_size(self, row: Sequence[Any]) -> int:
        """The item's size by DynamoDB's rules (attribute names and values, in bytes)."""
        size = 0
        for attr, at in self.joined:
            text = join_key([row[i] for i in at], self.separator)
            size += len(attr.encode("utf-8")) + len(text.encode("utf-8"))
        for nbytes, v in zip(self._name_bytes, row, strict=True):
            if v is not None:
                size += nbytes + value_size(encode(v))
        return size

    def decode(self, item: dict[str, Any]) -> dict[str, Any]:
        """An item → Python values: integers as int, numbers as Decimal, dates as ISO strings."""
        out: dict[str, Any] = {}
        for name, attr in item.items():
            if name in self.joined_names:
                continue  # made of the columns, which are attributes of their own
            kind, v = next(iter(attr.items()))
            if kind == "N":
                d = Decimal(v)
                out[name] = int(d) if self.types.get(name) == "integer" else d
            elif kind == "NULL":
                out[name] = None
            else:
                out[name] = v
        return out

    def cursor(self, key: dict[str, Any]) -> str | None:
        """The sort key value of a LastEvaluatedKey, as text (an opaque cursor for the caller)."""
        if self.sort_attr is None or self.sort_attr not in key:
            return None
        return str(next(iter(key[self.sort_attr].values())))
