"""Characters beyond ASCII never make a value valid by accident.

Python reads many non-ASCII characters as digits, spaces or letters: ``\\d`` matches ``١``
(Arabic-Indic one) and ``１`` (full-width one), ``int()`` and ``Decimal()`` convert them,
``strptime`` reads a year in any script, and case-insensitive matching folds ``K`` (the Kelvin
sign) into ``k``. A partner's file that holds them is almost certainly wrong, so the converters
refuse them, and a pattern matches ASCII classes unless it starts with ``(?u)``.

The exhaustive loops go over every such character Unicode has; the hypothesis properties say,
for every type and format, that a value the converter accepts is ASCII.
"""

from __future__ import annotations

import re
import unicodedata
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batchdrop.config import TableSchema, parse_config
from batchdrop.errors import ConfigError
from batchdrop.patterns import compile_pattern
from batchdrop.schema import RowConverter, parse_value

NON_ASCII = range(0x80, 0x110000)
#: every decimal digit that is not 0-9: Arabic-Indic, full-width, Devanagari, math bold… (650)
DIGITS = [chr(c) for c in NON_ASCII if unicodedata.category(chr(c)) == "Nd"]
#: every whitespace character that is not ASCII: no-break space, ideographic space…
SPACES = [chr(c) for c in NON_ASCII if chr(c).isspace()]
#: every character that Unicode case-insensitive matching takes for an ASCII letter
FOLDS = [chr(c) for c in NON_ASCII if re.fullmatch("(?i)[a-z]", chr(c))]


def converter(field: dict[str, Any]) -> RowConverter:
    schema = TableSchema.model_validate({"fields": [{"name": "f", **field}]})
    return RowConverter(schema, [0], ())


def refused(conv: RowConverter, text: str) -> bool:
    """The fast path refuses ``text`` and the explanation names the field."""
    return conv.convert([text]) is None and [p[0] for p in conv.explain([text])] == ["f"]


def test_the_character_sets_are_what_they_claim() -> None:
    assert "١" in DIGITS and "１" in DIGITS and "٣" in DIGITS and len(DIGITS) > 600
    assert "\u00a0" in SPACES and "\u3000" in SPACES
    assert set(FOLDS) >= {"\u212a", "\u017f"}  # the Kelvin sign, the long s


# --- patterns ---------------------------------------------------------------------------


def test_the_pattern_of_the_partner_file_refuses_arabic_indic_digits() -> None:
    conv = converter({"constraints": {"pattern": r"^A\d{5}$"}})
    assert conv.convert(["A12345"]) == ("A12345",)
    assert conv.convert(["A١٢٣٤٥"]) is None
    assert conv.explain(["A١٢٣٤٥"]) == [("f", "A١٢٣٤٥", r"does not match the pattern ^A\d{5}$")]


@pytest.mark.parametrize(
    ("pattern", "opt_in", "shape", "foreign"),
    [
        (r"A\d{5}", r"(?u)A\d{5}", "A{}1234", DIGITS),
        (r"\w+", r"(?u)\w+", "ab{}c", DIGITS),
        (r"A\sB", r"(?u)A\sB", "A{}B", SPACES),
        (r"(?i)[a-z]+", r"(?iu)[a-z]+", "ab{}", FOLDS),
    ],
)
def test_patterns_match_ascii_classes_unless_they_ask_for_unicode(
    pattern: str, opt_in: str, shape: str, foreign: list[str]
) -> None:
    plain, unicode = (
        converter({"constraints": {"pattern": pattern}}),
        converter({"constraints": {"pattern": opt_in}}),
    )
    assert plain.convert([shape.format("7" if "d" in pattern else " " if "s" in pattern else "k")])
    for ch in foreign:
        assert refused(plain, shape.format(ch)), (pattern, unicodedata.name(ch, "?"))
        assert unicode.convert([shape.format(ch)]) is not None, (opt_in, ch)


def test_a_word_boundary_is_between_ascii_word_characters() -> None:
    # in Unicode '١' is a word character, so there is no boundary between 'x' and it
    assert converter({"constraints": {"pattern": r"x\b.+"}}).convert(["x١"]) == ("x١",)
    assert converter({"constraints": {"pattern": r"(?u)x\b.+"}}).convert(["x١"]) is None


@pytest.mark.parametrize("pattern", [r"(?u)\d+", r"(?iu)\d+", r"(?ui)\d+", r"(?i)(?u)\d+"])
def test_the_unicode_opt_in_is_python_s_own_inline_flag(pattern: str) -> None:
    compiled = compile_pattern(pattern)
    assert compiled.pattern == pattern  # used as written
    assert compiled.fullmatch("١٢٣") and not compile_pattern(r"\d+").fullmatch("١٢٣")
    assert converter({"constraints": {"pattern": pattern}}).convert(["١٢٣"]) == ("١٢٣",)


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("(?a)(?u)x", "ASCII and UNICODE flags are incompatible"),
        ("A[0-9", "unterminated character set"),
        ("(?L)x", "bad inline flags: cannot use 'L' flag"),
    ],
)
def test_a_bad_pattern_is_a_config_error_at_load(pattern: str, reason: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"not a valid regular expression: {reason}")):
        compile_pattern(pattern)
    data = {
        "inbound": "i",
        "archive": "a",
        "errors": "e",
        "table": {"url": "sqlite:///t.db", "partition_key": "k"},
        "schema": {"fields": [{"name": "k", "constraints": {"pattern": pattern}}]},
    }
    with pytest.raises(ConfigError, match="pattern"):
        parse_config(data, environ={})


def test_a_unicode_pattern_passes_the_config_check() -> None:
    data = {
        "inbound": "i",
        "archive": "a",
        "errors": "e",
        "table": {"url": "sqlite:///t.db", "partition_key": "k"},
        "schema": {"fields": [{"name": "k", "constraints": {"pattern": r"(?u)^A\d{5}$"}}]},
    }
    config = parse_config(data, environ={})
    conv = RowConverter(config.schema_, [0], ("k",))
    assert conv.convert(["A١٢٣٤٥"]) == ("A١٢٣٤٥",)


# --- the typed converters: every non-ASCII digit and space --------------------------------

TYPED = [
    ({"type": "integer"}, ["{}", "1{}", "{}1", "-1{}"]),
    ({"type": "number"}, ["{}", "1.{}", "{}.5", "1e{}"]),
    ({"type": "date"}, ["2026-01-1{}", "{}026-01-11"]),
    ({"type": "datetime"}, ["2026-01-11T0{}:30", "2026-01-11T08:30:0{}"]),
    ({"type": "date", "format": "%Y-%m-%d"}, ["202{}-01-11", "{}026-01-11"]),
    ({"type": "date", "format": "%d/%m/%y"}, ["11/03/2{}"]),
    ({"type": "datetime", "format": "%d/%m/%Y %H:%M"}, ["11/03/2026 0{}:30", "11/03/2026 08:{}"]),
    ({"type": "date", "format": "%Y年%m月%d日"}, ["202{}年01月11日"]),
]


@pytest.mark.parametrize(("field", "shapes"), TYPED, ids=lambda v: str(v))
def test_no_foreign_digit_makes_a_typed_value(field: dict[str, Any], shapes: list[str]) -> None:
    conv = converter(field)
    for shape in shapes:
        assert conv.convert([shape.format("1")]) is not None, shape  # the shape is valid
        for ch in DIGITS:
            assert refused(conv, shape.format(ch)), (shape, ch, unicodedata.name(ch, "?"))


@pytest.mark.parametrize(
    ("field", "shape"),
    [
        ({"type": "date", "format": "%d %b %Y"}, "01{}Sep 2026"),
        ({"type": "datetime", "format": "%Y-%m-%d %H:%M"}, "2026-01-11{}08:30"),
        ({"type": "date", "format": "%Y年 %m月%d日"}, "2026年{}01月11日"),
    ],
)
def test_no_foreign_space_fits_a_space_of_a_date_format(field: dict[str, Any], shape: str) -> None:
    conv = converter(field)
    assert conv.convert([shape.format(" ")]) is not None
    for ch in SPACES:
        assert refused(conv, shape.format(ch)), (shape, unicodedata.name(ch, "?"))


@pytest.mark.parametrize(
    ("field", "text"),
    [
        ({"type": "integer"}, "1_000"),
        ({"type": "integer"}, "１２３"),
        ({"type": "integer"}, "9" * 5000),  # more digits than int() converts
        ({"type": "number"}, "1_000.5"),
        ({"type": "number"}, "nan"),
        ({"type": "number"}, "-Infinity"),
        ({"type": "number"}, "sNaN"),
        ({"type": "number"}, "１.５"),
        ({"type": "date"}, "２０２６-０１-１１"),
        ({"type": "date"}, "2026-W01-1"),  # ISO week dates, which fromisoformat reads
        ({"type": "date"}, "20260111"),
        ({"type": "datetime"}, "2026-01-11T08"),
        ({"type": "datetime"}, "2026-01-11T08:30:00.1234567"),
        ({"type": "date", "format": "%d %b %Y"}, "01 ſep 2026"),
    ],
)
def test_what_python_would_convert_but_a_partner_did_not_mean(
    field: dict[str, Any], text: str
) -> None:
    assert refused(converter(field), text)
    with pytest.raises(ValueError, match=r"^f: not a"):
        parse_value(
            TableSchema.model_validate({"fields": [{"name": "f", **field}]}).fields[0], text
        )


# --- properties: whatever the text, an accepted value is ASCII ---------------------------

FIELDS = [
    {"type": "integer"},
    {"type": "number"},
    {"type": "date"},
    {"type": "datetime"},
    {"type": "date", "format": "%d/%m/%Y"},
    {"type": "datetime", "format": "%Y-%m-%d %H:%M:%S"},
    {"type": "date", "format": "%Y年%m月%d日"},
    {"type": "string", "constraints": {"pattern": r"\w+\s\d+"}},
    {"type": "string", "constraints": {"pattern": r"(?i)[a-z]+"}},
]
CONVERTERS = [converter(f) for f in FIELDS]

# Text built from the characters that matter: ASCII digits, signs and separators, and the
# non-ASCII digits, spaces and letters that Python could take for them.
ALPHABET = st.sampled_from(
    [*"0123456789+-.eE:/ T年月日abcKs_", *DIGITS[::7], *SPACES, *FOLDS, "١", "１", "\u00a0"]
)


@given(which=st.integers(0, len(FIELDS) - 1), text=st.text(ALPHABET, min_size=1, max_size=25))
@settings(max_examples=2000, derandomize=True, database=None, deadline=None)
def test_an_accepted_value_is_ascii_but_for_its_format(which: int, text: str) -> None:
    field, conv = FIELDS[which], CONVERTERS[which]
    foreign = {ch for ch in text if not ch.isascii()} - set(field.get("format", ""))
    if conv.convert([text]) is not None:
        assert not foreign, (field, text)
    else:
        assert conv.explain([text]), (field, text)


@given(which=st.integers(0, 1), digits=st.lists(st.sampled_from(DIGITS), min_size=1, max_size=6))
@settings(max_examples=300, derandomize=True, database=None, deadline=None)
def test_a_number_in_any_other_script_is_refused(which: int, digits: list[str]) -> None:
    text = "".join(digits)
    assert int(text) >= 0 and Decimal(text) >= 0  # what Python alone would read
    assert refused(CONVERTERS[which], text)
