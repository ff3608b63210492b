"""Keys of several columns: loaded into SQLite (a primary key over the columns) and into
DynamoDB (the columns joined into one text attribute, each also kept typed), and found again
by the API with one path segment per column."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from batchdrop.adapters import Backends
from batchdrop.config import Config, parse_config

from .conftest import BACKENDS, Api, _backend_env, create_dynamo_tables, csv_text, load

FIELDS = [
    {"name": "carrier", "type": "string"},
    {"name": "flight", "type": "integer"},
    {"name": "day", "type": "date"},
    {"name": "leg", "type": "integer"},
    {"name": "delay", "type": "number"},
]
HEADER = [f["name"] for f in FIELDS]
ROWS = [
    ["UA", "1545", "2013-01-01", "1", "2.5"],
    ["UA", "1545", "2013-01-01", "2", "-4"],
    ["UA", "1545", "2013-01-02", "1", "11"],
    ["UA", "1696", "2013-01-01", "1", "0"],
    ["AA", "1545", "2013-01-01", "1", "7"],
    ["AA/B", "9", "2013-01-03", "1", "1"],  # '/' in a composite partition's column
]


def composite_config(kind: str, root: Path, table: str, **extra: Any) -> Config:
    url = f"sqlite:///{root / 'batchdrop.db'}" if kind == "sqlite" else f"dynamodb://{table}"
    for d in ("inbound", "archive", "errors"):
        (root / d).mkdir(parents=True, exist_ok=True)
    data: dict[str, Any] = {
        "inbound": str(root / "inbound"),
        "archive": str(root / "archive"),
        "errors": str(root / "errors"),
        "table": {
            "url": url,
            "partition_key": ["carrier", "flight"],
            "sort_key": ["day", "leg"],
            **extra,
        },
        "schema": {"fields": FIELDS, "primaryKey": ["carrier", "flight", "day", "leg"]},
        "on_error": "skip_rows",
        "notify": [],
    }
    return parse_config(data, environ={})


@pytest.fixture(params=BACKENDS)
def flights(
    request: pytest.FixtureRequest, tmp_path: Path, unique: str
) -> Iterator[tuple[str, Config, Api]]:
    from batchdrop.api.app import create_app

    kind = _backend_env(request, request.param)
    config = composite_config(kind, tmp_path, f"flights-{unique}")
    if kind == "dynamodb":
        create_dynamo_tables(config)
    load(config, {"flights.csv": csv_text(HEADER, ROWS)})
    yield kind, config, Api(create_app(config))


def test_sqlite_has_a_primary_key_over_the_columns(tmp_path: Path) -> None:
    import sqlite3

    config = composite_config("sqlite", tmp_path, "t")
    load(config, {"flights.csv": csv_text(HEADER, ROWS)})
    db = sqlite3.connect(config.table.url.removeprefix("sqlite:///"))
    info = db.execute(f"PRAGMA table_info({config.table.table_name})").fetchall()
    pk = [name for _, name, *_, order in sorted(info, key=lambda r: r[5]) if order]
    assert pk == ["carrier", "flight", "day", "leg"]
    assert db.execute(f"SELECT count(*) FROM {config.table.table_name}").fetchone() == (6,)


def test_dynamodb_items_hold_the_joined_key_and_the_typed_columns(
    aws_env: str, tmp_path: Path, unique: str
) -> None:
    import boto3

    config = composite_config("dynamodb", tmp_path, f"flights-{unique}")
    create_dynamo_tables(config)
    load(config, {"flights.csv": csv_text(HEADER, ROWS)})
    ddb = boto3.client("dynamodb")
    desc = ddb.describe_table(TableName=config.table.table_name)["Table"]
    assert {k["AttributeName"]: k["KeyType"] for k in desc["KeySchema"]} == {
        "carrier#flight": "HASH",
        "day#leg": "RANGE",
    }
    item = ddb.get_item(
        TableName=config.table.table_name,
        Key={"carrier#flight": {"S": "UA#1545"}, "day#leg": {"S": "2013-01-01#2"}},
    )["Item"]
    assert item == {
        "carrier#flight": {"S": "UA#1545"},
        "day#leg": {"S": "2013-01-01#2"},
        "carrier": {"S": "UA"},
        "flight": {"N": "1545"},
        "day": {"S": "2013-01-01"},
        "leg": {"N": "2"},
        "delay": {"N": "-4"},
    }
    assert ddb.scan(TableName=config.table.table_name)["Count"] == 6


def test_named_key_attributes(aws_env: str, tmp_path: Path, unique: str) -> None:
    config = composite_config(
        "dynamodb", tmp_path, f"named-{unique}", partition_key_name="pk", sort_key_name="sk"
    )
    create_dynamo_tables(config)
    load(config, {"flights.csv": csv_text(HEADER, ROWS)})
    backends = Backends(config)
    try:
        got = backends.table.get(("UA", 1545, date(2013, 1, 2), 1))
        assert got is not None and got["delay"] == Decimal("11")
        assert "pk" not in got and "sk" not in got  # the joined attributes are not fields
    finally:
        backends.close()


def test_the_api_finds_an_item_by_its_columns(flights: tuple[str, Config, Api]) -> None:
    _, _, api = flights
    r = api.get("/items/UA/1545/2013-01-01/2")
    assert r.status_code == 200, r.text
    assert r.json() == {
        "carrier": "UA",
        "flight": 1545,
        "day": "2013-01-01",
        "leg": 2,
        "delay": -4,
    }
    assert api.get("/items/AA%2FB/9/2013-01-03/1").json()["carrier"] == "AA/B"
    missing = api.get("/items/UA/1545/2013-01-09/1")
    assert missing.status_code == 404
    assert "carrier = 'UA' and flight = '1545' and day = '2013-01-09'" in missing.json()["detail"]


def test_the_api_lists_a_composite_partition(flights: tuple[str, Config, Api]) -> None:
    _, _, api = flights
    body = api.get("/items/UA/1545").json()
    assert [(i["day"], i["leg"]) for i in body["items"]] == [
        ("2013-01-01", 1),
        ("2013-01-01", 2),
        ("2013-01-02", 1),
    ]
    assert [i["carrier"] for i in api.get("/items/AA%2FB/9").json()["items"]] == ["AA/B"]
    # begins_with on a composite sort key reads its joined text
    prefixed = api.get("/items/UA/1545", params={"begins_with": "2013-01-01#"}).json()
    assert [i["leg"] for i in prefixed["items"]] == [1, 2]
    # pages continue where they stopped
    first = api.get("/items/UA/1545", params={"limit": 2}).json()
    assert first["count"] == 2 and first["next_cursor"]
    rest = api.get("/items/UA/1545", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert [(i["day"], i["leg"]) for i in rest["items"]] == [("2013-01-02", 1)]
    assert rest["next_cursor"] is None


def test_the_api_names_the_columns_of_a_short_key(flights: tuple[str, Config, Api]) -> None:
    _, _, api = flights
    r = api.get("/items/UA")
    assert r.status_code == 400
    assert "partition key is carrier, flight: give 2 path segment(s)" in r.json()["detail"]
    bad = api.get("/items/UA/x")
    assert bad.status_code == 400 and "flight" in bad.json()["detail"]


def test_a_separator_in_a_key_value_rejects_the_row(tmp_path: Path) -> None:
    config = composite_config("sqlite", tmp_path, "t")
    from batchdrop.pipeline import Pipeline

    rows = [*ROWS, ["U#A", "1", "2013-01-01", "1", "1"]]
    (Path(config.inbound) / "f.csv").write_text(csv_text(HEADER, rows), encoding="utf-8")
    backends = Backends(config)
    try:
        receipt = Pipeline(config, backends=backends, notifiers=[]).process("f.csv")
    finally:
        backends.close()
    assert receipt.rows_loaded == 6 and receipt.rows_rejected == 1
    (error,) = receipt.errors
    assert (error["line"], error["column"], error["value"]) == (8, "carrier", "U#A")
    assert "holds '#', which joins the columns of the table key" in error["reason"]
