"""Table Schema fields → one compiled row converter.

Each field type and constraint is a short snippet of Python (the *template*) that turns the text
``x`` into the value ``o`` or raises ``Invalid(reason)``. The snippets are put together twice:
inline, into one function that converts a whole row on the hot path (returns None at the first
problem), and one function per field, used only for a row that failed, to say exactly which
columns are wrong and why. Both come from the same text, so they cannot disagree.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Sequence
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from .config import SchemaField, TableSchema
from .patterns import compile_pattern

INT_RE = re.compile(r"[+-]?[0-9]+")
NUM_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
ISO_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
ISO_DATETIME_RE = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,6})?)?"
    r"(?:Z|[+-][0-9]{2}:?[0-9]{2})?"
)
# Digits and spaces beyond ASCII: refused in a date written in a format with non-ASCII text
NON_ASCII_DIGIT_OR_SPACE = re.compile(r"(?![\x00-\x7f])[\d\s]")


class Invalid(Exception):
    """A value does not fit its field; the message is the reason shown to people."""


class _Snippet:
    """Lines of code for one field. Names that vary per field end in ``__F``; messages are
    constants in the environment, so no user text is ever part of the code."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.env: dict[str, Any] = {}

    def name(self, base: str, value: Any) -> str:
        key = f"{base}__F"
        self.env[key] = value
        return key

    def fail(self, reason: str) -> str:
        return f"raise Invalid({self.name(f'MSG{len(self.env)}', reason)})"

    def code(self, suffix: str) -> list[str]:
        return [line.replace("__F", suffix) for line in self.lines]

    def env_for(self, suffix: str) -> dict[str, Any]:
        return {k.replace("__F", suffix): v for k, v in self.env.items()}


def _template(field: SchemaField, *, with_constraints: bool = True) -> _Snippet:
    """Lines turning ``x`` (str) into ``o__F`` for one field."""
    t, c, fmt = field.type, field.constraints, field.format
    s = _Snippet()
    add = s.lines.append
    if t == "string":
        add("o__F = x")
    elif t == "integer":
        add(f"if not {s.name('INT', INT_RE.fullmatch)}(x): {s.fail('not an integer')}")
        add("o__F = int(x)")
    elif t == "number":
        add(f"if not {s.name('NUM', NUM_RE.fullmatch)}(x): {s.fail('not a number')}")
        add(f"o__F = {s.name('Decimal', Decimal)}(x)")
    elif t == "boolean":
        allowed = ", ".join(field.true_values + field.false_values)
        add(f"if x in {s.name('TRUE', frozenset(field.true_values))}: o__F = True")
        add(f"elif x in {s.name('FALSE', frozenset(field.false_values))}: o__F = False")
        add(f"else: {s.fail(f'not a boolean (use one of {allowed})')}")
    elif t in ("date", "datetime"):
        kind = t
        if fmt in ("default", "any"):
            regex = ISO_DATE_RE if t == "date" else ISO_DATETIME_RE
            example = "YYYY-MM-DD" if t == "date" else "ISO 8601, e.g. 2026-11-27T08:30:00Z"
            cls = s.name("CLS", date if t == "date" else datetime)
            add(
                f"if not {s.name('ISO', regex.fullmatch)}(x): "
                f"{s.fail(f'not a {kind} (expected {example})')}"
            )
            add(f"try: o__F = {cls}.fromisoformat(x)")
            add(f"except ValueError: {s.fail(f'not a valid {kind}')} from None")
        else:
            tail = ".date()" if t == "date" else ""
            bad_format = s.fail(f"not a {kind} in the format {fmt}")
            # strptime reads %Y, %H, %M… with Unicode \d and a space in the format as Unicode \s
            if fmt.isascii():
                add(f"if not x.isascii(): {bad_format}")  # O(1) on a str
            else:
                add(f"if {s.name('FOREIGN', NON_ASCII_DIGIT_OR_SPACE.search)}(x): {bad_format}")
            add(f"try: o__F = {s.name('DT', datetime)}.strptime(x, {s.name('FMT', fmt)}){tail}")
            add(f"except ValueError: {bad_format} from None")
    else:  # pragma: no cover - the config model allows no other type
        raise ValueError(t)
    if not with_constraints:
        return s
    if c.pattern is not None:
        add(
            f"if not {s.name('PATTERN', compile_pattern(c.pattern).fullmatch)}(x): "
            f"{s.fail(f'does not match the pattern {c.pattern}')}"
        )
    if c.enum is not None:
        allowed_values = frozenset(_typed_bound(field, v, "enum") for v in c.enum)
        shown = ", ".join(str(v) for v in c.enum)
        add(f"if o__F not in {s.name('ENUM', allowed_values)}: {s.fail(f'not one of: {shown}')}")
    if c.min_length is not None:
        add(f"if len(x) < {c.min_length}: {s.fail(f'shorter than {c.min_length} characters')}")
    if c.max_length is not None:
        add(f"if len(x) > {c.max_length}: {s.fail(f'longer than {c.max_length} characters')}")
    if c.minimum is not None:
        low = s.name("MINIMUM", _typed_bound(field, c.minimum, "minimum"))
        add(f"if o__F < {low}: {s.fail(f'less than the minimum {c.minimum}')}")
    if c.maximum is not None:
        high = s.name("MAXIMUM", _typed_bound(field, c.maximum, "maximum"))
        add(f"if o__F > {high}: {s.fail(f'more than the maximum {c.maximum}')}")
    return s


def _missing_lines(missing: frozenset[str], required: bool) -> list[str]:
    """The lines that handle a missing value before the type's own lines run."""
    if not missing:
        return []
    test = "not x" if missing == frozenset({""}) else "x in MISSING"
    if required:
        return [f"if {test}: raise Invalid(REQUIRED)"]
    return [f"if {test}: o__F = None", "else:"]


def _indent(lines: list[str], by: str) -> list[str]:
    return [by + line for line in lines]


def _field_code(
    field: SchemaField,
    missing: frozenset[str],
    required: bool,
    suffix: str,
    with_constraints: bool = True,
) -> tuple[list[str], dict[str, Any]]:
    snippet = _template(field, with_constraints=with_constraints)
    head = [line.replace("__F", suffix) for line in _missing_lines(missing, required)]
    body = snippet.code(suffix)
    body = head + _indent(body, "    ") if head and head[-1] == "else:" else head + body
    return body, snippet.env_for(suffix)


BASE_ENV = {"Invalid": Invalid, "REQUIRED": "a value is required"}


def _separator_lines(separator: str, suffix: str) -> tuple[list[str], dict[str, Any]]:
    """Lines refusing a value that holds the separator of the composite key it is part of:
    joined, it would be ambiguous (two rows could give one key)."""
    reason = (
        f"holds {separator!r}, which joins the columns of the table key "
        "(choose another table.key_separator)"
    )
    env = {f"SEP{suffix}": separator, f"SEPMSG{suffix}": reason}
    return [f"if SEP{suffix} in x: raise Invalid(SEPMSG{suffix})"], env


def _compile_field(
    field: SchemaField,
    missing: frozenset[str],
    required: bool,
    with_constraints: bool = True,
    separator: str | None = None,
) -> Callable[[str], Any]:
    body, env = _field_code(field, missing, required, "", with_constraints)
    if separator is not None:
        lines, more = _separator_lines(separator, "")
        body, env = body + lines, {**env, **more}
    code = ["def conv(x):", *_indent(body, "    "), "    return o"]
    ns: dict[str, Any] = {**BASE_ENV, "MISSING": missing, **env}
    exec("\n".join(code), ns)
    return ns["conv"]  # type: ignore[no-any-return]


def _plain_converter(field: SchemaField) -> Callable[[str], Any]:
    """The type conversion alone, for constraint bounds and keys typed by people."""
    return _compile_field(field, frozenset(), False, with_constraints=False)


def _typed_bound(field: SchemaField, bound: Any, what: str) -> Any:
    try:
        return _plain_converter(field)(str(bound))
    except Invalid as e:
        raise ValueError(f"field {field.name!r}: constraint {what} {bound!r}: {e}") from None


class RowConverter:
    """Converts the cells of one CSV row into a tuple of typed values, in schema field order."""

    def __init__(self, schema: TableSchema, positions: Sequence[int], key: Sequence[str]):
        self.fields = list(schema.fields)
        self.positions = list(positions)
        self.names = [f.name for f in self.fields]
        missing = frozenset(schema.missing_values)
        key_set = set(key)
        # string columns of a composite key (KeyColumns says which); other types cannot hold
        # the separator, the config makes sure of that
        joined: frozenset[str] = getattr(key, "joined", frozenset())
        separator: str = getattr(key, "separator", "")
        env: dict[str, Any] = {**BASE_ENV, "MISSING": missing}
        fast = ["def convert(row):", "    try:"]
        self._one: list[Callable[[str], Any]] = []
        for i, (field, pos) in enumerate(zip(self.fields, self.positions, strict=True)):
            required = field.constraints.required or field.name in key_set
            body, fenv = _field_code(field, missing, required, f"_{i}")
            sep = separator if field.name in joined and field.type == "string" else None
            if sep is not None:
                lines, more = _separator_lines(sep, f"_{i}")
                body, fenv = body + lines, {**fenv, **more}
            env.update(fenv)
            fast.append(f"        x = row[{pos}]")
            fast += _indent(body, "        ")
            self._one.append(_compile_field(field, missing, required, separator=sep))
        out = ", ".join(f"o_{i}" for i in range(len(self.fields)))
        fast += [
            f"        return ({out}{',' if len(self.fields) == 1 else ''})",
            "    except Exception:",
            "        return None",
        ]
        exec("\n".join(fast), env)
        self.convert: Callable[[list[str]], tuple[Any, ...] | None] = env["convert"]
        self.source = "\n".join(fast)

    def explain(self, row: list[str]) -> list[tuple[str, str, str]]:
        """(column, value, reason) for every cell of ``row`` that does not convert."""
        problems = []
        for field, pos, conv in zip(self.fields, self.positions, self._one, strict=True):
            x = row[pos]
            try:
                conv(x)
            except Invalid as e:
                problems.append((field.name, x, str(e)))
            except (ValueError, ArithmeticError, InvalidOperation):
                problems.append((field.name, x, f"not a valid {field.type}"))
        return problems


def parse_value(field: SchemaField, text: str) -> Any:
    """Convert a key typed by a person (URL, command line) to the field's type. A date or
    datetime read in a format of its own is also taken in ISO 8601, the form ``get`` and
    the API print it in."""
    try:
        return _plain_converter(field)(text)
    except Invalid as e:
        if field.type in ("date", "datetime") and field.format not in ("default", "any"):
            iso = field.model_copy(update={"format": "default"})
            with contextlib.suppress(Invalid, ValueError):
                return _plain_converter(iso)(text)
        raise ValueError(f"{field.name}: {e}") from None
    except (ValueError, ArithmeticError):  # e.g. more digits than int() converts
        raise ValueError(f"{field.name}: not a valid {field.type}") from None


def to_text(value: Any) -> str | None:
    """The canonical text of a converted value, as SQLite stores it and reports show it."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def key_text(value: Any) -> str:
    """A key column's value as text in a composite key: the same text for the same value,
    however the file wrote it (a number's trailing zeros and exponent do not count)."""
    if isinstance(value, Decimal):
        if value.is_zero():
            return "0"
        sign, digits, exponent = value.as_tuple()
        assert isinstance(exponent, int)  # the schema reads finite numbers only
        while len(digits) > 1 and digits[-1] == 0:  # not normalize(): it rounds to 28 digits
            digits, exponent = digits[:-1], exponent + 1
        n = Decimal((sign, digits, exponent))
        return format(n, "f") if -30 < n.adjusted() < 30 else str(n)
    return to_text(value) or ""


def join_key(values: Sequence[Any], separator: str) -> str:
    """The value of a composite key's attribute: its columns' values, joined."""
    return separator.join(map(key_text, values))
