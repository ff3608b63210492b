"""Exact JSON out, and the opaque page cursor.

Items hold ``Decimal`` values that must reach the client digit for digit: the standard encoders
turn them into floats. ``dumps`` writes a Decimal as the JSON number it spells, dates and
datetimes as ISO 8601 strings.

A cursor wraps a table's ``Page.next`` (any mix of str, int, Decimal, dates, tuples, dicts…)
in tagged JSON, base64url-encoded, together with the query it continues, so that a cursor
handed to another partition is refused instead of being passed to the backend.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any

_CURSOR_VERSION = 1


def _number(value: Decimal) -> str:
    if not value.is_finite():  # JSON has no NaN or Infinity: say it as a string
        return json.dumps(str(value))
    return str(value)


def dumps(value: Any) -> str:
    """JSON text for ``value``; Decimal stays exact, dates become ISO 8601 strings."""
    parts: list[str] = []
    _write(value, parts.append)
    return "".join(parts)


def _write(value: Any, out: Any) -> None:
    if value is None or isinstance(value, bool | int | str):
        out(json.dumps(value, ensure_ascii=False))
    elif isinstance(value, Decimal):
        out(_number(value))
    elif isinstance(value, float):
        out(json.dumps(value) if value == value and abs(value) != float("inf") else "null")
    elif isinstance(value, datetime | date):
        out(json.dumps(value.isoformat()))
    elif isinstance(value, dict):
        out("{")
        for i, (k, v) in enumerate(value.items()):
            if i:
                out(",")
            out(json.dumps(str(k), ensure_ascii=False))
            out(":")
            _write(v, out)
        out("}")
    elif isinstance(value, list | tuple):
        out("[")
        for i, v in enumerate(value):
            if i:
                out(",")
            _write(v, out)
        out("]")
    elif isinstance(value, bytes):
        out(json.dumps(base64.b64encode(value).decode("ascii")))
    else:
        out(json.dumps(str(value), ensure_ascii=False))


# --- tagged values: what a cursor carries -------------------------------------------------


def _tag(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str | float):
        return value
    if isinstance(value, Decimal):
        return {"#": "dec", "v": str(value)}
    if isinstance(value, datetime):
        return {"#": "dt", "v": value.isoformat()}
    if isinstance(value, date):
        return {"#": "date", "v": value.isoformat()}
    if isinstance(value, tuple):
        return {"#": "tuple", "v": [_tag(v) for v in value]}
    if isinstance(value, list):
        return [_tag(v) for v in value]
    if isinstance(value, dict):
        return {"#": "dict", "v": [[_tag(k), _tag(v)] for k, v in value.items()]}
    if isinstance(value, bytes):
        return {"#": "bytes", "v": base64.b64encode(value).decode("ascii")}
    raise TypeError(f"a cursor cannot carry a {type(value).__name__}")


def _untag(data: Any) -> Any:
    if data is None or isinstance(data, bool | int | str | float):
        return data
    if isinstance(data, list):
        return [_untag(v) for v in data]
    if not isinstance(data, dict) or set(data) != {"#", "v"}:
        raise ValueError("unexpected value")
    kind, v = data["#"], data["v"]
    if kind == "dec" and isinstance(v, str):
        return Decimal(v)
    if kind == "dt" and isinstance(v, str):
        return datetime.fromisoformat(v)
    if kind == "date" and isinstance(v, str):
        return date.fromisoformat(v)
    if kind == "tuple" and isinstance(v, list):
        return tuple(_untag(x) for x in v)
    if kind == "dict" and isinstance(v, list):
        pairs = [(_untag(p[0]), _untag(p[1])) for p in v if isinstance(p, list) and len(p) == 2]
        if len(pairs) != len(v):
            raise ValueError("bad mapping")
        return dict(pairs)
    if kind == "bytes" and isinstance(v, str):
        return base64.b64decode(v, validate=True)
    raise ValueError(f"unknown tag {kind!r}")


def query_token(partition: Any, begins_with: str | None) -> str:
    """What a cursor is bound to: the partition value (typed) and the prefix."""
    return json.dumps([_tag(partition), begins_with], separators=(",", ":"), sort_keys=True)


def encode_cursor(after: Any, partition: Any, begins_with: str | None) -> str:
    payload = {"v": _CURSOR_VERSION, "q": query_token(partition, begins_with), "a": _tag(after)}
    raw = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


NOT_VALID = "cursor is not valid: pass the next_cursor of the previous page unchanged"


class CursorError(ValueError):
    """A cursor that this API did not hand out for this query."""


def decode_cursor(cursor: str, partition: Any, begins_with: str | None) -> Any:
    """The ``after`` value inside ``cursor``; raises CursorError with the reason."""
    text = cursor.strip()
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
        payload = json.loads(raw.decode("utf-8"))
    # nesting deeper than the interpreter's stack is a RecursionError, not a ValueError
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError):
        raise CursorError(NOT_VALID) from None
    if (
        not isinstance(payload, dict)
        or payload.get("v") != _CURSOR_VERSION
        or not isinstance(payload.get("q"), str)
        or "a" not in payload
    ):
        raise CursorError(NOT_VALID)
    if payload["q"] != query_token(partition, begins_with):
        raise CursorError(
            "cursor belongs to another query: use it with the same partition and "
            "begins_with as the page it came from"
        )
    try:
        after = _untag(payload["a"])
    except (ValueError, TypeError, KeyError, ArithmeticError, RecursionError):
        raise CursorError(NOT_VALID) from None
    if after is None:
        raise CursorError("cursor is not valid: it points at no page")
    return after
