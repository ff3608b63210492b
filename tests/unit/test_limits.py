"""The limits that hold against bombs, at the reader and the report."""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path
from typing import Any

import pytest

from batchdrop.config import parse_config
from batchdrop.errors import DataError, RowError
from batchdrop.reader import CsvSource, open_text
from batchdrop.report import Receipt, RejectedRowsReport, summary

from .configs import TWO_FIELDS

CONFIG: dict[str, Any] = TWO_FIELDS


def read_all(data: bytes, size: int, **limits: Any) -> int:
    config = parse_config({**CONFIG, "limits": limits}, environ={})
    text, _ = open_text(io.BytesIO(data), config, "f.csv", size=size)
    return sum(1 for _ in CsvSource(text, config, "f.csv").rows)


def test_a_gzip_bomb_stops_at_its_compression_ratio() -> None:
    bomb = gzip.compress(b"a,b\n" + b"1,2\n" * 2_000_000)  # 8 MB from a few kB
    with pytest.raises(DataError) as e:
        read_all(bomb, len(bomb), max_compression_ratio=100)
    assert "limits.max_compression_ratio" in e.value.reason
    assert f"({len(bomb):,} bytes) expands to more than 100 times" in e.value.reason
    assert read_all(bomb, len(bomb), max_compression_ratio=10_000) == 2_000_000


def test_blank_lines_count_toward_the_byte_limits() -> None:
    blanks = gzip.compress(b"a,b\n1,2\n" + b"\n" * 3_000_000)
    with pytest.raises(DataError, match=r"limits\.max_compression_ratio"):
        read_all(blanks, len(blanks), max_compression_ratio=100)
    with pytest.raises(DataError, match=r"limits\.max_bytes"):
        read_all(blanks, len(blanks), max_bytes=1_000_000, max_compression_ratio=10_000)


class NoReading(io.BytesIO):
    """A stream that fails if more than its magic bytes are read."""

    def read(self, n: int | None = -1) -> bytes:
        if n is None or n < 0 or self.tell() + n > 2:
            raise AssertionError("read a file that should have been refused first")
        return super().read(n)


def test_a_plain_file_over_max_bytes_is_refused_before_it_is_read() -> None:
    config = parse_config({**CONFIG, "limits": {"max_bytes": 1000}}, environ={})
    with pytest.raises(DataError, match=r"more than 1,000 bytes .*limits.max_bytes"):
        open_text(NoReading(b"a,b\n" + b"1,2\n" * 1000), config, "f.csv", size=4004)


def test_a_plain_file_of_unknown_size_stops_at_max_bytes() -> None:
    data = b"a,b\n" + b"1,2\n" * 1000
    with pytest.raises(DataError, match=r"limits\.max_bytes"):
        read_all(data, 0, max_bytes=1000)
    assert read_all(data, 0, max_bytes=4004) == 1000


def test_the_rejected_rows_report_keeps_max_rows_and_counts_the_rest() -> None:
    """Whole rows only: a row of two errors that does not fit is left out, and so is every
    row after it, even one that would fit."""
    report = RejectedRowsReport("f.csv", max_rows=3)
    report.add(RowError(2, "a", "x", "bad"))
    report.add(RowError(3, "a", "x", "bad"))
    report.add(RowError(4, "a", "x", "bad"), RowError(4, "b", "y", "bad too"))
    for line in range(5, 8):
        report.add(RowError(line, "a", "x", "bad"))
    path = report.path()
    assert path is not None
    rows = list(csv.reader(Path(path).read_text(encoding="utf-8").splitlines()))
    report.discard()
    assert [r[1] for r in rows[1:]] == ["2", "3"]
    assert (report.count, report.omitted, report.full) == (2, 4, True)


def test_the_notification_says_when_the_report_was_cut() -> None:
    receipt = Receipt("f.csv", "/in/f.csv", "v1", 10, status="loaded_with_rejects")
    receipt.rejected_rows_report = "/errors/f.rejected.csv"
    assert "Report cut" not in summary(receipt)
    receipt.report_rows_omitted = 40
    assert "Report cut: 40 more rejected rows not listed (limits.max_report_rows)" in summary(
        receipt
    )
    assert Receipt.from_dict(receipt.to_dict()).report_rows_omitted == 40
