"""One streaming pass over a file: rows read, checked, converted and handed on in batches.

Rows are taken from the CSV reader a chunk at a time and, when a chunk is ordinary (every row
the right width, every value valid, each row one line), it goes through in C: ``map`` converts
it, ``map`` hashes its keys, ``list.extend`` batches it. Only a chunk holding something to report
is walked row by row in Python, to say exactly which line and column is wrong.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import islice
from operator import itemgetter
from typing import IO, Any, BinaryIO

from .config import Config
from .dedup import DuplicateFinder
from .errors import DataError, RowError, TransientError
from .ports import Load
from .reader import (
    SURROGATE,
    CsvSource,
    DecodeErrors,
    csv_error_reason,
    header_positions,
    line_breaks,
    open_text,
)
from .report import Receipt, RejectedRowsReport
from .schema import RowConverter

CHUNK = 2048
DEADLINE_MARGIN_S = 20.0
Deadline = Callable[[], float]  # seconds left to work
Progress = Callable[[int], None]  # told how many bytes of the file have been read
Rows = list[tuple[Any, ...]]


@dataclass
class Scan:
    """What one pass over a file found."""

    read: int = 0
    invalid: int = 0
    bad_lines: set[int] = field(default_factory=set)
    written: int = 0
    repeated: list[tuple[int, Any]] = field(default_factory=list)  # (line, key) seen before
    repeated_hashes: dict[int, int] = field(default_factory=dict)  # key hash → times seen


class Pass:
    """Reads one file once. With ``load``, valid rows are written; with ``finder``, key hashes
    are recorded to find repeats; ``skip`` (lines to leave out, key hashes whose rows are held
    back and settled by their real keys at the end) is for a second pass."""

    def __init__(
        self,
        config: Config,
        name: str,
        receipt: Receipt,
        report: RejectedRowsReport,
        *,
        load: Load | None = None,
        finder: DuplicateFinder | None = None,
        row_check: Callable[[tuple[Any, ...]], tuple[str, str] | None] | None = None,
        skip: tuple[set[int], set[int]] | None = None,
        deadline: Deadline | None = None,
        progress: Progress | None = None,
    ):
        self.config, self.name, self.receipt, self.report = config, name, receipt, report
        self.load, self.finder, self.row_check = load, finder, row_check
        self.skip_lines, self.hold = skip if skip else (set(), set())
        self.deadline, self.progress = deadline, progress
        self.scan = Scan()
        self.writing = load is not None
        self.reject_file = config.on_error == "reject_file"
        self.batch: Rows = []
        self.lines: list[int] = []
        self.held: list[tuple[int, tuple[Any, ...]]] = []
        self.key_names = "+".join(config.key)

    # --- the pass -------------------------------------------------------------------------

    def run(self, stream: BinaryIO) -> Scan:
        self.decode_errors = DecodeErrors.count  # undecodable bytes other reads found before
        text, position = open_text(stream, self.config, self.name)
        with text:
            self._read(text, position)
        if self.held:
            self._write_held()
        if self.load is not None:
            self.scan.repeated += self.load.finish()
        if self.finder is not None:
            self.scan.repeated_hashes = self.finder.repeated()
        return self.scan

    def _read(self, text: IO[str], position: Callable[[], int]) -> None:
        config, scan = self.config, self.scan
        src = CsvSource(text, config, self.name, self.decode_errors)
        self.header = src.header
        positions = header_positions(src.header, config, self.name)
        self.conv = RowConverter(config.schema_, positions, config.key)
        self.keyof = itemgetter(*(self.conv.names.index(k) for k in config.key))
        rows = src.rows
        done = rows.line_num  # physical lines read so far
        while True:
            chunk: list[list[str]] = []
            error: csv.Error | None = None
            try:
                chunk.extend(islice(rows, CHUNK))
            except csv.Error as e:
                error = e  # the rows before it are in ``chunk``
            except (OSError, EOFError, UnicodeError) as e:
                scan.read += len(chunk)
                self.receipt.rows_read = scan.read
                raise DataError(
                    f"the file cannot be read: {e}", file=self.name, line=done + 1
                ) from None
            now = rows.line_num
            if not chunk and error is None:
                break
            if error is None and now - done == len(chunk):  # one line per row
                self._take(chunk, range(done + 1, done + 1 + len(chunk)))
            else:
                lines, line = [], done + 1
                for row in chunk:
                    lines.append(line)
                    line += 1 + line_breaks(row)
                self._take(chunk, lines)
                if error is not None:
                    scan.read += 1
                    if line not in self.skip_lines:
                        self._reject(RowError(line, "", "", csv_error_reason(error, config)))
            done = now
            if self.progress is not None:
                self.progress(position())
        self._flush()

    def _take(self, chunk: list[list[str]], lines: Sequence[int]) -> None:
        ncols = len(self.header)
        if (
            not self.skip_lines
            and not self.hold
            and self.row_check is None
            and DecodeErrors.count == self.decode_errors
            and set(map(len, chunk)) == {ncols}
        ):
            outs = list(map(self.conv.convert, chunk))
            if None not in outs:  # the ordinary case: no Python loop over the rows
                self.scan.read += len(outs)
                self._accept(outs, lines)  # type: ignore[arg-type]  # no None in it
                return
        self._take_slowly(chunk, lines)

    def _take_slowly(self, chunk: list[list[str]], lines: Sequence[int]) -> None:
        """Row by row: every problem reported with its line and column."""
        scan, ncols, convert = self.scan, len(self.header), self.conv.convert
        skip, hold, keyof = self.skip_lines, self.hold, self.keyof
        outs: Rows = []
        kept: list[int] = []
        for row, line in zip(chunk, lines, strict=True):
            if not row:
                continue  # a blank line is not a row
            scan.read += 1
            if line in skip:
                continue
            if len(row) != ncols:
                self._reject(
                    RowError(
                        line,
                        "",
                        self.config.csv.delimiter.join(row)[:200],
                        f"expected {ncols} fields, found {len(row)}",
                    )
                )
                continue
            if DecodeErrors.count != self.decode_errors:
                bad = [c for c in row if SURROGATE.search(c)]
                if bad:
                    self.decode_errors += sum(len(SURROGATE.findall(c)) for c in bad)
                    value = bad[0].encode("utf-8", "surrogateescape")
                    self._reject(
                        RowError(
                            line,
                            self.header[row.index(bad[0])],
                            repr(value)[2:-1],
                            "bytes that are not valid UTF-8",
                        )
                    )
                    continue
            out = convert(row)
            if out is None:
                self._reject(
                    *(
                        RowError(line, col, value, reason)
                        for col, value, reason in self.conv.explain(row)
                    )
                )
                continue
            if self.row_check is not None:
                problem = self.row_check(out)
                if problem is not None:
                    self._reject(RowError(line, problem[0], key_text(self.keyof(out)), problem[1]))
                    continue
            if hold and hash(keyof(out)) in hold:
                self.held.append((line, out))
                continue
            outs.append(out)
            kept.append(line)
        self._accept(outs, kept)

    def _accept(self, outs: Rows, lines: Sequence[int]) -> None:
        if self.finder is not None:
            self.finder.add_many(map(hash, map(self.keyof, outs)))
        if self.writing:
            self.batch.extend(outs)
            self.lines.extend(lines)
            if len(self.batch) >= self.config.batch_size:
                self._flush()

    def _reject(self, *errs: RowError) -> None:
        self.scan.invalid += 1
        self.scan.bad_lines.add(errs[0].line)
        for err in errs:
            self.receipt.add_error(err)
            self.report.add(err)
        if self.reject_file:
            self.writing = False  # the file is rejected: write no more (the table rolls back)

    def _flush(self) -> None:
        batch, lines = self.batch, self.lines
        if self.writing and batch:
            size = self.config.batch_size
            for i in range(0, len(batch), size):
                part, part_lines = batch[i : i + size], lines[i : i + size]
                if self.deadline is not None and self.deadline() < DEADLINE_MARGIN_S:
                    raise TransientError(
                        f"{self.name}: stopped at line {part_lines[0]} with too "
                        "little time left; a retry starts it again"
                    )
                self.scan.repeated += self.load.write(part, part_lines)  # type: ignore[union-attr]
                self.scan.written += len(part)
        self.batch, self.lines = [], []

    def _write_held(self) -> None:
        """Rows whose keys may repeat, grouped by their real key, the policy applied."""
        by_key: dict[Any, list[tuple[int, tuple[Any, ...]]]] = {}
        for line, out in self.held:
            by_key.setdefault(self.keyof(out), []).append((line, out))
        policy = self.config.duplicates
        keep: list[tuple[int, tuple[Any, ...]]] = []
        for key, group in by_key.items():
            winner = group[-1] if policy == "last_wins" else group[0]
            keep.append(winner)
            for line, _ in group:
                if line == winner[0]:
                    continue
                if policy == "reject":
                    self._reject(
                        RowError(
                            line,
                            self.key_names,
                            key_text(key),
                            f"duplicate key: line {winner[0]} has the same key",
                        )
                    )
                else:
                    self.scan.repeated.append((line, key))
        keep.sort()
        self.batch = [out for _, out in keep]
        self.lines = [line for line, _ in keep]
        self._flush()


def key_text(key: Any) -> str:
    return " / ".join(map(str, key)) if isinstance(key, tuple) else str(key)
