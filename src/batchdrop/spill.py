"""What a pass keeps about a file, in bounded memory whatever the file holds.

Each structure lives in memory up to a cap and moves to a temporary file past it:

- ``LineRuns``: the lines of the invalid rows, found in increasing order in pass one and read
  back in the same order in pass two, as runs (consecutive invalid rows are one run).
- ``HashSet``: the key hashes that repeat; past the cap, a temporary SQLite table.
- ``HeldRows``: rows whose key hash repeats, one winner per real key (the policy decides which);
  past the cap, a temporary SQLite table keyed by the key's hash (the real keys are compared,
  so a hash collision never merges two keys).

The temporary files live in the system's temporary directory and are removed on ``close``.
"""

from __future__ import annotations

import os
import sys
import tempfile
from array import array
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import sqlite3

# sqlite3 and pickle are imported where a structure first spills: most files never do, and the
# AWS runtime has no other use for them (two megabytes of a Lambda's memory).

RUNS_IN_MEMORY = 1 << 14  # runs (two integers each) buffered before they go to disk
HASHES_IN_MEMORY = 1 << 15
ROWS_IN_MEMORY = 1 << 13
_END = sys.maxsize


class _TempDir:
    def __init__(self, prefix: str):
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._prefix = prefix

    def path(self, name: str) -> str:
        if self._dir is None:
            self._dir = tempfile.TemporaryDirectory(prefix=self._prefix)
        return os.path.join(self._dir.name, name)

    def database(self) -> sqlite3.Connection:
        """A scratch database: no journal, no fsync, a small page cache (memory stays flat)."""
        import sqlite3

        conn = sqlite3.connect(self.path("spill.db"), isolation_level=None)
        conn.execute("PRAGMA journal_mode=OFF")
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("PRAGMA cache_size=-2048")
        conn.execute("PRAGMA temp_store=FILE")
        return conn

    def cleanup(self) -> None:
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None


class LineRuns:
    """Line numbers given in increasing order, kept as runs ``[first, last]``.

    A run grows over every line added until ``kept`` says a row in between was kept, so a file
    of millions of invalid rows (or blank lines between them) is one run: the lines inside a
    run that are not rows are never asked about.
    """

    def __init__(self) -> None:
        self._runs = array("q")  # first, last, first, last, …
        self._spilled = 0  # runs on disk
        self._open = False  # whether the next line may extend the last run
        self._tmp = _TempDir("batchdrop-lines-")

    def add(self, line: int) -> None:
        runs = self._runs
        if self._open and runs:
            if line > runs[-1]:
                runs[-1] = line
            return
        runs.append(line)
        runs.append(line)
        self._open = True
        if len(runs) >= 2 * RUNS_IN_MEMORY:
            with open(self._tmp.path("runs"), "ab") as f:
                runs.tofile(f)
            self._spilled += len(runs) // 2
            del runs[:]
            self._open = False

    def kept(self) -> None:
        """A row after the last line added was kept: the next line starts a new run."""
        self._open = False

    def __bool__(self) -> bool:
        return bool(self._runs) or self._spilled > 0

    def runs(self) -> Iterator[tuple[int, int]]:
        if self._spilled:
            with open(self._tmp.path("runs"), "rb") as f:
                while data := f.read(16 * RUNS_IN_MEMORY):
                    block = array("q")
                    block.frombytes(data)
                    yield from zip(block[::2], block[1::2], strict=True)
        runs = array("q", self._runs)  # a copy: a pass reads while none adds
        yield from zip(runs[::2], runs[1::2], strict=True)

    def cursor(self) -> LineCursor:
        return LineCursor(self.runs())

    def close(self) -> None:
        self._tmp.cleanup()
        del self._runs[:]
        self._spilled = 0


class LineCursor:
    """Membership in a ``LineRuns``, asked in increasing line order."""

    def __init__(self, runs: Iterator[tuple[int, int]] | None = None):
        self._runs = runs if runs is not None else iter(())
        self.first, self.last = next(self._runs, (_END, _END))

    def _reach(self, line: int) -> None:
        while self.last < line:
            self.first, self.last = next(self._runs, (_END, _END))

    def __contains__(self, line: int) -> bool:
        self._reach(line)
        return self.first <= line

    def clear(self, first: int, last: int) -> bool:
        """No line from ``first`` to ``last`` is in the runs."""
        self._reach(first)
        return self.first > last


class HashSet:
    """A set of 64-bit hashes: a Python set up to a cap, a SQLite table past it."""

    def __init__(self, cap: int | None = None):
        self._set: set[int] = set()
        self._cap = HASHES_IN_MEMORY if cap is None else cap
        self._db: sqlite3.Connection | None = None
        self._tmp = _TempDir("batchdrop-hashes-")
        self._len = 0

    def add_many(self, hashes: Iterable[int]) -> None:
        if self._db is None:
            self._set.update(hashes)
            self._len = len(self._set)
            if self._len <= self._cap:
                return
            self._db = self._tmp.database()
            self._db.execute("CREATE TABLE h (h INTEGER PRIMARY KEY)")
            hashes, self._set = self._set, set()
        self._db.executemany("INSERT OR IGNORE INTO h VALUES (?)", ((h,) for h in hashes))
        (self._len,) = self._db.execute("SELECT count(*) FROM h").fetchone()

    @property
    def in_memory(self) -> set[int] | None:
        """The set itself while it is held in memory (for C-speed checks), else None."""
        return self._set if self._db is None else None

    def items(self) -> Iterator[int]:
        if self._db is None:
            yield from self._set
            return
        for (h,) in self._db.execute("SELECT h FROM h"):
            yield h

    def __contains__(self, h: int) -> bool:
        if self._db is None:
            return h in self._set
        return self._db.execute("SELECT 1 FROM h WHERE h = ?", (h,)).fetchone() is not None

    def __len__(self) -> int:
        return self._len

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        self._tmp.cleanup()
        self._set = set()


class HeldRows:
    """One winner per real key among the rows held back: the last offered with ``last_wins``,
    else the first."""

    def __init__(self, last_wins: bool, cap: int | None = None):
        self.last_wins = last_wins
        self._rows: dict[Any, tuple[int, tuple[Any, ...]]] = {}
        self._cap = ROWS_IN_MEMORY if cap is None else cap
        self._db: sqlite3.Connection | None = None
        self._tmp = _TempDir("batchdrop-held-")

    def offer(self, key: Any, line: int, row: tuple[Any, ...]) -> int | None:
        """Hold ``row`` for ``key``: the line of the row that held the key before, or None
        when ``row`` is the first with it."""
        if self._db is not None:
            return self._offer_spilled(key, line, row)
        held = self._rows.get(key)
        if held is None:
            self._rows[key] = (line, row)
            if len(self._rows) > self._cap:
                self._spill()
            return None
        if self.last_wins:
            self._rows[key] = (line, row)
        return held[0]

    def _spill(self) -> None:
        self._db = db = self._tmp.database()
        db.execute(
            "CREATE TABLE held "
            "(id INTEGER PRIMARY KEY, h INTEGER, line INTEGER, key BLOB, row BLOB)"
        )
        db.execute("CREATE INDEX held_h ON held (h)")
        db.executemany(
            "INSERT INTO held (h, line, key, row) VALUES (?, ?, ?, ?)",
            ((hash(k), line, _dump(k), _dump(row)) for k, (line, row) in self._rows.items()),
        )
        self._rows = {}

    def _offer_spilled(self, key: Any, line: int, row: tuple[Any, ...]) -> int | None:
        db = self._db
        assert db is not None
        h = hash(key)
        for rowid, held_line, held_key in db.execute(
            "SELECT id, line, key FROM held WHERE h = ?", (h,)
        ):
            if _loads(held_key) == key:
                if self.last_wins:
                    db.execute(
                        "UPDATE held SET line = ?, row = ? WHERE id = ?", (line, _dump(row), rowid)
                    )
                return int(held_line)
        db.execute(
            "INSERT INTO held (h, line, key, row) VALUES (?, ?, ?, ?)",
            (h, line, _dump(key), _dump(row)),
        )
        return None

    def winners(self) -> Iterator[tuple[int, tuple[Any, ...]]]:
        """(line, row) of each key's winner, in line order."""
        if self._db is None:
            yield from sorted(self._rows.values(), key=_line)
            return
        for line, row in self._db.execute("SELECT line, row FROM held ORDER BY line"):
            yield line, _loads(row)

    def __bool__(self) -> bool:
        return bool(self._rows) or self._db is not None

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        self._tmp.cleanup()
        self._rows = {}


def _dump(value: Any) -> bytes:
    import pickle

    return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


def _loads(data: bytes) -> Any:
    import pickle

    return pickle.loads(data)


def _line(held: tuple[int, tuple[Any, ...]]) -> int:
    return held[0]
