"""The work of one shard in one phase of a sharded run, and the reductions between phases.

A shard is a byte range of the file between two row boundaries (shards.py plans them). Each
phase reads one shard with the engine's own ``Pass`` (scan.py) and saves what it found as a
delta in the state location (checkpoint.py's format): the check phase its key hashes, invalid
lines and rejected-rows report; the settle and write phases the rows whose key hash repeats
somewhere in the file, which no shard can settle alone. The reductions read the shards' deltas
in file order, so what they produce — counts, the report, which row of a repeated key wins —
is what one pass over the whole file would have produced.
"""

from __future__ import annotations

import csv
import heapq
import io
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import groupby
from typing import TYPE_CHECKING, Any, BinaryIO

from .checkpoint import Delta, Position
from .errors import DataError, RowError
from .report import MAX_ERRORS_IN_RECEIPT, Receipt, RejectedRowsReport
from .scan import BadCut, Pass, Scan, key_text
from .spill import HashSet, HeldRows, LineRuns

if TYPE_CHECKING:
    from .config import Config
    from .ports import Load


class _Hashes:
    """A pass's duplicate finder for one shard: the hashes go into the shard's delta (the
    pass journals them) and are counted only when every shard's are together."""

    repeats = 0

    def add_many(self, hashes: Iterable[int]) -> None:
        pass

    def close(self) -> None:
        pass


class _Collected(HeldRows):
    """The held rows of one shard: journaled for the reduction, never settled here."""

    def __init__(self) -> None:
        super().__init__(last_wins=True)

    def offer(self, key: Any, line: int, row: tuple[Any, ...]) -> int | None:
        return None


class Slice(io.RawIOBase):
    """The first ``length`` bytes of ``stream`` (None: all of it)."""

    def __init__(self, stream: BinaryIO, length: int | None):
        self.stream, self.left = stream, length

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        view = memoryview(buf)
        if self.left is not None:
            view = view[: self.left]
        if not len(view):
            return 0
        n = self.stream.readinto(view)  # type: ignore[attr-defined]
        if self.left is not None:
            self.left -= n or 0
        return n or 0

    def close(self) -> None:
        self.stream.close()
        super().close()


@dataclass
class Shard:
    """One shard to read: its range, and how the pass goes."""

    index: int
    start: Position
    end: int | None  # byte offset where the next shard starts; None for the last
    header: list[str]
    key_hash: Any


def read_shard(
    config: Config,
    name: str,
    size: int,
    shard: Shard,
    stream: BinaryIO,
    stage: str,
    *,
    load: Load | None = None,
    row_check: Any = None,
    skip: tuple[LineRuns, HashSet] | None = None,
    deadline: Any = None,
) -> Delta:
    """One phase's pass over one shard (``stream`` opened at its start): what it found."""
    receipt = Receipt(file=name, source="", version="", size=size)
    report = RejectedRowsReport(name)
    p = Pass(
        config,
        name,
        receipt,
        report,
        load=load,
        finder=_Hashes() if stage == "check" else None,  # type: ignore[arg-type]
        row_check=row_check,
        skip=skip,
        deadline=deadline,
        size=size,
    )
    p.journal, p.key_hash, p.held = True, shard.key_hash, _Collected()
    p.cut_end = shard.end is not None  # a shard that ends inside quotes was cut wrong
    p._columns(shard.header)
    results: dict[str, Any] = {}
    end = Position(shard.end or 0, 0)
    try:
        length = None if shard.end is None else shard.end - shard.start.offset
        p.segment(Slice(stream, length), shard.start)  # type: ignore[arg-type]
        p.settle_segment()
    except BadCut as bad:
        results["bad_cut"] = int(bad.args[0])
    except DataError as e:
        results["fatal"] = [e.reason, e.line]
    finally:
        p.abandon()
        report_bytes = report.tail()
        report.discard()
    units = getattr(load, "write_units", None)
    if units is not None:  # the write units its requests consumed, for the conclusion to sum
        results["write_units"] = units
    delta = p.delta(stage, shard.index, shard.start, end)
    delta.report, delta.final, delta.results = report_bytes, True, results
    return delta


# --- reductions ---------------------------------------------------------------------------


@dataclass
class Merged:
    """The whole file's findings so far, from every shard's deltas of a phase."""

    scan: Scan
    errors: list[dict[str, Any]]
    report: RejectedRowsReport
    omitted: int = 0  # rejected rows the shards' own reports left out

    def receipt_into(self, receipt: Receipt) -> None:
        receipt.errors = list(self.errors)
        self.report.omitted += self.omitted
        self.omitted = 0
        receipt.report_rows_omitted = self.report.omitted


def report_rows(data: bytes) -> Iterator[tuple[int, list[RowError]]]:
    """A rejected-rows CSV's rows (a row per line of the file, with all its errors)."""
    rows = csv.reader(io.StringIO(data.decode("utf-8"), newline=""))
    lines = ((int(r[1]), RowError(int(r[1]), r[2], r[3], r[4])) for r in rows if r[1] != "line")
    for line, group in groupby(lines, key=lambda item: item[0]):
        yield line, [err for _, err in group]


def merge_reports(
    config: Config, name: str, *parts: Iterable[tuple[int, list[RowError]]]
) -> RejectedRowsReport:
    """One report, in line order, of the rejected rows of several ``parts`` (each in line
    order: see ``report_rows`` and ``grouped``), within its room."""
    report = RejectedRowsReport(name, config.limits.max_report_rows)
    for _, errs in heapq.merge(*parts, key=lambda item: item[0]):
        report.add(*errs)
    return report


def in_order(tails: Iterable[bytes]) -> Iterator[tuple[int, list[RowError]]]:
    """The rows of reports that follow one another in the file (the shards')."""
    for tail in tails:
        yield from report_rows(tail)


def grouped(errors: Iterable[RowError]) -> Iterator[tuple[int, list[RowError]]]:
    """Rejected rows of one error each, in line order, as ``merge_reports`` takes them."""
    return ((e.line, [e]) for e in errors)


def first_errors(*lists: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The receipt's first errors, from the first errors of each part of the file (a row's
    errors stay together: the sort is stable)."""
    every = [e for errors in lists for e in errors]
    every.sort(key=lambda e: e["line"])
    return every[:MAX_ERRORS_IN_RECEIPT]


def merge_check(config: Config, name: str, deltas: Iterable[Delta], finder: Any) -> Merged:
    """The check phase of every shard, as one pass over the file: counts, the report, and
    every key hash given to ``finder``."""
    scan = Scan()
    tails: list[bytes] = []
    errors: list[dict[str, Any]] = []
    omitted = 0
    for d in deltas:
        snap = d.snapshot
        scan.read += snap["read"]
        scan.invalid += snap["invalid"]
        if scan.stopped_at is None and snap["stopped_at"] is not None:
            scan.stopped_at = snap["stopped_at"]
        omitted += snap["report"]["omitted"]
        tails.append(d.report)
        errors = first_errors(errors, snap["errors"])
        finder.add_many(d.hashes)
    return Merged(scan, errors, merge_reports(config, name, in_order(tails)), omitted)


def settle_held(
    config: Config, held_rows: Iterable[list[tuple[int, tuple[Any, ...]]]], keyof: Any
) -> tuple[HeldRows, int, list[RowError]]:
    """The rows whose key hash repeats, from every shard in file order, settled by their real
    keys as one pass would: the winners, the rows the policy left out, and (``duplicates:
    reject``) the rows rejected for repeating an earlier row's key."""
    reject = config.duplicates == "reject"
    held = HeldRows(config.duplicates == "last_wins")
    names = "+".join(config.key)
    duplicates, rejected = 0, []
    try:
        for rows in held_rows:
            for line, row in rows:
                key = keyof(row)
                before = held.offer(key, line, row)
                if before is None:
                    continue
                if reject:
                    why = f"duplicate key: line {before} has the same key"
                    rejected.append(RowError(line, names, key_text(key), why))
                else:
                    duplicates += 1
    except BaseException:
        held.close()
        raise
    return held, duplicates, rejected


def bad_lines(d: Delta) -> LineRuns:
    """A shard's invalid lines, from its check delta, for the passes after it to skip."""
    runs = LineRuns()
    before = -2
    for line in d.bad:
        if line != before + 1:
            runs.kept()
        runs.add(line)
        before = line
    runs.kept()
    return runs


def hash_set(values: array[int]) -> HashSet:
    found = HashSet()
    found.add_many(values)
    return found


def report_of(config: Config, name: str, data: bytes, saved: dict[str, Any]) -> RejectedRowsReport:
    """A report saved whole in a reduction's delta, to go on with."""
    report = RejectedRowsReport(name, config.limits.max_report_rows)
    if data:
        report.extend(data)
    report.load(saved)
    return report
