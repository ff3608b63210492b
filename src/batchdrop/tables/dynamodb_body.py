"""Rows → BatchWriteItem request bodies as DynamoDB JSON text, without a dict per item.

The text of an item equals ``json.dumps(ItemCodec.item(row))`` as JSON (same attributes, same
values: numbers as their exact decimal strings, ``None`` left out, composite keys joined), but
it is made a column at a time: a column whose values all have one type is converted by a C
function mapped over it (``encode_basestring_ascii``, ``str``, ``isoformat``), and the pieces
of a row are put together by one ``%`` template per set of columns, also mapped. Only columns
that hold ``None`` or mixed types take a Python step per value.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from json.encoder import encode_basestring_ascii as quote
from typing import Any

from ..schema import join_key
from .dynamodb_items import ItemCodec

__all__ = ["ItemText", "body", "delete_body", "put_body", "value_text"]

#: how one Python type becomes a DynamoDB JSON attribute value: (converter, "%s" template)
_BOOL_TEXT = {True: "true", False: "false"}
_FAST: dict[type, tuple[Callable[[Any], str], str]] = {
    str: (quote, '{"S":%s}'),
    int: (str, '{"N":"%s"}'),
    Decimal: (str, '{"N":"%s"}'),  # str() is exact: no context rounding
    bool: (_BOOL_TEXT.__getitem__, '{"BOOL":%s}'),
    dt.date: (dt.date.isoformat, '{"S":"%s"}'),  # ISO text needs no escaping
    dt.datetime: (dt.datetime.isoformat, '{"S":"%s"}'),
}


def value_text(value: Any) -> str:
    """One value's attribute value as DynamoDB JSON (``dynamodb_items.encode``'s, as text)."""
    found = _FAST.get(type(value))
    if found is None:  # a subclass: take the same branch ``encode`` takes
        for kind in (bool, str, int, Decimal, dt.datetime, dt.date):
            if isinstance(value, kind):
                found = _FAST[kind]
                break
        else:
            raise TypeError(f"cannot store a {type(value).__name__} in DynamoDB")
    convert, template = found
    return template % convert(value)


def _literal(text: str) -> str:
    """``text`` safe inside a ``%`` template."""
    return text.replace("%", "%%")


class ItemText:
    """The items of one schema (an ``ItemCodec``) as JSON text."""

    def __init__(self, codec: ItemCodec):
        self.codec = codec
        #: '"name":' of each column, and of each joined key attribute
        self.names = [quote(name) + ":" for name in codec.fields]
        self.joined = [(quote(attr) + ":", at) for attr, at in codec.joined]
        self.separator = codec.separator

    def items(self, rows: Sequence[Sequence[Any]]) -> list[str]:
        """Each row's item, in order."""
        if not rows:
            return []
        columns = list(zip(*rows, strict=True))
        # pieces that are always there are joined by commas in the template; a piece that may be
        # missing (None) carries its own leading comma, so it needs one piece always there first
        sure: list[tuple[str, Iterable[str]]] = []
        maybe: list[Iterable[str]] = []
        for name, column in zip(self.names, columns, strict=True):
            kinds = set(map(type, column))
            if len(kinds) == 1 and (kind := next(iter(kinds))) in _FAST:
                convert, template = _FAST[kind]
                sure.append((_literal(name) + template, map(convert, column)))
            else:
                maybe.append(_column_pieces(name, column))
        for name, at in self.joined:
            texts = [join_key([row[i] for i in at], self.separator) for row in rows]
            sure.append((_literal(name) + '{"S":%s}', map(quote, texts)))
        if not sure:
            return ["{" + "".join(parts)[1:] + "}" for parts in zip(*maybe, strict=True)]
        template = "{" + ",".join(t for t, _ in sure) + "%s" * len(maybe) + "}"
        return list(map(template.__mod__, zip(*(v for _, v in sure), *maybe, strict=True)))


def _column_pieces(name: str, column: Sequence[Any]) -> list[str]:
    """',"name":{...}' for each value, '' for None."""
    lead = "," + name
    return ["" if v is None else lead + value_text(v) for v in column]


#: the parts of a BatchWriteItem body around its items
_PUT_SEPARATOR = '}},{"PutRequest":{"Item":'


_DELETE_SEPARATOR = '}},{"DeleteRequest":{"Key":'


def body(table: str, items: Sequence[str], *, delete: bool = False) -> bytes:
    """A BatchWriteItem request putting ``items`` (JSON texts) into ``table`` (or, with
    ``delete``, deleting the items whose keys they are), asking for the write capacity
    consumed. The text is ASCII (``encode_basestring_ascii`` escapes the rest)."""
    request = '{"DeleteRequest":{"Key":' if delete else '{"PutRequest":{"Item":'
    head = '{"RequestItems":{' + quote(table) + ":[" + request
    tail = '}}]},"ReturnConsumedCapacity":"TOTAL"}'
    separator = _DELETE_SEPARATOR if delete else _PUT_SEPARATOR
    return (head + separator.join(items) + tail).encode("ascii")


def delete_body(table: str, keys: Sequence[str]) -> bytes:
    return body(table, keys, delete=True)


def put_body(table: str, item: str, condition: str, names: str, values: str | None = None) -> bytes:
    """A PutItem request for ``item`` on ``condition``; ``names`` and ``values`` are the
    condition's ExpressionAttributeNames and ExpressionAttributeValues as JSON text (DynamoDB
    refuses an empty map: None leaves the values out)."""
    text = (
        '{"TableName":'
        + quote(table)
        + ',"Item":'
        + item
        + ',"ConditionExpression":'
        + quote(condition)
        + ',"ExpressionAttributeNames":'
        + names
    )
    if values is not None:
        text += ',"ExpressionAttributeValues":' + values
    return (text + ',"ReturnConsumedCapacity":"TOTAL"}').encode("ascii")
