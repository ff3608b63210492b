"""DynamoDB's row check decided a chunk at a time: ``first`` names the first row that may be
refused (never after one that is), and says None for chunks of ordinary rows; the write units
it counts are DynamoDB's, one per started KB of each item."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from batchdrop.config import Config, parse_config
from batchdrop.files.local import LocalStore
from batchdrop.passes import scan_file
from batchdrop.report import Receipt, RejectedRowsReport
from batchdrop.tables.dynamodb_items import MAX_ITEM_BYTES, ItemCodec
from batchdrop.tables.dynamodb_units import ItemCheck, write_units

FIELDS = [
    {"name": "id", "type": "string"},
    {"name": "n", "type": "number"},
    {"name": "i", "type": "integer"},
    {"name": "flag", "type": "boolean"},
    {"name": "day", "type": "date"},
    {"name": "at", "type": "datetime"},
    {"name": "note", "type": "string"},
]


def config(fields: list[dict[str, Any]] = FIELDS, **table: Any) -> Config:
    return parse_config(
        {
            "inbound": "i",
            "archive": "a",
            "errors": "e",
            "table": {"url": "dynamodb://t", "partition_key": "id", **table},
            "schema": {"fields": fields, "missingValues": ["NA"]},
        },
        environ={},
    )


def check_of(cfg: Config | None = None) -> ItemCheck:
    return ItemCodec(cfg or config()).check  # type: ignore[return-value]


def row(k: int, **change: Any) -> tuple[Any, ...]:
    values = {
        "id": f"k{k:05d}",
        "n": Decimal("12345678901234567890.123456789"),
        "i": k,
        "flag": k % 2 == 0,
        "day": dt.date(2026, 11, 27),
        "at": dt.datetime(2026, 11, 27, 9, 30, tzinfo=dt.UTC),
        "note": None if k % 3 else "",
    }
    values.update(change)
    return tuple(values.values())


def chunk(n: int = 2048) -> list[tuple[Any, ...]]:
    return [row(i) for i in range(n)]


def test_a_chunk_of_ordinary_rows_cannot_fail() -> None:
    check = check_of()
    rows = chunk()
    assert check.first(rows) is None
    assert all(check(r) is None for r in rows)
    assert check.first([]) is None
    # together over 400 KB, each far under it
    wide = [row(i, note="ü" * 300) for i in range(2048)]
    assert check.first(wide) is None


def test_the_schema_says_which_keys_may_be_empty() -> None:
    """A key is required: with "" a missing value (the default), or a minLength, the converter
    never gives an empty key, and its column is not looked at."""
    default = parse_config(
        {
            "inbound": "i",
            "archive": "a",
            "errors": "e",
            "table": {"url": "dynamodb://t", "partition_key": "id"},
            "schema": {"fields": FIELDS},
        },
        environ={},
    )
    assert check_of(default).may_be_empty == []
    long = [{"name": "id", "constraints": {"minLength": 1}}, *FIELDS[1:]]
    assert check_of(config(long)).may_be_empty == []
    assert check_of(config()).may_be_empty == [0]  # missingValues: ["NA"]
    assert check_of(config(sort_key="i")).may_be_empty == [0]  # an integer is never ""


@pytest.mark.parametrize(
    ("change", "column", "reason"),
    [
        ({"id": ""}, "id", "a key attribute cannot be empty in DynamoDB"),
        ({"i": 10**38 + 1}, "i", "more than 38 significant digits"),
        ({"i": -(10**39) + 1}, "i", "more than 38 significant digits"),
        ({"n": Decimal("1" * 39)}, "n", "more than 38 significant digits"),
        ({"n": Decimal("1E+126")}, "n", "out of DynamoDB's number range"),
        ({"n": Decimal("1E-131")}, "n", "out of DynamoDB's number range"),
        ({"note": "x" * MAX_ITEM_BYTES}, "", "over DynamoDB's limit of 409600 bytes (400 KB)"),
        ({"note": "é" * (MAX_ITEM_BYTES // 2)}, "", "(400 KB)"),
    ],
)
@pytest.mark.parametrize("at", [0, 777, 2047])
def test_first_finds_a_refused_row_at_or_before_it(
    change: dict[str, Any], column: str, reason: str, at: int
) -> None:
    check = check_of()
    rows = chunk()
    rows[at] = row(at, **change)
    found = check(rows[at])
    assert found is not None and found[0] == column and reason in found[1]
    first = check.first(rows)
    assert first is not None and first <= at
    assert all(check(r) is None for r in rows[first:at])  # the walk from there finds it


def test_near_the_limits_is_not_over_them() -> None:
    """Rows at DynamoDB's limits pass both ways; a chunk-wide bound that is loose sends the
    walk to the right row, not to the first."""
    check = check_of()
    rows = chunk()
    rows[5] = row(5, i=10**38 - 1, n=Decimal("9.99E+125"))
    rows[6] = row(6, n=Decimal("-1E-130"), i=-(10**38) + 1)
    assert check.first(rows) is None
    big = row(9, note="x" * (MAX_ITEM_BYTES - 200))
    assert check(big) is None  # 409,400 characters, and names: under the limit
    rows[9] = big
    first = check.first(rows)
    assert first == 9 or first is None
    rows[1000] = row(1000, note="x" * MAX_ITEM_BYTES)
    assert check.first(rows) in (9, 1000)


def test_an_empty_key_string_is_found_when_empty_is_not_a_missing_value() -> None:
    check = check_of()
    rows = chunk(10)
    rows[4] = row(4, id="")
    assert check.first(rows) == 4


def test_constraints_that_keep_integers_small_skip_their_test() -> None:
    fields = [
        *FIELDS[:2],
        {"name": "i", "type": "integer", "constraints": {"minimum": -5, "maximum": 10**6}},
        *FIELDS[3:],
    ]
    check = check_of(config(fields))
    assert check.ints == [] and check.int_chars == {2: 7}
    assert check.first(chunk()) is None


def random_row(rng: random.Random, i: int, int_key: bool = False) -> tuple[Any, ...]:
    """Mostly ordinary values, with each limit reached or passed now and then; as the
    converter gives them (a key column is never None)."""
    pick = rng.random
    note: str | None = rng.choice([None, "", "short", "ü" * rng.randrange(1, 300)])
    if pick() < 0.02:
        note = rng.choice("xé€😀") * rng.choice(
            [MAX_ITEM_BYTES // 4 - 80, MAX_ITEM_BYTES // 3, MAX_ITEM_BYTES // 2, MAX_ITEM_BYTES]
        )
    digits = rng.choice([1, 5, 37, 38, 39, 40]) if pick() < 0.05 else rng.randrange(1, 12)
    number = Decimal(f"{rng.choice(['', '-'])}{rng.randrange(1, 10)}{'7' * (digits - 1)}")
    if pick() < 0.05:
        number = number.scaleb(rng.choice([-131, -130, -100, 100, 125, 126]) - number.adjusted())
    if pick() < 0.02:
        number = Decimal(0).scaleb(rng.randrange(-200, 200))
    integer = rng.choice([0, 1, -1, 10**37, 10**38 - 1, 10**38, -(10**38), 10**40])
    return (
        "" if pick() < 0.01 else f"k{i}",
        None if pick() < 0.1 else number,
        None
        if pick() < 0.1 and not int_key
        else (integer if pick() < 0.1 else rng.randrange(-9999, 9999)),
        pick() < 0.5,
        None if pick() < 0.2 else dt.date(2026, 1, 1) + dt.timedelta(days=i % 900),
        dt.datetime(2026, 11, 27, 9, 30, 5, 123456, tzinfo=dt.UTC),
        note,
    )


@pytest.mark.parametrize("seed", range(40))
def test_first_never_misses_a_refused_row(seed: int) -> None:
    """Property: for random chunks (some rows over a limit, some at it), no row before
    ``first`` is refused, and None means no row is; the units counted are each row's."""
    rng = random.Random(seed)
    int_key = seed % 2 == 1
    check = check_of(config(**({"sort_key": "i"} if int_key else {})))
    for _ in range(5):
        rows = [random_row(rng, i, int_key) for i in range(rng.choice([1, 3, 50, 400]))]
        verdicts = [check(r) for r in rows]
        refused = [k for k, v in enumerate(verdicts) if v is not None]
        first = check.first(rows)
        if refused:
            assert first is not None and first <= refused[0]
        elif first is not None:
            assert first < len(rows)  # a row that may fail, and does not: allowed, not wanted
        ok = [r for r, v in zip(rows, verdicts, strict=True) if v is None]
        sizes = [check.codec.item_size(r) for r in ok]
        assert check.chunk_units(ok) == sum(map(write_units, sizes))


def test_composite_keys_count_their_joined_attribute() -> None:
    cfg = config(partition_key=["id", "i"], sort_key="day")
    check = check_of(cfg)
    rows = chunk(5)
    assert check.first(rows) is None
    size = check.codec.item_size(rows[0])
    assert size == check.codec.item_size(rows[0][:2] + rows[0][2:])
    joined = next(iter(check.codec.joined))[0]
    assert joined in check.codec.item(rows[0])
    assert check.chunk_units(rows) == 5


def test_write_units_are_one_per_started_kilobyte() -> None:
    """1024 bytes is 1 unit, 1025 is 2, whichever way the units are counted."""
    fields = [{"name": "id", "type": "string"}, {"name": "v", "type": "string"}]
    check = check_of(config(fields))
    # names "id" and "v" (3 bytes) and the key "k" (1 byte): 4 bytes besides v's value
    exact = ("k", "x" * 1020)
    over = ("k", "x" * 1021)
    assert check.codec.item_size(exact) == 1024 and check.codec.item_size(over) == 1025
    assert check.chunk_units([exact] * 3) == 3
    assert check.chunk_units([over] * 3) == 6
    assert check.chunk_units([exact, over, ("k", "é" * 1000)]) == 1 + 2 + 2
    assert check.chunk_units([("k", "é" * 600)] * 2) == 4  # 604 characters, 1,204 bytes
    check.counting = True
    assert check.first([exact, over]) is None and check.units == 3
    assert check(over) is None and check.units == 5
    assert check(("", "x")) is not None and check.units == 5  # a refused row costs nothing


def test_a_pass_counts_the_units_of_each_row_it_lets_through_once(tmp_path: Path) -> None:
    """Read by the engine's own pass: whichever rows go through ``first`` and which through
    the row-by-row walk (a chunk with a row ``first`` cannot clear, a row DynamoDB refuses, a
    row that does not convert), every row that passes is counted once, and no other."""
    cfg = parse_config(
        {
            "inbound": str(tmp_path),
            "archive": "a",
            "errors": "e",
            "on_error": "skip_rows",
            "csv": {"max_field_size": 600_000},
            "table": {"url": "dynamodb://t", "partition_key": "id"},
            "schema": {"fields": [{"name": "id"}, {"name": "v"}, {"name": "n", "type": "integer"}]},
        },
        environ={},
    )
    lines, units = ["id,v,n"], 0
    for i in range(5000):
        v = "x" * (200_000 if i == 3000 else 500_000 if i == 4000 else 1500 if i % 7 else 10)
        n = "nan" if i == 1000 else str(i)  # not an integer: not converted
        lines.append(f"k{i},{v},{n}")
        if i not in (1000, 4000):
            units += write_units(len(f"k{i}") + len("idvn") + len(v) + (len(n) + 1) // 2 + 1)
    (tmp_path / "f.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    check = ItemCodec(cfg).check
    assert isinstance(check, ItemCheck)
    check.counting = True
    store = LocalStore(str(tmp_path))
    ref = store.stat("f.csv")
    assert ref is not None
    receipt = Receipt(file="f.csv", source=ref.url, version=ref.version, size=ref.size)
    report = RejectedRowsReport("f.csv")
    try:
        scan = scan_file(cfg, store, ref, receipt, report, row_check=check)
    finally:
        report.discard()
    assert scan.read == 5000 and scan.invalid == 2
    assert [e["line"] for e in receipt.errors] == [1002, 4002]
    assert "400 KB" in receipt.errors[1]["reason"]
    assert check.passed == 4998 and check.units == units


@pytest.mark.parametrize(
    ("table", "change", "attr", "role", "limit"),
    [
        ({}, {"id": "k" * 2049}, "id", "partition key", 2048),
        ({}, {"id": "é" * 1025}, "id", "partition key", 2048),  # 2050 bytes in UTF-8
        ({"partition_key": "i", "sort_key": "id"}, {"id": "k" * 1025}, "id", "sort key", 1024),
        ({"sort_key": ["note", "i"]}, {"note": "n" * 1020, "i": 12345}, "note#i", "sort key", 1024),
    ],
)
@pytest.mark.parametrize("at", [0, 1500])
def test_a_key_over_dynamodbs_size_limit_is_a_refused_row(
    table: dict[str, Any], change: dict[str, Any], attr: str, role: str, limit: int, at: int
) -> None:
    """DynamoDB refuses a whole request for one key over 2048 bytes (partition) or 1024
    bytes (sort): the row is rejected with its line instead, and its neighbours load."""
    check = check_of(config(**table))
    rows = chunk()
    if "note" in change:  # a composite sort key: every row's note holds a value
        rows = [row(i, note="n") for i in range(2048)]
    rows[at] = row(at, **change)
    found = check(rows[at])
    assert found is not None and found[0] == attr
    assert f"over DynamoDB's limit of {limit} bytes for a {role}" in found[1]
    first = check.first(rows)
    assert first is not None and first <= at
    assert all(check(r) is None for r in rows[first:at])


@pytest.mark.parametrize(
    ("table", "value"),
    [
        ({}, {"id": "k" * 2048}),
        ({}, {"id": "é" * 1024}),
        ({"partition_key": "i", "sort_key": "id"}, {"id": "k" * 1024}),
        ({"sort_key": ["note", "i"]}, {"note": "n" * (1024 - len("#7"))}),
    ],
)
def test_a_key_at_dynamodbs_size_limit_passes(table: dict[str, Any], value: dict[str, Any]) -> None:
    check = check_of(config(**table))
    rows = [row(i, note="n", i=7) for i in range(100)]
    rows[50] = row(50, **{"note": "n", "i": 7, **value})
    assert check(rows[50]) is None
    assert all(check(r) is None for r in rows[check.first(rows) or 100 :])
