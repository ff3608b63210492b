"""Keys in the URL: finding them in the path, converting them, and describing them.

A key may hold any character, '/' included. The partition is one path segment, so a '/' in it
is sent as ``%2F``; the sort key is everything after it, where '/' may be sent as is. Servers
decode ``%2F`` before routing, which would split a partition in two, so ``KeyPath`` reads the
segments from the raw (still encoded) path when the server gives one, and re-targets the
request at the route its real segments belong to. Lambda behind API Gateway gives no raw path
(the gateway decodes it): there, a '/' is allowed in the sort key only.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from decimal import Decimal
from typing import Any
from urllib.parse import quote, unquote

from ..config import Config, SchemaField
from ..schema import parse_value, to_text
from ..tables.dynamodb_items import number_problem

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]
SCOPE_KEY = "batchdrop.key"
PREFIX = "/items/"

INT64 = (-(2**63), 2**63 - 1)
# What DynamoDB can store as a key: string bytes per role.
DYNAMO_STRING_BYTES = {"partition": 2048, "sort": 1024}


class KeyPath:
    """ASGI middleware: put the decoded key segments of /items/… requests in the scope."""

    def __init__(self, app: ASGIApp, *, has_sort_key: bool):
        self.app = app
        self.has_sort_key = has_sort_key

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            route_path = _route_path(scope)
            if route_path.startswith(PREFIX):
                segments = _raw_segments(scope, route_path)
                if segments is None:
                    segments = route_path[len(PREFIX) :].split("/")
                if self.has_sort_key and len(segments) > 1:
                    key: tuple[str, str | None] = (segments[0], "/".join(segments[1:]))
                else:
                    key = ("/".join(segments), None)
                scope = dict(scope)
                scope[SCOPE_KEY] = key
                # route on a path whose segments are the real ones, whatever they hold
                shape = PREFIX + quote(key[0], safe="")
                if key[1] is not None:
                    shape += "/" + quote(key[1], safe="")
                scope["path"] = scope.get("root_path", "") + shape
        await self.app(scope, receive, send)


def _route_path(scope: Scope) -> str:
    path: str = scope["path"]
    root = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def _raw_segments(scope: Scope, route_path: str) -> list[str] | None:
    """The decoded segments after /items/, split where the client put a real '/'."""
    raw = scope.get("raw_path")
    trusted = False
    if raw is None:
        # API Gateway HTTP API (payload 2.0): rawPath is the path as sent, while the path the
        # adapter routes on has been decoded (for a key holding '%', more than once)
        event = scope.get("aws.event")
        raw = event.get("rawPath") if isinstance(event, dict) else None
        trusted = True
    if not raw:
        return None
    text = raw.decode("latin-1") if isinstance(raw, bytes) else str(raw)
    text = text.split("?", 1)[0]
    start = text.find(PREFIX)
    while start != -1:
        rest = text[start:]
        if trusted or unquote(rest) == route_path:
            return [unquote(s) for s in rest[len(PREFIX) :].split("/")]
        start = text.find(PREFIX, start + 1)
    return None


def key_from_scope(scope: Scope) -> tuple[str, str | None] | None:
    value = scope.get(SCOPE_KEY)
    return value if isinstance(value, tuple) else None


class KeyError400(ValueError):
    """A key in the URL that does not convert to its field's type."""


class Keys:
    """The table's key fields, and what the backend can store as a key."""

    def __init__(self, config: Config):
        schema = config.schema_
        self.partition: SchemaField = schema.field(config.table.partition_key)
        self.sort: SchemaField | None = (
            schema.field(config.table.sort_key) if config.table.sort_key else None
        )
        self.dynamo = config.table.url.startswith("dynamodb://")

    def parse(self, field: SchemaField, role: str, text: str) -> Any:
        if text == "":
            raise KeyError400(f"the {role} key {field.name!r} is empty")
        try:
            return parse_value(field, text)
        except ValueError as e:
            reason = str(e).removeprefix(f"{field.name}: ")
            raise KeyError400(f"{role} key {field.name!r}: {reason} (got {text!r})") from None

    def storable(self, value: Any, role: str) -> bool:
        """False when no item can have this key value (the backend could never store it)."""
        if isinstance(value, bool):
            return True
        if isinstance(value, int):
            return INT64[0] <= value <= INT64[1] or (self.dynamo and number_problem(value) is None)
        if isinstance(value, Decimal):
            return value.is_finite() and (not self.dynamo or number_problem(value) is None)
        if isinstance(value, str):
            if not _utf8(value):
                return False
            return not self.dynamo or 0 < len(value.encode("utf-8")) <= DYNAMO_STRING_BYTES[role]
        return True

    def prefix_storable(self, prefix: str) -> bool:
        if self.dynamo:
            return _utf8(prefix) and len(prefix.encode("utf-8")) <= DYNAMO_STRING_BYTES["sort"]
        return _utf8(prefix)

    def position(self, value: Any) -> Any:
        """The sort-key value a decoded cursor continues after, in the form a table's query
        takes; ValueError when it is not one a table could have handed out.

        Tables hand out the sort key's text (an integer for an integer or boolean key in
        SQLite). A position edited to another value of the key's type is only another place
        to start; anything else (a list, a tagged decimal, a number too big for the backend,
        text that is not of the key's type) never reaches the table.
        """
        field = self.sort
        if field is None or isinstance(value, bool) or not isinstance(value, str | int):
            raise ValueError("not a sort-key value")
        if isinstance(value, int):
            if field.type == "boolean" and value in (0, 1):
                return value
            if field.type != "integer":
                raise ValueError(f"a number where the {field.type} sort key is")
        typed = parse_value(field, str(value))
        if not self.storable(typed, "sort"):
            raise ValueError("a sort-key value the table cannot hold")
        if isinstance(typed, bool):
            return int(typed)  # as SQLite stores it (DynamoDB has no boolean keys)
        return typed if isinstance(typed, int | str) else to_text(typed)


def _utf8(text: str) -> bool:
    """False for text holding lone surrogates, which no backend can store (JSON can carry them)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def param_schema(field: SchemaField) -> dict[str, Any]:
    """The OpenAPI schema of a key given as text in the URL, by its field's type."""
    desc = f"{field.name} ({field.type})"
    if field.type == "integer":
        return {"type": "integer", "minimum": INT64[0], "maximum": INT64[1], "description": desc}
    if field.type == "number":
        return {"type": "number", "description": desc}
    if field.type == "boolean":
        return {
            "type": "string",
            "enum": [*field.true_values, *field.false_values],
            "description": desc,
        }
    if field.type == "date" and field.format in ("default", "any"):
        return {"type": "string", "format": "date", "description": desc}
    extra = "" if field.format in ("default", "any") else f", format {field.format}"
    return {"type": "string", "minLength": 1, "description": desc + extra}


def value_schema(field: SchemaField) -> dict[str, Any]:
    """The JSON schema of one field's value in an item."""
    base: dict[str, Any] = {
        "string": {"type": "string"},
        "integer": {"type": "integer"},
        "number": {"type": "number"},
        "boolean": {"type": "boolean"},
        "date": {"type": "string", "format": "date"},
        # naive datetimes stay naive (no offset), so no RFC 3339 format is promised
        "datetime": {"type": "string", "description": "ISO 8601"},
    }[field.type]
    return {**base, "title": field.name}
