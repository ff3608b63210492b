"""Files in other encodings than UTF-8: the engine reads them with ``csv.encoding`` and reports
what it cannot decode (line, column, the bytes as they are in the file); `init --from` finds
the encoding from the bytes; a header read as one column says which delimiter splits it."""

from __future__ import annotations

import gzip
import io
from pathlib import Path
from typing import Any

import pytest

import batchdrop.infer_encoding as infer_encoding
import batchdrop.infer_read as infer_read
from batchdrop.config import parse_config
from batchdrop.errors import DataError
from batchdrop.infer_read import Sample, open_sample
from batchdrop.passes import scan_file
from batchdrop.ports import FileRef
from batchdrop.report import Receipt, RejectedRowsReport

from .configs import TWO_FIELDS

LE, BE = b"\xff\xfe", b"\xfe\xff"


class Store:
    def __init__(self, data: bytes):
        self.data = data

    def open(self, ref: FileRef) -> io.BytesIO:
        return io.BytesIO(self.data)


class Load:
    def __init__(self) -> None:
        self.rows: list[tuple[Any, ...]] = []
        self.lines: list[int] = []

    def write(self, rows: list[tuple[Any, ...]], lines: list[int]) -> list[tuple[int, Any]]:
        self.rows += rows
        self.lines += lines
        return []

    def finish(self) -> list[tuple[int, Any]]:
        return []


def load(data: bytes, **settings: Any) -> tuple[Load, list[dict[str, Any]]]:
    """Rows written and the receipt's errors, for ``data`` read with ``settings`` (skip_rows)."""
    config = parse_config({**TWO_FIELDS, "on_error": "skip_rows", **settings}, environ={})
    ref = FileRef("f.csv", len(data), "v1", 0.0, "/in/f.csv")
    receipt = Receipt("f.csv", ref.url, "v1", ref.size)
    report = RejectedRowsReport("f.csv")
    written = Load()
    try:
        scan_file(config, Store(data), ref, receipt, report, load=written)  # type: ignore[arg-type]
    finally:
        report.discard()
    return written, receipt.errors


def utf16(text: str, order: str = "le") -> bytes:
    return (LE if order == "le" else BE) + text.encode(f"utf-16-{order}")


# --- the engine -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "encoding"),
    [
        ("a,b\nk1,Zoë\nk2,“quoted” 5 €\n".encode("cp1252"), "cp1252"),
        ("a,b\nk1,Zoë\nk2,naïve ½\n".encode("latin-1"), "latin-1"),
        (utf16("a,b\nk1,Zoë\nk2,“quoted” 5 €\n"), "utf-16"),
        (utf16("a,b\nk1,Zoë\nk2,“quoted” 5 €\n", "be"), "utf-16"),
        (gzip.compress(utf16("a,b\nk1,Zoë\nk2,“quoted” 5 €\n")), "utf-16"),
        ("a,b\r\nk1,Zoë\r\nk2,𝄞 clef\r\n".encode("utf-32"), "utf-32"),
    ],
    ids=["cp1252", "latin-1", "utf-16-le", "utf-16-be", "utf-16-gzip", "utf-32"],
)
def test_a_file_in_its_encoding_loads_its_text(data: bytes, encoding: str) -> None:
    written, errors = load(data, csv={"encoding": encoding})
    assert errors == []
    assert written.rows[0] == ("k1", "Zoë")
    assert written.rows[1][1] in ("“quoted” 5 €", "naïve ½", "𝄞 clef")


def test_undecodable_bytes_under_a_single_byte_codec_are_a_row_error_showing_them() -> None:
    """0x81 means nothing in Windows-1252: the row is rejected naming line and column, the
    value shown as the file holds it (é decoded, the byte escaped)."""
    data = b'a,b\nk1,ok\nk2,"two\nlines"\nk3,Caf\xe9\x81\nk4,\x80 5\n'
    written, errors = load(data, csv={"encoding": "cp1252"})
    assert written.rows == [("k1", "ok"), ("k2", "two\nlines"), ("k4", "€ 5")]
    assert written.lines == [2, 3, 6]
    assert errors == [
        {
            "line": 5,
            "column": "b",
            "value": "Café\\x81",
            "reason": "bytes that are not valid cp1252 (csv.encoding)",
        }
    ]


def test_undecodable_bytes_under_utf16_are_a_row_error_showing_the_bytes() -> None:
    """A lone surrogate (b"\\x00\\xd8") in a field after a quoted field of two lines, and an odd
    byte at the end: line numbers count decoded lines, and the bytes shown are the file's own,
    those below 0x80 too."""
    text = 'a,b\nk1,"two\nlines"\nk2,' + "\ufffd" + "x\nk3,v\n"
    data = utf16(text).replace("\ufffd".encode("utf-16-le"), b"\x00\xd8") + b"A"
    written, errors = load(data, csv={"encoding": "utf-16"})
    assert written.rows == [("k1", "two\nlines"), ("k3", "v")]
    assert written.lines == [2, 5]
    assert errors == [
        {
            "line": 4,
            "column": "b",
            "value": "\\x00\\xd8x",
            "reason": "bytes that are not valid utf-16 (csv.encoding)",
        },
        {"line": 6, "column": "", "value": "\\x41", "reason": "expected 2 fields, found 1"},
    ]


def test_the_line_cap_counts_characters_of_a_utf16_file() -> None:
    """A line over 8 × max_field_size characters is cut out in UTF-16 as in UTF-8, and the
    lines after it keep their numbers."""
    long = "x" * (8 * 1024 + 1)
    data = utf16(f"a,b\nk1,v\nk2,{long}\nk3,w\n")
    written, errors = load(data, csv={"encoding": "utf-16", "max_field_size": 1024})
    assert written.rows == [("k1", "v"), ("k3", "w")]
    assert written.lines == [2, 4]
    assert [(e["line"], e["reason"]) for e in errors] == [
        (3, "the line is longer than 8,192 characters (8 × csv.max_field_size)")
    ]


@pytest.mark.parametrize(
    ("data", "encoding"),
    [
        ("\ufeffa,b\nk1,v\n".encode("utf-16-le"), "utf-16-le"),
        ("\ufeffa,b\nk1,v\n".encode("utf-8"), "utf-8"),
    ],
)
def test_a_byte_order_mark_the_codec_keeps_is_not_part_of_the_header(
    data: bytes, encoding: str
) -> None:
    written, errors = load(data, csv={"encoding": encoding})
    assert written.rows == [("k1", "v")] and errors == []


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (utf16("a,b\nk1,v\n"), "set csv.encoding: utf-16"),
        (utf16("a,b\nk1,v\n", "be"), "set csv.encoding: utf-16"),
        ("a,b\nk1,v\n".encode("utf-32"), "set csv.encoding: utf-32"),
        ("a,bé\nk1,v\n".encode("cp1252"), "set csv.encoding: cp1252 (or latin-1)"),
        (
            "a,b\nk1,v\n".encode("utf-16-le"),
            "without a byte-order mark (then set csv.encoding: utf-16-le)",
        ),
        (
            "a,b\nk1,v\n".encode("utf-16-be"),
            "without a byte-order mark (then set csv.encoding: utf-16-be)",
        ),
    ],
    ids=["utf-16-le", "utf-16-be", "utf-32", "cp1252", "le-no-bom", "be-no-bom"],
)
def test_a_header_in_another_encoding_says_which_setting_reads_it(data: bytes, says: str) -> None:
    with pytest.raises(DataError, match="header") as e:
        load(data)
    assert says in str(e.value) and e.value.line == 1


@pytest.mark.parametrize(
    ("text", "settings", "says"),
    [
        ("a;b\nk1;v\n", {}, "set csv.delimiter: ';'"),
        ("a\tb\nk1\tv\n", {}, 'set csv.delimiter: "\\t"'),  # YAML's tab
        ("a|b\nk1|v\n", {"extra_columns": "ignore"}, "set csv.delimiter: '|'"),
        ("a,b\nk1,v\n", {"csv": {"delimiter": ";"}}, "set csv.delimiter: ','"),
    ],
    ids=["semicolon", "tab", "pipe", "comma"],
)
def test_a_header_of_one_column_says_which_delimiter_splits_it(
    text: str, settings: dict[str, Any], says: str
) -> None:
    with pytest.raises(DataError, match="bad header") as e:
        load(text.encode(), **settings)
    assert says in str(e.value)
    assert "extra_columns" not in str(e.value) and "missing column" not in str(e.value)


# --- init --from --------------------------------------------------------------------------------


def sample(tmp_path: Path, data: bytes, name: str = "s.csv") -> tuple[Sample, list[list[str]]]:
    path = tmp_path / name
    path.write_bytes(data)
    found = open_sample(path)
    return found, [row for chunk in found.chunks for row in chunk]


TEXT = "id;name;note\n1;Zoë;“quoted” – 5 €\n2;Jürgen;plain\n"


@pytest.mark.parametrize(
    ("data", "encoding", "note"),
    [
        (utf16(TEXT), "utf-16", "the file is UTF-16 (it starts with a byte-order mark)"),
        (utf16(TEXT, "be"), "utf-16", "the file is UTF-16 (it starts with a byte-order mark)"),
        (gzip.compress(utf16(TEXT)), "utf-16", "the file is UTF-16"),
        (TEXT.encode("utf-32"), "utf-32", "the file is UTF-32 (it starts with a byte-order mark)"),
        (TEXT.encode("utf-16-le"), "utf-16-le", "UTF-16 (little-endian) without a byte-order"),
        (TEXT.encode("utf-16-be"), "utf-16-be", "UTF-16 (big-endian) without a byte-order"),
        (TEXT.encode("cp1252"), "cp1252", "the file is not UTF-8 (byte 0xeb on line 2 is not)"),
        ("\ufeff" + TEXT, "utf-8-sig", None),
    ],
    ids=[
        "utf-16-le",
        "utf-16-be",
        "utf-16-gzip",
        "utf-32",
        "le-no-bom",
        "be-no-bom",
        "cp1252",
        "utf-8",
    ],
)
def test_init_finds_the_encoding_and_reads_the_sample_with_it(
    tmp_path: Path, data: bytes | str, encoding: str, note: str | None
) -> None:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    found, rows = sample(tmp_path, raw)
    assert found.encoding == encoding
    assert (found.delimiter, found.header) == (";", ["id", "name", "note"])
    assert rows == [["1", "Zoë", "“quoted” – 5 €"], ["2", "Jürgen", "plain"]]
    assert found.bad_bytes == 0
    if note is None:
        assert found.notes == []
    else:
        assert len(found.notes) == 1 and note in found.notes[0]
        assert f"csv.encoding: {encoding}" in found.notes[0]


def test_init_reads_latin1_when_a_byte_is_undefined_in_windows_1252(tmp_path: Path) -> None:
    found, rows = sample(tmp_path, "id,name\n1,Zoë\n2,\x81 ctrl\n".encode("latin-1"))
    assert found.encoding == "latin-1"
    assert rows == [["1", "Zoë"], ["2", "\x81 ctrl"]]
    assert "it is read as Latin-1, csv.encoding: latin-1" in found.notes[0]


def test_init_keeps_utf8_for_a_utf8_file_with_a_few_stray_bytes(tmp_path: Path) -> None:
    """Many characters beyond ASCII decode as UTF-8 and one byte does not: the file is UTF-8,
    and the stray byte is reported with its line, as before."""
    text = "id,name\n" + "".join(f"{n},Zoë Jürgen\n" for n in range(50))
    found, rows = sample(tmp_path, text.encode() + b"50,caf\xe9\n")
    assert found.encoding == "utf-8-sig" and found.notes == []
    assert (found.bad_bytes, found.first_bad_bytes_line) == (1, 52)
    assert rows[0] == ["0", "Zoë Jürgen"]


def test_init_still_refuses_a_binary_file(tmp_path: Path) -> None:
    path = tmp_path / "blob.csv"
    path.write_bytes(b"\x00" * 4000 + b"\x01\x02")
    with pytest.raises(DataError, match="NUL bytes and starts with no byte-order mark: it is"):
        open_sample(path)


@pytest.mark.parametrize("order", ["le", "be"])
def test_init_samples_slices_of_a_big_utf16_file_on_character_boundaries(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, order: str
) -> None:
    """Slices start at odd offsets too; each is cut at an encoded line break on a character
    boundary and decoded in the file's byte order, so every row read is a row of the file."""
    monkeypatch.setattr(infer_read, "WHOLE_FILE_BYTES", 4000)
    monkeypatch.setattr(infer_read, "HEAD_BYTES", 1001)
    monkeypatch.setattr(infer_read, "SLICE_BYTES", 777)
    lines = [f"{n},Zoë {'ਊ' * (n % 5)},{n * 3}" for n in range(2000)]  # U+0A0A: bytes 0A 0A
    found, rows = sample(tmp_path, utf16("id,name,x\n" + "\n".join(lines) + "\n", order))
    assert found.encoding == "utf-16" and not found.whole
    assert len(rows) > 200
    assert {",".join(r) for r in rows} <= set(lines)
    assert int(rows[-1][0]) > 1900  # the last slices were read


def test_init_looks_for_undefined_bytes_after_the_verdict_is_in(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Past SETTLED refused bytes the rest is not decoded as UTF-8, but a byte Windows-1252
    leaves undefined, far down the file, still makes it Latin-1."""
    monkeypatch.setattr(infer_encoding, "BLOCK", 64)
    monkeypatch.setattr(infer_encoding, "SETTLED", 10)
    text = "id,name\n" + "".join(f"{n},Zoé\n" for n in range(300)) + "300,\x8d\n"
    found, rows = sample(tmp_path, text.encode("latin-1"))
    assert found.encoding == "latin-1"
    assert rows[-1] == ["300", "\x8d"] and len(rows) == 301
