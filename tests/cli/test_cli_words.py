"""What the CLI says: duplicates beside rejects, a dry run that never says loaded, a file
outside inbound left where it is, the files `run` will not take."""

from __future__ import annotations

import json
from pathlib import Path

from .conftest import EXAMPLE, bd

GOOD = "student_id,fname,lname,course\nA10001,Ann,Lee,Math\nA10002,Bo,Kim,Art\n"


def test_duplicates_are_counted_beside_rejects_with_what_was_kept(example: Path) -> None:
    cfg = example / "batchdrop.yaml"
    cfg.write_text(cfg.read_text() + "\nmax_duplicates: 100%\n")
    (example / "inbound" / "students.csv").unlink()
    (example / "inbound" / "twice.csv").write_text(GOOD + "A10001,Ann,Lee,Math\n")
    r = bd("run", "--once", cwd=example)
    assert r.code == 0, r.err
    assert "  3 read · 2 loaded · 0 rejected · 1 duplicate (key repeated; last row kept)" in r.out


def test_a_dry_run_says_what_would_load(example: Path) -> None:
    r = bd("validate", str(example / "inbound" / "students.csv"), cwd=example)
    assert r.code == 0, r.err
    assert r.out.splitlines()[:2] == [
        "students.csv  would_load_with_rejects",
        "  12 read · 10 would load · 2 rejected · 0 duplicate",
    ]
    assert "moved to" not in r.out


def test_process_leaves_a_file_outside_inbound_where_it_is(example: Path, tmp_path: Path) -> None:
    mine = tmp_path / "mine" / "students.csv"
    mine.parent.mkdir()
    mine.write_bytes((EXAMPLE / "students.csv").read_bytes())
    r = bd("process", str(mine), "--json", cwd=example)
    assert r.code == 0, r.err
    assert mine.read_bytes() == (EXAMPLE / "students.csv").read_bytes()  # untouched, in place
    archived = example / "archive" / "students.csv"
    assert json.loads(r.out)["moved_to"] == str(archived)
    assert archived.read_bytes() == mine.read_bytes()
    assert archived.stat().st_ino != mine.stat().st_ino  # a copy, not a link to the user's file

    other = tmp_path / "mine" / "other.csv"
    other.write_text(GOOD)
    moved = bd("process", str(other), "--move", cwd=example)
    assert moved.code == 0, moved.err
    assert not other.exists() and (example / "archive" / "other.csv").read_text() == GOOD


def test_a_file_in_inbound_given_to_process_is_moved(example: Path) -> None:
    r = bd("process", "inbound/students.csv", cwd=example)
    assert r.code == 0, r.err
    assert not (example / "inbound" / "students.csv").exists()
    assert (example / "archive" / "students.csv").exists()


def test_run_says_once_which_files_it_will_not_take(example: Path) -> None:
    inbound = example / "inbound"
    (inbound / "orders.tsv").write_text("a\tb\n")
    (inbound / ".partial.csv").write_text(GOOD)  # hidden: silently ignored
    r = bd("run", "--once", cwd=example)
    assert r.code == 0, r.err
    said = [line for line in r.err.splitlines() if "not taken" in line]
    assert said == [
        "batchdrop: orders.tsv: not taken (this config takes .csv and .csv.gz; set suffix: .tsv)"
    ]
    assert (inbound / "orders.tsv").exists() and (inbound / ".partial.csv").exists()
