from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from batchdrop.config import TableSchema
from batchdrop.schema import RowConverter, parse_value


def converter(
    fields: list[dict[str, Any]], missing: list[str] | None = None, key: tuple[str, ...] = ()
) -> RowConverter:
    schema = TableSchema.model_validate(
        {"fields": fields, "missingValues": missing if missing is not None else [""]}
    )
    return RowConverter(schema, list(range(len(fields))), key)


@pytest.mark.parametrize(
    ("field", "text", "value"),
    [
        ({"type": "string"}, "Holmes, S.", "Holmes, S."),
        ({"type": "integer"}, "-42", -42),
        ({"type": "integer"}, "+7", 7),
        ({"type": "number"}, "0.1", Decimal("0.1")),
        (
            {"type": "number"},
            "12345678901234567890.123456789",
            Decimal("12345678901234567890.123456789"),
        ),
        ({"type": "number"}, "1e3", Decimal("1E+3")),
        ({"type": "boolean"}, "TRUE", True),
        ({"type": "boolean"}, "0", False),
        ({"type": "boolean", "trueValues": ["yes"], "falseValues": ["no"]}, "yes", True),
        ({"type": "date"}, "2026-11-27", date(2026, 11, 27)),
        ({"type": "date", "format": "%d/%m/%Y"}, "27/11/2026", date(2026, 11, 27)),
        ({"type": "datetime"}, "2026-11-27T08:30:00Z", datetime(2026, 11, 27, 8, 30, tzinfo=UTC)),
        ({"type": "datetime"}, "2026-11-27 08:30", datetime(2026, 11, 27, 8, 30)),
    ],
)
def test_values_convert_to_their_type(field: dict[str, Any], text: str, value: Any) -> None:
    conv = converter([{"name": "f", **field}])
    assert conv.convert([text]) == (value,)
    assert type(conv.convert([text])[0]) is type(value)  # type: ignore[index]
    assert conv.explain([text]) == []


@pytest.mark.parametrize(
    ("field", "text", "reason"),
    [
        ({"type": "integer"}, "1.5", "not an integer"),
        ({"type": "integer"}, " 1", "not an integer"),
        ({"type": "integer"}, "1_000", "not an integer"),
        ({"type": "integer"}, "٣", "not an integer"),
        ({"type": "number"}, "NaN", "not a number"),
        ({"type": "number"}, "Infinity", "not a number"),
        ({"type": "number"}, "1,5", "not a number"),
        ({"type": "boolean"}, "maybe", "not a boolean (use one of true, True, TRUE, 1, false"),
        ({"type": "date"}, "2026-02-30", "not a valid date"),
        ({"type": "date"}, "20261127", "not a date (expected YYYY-MM-DD)"),
        ({"type": "date", "format": "%d/%m/%Y"}, "2026-11-27", "not a date in the format %d/%m/%Y"),
        ({"type": "datetime"}, "yesterday", "not a datetime"),
        ({"constraints": {"pattern": "A[0-9]{5}"}}, "A123456", "does not match the pattern"),
        ({"constraints": {"enum": ["a", "b"]}}, "c", "not one of: a, b"),
        ({"constraints": {"minLength": 3}}, "ab", "shorter than 3 characters"),
        ({"constraints": {"maxLength": 3}}, "abcd", "longer than 3 characters"),
        ({"type": "integer", "constraints": {"minimum": 1}}, "0", "less than the minimum 1"),
        (
            {"type": "number", "constraints": {"maximum": "9.99"}},
            "10",
            "more than the maximum 9.99",
        ),
        (
            {"type": "date", "constraints": {"minimum": "2026-01-01"}},
            "2025-12-31",
            "less than the minimum 2026-01-01",
        ),
        ({"type": "integer", "constraints": {"enum": [1, 2]}}, "3", "not one of: 1, 2"),
        ({"constraints": {"required": True}}, "", "a value is required"),
    ],
)
def test_bad_values_are_explained(field: dict[str, Any], text: str, reason: str) -> None:
    conv = converter([{"name": "f", **field}])
    assert conv.convert([text]) is None
    [(column, value, why)] = conv.explain([text])
    assert (column, value) == ("f", text)
    assert reason in why


def test_missing_values_become_none_unless_required_or_key() -> None:
    conv = converter(
        [
            {"name": "k"},
            {"name": "n", "type": "integer"},
            {"name": "r", "constraints": {"required": True}},
        ],
        missing=["", "NULL"],
        key=("k",),
    )
    assert conv.convert(["a", "NULL", "x"]) == ("a", None, "x")
    assert conv.convert(["a", "", "x"]) == ("a", None, "x")
    assert conv.convert(["NULL", "1", "x"]) is None
    assert [p[0] for p in conv.explain(["", "x", "NULL"])] == ["k", "n", "r"]


def test_columns_are_read_from_their_header_position() -> None:
    schema = TableSchema.model_validate(
        {"fields": [{"name": "a"}, {"name": "b", "type": "integer"}]}
    )
    conv = RowConverter(schema, [2, 0], ("a",))
    assert conv.convert(["5", "ignored", "x"]) == ("x", 5)


def test_user_text_never_becomes_code() -> None:
    nasty = "'); import os; os._exit(1) #"
    conv = converter(
        [
            {"name": "f", "constraints": {"enum": [nasty], "pattern": ".*"}},
            {"name": "g", "type": "date", "format": nasty},
        ]
    )
    assert conv.convert([nasty, "x"]) is None
    assert conv.explain([nasty, "x"])[0][1] == "x"


def test_parse_value_types_a_key_given_as_text() -> None:
    schema = TableSchema.model_validate({"fields": [{"name": "n", "type": "integer"}]})
    assert parse_value(schema.fields[0], "12") == 12
    with pytest.raises(ValueError, match="n: not an integer"):
        parse_value(schema.fields[0], "x")


def test_invalid_constraint_bounds_are_config_errors() -> None:
    from batchdrop.config import parse_config
    from batchdrop.errors import ConfigError

    data = {
        "inbound": "i",
        "archive": "a",
        "errors": "e",
        "table": {"url": "sqlite:///t.db", "partition_key": "d"},
        "schema": {"fields": [{"name": "d", "type": "date", "constraints": {"minimum": "soon"}}]},
    }
    with pytest.raises(ConfigError, match="schema: field 'd': constraint minimum 'soon'"):
        parse_config(data, environ={})
