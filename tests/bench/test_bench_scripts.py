"""The benchmarks still measure what they say: each script of ``bench/`` runs end to end on a
few thousand rows and every contender loads the whole file.

The figures of ``make bench`` are never asserted (a test is not a timing); what is asserted is
that no contender fails or loads part of a file, so a bench whose hooks no longer fit the engine
is caught here, not in the middle of a forty-minute ``make bench``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def bench(script: str, *args: str, timeout: float = 300, **extra: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(extra)
    done = subprocess.run(
        [sys.executable, str(BENCH / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "Traceback" not in out, out
    return out


def test_the_dynamodb_bench_loads_the_whole_file_through_the_engine() -> None:
    out = bench("dynamodb.py", "--rows", "600", "--put-rows", "20", "--rss-rows", "")
    assert re.search(r"batchdrop Pipeline\.process \(S3\).*loaded, 600 loaded; 600 in table", out)
    assert "did not load" not in out
    assert "boto3 Table.batch_writer()" in out and "600 in table" in out
    assert "MISS" not in out.split("\ntargets\n", 1)[1].split("requests per item")[0]


def test_the_dynamodb_client_bench_loads_every_row_at_each_latency() -> None:
    out = bench(
        "dynamodb_client.py",
        "--rows",
        "2000",
        "--latencies",
        "0,8",
        "--baseline-rows",
        "200",
        "--batch-writer-rows",
        "200",
        "--rss-rows",
        "",
    )
    ours = re.findall(r"batchdrop process .*", out)
    assert len(ours) == 2, out
    assert all("ok  (exit 0 loaded: read 2000, loaded 2000" in line for line in ours), out
    assert '{"failed": false}' in out


def test_the_resume_bench_loads_the_file_straight_and_in_handler_invocations() -> None:
    out = bench("resume.py", "--rows", "2000", "--budget", "0.5", "--only", "straight,handler")
    lines = [line for line in out.splitlines() if re.match(r"\s+(straight|handler)\s+\d", line)]
    assert len(lines) == 2, out
    assert all("OK 2,000 in table, 1 receipt loaded, archived" in line for line in lines), out


def test_the_modes_bench_counts_day_two_exactly() -> None:
    out = bench("modes.py", "--rows", "2000")
    assert "day two counts exact (unchanged, deleted): ok" in out, out


def test_the_shards_bench_loads_every_row_sharded_and_not() -> None:
    out = bench(
        "shards.py",
        "--rows",
        "10000",
        "--jobs",
        "0,2",
        "--latencies",
        "0",
        "--shards",
        "16",
        "--no-kill",
    )
    rows = [line for line in out.splitlines() if re.match(r"\s+(unsharded|2)\s+\d", line)]
    assert len(rows) == 2, out
    assert all(line.rstrip().endswith("ok") for line in rows), out


@pytest.mark.skipif(
    shutil.which("sqlite3") is None,
    reason="the sqlite3 shell is the bench's load floor",
)
def documented_variables() -> dict[str, str]:
    """The environment variables bench/README.md tells users to set, with its values."""
    text = (BENCH / "README.md").read_text(encoding="utf-8")
    return dict(re.findall(r"^([A-Z][A-Z0-9_]*)=(\S+) ", text, re.MULTILINE))


def test_the_sqlite_bench_runs_every_step_on_every_file() -> None:
    """With the variables the bench README documents set, as users set them: batchdrop reads
    ``BATCHDROP_*`` variables as settings, and refuses one that is not."""
    documented = documented_variables()
    assert documented, "bench/README.md documents no variable: the pattern no longer matches"
    out = bench(
        "run.py", "--sqlite", "--rows", "3000", "--repeat", "1", "--no-hostile", "--big",
        **documented,
    )  # fmt: skip
    steps = [line for line in out.splitlines() if line.startswith("  batchdrop ")]
    assert len(steps) >= 6, out
    for line in steps:
        assert "exit 0" in line, line
        assert re.search(r"read (3000|15000), loaded \1, rejected 0", line), line
    assert out.count("in table") >= 6
