"""kill -9 in the middle of a checkpointed load on the moto server, then a rerun: no row lost, no
row written twice into the counts, and the rerun repeats at most one checkpoint interval.

The killed process (crash_resume.py) dies with os._exit at an exact point: after a segment's
state object is stored but before its checkpoint is recorded, right after a checkpoint, after a
write request, after a pass's last checkpoint, after the commit. The rerun is a fresh process of
its own (new interpreter, new PYTHONHASHSEED), as a restarted worker or a new Lambda container.
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import STUDENT_FIELDS, Stack

pytestmark = pytest.mark.aws
CRASH = Path(__file__).with_name("crash_resume.py")
ROWS = 12_000
EVERY = 80_000  # bytes between checkpoints: about 2,600 rows of this file


def partner_file(rows: int) -> tuple[bytes, dict[tuple[str, str], list[str]]]:
    rng = random.Random(7)
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(["student_id", "fname", "lname", "course"])
    expected: dict[tuple[str, str], list[str]] = {}
    for n, i in enumerate(rng.sample(range(10**5), rows)):
        row = [
            f"A{i:05d}",
            f"Fname {n}",
            'Holmes, "the" detective',
            rng.choice(["Law\nOrder", "Opera"]),
        ]
        w.writerow(row)
        expected[(row[0], row[3])] = row
    return out.getvalue().encode(), expected


def table_items(stack: Stack) -> dict[tuple[str, str], list[str]]:
    """Every item of the data table (a Scan answers 1 MB a page)."""
    out: dict[tuple[str, str], list[str]] = {}
    for page in stack.ddb.get_paginator("scan").paginate(TableName=stack.table):
        for i in page["Items"]:
            row = [i[f]["S"] for f in ("student_id", "fname", "lname", "course")]
            out[row[0], row[3]] = row
    return out


def settings(stack: Stack) -> dict[str, Any]:
    return {
        "inbound": f"s3://{stack.inbound}/incoming/",
        "archive": f"s3://{stack.archive}/",
        "errors": f"s3://{stack.errors}/rejected/",
        "table": {
            "url": f"dynamodb://{stack.table}",
            "partition_key": "student_id",
            "sort_key": "course",
        },
        "ledger": f"dynamodb://{stack.ledger}",
        "schema": {"fields": STUDENT_FIELDS},
        "notify": [f"sns://{stack.topic_arn}"],
        "aws": {"endpoint_url": stack.endpoint, "region": "us-east-1", "claim_ttl_seconds": 2},
        "checkpoint": {"every_bytes": EVERY, "every_seconds": 1},
        "batch_size": 500,
    }


def run(config: Path, point: str, nth: int) -> tuple[int, str]:
    env = {**os.environ, "PYTHONHASHSEED": "random"}
    proc = subprocess.run(
        [sys.executable, str(CRASH), str(config), "big.csv", point, str(nth)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, proc.stdout


@pytest.mark.parametrize(
    ("point", "nth"),
    [
        ("after-delta", 2),  # in the check pass: its 2nd segment stored, not recorded
        ("after-final", 1),  # the check pass ended; nothing written yet
        ("after-delta", 7),  # in the write pass
        ("mid-write", 17),
        ("after-checkpoint", 8),
        ("after-commit", 1),
    ],
)
def test_kill_9_then_a_rerun_loads_exactly(
    stack: Stack, tmp_path: Path, point: str, nth: int
) -> None:
    body, expected = partner_file(ROWS)
    config = tmp_path / "batchdrop.yaml"
    config.write_text(yaml.safe_dump(settings(stack)))
    stack.upload("incoming/big.csv", body)

    code, out = run(config, point, nth)
    assert code == 137, out  # it died where it was told to
    before = int(out.split("written=")[1].split()[0])
    code, out = run(config, "none", 0)
    while "status=busy" in out:  # the dead run's claim has not lapsed yet
        time.sleep(0.5)
        code, out = run(config, "none", 0)
    assert code == 0, out
    assert "status=loaded" in out
    after = int(out.split("written=")[1].split()[0])

    assert table_items(stack) == expected
    (msg,) = stack.receipts()
    receipt = yaml.safe_load(msg["Message"])["receipt"]
    assert (receipt["rows_read"], receipt["rows_loaded"]) == (ROWS, ROWS)
    assert stack.keys(stack.inbound) == []
    assert stack.keys(stack.archive) == ["big.csv"]
    assert not [k for k in stack.keys(stack.errors) if "_batchdrop/state/" in k]
    # the work repeated: rows written by both processes beyond the file's, at most one interval
    rows_per_interval = ROWS * EVERY // len(body) + 1
    repeated = before + after - ROWS
    assert 0 <= repeated <= rows_per_interval, (before, after)


def ledger_progress(stack: Stack) -> dict[str, Any] | None:
    """The progress recorded on the file's claim (the newest claim in the ledger)."""
    items = stack.ddb.scan(TableName=stack.ledger, ConsistentRead=True)["Items"]
    claims = [i for i in items if i["pk"]["S"].startswith("file#")]
    if not claims or "progress" not in claims[0]:
        return None
    return json.loads(claims[0]["progress"]["S"])  # type: ignore[no-any-return]


def visible(stack: Stack, url: str) -> int:
    attrs = stack.sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"])


def test_the_worker_killed_at_random_points_resumes_from_its_last_checkpoint(
    stack: Stack, tmp_path: Path
) -> None:
    rows = 30_000
    body, expected = partner_file(rows)
    url = stack.sqs.create_queue(
        QueueName=f"events-{stack.suffix}", Attributes={"VisibilityTimeout": "2"}
    )["QueueUrl"]
    config = tmp_path / "batchdrop.yaml"
    config.write_text(yaml.safe_dump(settings(stack)))
    stack.upload("incoming/big.csv", body)
    event = {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {
                    "bucket": {"name": stack.inbound},
                    "object": {"key": "incoming/big.csv", "size": len(body)},
                },
            }
        ]
    }
    stack.sqs.send_message(QueueUrl=url, MessageBody=json.dumps(event))
    argv = [
        sys.executable,
        "-m",
        "batchdrop",
        "--config",
        str(config),
        "worker",
        "--queue",
        url,
        "--wait",
        "1",
    ]
    rng = random.Random(3)
    resumed_at: list[tuple[int, str]] = []
    for kill in range(3):
        log = tmp_path / f"worker-{kill}.log"
        with open(log, "w") as err:
            proc = subprocess.Popen(argv, stderr=err, stdout=subprocess.DEVNULL)
            before = ledger_progress(stack)
            deadline = time.monotonic() + 120
            while ledger_progress(stack) == before:  # at least one checkpoint of its own
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.05)
            time.sleep(rng.uniform(0, 1.0))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        last = ledger_progress(stack)
        assert last is not None
        if not last["final"]:  # a pass that had ended is not read again at all
            resumed_at.append((last["line"] + 1, last["stage"]))
    deadline = time.monotonic() + 120
    while not visible(stack, url):  # the killed worker's message, back on the queue
        assert time.monotonic() < deadline
        time.sleep(0.5)
    # until the file is loaded: a worker that comes while the killed one's claim has not yet
    # run out finds the file busy and leaves its message for later (a busy machine can delay
    # the last kill's lease past the message's return), and --until-empty stops at the next
    # empty poll; the worker of a real deployment simply polls again
    deadline = time.monotonic() + 120
    for attempt in range(20):
        log = tmp_path / f"worker-last-{attempt:02d}.log"
        with open(log, "w") as err:
            subprocess.run([*argv, "--until-empty"], stderr=err, timeout=300, check=True)
        if len(table_items(stack)) >= rows or time.monotonic() > deadline:
            break
        time.sleep(1)
    text = "\n".join(p.read_text() for p in sorted(tmp_path.glob("worker-*.log")))

    assert table_items(stack) == expected
    (msg,) = stack.receipts()
    receipt = json.loads(msg["Message"])["receipt"]
    assert (receipt["rows_read"], receipt["rows_loaded"]) == (rows, rows)
    # each restart went on from the last checkpoint recorded before its kill, no earlier: the
    # work repeated after a kill is what the killed worker did past it, less than one interval
    for line, _stage in resumed_at:
        assert f"from line {line} " in text, (line, text[-2000:])
    starts = [int(m) for m in re.findall(r"goes on \w+ from line (\d+)", text)]
    assert len(starts) >= len(resumed_at)
