"""The batchdrop benchmarks: ``python bench/run.py [--rows N] [--big] [--sqlite|--dynamodb]``.

For one generated students CSV (keys in random order), in the same run, each step runs as its own
process and is measured from the outside: whole-process wall time, rows/s and peak RSS
(``ru_maxrss`` of that child, from ``os.wait4``). The steps are the parse floor (Python's
csv.reader over the file), the load floor (the sqlite3 shell's ``.import`` into a table with the
same primary key), ``batchdrop validate`` and ``batchdrop process`` into SQLite. The load floor
and ``process`` also run, in the same rounds, on a file of the same shape in key order, so each
ratio is paired on both orders. The same four steps then run, in rounds too, on a typed file of
the same size (integers, numbers, dates, timestamps, booleans: ``gen.py --kind orders``), since
strings alone need no conversion. Then ``validate`` and ``process`` once each on two hostile files
of the same size, one key repeated on every row and every row invalid, and on 2,100 rows of 100 kB
each: peak RSS must stay flat.
The DynamoDB bench (bench/dynamodb.py) runs after it, with its own peak RSS measurements, then
the DynamoDB client bench (bench/dynamodb_client.py: the write path pinned to one core against a
local instant endpoint, with and without 8 ms of latency, against boto3's clients), then
the resume bench (bench/resume.py: what checkpoints cost, the Lambda handler on a short time
budget, a run killed and resumed), then the shards bench (bench/shards.py: a sharded load into
a local instant DynamoDB endpoint by 1, 2, 4 and 8 consumers, and a kill -9 and resume), then
the write-modes bench (bench/modes.py: day two of a daily full file in snapshot + changed_only,
against a full reload).

Each SQLite-bench step runs ``--repeat`` times (default 3), in rounds; the tables show the best
wall time, with the highest peak RSS of the runs, and each target's ratio is the median of its
ratios round by round (``paired``). A missed target prints MISS; the exit status stays 0 (a
benchmark is a measurement, not a test).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import gen  # noqa: E402

TABLE = "students"
PROCESS_VS_IMPORT = 1.15  # process wall time at most this many times the .import time
VALIDATE_VS_CSV = 0.50  # validate rows/s at least this share of csv.reader's rows/s
RSS_LIMIT_MB = 64.0
#: rows of the resume bench (bench/resume.py): checkpoints, the handler with a short budget, a kill
#: (500,000: each of its five contenders takes about 3 minutes on moto here; 1M takes 5-7)
RESUME_ROWS = 500_000
#: rows of the shards bench (bench/shards.py): ``--shards-rows`` or BENCH_SHARDS_ROWS
#: shrink it (0: skip it)
SHARDS_ROWS = 10_000_000
#: peak RSS of any file shape (millions of repeats, of invalid rows) and of the DynamoDB path
FLAT_RSS_MB = 64.0
#: Peak RSS wobbles by a few hundred kB between runs of the same file; memory that grew with
#: the file would differ by megabytes at 5x the rows.
RSS_NOISE_MB = 1.0

CSV_FLOOR = """
import csv, sys
n = 0
with open(sys.argv[1], newline="", encoding="utf-8-sig") as f:
    for row in csv.reader(f):
        n += 1
print(n - 1)
"""

# Why a launcher: Linux keeps a child's ru_maxrss across exec, and a child forked (or vforked)
# from this process starts with this process's resident set, so wait4 here would report at
# least our own RSS. A bare interpreter (-S) forks the command instead and reports wait4's
# figures for it: wall time from fork to exit, ru_maxrss in kB (within ~1 MB of the truth).
LAUNCHER = """
import os, sys, time
result, argv = sys.argv[1], sys.argv[2:]
t0 = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(argv[0], argv)
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - t0
cpu = usage.ru_utime + usage.ru_stime
with open(result, "w") as f:
    f.write(f"{usage.ru_maxrss} {wall} {os.waitstatus_to_exitcode(status)} {cpu}")
"""

#: the folders and the table of a bench config, then its key and schema
PLACES = """\
inbound: {tmp}/inbound
archive: {tmp}/archive
errors: {tmp}/errors
table:
  url: sqlite:///{tmp}/bench.db
  name: {table}
"""
CONFIG = (
    PLACES
    + """\
  partition_key: student_id
  sort_key: course
schema:
  fields:
    - name: student_id
      type: string
      constraints: {{required: true}}
    - name: fname
      type: string
    - name: lname
      type: string
    - name: course
      type: string
      constraints: {{required: true}}
notify: []
"""
)
#: the typed file (bench/gen.py --kind orders): integers, numbers, dates, timestamps, booleans,
#: a pattern and bounds, missing values; keyed by order_id + line
ORDERS = "orders"
ORDERS_CONFIG = (
    PLACES
    + """\
  partition_key: order_id
  sort_key: line
schema:
  fields:
    - {{name: order_id, type: string, constraints: {{required: true}}}}
    - {{name: line, type: integer}}
    - {{name: sku, type: string, constraints: {{required: true, pattern: "SKU-[0-9]{{5}}"}}}}
    - {{name: quantity, type: integer, constraints: {{required: true, minimum: 1}}}}
    - {{name: unit_price, type: number, constraints: {{required: true, minimum: 0}}}}
    - {{name: discount, type: number}}
    - {{name: ordered_on, type: date, constraints: {{required: true}}}}
    - {{name: shipped_at, type: datetime}}
    - {{name: paid, type: boolean, constraints: {{required: true}}}}
notify: []
"""
)
ORDERS_TABLE = (
    "CREATE TABLE t (order_id TEXT, line INTEGER, sku TEXT, quantity INTEGER, unit_price NUMERIC, "
    "discount NUMERIC, ordered_on TEXT, shipped_at TEXT, paid INTEGER, "
    "PRIMARY KEY (order_id, line)) WITHOUT ROWID"
)
STUDENTS_TABLE = (
    "CREATE TABLE t (student_id TEXT, fname TEXT, lname TEXT, course TEXT, "
    "PRIMARY KEY (student_id, course)) WITHOUT ROWID"
)


@dataclass
class Measure:
    name: str
    wall_s: float
    rss_mb: float
    rc: int
    stdout: str
    stderr: str
    rows: int = 0
    note: str = ""
    cpu_s: float = 0.0  # user + system time of the command and its children (a writer process)
    #: every run of a step run in rounds (``best``): the paired ratios are taken round by round
    rounds: list[Measure] = field(default_factory=list)

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.wall_s if self.wall_s else 0.0


def measure(name: str, argv: list[str], rows: int, env: dict[str, str] | None = None) -> Measure:
    """Run ``argv`` to completion: its wall time and its own peak RSS, through LAUNCHER."""
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.NamedTemporaryFile("r") as result,
    ):
        launcher = [sys.executable, "-S", "-c", LAUNCHER, result.name, *argv]
        subprocess.run(launcher, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env)
        maxrss_kb, wall, rc, cpu = result.read().split()
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode("utf-8", "replace")
        stderr = err.read().decode("utf-8", "replace")
    return Measure(
        name, float(wall), int(maxrss_kb) / 1024, int(rc), stdout, stderr, rows, cpu_s=float(cpu)
    )


def batchdrop_argv() -> tuple[list[str], dict[str, str]]:
    """How to run the CLI: the installed script, else the module from src/ (before install).

    The modules are compiled first and bytecode is allowed: an installed batchdrop starts from
    cached bytecode, and compiling every module at each start would be measured as batchdrop's."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(ROOT / "src" / "batchdrop")],
        check=False,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    script = Path(sys.executable).parent / "batchdrop"
    if script.exists():
        return [str(script)], env
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
    code = "import sys; from batchdrop.cli import main; sys.exit(main())"
    return [sys.executable, "-c", code], env


def receipt_note(m: Measure) -> str:
    """status and counts from a ``--json`` receipt, or why there is none."""
    try:
        start = m.stdout.index("{")
        data = json.loads(m.stdout[start:])
    except ValueError:
        tail = m.stderr.strip().splitlines() or m.stdout.strip().splitlines() or ["no output"]
        return f"exit {m.rc}: {tail[-1][:90]}"
    r = data.get("receipt", data)
    return (
        f"exit {m.rc} {r.get('status')}: read {r.get('rows_read')}, "
        f"loaded {r.get('rows_loaded')}, rejected {r.get('rows_rejected')}, "
        f"dup {r.get('rows_duplicate')}"
    )


def count_rows(db: Path, table: str) -> str:
    try:
        with sqlite3.connect(db) as con:
            (n,) = con.execute(f'SELECT count(*) FROM "{table}"').fetchone()
        return f"{n:,} in table"
    except sqlite3.Error as e:
        return f"table not readable: {e}"


def csv_floor(path: Path, rows: int) -> Measure:
    m = measure("csv.reader (parse floor)", [sys.executable, "-c", CSV_FLOOR, str(path)], rows)
    m.note = f"exit {m.rc}: {m.stdout.strip()} rows"
    return m


def import_floor(
    path: Path, tmp: Path, rows: int, label: str = "", create: str = STUDENTS_TABLE
) -> Measure:
    db = tmp / "import.db"
    db.unlink(missing_ok=True)
    with sqlite3.connect(db) as con:
        con.execute(create)
    argv = ["sqlite3", str(db), f".import --csv --skip 1 {path} t"]
    m = measure(f"sqlite3 .import (load floor){label}", argv, rows)
    m.note = f"exit {m.rc}: {count_rows(db, 't')}"
    db.unlink(missing_ok=True)
    return m


def write_config(tmp: Path, template: str = CONFIG, table: str = TABLE) -> Path:
    for d in ("inbound", "archive", "errors"):
        (tmp / d).mkdir(exist_ok=True)
    cfg = tmp / "batchdrop.yaml"
    cfg.write_text(template.format(tmp=tmp, table=table), encoding="utf-8")
    return cfg


def validate_step(
    path: Path, tmp: Path, rows: int, label: str = "", template: str = CONFIG
) -> Measure:
    cfg = write_config(tmp, template)
    base, env = batchdrop_argv()
    argv = [*base, "--config", str(cfg), "validate", str(path), "--json"]
    m = measure(f"batchdrop validate{label}", argv, rows, env)
    m.note = receipt_note(m)
    return m


def process_step(
    path: Path, tmp: Path, rows: int, label: str = "", template: str = CONFIG, table: str = TABLE
) -> Measure:
    """``process`` into a fresh database; only the batchdrop command is timed."""
    cfg = write_config(tmp, template, table)
    base, env = batchdrop_argv()
    for d in ("archive", "errors", "inbound"):
        shutil.rmtree(tmp / d, ignore_errors=True)
        (tmp / d).mkdir()
    for p in tmp.glob("bench.db*"):
        p.unlink()
    inbound = tmp / "inbound" / path.name
    shutil.copyfile(path, inbound)  # process moves the file out of inbound: give it a copy
    argv = [*base, "--config", str(cfg), "process", str(inbound), "--json"]
    m = measure(f"batchdrop process{label}", argv, rows, env)
    m.note = receipt_note(m) + "; " + count_rows(tmp / "bench.db", table)
    return m


def best(runs: list[Measure]) -> Measure:
    """The fastest run's figures, with the highest peak RSS of all the runs (and every run,
    for ``paired``)."""
    walls = [m.wall_s for m in runs]
    fastest = min(runs, key=lambda m: m.wall_s)
    fastest.rounds = list(runs)
    fastest.rss_mb = max(m.rss_mb for m in runs)
    fastest.cpu_s = min(m.cpu_s for m in runs)
    if len(runs) > 1:
        fastest.note += f" [best of {', '.join(f'{w:.2f}' for w in walls)} s]"
    return fastest


def run_steps(
    path: Path, in_order: Path, tmp: Path, rows: int, repeat: int, cli: bool
) -> dict[str, Measure]:
    """Every step ``repeat`` times, in rounds, so a busy moment does not hit one step only;
    the load floor and ``process`` on the file in key order (``in_order``) too."""
    sorted_label = ", key order"
    steps: dict[str, Callable[[], Measure]] = {
        "csv": lambda: csv_floor(path, rows),
        "import": lambda: import_floor(path, tmp, rows),
        "import-sorted": lambda: import_floor(in_order, tmp, rows, sorted_label),
    }
    if cli:
        (tmp / "run").mkdir(exist_ok=True)
        steps["validate"] = lambda: validate_step(path, tmp / "run", rows)
        steps["process"] = lambda: process_step(path, tmp / "run", rows)
        steps["process-sorted"] = lambda: process_step(in_order, tmp / "run", rows, sorted_label)
    runs: dict[str, list[Measure]] = {name: [] for name in steps}
    for _ in range(repeat):
        for name, step in steps.items():
            runs[name].append(step())
    return {name: best(ms) for name, ms in runs.items()}


def print_table(title: str, ms: list[Measure]) -> None:
    print(f"\n{title}")
    print(f"  {'step':<40}{'wall s':>9}{'CPU s':>8}{'rows/s':>12}{'peak RSS MB':>13}  result")
    for m in ms:
        print(
            f"  {m.name:<40}{m.wall_s:>9.2f}{m.cpu_s:>8.2f}{m.rows_per_s:>12,.0f}"
            f"{m.rss_mb:>13.1f}  {m.note}"
        )


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def paired(top: Measure, bottom: Measure, percent: bool = False) -> tuple[float, str]:
    """``top``'s wall time over ``bottom``'s, round by round (the two ran minutes apart at
    most, in the same round), and the median of those ratios: the machine's speed wanders by
    a third within a run, and the best run of each step may come from moments of different
    speeds (one csv.reader run of 0.67 s among runs of 1.01 s). A single run: its ratio."""
    if len(top.rounds) > 1 and len(top.rounds) == len(bottom.rounds):
        ratios = [t.wall_s / b.wall_s for t, b in zip(top.rounds, bottom.rounds, strict=True)]
        listed = ", ".join(f"{r:.0%}" if percent else f"{r:.2f}" for r in ratios)
        return statistics.median(ratios), f"median of {len(ratios)} rounds ({listed})"
    return top.wall_s / bottom.wall_s, "one run"


def validate_target(val: Measure | None, csv_m: Measure, what: str = "") -> None:
    """validate's rows/s against csv.reader's on the same file."""
    at = f" at {csv_m.rows:,} rows{what}"
    if val is not None and val.rc == 0:
        share, how = paired(csv_m, val, percent=True)  # rows/s over rows/s: time over time
        print(
            f"  validate rows/s >= {VALIDATE_VS_CSV:.0%} of csv.reader rows/s{at}: {share:.0%}, "
            f"{how}  "
            f"{verdict(share >= VALIDATE_VS_CSV)} (best {val.rows_per_s:,.0f} / "
            f"{csv_m.rows_per_s:,.0f} = {val.rows_per_s / csv_m.rows_per_s:.0%}; "
            f"CPU {val.cpu_s:.2f} s / {csv_m.cpu_s:.2f} s)"
        )
    else:
        print(
            f"  validate rows/s >= {VALIDATE_VS_CSV:.0%} of csv.reader{at}: not measured "
            "(validate failed)  MISS"
        )


def targets(ms: dict[str, Measure], big: dict[str, Measure] | None) -> None:
    print("\ntargets")
    csv_m, imp = ms["csv"], ms["import"]
    val, proc = ms.get("validate"), ms.get("process")
    for order, p, floor in (
        ("random key order", proc, imp),
        ("key order", ms.get("process-sorted"), ms["import-sorted"]),
    ):
        if p is not None and p.rc == 0:
            ratio, how = paired(p, floor)
            print(
                f"  process time <= {PROCESS_VS_IMPORT}x .import time, {order}: {ratio:.2f}x, "
                f"{how}  {verdict(ratio <= PROCESS_VS_IMPORT)} (best {p.wall_s:.2f} s / "
                f"{floor.wall_s:.2f} s = {p.wall_s / floor.wall_s:.2f}x; CPU {p.cpu_s:.2f} s / "
                f"{floor.cpu_s:.2f} s = {p.cpu_s / floor.cpu_s:.2f}x)"
            )
        elif "validate" in ms:
            print(
                f"  process time <= {PROCESS_VS_IMPORT}x .import time, {order}: not measured "
                "(process did not succeed)  MISS"
            )
    validate_target(val, csv_m)
    if big and "csv" in big:
        validate_target(big.get("validate"), big["csv"])
    ran = [m for m in (val, proc, ms.get("process-sorted")) if m is not None]
    if big:
        ran += [m for step, m in big.items() if step != "csv"]
    if ran:
        worst = max(ran, key=lambda m: m.rss_mb)
        print(
            f"  peak RSS <= {RSS_LIMIT_MB:.0f} MB: highest {worst.rss_mb:.1f} MB ({worst.name})  "
            f"{verdict(worst.rss_mb <= RSS_LIMIT_MB)}"
        )
    if big:
        for step in ("validate", "process"):
            small, large = ms.get(step), big.get(step)
            if small is None or large is None:
                continue
            delta = large.rss_mb - small.rss_mb
            print(
                f"  RSS at {large.rows / 1e6:g}M <= RSS at {small.rows / 1e6:g}M rows ({step}): "
                f"{large.rss_mb:.1f} MB vs {small.rss_mb:.1f} MB ({delta:+.2f} MB; "
                f"tolerance {RSS_NOISE_MB} MB)  {verdict(delta <= RSS_NOISE_MB)}"
            )


def typed_bench(rows: int, tmp: Path, repeat: int) -> dict[str, Measure]:
    """The parse floor, the load floor, validate and process on a typed file (bench/gen.py
    --kind orders), in rounds: the strings of the students file need no conversion, a
    partner's export of numbers, dates and timestamps does."""
    path = tmp / f"orders-{rows}.csv"
    gen.write(rows, path, kind="orders")
    run = tmp / "run-orders"
    run.mkdir(exist_ok=True)
    label = " (orders)"
    steps: dict[str, Callable[[], Measure]] = {
        "csv": lambda: csv_floor(path, rows),
        "import": lambda: import_floor(path, tmp, rows, label, ORDERS_TABLE),
        "validate": lambda: validate_step(path, run, rows, label, ORDERS_CONFIG),
        "process": lambda: process_step(path, run, rows, label, ORDERS_CONFIG, ORDERS),
    }
    runs: dict[str, list[Measure]] = {name: [] for name in steps}
    for _ in range(repeat):
        for name, step in steps.items():
            runs[name].append(step())
    ms = {name: best(m) for name, m in runs.items()}
    ms["csv"].name += label
    path.unlink()
    size = f"{rows:,} rows of a typed file (9 columns: integers, numbers, dates, timestamps"
    print_table(size + ", booleans; keys in random order)", list(ms.values()))
    print("  targets on the typed file")
    p, imp = ms["process"], ms["import"]
    if p.rc == 0:
        ratio, how = paired(p, imp)
        print(
            f"  process time <= {PROCESS_VS_IMPORT}x .import time (typed file): {ratio:.2f}x, "
            f"{how}  {verdict(ratio <= PROCESS_VS_IMPORT)} (best {p.wall_s:.2f} s / "
            f"{imp.wall_s:.2f} s = {p.wall_s / imp.wall_s:.2f}x)"
        )
    validate_target(ms["validate"], ms["csv"], " (typed file)")
    return ms


#: rows of the wide hostile file: 100 kB each, 210 MB in all
WIDE_ROWS = 2_100


def hostile_bench(rows: int, tmp: Path) -> list[Measure]:
    """validate and process on a file of one repeated key, on a file of invalid rows, and on
    a file of rows of 100 kB (WIDE_ROWS of them)."""
    ms = []
    for kind in ("one-key", "invalid", "wide"):
        n = min(rows, WIDE_ROWS) if kind == "wide" else rows
        path = tmp / f"{kind}-{n}.csv"
        gen.write(n, path, kind=kind)
        run = tmp / f"run-{kind}"
        run.mkdir(exist_ok=True)
        label = f" ({kind}, {n:,} rows)" if n != rows else f" ({kind})"
        ms += [validate_step(path, run, n, label), process_step(path, run, n, label)]
        path.unlink()
    print_table(
        f"{rows:,} rows of hostile shapes (peak RSS < {FLAT_RSS_MB:.0f} MB), one run each", ms
    )
    worst = max(ms, key=lambda m: m.rss_mb)
    print(
        f"  peak RSS < {FLAT_RSS_MB:.0f} MB for every file shape: highest {worst.rss_mb:.1f} MB "
        f"({worst.name})  {verdict(worst.rss_mb < FLAT_RSS_MB)}"
    )
    return ms


def sqlite_bench(
    rows: int, big: bool, repeat: int, keep: bool, hostile: bool = True, typed: bool = True
) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="batchdrop-bench-"))
    try:
        path = tmp / f"students-{rows}.csv"
        in_order = tmp / f"students-sorted-{rows}.csv"
        t0 = time.perf_counter()
        gen.write(rows, path)
        gen.write(rows, in_order, in_order=True)
        size = path.stat().st_size
        print(
            f"batchdrop bench: {rows:,} rows, {size / 1e6:.1f} MB, generated in "
            f"{time.perf_counter() - t0:.1f} s ({path})"
        )
        print(
            f"  python {platform.python_version()}, sqlite3 shell "
            f"{sqlite_version()}, {os.cpu_count()} CPUs"
        )
        have_cli = (ROOT / "src" / "batchdrop" / "cli.py").exists()
        ms = run_steps(path, in_order, tmp, rows, repeat, have_cli)
        in_order.unlink()
        title = f"{rows:,} rows, each step a separate process"
        print_table(
            title + (f", best wall time of {repeat} runs" if repeat > 1 else ""), list(ms.values())
        )
        if not have_cli:
            print("  batchdrop validate/process: skipped (src/batchdrop/cli.py not written yet)")
        big_ms: dict[str, Measure] | None = None
        if big and have_cli:
            big_rows = 5 * rows
            path.unlink()
            big_path = tmp / f"students-{big_rows}.csv"
            gen.write(big_rows, big_path)
            (tmp / "run5").mkdir()
            label = f" ({big_rows / 1e6:g}M)"
            # the parse floor and validate in rounds, as at 1M (their ratio is a target);
            # process once: at 5M it is there for its peak RSS
            floors: list[Measure] = []
            validates: list[Measure] = []
            for _ in range(repeat):
                floors.append(csv_floor(big_path, big_rows))
                validates.append(validate_step(big_path, tmp / "run5", big_rows, label))
            big_ms = {
                "csv": best(floors),
                "validate": best(validates),
                "process": process_step(big_path, tmp / "run5", big_rows, label),
            }
            big_ms["csv"].name += label
            rounds = f"csv.reader and validate best of {repeat}, " if repeat > 1 else ""
            print_table(
                f"{big_rows:,} rows (peak RSS must not grow with the file), "
                f"{rounds}process one run",
                list(big_ms.values()),
            )
        targets(ms, big_ms)
        if typed and have_cli:
            typed_bench(rows, tmp, repeat)
        if hostile and have_cli:
            hostile_bench(rows, tmp)
    finally:
        if keep:
            print(f"\nkept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def sqlite_version() -> str:
    try:
        out = subprocess.run(["sqlite3", "--version"], capture_output=True, text=True, check=True)
        return out.stdout.split()[0]
    except (OSError, subprocess.CalledProcessError):
        return "missing"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1_000_000, help="rows for the SQLite bench")
    p.add_argument(
        "--big",
        action="store_true",
        help="also run validate/process at 5x the rows "
        "to check that peak RSS does not grow with the file",
    )
    which = p.add_mutually_exclusive_group()
    which.add_argument("--sqlite", action="store_true", help="only the local (SQLite) bench")
    which.add_argument("--dynamodb", action="store_true", help="only the DynamoDB bench")
    p.add_argument("--dynamodb-rows", type=int, default=100_000)
    p.add_argument("--put-rows", type=int, default=2_000, help="rows PutItem-per-row is timed on")
    p.add_argument("--table-load", action="store_true", help="DynamoDB: also DynamoTable alone")
    p.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="runs of each SQLite-bench step; "
        "the best wall time is reported (the machine may be busy)",
    )
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    p.add_argument(
        "--no-hostile",
        action="store_true",
        help="skip the files of one repeated key and of invalid rows",
    )
    p.add_argument(
        "--no-typed",
        action="store_true",
        help="skip the typed file (integers, numbers, dates: bench/gen.py --kind orders)",
    )
    p.add_argument(
        "--dynamodb-rss-rows",
        default="100000,1000000",
        help="DynamoDB: comma-separated row counts whose peak RSS is measured (empty: none)",
    )
    p.add_argument(
        "--resume-rows",
        type=int,
        default=RESUME_ROWS,
        help="rows of the resume bench (bench/resume.py; 0: skip it)",
    )
    p.add_argument(
        "--resume-budget",
        type=float,
        default=20.0,
        help="resume bench: seconds of work per handler invocation",
    )
    p.add_argument(
        "--shards-rows",
        type=int,
        default=int(os.environ.get("BENCH_SHARDS_ROWS") or SHARDS_ROWS),
        help="rows of the shards bench (bench/shards.py; 0: skip it); "
        "default BENCH_SHARDS_ROWS or %(default)s",
    )
    p.add_argument(
        "--modes-rows",
        type=int,
        default=1_000_000,
        help="rows of day one in the write-modes bench (bench/modes.py; 0: skip it)",
    )
    args = p.parse_args(argv)
    if shutil.which("sqlite3") is None and not args.dynamodb:
        p.error("the sqlite3 command-line shell is needed for the load floor (apt install sqlite3)")
    if not args.dynamodb:
        sqlite_bench(
            args.rows, args.big, args.repeat, args.keep, not args.no_hostile, not args.no_typed
        )
    if not args.sqlite:
        print(flush=True)
        ddb = [
            sys.executable,
            str(HERE / "dynamodb.py"),
            "--rows",
            str(args.dynamodb_rows),
            "--put-rows",
            str(args.put_rows),
            "--rss-rows",
            args.dynamodb_rss_rows,
        ] + (["--table-load"] if args.table_load else [])
        subprocess.run(ddb, check=False)
        print(flush=True)
        client = [
            sys.executable,
            str(HERE / "dynamodb_client.py"),
            "--rows",
            "500000",
            "--rss-rows",
            "100000,1000000,5000000",
        ]
        subprocess.run(client, check=False)
        if args.resume_rows:
            print(flush=True)
            resume = [
                sys.executable,
                str(HERE / "resume.py"),
                "--rows",
                str(args.resume_rows),
                "--budget",
                f"{args.resume_budget:g}",
            ]
            subprocess.run(resume, check=False)
        if args.shards_rows:
            print(flush=True)
            shards = [sys.executable, str(HERE / "shards.py"), "--rows", str(args.shards_rows)]
            subprocess.run(shards, check=False)
        if args.modes_rows:
            print(flush=True)
            modes = [sys.executable, str(HERE / "modes.py"), "--rows", str(args.modes_rows)]
            subprocess.run(modes, check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
