"""Byte stream → header + numbered rows.

UTF-8 with or without a BOM, gzip (recognised by its magic bytes, whatever the name), CRLF,
quoted fields with delimiters and newlines. Streaming: nothing here holds more than a buffer.

Bytes that are not UTF-8 do not stop the read: they decode to lone surrogates (the
``surrogateescape`` convention) and a counter notes that it happened, so the engine checks rows
for them only while there is something to find, and rejects those rows with their line number.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import re
from collections.abc import Callable
from typing import IO, Any, BinaryIO

from .config import Config
from .errors import DataError

GZIP_MAGIC = b"\x1f\x8b"
SURROGATE = re.compile("[\udc80-\udcff]")


class DecodeErrors:
    """Counts undecodable bytes seen by every reader; only ever read as a change."""

    count = 0


def _count_and_escape(exc: UnicodeError) -> tuple[str, int]:
    assert isinstance(exc, UnicodeDecodeError)
    bad = exc.object[exc.start : exc.end]
    DecodeErrors.count += len(bad)
    return "".join(chr(0xDC00 + b) if b >= 0x80 else "\udc80" for b in bad), exc.end


codecs.register_error("batchdrop-count", _count_and_escape)


class _Prefixed(io.RawIOBase):
    """A raw stream that first gives back bytes already read from ``inner``, and counts."""

    def __init__(self, head: bytes, inner: BinaryIO):
        self._head = head
        self._inner = inner
        self.position = len(head)

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        if self._head:
            n = min(len(buf), len(self._head))
            buf[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._inner.read(len(buf))
        n = len(data)
        buf[:n] = data
        self.position += n
        return n

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            super().close()


def open_text(stream: BinaryIO, config: Config, name: str) -> tuple[IO[str], Callable[[], int]]:
    """Text over a binary stream: gunzipped if it is gzip, decoded as UTF-8 (BOM dropped);
    and a function telling how many bytes of ``stream`` have been read so far."""
    raw: BinaryIO
    peek = getattr(stream, "peek", None)
    if peek is not None and hasattr(stream, "tell"):  # a buffered local file: no extra layer
        head = peek(2)[:2]
        raw, position = stream, stream.tell
    else:
        head = stream.read(2)
        counting = _Prefixed(head, stream)
        raw = io.BufferedReader(counting, buffer_size=1 << 16)  # type: ignore[assignment]
        position = lambda: counting.position  # noqa: E731
    if head == GZIP_MAGIC:
        raw = gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[assignment]
    text = io.TextIOWrapper(raw, encoding=config.csv.encoding, errors="batchdrop-count", newline="")
    return text, position


class CsvSource:
    """The header and the row iterator of one file.

    ``rows`` is the csv reader itself so the engine's loop pays for nothing in between;
    ``rows.line_num`` is the number of physical lines read so far.
    """

    def __init__(self, text: IO[str], config: Config, name: str, decode_errors_before: int = 0):
        self.name = name
        self._decode_errors_before = decode_errors_before
        self.text = text
        csv.field_size_limit(config.csv.max_field_size)
        self.rows: Any = csv.reader(
            text, delimiter=config.csv.delimiter, quotechar=config.csv.quotechar, strict=True
        )
        self.header = self._read_header()
        self.header_lines = self.rows.line_num

    def _read_header(self) -> list[str]:
        try:
            for row in self.rows:
                if row:
                    if DecodeErrors.count != self._decode_errors_before and any(
                        SURROGATE.search(c) for c in row
                    ):
                        raise DataError("the header is not valid UTF-8", file=self.name, line=1)
                    return [c.strip() for c in row]
        except csv.Error as e:
            raise DataError(
                f"the header cannot be read as CSV: {e}", file=self.name, line=self.rows.line_num
            ) from None
        except (OSError, EOFError) as e:
            raise DataError(f"the file cannot be read: {e}", file=self.name) from None
        raise DataError("the file is empty: it has no header row", file=self.name)

    def close(self) -> None:
        self.text.close()


def header_positions(header: list[str], config: Config, name: str) -> list[int]:
    """Where each schema field is in the header; every header problem in one clear message."""
    problems: list[str] = []
    empty = [i + 1 for i, h in enumerate(header) if not h]
    if empty:
        problems.append("empty column name at position " + ", ".join(map(str, empty)))
    seen: set[str] = set()
    dups = sorted({h for h in header if h and (h in seen or seen.add(h))})  # type: ignore[func-returns-value]
    if dups:
        problems.append("duplicated column " + ", ".join(map(repr, dups)))
    fields = [f.name for f in config.schema_.fields]
    missing = [f for f in fields if f not in header]
    if missing:
        problems.append("missing column " + ", ".join(map(repr, missing)))
    unknown = [h for h in header if h and h not in fields]
    if unknown and config.extra_columns != "ignore":
        problems.append(
            "unknown column "
            + ", ".join(map(repr, unknown))
            + " (allow with extra_columns: ignore)"
        )
    if problems:
        raise DataError(
            "bad header: " + "; ".join(problems) + f" (expected: {', '.join(fields)})",
            file=name,
            line=1,
        )
    return [header.index(f) for f in fields]


def csv_error_reason(e: csv.Error, config: Config) -> str:
    text = str(e)
    if "field larger than field limit" in text:
        return (
            f"a field is longer than {config.csv.max_field_size} characters "
            "(csv.max_field_size), or a quote is never closed"
        )
    if "unexpected end of data" in text:
        return "a quoted field is never closed before the end of the file"
    if "expected after" in text:
        return f"bad quoting: {text} (a quote inside a quoted field must be doubled)"
    if "new-line character seen in unquoted field" in text:
        return "a bare carriage return inside an unquoted field"
    return f"not valid CSV: {text}"


def line_breaks(row: list[str]) -> int:
    """How many physical lines a row's quoted fields span beyond its first."""
    n = 0
    for cell in row:
        if "\n" in cell or "\r" in cell:
            n += cell.count("\n") + cell.count("\r") - cell.count("\r\n")
    return n
