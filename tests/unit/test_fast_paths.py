"""The chunk-wide paths of a pass: a backend's row check with ``first``, and the converter of
whole chunks, which must agree with the row converter on every value."""

from __future__ import annotations

import io
from typing import Any

from batchdrop.columns import ChunkConverter
from batchdrop.config import parse_config
from batchdrop.passes import scan_file
from batchdrop.ports import FileRef
from batchdrop.report import Receipt, RejectedRowsReport
from batchdrop.schema import RowConverter

from .configs import TWO_FIELDS


class Store:
    def __init__(self, data: bytes):
        self.data = data

    def open(self, ref: FileRef) -> io.BytesIO:
        return io.BytesIO(self.data)


class Load:
    def __init__(self) -> None:
        self.lines: list[int] = []

    def write(self, rows: list[tuple[Any, ...]], lines: list[int]) -> list[tuple[int, Any]]:
        self.lines.extend(lines)
        return []

    def finish(self) -> list[tuple[int, Any]]:
        return []


class Check:
    """Refuses rows whose b is "bad"; ``first`` says where the first such row is."""

    def __init__(self) -> None:
        self.called: list[str] = []

    def __call__(self, row: tuple[Any, ...]) -> tuple[str, str] | None:
        self.called.append(row[0])
        return ("b", "too big for the table") if row[1] == "bad" else None

    def first(self, rows: Any) -> int | None:
        bs = [r[1] for r in rows]
        return bs.index("bad") if "bad" in bs else None


def run(data: bytes, **options: Any) -> tuple[Receipt, RejectedRowsReport]:
    config = parse_config({**TWO_FIELDS, "on_error": "skip_rows"}, environ={})
    ref = FileRef("f.csv", len(data), "v1", 0.0, "/in/f.csv")
    receipt = Receipt("f.csv", ref.url, "v1", ref.size)
    report = RejectedRowsReport("f.csv")
    try:
        scan_file(config, Store(data), ref, receipt, report, **options)  # type: ignore[arg-type]
    finally:
        report.discard()
    return receipt, report


def test_a_row_check_with_first_walks_only_from_the_row_it_names() -> None:
    rows = [f"k{n},{'bad' if n == 3000 else 'ok'}\n" for n in range(5000)]
    data = ("a,b\n" + "".join(rows)).encode()
    check, load = Check(), Load()
    receipt, _ = run(data, load=load, row_check=check)

    assert receipt.errors[0]["line"] == 3002  # header, then k0 on line 2
    assert receipt.errors[0]["column"] == "b"
    assert 3002 not in load.lines and len(load.lines) == 4999
    assert load.lines == sorted(load.lines)
    # the chunk of 2,048 rows holding k3000 (k2048…k4095) is walked from k3000 only; the
    # chunks before and after it never are
    assert check.called == [f"k{n}" for n in range(3000, 4096)]


def test_a_plain_row_check_is_called_on_every_row() -> None:
    calls: list[str] = []

    def check(row: tuple[Any, ...]) -> tuple[str, str] | None:
        calls.append(row[0])
        return None

    data = ("a,b\n" + "".join(f"k{n},ok\n" for n in range(3000))).encode()
    run(data, load=Load(), row_check=check)
    assert len(calls) == 3000


def test_the_chunk_converter_agrees_with_the_row_converter() -> None:
    schema = {
        "fields": [
            {"name": "s", "constraints": {"required": True, "pattern": "[A-Z][0-9]+"}},
            {"name": "i", "type": "integer", "constraints": {"minimum": 0, "maximum": 99}},
            {"name": "n", "type": "number"},
            {"name": "b", "type": "boolean"},
            {"name": "d", "type": "date"},
            {"name": "t", "type": "string", "constraints": {"maxLength": 3, "enum": ["x", "yy"]}},
        ]
    }
    config = parse_config(
        {**TWO_FIELDS, "schema": schema, "table": {"url": "sqlite:///t.db", "partition_key": "s"}},
        environ={},
    )
    positions = list(range(6))
    rows = RowConverter(config.schema_, positions, config.key)
    chunks = ChunkConverter(config.schema_, positions, config.key, 6)
    good = [["A1", "5", "1.50", "true", "2026-01-02", "x"], ["B22", "", "", "false", "", "yy"]]
    assert chunks.convert(good) == [rows.convert(r) for r in good]
    for bad in (
        ["a1", "5", "1", "true", "2026-01-02", "x"],
        ["A1", "100", "1", "true", "2026-01-02", "x"],
        ["A1", "-1", "1", "true", "2026-01-02", "x"],
        ["A1", "1_0", "1", "true", "2026-01-02", "x"],
        ["A1", "5", "1e", "true", "2026-01-02", "x"],
        ["A1", "5", "1", "maybe", "2026-01-02", "x"],
        ["A1", "5", "1", "true", "2026-02-30", "x"],
        ["A1", "5", "1", "true", "2026-01-02", "z"],
        ["", "5", "1", "true", "2026-01-02", "x"],
    ):
        assert rows.convert(bad) is None
        assert chunks.convert([good[0], bad]) is None
