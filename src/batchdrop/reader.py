"""Byte stream → header + numbered rows.

Text in ``csv.encoding`` (UTF-8 with or without a BOM by default; any codec Python knows:
cp1252, latin-1, UTF-16 with its BOM, ...), gzip (recognised by its magic bytes, whatever the
name), CRLF, quoted fields with delimiters and newlines. Streaming: nothing here holds more than
a buffer. Everything after the decoder works on text, so a codec of two or four bytes per
character splits lines and counts them as UTF-8 does.

Bytes the codec cannot decode do not stop the read: each becomes one lone low surrogate,
U+DC00 + the byte (the ``surrogateescape`` convention, stretched to bytes below 0x80, which a
UTF-16 decoder can refuse too), and a counter notes that it happened, so the engine checks rows
for them only while there is something to find, and rejects those rows with their line number.

Limits hold while reading: the uncompressed bytes are counted below the text layer (blank lines
and rejected rows count too), and a physical line longer than ``8 × csv.max_field_size``
characters is never held whole: ``LineGuard`` drops it and hands the csv reader a one-character
marker line in its place, so the line numbers stay exact and the engine rejects that row.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import IO, TYPE_CHECKING, Any, BinaryIO

from .config import Config
from .errors import DataError, TransientError

if TYPE_CHECKING:
    from .segments import Cutter

GZIP_MAGIC = b"\x1f\x8b"
SURROGATE = re.compile("[\udc00-\udcff]")  # one undecodable byte
LONE = re.compile("[\ud800-\udfff]")
#: stands for a line too long to read: a lone high surrogate, which no file encoding's strict
#: decoder yields (undecodable bytes become low surrogates), so a file cannot forge it
OVERLONG = "\ud800"
LINE_FACTOR = 8  # a physical line may hold this many maximal fields
BLOCK_CHARS = 1 << 14  # text read at a time (bigger blocks fragment the heap: more RSS)
CHECK_EVERY = 16 << 20  # bytes between two calls of the reader's ``check`` (the deadline)


class DecodeErrors:
    """Counts undecodable bytes seen by every reader; only ever read as a change."""

    count = 0


def _count_and_escape(exc: UnicodeError) -> tuple[str, int]:
    assert isinstance(exc, UnicodeDecodeError)
    bad = exc.object[exc.start : exc.end]
    DecodeErrors.count += len(bad)
    return "".join([chr(0xDC00 + b) for b in bad]), exc.end


codecs.register_error("batchdrop-count", _count_and_escape)


class _Wrapper(io.RawIOBase):
    """A raw stream over ``self._inner`` that closes it when closed."""

    _inner: Any

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            super().close()


class _Prefixed(_Wrapper):
    """A raw stream that first gives back bytes already read from ``inner``, and counts."""

    def __init__(self, head: bytes, inner: BinaryIO):
        self._head = head
        self._inner = inner
        self.position = len(head)

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


class _Bounded(_Wrapper):
    """Counts the (uncompressed) bytes read through it; past ``limit`` the read stops with a
    DataError saying which limit and setting; every CHECK_EVERY bytes it calls ``check``."""

    def __init__(
        self, inner: Any, limit: int, breach: Callable[[], str], check: Callable[[], None] | None
    ):
        self._inner = inner
        self.limit = limit
        self._breach = breach
        self._check = check
        self.count = 0
        self._next_check = CHECK_EVERY

    def readinto(self, buf: Any) -> int:
        n: int = self._inner.readinto(buf)
        self.count += n
        if self.count > self.limit:
            raise DataError(self._breach())
        if self.count >= self._next_check:
            self._next_check += CHECK_EVERY
            if self._check is not None:
                self._check()
        return n


def open_text(
    stream: BinaryIO,
    config: Config,
    name: str,
    *,
    size: int = 0,
    check: Callable[[], None] | None = None,
) -> tuple[IO[str], Callable[[], int]]:
    """Text over a binary stream: gunzipped if it is gzip, decoded with ``csv.encoding``;
    and a function telling how many bytes of ``stream`` have been read so far.

    ``size`` is the file's size as stored (0: unknown): with it, a plain file over
    ``limits.max_bytes`` is refused before it is read, and a gzip file may expand to
    ``limits.max_compression_ratio`` times it. ``check`` is called every few megabytes read
    (it raises to stop the read: the deadline)."""
    opened = open_segment(stream, config, name, size=size, check=check)
    return opened.text, opened.position


@dataclass
class Opened:
    text: IO[str]
    position: Callable[[], int]  # bytes of the stored stream read so far
    gzipped: bool
    cutter: Cutter | None  # with ``want_cut``: where the segment ended


def open_segment(
    stream: BinaryIO,
    config: Config,
    name: str,
    *,
    size: int = 0,
    check: Callable[[], None] | None = None,
    start: int = 0,
    gzipped: bool = False,
    want_cut: Callable[[int], bool] | None = None,
    flips: Sequence[int] = (),
) -> Opened:
    """``open_text`` for one segment of a file: from the row boundary ``start`` (a byte offset
    in the uncompressed file) to the first row boundary after ``want_cut`` says so (segments.py).
    From ``start`` > 0, ``stream`` is where the stored file's bytes start when it is
    ``gzipped`` (whose start is reached by inflating it again: the cost of resuming a
    compressed file), else at ``start`` itself."""
    raw: BinaryIO
    peek = getattr(stream, "peek", None)
    if peek is not None and hasattr(stream, "tell"):  # a buffered local file: no extra layer
        head = peek(2)[:2]
        raw, position = stream, stream.tell  # opened at ``start`` already when not gzipped
    else:
        head = stream.read(2)
        counting = _Prefixed(head, stream)
        raw = io.BufferedReader(counting, buffer_size=1 << 16)  # type: ignore[assignment]
        base = start if start and not gzipped else 0
        position = lambda: base + counting.position  # noqa: E731
    limits = config.limits
    max_bytes = int(limits.max_bytes)
    limit, breach = max_bytes, lambda: _too_big(max_bytes)
    if (head == GZIP_MAGIC and not start) or gzipped:
        gzipped = True
        raw = gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[assignment]
        ratio = limits.max_compression_ratio
        if size and ratio * size < max_bytes:
            limit, breach = ratio * size, lambda: _too_expanded(size, ratio)
        _inflate_past(raw, start, check)
    elif size > max_bytes:
        raise DataError(_too_big(max_bytes), file=name)
    bounded = _Bounded(raw, limit, breach, check)
    bounded.count = start
    source: Any = bounded
    cutter = None
    if want_cut is not None:
        from .segments import Cutter

        cutter = Cutter(bounded, quote=ord(config.csv.quotechar), want_cut=want_cut, flips=flips)
        source = cutter
    encoding = config.csv.encoding
    if start and codecs.lookup(encoding).name == "utf-8-sig":
        encoding = "utf-8"  # a byte-order mark is at the file's start only
    text = io.TextIOWrapper(source, encoding=encoding, errors="batchdrop-count", newline="")
    text._CHUNK_SIZE = BLOCK_CHARS  # type: ignore[attr-defined]  # fewer trips through _Bounded
    return Opened(text, position, gzipped, cutter)


def _inflate_past(raw: Any, start: int, check: Callable[[], None] | None) -> None:
    """Read and drop the first ``start`` uncompressed bytes."""
    left = start
    while left:
        data = raw.read(min(left, 1 << 20))
        if not data:
            raise EOFError(f"the file ends before byte {start}, where the run stopped")
        left -= len(data)
        if check is not None and left % CHECK_EVERY < len(data):
            check()


def _too_big(max_bytes: int) -> str:
    return (
        f"the file holds more than {max_bytes:,} bytes (uncompressed), over limits.max_bytes: "
        "raise that setting to load it"
    )


def _too_expanded(size: int, ratio: int) -> str:
    return (
        f"the compressed file ({size:,} bytes) expands to more than {ratio} times its size, "
        "over limits.max_compression_ratio (a compression bomb?): raise that setting to load it"
    )


def max_line_chars(config: Config) -> int:
    return LINE_FACTOR * config.csv.max_field_size


def overlong_reason(config: Config) -> str:
    return (
        f"the line is longer than {max_line_chars(config):,} characters "
        f"({LINE_FACTOR} × csv.max_field_size)"
    )


class LineGuard:
    """The physical lines of a text, as the csv reader splits them (at CR, LF or CRLF), none
    longer than ``cap`` characters: a longer one is read past in blocks (never held whole) and
    replaced by the line ``OVERLONG``. ``marks`` holds the line numbers of those replacements,
    oldest first, for the reader of the rows to take.

    Lines are cut from blocks of text in C (``StringIO.readlines``), and ``lines`` chains the
    blocks' lists, so an ordinary line costs no Python call on its way to the csv reader.

    A reader that reads rows without the csv reader (rawkeys.RawKeys) takes whole blocks of
    complete lines with ``take_text`` instead, while the csv reader has taken every line handed
    to it (``handed``): a block it cannot read goes back with ``give_back``, to be the csv
    reader's next lines. ``header_alone``: the first block's first line is handed alone, so
    that after a one-line header the csv reader holds no lines of the block after it.
    """

    def __init__(self, text: IO[str], cap: int, *, header_alone: bool = False):
        self.text = text
        self.cap = cap
        self.marks: deque[int] = deque()
        self._line = 0  # physical lines handed out so far (to the csv reader or taken as text)
        self.handed = 0  # of which handed to the csv reader
        #: characters of the lines handed out so far (read ahead of the csv reader by at most
        #: one block): what the engine sizes its chunks and batches by
        self.chars = 0
        self._header_alone = header_alone
        self._texts = self._read()
        self._back: list[str | list[str]] = []  # blocks handed back, the next one last
        self.lines: Iterator[str] = chain.from_iterable(self._blocks())

    def _next(self) -> str | list[str] | None:
        """The next block: text of complete lines (the last one perhaps without its line
        break), a one-line list standing for a line too long to read, or None at the end."""
        return self._back.pop() if self._back else next(self._texts, None)

    def take_text(self, chars: int) -> str | None:
        """The next blocks of lines as one text of at least ``chars`` characters, for a reader
        of its own; shorter where the text ends or a block only the csv reader takes comes
        (handed to it next). None: no such block first."""
        parts: list[str] = []
        size = 0
        while size < chars:
            block = self._next()
            if not isinstance(block, str) or not self._first_fits(block):
                if block is not None:
                    self._back.append(block)
                break
            parts.append(block)
            size += len(block)
        return parts[0] if len(parts) == 1 else "".join(parts) or None

    def give_back(self, text: str) -> None:
        """``take_text``'s text, unread: the csv reader's next lines."""
        self._back.append(text)

    def taken(self, lines: int) -> None:
        """``lines`` lines of ``take_text``'s blocks were read as rows."""
        self._line += lines

    def _first_fits(self, text: str) -> bool:
        """The block's first line is no longer than ``cap`` (only the first can be longer)."""
        if len(text) <= self.cap:
            return True
        end = _LINE_BREAK.search(text, 0, self.cap + 2)
        return end is not None and end.start() <= self.cap

    def _blocks(self) -> Iterator[list[str]]:
        while (block := self._next()) is not None:
            if isinstance(block, list):
                lines = block
            else:
                lines = io.StringIO(block, newline="").readlines()
                if self._header_alone:
                    self._header_alone = False
                    if len(lines) > 1:
                        self._back.append(block[len(lines[0]) :])
                        del lines[1:]
                if not self._first_fits(block):
                    lines[0] = self._mark(self._line + 1, "\n")
            self._line += len(lines)
            self.handed += len(lines)
            yield lines

    def _read(self) -> Iterator[str | list[str]]:
        read, cap = self.text.read, self.cap
        size = min(BLOCK_CHARS, cap)
        carry = ""
        data = read(size)
        while data:
            buf = carry + data if carry else data
            cut = _after_last_break(buf)
            carry = buf[cut:]
            if cut:
                self.chars += cut
                yield buf[:cut]
            if len(carry) - carry.endswith("\r") > cap:  # a final CR is a line break
                rest = _past_line_break(read, size, carry)
                if rest is None:
                    yield [self._mark(self._line + 1, "")]
                    return
                yield [self._mark(self._line + 1, "\n")]
                carry, data = "", rest or read(size)
                continue
            data = read(size)
        if carry:
            self.chars += len(carry)
            yield carry

    def _mark(self, line: int, end: str) -> str:
        self.marks.append(line)
        return OVERLONG + end


_LINE_BREAK = re.compile("[\r\n]")


def _after_last_break(buf: str) -> int:
    """Where the text after the last complete line break starts (0: no break). A CR at the
    very end may be the first half of a CRLF, so it waits for the next block."""
    lf = buf.rfind("\n")
    cr = buf.rfind("\r", 0, len(buf) - 1)
    return max(lf, cr) + 1


def _past_line_break(read: Callable[[int], str], size: int, start: str) -> str | None:
    """Read past the end of the line that ``start`` begins (``start`` holds no line break but
    perhaps a final CR): the text after its line break, or None when the text ends first."""
    cr = start.endswith("\r")
    while data := read(size):
        if cr:
            return data[1:] if data[0] == "\n" else data
        lf, i = data.find("\n"), data.find("\r")
        if lf >= 0 and (i < 0 or lf < i):
            return data[lf + 1 :]
        if i < 0:
            continue
        if i == len(data) - 1:
            cr = True
            continue
        return data[i + 2 :] if data[i + 1] == "\n" else data[i + 1 :]
    return "" if cr else None


#: what reading the text may raise: the engine names the line it stopped at
UNREADABLE = (OSError, EOFError, UnicodeError, DataError, TransientError)


def csv_reader(lines: Iterable[str], config: Config) -> Any:
    """The csv reader of the configured dialect over ``lines``."""
    return csv.reader(
        lines, delimiter=config.csv.delimiter, quotechar=config.csv.quotechar, strict=True
    )


class CsvSource:
    """The header and the row iterator of one file.

    ``rows`` is the csv reader itself so the engine's loop pays for nothing in between;
    ``rows.line_num`` is the number of physical lines read so far; ``guard.marks`` the lines
    that were too long to read (each became a row holding ``OVERLONG``).
    """

    def __init__(
        self,
        text: IO[str],
        config: Config,
        name: str,
        decode_errors_before: int = 0,
        *,
        header: list[str] | None = None,
        line_base: int = 0,
    ):
        """``header``: the file's, read by an earlier segment (this one starts after it, with
        ``line_base`` lines before it: ``guard.marks`` count from there too)."""
        self.name = name
        self.config = config
        self._decode_errors_before = decode_errors_before
        self.text = text
        self.guard = LineGuard(text, max_line_chars(config), header_alone=header is None)
        self.guard._line = line_base
        csv.field_size_limit(config.csv.max_field_size)
        self.rows: Any = csv_reader(self.guard.lines, config)
        self.header = header if header is not None else self._read_header()
        self.header_lines = self.rows.line_num

    def _read_header(self) -> list[str]:
        try:
            for row in self.rows:
                if row:
                    if DecodeErrors.count != self._decode_errors_before and any(
                        SURROGATE.search(c) for c in row
                    ):
                        raise DataError(
                            _undecodable_header(row[0], self.config), file=self.name, line=1
                        )
                    if self.guard.marks and any(OVERLONG in c for c in row):
                        raise DataError(
                            "the header cannot be read: " + overlong_reason(self.config),
                            file=self.name,
                            line=self.rows.line_num,
                        )
                    row[0] = row[0].removeprefix("\ufeff")  # kept by utf-8, utf-16-le, ...
                    if any("\x00" in c for c in row):
                        raise DataError(_nul_header(row[0]), file=self.name, line=1)
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


def _nul_header(first: str) -> str:
    # ASCII in UTF-16 is a NUL after each character (little-endian) or before it (big-endian)
    order = "be" if first.startswith("\x00") else "le"
    return (
        "the header holds NUL bytes: the file is binary, or UTF-16 without a byte-order mark "
        f"(then set csv.encoding: utf-16-{order})"
    )


def encoding_name(config: Config) -> str:
    """The codec as messages name it: UTF-8 for the default, else the setting itself."""
    encoding = config.csv.encoding
    if codecs.lookup(encoding).name in ("utf-8", "utf-8-sig"):
        return "UTF-8"
    return f"{encoding} (csv.encoding)"


def undecodable_reason(config: Config) -> str:
    return f"bytes that are not valid {encoding_name(config)}"


def _undecodable_header(first: str, config: Config) -> str:
    """Why the header cannot be decoded, and, reading UTF-8, the setting that reads the file."""
    why = f"the header is not valid {encoding_name(config)}"
    if encoding_name(config) != "UTF-8":
        return why + ": check csv.encoding"
    if first.startswith(("\udcff\udcfe\x00\x00", "\x00\x00\udcfe\udcff")):
        return why + ": the file starts with a UTF-32 byte-order mark: set csv.encoding: utf-32"
    if first.startswith(("\udcff\udcfe", "\udcfe\udcff")):
        return why + ": the file starts with a UTF-16 byte-order mark: set csv.encoding: utf-16"
    return why + ": if the file is Windows-1252 or Latin-1, set csv.encoding: cp1252 (or latin-1)"


#: delimiters a header of one column may really be split by, in the order a tie is settled
DELIMITERS = (",", ";", "\t", "|")


def _delimiter_hint(header: list[str], config: Config, fields: list[str]) -> str | None:
    """For a header read as one column that another delimiter would split: which one."""
    if len(header) != 1:
        return None
    best, best_score = None, (0, 0)
    for d in DELIMITERS:
        if d == config.csv.delimiter or d not in header[0]:
            continue
        parts = [p.strip() for p in header[0].split(d)]
        score = (sum(p in fields for p in parts), len(parts))
        if score > best_score:
            best, best_score = d, score
    if best is None:
        return None
    shown = printable(header[0] if len(header[0]) <= 60 else header[0][:57] + "...")
    setting = '"\\t"' if best == "\t" else repr(best)  # YAML reads '\t' as two characters
    return (
        f"one column {shown!r}, split by {best!r} not {config.csv.delimiter!r}: "
        f"set csv.delimiter: {setting}"
    )


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
    hint = _delimiter_hint(header, config, fields) if problems else None
    if hint is not None:
        problems = [hint]
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


def printable(text: str) -> str:
    """Text fit for a report: each undecodable byte (a lone surrogate) as a ``\\xNN`` escape,
    the text around it as it was decoded."""
    return LONE.sub(_escaped, text)


def _escaped(match: re.Match[str]) -> str:
    c = ord(match[0])
    return f"\\x{c - 0xDC00:02x}" if 0xDC00 <= c <= 0xDCFF else f"\\u{c:04x}"


def line_breaks(row: list[str]) -> int:
    """How many physical lines a row's quoted fields span beyond its first."""
    n = 0
    for cell in row:
        if "\n" in cell or "\r" in cell:
            n += cell.count("\n") + cell.count("\r") - cell.count("\r\n")
    return n
