"""Row boundaries in a byte stream, found by counting quote bytes instead of parsing.

A pass over a big file runs in segments: byte ranges of the uncompressed file that start and
end between rows, so that each can be read on its own and a stopped pass can go on from the
last boundary it reached. In RFC 4180 CSV every quoted field holds an even number of quote
characters (the opening one, the closing one and doubled ones), so a line feed after an even
number of quotes since a row boundary lies outside quotes: it ends a row. ``Cutter`` stops
there when asked, at the cost of ``bytes.count`` and ``bytes.find`` per block.

A stray quote in an unquoted field (``5" screen``) flips the parity and can put a cut inside a
quoted field. The strict csv reader then meets the end of the segment inside quotes and raises
"unexpected end of data": a wrong cut is caught, never read as rows.

Counting bytes tells where characters are only when a line feed, a carriage return and the
quote character are always those bytes and never part of another character: ``cut_reason``
says when that does not hold for a file's encoding.
"""

from __future__ import annotations

import codecs
import importlib
import io
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import Config

#: bytes read at a time by ``plan``
BLOCK = 1 << 16
LF, CR = b"\n", b"\r"
#: codecs in which every byte below 0x80 is the ASCII character it stands for
ASCII_SAFE = frozenset({"utf-8", "utf-8-sig", "ascii", "iso8859-1"})


def cut_reason(config: Config) -> str | None:
    """None when a file read with ``config`` can be cut at row boundaries by counting quote
    bytes (``ord(config.csv.quotechar)`` is then the quote byte); otherwise why not."""
    quote, encoding = config.csv.quotechar, config.csv.encoding
    if len(quote) != 1 or not quote.isascii() or quote in "\r\n":
        return f"csv.quotechar {quote!r} is not one ASCII character other than a line break"
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        return f"csv.encoding {encoding} is not an encoding Python knows"
    if name in ASCII_SAFE:
        return None
    table = _decoding_table(name)
    if table is None:
        return (
            f"csv.encoding {encoding} is not ASCII-compatible: a line break or quote byte "
            "may be part of another character"
        )
    for char in ("\n", "\r", quote):  # each decoded from its own byte, and from no other
        if table.count(char) != 1 or table[ord(char)] != char:
            return f"csv.encoding {encoding} does not map {char!r} to its ASCII byte"
    return None


def _decoding_table(name: str) -> str | None:
    """The 256 characters of a single-byte charmap codec; None for any other codec
    (multi-byte ones are refused: their later bytes may take the values that are counted)."""
    try:
        module = importlib.import_module("encodings." + name.replace("-", "_"))
    except ImportError:
        return None
    table = getattr(module, "decoding_table", None)
    return table if isinstance(table, str) and len(table) == 256 else None


class Cutter(io.RawIOBase):
    """The bytes of ``inner`` unchanged, up to a row boundary once ``want_cut`` asks for one.

    ``inner`` is a binary stream (``read``, or ``readinto``) positioned at a row boundary;
    ``head`` holds bytes already taken from it, handed out first. Before each block,
    ``want_cut(passed)`` is asked whether to cut; once it says yes, the Cutter hands out bytes
    up to and including the first line feed after an even number of quote bytes (counted from
    its start), then reads as at the end of the stream. It never reads ``inner`` after the cut:
    ``rest`` holds the bytes taken from ``inner`` (or ``head``) but not handed out, so a Cutter
    built with ``head=rest`` over the same ``inner`` goes on from the cut.

    Counts of what has been handed out, valid at any time: ``passed`` bytes, ``quotes`` quote
    bytes, ``lines`` line breaks as the csv reader and ``reader.LineGuard`` count them (CR, LF
    and CRLF each end one line; a CRLF across two blocks once); ``cut`` is True once it stopped
    at a cut rather than at the end of ``inner``. Cuts fall only after an LF: a file whose
    lines end with bare CRs is never cut. Closing a Cutter leaves ``inner`` open.
    """

    def __init__(
        self,
        inner: Any,
        *,
        quote: int = 0x22,
        want_cut: Callable[[int], bool] | None = None,
        head: bytes = b"",
        flips: Sequence[int] = (),
    ):
        """``flips``: offsets (from the start) of cuts found wrong before — the csv reader
        met them inside a quoted field, a stray quote somewhere before having fooled the
        count: from each, the count is taken as odd where it says even, and the other way
        round; before the last, where the stray quote may be, no cut is made."""
        self._inner = inner
        self._flips = sorted(flips)
        self._quote = bytes([quote])
        self._want_cut = want_cut
        self.rest = bytes(head)
        self.passed = self.quotes = self.lines = 0
        self.cut = False
        self._cutting = self._done = False
        self._after_cr = False  # the last byte handed out was a CR

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        if self._done:
            return 0
        if not self._cutting and self._want_cut is not None and self._want_cut(self.passed):
            self._cutting = True
        view = memoryview(buf).cast("B")
        if not view:
            return 0
        data = self._take(len(view))
        if not data:
            self._done = True
            return 0
        quotes = data.count(self._quote)
        if self._cutting:
            end = self._cut_at(data, quotes)
            if end is not None:
                self.rest = data[end:] + self.rest
                data = data[:end]
                quotes = data.count(self._quote)
                self.cut = self._done = True
        n = len(data)
        view[:n] = data
        self.passed += n
        self.quotes += quotes
        crs = data.count(CR)
        self.lines += data.count(LF) + crs - (data.count(b"\r\n") if crs else 0)
        if self._after_cr and data[0] == 0x0A:  # the LF of a CRLF already counted
            self.lines -= 1
        self._after_cr = data[-1] == 0x0D
        return n

    def _take(self, size: int) -> bytes:
        if self.rest:
            data, self.rest = self.rest[:size], self.rest[size:]
            return data
        read = getattr(self._inner, "read", None)
        if read is not None:
            return read(size) or b""
        scratch = bytearray(size)
        return bytes(scratch[: self._inner.readinto(scratch) or 0])

    def _cut_at(self, data: bytes, quotes: int) -> int | None:
        """Where the bytes after the first even-parity LF of ``data`` start, if it has one."""
        odd = self.quotes % 2
        flips = self._flips
        if odd and not quotes and not flips:  # still inside one quoted field for the whole block
            return None
        start = 0
        while (lf := data.find(LF, start)) >= 0:
            odd ^= data.count(self._quote, start, lf) % 2
            at = self.passed + lf + 1
            if not (odd + sum(1 for f in flips if f <= at)) % 2 and (not flips or at > flips[-1]):
                return lf + 1
            start = lf + 1
        return None


def plan(stream: Any, every: int, *, quote: int = 0x22) -> list[tuple[int, int]]:
    """The row boundaries about every ``every`` bytes of ``stream`` (read once, from byte 0 of
    the uncompressed file, header included): ``(offset, line)`` for the first even-parity LF at
    or after each multiple of ``every``, ``offset`` just after that LF and ``line`` the number
    of physical lines before it. Neither the start nor the end of the file is listed."""
    if every < 1:
        raise ValueError("every must be at least 1")
    cuts: list[tuple[int, int]] = []
    offset = line = 0
    rest = b""
    buf = memoryview(bytearray(BLOCK))
    while True:
        # bytes from here to the next multiple (one the last cut's LF lies just before counts)
        target = (-(-offset // every) * every or every) - offset
        cutter = Cutter(stream, quote=quote, want_cut=_reached(target), head=rest)
        # blocks end at the multiple, so the cut's LF is searched from there on
        while cutter.readinto(buf[: min(BLOCK, max(target - cutter.passed, 0) or BLOCK)]):
            pass
        offset += cutter.passed
        line += cutter.lines
        if not cutter.cut:
            break
        cuts.append((offset, line))
        rest = cutter.rest
    if cuts and cuts[-1][0] == offset:  # the last cut fell on the end of the file
        cuts.pop()
    return cuts


def _reached(target: int) -> Callable[[int], bool]:
    return lambda passed: passed >= target
