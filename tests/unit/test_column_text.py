"""The chunk converter's whole-column checks (a column's values joined between newlines, one
regular expression over the text) against the row converter, value for value.

Whatever chunk it is given, the chunk converter may say "some row may not convert" (None) and
leave the rows to the row converter; but when it answers, its rows (``convert``) and its keys
(``keys``, which converts only the key columns) are exactly the row converter's. And on
ordinary valid columns it does answer: a converter that always declined would pass the first
test and fail the second."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchdrop.columns import ChunkConverter
from batchdrop.config import parse_config
from batchdrop.schema import RowConverter

from .configs import TWO_FIELDS

#: values near every edge of the whole-column patterns: signs, 18 and 19 digits, exponents of
#: 9, 10 and 19 digits, non-ASCII digits, a newline or a missing value inside a value, dates that
#: match the pattern but do not exist, ones fromisoformat reads but the schema does not
#: take (basic and week forms), spaces, underscores (which int() itself would take)
TRICKY = [
    "0", "7", "-3", "+12", "007", "1" * 18, "9" * 19, "-" + "9" * 18, "1" * 4301, "", "NA",
    "N/A", " 5", "5 ", "1_000", "٣", "１２", "5\n6", "\n", "NA\n", "1.5", ".5", "5.", "-.5e3",
    "1e999999999", "1e9999999999", "1e9999999999999999999", "1E+5", "e5", "1e",
    "2026-01-02", "2026-02-30", "2026-1-2", "20260102", "2026-W01-1",
    "2026-01-02T08:30:00Z", "2026-01-02 08:30", "2026-01-02T08:30:00.123456+01:00",
    "2026-01-02T25:00:00", "2026-01-02T0830",
    "true", "false", "TRUE", "x", "yy", "a,b", '"q"',
]  # fmt: skip

FIELDS: list[dict[str, Any]] = [
    {"name": "k", "type": "integer"},
    {"name": "s"},
    {"name": "i", "type": "integer"},
    {"name": "r", "type": "integer", "constraints": {"required": True}},
    {"name": "m", "type": "integer", "constraints": {"minimum": 0, "maximum": 10**18}},
    {"name": "n", "type": "number"},
    {"name": "d", "type": "date"},
    {"name": "t", "type": "datetime"},
    {"name": "b", "type": "boolean"},
]


def converters(missing: list[str], sort_key: str | None) -> tuple[RowConverter, ChunkConverter]:
    table: dict[str, Any] = {"url": "sqlite:///t.db", "partition_key": "k"}
    if sort_key is not None:
        table["sort_key"] = sort_key
    config = parse_config(
        {**TWO_FIELDS, "table": table, "schema": {"fields": FIELDS, "missingValues": missing}},
        environ={},
    )
    positions = list(range(len(FIELDS)))
    return (
        RowConverter(config.schema_, positions, config.key),
        ChunkConverter(config.schema_, positions, config.key, len(FIELDS)),
    )


ORDINARY = {
    "k": st.integers(-(10**17), 10**17).map(str),
    "s": st.text("abc ,\"'", min_size=1, max_size=5),
    "i": st.integers(-(10**17), 10**17).map(str),
    "r": st.integers(0, 99).map(str),
    "m": st.integers(0, 10**6).map(str),
    "n": st.sampled_from(["1.5", "-2", ".25", "3e4", "0"]),
    "d": st.dates().map(lambda d: d.isoformat()).filter(lambda d: len(d) == 10),
    "t": st.sampled_from(["2026-01-02T08:30:00Z", "2026-01-02 08:30", "1999-12-31T23:59:59"]),
    "b": st.sampled_from(["true", "false"]),
}


def key_of(row: Any, keyof: list[int]) -> Any:
    """A converted row's key, as the engine takes it (one value, or a tuple of them)."""
    return row[keyof[0]] if len(keyof) == 1 else tuple(row[i] for i in keyof)


MISSING = st.sampled_from([[""], ["", "NA"], [], ["NA"]])
SORT_KEY = st.sampled_from([None, "t", "n", "s"])
TRICK = st.tuples(
    st.integers(0, 5),
    st.integers(0, len(FIELDS) - 1),
    st.one_of(st.sampled_from(TRICKY), st.integers(-(10**20), 10**20).map(str)),
)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    missing=MISSING,
    sort_key=SORT_KEY,
    chunk=st.lists(st.tuples(*ORDINARY.values()).map(list), min_size=1, max_size=6),
    tricks=st.lists(TRICK, max_size=3),
)
def test_what_the_chunk_converter_answers_is_the_row_converter_s_answer(
    missing: list[str],
    sort_key: str | None,
    chunk: list[list[str]],
    tricks: list[tuple[int, int, str]],
) -> None:
    """Valid rows with a few values swapped for ones at the edges of the patterns."""
    for row, column, value in tricks:
        chunk[row % len(chunk)][column] = value
    rows, chunks = converters(missing, sort_key)
    expected = [rows.convert(r) for r in chunk]
    keyof = [rows.names.index(k) for k in (["k"] if sort_key is None else ["k", sort_key])]
    converted = chunks.convert(chunk)
    if converted is not None:
        assert None not in expected
        assert converted == expected
        assert [tuple(map(type, r)) for r in converted] == [
            tuple(map(type, r or ())) for r in expected
        ]
    keys = chunks.keys(chunk)
    if keys is not None:
        assert None not in expected
        assert list(keys) == [key_of(r, keyof) for r in expected]


@settings(max_examples=150, deadline=None)
@given(
    missing=MISSING,
    sort_key=SORT_KEY,
    chunk=st.lists(st.tuples(*ORDINARY.values()).map(list), min_size=1, max_size=20),
    gaps=st.lists(st.booleans(), min_size=len(FIELDS), max_size=len(FIELDS)),
)
def test_ordinary_valid_columns_go_through_whole(
    missing: list[str], sort_key: str | None, chunk: list[list[str]], gaps: list[bool]
) -> None:
    """Valid integers, numbers, dates and times are answered for, missing values among them or
    not (but in the key and in the required column, which may not have any)."""
    rows, chunks = converters(missing, sort_key)
    key = {"k", "r"} | ({sort_key} if sort_key else set())
    if missing:
        for i, (field, gap) in enumerate(zip(FIELDS, gaps, strict=True)):
            if gap and field["name"] not in key:
                chunk[0][i] = missing[-1]
    expected = [rows.convert(r) for r in chunk]
    assert None not in expected
    assert chunks.convert(chunk) == expected
    assert chunks.keys(chunk) is not None


VALID_ROW = ["12", "abc", "-7", "3", "40", "1.5", "2026-01-02", "2026-01-02T08:30:00Z", "true"]


def test_every_edge_value_in_every_column_gets_the_row_converter_s_answer() -> None:
    """Each value of TRICKY in each column of an otherwise valid chunk, under every set of
    missing values and every key: where the chunk converter answers, it answers right; and a
    value the row converter takes never sends the chunk the slow way because of its text."""
    declined = []
    for missing in ([""], ["", "NA"], [], ["NA"]):
        for sort_key in (None, "t", "n", "s"):
            rows, chunks = converters(missing, sort_key)
            keyof = [rows.names.index(k) for k in (["k"] if sort_key is None else ["k", sort_key])]
            for column in range(len(FIELDS)):
                for value in TRICKY:
                    bad = list(VALID_ROW)
                    bad[column] = value
                    chunk = [VALID_ROW, bad, VALID_ROW]
                    expected = [rows.convert(r) for r in chunk]
                    converted, keys = chunks.convert(chunk), chunks.keys(chunk)
                    where = (missing, sort_key, FIELDS[column]["name"], value)
                    if None in expected:
                        assert converted is None and keys is None, where
                        continue
                    assert converted in (None, expected), where
                    pick = [key_of(r, keyof) for r in expected]
                    assert keys is None or list(keys) == pick, where
                    if converted is None or keys is None:
                        declined.append(where)
    # only values the whole-column patterns leave to the row converter's checks: over 18
    # digits, an exponent over 9 digits, or a newline inside a value (which can look like a
    # missing value between two lines)
    left = {w[3] for w in declined if "\n" not in w[3]}
    assert left <= {"9" * 19, "1e9999999999"}, declined[:5]
