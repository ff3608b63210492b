"""The keys of a block of rows read straight from its text: one regular expression, no csv reader.

A pass that needs only the keys of rows whose fields are all plain strings (``validate``'s
first pass, and the passes that settle and count repeated keys) reads a block of complete lines
with one ``findall`` of a pattern that matches one whole row on one line and captures its key
fields. The pattern accepts a strict subset of what the csv reader reads alike:

- exactly the header's number of fields;
- each field unquoted (no delimiter, quote, CR or LF in it) or quoted (doubled quotes inside,
  no CR or LF), and at most ``csv.max_field_size`` characters, the csv reader's limit;
- a key field unquoted, or quoted without a doubled quote, so what is captured is its value;
- the line ending in LF or CRLF.

A match can start only at the start of a line and ends with its line feed, so when there are as
many matches as line feeds, every line is one row and the captures are the keys the csv reader
would give. Otherwise (a blank line, a quoted line break, a stray quote, a lone CR, a doubled
quote in a key) the caller hands the block to the csv reader, which reads it or says what is
wrong with it.

Whether each key field is quoted is learnt from a block's first row: files quote a column
always (QUOTE_ALL, QUOTE_NONNUMERIC) or only where a value needs it, which a key seldom does.
A block where a key column is quoted both ways is read with both forms captured, one of them
empty in each row.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from functools import cache
from itertools import chain
from operator import add, itemgetter
from typing import Any


class RawKeys:
    """Reads the keys of rows ``width`` fields wide, the key fields at ``key_columns`` (in the
    key's order), from blocks of lines."""

    def __init__(
        self,
        width: int,
        key_columns: Sequence[int],
        delimiter: str,
        quote: str,
        max_field: int,
        missing: Collection[str] = ("",),
    ):
        self.width, self.max_field = width, max_field
        #: an empty key field is a missing value: the patterns capture only non-empty ones
        self.nonempty = "" in missing
        self._words = frozenset(missing) - {""}  # other missing values: looked for in the keys
        self._tuples = len(key_columns) > 1
        self.delimiter, self.quote = delimiter, quote
        self.key_columns = list(key_columns)
        in_file_order = sorted(self.key_columns)
        #: the captures come in file order: the key's order, when it differs
        self._order = (
            None
            if in_file_order == self.key_columns or len(key_columns) == 1
            else itemgetter(*(in_file_order.index(c) for c in self.key_columns))
        )
        #: each key field's form in the rows read last (file order): quoted or not
        self._forms: tuple[str, ...] | None = None
        self._learnt = self._bounded = re.compile("")  # the patterns of those forms
        self._first_row = self._pattern((RAW,) * len(key_columns), bounded=True, ending=False)

    def keys(self, text: str) -> list[Any] | Rows | None:
        """The keys of the rows of ``text`` (complete lines), one row a line: strings for a key
        of one field, else tuples in the key's order, none of them missing. ``ROWS``: the
        lines are one row each, but some key field is missing. None: the csv reader must read
        the text."""
        if not text.endswith("\n"):
            return None  # the file's last line, without its line break
        lines = text.count("\n")
        bounded = len(text) > self.max_field
        if self._forms is not None:
            pattern = self._bounded if bounded else self._learnt
            found = pattern.findall(text)
            if len(found) == lines:
                return self._checked(found)
        # the block's first row says how its key fields are quoted; a block where they are
        # quoted in more than one way is read with both forms captured
        forms = self._learn(text)
        if forms is None:
            return None
        if forms != self._forms:
            self._forms = forms
            self._learnt, self._bounded = self._pattern(forms, False), self._pattern(forms, True)
            found = (self._bounded if bounded else self._learnt).findall(text)
            if len(found) == lines:
                return self._checked(found)
        either = (EITHER,) * len(forms)
        found = self._pattern(either, bounded).findall(text)
        if len(found) == lines:
            columns = list(zip(*found, strict=True))
            # one of a field's two captures is empty: the value is the other
            values = [map(add, columns[i], columns[i + 1]) for i in range(0, len(columns), 2)]
            if not self._tuples:
                return self._checked(list(values[0]))
            return self._checked(list(zip(*values, strict=True)))
        if self.nonempty and len(self._pattern(either, bounded, empty=True).findall(text)) == lines:
            return ROWS  # a key field is empty
        return None

    def _checked(self, found: list[Any]) -> list[Any] | Rows:
        """The keys in the key's order, or ROWS when one of them is a missing value."""
        keys = found if self._order is None else list(map(self._order, found))
        if self._words and not self._words.isdisjoint(
            chain.from_iterable(keys) if self._tuples else keys
        ):
            return ROWS
        return keys

    def _learn(self, text: str) -> tuple[str, ...] | None:
        """Whether each key field of the block's first row is quoted (None: it is not a row
        this pattern reads)."""
        row = self._first_row.match(text)
        if row is None:
            return None
        return tuple(QUOTED if f.startswith(self.quote) else PLAIN for f in row.groups())

    def _pattern(
        self, forms: tuple[str, ...], bounded: bool, ending: bool = True, empty: bool = False
    ) -> re.Pattern[str]:
        return _compile(
            self.width,
            tuple(sorted(self.key_columns)),
            forms,
            self.delimiter,
            self.quote,
            self.max_field if bounded else None,
            ending,
            empty or not self.nonempty,
        )


class Rows:
    """What ``RawKeys.keys`` says of lines that are one row each with a key field missing."""


ROWS = Rows()


#: how a key field is captured: its value unquoted, its value quoted, both ways in two groups
#: (one of them empty), or the field as it is written (quotes and all)
PLAIN, QUOTED, EITHER, RAW = "plain", "quoted", "either", "raw"


@cache
def _compile(
    width: int,
    key_columns: tuple[int, ...],
    forms: tuple[str, ...],
    delimiter: str,
    quote: str,
    bound: int | None,
    ending: bool,
    empty: bool,
) -> re.Pattern[str]:
    """One row on one line, the key fields (in file order) captured in ``forms``; with
    ``empty``, a captured key field may be empty."""
    d, q = re.escape(delimiter), re.escape(quote)
    n = "*" if bound is None else f"{{0,{bound}}}"
    k = n if empty else "+" if bound is None else f"{{1,{bound}}}"
    unquoted = f"[^{d}{q}\\r\\n]{n}"
    quoted = f"{q}(?:[^{q}\\r\\n]|{q}{q}){n}{q}"
    key = f"[^{d}{q}\\r\\n]{k}"
    value = f"[^{q}\\r\\n]{k}"  # a quoted value without a doubled quote
    capture = {
        PLAIN: f"({key})",
        QUOTED: f"{q}({value}){q}",
        EITHER: f"(?:{q}({value}){q}|({key}))",
        RAW: f"({quoted}|{unquoted})",
    }
    form = dict(zip(key_columns, forms, strict=True))
    fields = [capture[form[c]] if c in form else f"(?:{quoted}|{unquoted})" for c in range(width)]
    return re.compile("^" + d.join(fields) + ("\\r?\\n" if ending else ""), re.MULTILINE)
