"""``validate`` of a file big enough for the duplicate finder's helper process (past
``dedup.SPILL_AT`` rows): the same counts as the file's construction says."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from batchdrop import cli
from batchdrop.dedup import SPILL_AT

from .conftest import bd

ROWS = SPILL_AT + 20_000


def test_a_big_file_validates_with_its_repeats_and_bad_rows_counted(example: Path) -> None:
    """Every 1,000th row repeats the key of the row before it, every 5,000th has no course;
    repeats come across the helper's whole input (first and last rows share a key too)."""
    lines = ["student_id,fname,lname,course"]
    for i in range(ROWS):
        n = i - 1 if i % 1000 == 999 else i
        course = "" if i % 5000 == 4999 else f"C{n % 7}"
        lines.append(f"A{10000 + n // 7 % 90000:05d},F,L,{course}")
    lines.append(lines[1])
    drop = example / "big.csv"
    drop.write_text("\n".join(lines) + "\n")

    r = bd("validate", str(drop), "--json", cwd=example)

    receipt = json.loads(r.out.strip().splitlines()[-1])
    invalid = ROWS // 5000
    repeats = ROWS // 1000 + 1 - sum(1 for i in range(4999, ROWS, 5000) if i % 1000 == 999)
    assert (receipt["rows_read"], receipt["rows_invalid"], receipt["rows_duplicate"]) == (
        ROWS + 1,
        invalid,
        repeats,
    ), r.err
    assert receipt["status"] == "would_load_with_rejects" and r.code == 0
    assert "Traceback" not in r.err


def test_validate_of_a_small_file_leaves_the_sharding_machinery_unimported(example: Path) -> None:
    code = (
        "import sys\n"
        "from batchdrop.cli import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(m for m in ('batchdrop.shard_runner', 'concurrent.futures.process')"
        " if m in sys.modules))\n"
    )
    csv_file = example / "inbound" / "students.csv"
    out = subprocess.run(
        [sys.executable, "-c", code, "validate", str(csv_file), "--json"],
        cwd=example,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_the_command_logs_as_the_shard_workers_do() -> None:
    from batchdrop.shard_runner import LOG_FORMAT

    assert cli.LOG_FORMAT == LOG_FORMAT
