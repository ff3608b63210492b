"""Who binds the rows of a big file: the SQLite writer process while it keeps up, the parent
while the writer is behind (sqlite_load.WriterLoad, sqlite_stage.Packer). Either way every row
lands exactly once."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from batchdrop.tables import sqlite_load

from .conftest import bd

# Imported by every Python process of the test (PYTHONPATH): big files' path for any file; the
# parent logs whether it bound each batch; SLOW_WRITER makes the writer take 50 ms per batch,
# SLOW_PARENT the parent 30 ms per batch.
HOOK = """
import os, time
from batchdrop.tables import sqlite_load, sqlite_stage

sqlite_load.WRITER_MIN_BYTES = 0
pack = sqlite_stage.Packer.pack

def logged(self, rows, lines, bind):
    if os.environ.get("SLOW_PARENT"):
        time.sleep(0.03)
    with open(os.environ["BIND_LOG"], "a") as log:
        log.write("B" if bind else "-")
    return pack(self, rows, lines, bind)

sqlite_stage.Packer.pack = logged
if os.environ.get("SLOW_WRITER"):
    for name in ("add_packed", "add_parts"):
        def slow(self, *args, _add=getattr(sqlite_stage.Stage, name)):
            time.sleep(0.05)
            return _add(self, *args)
        setattr(sqlite_stage.Stage, name, slow)
"""


def drop(folder: Path, name: str, students: range) -> None:
    lines = ["student_id,fname,lname,course"]
    lines += [f"A{s:05d},F{s},L,Course {c}" for s in students for c in range(5)]
    (folder / "inbound" / name).write_text("\n".join(lines) + "\n")


def load(example: Path, slow: str) -> tuple[str, int]:
    hook = example / "hook"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(HOOK)
    log = example / f"binds-{slow}.txt"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(hook), *filter(None, [os.environ.get("PYTHONPATH")])]),
        "BIND_LOG": str(log),
        slow: "1",
    }
    cfg = example / "batchdrop.yaml"
    if "batch_size" not in cfg.read_text():
        cfg.write_text(cfg.read_text() + "\nbatch_size: 50\n")
    (example / "inbound" / "students.csv").unlink(missing_ok=True)
    drop(example, f"{slow}.csv", range(10000, 10600))  # 3,000 rows, 60 batches
    result = bd("run", "--once", cwd=example, env=env)
    assert result.code == 0, result.err
    conn = sqlite3.connect(example / "students.db")
    try:
        (rows,) = conn.execute("SELECT count(*) FROM students WHERE fname LIKE 'F1%'").fetchone()
    finally:
        conn.close()
    return log.read_text(), rows


def test_the_parent_binds_while_the_writer_is_behind(example: Path) -> None:
    binds, rows = load(example, "SLOW_WRITER")
    assert rows == 3000
    assert len(binds) >= 60
    behind = sqlite_load.BEHIND
    assert binds[: behind + 1] == "-" * (behind + 1)  # it cannot be behind by more before
    assert binds.count("B") >= 20


def test_the_writer_binds_while_it_keeps_up(example: Path) -> None:
    binds, rows = load(example, "SLOW_PARENT")
    assert rows == 3000
    assert len(binds) >= 60
    assert set(binds) == {"-"}
