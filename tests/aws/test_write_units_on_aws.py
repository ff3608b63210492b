"""Write units on the moto server: a load's receipt sums the ConsumedCapacity of its replies
(over the invocations of a paused run and the shards of a sharded one), and ``validate``
estimates, before anything is written, the units the load then consumes.

moto answers each BatchWriteItem with one unit, whatever it wrote; the proxy in fault_proxy.py
bills each reply as DynamoDB does (one unit per started KB of each item) where the sizes
matter.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

import pytest

from batchdrop.config import Config
from batchdrop.pipeline import Pipeline
from batchdrop.report import PAUSED
from batchdrop.shard_runner import LocalShards

from ..unit.test_resumable_passes import ticking
from .conftest import Stack
from .fault_proxy import FaultProxy

pytestmark = pytest.mark.aws

NAMES = len("student_id") + len("fname") + len("lname") + len("course")  # 26 bytes
#: the last name that makes an item of student_id A1xxxx, fname F, course Opera weigh ``size``
#: bytes (6 + 1 + 5 bytes of values besides it)
LNAME_FOR = {size: "x" * (size - NAMES - 12) for size in (1024, 1025, 2048, 2049)}


def sized_file(rows: int) -> tuple[bytes, int]:
    """Items of known sizes on both sides of 1 KB and 2 KB, in ASCII and not, one row invalid:
    the file and the write units its valid rows take."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["student_id", "fname", "lname", "course"])
    lnames = [
        (LNAME_FOR[1024], 1),
        (LNAME_FOR[1025], 2),
        (LNAME_FOR[2048], 2),
        (LNAME_FOR[2049], 3),
        ("é" * 493, 1),  # 986 bytes: 1,024 in all
        ("é" * 494, 2),  # 1,026
        ("x", 1),
        ("", 1),  # no lname attribute at all
    ]
    units = 0
    for i in range(rows):
        lname, cost = lnames[i % len(lnames)]
        fname = "" if i == 5 else "F"  # fname is required: that row is rejected
        w.writerow([f"A1{i:04d}", fname, lname, "Opera"])
        units += cost if fname else 0
    return out.getvalue().encode(), units


@pytest.fixture
def billed(stack: Stack) -> Iterator[FaultProxy]:
    proxy = FaultProxy(stack.endpoint, bill=True)
    yield proxy
    proxy.close()


@pytest.fixture
def moto_units(stack: Stack) -> Iterator[FaultProxy]:
    proxy = FaultProxy(stack.endpoint)
    yield proxy
    proxy.close()


def config(stack: Stack, proxy: FaultProxy, **more: Any) -> Config:
    aws = {"endpoint_url": proxy.url, "region": "us-east-1", "max_workers": 4}
    more.setdefault("on_error", "skip_rows")
    return stack.config(aws={**aws, **more.pop("aws", {})}, **more)


def test_a_load_counts_the_units_moto_reports(stack: Stack, moto_units: FaultProxy) -> None:
    body, _ = sized_file(130)
    stack.upload("incoming/f.csv", body)
    receipt = Pipeline(config(stack, moto_units)).process("f.csv")
    assert receipt.status == "loaded_with_rejects" and receipt.rows_loaded == 129
    # moto bills one unit a request: at least 129 / 25 of them
    assert moto_units.calls >= 6
    assert receipt.write_units == moto_units.charged == moto_units.calls
    assert receipt.write_cost_usd == pytest.approx(moto_units.calls * 0.625 / 1e6)
    (sent,) = stack.receipts()  # the notification carries them too
    message = json.loads(sent["Message"])
    assert message["receipt"]["write_units"] == moto_units.calls
    assert f"Write units: {moto_units.calls} (~$0.0000" in message["text"]


def test_validate_estimates_the_units_the_load_then_consumes(
    stack: Stack, billed: FaultProxy
) -> None:
    body, units = sized_file(200)
    stack.upload("incoming/sized.csv", body)
    pipeline = Pipeline(config(stack, billed, aws={"write_unit_price": 1.25}), notifiers=[])
    estimate = pipeline.process("sized.csv", dry_run=True)
    assert billed.calls == 0  # nothing written
    assert estimate.status == "would_load_with_rejects"
    assert estimate.write_units == units
    assert estimate.write_cost_usd == pytest.approx(units * 1.25 / 1e6)
    receipt = pipeline.process("sized.csv")
    assert receipt.rows_loaded == 199
    assert receipt.write_units == billed.charged == units


def test_a_paused_run_counts_each_invocations_units_once(stack: Stack, billed: FaultProxy) -> None:
    body, units = sized_file(300)
    stack.upload("incoming/f.csv", body)
    cfg = config(stack, billed, checkpoint={"every_bytes": 40_000}, batch_size=50)
    runs, writing, before = 0, 0, 0.0
    while True:
        receipt = Pipeline(cfg, notifiers=[]).process("f.csv", deadline=ticking(4))
        runs += 1
        writing += billed.charged > before
        before = billed.charged
        if receipt.status != PAUSED:
            break
        assert runs < 300
    assert writing > 2  # the write pass went on in several invocations
    assert receipt.status == "loaded_with_rejects" and receipt.rows_loaded == 299
    assert receipt.write_units == billed.charged == units


def test_a_sharded_run_sums_its_shards(stack: Stack, billed: FaultProxy) -> None:
    body, units = sized_file(400)
    stack.upload("incoming/f.csv", body)
    cfg = config(stack, billed, shards={"shard_bytes": 60_000})
    pipeline = Pipeline(cfg, notifiers=[])
    pipeline.dispatch = LocalShards(pipeline, 1)
    receipt = pipeline.process("f.csv")
    assert receipt.status == "loaded_with_rejects" and receipt.rows_loaded == 399
    assert len(body) > 5 * 60_000  # several shards
    assert receipt.write_units == billed.charged == units
    assert len(stack.items()) == 399


def test_a_key_over_dynamodbs_size_limit_is_one_rejected_row(stack: Stack) -> None:
    """A sort key of 1,025 bytes makes DynamoDB refuse the whole request that carries it: the
    row is rejected by line before anything is written, and every other row loads."""
    rows = ["student_id,fname,lname,course"]
    rows += [f"A1{i:04d},Ada,Byron,Opera" for i in range(40)]
    rows.insert(20, "A19999,Ada,Byron," + "c" * 1025)
    stack.upload("incoming/keys.csv", ("\n".join(rows) + "\n").encode())
    cfg = stack.config(on_error="skip_rows", aws={"endpoint_url": stack.endpoint})
    receipt = Pipeline(cfg, notifiers=[]).process("keys.csv")
    assert receipt.status == "loaded_with_rejects", receipt.reason
    assert (receipt.rows_loaded, receipt.rows_rejected) == (40, 1)
    (error,) = receipt.errors
    assert error["line"] == 21 and error["column"] == "course"
    assert "1025 bytes, over DynamoDB's limit of 1024 bytes for a sort key" in error["reason"]
    assert len(stack.items()) == 40
