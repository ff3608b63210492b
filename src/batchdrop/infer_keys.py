"""Which columns identify a row: the smallest set of up to four columns whose values are unique
over the sample, preferring identifier-like columns.

The rows are held as hashes, column by column. A candidate set is screened on a few thousand
random rows first (a repeat there is a repeat everywhere), then on tens of thousands, and only a
set that passes both is checked over every row held; so even a wide file is searched in well
under a second, and what is called unique is unique over the whole sample.
"""

from __future__ import annotations

import random
import re
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations, pairwise
from operator import itemgetter
from typing import Any

from .infer_types import CONVERTERS, ColumnProfile, Kind

MAX_KEY_COLUMNS = 4  # the widest set searched
KEY_CELLS = 8_000_000  # hashes held at most (64 MB); past it, a reservoir of rows
KEY_ROWS = 1_000_000  # rows held at most: a check builds a set of one hash per row
SCREENS = (2_000, 20_000)
#: sets checked over every row at most (each costs a pass over the sample): a file whose sets
#: all repeat in only a handful of rows cannot make the search slow
MAX_FULL_CHECKS = 60
POOL = {1: 1000, 2: 40, 3: 20, 4: 14}  # best-ranked columns tried in sets of each size
MAX_KEY_TEXT = 200  # longer text (comments, descriptions) is not a key
SHORT_TEXT = 40
REGULAR_SHARE = 0.8  # of the steps between sorted dates that are near the usual step
ID_TOKEN = re.compile(
    r"(?:^|[\s_\-.])(?:id|key|code|sku|ref|no|nr|num|number|uuid|guid|iata|icao|faa|isbn"
    r"|symbol|ticker)$",
    re.IGNORECASE,
)
ID_CAMEL = re.compile(r"[a-z0-9](?:Id|ID|Key|Code|No|Num|Number)$")


def id_like(name: str) -> bool:
    return bool(ID_TOKEN.search(name) or ID_CAMEL.search(name))


class KeySample:
    """The sampled rows as hashes, column by column; a column that holds a missing value is
    dropped (a key is never missing). Past ``KEY_CELLS`` hashes the rows held are a uniform
    reservoir of the rows offered."""

    def __init__(self, width: int, seed: int = 13):
        self.columns: list[array[int] | None] = [array("q") for _ in range(width)]
        self.capacity = min(KEY_ROWS, max(10_000, KEY_CELLS // max(width, 1)))
        self.rows = 0  # rows held
        self.offered = 0
        self._rng = random.Random(seed)

    @property
    def exact(self) -> bool:
        """Every row offered is held: what is unique here is unique over the sample."""
        return self.rows == self.offered

    def drop(self, position: int) -> None:
        self.columns[position] = None

    def add(self, columns: Sequence[Sequence[str]]) -> None:
        count = len(columns[0]) if columns else 0
        take = min(count, self.capacity - self.rows)
        for held, values in zip(self.columns, columns, strict=True):
            if held is not None and take:
                held.extend(map(hash, values[:take] if take < count else values))
        self.rows += take
        self.offered += take
        for r in range(take, count):
            self.offered += 1
            j = self._rng.randrange(self.offered)
            if j < self.capacity:
                for held, values in zip(self.columns, columns, strict=True):
                    if held is not None:
                        held[j] = hash(values[r])


def hopeless(p: ColumnProfile) -> bool:
    """Can this column no longer be part of a key, whatever the rest of the sample holds?"""
    kind = p.best()
    return (
        "" in p.markers
        or p.max_len > MAX_KEY_TEXT
        or (kind is not None and (kind.type in ("number", "boolean") or bool(p.markers)))
    )


@dataclass
class KeyColumn:
    position: int
    name: str
    score: int  # lower is a likelier key part
    alone: bool  # may be a key by itself


@dataclass
class KeyChoice:
    columns: tuple[str, ...]  # the table key: partition key, then the sort key if any
    unique: bool  # no two rows held share it
    repeats: int | None = None  # rows held whose key an earlier row already had


def key_columns(profiles: list[ColumnProfile], kinds: list[Kind | None], missing: list[str]):
    """The columns that may be part of a key, ranked: identifier-like names first, then short
    text, dates, integers, long text. Never a column with a missing value, a decimal number
    or a flag. A date or an integer is a key alone only when it looks like one: a date of a
    regular series (a day, an hour), an integer with an identifier-like name."""
    out: list[KeyColumn] = []
    for p, k in zip(profiles, kinds, strict=True):
        if any(m in missing for m in p.markers) or not p.values:
            continue
        if k is not None and k.type in ("number", "boolean"):
            continue
        if k is None and p.max_len > MAX_KEY_TEXT:
            continue
        if id_like(p.name):
            score, alone = 0, True
        elif k is None:
            score, alone = (1 if p.max_len <= SHORT_TEXT else 4), True
        elif k.type in ("date", "datetime"):
            score, alone = 2, _regular(p, k)
        else:
            score, alone = 3, False
        out.append(KeyColumn(p.position, p.name, score, alone))
    return out


def _regular(p: ColumnProfile, k: Kind) -> bool:
    """Are the dates a series (one a day, an hour, a month), not events that happen to differ?"""
    if len(p.tested) < 3 or len(p.tested) >= 100_000:
        return len(p.tested) < 3
    try:
        values = sorted(CONVERTERS.parse(k, v) for v in p.tested)
        steps = sorted(b - a for a, b in pairwise(values))
    except TypeError:  # aware and naive datetimes together
        return False
    usual = steps[len(steps) // 2]
    near = sum(abs(s - usual) <= usual / 10 for s in steps)
    return bool(usual) and near >= REGULAR_SHARE * len(steps)


def find_key(sample: KeySample, candidates: list[KeyColumn]) -> KeyChoice | None:
    """The table key for the rows held (None: no column can be one)."""
    n = sample.rows
    full: dict[int, Any] = {}
    for c in candidates:
        held = sample.columns[c.position]
        if held is not None:
            full[c.position] = held
    distinct = {p: len(set(values)) for p, values in full.items()}
    cols = [c for c in candidates if c.position in full and (distinct[c.position] > 1 or n < 2)]
    cols.sort(key=lambda c: (c.score, c.position))
    if not cols:
        return None
    rng = random.Random(7)
    levels: list[tuple[int, dict[int, Any]]] = []
    for size in SCREENS:
        if size < n:
            pick = itemgetter(*sorted(rng.sample(range(n), size)))
            levels.append((size, {p: pick(v) for p, v in full.items()}))
    levels.append((n, full))

    full_checks = 0

    def unique(combo: tuple[KeyColumn, ...]) -> bool:
        nonlocal full_checks
        product = 1
        for c in combo:
            product *= distinct[c.position]
        if product < n:
            return False
        for size, data in levels:
            if data is full:
                if full_checks >= MAX_FULL_CHECKS:
                    return False
                full_checks += 1
            if len(combo) == 1:
                seen = len(set(data[combo[0].position]))
            else:
                seen = len(set(map(hash, zip(*(data[c.position] for c in combo), strict=True))))
            if seen < size:
                return False
        return True

    found: tuple[KeyColumn, ...] | None = None
    for size in range(1, MAX_KEY_COLUMNS + 1):
        pool = cols[: POOL[size]]
        combos = [s for s in combinations(pool, size) if size > 1 or s[0].alone]
        combos.sort(key=lambda s: (sum(c.score for c in s), [c.position for c in s]))
        found = next((s for s in combos if unique(s)), None)
        if found is not None:
            break
    if found is None:  # an integer or a date unique by itself beats no key at all
        found = next(((c,) for c in cols if not c.alone and unique((c,))), None)
    exact = sample.exact
    if found is not None:  # a table key takes any of them (a composite sort key past two)
        return KeyChoice(_ordered(found), True, repeats=0 if exact else None)
    pairs: list[tuple[KeyColumn, ...]] = list(combinations(cols[: POOL[2]], 2))
    pairs = pairs or [(cols[0],)]

    def spread(s: tuple[KeyColumn, ...], data: dict[int, Any]) -> tuple[int, int]:
        """How many distinct keys the set gives (more: fewer repeats), then its rank."""
        keys = set(map(hash, zip(*(data[c.position] for c in s), strict=True)))
        return len(keys), -sum(c.score for c in s)

    if len(pairs) > 5:  # rank on the first screen, settle the best few on every row
        pairs = sorted(pairs, key=lambda s: spread(s, levels[0][1]), reverse=True)[:5]
    best = max(pairs, key=lambda s: spread(s, full))
    kept = spread(best, full)[0]
    return KeyChoice(_ordered(best), False, repeats=n - kept)


def _ordered(combo: Sequence[KeyColumn]) -> tuple[str, ...]:
    return tuple(c.name for c in sorted(combo, key=lambda c: (c.score, c.position)))
