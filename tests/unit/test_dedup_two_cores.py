"""The duplicate finder's final count split between its process and a forked child (what the
helper process does at the end of a big file): the same repeats and repeated hashes as one
process finds, whether the repeats lie in the first half of the partitions, the second, or in
a partition too big to count at once; and a child that fails makes the count fail."""

from __future__ import annotations

import random
from array import array
from typing import Any

import pytest

from batchdrop import dedup
from batchdrop.dedup import PARTITIONS, DuplicateFinder


def feed(finder: DuplicateFinder, hashes: list[int]) -> None:
    for i in range(0, len(hashes), 2048):
        finder.add_many(array("q", hashes[i : i + 2048]))


def file_of(seed: int, rows: int, heavy: int) -> list[int]:
    """``rows`` hashes, some repeated in every partition, and one hash ``heavy`` times."""
    rng = random.Random(seed)
    hashes = [rng.getrandbits(63) for _ in range(rows)]
    hashes += rng.sample(hashes, rows // 50)  # 2% repeats, all over
    low = [h for h in hashes if h & (PARTITIONS - 1) < 8][:50]
    high = [h for h in hashes if h & (PARTITIONS - 1) > PARTITIONS - 8][:50]
    hashes += low * 3 + high * 2  # in the first and in the last partitions
    hashes += [(rng.getrandbits(53) << 10) | (PARTITIONS - 1)] * heavy
    rng.shuffle(hashes)
    return hashes


@pytest.mark.parametrize(("seed", "heavy"), [(1, 0), (2, 3), (3, 150_000)])
def test_two_cores_count_what_one_counts(seed: int, heavy: int) -> None:
    hashes = file_of(seed, 300_000, heavy)
    one, two = DuplicateFinder(), DuplicateFinder()
    feed(one, hashes)
    feed(two, hashes)
    alone, split = one.repeated(), two.repeated(two_cores=True)
    try:
        assert two.repeats == one.repeats == len(hashes) - len(set(hashes))
        assert sorted(split.items()) == sorted(alone.items())
        assert len(list(alone.items())) > 100
    finally:
        alone.close()
        split.close()


def test_a_child_that_fails_fails_the_count(monkeypatch: pytest.MonkeyPatch) -> None:
    finder = DuplicateFinder()
    feed(finder, file_of(4, 300_000, 0))
    real = DuplicateFinder._count_group

    def count(self: DuplicateFinder, fd: int, first: int, last: int, found: Any) -> None:
        if first >= PARTITIONS // 2:  # the child's half
            raise OSError("disk gone")
        real(self, fd, first, last, found)

    monkeypatch.setattr(DuplicateFinder, "_count_group", count)
    with pytest.raises(RuntimeError, match="counting half the key hashes failed"):
        finder.repeated(two_cores=True)


def test_a_small_file_is_counted_in_one_process(monkeypatch: pytest.MonkeyPatch) -> None:
    forks: list[int] = []

    def fork() -> int:  # never reached
        forks.append(1)
        return 0

    monkeypatch.setattr(dedup.os, "fork", fork)
    finder = DuplicateFinder()
    feed(finder, [1, 2, 3, 2])
    found = finder.repeated(two_cores=True)
    assert list(found.items()) == [2] and finder.repeats == 1 and forks == []
    found.close()
