"""DynamoDB bench: ``python bench/dynamodb.py [--rows 100000] [--put-rows 10000]``.

The same generated students CSV goes into DynamoDB on a moto server (a real ``moto.server``
subprocess on 127.0.0.1, spoken to over HTTP), in the same run, by:

- batchdrop's engine, ``Pipeline(config).process`` on an S3 inbound (two streamed passes over
  the object, validation, ledger, move), when the engine exists;
- batchdrop's ``DynamoTable`` load alone (``begin().write()`` per 5,000 rows, then ``commit``);
- boto3's ``Table.batch_writer()``;
- one ``PutItem`` per row, the naive loop. On moto this runs at a few hundred rows a second, so
  it is timed on the first ``--put-rows`` rows and its wall time for all rows is extrapolated.

Each reports wall time, rows/s, HTTP requests per item (counted by botocore ``before-send`` hooks
on every client, so retries count) and client CPU per row (``time.process_time`` of this process;
the server is another process).
"""

from __future__ import annotations

import argparse
import csv
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
if not any(Path(p, "batchdrop").is_dir() for p in sys.path if p):
    sys.path.insert(0, str(ROOT / "src"))

import gen  # noqa: E402

MAX_REQUESTS_PER_ITEM = 0.045
KEY = ("student_id", "course")
FIELDS = ("student_id", "fname", "lname", "course")


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
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
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
    total, start = 0, None
    while True:
        args: dict[str, Any] = {"TableName": name, "Select": "COUNT"}
        if start:
            args["ExclusiveStartKey"] = start
        reply = ddb.scan(**args)
        total += reply["Count"]
        start = reply.get("LastEvaluatedKey")
        if not start:
            return total


# --- the contenders -------------------------------------------------------------------------


def read_rows(path: Path, limit: int | None = None) -> Iterator[list[str]]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        next(reader)
        for n, row in enumerate(reader):
            if limit is not None and n >= limit:
                return
            yield row


def put_item_per_row(ddb: Any, table: str, path: Path, limit: int) -> None:
    for row in read_rows(path, limit):
        ddb.put_item(TableName=table, Item={k: {"S": v} for k, v in zip(FIELDS, row, strict=True)})


def batch_writer(table: str, path: Path) -> None:
    import boto3

    with boto3.resource("dynamodb").Table(table).batch_writer() as writer:
        for row in read_rows(path):
            writer.put_item(Item=dict(zip(FIELDS, row, strict=True)))


def bench_config(table: str, endpoint: str, buckets: dict[str, str]) -> Any:
    from batchdrop.config import parse_config

    string = {"type": "string"}
    required = {"type": "string", "constraints": {"required": True}}
    return parse_config(
        {
            **{role: f"s3://{bucket}/" for role, bucket in buckets.items()},
            "table": {
                "url": f"dynamodb://{table}",
                "partition_key": "student_id",
                "sort_key": "course",
            },
            "schema": {
                "fields": [
                    {"name": "student_id", **required},
                    {"name": "fname", **string},
                    {"name": "lname", **string},
                    {"name": "course", **required},
                ]
            },
            "notify": [],
            "aws": {"endpoint_url": endpoint},
        },
        source="bench",
        environ={},
    )


class _NullLedger:
    """The DynamoTable load alone: commit records nothing anywhere."""

    def record(self, claim: Any, state: str, receipt: Any) -> None:
        pass


def dynamo_table_load(config: Any, path: Path) -> None:
    from batchdrop.ports import Claim, FileRef, iter_chunks
    from batchdrop.report import Receipt
    from batchdrop.tables.dynamodb import DynamoTable

    table = DynamoTable.from_config(config)
    table.prepare()
    ref = FileRef(path.name, path.stat().st_size, "bench", time.time(), str(path))
    load = table.begin(Claim("new", "bench", ref), _NullLedger())  # type: ignore[arg-type]
    line = 1
    for chunk in iter_chunks((tuple(r) for r in read_rows(path)), config.batch_size):
        load.write(chunk, list(range(line + 1, line + 1 + len(chunk))))
        line += len(chunk)
    load.commit(Receipt(path.name, str(path), "bench", ref.size))


def pipeline_ready() -> str | None:
    """Why the engine cannot be benched yet, or None when it can."""
    src = ROOT / "src" / "batchdrop"
    for part in ("pipeline.py", "files/s3.py", "tables/dynamodb_ledger.py"):
        if not (src / part).exists():
            return f"src/batchdrop/{part} not written yet"
    return None


def pipeline_process(config: Any, name: str, outcome: dict[str, Any]) -> None:
    from batchdrop.pipeline import Pipeline

    receipt = Pipeline(config).process(name)
    outcome["receipt"] = receipt


def ledger_table(ddb: Any, name: str) -> None:
    from batchdrop.tables.dynamodb_ledger import ledger_table_spec

    ddb.create_table(**ledger_table_spec(name))


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
    ok = per_item <= MAX_REQUESTS_PER_ITEM and calm
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
            f"for {rows:,} rows ({speedup:.1f}x)  {'PASS' if speedup > 1 else 'MISS'}"
        )


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


def run_pipeline(path: Path, rows: int, counter: RequestCounter) -> Result:
    import boto3

    with fresh_moto() as endpoint:
        ddb, s3 = boto3.client("dynamodb"), boto3.client("s3")
        buckets = {"inbound": "bench-in", "archive": "bench-archive", "errors": "bench-errors"}
        for bucket in buckets.values():
            s3.create_bucket(Bucket=bucket)
        s3.upload_file(str(path), "bench-in", path.name)
        students_table(ddb, "students")
        config = bench_config("students", endpoint, buckets)
        ledger_table(ddb, config.ledger_url.removeprefix("dynamodb://"))
        outcome: dict[str, Any] = {}
        r = timed(
            "batchdrop Pipeline.process (S3)",
            rows,
            counter,
            lambda: pipeline_process(config, path.name, outcome),
        )
        rec = outcome["receipt"]
        r.check = (
            f"{rec.status}, {rec.rows_loaded:,} loaded; {count_items(ddb, 'students'):,} in table"
        )
        return r


def run_table_load(path: Path, rows: int, counter: RequestCounter) -> Result:
    import boto3

    with fresh_moto() as endpoint:
        ddb = boto3.client("dynamodb")
        students_table(ddb, "students")
        config = bench_config(
            "students", endpoint, {"inbound": "in", "archive": "archive", "errors": "errors"}
        )
        r = timed(
            "batchdrop DynamoTable load", rows, counter, lambda: dynamo_table_load(config, path)
        )
        r.check = f"{count_items(ddb, 'students'):,} in table"
        return r


def run_batch_writer(path: Path, rows: int, counter: RequestCounter) -> Result:
    import boto3

    with fresh_moto():
        ddb = boto3.client("dynamodb")
        students_table(ddb, "students")
        r = timed(
            "boto3 Table.batch_writer()", rows, counter, lambda: batch_writer("students", path)
        )
        r.check = f"{count_items(ddb, 'students'):,} in table"
        return r


def run_put_item(path: Path, rows: int, put_rows: int, counter: RequestCounter) -> Result:
    import boto3

    with fresh_moto():
        ddb = boto3.client("dynamodb")
        students_table(ddb, "students")
        r = timed(
            "PutItem per row",
            put_rows,
            counter,
            lambda: put_item_per_row(ddb, "students", path, put_rows),
        )
        r.full_rows = rows if put_rows < rows else 0
        r.check = f"{count_items(ddb, 'students'):,} in table" + (
            f"; timed on {put_rows:,} rows" if r.full_rows else ""
        )
        return r


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument(
        "--put-rows",
        type=int,
        default=10_000,
        help="rows the PutItem-per-row loop is timed on (its wall time is scaled up)",
    )
    args = p.parse_args(argv)
    rows, put_rows = args.rows, min(args.put_rows, args.rows)

    os.environ.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_SESSION_TOKEN="testing",
        AWS_DEFAULT_REGION="us-east-1",
    )
    os.environ.pop("AWS_PROFILE", None)
    counter = RequestCounter()
    counter.install()
    results: list[Result] = []
    skipped: list[str] = []
    with tempfile.TemporaryDirectory(prefix="batchdrop-ddb-bench-") as tmp:
        path = Path(tmp) / "students.csv"
        gen.write(rows, path)
        contenders: list[tuple[str, Callable[[], Result]]] = [
            ("batchdrop DynamoTable load", lambda: run_table_load(path, rows, counter)),
            ("boto3 Table.batch_writer()", lambda: run_batch_writer(path, rows, counter)),
            ("PutItem per row", lambda: run_put_item(path, rows, put_rows, counter)),
        ]
        why = pipeline_ready()
        if why is None:
            contenders.insert(
                0, ("batchdrop Pipeline.process", lambda: run_pipeline(path, rows, counter))
            )
        else:
            skipped.append(f"batchdrop Pipeline.process: {why}")
        for name, run in contenders:
            try:
                results.append(run())
            except Exception as e:  # a broken contender must not hide the others' figures
                skipped.append(f"{name}: failed: {type(e).__name__}: {str(e)[:200]}")
    report(results, rows, skipped)
    return 0


if __name__ == "__main__":
    sys.exit(main())
