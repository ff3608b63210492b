"""The pieces that keep a pass's memory flat: the line guard in front of the csv reader, and the
structures that spill to disk past a cap (invalid lines, repeated hashes, held rows)."""

from __future__ import annotations

import io
import random
import tracemalloc
from typing import Any

import pytest

import batchdrop.reader as reader
import batchdrop.spill as spill
from batchdrop.config import parse_config
from batchdrop.errors import DataError
from batchdrop.reader import OVERLONG, CsvSource, LineGuard, open_text
from batchdrop.spill import HashSet, HeldRows, LineRuns
from batchdrop.tables import sqlite_pipe

from .configs import TWO_FIELDS


def guarded(text: str, cap: int) -> tuple[list[str], list[int]]:
    guard = LineGuard(io.StringIO(text, newline=""), cap)
    return list(guard.lines), list(guard.marks)


def reference(text: str, cap: int) -> tuple[list[str], list[int]]:
    """The csv reader's own physical lines, each longer than ``cap`` replaced by the marker."""
    lines, marks = [], []
    for n, line in enumerate(io.StringIO(text, newline="").readlines(), start=1):
        if len(line.rstrip("\r\n")) > cap:
            marks.append(n)
            line = OVERLONG + ("\n" if line.endswith(("\r", "\n")) else "")
        lines.append(line)
    return lines, marks


@pytest.mark.parametrize("block", [1, 2, 3, 7, 64])
def test_line_guard_splits_lines_as_the_csv_reader_does(
    monkeypatch: pytest.MonkeyPatch, block: int
) -> None:
    """CR, LF and CRLF (also split across two blocks), long lines cut out wherever they fall,
    a last line without a line break: the same lines, the same line numbers."""
    monkeypatch.setattr(reader, "BLOCK_CHARS", block)
    rng = random.Random(block)
    for _ in range(300):
        text = "".join(
            rng.choice(["a", "b", ",", "\r", "\n", "\r\n", "xxxxxxxx"]) for _ in range(60)
        )
        for cap in (1, 3, 8, 30):
            assert guarded(text, cap) == reference(text, cap), (text, cap)


def test_line_guard_replaces_an_overlong_line_by_one_marker_line() -> None:
    text = "h1,h2\r\nok,1\r\n" + "x" * 50 + "\r\nafter,2\r\n" + "y" * 40
    lines, marks = guarded(text, 10)
    assert lines == ["h1,h2\r\n", "ok,1\r\n", OVERLONG + "\n", "after,2\r\n", OVERLONG]
    assert marks == [3, 5]


class EndlessLine:
    """A text stream of one line of ``size`` characters that is never held anywhere."""

    def __init__(self, size: int):
        self.left = size

    def read(self, n: int) -> str:
        n = min(n, self.left)
        self.left -= n
        return "x" * n


def test_line_guard_reads_past_a_huge_line_in_bounded_memory() -> None:
    guard = LineGuard(EndlessLine(64 << 20), cap=1 << 16)  # type: ignore[arg-type]
    tracemalloc.start()
    try:
        lines = list(guard.lines)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert lines == [OVERLONG]
    assert peak < 1 << 20  # a 64 MB line, never more than a few blocks of it in memory


CONFIG: dict[str, Any] = {**TWO_FIELDS, "csv": {"max_field_size": 1024}}


def test_an_overlong_header_line_rejects_the_file_with_its_reason() -> None:
    config = parse_config(CONFIG, environ={})
    text, _ = open_text(io.BytesIO(b"a," + b"b" * 9000 + b"\n1,2\n"), config, "f.csv")
    with pytest.raises(DataError, match=r"header cannot be read: the line is longer than 8,192"):
        CsvSource(text, config, "f.csv")


def test_line_runs_answer_in_line_order_from_memory_and_disk(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(spill, "RUNS_IN_MEMORY", 3)  # every few runs go to disk
    runs = LineRuns()
    bad = {2, 3, 4, 9, 12, 13, 20, 21, 22, 40, 41, 77, 78, 100}
    for line in range(1, 101):
        if line in bad:
            runs.add(line)
        elif line % 2:  # odd good lines are kept rows; even ones blank lines (never asked)
            runs.kept()
    for _ in range(2):  # each pass reads its own cursor
        cursor = runs.cursor()
        asked = [n for n in range(1, 101) if n in bad or n % 2]
        assert [n for n in asked if n in cursor] == sorted(bad)
    cursor = runs.cursor()
    assert not cursor.clear(1, 2) and cursor.clear(5, 8) and not cursor.clear(23, 40)
    runs.close()


def test_line_runs_hold_a_file_of_invalid_rows_as_one_run() -> None:
    runs = LineRuns()
    for line in range(2, 1_000_000, 2):  # blank lines between them are not rows
        runs.add(line)
    assert list(runs.runs()) == [(2, 999_998)]


def test_hash_set_spills_past_its_cap_and_still_answers() -> None:
    hashes = HashSet(cap=10)
    hashes.add_many(range(0, 30, 3))
    assert hashes.in_memory is not None
    hashes.add_many([-(2**63), 2**63 - 1, 3, 99])
    assert hashes.in_memory is None  # now a table on disk
    assert len(hashes) == 13
    assert all(h in hashes for h in (0, 27, 99, -(2**63), 2**63 - 1))
    assert 1 not in hashes  # a spilled set that answered yes to everything would fail here
    assert sorted(hashes.items()) == sorted({*range(0, 30, 3), -(2**63), 2**63 - 1, 99})
    hashes.close()


@pytest.mark.parametrize("cap", [1000, 2])
@pytest.mark.parametrize("last_wins", [True, False])
def test_held_rows_keep_one_winner_per_real_key(cap: int, last_wins: bool) -> None:
    """(-1,) and (-2,) have the same hash in CPython: held apart by their real keys, in memory
    and once spilled (with cap 2, from the fourth offer on)."""
    assert hash((-1,)) == hash((-2,))
    held = HeldRows(last_wins, cap=cap)
    offers = [((-1,), 2), ((5,), 3), ((7,), 4), ((-2,), 5), ((-1,), 6), ((-2,), 8)]
    before = [held.offer(key, line, (key[0], f"row {line}")) for key, line in offers]
    assert before == [None, None, None, None, 2, 5]
    if last_wins:
        assert list(held.winners()) == [
            (3, (5, "row 3")),
            (4, (7, "row 4")),
            (6, (-1, "row 6")),
            (8, (-2, "row 8")),
        ]
    else:
        assert list(held.winners()) == [
            (2, (-1, "row 2")),
            (3, (5, "row 3")),
            (4, (7, "row 4")),
            (5, (-2, "row 5")),
        ]
    held.close()


def test_the_writer_process_spools_its_repeats_and_gives_them_back_in_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sqlite_pipe, "REPEATS_PER_MESSAGE", 3)
    spool = sqlite_pipe.RepeatSpool()
    sent = [
        [(line, ("k", line % 2)) for line in range(start, start + size)]
        for start, size in [(2, 2), (10, 5), (30, 0), (40, 1)]
    ]
    for repeats in sent:
        spool.add(repeats)
    assert spool._file is not None  # past three, they went to disk
    parts = iter(spool.next_part, None)
    got = [r for part in parts for r in part]
    spool.close()
    assert got == [r for repeats in sent for r in repeats]
    assert all(isinstance(key, tuple) for _, key in got)
