"""How a schema's ``constraints.pattern`` is compiled: one function for the config check and
the row converter, so a pattern means the same thing at load time and on every row.

Partners' files are checked against what the schema's author had in mind when writing
``^A\\d{5}$``: ASCII digits. Python's classes are Unicode by default (``\\d`` takes ``١٢٣``
and ``１２３``, ``\\w`` takes any letter of any script, ``\\s`` takes no-break spaces, and
case-insensitive matching folds ``K`` (the Kelvin sign) into ``k``), so patterns are compiled
with ``re.ASCII``. A pattern that wants Unicode classes says so with Python's own inline flag
at its start, ``(?u)`` (or ``(?iu)`` …): the text is used as written, and the error message
shows the pattern the author wrote.
"""

from __future__ import annotations

import re


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """``pattern`` compiled with ASCII classes, or Unicode ones if it starts with ``(?u)``.

    Raises ValueError("not a valid regular expression: …") for a pattern Python refuses.
    """
    try:
        return re.compile(pattern, re.ASCII)
    except ValueError:
        # Python's only ValueError here is "ASCII and UNICODE flags are incompatible": the
        # pattern asked for Unicode with (?u). Compiled without re.ASCII, it gets what it asked.
        pass
    except re.error as e:
        raise ValueError(f"not a valid regular expression: {e}") from None
    try:
        return re.compile(pattern)
    except (re.error, ValueError) as e:
        raise ValueError(f"not a valid regular expression: {e}") from None
