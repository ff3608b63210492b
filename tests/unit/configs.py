"""The smallest config the unit tests build on: two string fields, the first the key."""

from __future__ import annotations

from typing import Any

TWO_FIELDS: dict[str, Any] = {
    "inbound": "i",
    "archive": "a",
    "errors": "e",
    "table": {"url": "sqlite:///t.db", "partition_key": "a"},
    "schema": {"fields": [{"name": "a"}, {"name": "b"}]},
}
