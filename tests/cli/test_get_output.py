"""`batchdrop get` prints a wide item one field a line, a narrow one as a table."""

from __future__ import annotations

from pathlib import Path

from .conftest import bd

WIDE = [f"col_{i:02d}" for i in range(12)]


def _load(tmp_path: Path, header: list[str], rows: list[list[str]]) -> None:
    text = "\n".join(",".join(r) for r in [header, *rows]) + "\n"
    (tmp_path / "sample.csv").write_text(text)
    assert bd("init", "--from", "sample.csv", cwd=tmp_path).code == 0
    (tmp_path / "inbound").mkdir()
    (tmp_path / "inbound" / "sample.csv").write_text(text)
    assert bd("run", "--once", cwd=tmp_path).code == 0


def test_an_item_of_many_fields_prints_one_field_a_line(tmp_path: Path) -> None:
    rows = [[f"k{n}", *(f"value {n}.{i}" for i in range(1, 12))] for n in range(3)]
    _load(tmp_path, WIDE, rows)
    r = bd("get", "k1", cwd=tmp_path)
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert lines[0].split() == ["col_00", "k1"]
    assert lines[11] == "col_11  value 1.11"  # names aligned, the value after two spaces
    assert len(lines) == 12


def test_a_narrow_item_prints_as_a_table(tmp_path: Path) -> None:
    _load(tmp_path, ["id", "name"], [["a", "Ann"], ["b", "Bob"]])
    r = bd("get", "b", cwd=tmp_path)
    assert r.code == 0, r.err
    assert [line.split() for line in r.out.splitlines()] == [["id", "name"], ["b", "Bob"]]
