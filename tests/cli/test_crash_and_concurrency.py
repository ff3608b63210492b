"""A crash at any point is finished by the next run, without lost or duplicated rows; two
runners on the same folders never load the same file twice."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import bd

CRASH = Path(__file__).with_name("crash.py")
ROWS = 5000


def big_drop(folder: Path, name: str = "big.csv", rows: int = ROWS) -> None:
    lines = ["student_id,fname,lname,course"]
    lines += [f'A{10000 + i // 5:05d},F{i},L{i},"Course {i % 5}, part"' for i in range(rows)]
    (folder / "inbound" / name).write_text("\n".join(lines) + "\n")


def table_rows(folder: Path) -> list[tuple[str, str, str]]:
    conn = sqlite3.connect(folder / "students.db")
    try:
        return conn.execute("SELECT student_id, course, fname FROM students").fetchall()
    finally:
        conn.close()


def notifications(folder: Path) -> list[dict]:
    path = folder / "receipts.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def small_batches(example: Path) -> Path:
    cfg = example / "batchdrop.yaml"
    cfg.write_text(cfg.read_text() + "\nbatch_size: 500\n")
    (example / "inbound" / "students.csv").unlink()
    big_drop(example)
    return example


@pytest.mark.parametrize(
    "point",
    [
        "mid-write",
        "after-commit",
        "after-link",
        "after-move",
        "before-notify",
        "mid-write-writer",
        "after-commit-writer",
    ],
)
def test_a_crash_at_any_point_is_finished_by_the_next_run(small_batches: Path, point: str) -> None:
    """kill -9 at each point: the next `run --once` (at once, not after some delay) ends with
    every row once, one copy of the file in archive, and exactly one notification."""
    folder = small_batches
    proc = subprocess.run(
        [sys.executable, str(CRASH), "batchdrop.yaml", "big.csv", point],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 137, proc.stderr
    after_crash = table_rows(folder) if (folder / "students.db").exists() else []
    assert len(after_crash) in (0, ROWS)  # all or nothing: one transaction
    assert notifications(folder) == []

    r = bd("run", "--once", cwd=folder)
    assert r.code == 0, r.err
    assert "big.csv" in r.out  # the receipt of the finished run is shown

    rows = table_rows(folder)
    assert len(rows) == ROWS and len(set((s, c) for s, c, _ in rows)) == ROWS
    sent = notifications(folder)
    assert len(sent) == 1
    assert sent[0]["receipt"]["rows_loaded"] == ROWS
    assert sorted(p.name for p in (folder / "archive").iterdir()) == ["big.csv"]
    assert not (folder / "inbound" / "big.csv").exists()
    states = {
        x["state"]
        for x in (json.loads(line) for line in bd("runs", "--json", cwd=folder).out.splitlines())
    }
    assert "running" not in states and "committed" not in states

    again = bd("run", "--once", cwd=folder)  # nothing left to finish or to send
    assert again.code == 0 and "nothing waiting" in again.err
    assert len(notifications(folder)) == 1


def test_two_runners_on_the_same_folders_never_load_a_file_twice(example: Path) -> None:
    (example / "inbound" / "students.csv").unlink()
    for i in range(6):
        big_drop(example, f"drop{i}.csv", rows=2000)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "batchdrop", "run", "--once", "--json"],
            cwd=example,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1] for o in outs]

    loaded = [json.loads(line) for out, _ in outs for line in out.splitlines()]
    loaded = [r for r in loaded if r["status"] == "loaded"]
    assert sorted(r["file"] for r in loaded) == [f"drop{i}.csv" for i in range(6)]
    assert len(notifications(example)) == 6
    assert sorted(p.name for p in (example / "archive").iterdir()) == [
        f"drop{i}.csv" for i in range(6)
    ]
    assert len(table_rows(example)) == 2000  # every drop carries the same keys
