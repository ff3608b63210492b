"""kill -9 of the SQLite writer process in the middle of writing its staged rows into the table:
the table stays as the earlier run left it, and the next run loads the file exactly."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from .conftest import bd

# Imported by every Python process of the test (PYTHONPATH): big files' path for any file,
# flushes of 100 rows, and, with DIE_IN_FLUSH, a writer that dies inside the INSERT … SELECT
# of its fourth flush (SQLite's progress handler runs within the statement).
HOOK = """
import os
from batchdrop.tables import sqlite_load, sqlite_stage

sqlite_load.WRITER_MIN_BYTES = 0
sqlite_load.FLUSHES = sqlite_stage.Flushes(min_rows=100, share=0.0, cache_kib=64)
if os.environ.get("DIE_IN_FLUSH"):
    flush = sqlite_stage.Stage.flush

    def flush_and_die(self, sink):
        if self.flushed >= 300:
            self.conn.set_progress_handler(lambda: os._exit(137), 100)
        return flush(self, sink)

    sqlite_stage.Stage.flush = flush_and_die
"""


def drop(folder: Path, name: str, students: range, fname: str) -> None:
    lines = ["student_id,fname,lname,course"]
    lines += [f"A{s:05d},{fname},L,Course {c}" for s in students for c in range(5)]
    (folder / "inbound" / name).write_text("\n".join(lines) + "\n")


def table(folder: Path) -> dict[tuple[str, str], str]:
    conn = sqlite3.connect(folder / "students.db")
    try:
        return {
            (s, c): f for s, c, f in conn.execute("SELECT student_id, course, fname FROM students")
        }
    finally:
        conn.close()


def test_a_writer_killed_mid_flush_leaves_the_table_as_before_and_a_rerun_loads_exactly(
    example: Path,
) -> None:
    hook = example / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(HOOK)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(hook), *filter(None, [os.environ.get("PYTHONPATH")])]),
    }
    cfg = example / "batchdrop.yaml"
    cfg.write_text(cfg.read_text() + "\nbatch_size: 50\n")  # a flush every two batches
    (example / "inbound" / "students.csv").unlink()
    drop(example, "earlier.csv", range(10000, 10100), "Old")
    assert bd("run", "--once", cwd=example, env=env).code == 0
    before = table(example)
    assert len(before) == 500

    # the same 100 students again, and 100 new ones: 1,000 rows, ten flushes
    drop(example, "big.csv", range(10000, 10200), "New")
    crashed = bd("run", "--once", cwd=example, env={**env, "DIE_IN_FLUSH": "1"})
    assert crashed.code != 0
    assert "failed" in crashed.out and "writer process stopped" in crashed.out
    assert table(example) == before  # opening the file rolled the dead transaction back
    assert (example / "inbound" / "big.csv").exists()

    again = bd("run", "--once", cwd=example, env=env)
    assert again.code == 0, again.err
    after = table(example)
    assert len(after) == 1000
    assert set(after.values()) == {"New"}
    assert not (example / "inbound" / "big.csv").exists()
