"""kill -9 in the middle of a snapshot's deletes, in this process or in the SQLite writer
process: the table stays as the last load left it, and the next run loads the file exactly,
deletes included."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest

from .conftest import bd

# Imported by every Python process of the test (PYTHONPATH). With DIE_IN_DELETE, the process
# that runs a snapshot's DELETE dies like kill -9 once it has deleted three rows (a trigger calls
# back for each row, within the statement); with WRITER, files go through the writer process.
HOOK = """
import os
from batchdrop.tables import sqlite_load, sqlite_modes

if os.environ.get("WRITER"):
    sqlite_load.WRITER_MIN_BYTES = 0
if os.environ.get("DIE_IN_DELETE"):
    delete = sqlite_modes.Snapshot.delete

    def delete_and_die(self):
        deleted = [0]

        def one_more():
            deleted[0] += 1
            if deleted[0] == 3:
                os._exit(137)
            return 0

        self.conn.create_function("die_soon", 0, one_more)
        self.conn.execute(
            "CREATE TEMP TRIGGER die AFTER DELETE ON main.items BEGIN SELECT die_soon(); END"
        )
        return delete(self)

    sqlite_modes.Snapshot.delete = delete_and_die
"""

CONFIG = """\
inbound: ./inbound
archive: ./archive
errors: ./errors
table: {{url: "sqlite:///items.db", name: items, partition_key: shop, sort_key: sku}}
schema:
  fields:
    - {{name: shop}}
    - {{name: sku}}
    - {{name: price, type: integer}}
mode: snapshot
max_deletes: 30%
write: {write}
batch_size: 50
notify: [./receipts.jsonl]
"""


def drop(folder: Path, name: str, rows: dict[str, int]) -> None:
    lines = ["shop,sku,price", *(f"A,{sku},{price}" for sku, price in rows.items())]
    (folder / "inbound" / name).write_text("\n".join(lines) + "\n")


def table(folder: Path) -> dict[str, int]:
    conn = sqlite3.connect(folder / "items.db")
    try:
        return dict(conn.execute("SELECT sku, price FROM items"))  # type: ignore[arg-type]
    finally:
        conn.close()


@pytest.mark.parametrize("writer", [False, True], ids=["in-process", "writer"])
@pytest.mark.parametrize("write", ["all", "changed_only"])
def test_a_kill_in_the_middle_of_the_deletes_leaves_the_table_and_a_rerun_loads_exactly(
    tmp_path: Path, writer: bool, write: str
) -> None:
    for d in ("inbound", "archive", "errors", "hook"):
        (tmp_path / d).mkdir()
    (tmp_path / "batchdrop.yaml").write_text(CONFIG.format(write=write))
    (tmp_path / "hook" / "sitecustomize.py").write_text(HOOK)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(tmp_path / "hook"), *filter(None, [os.environ.get("PYTHONPATH")])]
        ),
        **({"WRITER": "1"} if writer else {}),
    }
    day1 = {f"K{i:03d}": i for i in range(200)}
    drop(tmp_path, "day1.csv", day1)
    assert bd("run", "--once", cwd=tmp_path, env=env).code == 0
    before = table(tmp_path)
    assert before == day1

    # 40 rows gone, 10 changed, 5 new
    day2 = {k: v for k, v in day1.items() if not 20 <= v < 60}
    day2.update({f"K{i:03d}": -i for i in range(100, 110)})
    day2.update({f"N{i:03d}": i for i in range(5)})
    drop(tmp_path, "day2.csv", day2)
    crashed = bd("run", "--once", cwd=tmp_path, env={**env, "DIE_IN_DELETE": "1"})
    assert crashed.code != 0
    if writer:
        assert "writer process stopped" in crashed.out
    assert table(tmp_path) == before  # opening the database rolled the dead transaction back
    assert (tmp_path / "inbound" / "day2.csv").exists()

    again = bd("run", "--once", cwd=tmp_path, env=env)
    assert again.code == 0, again.out + again.err
    assert table(tmp_path) == day2
    assert not (tmp_path / "inbound" / "day2.csv").exists()
    sent = (tmp_path / "receipts.jsonl").read_text().splitlines()
    last = json.loads(sent[-1])["receipt"]
    assert (last["file"], last["status"], last["rows_deleted"]) == ("day2.csv", "loaded", 40)
    assert last["rows_unchanged"] == (150 if write == "changed_only" else 0)
