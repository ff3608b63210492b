"""Keys in the URL: finding them in the path, converting them, and describing them.

A key may hold any character, '/' included. The partition is one path segment, so a '/' in it
is sent as ``%2F``; the sort key is everything after it, where '/' may be sent as is. Servers
decode ``%2F`` before routing, which would split a partition in two, so ``KeyPath`` reads the
segments from the raw (still encoded) path when the server gives one, and re-targets the
request at the route its real segments belong to. Lambda behind API Gateway gives no raw path
(the gateway decodes it): there, a '/' is allowed in the sort key only.

A composite key (a list of columns) takes one segment per column, the partition's first; the
last column of each part takes what is left, so it alone may hold a '/' sent as is.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from decimal import Decimal
from typing import Any
from urllib.parse import quote, unquote

from ..config import Config, SchemaField
from ..schema import parse_value, to_text
from ..tables.dynamodb_items import number_problem

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]
SCOPE_KEY = "batchdrop.key"
#: the path a feed's app is mounted at (api/feeds.py), in the scope of its requests
FEED_PREFIX = "batchdrop.feed"
PREFIX = "/items/"

INT64 = (-(2**63), 2**63 - 1)
#: sort key types whose stored text begins_with reads: dates and datetimes in ISO 8601
PREFIX_TYPES = ("string", "date", "datetime")
# What DynamoDB can store as a key: string bytes per role.
DYNAMO_STRING_BYTES = {"partition": 2048, "sort": 1024}


class KeyPath:
    """ASGI middleware: put the decoded key segments of /items/… requests in the scope, as
    (partition texts, sort texts or None): one segment per column of a composite key."""

    def __init__(self, app: ASGIApp, *, partition_parts: int = 1, sort_parts: int = 0):
        self.app = app
        self.partition_parts = partition_parts
        self.sort_parts = sort_parts

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            path = route_path(scope)
            if path.startswith(PREFIX):
                segments = _raw_segments(scope, path)
                if segments is None:
                    segments = path[len(PREFIX) :].split("/")
                key = split_key(segments, self.partition_parts, self.sort_parts)
                scope = dict(scope)
                scope[SCOPE_KEY] = key
                # route on a path whose segments are the real ones, whatever they hold
                shape = PREFIX + quote("/".join(key[0]), safe="")
                if key[1] is not None:
                    shape += "/" + quote("/".join(key[1]), safe="")
                scope["path"] = scope.get("root_path", "") + shape
        await self.app(scope, receive, send)


KeyTexts = tuple[tuple[str, ...], tuple[str, ...] | None]


def split_key(segments: list[str], partition_parts: int, sort_parts: int) -> KeyTexts:
    """Path segments → (partition texts, sort texts or None). The last column of each part
    takes the segments left over, so a '/' in it may be sent as is."""
    if sort_parts and len(segments) > partition_parts:
        rest = segments[partition_parts:]
        if len(rest) > sort_parts:
            rest = [*rest[: sort_parts - 1], "/".join(rest[sort_parts - 1 :])]
        return tuple(segments[:partition_parts]), tuple(rest)
    if len(segments) > partition_parts:
        keep = partition_parts - 1
        segments = [*segments[:keep], "/".join(segments[keep:])]
    return tuple(segments), None


def route_path(scope: Scope) -> str:
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
    feed = scope.get(FEED_PREFIX)
    if feed and feed + PREFIX in text:  # a feed's items: after its prefix (a feed may be "items")
        text = text[text.index(feed + PREFIX) + len(feed) :]
    start = text.find(PREFIX)
    while start != -1:
        rest = text[start:]
        if trusted or unquote(rest) == route_path:
            return [unquote(s) for s in rest[len(PREFIX) :].split("/")]
        start = text.find(PREFIX, start + 1)
    return None


def key_from_scope(scope: Scope) -> KeyTexts | None:
    value = scope.get(SCOPE_KEY)
    return value if isinstance(value, tuple) else None


class KeyError400(ValueError):
    """A key in the URL that does not convert to its field's type."""


class Keys:
    """The table's key fields, and what the backend can store as a key."""

    def __init__(self, config: Config):
        schema, table = config.schema_, config.table
        self.partitions = [schema.field(c) for c in table.partition_columns]
        self.sorts = [schema.field(c) for c in table.sort_columns]
        self.separator = table.key_separator
        #: the first column of each (the only one, unless the key is composite)
        self.partition: SchemaField = self.partitions[0]
        self.sort: SchemaField | None = self.sorts[0] if self.sorts else None
        #: the names as the API says them: 'carrier' or 'carrier, flight'
        self.partition_name = ", ".join(f.name for f in self.partitions)
        self.sort_name = ", ".join(f.name for f in self.sorts)
        #: whether begins_with applies: a sort key stored as text (ISO 8601 for dates), or a
        #: composite one (joined text)
        self.sort_is_text = len(self.sorts) > 1 or (
            self.sort is not None and self.sort.type in PREFIX_TYPES
        )
        self.dynamo = config.table.url.startswith("dynamodb://")

    def parse_all(self, fields: list[SchemaField], role: str, texts: Sequence[str]) -> Any:
        """The typed value of a key part from its texts: a tuple for a composite part."""
        if len(texts) != len(fields):
            names = ", ".join(f.name for f in fields)
            shape = "/".join("{" + f.name + "}" for f in fields)
            raise KeyError400(
                f"the {role} key is {names}: give {len(fields)} path segment(s), {shape} "
                f"({len(texts)} given)"
            )
        values = tuple(self.parse(f, role, t) for f, t in zip(fields, texts, strict=True))
        return values if len(fields) > 1 else values[0]

    def all_storable(self, value: Any, fields: list[SchemaField], role: str) -> bool:
        values = value if len(fields) > 1 else (value,)
        return all(self.storable(v, role) for v in values)

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
        if isinstance(value, int):  # SQLite keeps one past 64 bits as its exact text
            return not self.dynamo or INT64[0] <= value <= INT64[1] or number_problem(value) is None
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
        if len(self.sorts) > 1:
            return self._composite_position(value)
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

    def _composite_position(self, value: Any) -> Any:
        """A composite sort key's position: its columns' values (SQLite hands out a tuple of
        them) or their joined text (DynamoDB), one part per column either way."""
        if isinstance(value, str):
            parts: Sequence[Any] = value.split(self.separator)
        elif isinstance(value, tuple):
            parts = value
        else:
            raise ValueError("not a sort-key value")
        if len(parts) != len(self.sorts):
            raise ValueError("not a sort-key value")
        for part in parts:
            if isinstance(part, bool) or not isinstance(part, str | int):
                raise ValueError("not a sort-key value")
            if isinstance(part, str) and not _utf8(part):
                raise ValueError("a sort-key value the table cannot hold")
        return value


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
