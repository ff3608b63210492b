"""One streaming pass over a file: rows read, checked, converted and handed on in batches.

Rows are taken from the CSV reader a chunk at a time and, when a chunk is ordinary (every row
the right width, every value valid, each row one line), it goes through in C: ``map`` converts
it, ``map`` hashes its keys, ``list.extend`` batches it. Only a chunk holding something to report
is walked row by row in Python, to say exactly which line and column is wrong.

Nothing a pass keeps grows with the file in memory: invalid lines, repeated key hashes and held
rows live in bounded structures that spill to disk (spill.py), repeats found by the table are
counted (or rejected) as they come, and the rejected-rows report keeps at most
``limits.max_report_rows`` rows. The limits (bytes, compression ratio, rows) and the deadline
are checked while reading, so a bomb of blank, invalid or repeated rows stops in bounded time.
"""

from __future__ import annotations

import csv
import gc
import io
from array import array
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import islice
from operator import itemgetter
from typing import IO, Any, BinaryIO, NoReturn

from .checkpoint import TOP, Delta, Position
from .columns import ChunkConverter
from .config import Config
from .dedup import DuplicateFinder
from .errors import DataError, RowError, TransientError
from .ports import Load, RowCheck
from .rawkeys import RawKeys
from .reader import (
    OVERLONG,
    SURROGATE,
    UNREADABLE,
    CsvSource,
    DecodeErrors,
    LineGuard,
    csv_error_reason,
    csv_reader,
    header_positions,
    line_breaks,
    open_segment,
    overlong_reason,
    printable,
    undecodable_reason,
)
from .report import MAX_ERRORS_IN_RECEIPT, Receipt, RejectedRowsReport
from .schema import RowConverter
from .spill import HashSet, HeldRows, LineCursor, LineRuns

CHUNK = 2048
#: a chunk holds at most CHUNK rows and about CHUNK_CHARS characters, the rows waiting for the
#: table about BATCH_CHARS (and a write half that): a file of wide rows (100 kB of text each)
#: keeps the memory of a file of narrow ones, whose chunks and batches are counted in rows as
#: before. A chunk is taken a few rows at a time, as many as fit in what is left of
#: CHUNK_CHARS at the width of its rows so far (16 at first, doubling to STEP at most), so
#: rows that widen mid-file are caught within a step.
CHUNK_CHARS = 1 << 20
BATCH_CHARS = 1 << 22
STEP = 128
#: text read for its keys alone is taken this many characters at a time (whole lines); after
#: RAW_MISSES such blocks in a row that the csv reader had to read anyway (a key missing or
#: held back in each), it reads the rest: a file of invalid or repeated keys is not read twice
RAW_CHARS = 1 << 16
RAW_MISSES = 4
DEADLINE_MARGIN_S = 20.0
#: the cyclic garbage collector is paused during a pass (see passes.scan_file), but a table's
#: client may leave cycles behind per request: after a batch, once this many more container
#: objects are alive than at the last collection, the young generations are collected (and
#: every FULL_COLLECT_EVERY times, everything). Rows come and go without raising the count.
GC_GROWTH = 10_000
FULL_COLLECT_EVERY = 16
#: a segment of a pass that keeps a journal ends once it holds this many key hashes or held
#: rows, whatever the checkpoint settings: the journal (8 bytes a row, copied once more when
#: the delta is saved) stays a few MB however fast the table takes the rows
JOURNAL_ROWS = 1 << 17
Deadline = Callable[[], float]  # seconds left to work
Progress = Callable[[int], None]  # told how many bytes of the file have been read
Rows = list[tuple[Any, ...]]
Keys = Iterable[Any]  # the rows' keys, as ``Pass.keyof`` gives them
Skip = tuple[LineRuns, HashSet]  # what pass one found: invalid lines, repeated key hashes


@dataclass
class Scan:
    """What one pass over a file found."""

    read: int = 0
    invalid: int = 0
    written: int = 0
    duplicates: int = 0  # rows left out because an earlier row had their key (not rejected)
    stopped_at: int | None = None  # the line where reading stopped: the file was rejected anyway
    bad_lines: LineRuns = field(default_factory=LineRuns)  # kept by pass one only
    repeated_hashes: HashSet = field(default_factory=HashSet)  # found by pass one only


class _Stop(Exception):
    """Nothing more to learn from the file: it is rejected and its report is full."""


class BadCut(Exception):
    """A segment ended inside a quoted field: a stray quote before it fooled the count of
    quotes that found the row boundary. Its arguments: the line and the byte (from the
    segment's start) where it ended."""


class Pass:
    """Reads one file once. With ``load``, valid rows are written; with ``finder``, key hashes
    are recorded to find repeats and invalid lines are kept; ``skip`` (lines to leave out, key
    hashes whose rows are held back and settled by their real keys at the end) is for a second
    pass."""

    def __init__(
        self,
        config: Config,
        name: str,
        receipt: Receipt,
        report: RejectedRowsReport,
        *,
        load: Load | None = None,
        finder: DuplicateFinder | None = None,
        row_check: RowCheck | Callable[[tuple[Any, ...]], tuple[str, str] | None] | None = None,
        skip: Skip | None = None,
        deadline: Deadline | None = None,
        progress: Progress | None = None,
        size: int = 0,
    ):
        self.config, self.name, self.receipt, self.report = config, name, receipt, report
        self.load, self.finder, self.row_check = load, finder, row_check
        #: the row check's chunk-wide part (see ports.RowCheck); a check without one has every
        #: row walked
        self.first: Callable[[Rows], int | None] | None = getattr(row_check, "first", None)
        self.walk_all = row_check is not None and self.first is None
        #: the rows are read for their keys alone (nothing converted is written or checked)
        self.keys_only = load is None and row_check is None
        #: the row check's test of a block of plain text read for its keys (see
        #: ports.RowCheck): such blocks are read for their keys alone when it passes them
        self.clear_text: Callable[[str, int], bool] | None = getattr(row_check, "clear_text", None)
        self.raw_ok = self.keys_only or (load is None and self.clear_text is not None)
        self.skip = skip[0].cursor() if skip else LineCursor()
        self.hold = skip[1] if skip else HashSet()
        self.deadline, self.progress, self.size = deadline, progress, size
        self.scan = Scan()
        self.bad = self.scan.bad_lines if finder is not None else None
        self.writing = load is not None
        self.reject_file = config.on_error == "reject_file"
        #: invalid rows past which the file is rejected whatever follows (None: not known yet)
        limit = config.max_rejected if isinstance(config.max_rejected, int) else None
        self.doom_after = 0 if self.reject_file else limit
        self.unlisted = False  # the report and the receipt are full: count rejects, no more
        self.reading = False  # a pass may stop early only while it reads the file
        self.dup_reject = config.duplicates == "reject"
        self.max_rows = config.limits.max_rows
        report.max_rows = config.limits.max_report_rows
        self.batch: Rows = []
        self.batch_chars = 0  # of the text the rows of ``batch`` were read from, about
        self.lines: list[int] = []
        self.held = HeldRows(config.duplicates == "last_wins")
        self.key_names = "+".join(config.key)
        self.collections = 0
        self.overlong = False  # whether the chunk at hand holds a line too long to read
        self.header: list[str] = []
        self.gzipped = False
        self.cutter: Any = None
        #: the segment ends where another reader goes on (a shard): a quoted field still open
        #: at its end means the row boundary it was cut at was wrong
        self.cut_end = False
        #: what each segment adds, kept for its checkpoint (see checkpoint.py)
        self.journal = False
        #: key → 64-bit hash, for repeats; a run that checkpoints hashes alike in every process
        self.key_hash: Callable[[Iterable[Any]], Iterable[int]] = _python_hash
        self._journal_reset()

    # --- the pass -------------------------------------------------------------------------

    def run(self, stream: BinaryIO) -> Scan:
        """The whole file in one read."""
        try:
            self.segment(stream)
            return self.end()
        except BaseException:
            self.abandon()
            raise

    def segment(
        self,
        stream: BinaryIO,
        start: Position = TOP,
        want_cut: Callable[[int], bool] | None = None,
        flips: Sequence[int] = (),
    ) -> Position | None:
        """Read from the row boundary ``start`` (``stream`` opened there, see
        reader.open_segment) to the next one after ``want_cut`` says so: that boundary, or
        None at the end of the file (or where reading stopped: the file is rejected anyway).
        ``flips``: cuts of this segment found wrong before (see segments.Cutter)."""
        self.decode_errors = DecodeErrors.count  # undecodable bytes other reads found before
        if want_cut is not None and self.journal:
            asked = want_cut

            def want_cut(passed: int) -> bool:
                return asked(passed) or len(self._hashes) + len(self._held) >= JOURNAL_ROWS

        opened = open_segment(
            stream,
            self.config,
            self.name,
            size=self.size,
            check=self._check_time,
            start=start.offset,
            gzipped=self.gzipped,
            want_cut=want_cut,
            flips=flips,
        )
        self.gzipped = opened.gzipped
        self.cutter = opened.cutter
        with opened.text as text:
            self.reading = True
            stopped = self._read(text, opened.position, start)
            self.reading = False
        cutter = opened.cutter
        if stopped or cutter is None or not cutter.cut:
            return None
        return Position(start.offset + cutter.passed, start.line + cutter.lines)

    def end(self) -> Scan:
        """After the last segment: the rows held back written, the repeats counted."""
        try:
            if self.load is not None:
                if self.held:
                    self._write_held()
                self._count_repeats(self.load.finish())
            if self.finder is not None:
                self.scan.repeated_hashes = self.finder.repeated()
        finally:
            self.held.close()
        return self.scan

    def abandon(self) -> None:
        self.scan.bad_lines.close()
        if self.finder is not None:
            self.finder.close()
        self.held.close()

    def _columns(self, header: list[str]) -> None:
        self.header = header
        positions = header_positions(header, self.config, self.name)
        self.conv = RowConverter(self.config.schema_, positions, self.config.key)
        self.chunks = ChunkConverter(self.config.schema_, positions, self.config.key, len(header))
        self.keyof = itemgetter(*(self.conv.names.index(k) for k in self.config.key))

    def _read(self, text: IO[str], position: Callable[[], int], start: Position) -> bool:
        """Whether reading stopped early (nothing more to learn: the file is rejected)."""
        config, scan = self.config, self.scan
        src = CsvSource(
            text,
            config,
            self.name,
            self.decode_errors,
            header=self.header if start.offset else None,
            line_base=start.line,
        )
        if not start.offset:
            self._columns(src.header)
        rows, marks, guard = src.rows, src.guard.marks, src.guard
        base = start.line
        done = base + rows.line_num  # physical lines read so far
        raw = self._raw_keys(src)
        if raw is not None:
            read_to = self._read_raw(raw, guard, done, position)
            if read_to is None:
                return True
            base, done = base + read_to - done, read_to  # the csv reader goes on from there
        # a row's characters, as the rows of this chunk say so far; steps start at 16 rows and
        # double up to STEP, so the first rows of a file of wide ones come a few at a time
        width, most = 1, 16
        while True:
            chunk: list[list[str]] = []
            error: csv.Error | None = None
            chars = guard.chars
            try:
                while len(chunk) < CHUNK:
                    room = CHUNK_CHARS - (guard.chars - chars)
                    step = max(1, min(most, CHUNK - len(chunk), room // width))
                    had = len(chunk)
                    chunk.extend(islice(rows, step))
                    if len(chunk) - had < step or room <= 0:
                        break  # the end of the text (or of this segment), or a full chunk
                    width = max(1, (guard.chars - chars) // len(chunk))
                    most = min(2 * most, STEP)
            except csv.Error as e:
                error = e  # the rows before it are in ``chunk``
                cutter = self.cutter
                if "unexpected end of data" in str(e):
                    if cutter is not None and cutter.cut:
                        raise BadCut(start.line + cutter.lines, cutter.passed) from None
                    if self.cut_end:
                        raise BadCut(base + rows.line_num, 0) from None
            except UNREADABLE as e:
                scan.read += sum(1 for row in chunk if row)
                self._unreadable(e, done + 1)
            now = base + rows.line_num
            if not chunk and error is None:
                break
            self.overlong = bool(marks) and marks[0] <= now
            while marks and marks[0] <= now:
                marks.popleft()
            try:
                self._chunk(chunk, done, now, error)
                chars = guard.chars - chars
                self.batch_chars += chars
                if self.batch_chars >= BATCH_CHARS:
                    self._flush()
            except _Stop as stop:
                scan.stopped_at = stop.args[0]
                self.receipt.rows_read = scan.read
                return True
            done = now
            self._read_on(done, position)
        self._flush()
        return False

    def _read_on(self, done: int, position: Callable[[], int]) -> None:
        """After the rows up to line ``done``: the deadline, the row limit, the progress."""
        self._check_time(done + 1)
        if self.scan.read > self.max_rows:
            self.receipt.rows_read = self.scan.read
            raise DataError(
                f"the file has more than {self.max_rows:,} rows, over limits.max_rows: "
                "raise that setting to load it",
                file=self.name,
                line=done,
            )
        if self.progress is not None:
            self.progress(position())

    def _unreadable(self, e: BaseException, line: int) -> NoReturn:
        self.receipt.rows_read = self.scan.read
        if isinstance(e, TransientError):
            raise e
        why = e.reason if isinstance(e, DataError) else f"the file cannot be read: {e}"
        raise DataError(why, file=self.name, line=line) from None

    def _raw_keys(self, src: CsvSource) -> RawKeys | None:
        """Whether this segment's rows can be read for their keys alone, straight from the text
        (see rawkeys.py): a reader of their keys, or None."""
        dialect = self.config.csv
        if (
            self.raw_ok
            and self.chunks.keys_alone
            and len(self.header) > 1  # a blank line is not a row of one empty field
            and src.guard.handed == src.rows.line_num  # the csv reader holds no line unread
            and dialect.delimiter not in "\r\n" + dialect.quotechar
            and dialect.quotechar not in "\r\n"
        ):
            return RawKeys(
                len(self.header),
                self.chunks.key_positions,
                dialect.delimiter,
                dialect.quotechar,
                dialect.max_field_size,
                self.chunks.missing,
            )
        return None

    def _read_raw(
        self, raw: RawKeys, guard: LineGuard, done: int, position: Callable[[], int]
    ) -> int | None:
        """Blocks of rows read by ``raw`` after line ``done``, up to a block only the csv reader
        reads (handed back to it), or past RAW_MISSES blocks in a row that had to be read by it
        anyway: the last line read, or None when reading stopped early."""
        self.overlong = False  # a block with a line too long to read goes to the csv reader
        misses = 0
        while misses < RAW_MISSES:
            try:
                text = guard.take_text(RAW_CHARS)
            except UNREADABLE as e:
                self._unreadable(e, done + 1)
            if text is None:
                return done
            keys = raw.keys(text)
            rows: list[list[str]] | None = None
            if keys is None:  # not one row a line: the csv reader reads the block alone
                alone = self._rows_alone(text)
                if alone is None:  # a row goes on past it, or it is not CSV: the reader says
                    guard.give_back(text)
                    return done
                rows, n = alone
            else:
                n = len(keys) if isinstance(keys, list) else text.count("\n")
            guard.taken(n)
            now = done + n
            try:
                if (
                    isinstance(keys, list)  # else a key is missing: the rows say which
                    and self.skip.clear(done + 1, now)
                    and DecodeErrors.count == self.decode_errors
                    and self._none_held(keys)
                    and (self.clear_text is None or self.clear_text(text, n))
                ):
                    self._accept_fast(n, (), range(done + 1, now + 1), keys)
                    misses = 0
                else:  # something to report, skip or hold: the rows, as usual
                    misses += 1
                    if rows is None:  # every line of the block is one row
                        rows = list(csv_reader(io.StringIO(text, newline=""), self.config))
                    lines, line = [], done + 1
                    for row in rows:
                        lines.append(line)
                        line += 1 + line_breaks(row)
                    for i in range(0, len(rows), CHUNK):
                        self._take(rows[i : i + CHUNK], lines[i : i + CHUNK])
                self.batch_chars += len(text)
                if self.batch_chars >= BATCH_CHARS:
                    self._flush()
            except _Stop as stop:
                self.scan.stopped_at = stop.args[0]
                self.receipt.rows_read = self.scan.read
                return None
            done = now
            self._read_on(done, position)
        return done

    def _rows_alone(self, text: str) -> tuple[list[list[str]], int] | None:
        """The rows of a block of whole lines read on its own, and its lines, when the csv
        reader reads it without a word to say (None: a quoted field goes on past it, or
        something in it is not CSV; the csv reader of the file reads it and says what)."""
        reader = csv_reader(io.StringIO(text, newline=""), self.config)
        try:
            return list(reader), reader.line_num
        except csv.Error:
            return None

    def _chunk(self, chunk: list[list[str]], done: int, now: int, error: csv.Error | None) -> None:
        if error is None and now - done == len(chunk):  # one line per row
            self._take(chunk, range(done + 1, done + 1 + len(chunk)))
            return
        lines, line = [], done + 1
        for row in chunk:
            lines.append(line)
            line += 1 + line_breaks(row)
        self._take(chunk, lines)
        if error is not None:
            self.scan.read += 1
            if line not in self.skip:
                self._reject(RowError(line, "", "", csv_error_reason(error, self.config)))

    def _check_time(self, line: int | None = None) -> None:
        """Stop (to be retried) while there is still time to record the run."""
        if self.deadline is not None and self.deadline() < DEADLINE_MARGIN_S:
            self.receipt.rows_read = self.scan.read
            where = f"line {line}" if line is not None else f"row {self.scan.read + 1}"
            raise TransientError(
                f"{self.name}: stopped at {where} with too little time left; a retry starts "
                "it again"
            )

    def _take(self, chunk: list[list[str]], lines: Sequence[int]) -> None:
        if (
            chunk
            and self.skip.clear(lines[0], lines[-1])
            and not self.overlong
            and not self.walk_all
            and DecodeErrors.count == self.decode_errors
            and set(map(len, chunk)) == {len(self.header)}
        ):
            # the ordinary case: no Python loop over the rows
            if self.keys_only:
                keys = self.chunks.keys(chunk)
                if keys is not None and self._none_held(keys):
                    self._accept_fast(len(keys), (), lines, keys)
                    return
            outs = self.chunks.convert(chunk)
            if outs is not None:
                # a row check walks the rows from the first one the backend may refuse
                first = None if self.first is None else self.first(outs)
                if first is None:
                    if self._none_held(map(self.keyof, outs)):
                        self._accept_fast(len(outs), outs, lines)
                        return
                elif self._none_held(map(self.keyof, outs[:first])):
                    self._accept_fast(first, outs[:first], lines[:first])
                    self._take_slowly(chunk[first:], lines[first:])
                    return
        self._take_slowly(chunk, lines)

    def _accept_fast(
        self, n: int, outs: Rows | tuple[()], lines: Sequence[int], keys: Keys | None = None
    ) -> None:
        """``n`` rows taken whole: ``outs`` (or, when only their keys are needed, ``keys``)."""
        if not n:
            return
        self.scan.read += n
        if self.bad is not None:
            self.bad.kept()
        self._accept(outs, lines, keys)  # type: ignore[arg-type]  # () only with keys

    def _none_held(self, keys: Iterable[Any]) -> bool:
        """No row has a key hash to hold back (checked in C while the hashes to hold fit in
        memory)."""
        if not self.hold:
            return True
        hashes = self.hold.in_memory
        return hashes is not None and hashes.isdisjoint(self.key_hash(keys))

    def _take_slowly(self, chunk: list[list[str]], lines: Sequence[int]) -> None:
        """Row by row: every problem reported with its line and column."""
        scan, ncols, convert = self.scan, len(self.header), self.conv.convert
        skip, hold, keyof, runs = self.skip, self.hold, self.keyof, self.bad
        outs: Rows = []
        kept: list[int] = []
        for row, line in zip(chunk, lines, strict=True):
            if not row:
                continue  # a blank line is not a row
            scan.read += 1
            if line in skip:
                continue
            if self.overlong and any(OVERLONG in c for c in row):
                self._reject(RowError(line, "", "", overlong_reason(self.config)))
                continue
            if self.unlisted and (len(row) != ncols or convert(row) is None):
                self._unlisted(line)  # no need to say why: nobody will read it
                continue
            if len(row) != ncols:
                text = self.config.csv.delimiter.join(row)[:200]
                if DecodeErrors.count != self.decode_errors:
                    self.decode_errors += sum(len(SURROGATE.findall(c)) for c in row)
                    text = printable(text)
                self._reject(RowError(line, "", text, f"expected {ncols} fields, found {len(row)}"))
                continue
            if DecodeErrors.count != self.decode_errors:
                bad = [c for c in row if SURROGATE.search(c)]
                if bad:
                    self.decode_errors += sum(len(SURROGATE.findall(c)) for c in bad)
                    self._reject(
                        RowError(
                            line,
                            self.header[row.index(bad[0])],
                            printable(bad[0]),
                            undecodable_reason(self.config),
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
            if hold and next(iter(self.key_hash((keyof(out),)))) in hold:
                self._hold(line, out)
                continue
            outs.append(out)
            kept.append(line)
            if runs is not None:
                runs.kept()
        self._accept(outs, kept)

    def _accept(self, outs: Rows, lines: Sequence[int], keys: Keys | None = None) -> None:
        if self.finder is not None:
            if keys is None:
                keys = map(self.keyof, outs)
            if self.journal:
                hashes = array("q", self.key_hash(keys))
                self.finder.add_many(hashes)
                self._hashes.extend(hashes)
            else:
                self.finder.add_many(list(self.key_hash(keys)))  # a list: its length is known
        if self.writing:
            self.batch.extend(outs)
            self.lines.extend(lines)
            if len(self.batch) >= self.config.batch_size:
                self._flush()

    def _reject(self, *errs: RowError) -> None:
        """One rejected row and everything wrong with it."""
        self.scan.invalid += 1
        if self.bad is not None:
            self.bad.add(errs[0].line)
            if self.journal:
                self._bad.append(errs[0].line)
        for err in errs:
            self.receipt.add_error(err)
        self.report.add(*errs)
        self._rejected(errs[0].line)

    def _unlisted(self, line: int) -> None:
        """A rejected row past the room of the report and of the receipt: only counted."""
        self.scan.invalid += 1
        if self.bad is not None:
            self.bad.add(line)
            if self.journal:
                self._bad.append(line)
        self.report.omitted += 1
        self._rejected(line)

    def _rejected(self, line: int) -> None:
        report, receipt = self.report, self.receipt
        if report.omitted:
            receipt.report_rows_omitted = report.omitted
            self.unlisted = report.full and len(receipt.errors) >= MAX_ERRORS_IN_RECEIPT
        if self.doom_after is None or self.scan.invalid <= self.doom_after:
            return
        self.writing = False  # the file is rejected: write no more (the table rolls back)
        if self.bad is not None:
            self.bad.close()  # nor is there a second pass to skip lines in
            self.bad = None
        if report.full and self.reading:
            raise _Stop(line)  # the rest could only be counted: a bomb stops here

    def _hold(self, line: int, out: tuple[Any, ...]) -> None:
        """A row whose key hash repeats: the policy picks one winner per real key."""
        key = self.keyof(out)
        if self.journal:
            self._held.append((line, out))
        before = self.held.offer(key, line, out)
        if before is None:
            return
        if self.dup_reject:
            self._reject(
                RowError(
                    line,
                    self.key_names,
                    key_text(key),
                    f"duplicate key: line {before} has the same key",
                )
            )
        else:
            self.scan.duplicates += 1

    def _count_repeats(self, repeats: Iterable[tuple[int, Any]]) -> None:
        """Rows the table found to repeat a key it had written in this load: rejected with
        ``duplicates: reject``, else counted (the table applied the policy)."""
        if not self.dup_reject:
            self.scan.duplicates += sum(1 for _ in repeats)
            return
        for line, key in repeats:
            self._reject(
                RowError(
                    line,
                    self.key_names,
                    key_text(key),
                    "duplicate key: an earlier line has the same key",
                )
            )

    def _flush(self) -> None:
        batch, lines = self.batch, self.lines
        if self.writing and batch:
            # batch_size rows a write, and no more text than half BATCH_CHARS at the rows'
            # average width: each write's copies (bound, serialized, sent) stay small too
            wide = len(batch) * (BATCH_CHARS // 2) // max(self.batch_chars, 1)
            size = max(1, min(self.config.batch_size, wide))
            for i in range(0, len(batch), size):
                part, part_lines = batch[i : i + size], lines[i : i + size]
                self._check_time(part_lines[0])
                self._count_repeats(self.load.write(part, part_lines))  # type: ignore[union-attr]
                self.scan.written += len(part)
                if gc.get_count()[0] > GC_GROWTH:
                    self.collections += 1
                    gc.collect(1 if self.collections % FULL_COLLECT_EVERY else 2)
        self.batch, self.lines = [], []
        self.batch_chars = 0

    # --- checkpoints (checkpoint.py) ---------------------------------------------------------

    def _journal_reset(self) -> None:
        self._hashes: array[int] = array("q")
        self._bad: array[int] = array("q")
        self._held: list[tuple[int, tuple[Any, ...]]] = []

    def settle_segment(self) -> None:
        """Between two segments: every row read so far is written (a checkpoint may say so),
        and a run of invalid lines does not reach over the boundary."""
        if self.load is not None:
            self._count_repeats(self.load.finish())
        if self.bad is not None:
            self.bad.kept()

    def delta(self, stage: str, seq: int, start: Position, end: Position) -> Delta:
        """What the pass found since the last delta, and its counters now."""
        scan, receipt = self.scan, self.receipt
        snapshot = {
            "read": scan.read,
            "invalid": scan.invalid,
            "written": scan.written,
            "duplicates": scan.duplicates,
            "stopped_at": scan.stopped_at,
            "errors": [dict(e) for e in receipt.errors],
            "omitted": receipt.report_rows_omitted,
            "rows_read": receipt.rows_read,
            "report": self.report.saved(),
            "header": self.header,
            "gzipped": self.gzipped,
        }
        delta = Delta(
            stage,
            seq,
            start,
            end,
            snapshot=snapshot,
            hashes=self._hashes,
            bad=self._bad,
            report=self.report.tail(),
            held=self._held,
        )
        self._journal_reset()
        return delta

    def restore(self, deltas: Iterable[Delta], *, ended: bool = False) -> Delta | None:
        """The pass as it was after the last of ``deltas`` (this pass's, in order); that
        last delta (None: there were none). An ``ended`` pass is not read on: its key hashes
        and held rows are not needed."""
        last = None
        for d in deltas:
            if last is None:
                self._columns(d.snapshot["header"])
            last = d
            if self.finder is not None and d.hashes and not ended:
                self.finder.add_many(d.hashes)
            if self.bad is not None:
                before = -2
                for line in d.bad:
                    if line != before + 1:
                        self.bad.kept()
                    self.bad.add(line)
                    before = line
                self.bad.kept()
            if d.report:
                self.report.extend(d.report)
            for line, row in () if ended else d.held:
                self.held.offer(self.keyof(row), line, row)
        if last is None:
            return None
        snap, scan, receipt = last.snapshot, self.scan, self.receipt
        scan.read, scan.invalid = snap["read"], snap["invalid"]
        scan.written, scan.duplicates = snap["written"], snap["duplicates"]
        scan.stopped_at = snap["stopped_at"]
        receipt.errors = [dict(e) for e in snap["errors"]]
        receipt.report_rows_omitted = snap["omitted"]
        receipt.rows_read = snap["rows_read"]
        self.report.load(snap["report"])
        self.gzipped = snap["gzipped"]
        if self.doom_after is not None and scan.invalid > self.doom_after:
            self.writing = False
            if self.bad is not None:
                self.bad.close()
                self.bad = None
        self.unlisted = self.report.full and len(receipt.errors) >= MAX_ERRORS_IN_RECEIPT
        return last

    def _write_held(self) -> None:
        """The winners among the rows held back, in line order, after every other row."""
        size = self.config.batch_size
        for line, out in self.held.winners():
            self.batch.append(out)
            self.lines.append(line)
            if len(self.batch) >= size:
                self._flush()
        self._flush()


def _python_hash(keys: Iterable[Any]) -> Iterable[int]:
    return map(hash, keys)


def key_text(key: Any) -> str:
    return " / ".join(map(str, key)) if isinstance(key, tuple) else str(key)
