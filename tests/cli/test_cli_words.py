"""What the CLI says: one headline a file with duplicates beside rejects, the reason of a
rejected file in full, a dry run that never says loaded, a file outside inbound left where it is,
the files `run` will not take (once, not at every look)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from batchdrop.cli_output import echo_receipt
from batchdrop.report import LOADED, LOADED_WITH_REJECTS, REJECTED, Receipt

from .conftest import EXAMPLE, bd

GOOD = "student_id,fname,lname,course\nA10001,Ann,Lee,Math\nA10002,Bo,Kim,Art\n"
NOT_TSV = (
    "batchdrop: orders.tsv: not taken "
    "(suffix .tsv; this config takes .csv and .csv.gz — set suffix: .tsv)"
)


def test_duplicates_are_counted_beside_rejects_with_what_was_kept(example: Path) -> None:
    cfg = example / "batchdrop.yaml"
    cfg.write_text(cfg.read_text() + "\nmax_duplicates: 100%\n")
    (example / "inbound" / "students.csv").unlink()
    (example / "inbound" / "twice.csv").write_text(GOOD + "A10001,Ann,Lee,Math\n")
    r = bd("run", "--once", cwd=example)
    assert r.code == 0, r.err
    assert r.out.splitlines()[0] == (
        "loaded  twice.csv  3 read · 2 loaded · 0 rejected · 1 duplicate "
        "(key repeated; last row kept)"
    )


def test_a_rejected_file_says_its_reason_in_full(example: Path) -> None:
    lines = ["student_id,fname,lname,course"]
    lines += [f"A{10001 + i % 4},N{i},L,C{i % 3}" for i in range(560)]  # 12 distinct keys
    (example / "inbound" / "students.csv").write_text("\n".join(lines) + "\n")
    r = bd("run", "--once", cwd=example)
    assert r.code == 1, r.err
    assert r.out.splitlines()[:2] == [
        "rejected  students.csv  560 read · 0 loaded · 12 rejected · 548 duplicate",
        "  reason: 548 of 560 rows repeat the key (student_id, course) — 97.9%, more than "
        "max_duplicates (1%): check table.partition_key/sort_key, or raise max_duplicates",
    ]


def test_a_dry_run_says_what_would_load(example: Path) -> None:
    r = bd("validate", str(example / "inbound" / "students.csv"), cwd=example)
    assert r.code == 0, r.err
    assert r.out.splitlines()[0] == (
        "valid_with_rejects  students.csv  12 read · 10 would load · 2 rejected · 0 duplicate"
    )
    assert "moved to" not in r.out and "loaded" not in r.out

    (example / "good.csv").write_text(GOOD)
    good = bd("validate", "good.csv", cwd=example)
    assert good.code == 0, good.err
    assert good.out == "valid  good.csv  2 read · 2 would load · 0 rejected · 0 duplicate\n"

    (example / "bad.csv").write_text("student_id,fname,lname,course\nA1,x,y,z\n")
    bad = bd("validate", "bad.csv", cwd=example)
    assert bad.code == 1
    assert bad.out.splitlines()[:2] == [
        "invalid  bad.csv  1 read · 0 would load · 1 rejected · 0 duplicate",
        "  reason: 1 invalid row(s), more than max_rejected (20%)",
    ]
    assert not (example / "errors").exists()


@pytest.mark.parametrize(
    ("status", "rejected", "said"),
    [
        (LOADED, 0, "valid"),
        (LOADED_WITH_REJECTS, 1, "valid_with_rejects"),
        (REJECTED, 2, "invalid"),
    ],
)
def test_a_dry_run_is_named_by_the_command_whatever_its_status(
    capsys: pytest.CaptureFixture[str], status: str, rejected: int, said: str
) -> None:
    receipt = Receipt("a.csv", "/x/a.csv", "", 10, status=status, rows_read=2)
    receipt.rows_loaded, receipt.rows_rejected = 2 - rejected, rejected
    echo_receipt(receipt, False, dry_run=True)
    out = capsys.readouterr().out
    assert out.startswith(f"{said}  a.csv  2 read · {2 - rejected} would load · ")
    assert "loaded" not in out


def test_process_leaves_a_file_outside_inbound_where_it_is(example: Path, tmp_path: Path) -> None:
    mine = tmp_path / "mine" / "students.csv"
    mine.parent.mkdir()
    mine.write_bytes((EXAMPLE / "students.csv").read_bytes())
    before = mine.stat()
    r = bd("process", str(mine), "--json", cwd=example)
    assert r.code == 0, r.err
    assert mine.read_bytes() == (EXAMPLE / "students.csv").read_bytes()  # untouched, in place
    assert (mine.stat().st_ino, mine.stat().st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    archived = example / "archive" / "students.csv"
    assert json.loads(r.out)["moved_to"] == str(archived)
    assert archived.read_bytes() == mine.read_bytes()
    assert archived.stat().st_ino != mine.stat().st_ino  # a copy, not a link to the user's file

    other = tmp_path / "mine" / "other.csv"
    other.write_text(GOOD)
    moved = bd("process", str(other), "--move", cwd=example)
    assert moved.code == 0, moved.err
    assert not other.exists() and (example / "archive" / "other.csv").read_text() == GOOD


def test_a_rejected_file_outside_inbound_stays_too(example: Path, tmp_path: Path) -> None:
    mine = tmp_path / "bad.csv"
    mine.write_text("student_id,fname,lname\nA10001,x,y\n")
    r = bd("process", str(mine), cwd=example)
    assert r.code == 1
    assert mine.read_text() == "student_id,fname,lname\nA10001,x,y\n"
    assert (example / "errors" / "bad.csv").read_text() == mine.read_text()


def test_a_file_in_inbound_given_to_process_is_moved(example: Path) -> None:
    r = bd("process", "inbound/students.csv", cwd=example)
    assert r.code == 0, r.err
    assert not (example / "inbound" / "students.csv").exists()
    assert (example / "archive" / "students.csv").exists()


def test_run_says_once_which_files_it_will_not_take(example: Path) -> None:
    inbound = example / "inbound"
    (inbound / "orders.tsv").write_text("a\tb\n")
    (inbound / "orders.zip").write_bytes(b"PK")
    (inbound / "README").write_text("notes\n")
    (inbound / ".partial.csv").write_text(GOOD)  # hidden: silently ignored
    (inbound / "_upload.tsv").write_text("a\tb\n")  # hidden too
    r = bd("run", "--once", cwd=example)
    assert r.code == 0, r.err
    said = [line for line in r.err.splitlines() if "not taken" in line]
    assert said == [
        "batchdrop: README: not taken (no suffix; this config takes .csv and .csv.gz)",
        "batchdrop: orders.tsv: not taken "
        "(suffix .tsv; this config takes .csv and .csv.gz — set suffix: .tsv)",
        "batchdrop: orders.zip: not taken (suffix .zip; this config takes .csv and .csv.gz — "
        "unpack it: batchdrop reads plain and gzip files only)",
    ]
    assert (inbound / "orders.tsv").exists() and (inbound / ".partial.csv").exists()


def test_watching_says_it_once_not_at_every_look(example: Path) -> None:
    inbound = example / "inbound"
    (inbound / "orders.tsv").write_text("a\tb\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "batchdrop", "run", "--interval", "0.1", "--settle", "0"],
        cwd=example,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stuck = threading.Timer(60, proc.kill)  # a hung command fails the test, not the suite
    stuck.start()
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # the file waiting at the start: taken at the first look
        (inbound / "later.csv").write_text(GOOD)  # taken at a later look
        while (line := proc.stdout.readline()) and not line.startswith("loaded  later.csv"):
            pass
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        stuck.cancel()
    assert line.startswith("loaded  later.csv"), err
    assert first.startswith("loaded_with_rejects  students.csv  ")
    assert [line for line in err.splitlines() if "not taken" in line] == [NOT_TSV]
