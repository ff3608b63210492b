"""``batchdrop process --jobs N`` on a big file: the shards run in worker processes of their own,
writing to DynamoDB on the moto server, counted in a SQLite ledger; killed with kill -9 in the
middle of writing, the next run goes on from the shards done and ends exactly."""

from __future__ import annotations

import csv
import io
import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import Stack
from .test_resume_on_aws import FIELDS

pytestmark = pytest.mark.aws

Key = tuple[str, str]


def partner_file(rows: int, seed: int) -> tuple[bytes, dict[Key, list[str]]]:
    """Random key order, quoted commas, quotes and line breaks, keys repeated far apart."""
    rng = random.Random(seed)
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["student_id", "fname", "lname", "course"])
    expected: dict[Key, list[str]] = {}
    ids = rng.sample(range(10**6), rows)
    for n, i in enumerate(ids):
        sid = f"A{ids[rng.randrange(n)]:06d}" if n and rng.random() < 0.002 else f"A{i:06d}"
        row = [sid, f"F{n}", f'O"Brien {n}', "Law\nOrder" if i % 2 else "Chemistry, Advanced"]
        w.writerow(row)
        expected[sid, row[3]] = row
    return out.getvalue().encode(), expected


def setup(stack: Stack, root: Path, shard_bytes: int) -> Path:
    for d in ("in", "archive", "errors"):
        (root / d).mkdir(parents=True, exist_ok=True)
    config = {
        "inbound": str(root / "in"),
        "archive": str(root / "archive"),
        "errors": str(root / "errors"),
        "table": {
            "url": f"dynamodb://{stack.table}",
            "partition_key": "student_id",
            "sort_key": "course",
        },
        "ledger": f"sqlite:///{root / 'ledger.db'}",
        "schema": {"fields": FIELDS},
        "notify": [str(root / "receipts.jsonl")],
        "aws": {"endpoint_url": stack.endpoint, "region": "us-east-1"},
        "shards": {"shard_bytes": shard_bytes},
        "batch_size": 200,
    }
    path = root / "batchdrop.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def argv(config: Path, jobs: int) -> list[str]:
    return [
        sys.executable, "-m", "batchdrop", "--config", str(config), "-v",
        "process", "big.csv", "--jobs", str(jobs), "--json",
    ]  # fmt: skip


def items(stack: Stack) -> dict[Key, list[str]]:
    return {
        (i["student_id"]["S"], i["course"]["S"]): [
            i[k]["S"] for k in ("student_id", "fname", "lname", "course")
        ]
        for page in stack.ddb.get_paginator("scan").paginate(TableName=stack.table)
        for i in page["Items"]
    }


def test_process_with_jobs_loads_a_sharded_file_exactly(stack: Stack, tmp_path: Path) -> None:
    body, expected = partner_file(8000, seed=1)
    config = setup(stack, tmp_path, 40_000)
    (tmp_path / "in" / "big.csv").write_bytes(body)
    proc = subprocess.run(argv(config, 2), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    receipt = json.loads(proc.stdout)
    assert (receipt["status"], receipt["rows_read"], receipt["rows_loaded"]) == (
        "loaded",
        8000,
        len(expected),
    )
    assert re.search(r"reads it as (\d+) shards", proc.stderr)
    assert items(stack) == expected
    assert (tmp_path / "archive" / "big.csv").exists()
    lines = (tmp_path / "receipts.jsonl").read_text().splitlines()
    assert len(lines) == 1  # one notification, from the process that concluded
    assert not list((tmp_path / "errors").rglob("*.delta"))


def shards_written(ledger: Path) -> int:
    try:
        with sqlite3.connect(ledger, timeout=5) as db:
            return int(
                db.execute("SELECT count(*) FROM _batchdrop_shards WHERE phase='write'").fetchone()[
                    0
                ]
            )
    except sqlite3.OperationalError:
        return 0


def test_kill_9_mid_write_then_a_rerun_goes_on_from_the_shards_done(
    stack: Stack, tmp_path: Path
) -> None:
    body, expected = partner_file(20_000, seed=2)
    config = setup(stack, tmp_path, 50_000)
    (tmp_path / "in" / "big.csv").write_bytes(body)
    proc = subprocess.Popen(
        argv(config, 2), stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    deadline = time.monotonic() + 240
    while shards_written(tmp_path / "ledger.db") < 4:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the runner and its workers, at once
    proc.wait()
    done_at_kill = shards_written(tmp_path / "ledger.db")
    assert not (tmp_path / "archive" / "big.csv").exists()

    again = subprocess.run(argv(config, 2), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    receipt: dict[str, Any] = json.loads(again.stdout)
    assert (receipt["status"], receipt["rows_read"], receipt["rows_loaded"]) == (
        "loaded",
        20_000,
        len(expected),
    )
    going_on = re.search(r"goes on writing: (\d+) of (\d+) shards done", again.stderr)
    assert going_on is not None, again.stderr
    assert int(going_on.group(1)) >= done_at_kill  # none of them written again
    rewritten = len(re.findall(r"shard \d+ of \d+ written", again.stderr))
    assert rewritten == int(going_on.group(2)) - int(going_on.group(1))
    assert items(stack) == expected
    assert (tmp_path / "archive" / "big.csv").exists()
