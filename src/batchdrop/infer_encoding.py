"""The encoding of a sample, found from its bytes, for ``batchdrop init --from``.

A byte-order mark settles it (UTF-8, UTF-16, UTF-32). Without one, UTF-16 text that is mostly
ASCII shows as a NUL in every other byte; any other file with many NUL bytes is not text. Else
the bytes a load of the sample reads are decoded as UTF-8: a file with no byte UTF-8 refuses is
UTF-8, and so is one whose refused bytes are fewer than the characters beyond ASCII it decodes
(a UTF-8 export with a few stray bytes: those rows are reported, and a load rejects them). The
rest is an 8-bit encoding: Windows-1252, the common one of Windows exports (a superset of
Latin-1's printable characters, with €, curly quotes and dashes), unless a byte that Windows-1252
leaves undefined occurs; then Latin-1, which decodes every byte.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

from .errors import DataError

BOMS = (  # the UTF-32 marks first: b"\xff\xfe\x00\x00" starts with UTF-16's b"\xff\xfe"
    (b"\xff\xfe\x00\x00", "utf-32"),
    (b"\x00\x00\xfe\xff", "utf-32"),
    (b"\xef\xbb\xbf", "utf-8-sig"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
)
CP1252_UNDEFINED = (0x81, 0x8D, 0x8F, 0x90, 0x9D)
BLOCK = 1 << 20
#: refused bytes past which, outnumbering the wide characters, the verdict is in: the rest is
#: only looked at for bytes Windows-1252 leaves undefined (decoding each refused byte is slow)
SETTLED = 1000
ESCAPED = re.compile("[\udc80-\udcff]")  # a byte UTF-8 refuses, under surrogateescape
LABELS = {
    "utf-8": "UTF-8",
    "utf-8-sig": "UTF-8",
    "utf-16": "UTF-16",
    "utf-16-le": "UTF-16",
    "utf-16-be": "UTF-16",
    "utf-32": "UTF-32",
    "utf-32-le": "UTF-32",
    "utf-32-be": "UTF-32",
    "cp1252": "Windows-1252",
    "iso8859-1": "Latin-1",
}


@dataclass
class Found:
    encoding: str  # the value of csv.encoding ("utf-8-sig": the default)
    note: str | None = None  # what to tell the person who runs init


def label(encoding: str) -> str:
    """The encoding as people name it."""
    return LABELS.get(codecs.lookup(encoding).name, encoding)


def detect_encoding(head: bytes, reopen: Callable[[], IO[bytes]], budget: int, name: str) -> Found:
    """The encoding of a file that starts with ``head``; ``reopen`` gives its (uncompressed)
    bytes from the start, of which the first ``budget`` are read, only when it is needed."""
    for bom, encoding in BOMS:
        if head.startswith(bom):
            if encoding == "utf-8-sig":
                return Found(encoding)
            return Found(
                encoding,
                f"the file is {label(encoding)} (it starts with a byte-order mark): "
                f"csv.encoding: {encoding}",
            )
    if head.count(0) > len(head) // 8:
        wide = _utf16_without_bom(head)
        if wide is None:
            raise DataError(
                "the file holds NUL bytes and starts with no byte-order mark: it is binary, "
                "not CSV text",
                file=name,
            )
        order = "little" if wide.endswith("le") else "big"
        return Found(
            wide,
            f"the file is UTF-16 ({order}-endian) without a byte-order mark: csv.encoding: {wide}",
        )
    with reopen() as raw:
        survey = _Utf8Survey(raw, budget)
    if not survey.bad or survey.wide >= survey.bad:
        return Found("utf-8-sig")
    encoding = "latin-1" if survey.undefined else "cp1252"
    return Found(
        encoding,
        f"the file is not UTF-8 (byte 0x{survey.first_byte:02x} on line {survey.first_line} is "
        f"not): it is read as {label(encoding)}, csv.encoding: {encoding}; check that the "
        "accented letters in the values look right",
    )


def _utf16_without_bom(head: bytes) -> str | None:
    """UTF-16 of mostly ASCII text: a NUL in nearly every odd byte (little-endian) or every
    even byte (big-endian), and hardly any in the others."""
    even, odd = head[0::2], head[1::2]
    if not odd:
        return None
    for nuls, others, encoding in ((odd, even, "utf-16-le"), (even, odd, "utf-16-be")):
        if nuls.count(0) >= 0.9 * len(nuls) and others.count(0) <= 0.1 * len(others):
            return encoding
    return None


class _Utf8Survey:
    """The first ``budget`` bytes of ``raw`` decoded as UTF-8: the bytes it refuses (``bad``)
    and the characters beyond ASCII it decodes (``wide``), both counted until the verdict is
    in (SETTLED), where the first refused byte is, and whether a byte Windows-1252 leaves
    undefined occurs."""

    def __init__(self, raw: IO[bytes], budget: int):
        self.bad = self.wide = 0
        self.first_line = self.first_byte = 0
        self.undefined = False
        self._lines = 1
        decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
        left = budget
        while left > 0:
            block = raw.read(min(BLOCK, left))
            if not block:
                self._take(decoder.decode(b"", final=True), b"")
                break
            left -= len(block)
            if self.bad >= SETTLED and self.wide < self.bad:
                self.undefined = self.undefined or any(b in block for b in CP1252_UNDEFINED)
            else:
                self._take(decoder.decode(block), block)

    def _take(self, text: str, block: bytes) -> None:
        if text.isascii():  # the common block: no Python loop, no regular expression
            if not self.bad:
                self._lines += text.count("\n")
            return
        bad = len(ESCAPED.findall(text))
        self.wide += len(text) - len(text.encode("ascii", "ignore")) - bad
        if bad and not self.bad:
            first = ESCAPED.search(text)
            assert first is not None
            self.first_line = self._lines + text.count("\n", 0, first.start())
            self.first_byte = ord(first[0]) - 0xDC00
        elif not self.bad:
            self._lines += text.count("\n")
        self.bad += bad
        self.undefined = self.undefined or any(b in block for b in CP1252_UNDEFINED)


def slice_codec(encoding: str, start: bytes) -> tuple[str, int]:
    """The codec that decodes a slice from the middle of a file in ``encoding`` whose first
    bytes are ``start`` (no byte-order mark there to tell the byte order), and the size of
    the unit a character starts on."""
    name = codecs.lookup(encoding).name
    if name == "utf-16":
        return ("utf-16-be" if start[:2] == b"\xfe\xff" else "utf-16-le"), 2
    if name == "utf-32":
        return ("utf-32-be" if start[:4] == b"\x00\x00\xfe\xff" else "utf-32-le"), 4
    if name.startswith(("utf-16-", "utf-32-")):
        return name, int(name[4:6]) // 8
    return ("utf-8" if name == "utf-8-sig" else encoding), 1
