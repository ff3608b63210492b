"""Sharded loading against consumers: ``python bench/shards.py [--rows 10000000] [--jobs 1,2,4,8]
[--latencies 0,8] [--no-kill]``.

One generated students CSV (keys in random order), cut into at least 16 shards
(``shards.shard_bytes``), loaded into ``dynamodb://students`` on the instant endpoint
(bench/instant_dynamodb.py: a local server that answers at once, or after ``--latency-ms``) with
a SQLite ledger, by ``batchdrop --config C process FILE --jobs N`` as a subprocess, for each N in
the same run, each with a fresh endpoint and a fresh ledger. Reported: wall time, rows/s, the
speed-up against the first N, the requests and items the endpoint received. Every run must
leave exactly ``--rows`` distinct keys at the endpoint, with the file's key checksum: a run that
does not makes the bench say FAIL and exit 1.

Then the resume after a kill: ``--jobs 2`` killed with SIGKILL (the whole process group: the
runner and its workers) once the ledger counts half the shards written, and the same command
run again. Reported: the total wall time against the uninterrupted 2-consumer run, and the items
received (more than the rows is allowed: a shard written again; fewer distinct keys is not).
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import gen  # noqa: E402
import instant_dynamodb  # noqa: E402
from run import batchdrop_argv, receipt_note  # noqa: E402

ROWS = 10_000_000
#: the file is cut into about this many shards (at least 16, the bench's promise)
SHARDS = 32
MIN_SHARDS = 16
#: the shards table of the SQLite ledger (tables/sqlite_ledger.py) and the write step's name
LEDGER_SHARDS = "_batchdrop_shards"
#: without the ledger's shard table, the kill comes at this share of the 2-consumer wall time
KILL_FRACTION = 0.5

CONFIG = """\
inbound: {tmp}/inbound
archive: {tmp}/archive
errors: {tmp}/errors
table:
  url: dynamodb://students
  partition_key: student_id
  sort_key: course
ledger: sqlite:///{tmp}/ledger.db
schema:
  fields:
    - {{name: student_id, type: string, constraints: {{required: true}}}}
    - {{name: fname, type: string}}
    - {{name: lname, type: string}}
    - {{name: course, type: string, constraints: {{required: true}}}}
notify: []
shards:
  shard_bytes: {shard_bytes}
aws:
  endpoint_url: {endpoint}
  region: us-east-1
"""


@dataclass
class Run:
    jobs: int
    latency_ms: float
    wall_s: float
    rc: int
    note: str
    stats: dict[str, Any]
    problems: list[str]
    killed_at_s: float | None = None
    kill_note: str = ""
    started: float = 0.0  # time.time() at the launch (of the last command)

    def phases(self) -> tuple[float, float]:
        """(seconds before the first write, seconds from the first write to the last)."""
        first, last = self.stats.get("first_write"), self.stats.get("last_write")
        if first is None or last is None:
            return 0.0, 0.0
        return first - self.started, last - first

    def rows_per_s(self, rows: int) -> float:
        return rows / self.wall_s if self.wall_s else 0.0


def aws_env() -> dict[str, str]:
    _, env = batchdrop_argv()
    env.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_SESSION_TOKEN="testing",
        AWS_DEFAULT_REGION="us-east-1",
    )
    env.pop("AWS_PROFILE", None)
    return env


def expected_keys(path: Path) -> tuple[int, int]:
    """(distinct keys, checksum) of the file, as the endpoint computes them."""
    seen = instant_dynamodb.HashSet()  # 8 bytes a key: a set of ints would take 10x more
    total = 0
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = next(reader)
        sid, course = header.index("student_id"), header.index("course")
        for row in reader:
            h = instant_dynamodb.key_hash([row[sid], row[course]])
            if seen.add(h):
                total = (total + h) & instant_dynamodb.MASK64
    return seen.size, total


def prepare(work: Path, path: Path, endpoint: str, shard_bytes: int) -> tuple[Path, Path]:
    """A fresh run directory (inbound holding the file, archive, errors, ledger, config)."""
    shutil.rmtree(work, ignore_errors=True)
    for d in ("inbound", "archive", "errors"):
        (work / d).mkdir(parents=True)
    inbound = work / "inbound" / path.name
    try:
        os.link(path, inbound)  # the run moves it away: a link leaves the original in place
    except OSError:
        shutil.copyfile(path, inbound)
    cfg = work / "batchdrop.yaml"
    cfg.write_text(CONFIG.format(tmp=work, endpoint=endpoint, shard_bytes=shard_bytes), "utf-8")
    return cfg, inbound


def argv(cfg: Path, inbound: Path, jobs: int) -> list[str]:
    """The command; ``jobs`` 0: unsharded (no ``--jobs``; the config's shards are bigger than
    the file)."""
    base, _ = batchdrop_argv()
    cmd = [*base, "--config", str(cfg), "process", str(inbound), "--json"]
    return cmd + (["--jobs", str(jobs)] if jobs else [])


def launch(cmd: list[str], env: dict[str, str], out: Any) -> subprocess.Popen[bytes]:
    # a session of its own: a kill reaches the runner and every worker it spawned
    return subprocess.Popen(
        cmd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip


def finished(proc: subprocess.Popen[bytes], out: Any) -> tuple[int, str]:
    rc = proc.wait()
    out.seek(0)
    return rc, out.read().decode("utf-8", "replace")


def check(stats: dict[str, Any], rows: int, checksum: int, rc: int) -> list[str]:
    problems = []
    if rc != 0:
        problems.append(f"exit status {rc}")
    if stats["distinct"] != rows:
        problems.append(f"{stats['distinct']:,} distinct keys received, not {rows:,}")
    elif stats["checksum"] != checksum:
        problems.append("the keys received are not the file's (checksum differs)")
    if stats["items"] < rows:
        problems.append(f"only {stats['items']:,} items received")
    return problems


def _note(rc: int, output: str) -> str:
    m = argparse.Namespace(stdout=output, stderr="", rc=rc)
    return receipt_note(m)  # type: ignore[arg-type]


def straight(
    path: Path, work: Path, jobs: int, latency: float, args: argparse.Namespace, expect: Any
) -> Run:
    rows, checksum = expect
    with instant_dynamodb.start(
        "students", "student_id", "course", latency_ms=latency, server=args.server
    ) as ep:
        shard_bytes = args.shard_bytes if jobs else 2 * path.stat().st_size
        cfg, inbound = prepare(work, path, ep.url, shard_bytes)
        with tempfile.TemporaryFile() as out:
            started, t0 = time.time(), time.perf_counter()
            proc = launch(argv(cfg, inbound, jobs), aws_env(), out)
            rc, output = finished(proc, out)
            wall = time.perf_counter() - t0
        stats = ep.stats()
    problems = check(stats, rows, checksum, rc)
    return Run(jobs, latency, wall, rc, _note(rc, output), stats, problems, started=started)


def ledger_progress(db: Path) -> tuple[int, int] | None:
    """(shards checked, shards written) of the run in the ledger; None without a shard table."""
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.2)
    except sqlite3.Error:
        return 0, 0
    try:
        rows = con.execute(f"SELECT phase, count(*) FROM {LEDGER_SHARDS} GROUP BY phase").fetchall()
    except sqlite3.OperationalError as e:
        return None if "no such table" in str(e) else (0, 0)
    finally:
        con.close()
    counts = dict(rows)
    checked = max((n for p, n in counts.items() if p.startswith("check")), default=0)
    written = max((n for p, n in counts.items() if p.startswith("write")), default=0)
    return checked, written


def group_gone(pgid: int, timeout: float = 30.0) -> bool:
    """Wait until no process of the group is left, zombies included: a worker not yet reaped
    still answers ``kill(pid, 0)``, so a rerun would take its run for a live one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid:
                left.append(stat.parent.name)
        if not left:
            return True
        time.sleep(0.05)
    return False


def killed_and_resumed(
    path: Path, work: Path, latency: float, args: argparse.Namespace, expect: Any, ref_wall: float
) -> Run:
    """--jobs 2, SIGKILL once half the shards are written, then the same command again."""
    rows, checksum = expect
    with instant_dynamodb.start(
        "students", "student_id", "course", latency_ms=latency, server=args.server
    ) as ep:
        cfg, inbound = prepare(work, path, ep.url, args.shard_bytes)
        cmd, env = argv(cfg, inbound, 2), aws_env()
        with tempfile.TemporaryFile() as out:
            t0 = time.perf_counter()
            proc = launch(cmd, env, out)
            how, shards = "", 0
            while proc.poll() is None:
                time.sleep(0.05)
                progress = ledger_progress(work / "ledger.db")
                elapsed = time.perf_counter() - t0
                if progress is None:
                    if elapsed >= KILL_FRACTION * ref_wall:
                        how = f"at {KILL_FRACTION:.0%} of the 2-consumer wall time (no shard table)"
                        break
                    continue
                checked, written = progress
                if checked and written * 2 >= checked:
                    how = f"{written} of {checked} shards written"
                    shards = checked
                    break
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            first_rc, _ = finished(proc, out)
            gone = group_gone(proc.pid)
            killed_at = time.perf_counter() - t0
        at_kill = ep.stats("/mark")
        if not how:
            how = f"not killed: the run ended first (exit {first_rc})"
        elif not gone:
            how += "; some of its processes were still there 30 s later"
        with tempfile.TemporaryFile() as out:
            started, t1 = time.time(), time.perf_counter()
            rc, output = finished(launch(cmd, env, out), out)
            wall = killed_at + time.perf_counter() - t1
        stats = ep.stats()
    problems = check(stats, rows, checksum, rc)
    if how.startswith("not killed") or not gone:
        problems.append(how)
    if shards and shards < MIN_SHARDS:
        problems.append(f"the file was cut into {shards} shards, not {MIN_SHARDS} or more")
    note = f"{_note(rc, output)}; items at the kill {at_kill['items']:,}"
    return Run(2, latency, wall, rc, note, stats, problems, killed_at, how, started)


def show(title: str, runs: list[Run], rows: int) -> None:
    print(f"\n{title}")
    print(
        f"  {'consumers':>9}{'wall s':>9}{'rows/s':>11}{'speed-up':>10}{'to 1st write':>14}"
        f"{'writes s':>10}{'requests':>10}{'items':>12}{'distinct':>12}{'server CPU s':>14}  check"
    )
    base = runs[0].wall_s if runs else 0.0
    for r in runs:
        s = r.stats
        verdict = "ok" if not r.problems else "FAIL: " + "; ".join(r.problems)
        print(
            f"  {r.jobs or 'unsharded':>9}{r.wall_s:>9.1f}{r.rows_per_s(rows):>11,.0f}"
            f"{base / r.wall_s:>9.2f}x{r.phases()[0]:>14.1f}{r.phases()[1]:>10.1f}"
            f"{s['writes']:>10,}{s['items']:>12,}{s['distinct']:>12,}{s['cpu_s']:>14.1f}  "
            f"{verdict}"
        )
    for r in runs:
        if r.problems:
            print(f"  {r.jobs or 'unsharded'} consumer(s): {r.note}")


def shard_bytes_for(size: int, shards: int) -> int:
    return max(1, size // shards)


def main(argv_: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=ROWS)
    p.add_argument(
        "--jobs",
        default="1,2,4,8",
        help="consumer counts, comma-separated; 0: the file unsharded (one process, two passes)",
    )
    p.add_argument(
        "--latencies", default="0,8", help="endpoint latencies in ms, one table each (0: none)"
    )
    p.add_argument(
        "--shards", type=int, default=SHARDS, help=f"about this many shards (>= {MIN_SHARDS})"
    )
    p.add_argument("--no-kill", action="store_true", help="skip the kill-and-resume run")
    p.add_argument(
        "--kill-latency-ms", type=float, default=0.0, help="the endpoint's latency for the kill run"
    )
    p.add_argument("--server", choices=("asyncio", "thread"), default="asyncio")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = p.parse_args(argv_)
    if args.shards < MIN_SHARDS:
        p.error(f"--shards must be {MIN_SHARDS} or more")
    jobs = [int(j) for j in args.jobs.split(",") if j.strip()]
    latencies = [float(x) for x in args.latencies.split(",") if x.strip()]
    tmp = Path(tempfile.mkdtemp(prefix="batchdrop-shards-"))
    failed = False
    try:
        path = tmp / f"students-{args.rows}.csv"
        t0 = time.perf_counter()
        gen.write(args.rows, path)
        size = path.stat().st_size
        args.shard_bytes = shard_bytes_for(size, args.shards)
        expect = expected_keys(path)
        print(
            f"sharded load: {args.rows:,} rows, {size / 1e6:.1f} MB, shards of "
            f"{args.shard_bytes:,} bytes (about {size / args.shard_bytes:.0f}), keys in random "
            f"order; made and summed in {time.perf_counter() - t0:.1f} s; {os.cpu_count()} CPUs; "
            f"instant DynamoDB endpoint ({args.server}), SQLite ledger",
            flush=True,
        )
        if expect[0] != args.rows:
            print(f"  FAIL: the generated file has {expect[0]:,} distinct keys")
            return 1
        ref: dict[float, Run] = {}
        for latency in latencies:
            runs = []
            for n in jobs:
                r = straight(path, tmp / "work", n, latency, args, expect)
                runs.append(r)
                failed |= bool(r.problems)
                who = f"{n} consumer(s)" if n else "unsharded"
                print(
                    f"  latency {latency:g} ms, {who}: {r.wall_s:.1f} s, {r.note}",
                    flush=True,
                )
                if n == 2:
                    ref[latency] = r
            show(
                f"{args.rows:,} rows, endpoint latency {latency:g} ms per request "
                f"(speed-up against the first row)",
                runs,
                args.rows,
            )
        if not args.no_kill:
            lat = args.kill_latency_ms
            base = ref.get(lat) or straight(path, tmp / "work", 2, lat, args, expect)
            k = killed_and_resumed(path, tmp / "work", lat, args, expect, base.wall_s)
            failed |= bool(k.problems)
            extra = k.stats["items"] - args.rows
            print(
                f"\nkill -9 at half the write phase, then the same command again "
                f"(2 consumers, latency {lat:g} ms)"
            )
            print(
                f"  killed after {k.killed_at_s:.1f} s ({k.kill_note}); total {k.wall_s:.1f} s "
                f"against {base.wall_s:.1f} s uninterrupted: {k.wall_s / base.wall_s:.2f}x"
            )
            print(
                f"  items received {k.stats['items']:,} ({extra:+,} against the rows: written "
                f"again), distinct keys {k.stats['distinct']:,}  "
                + ("ok" if not k.problems else "FAIL: " + "; ".join(k.problems))
            )
            before, writing = k.phases()
            print(
                f"  second run: {k.wall_s - (k.killed_at_s or 0):.1f} s ({before:.1f} s to its "
                f"first write, then {writing:.1f} s of writes); {k.note}"
            )
    finally:
        if args.keep:
            print(f"\nkept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    if failed:
        print("\nFAIL: a run did not leave exactly the file's keys at the endpoint")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
