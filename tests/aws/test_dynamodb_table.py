"""DynamoTable against the moto server, with a fault-injecting HTTP proxy in front of it for the
throttling paths (its writes go on the wire, past botocore's client methods)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from batchdrop.errors import ConfigError, TransientError
from batchdrop.ports import Claim, FileRef
from batchdrop.report import Receipt
from batchdrop.tables.dynamodb import DynamoTable

from .conftest import Stack, create_table
from .fault_proxy import FaultProxy

pytestmark = pytest.mark.aws
TYPED_FIELDS = [
    {"name": "id", "type": "string"},
    {"name": "n", "type": "number"},
    {"name": "i", "type": "integer"},
    {"name": "b", "type": "boolean"},
    {"name": "d", "type": "date"},
    {"name": "ts", "type": "datetime"},
    {"name": "note", "type": "string"},
]
REF = FileRef(name="f.csv", size=1, version="v1", modified=0.0, url="s3://b/f.csv")


class FakeLedger:
    def __init__(self) -> None:
        self.recorded: list[tuple[str, Receipt]] = []

    def record(self, claim: Claim, state: str, receipt: Receipt) -> None:
        self.recorded.append((state, receipt))


@pytest.fixture
def flaky(stack: Stack) -> Iterator[FaultProxy]:
    """The proxy in front of the stack's server (batchdrop must never Scan through it)."""
    proxy = FaultProxy(stack.endpoint)
    try:
        yield proxy
    finally:
        proxy.close()
    assert proxy.scans == 0, "batchdrop must never Scan"


def typed_table(stack: Stack, flaky: FaultProxy, **aws: Any) -> DynamoTable:
    name = f"typed-{stack.suffix}"
    create_table(stack.ddb, name, key=("id",))
    config = stack.config(
        schema={"fields": TYPED_FIELDS},
        table={"url": f"dynamodb://{name}", "partition_key": "id"},
        aws={"endpoint_url": flaky.url, "region": "us-east-1", **aws},
    )
    table = DynamoTable(config)
    table.backoff_base = table.backoff_cap = 0.001
    return table


def row(i: int) -> tuple[Any, ...]:
    return (
        f"k{i:03d}",
        Decimal("12345678901234567890.123456789"),
        i,
        i % 2 == 0,
        dt.date(2026, 11, 27),
        dt.datetime(2026, 11, 27, 9, 30, tzinfo=dt.UTC),
        None if i % 3 else "",
    )


def load(table: DynamoTable, rows: list[tuple[Any, ...]]) -> FakeLedger:
    ledger = FakeLedger()
    claim = Claim("new", "run-1", REF)
    job = table.begin(claim, ledger)  # type: ignore[arg-type]
    assert job.write(rows, list(range(2, 2 + len(rows)))) == []
    job.commit(Receipt(file="f.csv", source=REF.url, version="v1", size=1))
    return ledger


def test_batches_of_25_exact_values_none_omitted(stack: Stack, flaky: FaultProxy) -> None:
    table = typed_table(stack, flaky)
    table.prepare()
    ledger = load(table, [row(i) for i in range(60)])
    assert sorted(len(b) for b in flaky.batches) == [10, 25, 25]
    assert [s for s, _ in ledger.recorded] == ["committed"]
    raw = stack.ddb.get_item(TableName=table.name, Key={"id": {"S": "k003"}})["Item"]
    assert raw == {
        "id": {"S": "k003"},
        "n": {"N": "12345678901234567890.123456789"},
        "i": {"N": "3"},
        "b": {"BOOL": False},
        "d": {"S": "2026-11-27"},
        "ts": {"S": "2026-11-27T09:30:00+00:00"},
        "note": {"S": ""},
    }
    assert "note" not in stack.ddb.get_item(TableName=table.name, Key={"id": {"S": "k001"}})["Item"]
    item = table.get(["k003"])
    assert item is not None and item["n"] == Decimal("12345678901234567890.123456789")
    assert item["i"] == 3 and isinstance(item["i"], int)
    assert table.get(["nope"]) is None


def test_no_request_holds_a_key_twice(stack: Stack, flaky: FaultProxy) -> None:
    table = typed_table(stack, flaky)
    rows = [row(i % 20) for i in range(40)]
    rows[-1] = ("k019", Decimal(7), 7, True, None, None, "last")
    load(table, rows)
    for batch in flaky.batches:
        keys = [item["id"]["S"] for item in batch]
        assert len(keys) == len(set(keys))
    assert sum(len(b) for b in flaky.batches) == 20
    assert table.get(["k019"])["note"] == "last"  # type: ignore[index]


def test_unprocessed_items_and_throttling_are_retried(stack: Stack, flaky: FaultProxy) -> None:
    table = typed_table(stack, flaky, max_workers=1)
    flaky.script = ["unprocessed-5", "throttle", "unprocessed-2"]
    load(table, [row(i) for i in range(30)])
    count = stack.ddb.scan(TableName=table.name, Select="COUNT")["Count"]
    assert count == 30
    # 25 → 5 left; 5 throttled; 5 → 2 left; 2 done; then the second batch of 5
    assert [len(b) for b in flaky.batches] == [25, 5, 5, 2, 5]


def test_bounded_retries_then_transient_error(stack: Stack, flaky: FaultProxy) -> None:
    table = typed_table(stack, flaky, max_retries=2, max_workers=2)
    flaky.always = "unprocessed-all"
    ledger = FakeLedger()
    job = table.begin(Claim("new", "r", REF), ledger)  # type: ignore[arg-type]
    job.write([row(i) for i in range(30)], list(range(30)))
    with pytest.raises(TransientError, match=r"left 25 item\(s\).*after 2 retries"):
        job.commit(Receipt(file="f.csv", source=REF.url, version="v1", size=1))
    assert ledger.recorded == []  # never "committed"
    assert len(flaky.batches) == 6  # two batches, 1 try + 2 retries each


def test_row_check_finds_what_dynamodb_refuses(stack: Stack, flaky: FaultProxy) -> None:
    table = typed_table(stack, flaky)
    check = table.row_check
    assert check is not None
    assert check(row(1)) is None
    assert check(("", *row(1)[1:])) == ("id", "a key attribute cannot be empty in DynamoDB")
    big = (*row(1)[:-1], "x" * (400 * 1024))
    column, reason = check(big)  # type: ignore[misc]
    assert column == "" and "400 KB" in reason
    too_precise = (row(1)[0], Decimal("1." + "1" * 38), *row(1)[2:])
    assert check(too_precise)[0] == "n"  # type: ignore[index]


def test_prepare_checks_existence_and_key(stack: Stack) -> None:
    missing = DynamoTable(
        stack.config(
            table={
                "url": "dynamodb://nope-" + stack.suffix,
                "partition_key": "student_id",
                "sort_key": "course",
            }
        )
    )
    with pytest.raises(ConfigError, match="does not exist"):
        missing.prepare()
    wrong = DynamoTable(
        stack.config(table={"url": f"dynamodb://{stack.table}", "partition_key": "student_id"})
    )
    with pytest.raises(ConfigError, match=r"has the key \['student_id', 'course'\]"):
        wrong.prepare()
    DynamoTable(stack.config()).prepare()


def test_query_pages_in_sort_order_with_begins_with(stack: Stack, flaky: FaultProxy) -> None:
    config = stack.config(aws={"endpoint_url": flaky.url, "region": "us-east-1"})
    table = DynamoTable(config)
    courses = [f"Course {c:02d}" for c in range(7)] + ["Modern Forensics", "Mod/ern + ü"]
    rows = [("A10002", "Sherlock", "Holmes", c) for c in courses] + [
        ("A10003", "Irene", "Adler", "Opera")
    ]
    job = table.begin(Claim("new", "r", REF), FakeLedger())  # type: ignore[arg-type]
    job.write(rows, list(range(len(rows))))
    job.commit(Receipt(file="f", source="s", version="v", size=0))
    seen, after, pages = [], None, 0
    while True:
        page = table.query("A10002", after=after, limit=4)
        seen += [i["course"] for i in page.items]
        pages += 1
        if page.next is None:
            break
        after = page.next
    assert seen == sorted(courses) and pages == 3
    page = table.query("A10002", begins_with="Mod")
    assert [i["course"] for i in page.items] == ["Mod/ern + ü", "Modern Forensics"]
    assert page.next is None
    assert table.query("nobody").items == []
