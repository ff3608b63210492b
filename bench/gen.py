"""Generate a students CSV for the benchmarks: ``python bench/gen.py ROWS OUT.csv [--seed N]
[--kind students|one-key|invalid|wide|orders] [--sorted]``.

Header ``student_id,fname,lname,course``; the key is student_id + course. Every student takes
several distinct courses, so no key repeats; courses are always quoted and some contain commas.
Students come in random order (each student's id is a fixed permutation of its number), so keys
are neither sorted nor clustered. ``--sorted`` writes the same shape of file in key order
instead (ids in order, each student's courses in order), the order a table's key is kept in.
The same seed and row count always give the same bytes. Rows are written as they are made, so
memory stays flat whatever ``ROWS`` is.

Three hostile shapes of the same file: ``one-key`` (every row has the same key, as a file of
millions of repeats), ``invalid`` (no row has its required student id) and ``wide`` (every
first name is WIDE characters long: a file of 100 kB rows).

``orders`` is a typed file, as a partner's export is: ``order_id,line,sku,quantity,unit_price,
discount,ordered_on,shipped_at,paid``, keyed by order_id + line (an integer), with integers,
decimal numbers, dates, ISO timestamps and booleans, some of them empty (missing). Orders come
in random order too, each order's lines together.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Iterator
from pathlib import Path

HEADER = "student_id,fname,lname,course\n"

FIRST_NAMES = [
    "Sherlock",
    "John",
    "Mary",
    "Irene",
    "Mycroft",
    "Martha",
    "Greg",
    "Molly",
    "James",
    "Sarah",
    "Ada",
    "Alan",
    "Grace",
    "Edsger",
    "Barbara",
    "Donald",
    "Frances",
    "Ken",
    "Margaret",
    "Dennis",
    "Zoë",
    "José",
    "Björn",
    "Chloé",
    "Łukasz",
    "Anaïs",
    "Søren",
    "Renée",
    "Noël",
    "Ingrid",
    "Wei",
    "Priya",
    "Amara",
    "Kofi",
    "Yuki",
    "Omar",
    "Leila",
    "Mateo",
    "Aroha",
    "Nikolai",
]
LAST_NAMES = [
    "Holmes",
    "Watson",
    "Morstan",
    "Adler",
    "Hudson",
    "Lestrade",
    "Hooper",
    "Moriarty",
    "Lovelace",
    "Turing",
    "Hopper",
    "Dijkstra",
    "Liskov",
    "Knuth",
    "Allen",
    "Thompson",
    "Hamilton",
    "Ritchie",
    "O'Brien",
    "García",
    "Müller",
    "Nguyen",
    "Okafor",
    "Tanaka",
    "Haddad",
    "Rossi",
    "Kowalski",
    "Andersen",
    "Dubois",
    "Silva",
    "Ivanova",
    "Chen",
    "Patel",
    "Mensah",
    "Ngata",
    "Larsen",
]
COURSES = [
    "Science Of Deduction",
    "Modern Forensics",
    "Chemistry",
    "Violin Performance",
    "Criminal Law",
    "Beekeeping",
    "Anatomy",
    "Toxicology",
    "Cryptography",
    "Logic",
    "Law, Ethics and Society",
    "Reading, Writing and Rhetoric",
    "Statistics",
    "Algorithms",
    "Data, Models and Decisions",
    "Victorian Literature",
    "Boxing",
    "Fencing",
    "Maps, Charts and Navigation",
    "Philosophy of Mind",
    "Economics",
    "Organic Chemistry",
    "Rail Timetables, Routes and Logistics",
    "French",
    "German",
    "Latin",
    "Astronomy",
    "Botany",
    "Geology",
    "Music Theory",
    "Drawing, Painting and Printmaking",
    "Accounting",
]
MIN_COURSES, MAX_COURSES = 2, 8
KINDS = ("students", "one-key", "invalid", "wide", "orders")
WIDE = 100_000  # characters of each first name in a ``wide`` file
ORDERS_HEADER = "order_id,line,sku,quantity,unit_price,discount,ordered_on,shipped_at,paid\n"
#: ids are a permutation of student numbers, a keyed Feistel network over 2^bits values walked
#: back into 0..10^width-1 (a bijection): consecutive students get ids scattered over the whole
#: range, with no ascending runs a B-tree could append to (a multiplicative map n·a mod 10^w
#: would interleave a few ascending streams, which flatters an insert into a keyed table)
FEISTEL_KEYS = (0x9E3779B1, 0x85EBCA77, 0xC2B2AE3D, 0x27D4EB2F)


def _feistel(x: int, half: int) -> int:
    mask = (1 << half) - 1
    left, right = x >> half, x & mask
    for key in FEISTEL_KEYS:
        left, right = right, left ^ (((right * key) >> 7 ^ right * 0x2545F491) & mask)
    return (left << half) | right


def scramble(n: int, width: int = 7) -> int:
    """A fixed permutation of 0..10^width-1 (cycle walking keeps it inside the range)."""
    top = 10**width
    half = (top.bit_length() + 1) // 2
    x = _feistel(n % top, half)
    while x >= top:
        x = _feistel(x, half)
    return x


def student_id(n: int, width: int = 7) -> str:
    return f"A{scramble(n, width):0{width}d}"


def lines(
    rows: int, seed: int = 20261127, kind: str = "students", in_order: bool = False
) -> Iterator[str]:
    """The data lines (no header) of a file of ``rows`` rows (``in_order``: in key order)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}")
    if kind == "orders":
        yield from order_lines(rows, seed, in_order)
        return
    rng = random.Random(seed)
    width = 7 if rows < 2 * 10**7 else 10  # every student takes 2+ courses: ids never wrap
    written, student = 0, 0
    while written < rows:
        student += 1
        sid = {"invalid": "", "one-key": "A0000001"}.get(kind)
        if sid is None:
            sid = student_id(student, width)
        if in_order and kind == "students":
            sid = f"A{student:0{width}d}"
        first = rng.choice(FIRST_NAMES)
        if kind == "wide":
            first = (first * (WIDE // len(first) + 1))[:WIDE]
        who = f"{sid},{first},{rng.choice(LAST_NAMES)},"
        take = min(rng.randint(MIN_COURSES, MAX_COURSES), rows - written)
        courses = rng.sample(COURSES, take) if kind != "one-key" else ["Chemistry"] * take
        for course in sorted(courses) if in_order else courses:
            yield f'{who}"{course}"\n'
        written += take


def order_lines(rows: int, seed: int = 20261127, in_order: bool = False) -> Iterator[str]:
    """The data lines of an ``orders`` file: 1 to 6 lines per order."""
    rng = random.Random(seed)
    width = 7 if rows < 2 * 10**7 else 10
    written, order = 0, 0
    while written < rows:
        order += 1
        oid = f"O{order:0{width}d}" if in_order else f"O{scramble(order, width):0{width}d}"
        day = rng.randrange(730)
        ordered = f"{2025 + day // 365}-{1 + day % 365 // 31:02d}-{1 + day % 31 % 28:02d}"
        take = min(rng.randint(1, 6), rows - written)
        for line in range(1, take + 1):
            price = f"{rng.randrange(100, 100_000) / 100:.2f}"
            discount = "" if rng.random() < 0.7 else f"0.{rng.randrange(5, 31):02d}"
            shipped = (
                ""
                if rng.random() < 0.2
                else f"{ordered}T{rng.randrange(24):02d}:{rng.randrange(60):02d}:"
                f"{rng.randrange(60):02d}Z"
            )
            paid = "true" if rng.random() < 0.9 else "false"
            sku = f"SKU-{rng.randrange(100_000):05d}"
            qty = rng.randint(1, 50)
            yield f"{oid},{line},{sku},{qty},{price},{discount},{ordered},{shipped},{paid}\n"
        written += take


def write(
    rows: int,
    out: Path,
    seed: int = 20261127,
    chunk: int = 10_000,
    kind: str = "students",
    in_order: bool = False,
) -> None:
    with open(out, "w", encoding="utf-8", newline="") as f:
        f.write(ORDERS_HEADER if kind == "orders" else HEADER)
        buf: list[str] = []
        for line in lines(rows, seed, kind, in_order):
            buf.append(line)
            if len(buf) >= chunk:
                f.write("".join(buf))
                buf.clear()
        f.write("".join(buf))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("rows", type=int, help="number of data rows (the header is not counted)")
    p.add_argument("out", type=Path, help="the CSV file to write")
    p.add_argument("--seed", type=int, default=20261127)
    p.add_argument("--kind", choices=KINDS, default="students")
    p.add_argument("--sorted", action="store_true", help="students (or orders) in key order")
    args = p.parse_args(argv)
    if args.rows < 0:
        p.error("rows must be zero or more")
    write(args.rows, args.out, args.seed, kind=args.kind, in_order=args.sorted)
    return 0


if __name__ == "__main__":
    sys.exit(main())
