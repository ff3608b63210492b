from __future__ import annotations

import gzip
import io
from typing import Any

import pytest

import batchdrop.dedup as dedup
from batchdrop.config import parse_config
from batchdrop.errors import DataError
from batchdrop.reader import CsvSource, header_positions, open_text

from .configs import TWO_FIELDS

CONFIG: dict[str, Any] = TWO_FIELDS


def config(**changes: Any) -> Any:
    return parse_config({**CONFIG, **changes}, environ={})


@pytest.mark.parametrize(
    ("spill_at", "piece", "group"),
    [(1 << 17, 1 << 16, 1 << 14), (37, 1 << 16, 1 << 14), (37, 1 << 16, 1), (37, 5, 1)],
)
def test_duplicate_finder_finds_repeated_hashes(
    monkeypatch: pytest.MonkeyPatch, spill_at: int, piece: int, group: int
) -> None:
    monkeypatch.setattr(dedup, "SPILL_AT", spill_at)  # 37: many spills to disk
    monkeypatch.setattr(dedup, "PIECE", piece)  # 5: every partition is split again
    monkeypatch.setattr(dedup, "GROUP", group)  # 1: each partition counted alone
    finder = dedup.DuplicateFinder()
    for start in range(0, 1000, 100):  # 400 keys, each 2 or 3 times, and 50 once
        finder.add_many(hash(("k", n % 400)) for n in range(start, start + 100))
    finder.add_many(hash(("once", n)) for n in range(50))
    found = finder.repeated()
    assert len(found) == 400
    assert all(hash(("k", n)) in found for n in range(400))
    assert hash(("once", 0)) not in found


def test_duplicate_finder_counts_one_hash_repeated_everywhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Millions of one key: a partition of one distinct hash is counted in one read, never
    split (splitting by bits cannot shrink it)."""
    monkeypatch.setattr(dedup, "SPILL_AT", 100)
    monkeypatch.setattr(dedup, "PIECE", 8)
    finder = dedup.DuplicateFinder()
    finder.add_many([7] * 5000 + [hash(("x", n)) for n in range(30)])
    found = finder.repeated()
    assert len(found) == 1 and 7 in found


def test_duplicate_finder_counts_a_small_share_of_the_hashes_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What the count holds at once is a group of neighbouring partitions of about GROUP
    hashes, whatever the file's size, so peak memory does not follow it."""
    held: list[int] = []
    count = dedup.DuplicateFinder._repeats

    def recorded(self: dedup.DuplicateFinder, hashes: Any) -> list[int]:
        held.append(len(hashes))
        return count(self, hashes)

    monkeypatch.setattr(dedup.DuplicateFinder, "_repeats", recorded)
    finder = dedup.DuplicateFinder()
    for start in range(0, 401_408, 2048):  # spilled three times, the rest still buffered
        finder.add_many(hash(("k", n)) for n in range(start, start + 2048))
    assert not finder.repeated()
    assert sum(held) == 401_408
    assert max(held) <= 2 * dedup.GROUP
    assert len(held) >= 401_408 // (2 * dedup.GROUP)


def test_duplicate_finder_with_no_repeats_finds_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dedup, "SPILL_AT", 1000)
    finder = dedup.DuplicateFinder()
    finder.add_many(hash(("x", n)) for n in range(10_000))
    finder.add_many([-1, -1])  # negative hashes too
    found = finder.repeated()
    assert len(found) == 1 and -1 in found


def source(data: bytes, **changes: Any) -> CsvSource:
    cfg = config(**changes)
    text, _ = open_text(io.BytesIO(data), cfg, "f.csv")
    return CsvSource(text, cfg, "f.csv")


def test_gzip_is_recognised_by_its_bytes_and_bom_is_dropped() -> None:
    src = source(gzip.compress("\ufeffa,b\r\n1,2\r\n".encode()))
    assert src.header == ["a", "b"]
    assert list(src.rows) == [["1", "2"]]


def test_delimiter_and_quote_are_configurable() -> None:
    src = source(b"a;b\n'x;y';2\n", csv={"delimiter": ";", "quotechar": "'"})
    assert list(src.rows) == [["x;y", "2"]]


@pytest.mark.parametrize(
    ("header", "problem"),
    [
        (["a"], "missing column 'b'"),
        (["a", "b", "c"], "unknown column 'c' (allow with extra_columns: ignore)"),
        (["a", "b", "a"], "duplicated column 'a'"),
        (["a", "", "b"], "empty column name at position 2"),
    ],
)
def test_header_problems_reject_the_file_with_one_message(header: list[str], problem: str) -> None:
    with pytest.raises(DataError) as e:
        header_positions(header, config(), "f.csv")
    assert problem in str(e.value)
    assert str(e.value).startswith("f.csv, line 1: bad header:")


def test_extra_columns_ignore_maps_positions() -> None:
    assert header_positions(["x", "b", "a"], config(extra_columns="ignore"), "f.csv") == [2, 1]


def test_an_empty_file_has_no_header() -> None:
    with pytest.raises(DataError, match="the file is empty"):
        source(b"")
