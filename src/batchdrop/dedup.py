"""Finding repeated keys in a file of any size with flat memory.

While the file streams, each row's key is reduced to a 64-bit hash and appended, with its line
number, to one of 256 partitions (spilled to a temporary file when the buffers fill). At the end
each partition is read back alone and its repeated hashes are found with a set. Memory is the
buffers plus one partition at a time, so it stays flat as the file grows.

A 64-bit hash can collide; the result is therefore a list of *candidate* lines. The engine checks
the real keys of those few candidates before it drops or rejects anything.
"""

from __future__ import annotations

import os
import tempfile
from array import array
from collections import defaultdict

PARTITIONS = 256
SPILL_AT = 1 << 16  # entries buffered across all partitions before spilling to disk


class DuplicateFinder:
    def __init__(self) -> None:
        self._hashes = [array("q") for _ in range(PARTITIONS)]
        self._lines = [array("q") for _ in range(PARTITIONS)]
        self._buffered = 0
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._spilled: set[int] = set()

    def add(self, key_hash: int, line: int) -> None:
        p = key_hash & 0xFF
        self._hashes[p].append(key_hash)
        self._lines[p].append(line)
        self._buffered += 1
        if self._buffered >= SPILL_AT:
            self._spill()

    def _path(self, p: int) -> str:
        if self._dir is None:
            self._dir = tempfile.TemporaryDirectory(prefix="batchdrop-keys-")
        return os.path.join(self._dir.name, f"{p:03d}")

    def _spill(self) -> None:
        for p in range(PARTITIONS):
            if self._hashes[p]:
                with open(self._path(p), "ab") as f:
                    self._hashes[p].tofile(f)
                    self._lines[p].tofile(f)
                    f.write(len(self._hashes[p]).to_bytes(8, "little"))
                self._spilled.add(p)
                self._hashes[p] = array("q")
                self._lines[p] = array("q")
        self._buffered = 0

    def _partition(self, p: int) -> tuple[array[int], array[int]]:
        hashes, lines = array("q"), array("q")
        if p in self._spilled:
            with open(self._path(p), "rb") as f:
                data = f.read()
            end = len(data)
            while end:  # blocks were appended as [hashes][lines][count]
                n = int.from_bytes(data[end - 8 : end], "little")
                start = end - 8 - 16 * n
                h, ln = array("q"), array("q")
                h.frombytes(data[start : start + 8 * n])
                ln.frombytes(data[start + 8 * n : end - 8])
                hashes[:0], lines[:0] = h, ln
                end = start
        hashes.extend(self._hashes[p])
        lines.extend(self._lines[p])
        return hashes, lines

    def candidates(self) -> list[list[int]]:
        """Groups of line numbers whose keys (probably) repeat, each group in line order."""
        groups: list[list[int]] = []
        for p in range(PARTITIONS):
            hashes, lines = self._partition(p)
            if len(set(hashes)) == len(hashes):
                continue
            by_hash: defaultdict[int, list[int]] = defaultdict(list)
            for h, ln in zip(hashes, lines, strict=True):
                by_hash[h].append(ln)
            groups.extend(sorted(g) for g in by_hash.values() if len(g) > 1)
        self.close()
        return sorted(groups)

    def close(self) -> None:
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None
