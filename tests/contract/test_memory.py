"""Memory stays flat whatever a file holds: the real command's peak RSS, measured from outside.

Each case runs ``batchdrop validate`` or ``batchdrop process`` in a process of its own, forked
by a bare launcher that reports ``wait4``'s ``ru_maxrss`` for it (its SQLite writer process
included), so nothing else this test session ran is counted. The bound is far under what a
pass that held these files' repeats or fields needed (over 90 MB for both), and far over the
command's own start-up (under 45 MB): the test measures growth, not the interpreter.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from ..rss import run_measured

BOUND_MB = 60.0

# ``process-writer``: every file through the SQLite writer process, as files of 16 MB are
COMMAND = """
import sys
command, config, path = sys.argv[1:]
if command == "process-writer":
    import batchdrop.tables.sqlite_load as load
    load.WRITER_MIN_BYTES = 0
    command = "process"
sys.argv = ["batchdrop", "--config", config, command, path, "--json"]
from batchdrop.cli import main
main()
"""

CONFIG = """\
inbound: {root}/inbound
archive: {root}/archive
errors: {root}/errors
table: {{url: "sqlite:///{root}/db.sqlite", name: students, partition_key: student_id,
        sort_key: course}}
schema:
  fields:
    - {{name: student_id, constraints: {{required: true}}}}
    - {{name: fname}}
    - {{name: lname}}
    - {{name: course, constraints: {{required: true}}}}
max_duplicates: 100%  # a file of one key repeated is what these tests are made of
notify: []
"""


def peak_rss(
    tmp_path: Path, command: str, parts: Iterable[bytes]
) -> tuple[float, dict[str, object]]:
    """Peak RSS (MB) of one command on a file made of ``parts``, and its receipt. The file is
    written a part at a time: this test process must not grow either (a child forked from it
    would start with its high-water mark)."""
    for d in ("inbound", "archive", "errors"):
        (tmp_path / d).mkdir(exist_ok=True)
    config = tmp_path / "batchdrop.yaml"
    config.write_text(CONFIG.format(root=tmp_path))
    path = tmp_path / "inbound" / "f.csv"
    with path.open("wb") as f:
        f.writelines(parts)
    argv = [sys.executable, "-c", COMMAND, command, str(config), str(path)]
    code, out, err, peak_mb = run_measured(argv, tmp_path)
    assert code in (0, 1), err
    return peak_mb, json.loads(out.strip().splitlines()[-1])


def one_key(rows: int) -> Iterator[bytes]:
    yield b"student_id,fname,lname,course\n"
    for n in range(rows):
        yield b'A0000001,Name%d,Last,"Chemistry"\n' % (n % 97)


@pytest.mark.parametrize("command", ["validate", "process", "process-writer"])
def test_a_file_of_one_key_repeated_keeps_memory_flat(tmp_path: Path, command: str) -> None:
    rss, receipt = peak_rss(tmp_path, command, one_key(200_000))

    assert (receipt["rows_read"], receipt["rows_loaded"], receipt["rows_duplicate"]) == (
        200_000,
        1,
        199_999,
    )
    assert rss < BOUND_MB


@pytest.mark.parametrize("command", ["validate", "process"])
def test_a_huge_field_is_read_in_bounded_memory(tmp_path: Path, command: str) -> None:
    mb = b"x" * (1 << 20)
    parts = [
        b"student_id,fname,lname,course\n",
        b"A0000001,Ann,Lee,Chemistry\n",
        b"A0000002,Bob,Ray,",
        *[mb] * 32,  # one field of 32 MB
        b"\nA0000003,Cy,Do,Botany\n",
    ]
    rss, receipt = peak_rss(tmp_path, command, parts)

    assert (receipt["rows_read"], receipt["rows_invalid"]) == (3, 1)
    assert receipt["errors"][0]["line"] == 3  # type: ignore[index]
    assert rss < BOUND_MB


def wide_rows(rows: int, width: int, narrow: int = 0) -> Iterator[bytes]:
    """``narrow`` short rows, then rows of ``width`` bytes of text each, every field under
    csv.max_field_size."""
    yield b"student_id,fname,lname,course\n"
    for n in range(narrow):
        yield b"B%07d,Ann,Lee,C%d\n" % (n, n)
    pad = b"w" * width
    for n in range(rows):
        yield b"A%07d,%s,Lee,C%d\n" % (n, pad, n)


@pytest.mark.parametrize("narrow", [0, 50_000])
@pytest.mark.parametrize("command", ["validate", "process", "process-writer"])
def test_a_file_of_wide_rows_keeps_memory_flat(tmp_path: Path, command: str, narrow: int) -> None:
    """2,100 rows of 100 kB (after 50,000 short ones, or from the start): taken 2,048 rows to a
    chunk and 5,000 to a batch, as short rows are, they held the whole 210 MB (239 MB of peak
    RSS for validate, 657 MB for process); chunks and batches are bounded by their text too."""
    rss, receipt = peak_rss(tmp_path, command, wide_rows(2_100, 100_000, narrow))

    assert (receipt["rows_read"], receipt["rows_loaded"], receipt["rows_invalid"]) == (
        narrow + 2_100,
        narrow + 2_100,
        0,
    )
    assert rss < BOUND_MB
