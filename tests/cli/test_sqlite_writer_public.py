"""A public file through the SQLite writer process (sqlite_load.WriterLoad) and through the
load in this process: palmerpenguins' raw file keyed by species and island, so nearly every
row repeats a key, in flushes of 30 rows (the first repeat is met by a flush without the SQL
function, sqlite_stage.Stage._first_repeats). Both leave the same table and count the same
duplicates, under each policy."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from ..unit.split_checks import public_file
from .conftest import bd

HOOK = """
import os
if os.environ.get("FORCE_WRITER"):
    from batchdrop.tables import sqlite_load, sqlite_stage
    sqlite_load.WRITER_MIN_BYTES = 0
    sqlite_load.FLUSHES = sqlite_stage.Flushes(min_rows=30, share=0.0, cache_kib=64)
    init = sqlite_load.WriterLoad.__init__
    def marked(self, *args, **kwargs):
        open(os.environ["FORCE_WRITER"], "w").write("writer")
        return init(self, *args, **kwargs)
    sqlite_load.WriterLoad.__init__ = marked
"""


def load(folder: Path, policy: str, writer: bool) -> tuple[dict, list]:
    source = public_file("palmerpenguins", "data/penguins-raw.csv")
    for name in ("inbound", "archive", "errors"):
        shutil.rmtree(folder / name, ignore_errors=True)
    (folder / "inbound").mkdir()
    shutil.copy(source, folder / "inbound" / "p.csv")
    for db in folder.glob("p.db*"):
        db.unlink()
    config = (folder / "inferred.yaml").read_text()
    config = config.replace("partition_key: Sample Number", "partition_key: Species")
    config = config.replace("sort_key: Individual ID", "sort_key: Island")
    config = config.replace(
        "duplicates: last_wins", f'duplicates: {policy}\nmax_duplicates: "100%"'
    )
    (folder / "batchdrop.yaml").write_text(config)
    marker = folder / "marker"
    marker.unlink(missing_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(folder / "hook"), *filter(None, [os.environ.get("PYTHONPATH")])])}  # fmt: skip
    if writer:
        env["FORCE_WRITER"] = str(marker)
    result = bd("process", "inbound/p.csv", "--json", cwd=folder, env=env)
    assert result.code == 0, result.err
    assert marker.exists() == writer  # the path under test was the one taken
    receipt = json.loads(result.out[result.out.index("{") :])
    conn = sqlite3.connect(folder / "p.db")
    try:
        table = conn.execute('SELECT * FROM p ORDER BY "Species", "Island"').fetchall()
    finally:
        conn.close()
    return receipt, table


@pytest.mark.parametrize("policy", ["first_wins", "last_wins"])
def test_a_public_file_of_repeated_keys_loads_alike_through_the_writer(
    tmp_path: Path, policy: str
) -> None:
    source = public_file("palmerpenguins", "data/penguins-raw.csv")
    (tmp_path / "inbound").mkdir()
    shutil.copy(source, tmp_path / "inbound" / "p.csv")
    made = bd("init", "--from", "inbound/p.csv", cwd=tmp_path)
    assert made.code == 0, made.err
    (tmp_path / "batchdrop.yaml").rename(tmp_path / "inferred.yaml")
    (tmp_path / "hook").mkdir()
    (tmp_path / "hook" / "sitecustomize.py").write_text(HOOK)

    here, here_table = load(tmp_path, policy, writer=False)
    there, there_table = load(tmp_path, policy, writer=True)

    assert here["rows_read"] == there["rows_read"] == 344
    assert here["rows_loaded"] == there["rows_loaded"] == 5  # 3 species on 3 islands: 5 pairs
    assert here["rows_duplicate"] == there["rows_duplicate"] == 339
    assert here_table == there_table
