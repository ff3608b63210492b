"""Finding the key hashes that repeat in a file of any size, with flat memory.

Each row's key is reduced to a 64-bit hash and put in one of 256 partitions by its low bits; the
partitions spill to temporary files when they fill. At the end each partition is read back alone
and counted. Memory is the buffers plus one partition's distinct hashes (a partition with too
many distinct hashes is split again by the next bits), whatever the file's size; the repeated
hashes go to a ``HashSet``, which spills to disk past its own cap.

The engine then reads the file once more, only when some hash repeats, to compare the real keys
of those few rows: a hash collision never costs a row.
"""

from __future__ import annotations

import os
import tempfile
from array import array
from collections import Counter
from collections.abc import Iterable

from .spill import HashSet

BITS = 8
PARTITIONS = 1 << BITS
MASK = PARTITIONS - 1
SPILL_AT = 1 << 17  # hashes buffered across all partitions before they spill to disk
PIECE = 1 << 13  # distinct hashes a partition may hold when it is counted; more are split again


class DuplicateFinder:
    def __init__(self) -> None:
        self._parts = [array("q") for _ in range(PARTITIONS)]
        self._sizes = [0] * PARTITIONS  # hashes spilled per partition
        self._buffered = 0
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        #: rows whose key hash an earlier row had, known once ``repeated`` has run: never fewer
        #: than the rows whose real key repeats (equal keys hash alike), so a file under a
        #: limit by this count is under it by its real keys
        self.repeats = 0

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
                    part.tofile(f)
                self._sizes[p] += len(part)
                del part[:]
        self._buffered = 0

    def repeated(self) -> HashSet:
        """Each hash seen more than once."""
        found = HashSet()
        try:
            if self._dir is None:
                for part in self._parts:
                    found.add_many(self._repeats(Counter(part)))
                return found
            self._spill()
            for p in range(PARTITIONS):
                if self._sizes[p]:
                    self._count(self._path(f"{p:03d}"), BITS, found)
            return found
        except BaseException:
            found.close()
            raise
        finally:
            self.close()

    def _count(self, path: str, shift: int, found: HashSet) -> None:
        """The repeated hashes of one partition file: counted in one read while it holds at
        most PIECE distinct hashes (however many times each), else split by the next bits.
        Past bit 56 at most 256 distinct hashes remain, so the count always fits."""
        counts: Counter[int] = Counter()
        with open(path, "rb") as f:
            while data := f.read(8 * PIECE):
                block = array("q")
                block.frombytes(data)
                counts.update(block)
                if len(counts) > PIECE and shift < 56:
                    break
            else:
                found.add_many(self._repeats(counts))
                os.unlink(path)
                return
        del counts
        ways = 2
        size = os.path.getsize(path) // 8
        while size // ways > PIECE // 2 and ways < PARTITIONS:
            ways *= 2
        subs = [array("q") for _ in range(ways)]
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
                            sub.tofile(out)
                        del sub[:]
        os.unlink(path)
        step = (ways - 1).bit_length()
        for i in range(ways):
            sub_path = f"{path}.{i}"
            if os.path.exists(sub_path):
                self._count(sub_path, shift + step, found)

    def _repeats(self, counts: Counter[int]) -> list[int]:
        repeated = [(h, n) for h, n in counts.items() if n > 1]
        self.repeats += sum(n for _, n in repeated) - len(repeated)
        return [h for h, _ in repeated]

    def clear(self) -> None:
        """Back to no hashes at all."""
        self.close()
        self._sizes = [0] * PARTITIONS
        self._buffered = 0
        self.repeats = 0

    def close(self) -> None:
        self._parts = [array("q") for _ in range(PARTITIONS)]
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None
