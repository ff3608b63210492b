"""rawkeys.RawKeys: whatever block of lines it answers for, its keys are the csv reader's.

The pattern must accept only text the csv reader reads as one row per line, and capture each key
field's value as the csv reader gives it. CSV written every way ``csv.writer`` writes it (every
quoting, LF and CRLF), with every character the grammar cares about in the fields, then mutated
(a character dropped, a quote, a delimiter, a CR or a LF put in at random), is read both ways.
"""

from __future__ import annotations

import csv
import io
from operator import itemgetter

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from batchdrop.rawkeys import ROWS, RawKeys

ALPHABET = ["a", "b", " ", ",", ";", '"', "'", "\r", "\n", "\x00", "é", "\t", "\u2028", "\x85"]
QUOTING = [csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONNUMERIC]


def csv_keys(text: str, key_columns: list[int], delimiter: str = ",") -> list[object] | None:
    """What the csv reader says: the keys of ``text`` when it is one row per physical line
    (as the engine splits lines), else None."""
    lines = io.StringIO(text, newline="").readlines()
    try:
        rows = list(csv.reader(lines, delimiter=delimiter, strict=True))
    except csv.Error:
        return None
    if len(rows) != len(lines):
        return None
    pick = itemgetter(*key_columns)
    return [pick(row) for row in rows]


def write(rows: list[list[str]], quoting: int, ending: str, delimiter: str = ",") -> str:
    out = io.StringIO()
    csv.writer(out, quoting=quoting, lineterminator=ending, delimiter=delimiter).writerows(rows)
    return out.getvalue()


fields = st.text(st.sampled_from(ALPHABET), max_size=6)


@st.composite
def blocks(draw: st.DrawFn) -> tuple[str, int, list[int]]:
    width = draw(st.integers(2, 5))
    rows = draw(st.lists(st.lists(fields, min_size=width, max_size=width), min_size=1, max_size=8))
    text = write(rows, draw(st.sampled_from(QUOTING)), draw(st.sampled_from(["\n", "\r\n"])))
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(text)))
        if draw(st.booleans()):
            text = text[:at] + text[at + 1 :]
        else:
            text = text[:at] + draw(st.sampled_from(['"', ",", "\r", "\n", "\r\n", ""])) + text[at:]
    keys = draw(st.lists(st.integers(0, width - 1), min_size=1, max_size=width, unique=True))
    return text, width, keys


MISSING = [(), ("",), ("", "a"), ("b",)]


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(blocks(), st.sampled_from([1024, 3]), st.sampled_from(MISSING))
def test_whatever_it_answers_is_what_the_csv_reader_reads(
    block: tuple[str, int, list[int]], max_field: int, missing: tuple[str, ...]
) -> None:
    text, width, key_columns = block
    raw = RawKeys(width, key_columns, ",", '"', max_field, missing)
    got = raw.keys(text)
    if got is None:
        return
    expected = csv_keys(text, key_columns)
    assert expected is not None, "answered for text the csv reader does not read line by line"
    cells = [c for key in expected for c in (key if isinstance(key, tuple) else (key,))]
    if got is ROWS:  # one row a line, and a key field is missing
        assert set(cells) & set(missing)
    else:
        assert got == expected
        assert not set(cells) & set(missing)
    assert _longest_field(text) <= max_field  # the csv reader's limit


def _longest_field(text: str) -> int:
    rows = csv.reader(io.StringIO(text, newline=""), strict=True)
    return max((len(f) for row in rows for f in row), default=0)


clean = st.text(st.sampled_from(["a", "b", " ", "é", "x", "1"]), max_size=8)


@settings(max_examples=500, deadline=None)
@given(
    st.integers(2, 6).flatmap(
        lambda w: st.tuples(
            st.just(w),
            st.lists(st.lists(clean, min_size=w, max_size=w), min_size=1, max_size=30),
            st.lists(st.integers(0, w - 1), min_size=1, max_size=w, unique=True),
        )
    ),
    st.sampled_from(QUOTING),
    st.sampled_from(["\n", "\r\n"]),
    st.sampled_from([",", ";", "\t", "|"]),
)
def test_rows_written_by_csv_writer_are_answered(
    shape: tuple[int, list[list[str]], list[int]], quoting: int, ending: str, delimiter: str
) -> None:
    """Rows with no line break, stray quote or doubled quote in a key are read by the pattern,
    in every quoting csv.writer has, whatever the key columns and their order."""
    width, rows, key_columns = shape
    assume(all(any(row) for row in rows))  # csv.writer writes a row of one empty field as ""
    text = write(rows, quoting, ending, delimiter)
    raw = RawKeys(width, key_columns, delimiter, '"', 131072, missing=())
    got = raw.keys(text)
    assert got is not None
    assert got == csv_keys(text, key_columns, delimiter)


def test_a_key_column_quoted_both_ways_is_read_both_ways() -> None:
    raw = RawKeys(2, [0], ",", '"', 131072)
    assert raw.keys("a,1\nb,2\n") == ["a", "b"]
    assert raw.keys('"a,b",1\n"c",2\n') == ["a,b", "c"]  # learnt again: quoted
    assert raw.keys('"a",1\nb,2\n') == ["a", "b"]  # quoted, then not
    assert raw.keys('"a",1\nb,2\n"",3\n,4\n') is ROWS  # and two keys missing
    keep_empty = RawKeys(2, [0], ",", '"', 131072, missing=())
    assert keep_empty.keys('"a",1\nb,2\n"",3\n,4\n') == ["a", "b", "", ""]
    na = RawKeys(2, [0], ",", '"', 131072, missing=("", "NA"))
    assert na.keys("a,1\nNA,2\n") is ROWS
    assert na.keys("a,1\nNAB,2\n") == ["a", "NAB"]
    two = RawKeys(3, [2, 0], ",", '"', 131072)
    assert two.keys('a,x,"c"\n"d",y,e\n') == [("c", "a"), ("e", "d")]
    assert raw.keys('a""b,1\n') is None  # a quote in an unquoted field
    assert raw.keys('"a""b",1\n') is None  # a doubled quote in a key
    assert raw.keys('x,"a""b"\n') == ["x"]  # ... in another field


@pytest.mark.parametrize(
    "text",
    [
        "a,1\nb,2",  # the last line has no line break: it is not read
        "a,1\n\nb,2\n",  # a blank line is no row
        "a,1\rb,2\n",  # a lone CR ends a line
        'a,"1\n2"\n',  # a quoted line break
        "a,1,2\n",  # too wide
        "a\n",  # too narrow
        '"a"x,1\n',  # a character after the closing quote
        "",
    ],
)
def test_text_the_pattern_does_not_read(text: str) -> None:
    assert RawKeys(2, [0], ",", '"', 131072).keys(text) is None


def test_keys_come_in_the_keys_order_not_the_files() -> None:
    raw = RawKeys(3, [2, 0], ",", '"', 131072)
    assert raw.keys('a,b,"c"\nd,e,"f"\n') == [("c", "a"), ("f", "d")]


def test_a_field_over_the_limit_is_left_to_the_csv_reader() -> None:
    raw = RawKeys(2, [0], ",", '"', 1024)
    ok = "k," + "x" * 1024 + "\n"
    assert raw.keys(ok * 2) == ["k", "k"]
    assert raw.keys(ok + "k," + "x" * 1025 + "\n") is None
    assert raw.keys(ok + 'k,"' + "x" * 1025 + '"\n') is None
