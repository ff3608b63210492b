"""What each column of a sample holds: its type (and a date format), its missing-value markers,
and the shape of its values.

Each column keeps the candidate types that every value met so far, and tests only the values it
has not seen before against them, so a column of a few distinct values costs one set operation
per chunk. A candidate is first screened by a regular expression, then confirmed by the engine's
own converter for that type and format: inference cannot accept a value that a load would refuse.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .config import SchemaField, TableSchema
from .schema import INT_RE, ISO_DATE_RE, ISO_DATETIME_RE, NUM_RE, RowConverter

#: words that stand for "no value" in files written by people, spreadsheets, R, SQL and pandas
MARKERS = frozenset(
    {"NA", "N/A", "n/a", "na", "N.A.", "n.a.", "NULL", "null", "Null", "None", "none", "NONE"}
    | {"NaN", "nan", "-", "--", "#N/A", "#NA", "."}
)
MAX_INT_DIGITS = 18  # longer runs of digits are identifiers (and overflow SQLite's INTEGER)
TESTED_CAP = 100_000  # distinct values remembered per column; past it, values are re-tested
SHAPES_CAP = 5_000  # distinct values remembered (and their shapes counted) in a text column
DATA_LIKE_SHARE = 0.2  # a marker shaped like this share of a column's values is a value there
TRUE_FALSE = frozenset({"true", "True", "TRUE", "false", "False", "FALSE"})
SHAPE = str.maketrans(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
    "A" * 26 + "a" * 26 + "9" * 10,
)


SWAP_DAY_MONTH = str.maketrans("dm", "md")


def shape(value: str) -> str:
    """``NZ`` → ``AA``, ``N14228`` → ``A99999``: what kind of text a value is, not which."""
    return value.translate(SHAPE)


@dataclass(frozen=True)
class Kind:
    """A candidate type: a schema type with its format, a screen, and the order of day and
    month (``dm``/``md``) when a date could be read either way."""

    type: str
    format: str = "default"
    screen: Callable[[str], Any] = field(default=lambda v: True, compare=False)
    order: str | None = None
    example: str = ""

    @property
    def twin(self) -> str | None:
        """The same format with day and month swapped."""
        if self.order is None:
            return None
        return self.format.translate(SWAP_DAY_MONTH)


def _date_kinds() -> list[Kind]:
    d1, d2, y4, y2 = r"[0-9]{1,2}", r"[0-9]{1,2}", r"[0-9]{4}", r"[0-9]{2}"
    mon, month = r"[A-Za-z]{3}", r"[A-Za-z]{3,9}"
    dates: list[tuple[str, str, str | None, str]] = [
        ("%Y/%m/%d", rf"{y4}/{d1}/{d2}", None, "2024/01/31"),
        ("%m/%d/%Y", rf"{d1}/{d2}/{y4}", "md", "01/31/2024"),
        ("%d/%m/%Y", rf"{d1}/{d2}/{y4}", "dm", "31/01/2024"),
        ("%d.%m.%Y", rf"{d1}\.{d2}\.{y4}", "dm", "31.01.2024"),
        ("%d-%m-%Y", rf"{d1}-{d2}-{y4}", "dm", "31-01-2024"),
        ("%m-%d-%Y", rf"{d1}-{d2}-{y4}", "md", "01-31-2024"),
        ("%m/%d/%y", rf"{d1}/{d2}/{y2}", "md", "01/31/24"),
        ("%d/%m/%y", rf"{d1}/{d2}/{y2}", "dm", "31/01/24"),
        ("%d.%m.%y", rf"{d1}\.{d2}\.{y2}", "dm", "31.01.24"),
        ("%b %d %Y", rf"{mon} {d1} {y4}", None, "Jan 31 2024"),
        ("%b %d, %Y", rf"{mon} {d1}, {y4}", None, "Jan 31, 2024"),
        ("%d %b %Y", rf"{d1} {mon} {y4}", None, "31 Jan 2024"),
        ("%d-%b-%Y", rf"{d1}-{mon}-{y4}", None, "31-Jan-2024"),
        ("%d-%b-%y", rf"{d1}-{mon}-{y2}", None, "31-Jan-24"),
        ("%B %d, %Y", rf"{month} {d1}, {y4}", None, "January 31, 2024"),
        ("%B %d %Y", rf"{month} {d1} {y4}", None, "January 31 2024"),
        ("%d %B %Y", rf"{d1} {month} {y4}", None, "31 January 2024"),
    ]
    times = [
        (" %H:%M", r" [0-9]{1,2}:[0-9]{2}", " 08:30"),
        (" %H:%M:%S", r" [0-9]{1,2}:[0-9]{2}:[0-9]{2}", " 08:30:00"),
        (" %H:%M:%S.%f", r" [0-9]{1,2}:[0-9]{2}:[0-9]{2}\.[0-9]{1,6}", " 08:30:00.250"),
        (" %I:%M %p", r" [0-9]{1,2}:[0-9]{2} [AaPp][Mm]", " 8:30 AM"),
        (" %I:%M:%S %p", r" [0-9]{1,2}:[0-9]{2}:[0-9]{2} [AaPp][Mm]", " 8:30:00 AM"),
    ]
    kinds = [
        Kind("date", "default", ISO_DATE_RE.fullmatch, None, "2024-01-31"),
        Kind("datetime", "default", ISO_DATETIME_RE.fullmatch, None, "2024-01-31T08:30:00Z"),
    ]
    kinds += [Kind("date", f, re.compile(r).fullmatch, o, e) for f, r, o, e in dates]
    for f, r, o, e in dates:
        for tf, tr, te in times:
            kinds.append(Kind("datetime", f + tf, re.compile(r + tr).fullmatch, o, e + te))
    return kinds


def _is_int(v: str) -> bool:
    if not INT_RE.fullmatch(v):
        return False
    digits = v.lstrip("+-")
    return len(digits) <= MAX_INT_DIGITS and not (len(digits) > 1 and digits[0] == "0")


def _is_number(v: str) -> bool:
    if not NUM_RE.fullmatch(v):
        return False
    digits = v.lstrip("+-")
    # 007 is a code, not seven; a run of digits past 18 an identifier
    whole = digits.split(".")[0].split("e")[0].split("E")[0]
    return not (len(whole) > 1 and whole[0] == "0") and len(digits) <= 40


KINDS: list[Kind] = [
    Kind("integer", screen=_is_int),
    Kind("number", screen=_is_number),
    Kind("boolean", screen=TRUE_FALSE.__contains__),
    *_date_kinds(),
]
FORMATS = frozenset(k.format for k in KINDS)


class _Converters:
    """The engine's converter for each kind, built once and only when a value needs it."""

    def __init__(self) -> None:
        self._made: dict[Kind, Callable[[list[str]], Any]] = {}

    def accepts(self, kind: Kind, value: str) -> bool:
        conv = self._made.get(kind)
        if conv is None:
            spec = SchemaField(name="value", type=kind.type, format=kind.format)  # type: ignore[arg-type]
            schema = TableSchema(fields=[spec], missing_values=[])
            conv = self._made[kind] = RowConverter(schema, [0], ()).convert
        return conv([value]) is not None

    def parse(self, kind: Kind, value: str) -> Any:
        self.accepts(kind, value)
        out = self._made[kind]([value])
        return None if out is None else out[0]


CONVERTERS = _Converters()


class ColumnProfile:
    """What one column held over the sample."""

    def __init__(self, name: str, position: int):
        self.name = name
        self.position = position
        self.alive: list[Kind] = list(KINDS)  # candidates every value so far fits
        self.tested: set[str] = set()  # distinct values seen (up to a cap)
        self.markers: Counter[str] = Counter()  # marker (and "") → rows
        self.shapes: Counter[str] = Counter()  # shape → distinct values of ``tested``
        self.values = 0  # rows with a value that is not a marker
        self.max_len = 0
        self.example: str | None = None

    def add(self, column: Sequence[str]) -> None:
        distinct = set(column)
        found = distinct & MARKERS
        if "" in distinct:
            found.add("")
        in_markers = 0
        for m in found:
            n = column.count(m)
            self.markers[m] += n
            in_markers += n
        self.values += len(column) - in_markers
        present = distinct - found
        if not present:
            return
        if self.example is None:
            self.example = next(v for v in column if v in present)
        self.max_len = max(self.max_len, max(map(len, present)))
        new = present - self.tested if self.tested else present
        for v in new if self.alive else ():
            self._test(v)
            if not self.alive:
                break
        # a typed column remembers more (its values are small and the tests cost), text less
        if len(self.tested) < (TESTED_CAP if self.alive else SHAPES_CAP):
            self.shapes.update(map(shape, new))
            self.tested |= new

    def _test(self, v: str) -> None:
        self.alive = [k for k in self.alive if k.screen(v) and CONVERTERS.accepts(k, v)]

    def best(self) -> Kind | None:
        """The first candidate left (None: text). A column of markers alone is text."""
        return self.alive[0] if self.alive and self.values else None

    def data_like(self, marker: str) -> bool:
        """Is ``marker`` a value here, as ``NA`` is among two-letter country codes?"""
        total = sum(self.shapes.values())
        return bool(total) and self.shapes[shape(marker)] / total >= DATA_LIKE_SHARE


@dataclass
class Typing:
    """The settled types: per column its kind (None: string), the missing values, and what a
    person should check."""

    kinds: list[Kind | None]
    missing: list[str]
    notes: list[str]
    ambiguous: list[str]  # columns whose day/month order is a guess


def settle(profiles: list[ColumnProfile]) -> Typing:
    notes: list[str] = []
    kinds = [p.best() for p in profiles]
    # a marker stands for "no value" where a typed column holds it, unless some text column
    # holds it as a value of the same shape as the rest (NA for Namibia among country codes)
    evidence: dict[str, list[str]] = {}
    for p, k in zip(profiles, kinds, strict=True):
        if k is not None:
            for m in p.markers:
                if m:
                    evidence.setdefault(m, []).append(p.name)
    missing = [""]
    for m in sorted(evidence):
        as_value = [
            p.name for p, k in zip(profiles, kinds, strict=True) if k is None and m in p.markers
        ]
        as_value = [n for n in as_value if _profile(profiles, n).data_like(m)]
        if as_value:
            notes.append(
                f"{m!r} is a value in {_names(as_value)} and a missing value in "
                f"{_names(evidence[m])}; one missingValues list serves every column, so "
                f"{_names(evidence[m])} are read as text"
            )
        else:
            missing.append(m)
    for i, p in enumerate(profiles):
        if kinds[i] is not None and any(m not in missing for m in p.markers):
            kinds[i] = None
    ambiguous = _settle_day_month(profiles, kinds, notes)
    return Typing(kinds, missing, notes, ambiguous)


def _settle_day_month(
    profiles: list[ColumnProfile], kinds: list[Kind | None], notes: list[str]
) -> list[str]:
    """A date such as 03/04/2024 reads both ways; the columns of one file are written the
    same way, so a column whose values settle the order (a 31/01) settles it for all."""
    settled: set[str] = set()
    open_columns: list[int] = []
    for i, (p, k) in enumerate(zip(profiles, kinds, strict=True)):
        if k is None or k.order is None:
            continue
        if any(a.format == k.twin for a in p.alive):
            open_columns.append(i)
        elif k.twin in FORMATS:
            settled.add(k.order)
    order = settled.pop() if len(settled) == 1 else None
    ambiguous = []
    for i in open_columns:
        p, k = profiles[i], kinds[i]
        assert k is not None
        if order is not None and k.order != order:
            kinds[i] = next(a for a in p.alive if a.format == k.twin)
        elif order is None:
            ambiguous.append(p.name)
    if ambiguous:
        first = kinds[open_columns[0]]
        assert first is not None
        way = "month/day" if first.order == "md" else "day/month"
        notes.append(
            f"no date in {_names(ambiguous)} has a day over 12, so the order is a guess: "
            f"read as {way} ({first.format}); swap %d and %m in its format if that is wrong"
        )
    return ambiguous


def _profile(profiles: list[ColumnProfile], name: str) -> ColumnProfile:
    return next(p for p in profiles if p.name == name)


def _names(names: list[str]) -> str:
    shown = ", ".join(repr(n) for n in names[:4])
    return shown + (f" and {len(names) - 4} more" if len(names) > 4 else "")
