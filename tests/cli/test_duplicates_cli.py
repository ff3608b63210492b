"""A file collapsed by its key, a re-drop and a dry run, as the command reports them."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from .conftest import EXAMPLE, bd


def collapsing(path: Path, rows: int = 560) -> None:
    """Many rows, 12 distinct (student_id, course) pairs: a key that does not identify a row."""
    lines = ["student_id,fname,lname,course"]
    lines += [f"A{10001 + i % 4},N{i},L,C{i % 3}" for i in range(rows)]
    path.write_text("\n".join(lines) + "\n")


def test_a_collapsing_file_is_rejected_with_exit_1_and_nothing_loaded(example: Path) -> None:
    drop = example / "inbound" / "flights.csv"
    collapsing(drop)
    r = bd("process", str(drop), "--json", cwd=example)

    assert r.code == 1, r.err
    receipt = json.loads(r.out.strip().splitlines()[-1])
    assert receipt["status"] == "rejected"
    assert (receipt["rows_read"], receipt["rows_loaded"], receipt["rows_duplicate"]) == (
        560,
        0,
        548,
    )
    assert receipt["reason"] == (
        "548 of 560 rows repeat the key (student_id, course) — 97.9%, more than "
        "max_duplicates (1%): check table.partition_key/sort_key, or raise max_duplicates"
    )
    assert receipt["rejected_rows_report"].endswith("flights.rejected.csv")
    assert (example / "errors" / "flights.csv").exists()
    db = example / "students.db"
    if db.exists():
        with sqlite3.connect(db) as conn:
            assert conn.execute("SELECT count(*) FROM students").fetchone() == (0,)
    assert "Traceback" not in r.err


def test_validate_reports_would_load_and_exits_0(example: Path) -> None:
    r = bd("validate", str(example / "inbound" / "students.csv"), "--json", cwd=example)

    assert r.code == 0, r.err
    receipt = json.loads(r.out.strip().splitlines()[-1])
    assert receipt["status"] == "would_load_with_rejects" and receipt["dry_run"] is True
    assert (receipt["rows_read"], receipt["rows_loaded"], receipt["rows_rejected"]) == (12, 10, 2)
    assert (example / "inbound" / "students.csv").exists()


def test_a_redrop_names_the_run_that_processed_it(example: Path) -> None:
    first = bd("run", "--once", "--json", cwd=example)
    loaded = json.loads(first.out.strip().splitlines()[-1])
    (example / "inbound" / "students.csv").write_bytes((EXAMPLE / "students.csv").read_bytes())
    r = bd("run", "--once", "--json", cwd=example)

    assert r.code == 0, r.err
    again = json.loads(r.out.strip().splitlines()[-1])
    assert again["status"] == "already_processed"
    assert again["reason"] == (
        f"already processed by run {loaded['run_id']} at {loaded['finished_at']} "
        "(loaded_with_rejects: 10 of 12 rows loaded); not loaded again"
    )
    assert (again["rows_read"], again["rows_loaded"]) == (0, 0)
