"""Finding the key hashes that repeat in a file of any size, with flat memory.

Each row's key is reduced to a 64-bit hash and put in one of 256 partitions by its low bits; the
partitions spill to temporary files when they fill. At the end each partition is read back alone
and counted. Memory is the buffers plus one partition (a partition too big to hold is split
again by the next bits), whatever the file's size.

The engine then reads the file once more, only when some hash repeats, to compare the real keys
of those few rows: a hash collision never costs a row.
"""

from __future__ import annotations

import os
import tempfile
from array import array
from collections import Counter
from collections.abc import Iterable

BITS = 8
PARTITIONS = 1 << BITS
MASK = PARTITIONS - 1
SPILL_AT = 1 << 17  # hashes buffered across all partitions before they spill to disk
PIECE = 1 << 13  # hashes a partition may hold when it is counted; bigger ones are split again


class DuplicateFinder:
    def __init__(self) -> None:
        self._parts: list[list[int]] = [[] for _ in range(PARTITIONS)]
        self._sizes = [0] * PARTITIONS  # hashes spilled per partition
        self._buffered = 0
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    def add_many(self, hashes: Iterable[int]) -> None:
        appends = [p.append for p in self._parts]
        n = self._buffered
        for h in hashes:
            appends[h & MASK](h)
            n += 1
        self._buffered = n
        if n >= SPILL_AT:
            self._spill()

    def _path(self, name: str) -> str:
        if self._dir is None:
            self._dir = tempfile.TemporaryDirectory(prefix="batchdrop-keys-")
        return os.path.join(self._dir.name, name)

    def _spill(self) -> None:
        for p, part in enumerate(self._parts):
            if part:
                with open(self._path(f"{p:03d}"), "ab") as f:
                    array("q", part).tofile(f)
                self._sizes[p] += len(part)
                part.clear()
        self._buffered = 0

    def repeated(self) -> dict[int, int]:
        """Each hash seen more than once, with how many times."""
        found: dict[int, int] = {}
        try:
            if self._dir is None:
                for part in self._parts:
                    found.update(_repeats(part))
                return found
            self._spill()
            for p in range(PARTITIONS):
                if self._sizes[p]:
                    found.update(self._count(self._path(f"{p:03d}"), self._sizes[p], BITS))
            return found
        finally:
            self.close()

    def _count(self, path: str, size: int, shift: int) -> dict[int, int]:
        if size <= PIECE or shift >= 56:
            hashes = array("q")
            with open(path, "rb") as f:
                hashes.frombytes(f.read())
            return _repeats(hashes)
        ways = 2
        while size // ways > PIECE // 2 and ways < PARTITIONS:
            ways *= 2
        subs: list[list[int]] = [[] for _ in range(ways)]
        with open(path, "rb") as f:
            while data := f.read(8 * PIECE):
                block = array("q")
                block.frombytes(data)
                appends = [s.append for s in subs]
                for h in block:
                    appends[(h >> shift) & (ways - 1)](h)
                for i, sub in enumerate(subs):
                    if sub:
                        with open(f"{path}.{i}", "ab") as out:
                            array("q", sub).tofile(out)
                        sub.clear()
        os.unlink(path)
        found: dict[int, int] = {}
        step = (ways - 1).bit_length()
        for i in range(ways):
            sub_path = f"{path}.{i}"
            if os.path.exists(sub_path):
                found.update(self._count(sub_path, os.path.getsize(sub_path) // 8, shift + step))
        return found

    def close(self) -> None:
        self._parts = [[] for _ in range(PARTITIONS)]
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None


def _repeats(hashes: Iterable[int]) -> dict[int, int]:
    values = hashes if isinstance(hashes, list | array) else list(hashes)
    if len(set(values)) == len(values):
        return {}
    return {h: n for h, n in Counter(values).items() if n > 1}
