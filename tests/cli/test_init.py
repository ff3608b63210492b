"""`batchdrop init --from` infers a config that loads the sample it came from."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from .conftest import bd

ORDERS = (
    "order_id;placed_at;customer;total;paid;ship_date\n"
    "O-1001;2026-11-01T10:00:00Z;Acme, Inc.;19.90;true;2026-11-03\n"
    "O-1002;2026-11-01T11:30:00Z;Globex;5;false;\n"
    "O-1003;2026-11-02T09:15:00Z;Initech;123.45;true;2026-11-05\n"
)


def test_init_from_a_sample_infers_types_key_and_delimiter(tmp_path: Path) -> None:
    sample = tmp_path / "orders.csv"
    sample.write_text(ORDERS)
    r = bd("init", "--from", str(sample), cwd=tmp_path)

    assert r.code == 0, r.err
    assert "CHECK THE KEY: guessed order_id" in r.out
    cfg = yaml.safe_load((tmp_path / "batchdrop.yaml").read_text())
    types = {f["name"]: f["type"] for f in cfg["schema"]["fields"]}
    assert types == {
        "order_id": "string",
        "placed_at": "datetime",
        "customer": "string",
        "total": "number",
        "paid": "boolean",
        "ship_date": "date",
    }
    assert cfg["table"]["partition_key"] == "order_id" and "sort_key" not in cfg["table"]
    assert cfg["csv"] == {"delimiter": ";"}
    required = {f["name"] for f in cfg["schema"]["fields"] if f.get("constraints")}
    assert "ship_date" not in required and "customer" in required

    (tmp_path / "inbound").mkdir()
    (tmp_path / "inbound" / "orders.csv").write_text(ORDERS)
    loaded = bd("run", "--once", "--json", cwd=tmp_path)
    assert loaded.code == 0, loaded.err
    assert json.loads(loaded.out)["rows_loaded"] == 3
    item = json.loads(bd("get", "O-1002", "--json", cwd=tmp_path).out)
    assert item["total"] == 5 and item["paid"] is False and item["ship_date"] is None


def test_init_guesses_a_composite_key_when_no_column_is_unique(tmp_path: Path) -> None:
    sample = tmp_path / "enrol.csv"
    sample.write_text("student_id,fname,course\nA1,Ann,Maths\nA1,Ann,Art\nA2,Bob,Maths\n")
    r = bd("init", "--from", str(sample), cwd=tmp_path)

    assert "guessed student_id + course" in r.out
    cfg = yaml.safe_load((tmp_path / "batchdrop.yaml").read_text())
    assert (cfg["table"]["partition_key"], cfg["table"]["sort_key"]) == ("student_id", "course")


def test_init_refuses_to_overwrite(tmp_path: Path) -> None:
    (tmp_path / "batchdrop.yaml").write_text("keep: me\n")
    r = bd("init", cwd=tmp_path)
    assert r.code == 2 and "exists; pass --force" in r.err
    assert (tmp_path / "batchdrop.yaml").read_text() == "keep: me\n"


def test_a_unique_number_is_not_taken_for_the_key(tmp_path: Path) -> None:
    sample = tmp_path / "stock.csv"
    sample.write_text(
        "sku,warehouse,qty,updated_at\n"
        "SKU-1,LON,12,2026-11-20T10:00:00Z\nSKU-1,MAN,3,2026-11-20T10:05:00Z\n"
        "SKU-2,LON,0,2026-11-21T08:00:00Z\n"
    )
    r = bd("init", "--from", str(sample), cwd=tmp_path)

    assert "guessed sku + warehouse" in r.out


def test_a_key_that_repeats_in_the_sample_rejects_duplicates_instead_of_collapsing(
    tmp_path: Path,
) -> None:
    """No column set of the sample is unique: init writes `duplicates: reject` and says why,
    so a load rejects the file and lists the repeats rather than keeping one row per key."""
    rows = [f"2013,{1 + i % 2},{1 + i % 3},{i % 5}.25" for i in range(12)]
    (tmp_path / "flights.csv").write_text("year,month,day,delay\n" + "\n".join(rows) + "\n")
    r = bd("init", "--from", "flights.csv", cwd=tmp_path)

    assert r.code == 0, r.err
    assert "no set of up to 4 columns identifies a row" in r.out
    cfg = yaml.safe_load((tmp_path / "batchdrop.yaml").read_text())
    assert (cfg["table"]["partition_key"], cfg["table"]["sort_key"]) == ("month", "day")
    assert cfg["duplicates"] == "reject"
    v = bd("validate", "--json", "flights.csv", cwd=tmp_path)
    receipt = json.loads(v.out)
    assert v.code == 1 and receipt["status"] == "rejected" and receipt["rows_loaded"] == 0
    assert receipt["rows_invalid"] == 6 and receipt["rows_duplicate"] == 0
    assert receipt["errors"][0]["reason"] == "duplicate key: line 2 has the same key"
