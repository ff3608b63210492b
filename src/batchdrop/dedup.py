"""Finding the key hashes that repeat in a file of any size, with flat memory.

Each row's key is reduced to a 64-bit hash and put in one of 1,024 partitions by its low bits.
When ``SPILL_AT`` hashes are buffered, every partition is written, one after another, to one
temporary file: a *run*, whose partitions' places are remembered. At the end neighbouring
partitions are read back together (their piece of every run, side by side) and counted, up to
``GROUP`` hashes at a time. Memory is the buffers plus those hashes, whatever the file's size:
a partition with more than ``PIECE`` distinct hashes is split again by the next bits. The
repeated hashes go to a ``HashSet``, which spills to disk past its own cap.

The engine then reads the file once more, only when some hash repeats, to compare the real keys
of those few rows: a hash collision never costs a row.
"""

from __future__ import annotations

import os
import struct
import tempfile
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from itertools import accumulate
from typing import IO, Any

from .spill import HashSet

#: 1,024 partitions: counting one needs a set of a 1,024th of the file's hashes (5,000 at 5M
#: rows); neighbouring ones are counted together up to GROUP hashes, so the count's set is the
#: same size (a megabyte or two) from a few hundred thousand rows to tens of millions, then at
#: most PIECE (a partition past it is split again)
BITS = 10
PARTITIONS = 1 << BITS
MASK = PARTITIONS - 1
SPILL_AT = 1 << 17  # hashes buffered across all partitions before they spill to disk (1 MB)
PIECE = 1 << 16  # distinct hashes a partition may hold when it is counted; more are split again
WIDTH = 8  # bytes of one hash on disk
BLOCK = 1 << 13  # hashes read at a time
#: hashes counted at once at the end: neighbouring partitions are read and counted together up
#: to about this many, so a big file costs one read per run for several partitions, not one for
#: each (at 5M rows, 40 runs: 40,000 small reads)
GROUP = 1 << 14

Piece = tuple[int, int]  # (byte offset, hashes) of one partition's hashes in one run
Blocks = Callable[[], Iterator["array[int]"]]  # reads a partition's hashes, a block at a time


class DuplicateFinder:
    def __init__(self) -> None:
        # arrays, not lists: a list keeps every int object alive until the spill, which then
        # visits 128K objects scattered over megabytes, past the CPU's cache; an array takes
        # the machine word while the int is fresh, and a spill is one copy of the buffers
        self._parts: list[array[int]] = [array("q") for _ in range(PARTITIONS)]
        self._appends = [p.append for p in self._parts]
        #: per run, where each partition's hashes are: the hashes before each partition (they
        #: lie one after another from the run's start, in ``_starts``); 32-bit words, not
        #: tuples, so a file of 200M rows (1,500 runs) keeps them in 6 MB
        self._runs: list[array[int]] = []
        self._starts = array("q")
        self._file: Any = None
        self._buffered = 0  # hashes in ``_parts``
        self._end = 0  # bytes written to the file
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        #: rows whose key hash an earlier row had, known once ``repeated`` has run: never fewer
        #: than the rows whose real key repeats (equal keys hash alike), so a file under a
        #: limit by this count is under it by its real keys
        self.repeats = 0

    def add_many(self, hashes: Iterable[int]) -> None:
        appends = self._appends
        for h in hashes:
            appends[h & MASK](h)
        if isinstance(hashes, (list, array)):
            self._buffered += len(hashes)
        else:  # 1,024 lengths summed: as much work as a hundred appends
            self._buffered = sum(map(len, self._parts))
        if self._buffered >= SPILL_AT:
            self._spill()

    def _spill(self) -> None:
        """The buffered partitions, one after another, as one run at the end of the file."""
        if self._file is None:
            # closed by close(), which repeated() and the passes always reach
            self._file = tempfile.TemporaryFile(prefix="batchdrop-keys-")  # noqa: SIM115
        run = array("i", accumulate(map(len, self._parts), initial=0))
        data = b"".join(self._parts)
        for part in self._parts:
            del part[:]
        self._buffered = 0
        self._file.seek(self._end)
        self._file.write(data)
        self._starts.append(self._end)
        self._end += len(data)
        self._runs.append(run)

    def repeated(self, *, two_cores: bool = False) -> HashSet:
        """Each hash seen more than once. ``two_cores``: a forked child counts the second
        half of the partitions while this process counts the first (only a process of its
        own, with no threads, may ask for it: the duplicate finder's helper)."""
        found = HashSet()
        try:
            if self._file is None:
                for part in self._parts:
                    found.add_many(self._repeats(part))
                return found
            if any(self._parts):
                self._spill()
            self._file.flush()
            fd = self._file.fileno()
            hashes = self._end // WIDTH
            group = max(1, min(PARTITIONS, GROUP * PARTITIONS // max(hashes, 1)))
            firsts = range(0, PARTITIONS, group)
            child = None
            if two_cores and len(firsts) > 1 and hasattr(os, "fork"):
                half = len(firsts) // 2
                child = _Counter(self, fd, firsts[half:], group)
                firsts = firsts[:half]
            for first in firsts:
                self._count_group(fd, first, min(first + group, PARTITIONS), found)
            if child is not None:
                self.repeats += child.join(found)
            return found
        except BaseException:
            found.close()
            raise
        finally:
            self.close()

    def _count_group(self, fd: int, first: int, last: int, found: HashSet) -> None:
        """The repeated hashes of partitions ``first`` to ``last`` (excluded), which lie side
        by side in each run: counted together, one read per run, while they hold at most
        twice GROUP hashes (partitions are even unless keys repeat a lot); else one by one."""
        runs = [
            (start, run)
            for start, run in zip(self._starts, self._runs, strict=True)
            if run[last] > run[first]
        ]
        total = sum(run[last] - run[first] for _, run in runs)
        if total <= 2 * GROUP:
            hashes = array("q")
            for start, run in runs:
                n = run[last] - run[first]
                hashes.frombytes(os.pread(fd, WIDTH * n, start + WIDTH * run[first]))
            found.add_many(self._repeats(hashes))
            return
        for p in range(first, last):
            pieces = [
                (start + WIDTH * run[p], run[p + 1] - run[p])
                for start, run in runs
                if run[p + 1] > run[p]
            ]
            total = sum(n for _, n in pieces)
            if not total:
                continue
            if total <= PIECE:
                hashes = array("q")
                for offset, n in pieces:
                    hashes.frombytes(os.pread(fd, WIDTH * n, offset))
                found.add_many(self._repeats(hashes))
            else:
                self._count(partial(_read_pieces, fd, pieces), total, BITS, found)

    def _count(self, blocks: Blocks, total: int, shift: int, found: HashSet) -> None:
        """The repeated hashes of one partition too big to read at once: counted block by
        block while they are at most PIECE distinct hashes (however many times each), else
        split by the next bits into files of their own. Past bit 56 at most 256 distinct
        hashes remain, so the count always fits."""
        counts: Counter[int] = Counter()
        for block in blocks():
            counts.update(block)
            if len(counts) > PIECE and shift < 56:
                break
        else:
            found.add_many(self._repeats_counted(counts))
            return
        del counts
        ways = 2
        while total // ways > PIECE // 2 and ways < PARTITIONS:
            ways *= 2
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="batchdrop-keys-")
        paths = [os.path.join(self._tmp.name, f"{shift}-{i}") for i in range(ways)]
        sizes = [0] * ways
        subs: list[list[int]] = [[] for _ in range(ways)]
        appends = [s.append for s in subs]
        mask = ways - 1

        def flush() -> None:
            for i, sub in enumerate(subs):
                if sub:
                    with open(paths[i], "ab") as f:
                        f.write(struct.pack(f"{len(sub)}q", *sub))
                    sizes[i] += len(sub)
                    sub.clear()

        for block in blocks():
            for h in block:
                appends[(h >> shift) & mask](h)
            if sum(map(len, subs)) >= SPILL_AT:
                flush()
        flush()
        step = mask.bit_length()
        for path, size in zip(paths, sizes, strict=True):
            if size:
                self._count(partial(_read_file, path), size, shift + step, found)
                os.unlink(path)

    def _repeats(self, hashes: list[int] | array[int]) -> list[int]:
        if len(set(hashes)) == len(hashes):
            return []
        return self._repeats_counted(Counter(hashes))

    def _repeats_counted(self, counts: Counter[int]) -> list[int]:
        repeated = [(h, n) for h, n in counts.items() if n > 1]
        self.repeats += sum(n for _, n in repeated) - len(repeated)
        return [h for h, _ in repeated]

    def clear(self) -> None:
        """Back to no hashes at all."""
        self.close()
        self.repeats = 0

    def close(self) -> None:
        for part in self._parts:
            del part[:]
        self._buffered = 0
        self._runs = []
        self._starts = array("q")
        self._end = 0
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


class _Counter:
    """A forked child that counts some groups of partitions of a finder's spilled hashes and
    sends back the repeats it found and the repeated hashes (eight bytes each) on a pipe."""

    def __init__(self, finder: DuplicateFinder, fd: int, firsts: range, group: int):
        self.read, write = os.pipe()
        self.pid = os.fork()
        if self.pid:
            os.close(write)
            return
        status = 1
        try:  # the child: its own copy of the finder, the spilled file shared (pread only)
            os.close(self.read)
            finder.repeats, finder._tmp = 0, None  # a partition split again: files of its own
            found = HashSet()
            for first in firsts:
                finder._count_group(fd, first, min(first + group, PARTITIONS), found)
            with os.fdopen(write, "wb") as out:
                send_repeated(out, finder.repeats, found)
            found.close()
            if finder._tmp is not None:
                finder._tmp.cleanup()
            status = 0
        finally:
            os._exit(status)  # no cleanup of the parent's objects, no atexit

    def join(self, found: HashSet) -> int:
        """Add the child's repeated hashes to ``found``; the repeats it counted."""
        with os.fdopen(self.read, "rb") as pipe:
            repeats = receive_repeated(pipe, found)
        _, status = os.waitpid(self.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0 or repeats is None:
            raise RuntimeError("the process counting half the key hashes failed")
        return repeats


def send_repeated(out: IO[bytes], repeats: int, found: HashSet) -> None:
    """A count's answer on a stream: the repeats (eight bytes), then each repeated hash."""
    out.write(repeats.to_bytes(WIDTH, "little", signed=True))
    for block in _blocks(found.items()):
        out.write(block)


def receive_repeated(stream: IO[bytes], found: HashSet) -> int | None:
    """The answer ``send_repeated`` wrote, its hashes added to ``found`` a block at a time
    (there may be millions): the repeats, or None when the answer was cut short."""
    head = stream.read(WIDTH)
    while data := stream.read(WIDTH * BLOCK):
        if len(data) % WIDTH:
            return None
        block = array("q")
        block.frombytes(data)
        found.add_many(block)
    return int.from_bytes(head, "little", signed=True) if len(head) == WIDTH else None


def _blocks(hashes: Iterable[int]) -> Iterator[array[int]]:
    block = array("q")
    for h in hashes:
        block.append(h)
        if len(block) >= BLOCK:
            yield block
            block = array("q")
    yield block


def _read_pieces(fd: int, pieces: list[Piece]) -> Iterator[array[int]]:
    for offset, n in pieces:
        while n:
            take = min(n, BLOCK)
            block = array("q")
            block.frombytes(os.pread(fd, WIDTH * take, offset))
            yield block
            offset += WIDTH * take
            n -= take


def _read_file(path: str) -> Iterator[array[int]]:
    with open(path, "rb") as f:
        while data := f.read(WIDTH * BLOCK):
            block = array("q")
            block.frombytes(data)
            yield block
