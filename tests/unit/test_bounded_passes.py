"""A pass over a file keeps nothing that grows with it: what a table's client leaves behind per
request is collected while the cyclic collector is paused, and the deadline is looked at while
reading, not only between writes."""

from __future__ import annotations

import gc
import io
from typing import Any

import pytest

from batchdrop.config import parse_config
from batchdrop.errors import TransientError
from batchdrop.passes import scan_file
from batchdrop.ports import FileRef
from batchdrop.report import Receipt, RejectedRowsReport

from .configs import TWO_FIELDS

CONFIG: dict[str, Any] = {**TWO_FIELDS, "batch_size": 100}


class Store:
    def __init__(self, data: bytes):
        self.data = data

    def open(self, ref: FileRef) -> io.BytesIO:
        return io.BytesIO(self.data)


class Request:
    """What an HTTP client may leave per call: objects that refer to each other."""

    alive = 0

    def __init__(self) -> None:
        Request.alive += 1
        self.me = self
        self.parts = [{"header": n} for n in range(200)]

    def __del__(self) -> None:
        Request.alive -= 1


class CyclicLoad:
    def __init__(self) -> None:
        self.most_alive = 0

    def write(self, rows: list[tuple[Any, ...]], lines: list[int]) -> list[tuple[int, Any]]:
        Request()
        self.most_alive = max(self.most_alive, Request.alive)
        return []

    def finish(self) -> list[tuple[int, Any]]:
        return []


def run(data: bytes, **options: Any) -> tuple[Receipt, Any]:
    config = parse_config(CONFIG, environ={})
    ref = FileRef("f.csv", len(data), "v1", 0.0, "/in/f.csv")
    receipt = Receipt("f.csv", ref.url, "v1", ref.size)
    report = RejectedRowsReport("f.csv")
    try:
        scan = scan_file(config, Store(data), ref, receipt, report, **options)  # type: ignore[arg-type]
    finally:
        report.discard()
    return receipt, scan


def test_garbage_a_table_client_makes_per_request_is_collected_during_the_pass() -> None:
    gc.collect()
    load = CyclicLoad()
    data = b"a,b\n" + b"".join(b"k%d,v\n" % n for n in range(50_000))  # 500 batches
    _, scan = run(data, load=load)
    gc.collect()

    assert scan.written == 50_000
    assert load.most_alive < 100  # not one per batch: the pass collects as it writes
    assert gc.isenabled()


@pytest.mark.parametrize("body", [b"\n" * 200_000, b"x\n" * 100_000], ids=["blank", "invalid"])
def test_the_deadline_is_looked_at_while_reading_rows_that_are_never_written(
    body: bytes,
) -> None:
    calls = []

    def deadline() -> float:
        calls.append(1)
        return 600.0 if len(calls) < 3 else 5.0

    with pytest.raises(TransientError, match="too little time left; a retry starts it again"):
        run(b"a,b\n" + body, load=CyclicLoad(), deadline=deadline)
    assert len(calls) == 3


def test_a_ragged_row_with_undecodable_bytes_is_reported_with_them_escaped() -> None:
    config = parse_config({**CONFIG, "on_error": "skip_rows"}, environ={})
    data = b"a,b\nk1,v\nk2\xfa,v,extra\nk3,v\n"
    ref = FileRef("f.csv", len(data), "v1", 0.0, "/in/f.csv")
    receipt = Receipt("f.csv", ref.url, "v1", ref.size)
    report = RejectedRowsReport("f.csv")
    try:
        scan = scan_file(config, Store(data), ref, receipt, report)  # type: ignore[arg-type]
        path = report.path()
        assert path is not None
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    finally:
        report.discard()

    assert (scan.read, scan.invalid) == (3, 1)
    assert lines[1] == 'f.csv,3,,"k2\\xfa,v,extra","expected 2 fields, found 3"'
    assert receipt.errors[0]["value"] == "k2\\xfa,v,extra"
