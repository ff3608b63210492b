"""The rows ``batchdrop init --from`` learns from: every row of a modest file, else rows spread
over the whole file (its head, then slices at even offsets), so a rare value far from the top
is still met. Rows come in chunks, ready to be read column by column.

The sample is read the way the engine reads a file (gzip by its bytes, the csv module with the
engine's quoting rules, blank lines skipped, the header stripped), in the encoding found for it
(infer_encoding), so what inference sees is what a load will see.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .errors import DataError
from .infer_encoding import detect_encoding, label, slice_codec
from .reader import GZIP_MAGIC, SURROGATE, DecodeErrors, line_breaks

#: a file up to this size (uncompressed) is read whole; a bigger one is sampled
WHOLE_FILE_BYTES = 64 << 20
HEAD_BYTES = 16 << 20  # of a bigger file: its head, read as a stream
SLICES = 48  # then this many slices at even offsets over the rest
SLICE_BYTES = 1 << 20
CHUNK_ROWS = 10_000
SNIFF_CHARS = 64 << 10
DELIMITERS = (",", "\t", ";", "|")  # in the order a tie is settled
FIELD_LIMIT = 131072  # the engine's default csv.max_field_size


@dataclass
class Sample:
    """What was read, and what the reading itself found."""

    path: Path
    header: list[str]
    delimiter: str
    size: int  # bytes on disk
    gzipped: bool
    #: the codec the file is read with ("utf-8-sig": UTF-8 with or without a byte-order mark)
    encoding: str = "utf-8-sig"
    whole: bool = True  # every row of the file was read
    rows: int = 0  # rows of the right width that were learnt from
    bad_rows: int = 0  # rows of another width, or that are not valid CSV
    first_bad_line: int | None = None
    bad_bytes: int = 0  # bytes that are not valid in ``encoding``
    first_bad_bytes_line: int | None = None
    #: what the reading found worth telling (the encoding, when it is not UTF-8)
    notes: list[str] = field(default_factory=list)
    chunks: Iterator[list[list[str]]] = field(default_factory=lambda: iter(()))


def sniff_delimiter(text: str, complete: bool) -> str:
    """The delimiter that splits the most records into as many fields as the header has.

    Each candidate parses the head of the file as the engine would; a quoted field holding
    another candidate (a decimal comma, "Acme, Inc.") does not fool it, as it can a count of
    characters per line."""
    best, best_score = ",", (-1.0, 0)
    for delimiter in DELIMITERS:
        try:
            records = [r for r in csv.reader(io.StringIO(text), delimiter=delimiter) if r]
        except csv.Error:
            continue
        if not complete:
            records = records[:-1]  # the last one may be cut short
        if not records or len(records[0]) < 2:
            continue
        width = len(records[0])
        rest = records[1:201]
        fit = sum(len(r) == width for r in rest) / len(rest) if rest else 1.0
        score = (fit, width)
        if score > best_score:
            best, best_score = delimiter, score
    return best


def open_sample(path: Path) -> Sample:
    """The header and the dialect now; the rows (``Sample.chunks``) as they are read."""
    name = str(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        gzipped = f.read(2) == GZIP_MAGIC
    with _binary(path, gzipped) as raw:
        head = raw.read(SNIFF_CHARS * 4)
    whole = gzipped or size <= WHOLE_FILE_BYTES  # a gzip file: until it is cut short
    found = detect_encoding(
        head, lambda: _binary(path, gzipped), WHOLE_FILE_BYTES if whole else HEAD_BYTES, name
    )
    text = head.decode(found.encoding, errors="replace").removeprefix("\ufeff")
    complete = len(head) < SNIFF_CHARS * 4
    delimiter = sniff_delimiter(text[:SNIFF_CHARS], complete and len(text) <= SNIFF_CHARS)
    sample = Sample(path, [], delimiter, size, gzipped, found.encoding, whole=whole)
    if found.note:
        sample.notes.append(found.note)
    stream = _Stream(sample, WHOLE_FILE_BYTES if sample.whole else HEAD_BYTES)
    header = stream.header()
    if not header or not any(header):
        stream.close()
        raise DataError("the file has no header row", file=name)
    sample.header = [c.strip() for c in header]
    try:
        _check_header(sample.header, name)
    except DataError:
        stream.close()
        raise
    chunks = stream.chunks()
    sample.chunks = _counted(sample, chunks if sample.whole else _spread(sample, chunks))
    return sample


def _check_header(header: list[str], name: str) -> None:
    """A header the engine would refuse is refused here, with the change to make."""
    empty = [str(i + 1) for i, h in enumerate(header) if not h]
    if empty:
        raise DataError(
            f"the header has no name for column {', '.join(empty)}: "
            "give every column a name in the first line of the file",
            file=name,
            line=1,
        )
    seen: set[str] = set()
    twice = sorted({h for h in header if h in seen or seen.add(h)})  # type: ignore[func-returns-value]
    if twice:
        raise DataError(
            f"the header names {', '.join(map(repr, twice))} more than once: "
            "give every column its own name in the first line of the file",
            file=name,
            line=1,
        )


def _binary(path: Path, gzipped: bool) -> IO[bytes]:
    if gzipped:
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


def _reader(text: Iterable[str], delimiter: str) -> Any:
    csv.field_size_limit(FIELD_LIMIT)
    return csv.reader(text, delimiter=delimiter, quotechar='"', strict=True)


class _Stream:
    """The rows of a file from its start, in chunks, up to ``budget`` bytes (uncompressed).

    Rows are gathered by a plain loop over the csv reader (no generator per row: a whole
    file of a few hundred thousand rows is read in about a second); the rare row of the
    wrong width, not valid CSV or not UTF-8 is looked for per chunk, and the line of the
    first one is worked out only then."""

    def __init__(self, sample: Sample, budget: int):
        self.sample = sample
        self.raw = _binary(sample.path, sample.gzipped)
        self.budget = _Budget(self.raw, budget)
        self.text = io.TextIOWrapper(
            self.budget,  # type: ignore[type-var]
            encoding=sample.encoding,
            errors="batchdrop-count",
            newline="",
        )
        self.rows = _reader(self.text, sample.delimiter)
        self.errors_before = DecodeErrors.count  # text is decoded ahead of the rows

    def close(self) -> None:
        self.text.close()

    def header(self) -> list[str]:
        try:
            for row in self.rows:
                if row and any(SURROGATE.search(c) for c in row):
                    raise DataError(
                        f"the header holds bytes that are not valid "
                        f"{label(self.sample.encoding)}: correct the first line of the file",
                        file=str(self.sample.path),
                        line=1,
                    )
                if row:
                    row[0] = row[0].removeprefix("\ufeff")  # kept by utf-16-le, ...
                    return list(row)
        except csv.Error as e:
            raise DataError(
                f"the header cannot be read as CSV: {e}", file=str(self.sample.path), line=1
            ) from None
        return []

    def chunks(self) -> Iterator[list[list[str]]]:
        sample, rows, width = self.sample, self.rows, len(self.sample.header)
        try:
            done = False
            while not done:
                chunk: list[list[str]] = []
                first_line = rows.line_num + 1
                done = True
                try:
                    for row in rows:
                        chunk.append(row)
                        if len(chunk) == CHUNK_ROWS:
                            done = False
                            break
                except csv.Error:
                    done = False
                    _bad(sample, "rows", rows.line_num)
                if self.budget.cut:
                    chunk = chunk[:-1]  # the last row may be cut short
                    if sample.gzipped:
                        sample.whole = False
                    done = True
                kept = [r for r in chunk if len(r) == width]
                if len(kept) + chunk.count([]) < len(chunk):
                    at = next(i for i, r in enumerate(chunk) if r and len(r) != width)
                    _bad(sample, "rows", _line(chunk, at, first_line), len(chunk) - len(kept))
                if DecodeErrors.count != self.errors_before:
                    self._undecodable(chunk, first_line)
                if kept:
                    yield kept
        finally:
            self.close()

    def _undecodable(self, chunk: list[list[str]], first_line: int) -> None:
        """Count the bytes of a chunk that cannot be decoded (each became one surrogate)."""
        for i, row in enumerate(chunk):
            bad = sum(len(SURROGATE.findall(c)) for c in row)
            if bad:
                _bad(self.sample, "bytes", _line(chunk, i, first_line), bad)


def _line(chunk: list[list[str]], at: int, first_line: int) -> int:
    """The physical line on which row ``at`` of a chunk starts."""
    return first_line + sum(1 + line_breaks(r) for r in chunk[:at])


def _bad(sample: Sample, what: str, line: int, count: int = 1) -> None:
    if what == "rows":
        sample.bad_rows += count
        if sample.first_bad_line is None:
            sample.first_bad_line = line
    else:
        sample.bad_bytes += count
        if sample.first_bad_bytes_line is None:
            sample.first_bad_bytes_line = line


def _spread(sample: Sample, head: Iterator[list[list[str]]]) -> Iterator[list[list[str]]]:
    """The rows of the head, then of slices at even offsets after it. A slice starts after
    its first line break and ends at its last; a row of the wrong width (a slice that began
    inside a quoted field) is left out."""
    yield from head
    sample.whole = False
    width = len(sample.header)
    span = sample.size - HEAD_BYTES
    with open(sample.path, "rb") as raw:
        codec, unit = slice_codec(sample.encoding, raw.read(4))
        newline = "\n".encode(codec)
        for k in range(SLICES):
            offset = HEAD_BYTES + span * k // SLICES
            raw.seek(offset - offset % unit)  # a character of UTF-16 starts at an even byte
            data = raw.read(SLICE_BYTES)
            start, end = _first_break(data, newline, unit), _last_break(data, newline, unit)
            if start <= 0 or end <= start:
                continue
            text = data[start:end].decode(codec, errors="replace")
            chunk: list[list[str]] = []
            try:
                for row in _reader(io.StringIO(text, newline=""), sample.delimiter):
                    if len(row) == width:
                        chunk.append(row)
            except csv.Error:
                pass
            if chunk:
                yield chunk


def _first_break(data: bytes, newline: bytes, unit: int) -> int:
    """Where the text after the first line break of ``data`` starts (0: none); a break is a
    whole character: for UTF-16, an encoded "\\n" at an even offset."""
    i = data.find(newline)
    while i >= 0 and i % unit:
        i = data.find(newline, i + 1)
    return i + len(newline) if i >= 0 else 0


def _last_break(data: bytes, newline: bytes, unit: int) -> int:
    """Where the text after the last line break of ``data`` starts (0: none)."""
    i = data.rfind(newline)
    while i >= 0 and i % unit:
        i = data.rfind(newline, 0, i + len(newline) - 1)
    return i + len(newline) if i >= 0 else 0


def _counted(sample: Sample, chunks: Iterator[list[list[str]]]) -> Iterator[list[list[str]]]:
    for chunk in chunks:
        sample.rows += len(chunk)
        yield chunk


class _Budget(io.RawIOBase):
    """Reads at most ``limit`` bytes of ``inner``; ``cut`` tells that there was more."""

    def __init__(self, inner: IO[bytes], limit: int):
        self._inner = inner
        self._left = limit
        self.cut = False

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        if self._left <= 0:
            self.cut = self.cut or bool(self._inner.read(1))
            return 0
        data = self._inner.read(min(len(buf), self._left))
        self._left -= len(data)
        buf[: len(data)] = data
        return len(data)

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            super().close()


NAME_CHARS = re.compile(r"\W+")


def table_name(path: Path) -> str:
    return NAME_CHARS.sub("_", path.name.split(".")[0]).strip("_").lower() or "items"
