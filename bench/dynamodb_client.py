"""DynamoDB writes at the client's limit: ``python bench/dynamodb_client.py [--rows 500000]
[--latencies 0,8] [--rss-rows 100000,1000000] [--repeat 1]``.

One students file (bench/gen.py: keys in random order) goes into ``dynamodb://students`` on the
instant endpoint (bench/instant_dynamodb.py, pinned to the second core), in the same run, by
three clients, each a child process pinned to the first core (``taskset -c 0``), measured from
outside (wall time and peak RSS through bench/run.py's launcher; CPU time as the children's
rusage):

- ``batchdrop process``: the CLI as users run it (both passes, a SQLite ledger, the file moved);
- boto3's ``Table.batch_writer()``;
- 16 threads calling ``client.batch_write_item`` with requests of 25 items.

Each runs with no latency and with ``--latencies`` milliseconds held on every answer (real
DynamoDB's order is 8 ms). The baselines are timed on the first ``--baseline-rows`` rows (rows/s
is what is compared; ``batch_writer`` at 8 ms takes a minute per 25,000 rows). Every run must
leave at the endpoint exactly its rows' distinct keys with their checksum, or it says FAIL.

Then peak RSS of ``batchdrop process`` alone at each ``--rss-rows`` (no latency).

Targets: CPU per row of ``process`` <= 0.03 ms (no latency); at 8 ms, rows/s >= 8x
``batch_writer`` and >= 1.5x the 16 threads; requests per item <= 0.041; peak RSS <= 64 MB at
every size. A missed target prints MISS; the exit status is 1 only for a FAIL.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import shutil
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import gen  # noqa: E402
import instant_dynamodb  # noqa: E402
import run  # noqa: E402
import shards  # noqa: E402

FIELDS = ("student_id", "fname", "lname", "course")
MAX_CPU_MS_PER_ROW = 0.03
MIN_VS_BATCH_WRITER = 8.0
MIN_VS_THREADS = 1.5
MAX_REQUESTS_PER_ITEM = 0.041
MAX_RSS_MB = 64.0
CLIENT_CORE, ENDPOINT_CORE = 0, 1


@dataclass
class Outcome:
    name: str
    latency_ms: float
    rows: int
    wall_s: float
    cpu_s: float
    rss_mb: float
    requests: int
    problems: list[str]
    note: str = ""

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.wall_s if self.wall_s else 0.0

    @property
    def cpu_ms_per_row(self) -> float:
        return 1e3 * self.cpu_s / self.rows if self.rows else 0.0


def pinned(argv: list[str], core: int) -> list[str]:
    if shutil.which("taskset"):
        return ["taskset", "-c", str(core), *argv]
    code = (
        f"import os,sys; os.sched_setaffinity(0, {{{core}}}); os.execvp(sys.argv[1], sys.argv[1:])"
    )
    return [sys.executable, "-c", code, *argv]


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def first_rows(path: Path, rows: int, out: Path) -> Path:
    """The first ``rows`` rows of ``path`` as a file of their own."""
    with open(path, encoding="utf-8") as src, open(out, "w", encoding="utf-8") as dst:
        for n, line in enumerate(src):
            if n > rows:
                break
            dst.write(line)
    return out


def measured(
    name: str, latency: float, rows: int, expect: tuple[int, int], argv_for: Any, env: Any
) -> Outcome:
    """One client as a pinned child against a fresh endpoint: ``argv_for(url)`` is its command."""
    with instant_dynamodb.start("students", "student_id", "course", latency_ms=latency) as ep:
        os.sched_setaffinity(ep.process.pid, {ENDPOINT_CORE})
        cpu0 = children_cpu()
        m = run.measure(name, pinned(argv_for(ep.url), CLIENT_CORE), rows, env)
        cpu = children_cpu() - cpu0
        stats = ep.stats()
    problems = shards.check(stats, expect[0], expect[1], m.rc)
    note = run.receipt_note(m) if name.startswith("batchdrop") else f"exit {m.rc}"
    if m.rc and not name.startswith("batchdrop"):
        note += ": " + (m.stderr.strip().splitlines() or ["?"])[-1][:100]
    return Outcome(name, latency, rows, m.wall_s, cpu, m.rss_mb, stats["writes"], problems, note)


def batchdrop_process(path: Path, work: Path, latency: float, rows: int) -> Outcome:
    expect = shards.expected_keys(path)

    def argv_for(url: str) -> list[str]:
        cfg, inbound = shards.prepare(work, path, url, 2 * path.stat().st_size)
        return shards.argv(cfg, inbound, 0)

    return measured("batchdrop process", latency, rows, expect, argv_for, shards.aws_env())


def baseline(kind: str, path: Path, latency: float, rows: int) -> Outcome:
    expect = shards.expected_keys(path)
    me = str(Path(__file__).resolve())
    name = "boto3 batch_writer()" if kind == "batch_writer" else "16 threads batch_write_item"

    def argv_for(url: str) -> list[str]:
        return [sys.executable, me, "--child", kind, url, str(path)]

    return measured(name, latency, rows, expect, argv_for, shards.aws_env())


# --- the baselines, run as children ---------------------------------------------------------


def read_rows(path: Path) -> Any:
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        next(reader)
        yield from reader


def child(kind: str, url: str, path: Path) -> int:
    import boto3

    if kind == "batch_writer":
        table = boto3.resource("dynamodb", endpoint_url=url).Table("students")
        with table.batch_writer() as writer:
            for row in read_rows(path):
                writer.put_item(Item=dict(zip(FIELDS, row, strict=True)))
        return 0
    from botocore.config import Config

    client = boto3.client("dynamodb", endpoint_url=url, config=Config(max_pool_connections=16))
    batches: list[list[dict[str, Any]]] = []
    batch: list[dict[str, Any]] = []
    lock = threading.Lock()
    source = iter(read_rows(path))

    def next_batch() -> list[dict[str, Any]]:
        with lock:
            out = []
            for row in source:
                item = {k: {"S": v} for k, v in zip(FIELDS, row, strict=True)}
                out.append({"PutRequest": {"Item": item}})
                if len(out) == 25:
                    break
            return out

    def worker() -> None:
        while requests := next_batch():
            while requests:
                reply = client.batch_write_item(RequestItems={"students": requests})
                requests = reply.get("UnprocessedItems", {}).get("students", [])

    del batches, batch
    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return 0


# --- the report -------------------------------------------------------------------------------


def show(outcomes: list[Outcome]) -> None:
    print(
        f"  {'client':<30}{'latency':>8}{'rows':>10}{'wall s':>9}{'rows/s':>10}"
        f"{'CPU ms/row':>12}{'req/item':>10}{'RSS MB':>8}  check"
    )
    for o in outcomes:
        check = "FAIL: " + "; ".join(o.problems) if o.problems else "ok"
        print(
            f"  {o.name:<30}{o.latency_ms:>6g}ms{o.rows:>10,}{o.wall_s:>9.2f}{o.rows_per_s:>10,.0f}"
            f"{o.cpu_ms_per_row:>12.4f}{o.requests / o.rows:>10.4f}{o.rss_mb:>8.1f}  {check}"
            f"  ({o.note})"
        )


def targets(outcomes: list[Outcome], rss: list[Outcome]) -> None:
    def find(name: str, latency: float) -> Outcome | None:
        return next(
            (o for o in outcomes if o.name.startswith(name) and o.latency_ms == latency), None
        )

    print("\ntargets")
    calm = find("batchdrop", 0.0)
    if calm is not None:
        ok = calm.cpu_ms_per_row <= MAX_CPU_MS_PER_ROW
        print(
            f"  CPU per row, no latency: {calm.cpu_ms_per_row:.4f} ms "
            f"(<= {MAX_CPU_MS_PER_ROW})  {run.verdict(ok)}"
        )
    for o in outcomes:
        if o.name.startswith("batchdrop"):
            ok = o.requests / o.rows <= MAX_REQUESTS_PER_ITEM
            print(
                f"  requests per item, {o.latency_ms:g} ms: {o.requests / o.rows:.4f} "
                f"(<= {MAX_REQUESTS_PER_ITEM})  {run.verdict(ok)}"
            )
    for latency in sorted({o.latency_ms for o in outcomes if o.latency_ms}):
        ours = find("batchdrop", latency)
        if ours is None:
            continue
        for name, bar in (("boto3", MIN_VS_BATCH_WRITER), ("16 threads", MIN_VS_THREADS)):
            other = find(name, latency)
            if other is None:
                continue
            ratio = ours.rows_per_s / other.rows_per_s if other.rows_per_s else 0.0
            print(
                f"  {latency:g} ms: rows/s {ours.rows_per_s:,.0f} vs {other.name} "
                f"{other.rows_per_s:,.0f}: {ratio:.2f}x (>= {bar:g}x)  {run.verdict(ratio >= bar)}"
            )
    if rss:
        top = max(o.rss_mb for o in rss)
        sizes = ", ".join(f"{o.rows:,}: {o.rss_mb:.1f} MB" for o in rss)
        print(f"  peak RSS ({sizes}) <= {MAX_RSS_MB:g} MB  {run.verdict(top <= MAX_RSS_MB)}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=500_000)
    p.add_argument("--latencies", default="0,8", help="milliseconds per answer, comma-separated")
    p.add_argument("--baseline-rows", type=int, default=100_000)
    p.add_argument("--batch-writer-rows", type=int, default=20_000, help="with latency")
    p.add_argument("--rss-rows", default="100000,1000000", help="comma-separated; empty: none")
    p.add_argument("--only", choices=("batchdrop", "all"), default="all")
    p.add_argument("--child", nargs=3, metavar=("KIND", "URL", "FILE"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        kind, url, file = args.child
        return child(kind, url, Path(file))
    latencies = [float(x) for x in args.latencies.split(",") if x.strip()]
    rss_rows = [int(x) for x in args.rss_rows.split(",") if x.strip()]
    print(
        f"DynamoDB clients: {args.rows:,} rows (random key order) into the instant endpoint; "
        f"client on core {CLIENT_CORE}, endpoint on core {ENDPOINT_CORE}",
        flush=True,
    )
    outcomes: list[Outcome] = []
    rss: list[Outcome] = []
    with tempfile.TemporaryDirectory(prefix="batchdrop-ddb-client-") as tmp_:
        tmp = Path(tmp_)
        path = tmp / "students.csv"
        gen.write(args.rows, path)
        small = first_rows(path, min(args.rows, args.baseline_rows), tmp / "baseline.csv")
        tiny = first_rows(path, min(args.rows, args.batch_writer_rows), tmp / "writer.csv")
        for latency in latencies:
            outcomes.append(batchdrop_process(path, tmp / "work", latency, args.rows))
            if args.only == "all":
                writer_file = tiny if latency else small
                writer_rows = min(
                    args.rows, args.batch_writer_rows if latency else args.baseline_rows
                )
                outcomes.append(baseline("batch_writer", writer_file, latency, writer_rows))
                outcomes.append(
                    baseline("threads", small, latency, min(args.rows, args.baseline_rows))
                )
            show(outcomes[-3:] if args.only == "all" else outcomes[-1:])
            print(flush=True)
        for n in rss_rows:
            sized = tmp / f"rss-{n}.csv"
            gen.write(n, sized)
            rss.append(batchdrop_process(sized, tmp / "work", 0.0, n))
            sized.unlink()
        if rss:
            print("peak RSS of batchdrop process, no latency")
            show(rss)
    targets(outcomes, rss)
    failed = any(o.problems for o in outcomes + rss)
    print(json.dumps({"failed": failed}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
