"""How the DynamoDB bench measures: request counting, timing, moto servers, the report.

Requests are counted with botocore event hooks (``before-send``: every HTTP attempt, retries
included; ``after-call``: each API call's final answer, with its UnprocessedItems) registered on
every client made after ``RequestCounter.install()``, whoever makes it. batchdrop's
BatchWriteItem requests skip the client (``tables/dynamodb_wire.py``): they are counted where
they are sent, the same way.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: moto's server, with a race of its DynamoDB fixed (see the file)
MOTO_SERVER = Path(__file__).resolve().parent.parent / "tests" / "moto_server.py"

MAX_REQUESTS_PER_ITEM = 0.045


class RequestCounter:
    """HTTP requests per service and operation, from botocore's event hooks on every client."""

    def __init__(self) -> None:
        self.sent: Counter[str] = Counter()  # every HTTP attempt ("dynamodb.BatchWriteItem")
        self.calls: Counter[str] = Counter()  # API calls that got their final answer
        self.unprocessed = 0  # items DynamoDB handed back in UnprocessedItems

    def on_send(self, event_name: str, **_: Any) -> None:
        self.sent[event_name.split(".", 1)[1]] += 1  # "before-send.dynamodb.PutItem"

    def on_call(self, event_name: str, parsed: dict[str, Any] | None = None, **_: Any) -> None:
        self.calls[event_name.split(".", 1)[1]] += 1
        for items in ((parsed or {}).get("UnprocessedItems") or {}).values():
            self.unprocessed += len(items)

    def install(self) -> None:
        """Hook every botocore client made from now on, however it is made."""
        import botocore.session

        original = botocore.session.Session.create_client
        counter = self

        def create_client(self: Any, *args: Any, **kwargs: Any) -> Any:
            made = original(self, *args, **kwargs)
            made.meta.events.register("before-send", counter.on_send)
            made.meta.events.register("after-call", counter.on_call)
            return made

        botocore.session.Session.create_client = create_client  # type: ignore[method-assign]
        self._count_wire()

    def _count_wire(self) -> None:
        try:
            from batchdrop.tables.dynamodb_wire import WireSender
        except ImportError:
            return
        send = WireSender.send
        counter = self

        def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
            counter.on_send("before-send.dynamodb.BatchWriteItem")
            reply = send(self, *args, **kwargs)
            counter.on_call("after-call.dynamodb.BatchWriteItem", parsed=reply)
            return reply

        WireSender.send = counted  # type: ignore[method-assign]

    def snapshot(self) -> tuple[Counter[str], Counter[str], int]:
        return Counter(self.sent), Counter(self.calls), self.unprocessed


@dataclass
class Result:
    name: str
    rows: int
    wall_s: float
    cpu_s: float
    sent: Counter[str] = field(default_factory=Counter)
    calls: Counter[str] = field(default_factory=Counter)
    unprocessed: int = 0
    check: str = ""
    #: False when the contender did not load every row: its speed then proves nothing
    complete: bool = True
    full_rows: int = 0  # when timed on a sample: the rows the wall time is extrapolated to

    def requests(self, service: str = "dynamodb") -> int:
        return sum(n for op, n in self.sent.items() if op.startswith(service + "."))

    @property
    def retried(self) -> int:
        return sum(self.sent.values()) - sum(self.calls.values())

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.wall_s if self.wall_s else 0.0

    @property
    def est_wall_s(self) -> float:
        """Wall time for all the rows (extrapolated when timed on a sample)."""
        return self.wall_s * (self.full_rows or self.rows) / self.rows if self.rows else 0.0


def timed(name: str, rows: int, counter: RequestCounter, work: Callable[[], None]) -> Result:
    sent0, calls0, unproc0 = counter.snapshot()
    cpu0, t0 = time.process_time(), time.perf_counter()
    work()
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    sent1, calls1, unproc1 = counter.snapshot()
    return Result(name, rows, wall, cpu, sent1 - sent0, calls1 - calls0, unproc1 - unproc0)


# --- the moto server ------------------------------------------------------------------------


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    """A moto server on a free port, started the way tests/conftest.py starts it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    proc = subprocess.Popen(
        # moto's server, with a race of its DynamoDB fixed (tests/moto_server.py)
        [sys.executable, str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=1).close()
            return proc, url
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("the moto server did not start") from None
            time.sleep(0.1)


def create_table(
    ddb: Any,
    name: str,
    keys: Sequence[tuple[str, str, str]],
    indexes: Sequence[tuple[str, Sequence[tuple[str, str, str]]]] = (),
) -> None:
    attrs = {n: t for n, t, _ in keys}
    args: dict[str, Any] = {
        "TableName": name,
        "KeySchema": [{"AttributeName": n, "KeyType": k} for n, _, k in keys],
        "BillingMode": "PAY_PER_REQUEST",
    }
    if indexes:
        args["GlobalSecondaryIndexes"] = [
            {
                "IndexName": index,
                "KeySchema": [{"AttributeName": n, "KeyType": k} for n, _, k in ikeys],
                "Projection": {"ProjectionType": "ALL"},
            }
            for index, ikeys in indexes
        ]
        for _, ikeys in indexes:
            attrs.update({n: t for n, t, _ in ikeys})
    args["AttributeDefinitions"] = [
        {"AttributeName": n, "AttributeType": t} for n, t in attrs.items()
    ]
    ddb.create_table(**args)


def students_table(ddb: Any, name: str) -> None:
    create_table(ddb, name, [("student_id", "S", "HASH"), ("course", "S", "RANGE")])


def count_items(ddb: Any, name: str) -> int:
    """moto's ItemCount is exact and immediate (AWS's is refreshed about every six hours)."""
    return int(ddb.describe_table(TableName=name)["Table"]["ItemCount"])


@contextmanager
def fresh_moto() -> Iterator[str]:
    """A moto server of its own for one contender, so none pays for another's items."""
    server, endpoint = start_moto()
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    try:
        yield endpoint
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()


# --- the report -----------------------------------------------------------------------------


def report(results: list[Result], rows: int, skipped: list[str]) -> None:
    print(f"DynamoDB bench: {rows:,} rows into DynamoDB, each contender on a fresh moto server")
    print(
        f"  {'method':<32}{'rows':>9}{'wall s':>9}{'rows/s':>9}{'DDB req/item':>14}"
        f"{'CPU ms/row':>12}  check"
    )
    for r in results:
        wall = f"{r.wall_s:.1f}"
        print(
            f"  {r.name:<32}{r.rows:>9,}{wall:>9}{r.rows_per_s:>9,.0f}"
            f"{r.requests() / r.rows:>14.4f}{r.cpu_s / r.rows * 1e3:>12.3f}  {r.check}"
        )
    for r in results:
        ops = ", ".join(f"{op} {n:,}" for op, n in sorted(r.sent.items()))
        extra = f"; {r.retried} retried, {r.unprocessed} unprocessed items"
        print(f"    {r.name}: HTTP requests {ops}{extra}")
    for why in skipped:
        print(f"  skipped: {why}")

    print("\ntargets")
    ours = next((r for r in results if r.name.startswith("batchdrop Pipeline")), None) or next(
        (r for r in results if r.name.startswith("batchdrop")), None
    )
    if ours is None:
        print("  none measured: batchdrop's DynamoDB load is not available")
        return
    per_item = ours.requests() / ours.rows
    calm = ours.retried == 0 and ours.unprocessed == 0
    if not ours.complete:
        print(f"  {ours.name} did not load every row ({ours.check}): every target MISS")
    ok = per_item <= MAX_REQUESTS_PER_ITEM and calm and ours.complete
    print(
        f"  <= {MAX_REQUESTS_PER_ITEM} DynamoDB requests per item without throttling "
        f"({ours.name}): {per_item:.4f} ({ours.requests():,} requests, {ours.retried} retried, "
        f"{ours.unprocessed} unprocessed)  {'PASS' if ok else 'MISS'}"
    )
    for other in results:
        if other.name.startswith("batchdrop"):
            continue
        est = " est." if other.full_rows else ""
        speedup = other.est_wall_s / ours.wall_s
        print(
            f"  faster than {other.name}: {ours.wall_s:.1f} s vs {other.est_wall_s:.1f} s{est} "
            f"for {rows:,} rows ({speedup:.1f}x)  "
            f"{'PASS' if speedup > 1 and ours.complete else 'MISS'}"
        )
