"""BatchWriteItem bodies made a column at a time: each item's JSON equals ``ItemCodec.item`` of
its row, whatever the values (unicode, quotes, backslashes, control characters, numbers with
exponents, dates, booleans, None, mixed types), composite keys included."""

from __future__ import annotations

import datetime as dt
import json
import random
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batchdrop.config import Config, parse_config
from batchdrop.tables.dynamodb_body import ItemText, body, value_text
from batchdrop.tables.dynamodb_items import ItemCodec, encode

FIELDS = [
    {"name": "id", "type": "string"},
    {"name": "n", "type": "number"},
    {"name": "i", "type": "integer"},
    {"name": "flag", "type": "boolean"},
    {"name": "day", "type": "date"},
    {"name": "at", "type": "datetime"},
    {"name": 'no"te\\ %s ü', "type": "string"},
]
NASTY = [
    'a"b',
    "back\\slash",
    "tab\there",
    "nl\nx",
    "\x00\x01\x1f\x7f",
    "é ü 中文 🎉",
    "%s %d %%",
    "",
]


def config(fields: list[dict[str, Any]] = FIELDS, **table: Any) -> Config:
    return parse_config(
        {
            "inbound": "i",
            "archive": "a",
            "errors": "e",
            "table": {"url": "dynamodb://t", "partition_key": "id", **table},
            "schema": {"fields": fields},
        },
        environ={},
    )


def same(codec: ItemCodec, rows: list[tuple[Any, ...]]) -> None:
    texts = ItemText(codec).items(rows)
    assert len(texts) == len(rows)
    for text, row in zip(texts, rows, strict=True):
        assert json.loads(text) == codec.item(row), (text, row)


def typed_row(r: random.Random, k: int, nones: bool) -> tuple[Any, ...]:
    def maybe(v: Any) -> Any:
        return None if nones and r.random() < 0.3 else v

    exp = r.randint(-40, 40)
    return (
        f"k{k}{r.choice(NASTY)}",
        maybe(Decimal(f"{r.randint(-(10**20), 10**20)}E{exp}")),
        maybe(r.randint(-(10**30), 10**30)),
        maybe(r.random() < 0.5),
        maybe(dt.date(2000, 1, 1) + dt.timedelta(days=r.randint(0, 20000))),
        maybe(dt.datetime(2026, 11, 27, 9, 30, r.randint(0, 59), tzinfo=dt.UTC)),
        maybe(r.choice(NASTY) + str(k)),
    )


@pytest.mark.parametrize("nones", [False, True])
def test_typed_rows_equal_the_codecs_items(nones: bool) -> None:
    r = random.Random(11)
    codec = ItemCodec(config())
    same(codec, [typed_row(r, k, nones) for k in range(500)])


def test_a_column_of_mixed_types_and_all_none() -> None:
    codec = ItemCodec(config())
    base = typed_row(random.Random(1), 0, False)
    rows = [
        (base[0], 7, Decimal("1E+3"), True, base[4], base[5], None),
        (
            base[0],
            Decimal("-0.000"),
            True,
            1,
            dt.datetime(2026, 1, 2, 3, 4),
            dt.date(2026, 1, 2),
            5,
        ),
        (base[0], None, None, None, None, None, None),
    ]
    same(codec, rows)


def test_no_column_always_present() -> None:
    codec = ItemCodec(config())
    same(codec, [(None,) * 7, ("x", None, None, None, None, None, None), (None, 1, *(None,) * 5)])


def test_composite_keys_are_joined_as_the_codec_joins_them() -> None:
    fields = [
        {"name": "org", "type": "string"},
        {"name": "num", "type": "number"},
        {"name": "day", "type": "date"},
        {"name": "v", "type": "string"},
    ]
    cfg = config(fields, partition_key=["org", "num"], sort_key=["day", "v"])
    codec = ItemCodec(cfg)
    assert codec.joined  # the config really makes joined attributes
    rows = [
        ('a"c', Decimal("1.500"), dt.date(2026, 1, 1), "x#y"),
        ("é", Decimal("15E-1"), dt.date(2026, 1, 2), None),
        ("z", Decimal("0E+5"), dt.date(2026, 1, 3), "\\"),
    ]
    same(codec, rows)


values = st.one_of(
    st.none(),
    st.text(),
    st.booleans(),
    st.integers(),
    st.decimals(allow_nan=False, allow_infinity=False),
    st.dates(),
    st.datetimes(timezones=st.none() | st.just(dt.UTC)),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.text(min_size=1), *[values] * 6), min_size=1, max_size=30))
def test_any_values(rows: list[tuple[Any, ...]]) -> None:
    same(ItemCodec(config()), rows)


@given(values.filter(lambda v: v is not None))
def test_value_text_is_encode(value: Any) -> None:
    assert json.loads(value_text(value)) == encode(value)


def test_value_text_refuses_what_encode_refuses() -> None:
    with pytest.raises(TypeError, match="cannot store a float"):
        value_text(1.5)


def test_body_is_a_batch_write_item_request() -> None:
    codec = ItemCodec(config())
    rows = [typed_row(random.Random(3), k, True) for k in range(25)]
    data = body('tab"le', ItemText(codec).items(rows))
    data.decode("ascii")  # non-ASCII is escaped
    assert json.loads(data) == {
        "RequestItems": {'tab"le': [{"PutRequest": {"Item": codec.item(row)}} for row in rows]},
        "ReturnConsumedCapacity": "TOTAL",
    }
