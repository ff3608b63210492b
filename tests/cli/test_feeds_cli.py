"""Feeds on the command line: one deployment, three feeds on SQLite (two feeds in one database
file, one in another), each file loaded into its own feed's table, and a file that matches no
feed rejected with a receipt that says why."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from .conftest import bd

CONFIG = """
inbound: ./inbound
archive: ./archive
errors: ./errors
notify: [./receipts.jsonl]
on_error: skip_rows
feeds:
  - name: students
    match: {prefix: students/}
    table: {url: "sqlite:///school.db", name: students, partition_key: id}
    schema:
      fields: [{name: id}, {name: name}]
  - name: grades
    match: {glob: "grades_*.csv"}
    table: {url: "sqlite:///school.db", name: grades, partition_key: id, sort_key: course}
    schema:
      fields: [{name: id}, {name: course}, {name: grade, type: integer}]
  - name: rooms
    match: {prefix: rooms/}
    table: {url: "sqlite:///rooms.db", name: rooms, partition_key: room}
    schema:
      fields: [{name: room}, {name: seats, type: integer}]
"""


@pytest.fixture
def school(tmp_path: Path) -> Path:
    (tmp_path / "batchdrop.yaml").write_text(CONFIG)
    inbound = tmp_path / "inbound"
    (inbound / "students").mkdir(parents=True)
    (inbound / "rooms").mkdir()
    (inbound / "students" / "s1.csv").write_text("id,name\nA1,Ada\nA2,Alan\n")
    (inbound / "grades_2026.csv").write_text("id,course,grade\nA1,maths,17\nA2,maths,x\n")
    (inbound / "rooms" / "r1.csv").write_text("room,seats\nB12,30\n")
    (inbound / "teachers.csv").write_text("id,name\nT1,Grace\n")
    return tmp_path


def rows(db: Path, table: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        return sorted(conn.execute(f"SELECT * FROM {table}").fetchall())


def test_each_file_goes_to_its_feed_and_an_unmatched_one_gets_a_receipt(school: Path) -> None:
    r = bd("run", "--once", "--json", cwd=school)

    assert r.code == 1, r.err  # one file rejected: the one that matches no feed
    receipts = {x["file"]: x for x in map(json.loads, r.out.splitlines())}
    assert {f: x["feed"] for f, x in receipts.items()} == {
        "students/s1.csv": "students",
        "grades_2026.csv": "grades",
        "rooms/r1.csv": "rooms",
        "teachers.csv": None,
    }
    assert receipts["grades_2026.csv"]["status"] == "loaded_with_rejects"
    assert [r[:2] for r in rows(school / "school.db", "students")] == [
        ("A1", "Ada"),
        ("A2", "Alan"),
    ]
    assert [r[:3] for r in rows(school / "school.db", "grades")] == [("A1", "maths", 17)]
    assert [r[:2] for r in rows(school / "rooms.db", "rooms")] == [("B12", 30)]
    # the file no feed takes: rejected, in errors with its receipt, never left in inbound
    unmatched = receipts["teachers.csv"]
    assert unmatched["status"] == "rejected"
    assert "teachers.csv matches no feed" in unmatched["reason"]
    assert "rooms: prefix 'rooms/'" in unmatched["reason"]
    assert (school / "errors" / "teachers.csv").exists()
    beside = json.loads((school / "errors" / "teachers.receipt.json").read_text())
    assert beside["status"] == "rejected" and "matches no feed" in beside["reason"]
    assert sorted(p.name for p in (school / "inbound").rglob("*.csv")) == []
    assert (school / "archive" / "rooms" / "r1.csv").exists()
    # every file was notified once, naming its feed
    sent = [json.loads(x) for x in (school / "receipts.jsonl").read_text().splitlines()]
    assert sorted((m["receipt"]["file"], m["receipt"]["feed"]) for m in sent) == sorted(
        (f, x["feed"]) for f, x in receipts.items()
    )
    assert any("[grades]" in m["subject"] for m in sent)

    # runs shows every feed's runs (two ledgers: school.db and rooms.db), with the feed
    listed = bd("runs", "--json", cwd=school)
    assert listed.code == 0, listed.err
    runs = {x["file"]: x for x in map(json.loads, listed.out.splitlines())}
    assert {f: x["feed"] for f, x in runs.items()} == {f: x["feed"] for f, x in receipts.items()}
    only = bd("runs", "--json", "--feed", "rooms", cwd=school)
    assert [json.loads(x)["file"] for x in only.out.splitlines()] == ["rooms/r1.csv"]
    text = bd("runs", cwd=school).out
    assert "feed" in text.splitlines()[0] and "(none)" in text

    # a second run finds nothing more to do
    again = bd("run", "--once", "--json", cwd=school)
    assert again.code == 0 and again.out == ""
    assert len(bd("runs", "--json", cwd=school).out.splitlines()) == 4


def test_get_and_validate_name_the_feed(school: Path) -> None:
    bd("run", "--once", cwd=school)

    several = bd("get", "A1", cwd=school)
    assert several.code == 2
    assert "3 feeds" in several.err and "--feed (students, grades, rooms)" in several.err
    assert "Traceback" not in several.err
    got = bd("get", "A1", "--feed", "grades", "--json", cwd=school)
    assert got.code == 0, got.err
    assert json.loads(got.out) == {"id": "A1", "course": "maths", "grade": 17}
    unknown = bd("get", "A1", "--feed", "staff", cwd=school)
    assert unknown.code == 2 and "no feed named 'staff'" in unknown.err

    sample = school / "grades_x.csv"
    sample.write_text("id,course,grade\nA3,art,12\n")
    valid = bd("validate", str(sample), "--json", cwd=school)
    assert valid.code == 0, valid.err
    assert json.loads(valid.out)["feed"] == "grades"
    # a name no feed matches: a clear error listing the feeds, unless --feed names one
    other = school / "misc.csv"
    other.write_text("room,seats\nC1,12\n")
    none = bd("validate", str(other), cwd=school)
    assert none.code == 2 and "misc.csv matches no feed" in none.err
    assert "students: prefix 'students/'" in none.err and "Traceback" not in none.err
    named = bd("validate", str(other), "--feed", "rooms", "--json", cwd=school)
    assert named.code == 0 and json.loads(named.out)["status"] == "would_load"


def test_process_routes_a_file_in_inbound_by_its_name_there(school: Path) -> None:
    r = bd("process", "inbound/rooms/r1.csv", "--json", cwd=school)
    assert r.code == 0, r.err
    assert json.loads(r.out)["feed"] == "rooms"
    assert [x[:2] for x in rows(school / "rooms.db", "rooms")] == [("B12", 30)]
    # a file from elsewhere goes by its own name, or by the feed named
    elsewhere = school / "r2.csv"
    elsewhere.write_text("room,seats\nC7,12\n")
    unnamed = bd("process", str(elsewhere), cwd=school)
    assert unnamed.code == 2 and "r2.csv matches no feed" in unnamed.err
    assert "--feed" in unnamed.err and not (school / "errors").exists()
    named = bd("process", str(elsewhere), "--feed", "rooms", "--json", cwd=school)
    assert named.code == 0 and json.loads(named.out)["feed"] == "rooms"
    assert [x[:2] for x in rows(school / "rooms.db", "rooms")] == [("B12", 30), ("C7", 12)]
