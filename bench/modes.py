"""Day two of a daily full file, in ``mode: snapshot`` + ``write: changed_only``, against a full
reload: ``python bench/modes.py [--rows 1000000] [--latency-ms 0]``.

Day one is a generated students CSV (bench/gen.py, keys in random order). Day two is day one
with 1% of its rows changed (another last name), 0.5% removed and 0.5% new (new students), in
the same random order. Both days are loaded by ``batchdrop --config C process FILE --json`` as
a subprocess into ``dynamodb://students`` on the instant endpoint (bench/instant_dynamodb.py),
with a SQLite ledger. In the same run, day two is loaded again into a fresh endpoint as a full
reload (``mode: upsert``, ``write: all``). Reported: the wall time of each load, and day two's
write requests (BatchWriteItem requests the endpoint received) and write units (the receipt's,
summed from the replies' ConsumedCapacity) against the full reload's. Target: at most 3%.
The table the endpoint keeps (a hash of each key written) is not the measure here: deletes are
counted as write units and requests, not removed from it.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import gen  # noqa: E402
import instant_dynamodb  # noqa: E402
from shards import aws_env  # noqa: E402

TARGET = 0.03  # day two's requests and units at most this share of a full reload's
CHANGED, REMOVED, NEW = 0.01, 0.005, 0.005

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
mode: {mode}
write: {write}
aws:
  endpoint_url: {endpoint}
  region: us-east-1
"""


def day_two(day_one: Path, out: Path, seed: int = 2) -> tuple[int, int, int]:
    """Day one with rows changed, removed and added; (changed, removed, new)."""
    rng = random.Random(seed)
    changed = removed = new = 0
    with open(day_one, encoding="utf-8") as src, open(out, "w", encoding="utf-8") as dst:
        dst.write(src.readline())
        for n, line in enumerate(src):
            roll = rng.random()
            if roll < REMOVED:
                removed += 1
                continue
            if roll < REMOVED + CHANGED:
                sid, fname, _lname, course = line.split(",", 3)
                line = f"{sid},{fname},Changed{n},{course}"
                changed += 1
            dst.write(line)
            if rng.random() < NEW:
                new += 1
                dst.write(f'B{new:07d},New,Student,"Chemistry"\n')
    return changed, removed, new


def load(work: Path, name: str, csv: Path, endpoint: str, mode: str, write: str) -> dict[str, Any]:
    """``batchdrop process`` of ``csv`` (as ``name``), measured from outside."""
    config = work / "batchdrop.yaml"
    if not config.exists():
        for d in ("inbound", "archive", "errors"):
            (work / d).mkdir(parents=True, exist_ok=True)
        config.write_text(CONFIG.format(tmp=work, endpoint=endpoint, mode=mode, write=write))
    target = work / "inbound" / name
    target.write_bytes(csv.read_bytes())
    script = Path(sys.executable).parent / "batchdrop"
    cmd = [str(script), "--config", str(config), "process", str(target), "--json"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=aws_env(), check=False)
    wall = time.perf_counter() - t0
    try:
        data = json.loads(proc.stdout[proc.stdout.index("{") :])
        receipt = data.get("receipt", data)
    except ValueError:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise SystemExit(f"{name}: exit {proc.returncode}: {tail}") from None
    return {"wall": wall, "receipt": receipt}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--latency-ms", type=float, default=0.0)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="batchdrop-bench-modes-") as tmp:
        root = Path(tmp)
        one, two = root / "day1.csv", root / "day2.csv"
        gen.write(args.rows, one)
        changed, removed, new = day_two(one, two)
        print(
            f"## write modes, day two: {args.rows:,} rows on day one; day two {changed:,} "
            f"changed, {removed:,} removed, {new:,} new (random key order)",
            flush=True,
        )
        with instant_dynamodb.start(
            "students", "student_id", "course", latency_ms=args.latency_ms
        ) as ep:
            work = root / "modes"
            first = load(work, "day1.csv", one, ep.url, "snapshot", "changed_only")
            before = ep.stats()
            second = load(work, "day2.csv", two, ep.url, "snapshot", "changed_only")
            after = ep.stats()
            state = sum(f.stat().st_size for f in (work / "errors").rglob("part-*"))
        with instant_dynamodb.start(
            "students", "student_id", "course", latency_ms=args.latency_ms
        ) as ep:
            full = load(root / "full", "day2.csv", two, ep.url, "upsert", "all")
            full_stats = ep.stats()
    r2, rf = second["receipt"], full["receipt"]
    requests = after["requests"] - before["requests"]
    units, full_units = float(r2.get("write_units") or 0), float(rf.get("write_units") or 0)
    print(f"{'load':<34} {'wall s':>8} {'requests':>10} {'write units':>12}  receipt")
    for label, m, req in (
        ("day one (snapshot+changed_only)", first, before["requests"]),
        ("day two (snapshot+changed_only)", second, requests),
        ("day two as a full reload", full, full_stats["requests"]),
    ):
        r = m["receipt"]
        print(
            f"{label:<34} {m['wall']:>8.1f} {req:>10,} {float(r.get('write_units') or 0):>12,.0f}"
            f"  {r.get('status')}: loaded {r.get('rows_loaded'):,}, unchanged "
            f"{r.get('rows_unchanged'):,}, deleted {r.get('rows_deleted'):,}"
        )
    exact = (r2.get("rows_unchanged"), r2.get("rows_deleted")) == (
        args.rows - removed - changed,
        removed,
    )
    for what, part, whole in (
        ("write requests", requests, full_stats["requests"]),
        ("write units", units, full_units),
    ):
        share = part / whole if whole else float("inf")
        verdict = "ok" if share <= TARGET else "MISS"
        print(f"day two {what}: {share:.2%} of a full reload (target <= {TARGET:.0%}) {verdict}")
    print(f"day two counts exact (unchanged, deleted): {'ok' if exact else 'FAIL'}")
    print(f"day two wall time: {second['wall'] / full['wall']:.2f}x a full reload's")
    kept = args.rows - removed + new
    print(f"the feed's state after day two: {state:,} bytes, {state / kept:.1f} bytes an item")
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())
