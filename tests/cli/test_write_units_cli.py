"""What the CLI says of write units: `validate` of a file for a DynamoDB table estimates them
and their cost before anything is written (a dry run needs no AWS); a SQLite table has none to
show; `runs` lists the units a load consumed."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from batchdrop.ports import FileRef
from batchdrop.report import Receipt
from batchdrop.tables.sqlite_ledger import SqliteLedger

from .conftest import bd


def dynamodb_config(example: Path, **aws: float) -> None:
    path = example / "batchdrop.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["table"]["url"] = "dynamodb://students"
    data["aws"] = {"region": "us-east-1", **aws}
    path.write_text(yaml.safe_dump(data), encoding="utf-8")


def test_validate_estimates_write_units_for_dynamodb(example: Path) -> None:
    dynamodb_config(example, write_unit_price=1.25)
    rows = ["student_id,fname,lname,course"]
    rows += [f"A{i:05d},Ada,{'L' * 40},Chemistry" for i in range(3000)]
    (example / "inbound" / "many.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    shown = bd("validate", "inbound/many.csv", cwd=example)
    assert shown.code == 0, shown.err
    # every item is under 1 KB: one unit each, $1.25 per million
    assert "  write units: 3,000, about $0.0038 at $1.25 per million\n" in shown.out
    as_json = bd("validate", "inbound/many.csv", "--json", cwd=example)
    receipt = json.loads(as_json.out)
    assert receipt["write_units"] == 3000
    assert receipt["write_cost_usd"] == 3000 * 1.25 / 1e6
    assert not (example / "students.db").exists()  # nothing written anywhere


def test_validate_of_an_invalid_file_estimates_nothing(example: Path) -> None:
    dynamodb_config(example)
    bad = example / "inbound" / "bad.csv"
    bad.write_text("student_id,fname,lname,course\nX1,,,\n", encoding="utf-8")
    shown = bd("validate", str(bad), "--json", cwd=example)
    assert shown.code == 1
    assert json.loads(shown.out)["write_units"] is None


def test_sqlite_shows_no_write_units(example: Path) -> None:
    shown = bd("validate", "inbound/students.csv", cwd=example)
    assert shown.code == 0 and "write units" not in shown.out
    loaded = bd("process", "inbound/students.csv", "--json", cwd=example)
    assert json.loads(loaded.out)["write_units"] is None
    runs = bd("runs", cwd=example)
    assert runs.code == 0 and "write units" not in runs.out


def test_runs_lists_the_write_units_of_a_load(example: Path) -> None:
    ledger = SqliteLedger.open(str(example / "students.db"))
    ref = FileRef("big.csv", 10, "v1", 0.0, "/in/big.csv")
    claim = ledger.claim(ref)
    receipt = Receipt(file="big.csv", source=ref.url, version="v1", size=10, run_id=claim.run_id)
    receipt.status, receipt.rows_read, receipt.rows_loaded = "loaded", 40012, 40012
    receipt.write_units, receipt.write_cost_usd = 40012.0, 0.0250075
    ledger.record(claim, "done", receipt)
    ledger.conn.close()
    runs = bd("runs", cwd=example)
    assert runs.code == 0, runs.err
    assert "write units" in runs.out and "40,012" in runs.out.split("write units")[1]
    as_json = json.loads(bd("runs", "--json", cwd=example).out.splitlines()[0])
    assert as_json["receipt"]["write_units"] == 40012.0


def test_validate_refuses_what_dynamodb_would_refuse(example: Path) -> None:
    """A dry run checks what only DynamoDB refuses (an item over 400 KB), as a load does:
    the row is named by line before anything is written; the same file is valid for SQLite."""
    rows = ["student_id,fname,lname,course", "A00001,Ada,Lovelace,Chemistry"]
    rows += ["A00002,Ada," + "L" * 410_000 + ",Chemistry"]
    rows += [f"A{i:05d},Ada,Byron,Latin" for i in range(3, 12)]
    (example / "inbound" / "wide.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    path = example / "batchdrop.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["csv"] = {**data.get("csv", {}), "max_field_size": 1_000_000}
    lname = next(f for f in data["schema"]["fields"] if f["name"] == "lname")
    lname["constraints"].pop("maxLength", None)
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    local = bd("validate", "inbound/wide.csv", "--json", cwd=example)
    assert local.code == 0, local.err
    dynamodb_config(example)
    shown = bd("validate", "inbound/wide.csv", "--json", cwd=example)
    receipt = json.loads(shown.out)
    assert receipt["rows_rejected"] == 1 and receipt["rows_loaded"] == 10
    assert receipt["errors"][0]["line"] == 3
    assert "over DynamoDB's limit" in receipt["errors"][0]["reason"]
