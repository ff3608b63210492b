"""SQLite as its users query it: number columns hold numbers (SQL sorts and sums them as
numbers), while `get` still prints each value the file held, digit for digit."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest
import yaml

from .conftest import bd

CONFIG = {
    "inbound": "./inbound",
    "archive": "./archive",
    "errors": "./errors",
    "table": {"url": "sqlite:///shop.db", "name": "items", "partition_key": "sku"},
    "schema": {
        "fields": [
            {"name": "sku"},
            {"name": "price", "type": "number"},
            {"name": "qty", "type": "integer"},
            {"name": "sold", "type": "date"},
            {"name": "active", "type": "boolean"},
        ]
    },
}
# in text order "9.5" is the largest price; in number order 100.25 is
PRICES = {"a": "9.5", "b": "10", "c": "100.25", "d": "0.1", "e": "-3"}
# values no REAL holds exactly, and forms a REAL holds but writes otherwise
EDGES = {
    "x1": "12345678901234567890",
    "x2": "1e400",
    "x3": "1234567890123456789.123456789",
    "x4": "-0",
    "x5": "1.50",
    "x6": "0.30000000000000004",
    "x7": "1e-400",
}


def setup(tmp_path: Path, prices: dict[str, str], legacy: bool = False) -> sqlite3.Connection:
    (tmp_path / "batchdrop.yaml").write_text(yaml.safe_dump(CONFIG))
    if legacy:  # the table as batchdrop made it when numbers were TEXT
        db = sqlite3.connect(tmp_path / "shop.db")
        db.execute(
            'CREATE TABLE "items" ("sku" TEXT NOT NULL, "price" TEXT, "qty" INTEGER, '
            '"sold" TEXT, "active" INTEGER, "_batchdrop_run" INTEGER, PRIMARY KEY ("sku")) '
            "WITHOUT ROWID"
        )
        db.commit()
        db.close()
    (tmp_path / "inbound").mkdir()
    lines = ["sku,price,qty,sold,active"]
    lines += [
        f"{sku},{price},3,2026-11-0{i % 9 + 1},true"
        for i, (sku, price) in enumerate(prices.items())
    ]
    (tmp_path / "inbound" / "prices.csv").write_text("\n".join(lines) + "\n")
    r = bd("run", "--once", "--json", cwd=tmp_path)
    assert r.code == 0, r.err
    assert json.loads(r.out.splitlines()[0])["rows_loaded"] == len(prices)
    return sqlite3.connect(tmp_path / "shop.db")


def get_json(tmp_path: Path, sku: str) -> dict:
    r = bd("get", sku, "--json", cwd=tmp_path)
    assert r.code == 0, r.err
    return json.loads(r.out, parse_float=str, parse_int=str, parse_constant=str)


def test_sql_sorts_and_sums_numbers_as_numbers(tmp_path: Path) -> None:
    db = setup(tmp_path, PRICES)
    assert db.execute("SELECT max(price), min(price), sum(price) FROM items").fetchone() == (
        100.25,
        -3,
        116.85,
    )
    assert [r[0] for r in db.execute("SELECT sku FROM items ORDER BY price")] == list("edabc")
    types = dict(db.execute("SELECT sku, typeof(price) FROM items").fetchall())
    assert types == {"a": "real", "b": "integer", "c": "real", "d": "real", "e": "integer"}
    assert db.execute("SELECT DISTINCT typeof(qty) FROM items").fetchall() == [("integer",)]


def test_get_prints_the_value_the_file_held(tmp_path: Path) -> None:
    db = setup(tmp_path, EDGES)
    stored = dict(db.execute("SELECT sku, typeof(price) FROM items").fetchall())
    # a REAL where it holds the value, else the exact text (a BLOB: NUMERIC affinity would
    # round text that looks like a number)
    assert stored == {
        "x1": "blob",
        "x2": "blob",
        "x3": "blob",
        "x4": "integer",
        "x5": "real",
        "x6": "real",
        "x7": "blob",
    }
    shown = {sku: get_json(tmp_path, sku)["price"] for sku in EDGES}
    assert shown == {
        "x1": "12345678901234567890",
        "x2": "1E+400",
        "x3": "1234567890123456789.123456789",
        "x4": "0",
        "x5": "1.5",  # the same number; trailing zeros are not kept (nor by DynamoDB)
        "x6": "0.30000000000000004",
        "x7": "1E-400",
    }


def test_get_json_types(tmp_path: Path) -> None:
    setup(tmp_path, PRICES)
    r = bd("get", "d", "--json", cwd=tmp_path)
    assert r.out.strip() == (
        '{"sku": "d", "price": 0.1, "qty": 3, "sold": "2026-11-04", "active": true}'.replace(
            " ", ""
        )
    )


def test_a_table_made_with_text_numbers_still_loads(tmp_path: Path) -> None:
    db = setup(tmp_path, {**PRICES, **EDGES}, legacy=True)
    assert db.execute("SELECT DISTINCT typeof(price) FROM items").fetchall() != []
    assert get_json(tmp_path, "c")["price"] == "100.25"
    assert get_json(tmp_path, "x3")["price"] == "1234567890123456789.123456789"
    (decl,) = [r[2] for r in db.execute("PRAGMA table_info(items)") if r[1] == "price"]
    assert decl == "TEXT"  # left as it was made


#: integers a DynamoDB number holds and SQLite's 64 bits do not, and the bounds themselves
BIG = {"b1": "99999999999999999999999", "b2": "-9223372036854775809", "b3": "9223372036854775807"}
KEYED = {
    **CONFIG,
    "table": {"url": "sqlite:///ids.db", "name": "ids", "partition_key": "id"},
    "schema": {"fields": [{"name": "id", "type": "integer"}, {"name": "qty", "type": "integer"}]},
}


@pytest.mark.parametrize("writer", [False, True], ids=["in-process", "writer-process"])
def test_integers_beyond_64_bits_load_and_read_back_exactly(tmp_path: Path, writer: bool) -> None:
    """A value SQLite cannot bind as an integer is kept as its text, as a key or not, and
    ``get`` finds and prints it; it does not fail the file."""
    (tmp_path / "batchdrop.yaml").write_text(yaml.safe_dump(KEYED))
    (tmp_path / "inbound").mkdir()
    rows = [f"{v},{v}" for v in BIG.values()] + ["7,8"]
    (tmp_path / "inbound" / "ids.csv").write_text("id,qty\n" + "\n".join(rows) + "\n")
    env = None
    if writer:  # every file through the writer process, as a big file goes
        hook = tmp_path / "hook"
        hook.mkdir()
        (hook / "sitecustomize.py").write_text(
            "from batchdrop.tables import sqlite_load\nsqlite_load.WRITER_MIN_BYTES = 0\n"
        )
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(hook), *filter(None, [os.environ.get("PYTHONPATH")])])}  # fmt: skip
    r = bd("run", "--once", "--json", cwd=tmp_path, env=env)
    assert r.code == 0, r.err
    assert json.loads(r.out.splitlines()[0])["rows_loaded"] == 4
    db = sqlite3.connect(tmp_path / "ids.db")
    stored = dict(db.execute("SELECT CAST(id AS TEXT), typeof(qty) FROM ids").fetchall())
    assert stored == {BIG["b1"]: "blob", BIG["b2"]: "blob", BIG["b3"]: "integer", "7": "integer"}
    for value in BIG.values():
        got = bd("get", "--json", "--", value, cwd=tmp_path)
        assert got.code == 0, got.err
        assert json.loads(got.out) == {"id": int(value), "qty": int(value)}
