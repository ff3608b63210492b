"""DynamoDB bench: ``python bench/dynamodb.py [--rows 100000] [--put-rows 2000] [--table-load]``.

The same generated students CSV goes into DynamoDB on a moto server (a real ``moto.server``
subprocess on 127.0.0.1, spoken to over HTTP), in the same run, by:

- batchdrop's engine, ``Pipeline(config).process`` on an S3 inbound (two streamed passes over
  the object, validation, ledger, move), when the engine exists;
- with ``--table-load`` (or when the engine is missing), batchdrop's ``DynamoTable`` load alone:
  ``begin().write()`` per ``batch_size`` rows read from the local file, then ``commit``;
- boto3's ``Table.batch_writer()``;
- one ``PutItem`` per row, the naive loop. On moto this runs at a few hundred rows a second, so
  it is timed on the first ``--put-rows`` rows and its wall time for all rows is extrapolated.

Each contender gets a moto server of its own. Each reports wall time, rows/s, HTTP requests
per item (counted by botocore ``before-send`` hooks on every client, so retries count) and client
CPU per row (``time.process_time`` of this process; the server is another process).
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
if not any(Path(p, "batchdrop").is_dir() for p in sys.path if p):
    sys.path.insert(0, str(ROOT / "src"))

import gen  # noqa: E402
from dynamo_measure import (  # noqa: E402
    RequestCounter,
    Result,
    count_items,
    fresh_moto,
    report,
    students_table,
    timed,
)

FIELDS = ("student_id", "fname", "lname", "course")


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


BUCKETS = {"inbound": "bench-in", "archive": "bench-archive", "errors": "bench-errors"}


@contextmanager
def pipeline_stack(path: Path) -> Iterator[tuple[Any, Any]]:
    """A fresh moto server with the buckets, the table and the ledger, ``path`` in inbound."""
    import boto3

    with fresh_moto() as endpoint:
        ddb, s3 = boto3.client("dynamodb"), boto3.client("s3")
        for bucket in BUCKETS.values():
            s3.create_bucket(Bucket=bucket)
        s3.upload_file(str(path), BUCKETS["inbound"], path.name)
        students_table(ddb, "students")
        config = bench_config("students", endpoint, BUCKETS)
        ledger_table(ddb, config.ledger_url.removeprefix("dynamodb://"))
        yield ddb, config


def run_pipeline(path: Path, rows: int, counter: RequestCounter) -> Result:
    with pipeline_stack(path) as (ddb, config):
        outcome: dict[str, Any] = {}
        r = timed(
            "batchdrop Pipeline.process (S3)",
            rows,
            counter,
            lambda: pipeline_process(config, path.name, outcome),
        )
        rec = outcome["receipt"]
        items = count_items(ddb, "students")
        r.check = f"{rec.status}, {rec.rows_loaded:,} loaded; {items:,} in table"
        r.complete = rec.status == "loaded" and rec.rows_loaded == items == rows
        if rec.status != "loaded":
            r.check += f" ({rec.reason}; {'; '.join(map(str, rec.errors[:3]))})"
        return r


def pipeline_rss(rows: int, seed: int = 20261127) -> None:
    """Peak RSS of ``Pipeline.process`` (S3 → DynamoDB) run alone in a child process, measured
    from outside as the SQLite bench measures its steps (bench/run.py's launcher)."""
    import run

    with tempfile.TemporaryDirectory(prefix="batchdrop-ddb-rss-") as tmp:
        path = Path(tmp) / f"students-{rows}.csv"
        gen.write(rows, path, seed)
        with pipeline_stack(path) as (ddb, config):
            me = str(Path(__file__).resolve())
            argv = [sys.executable, me, "--child", config.aws.endpoint_url, path.name]
            m = run.measure("batchdrop process (S3 → DynamoDB)", argv, rows)
            note = run.receipt_note(m)
            items = count_items(ddb, "students")
    verdict = run.verdict(m.rc == 0 and m.rss_mb < run.FLAT_RSS_MB)
    print(
        f"  {m.name + f', {rows:,} rows':<52}{m.wall_s:>8.1f} s{m.rss_mb:>9.1f} MB  "
        f"{note}; {items:,} in table  (< {run.FLAT_RSS_MB:.0f} MB: {verdict})",
        flush=True,
    )


def child(endpoint: str, name: str) -> int:
    """The measured process of ``pipeline_rss``: one file through the engine, its receipt out."""
    from batchdrop.pipeline import Pipeline

    receipt = Pipeline(bench_config("students", endpoint, BUCKETS)).process(name)
    print(receipt.to_json())
    return 0


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
    p.add_argument(
        "--table-load",
        action="store_true",
        help="also time DynamoTable's load alone (rows from the local file, no engine)",
    )
    p.add_argument(
        "--rss-rows",
        default="100000,1000000",
        help="comma-separated row counts whose peak RSS is measured (empty: none)",
    )
    p.add_argument("--rss-only", action="store_true", help="only the peak RSS measurements")
    p.add_argument("--child", nargs=2, metavar=("ENDPOINT", "NAME"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    rows, put_rows = args.rows, min(args.put_rows, args.rows)

    os.environ.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_SESSION_TOKEN="testing",
        AWS_DEFAULT_REGION="us-east-1",
    )
    os.environ.pop("AWS_PROFILE", None)
    if args.child:
        return child(*args.child)
    rss_rows = [int(n) for n in args.rss_rows.split(",") if n.strip()]
    if rss_rows:
        print("DynamoDB peak RSS: the engine alone in a child process, a fresh moto server each")
        for n in rss_rows:
            try:
                pipeline_rss(n)
            except Exception as e:
                print(f"  {n:,} rows: failed: {type(e).__name__}: {str(e)[:200]}")
        print(flush=True)
    if args.rss_only:
        return 0
    counter = RequestCounter()
    counter.install()
    results: list[Result] = []
    skipped: list[str] = []
    with tempfile.TemporaryDirectory(prefix="batchdrop-ddb-bench-") as tmp:
        path = Path(tmp) / "students.csv"
        gen.write(rows, path)
        why = pipeline_ready()
        if why is not None:
            skipped.append(f"batchdrop Pipeline.process: {why}")
        else:
            try:
                results.append(run_pipeline(path, rows, counter))
            except Exception as e:  # a broken engine must not hide the other figures
                skipped.append(f"batchdrop Pipeline.process: failed: {type(e).__name__}: {e}")
        contenders: list[tuple[str, Callable[[], Result]]] = [
            ("boto3 Table.batch_writer()", lambda: run_batch_writer(path, rows, counter)),
            ("PutItem per row", lambda: run_put_item(path, rows, put_rows, counter)),
        ]
        if args.table_load or not results:  # the load alone, or instead of a missing engine
            table_load = lambda: run_table_load(path, rows, counter)  # noqa: E731
            contenders.insert(0, ("batchdrop DynamoTable load", table_load))
        for name, run in contenders:
            try:
                results.append(run())
            except Exception as e:
                skipped.append(f"{name}: failed: {type(e).__name__}: {str(e)[:200]}")
    report(results, rows, skipped)
    return 0


if __name__ == "__main__":
    sys.exit(main())
