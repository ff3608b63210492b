"""The duplicate finder in a helper process answers as the one in this process: the same
repeated hashes and the same number of repeats, on random and skewed hashes; it fails as
retryable when the helper dies, and stays in this process when none can be started."""

from __future__ import annotations

import subprocess
from array import array
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import batchdrop.dedup as dedup
import batchdrop.dedup_helper as helper
from batchdrop.errors import TransientError

HASHES = st.lists(
    st.one_of(
        st.sampled_from([0, -1, 3, 1024, -(1 << 63), (1 << 63) - 1]),
        st.integers(-(1 << 63), (1 << 63) - 1),
    ),
    max_size=300,
)


def truth(batches: list[list[int]]) -> tuple[list[int], int]:
    counts = Counter(h for batch in batches for h in batch)
    return sorted(h for h, n in counts.items() if n > 1), sum(n - 1 for n in counts.values())


def find(finder: dedup.DuplicateFinder, batches: list[list[int]], how: str) -> tuple[Any, int]:
    for batch in batches:
        if how == "list":
            finder.add_many(list(batch))
        elif how == "array":
            finder.add_many(array("q", batch))
        else:
            finder.add_many(iter(batch))
    found = finder.repeated()
    try:
        return sorted(found.items()), finder.repeats
    finally:
        found.close()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    batches=st.lists(HASHES, max_size=5),
    spill_at=st.sampled_from([1, 50, 1 << 17]),
    how=st.sampled_from(["list", "array", "iterator"]),
)
def test_the_helper_finds_what_one_process_finds(
    batches: list[list[int]], spill_at: int, how: str
) -> None:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(dedup, "SPILL_AT", spill_at)  # here: when the helper starts
        assert find(helper.HelperFinder(), batches, how) == truth(batches)
        assert find(helper.HelperFinder(early=True), batches, how) == truth(batches)
        assert find(dedup.DuplicateFinder(), batches, how) == truth(batches)


def test_a_big_share_of_repeats_comes_back_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    """More repeated hashes than one message of the helper holds."""
    monkeypatch.setattr(dedup, "SPILL_AT", 1000)
    monkeypatch.setattr(helper, "READ", 64)
    batches = [list(range(n, n + 500)) for n in range(0, 3000, 250)]  # most twice
    finder = helper.HelperFinder()
    assert find(finder, batches, "list") == truth(batches)
    assert finder._proc is None  # repeated() ended it


def test_a_helper_that_dies_fails_the_read_as_retryable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dedup, "SPILL_AT", 10)
    finder = helper.HelperFinder()
    finder.add_many(list(range(20)))
    assert finder._proc is not None
    finder._proc.kill()
    finder._proc.wait()
    with pytest.raises(TransientError, match="helper process stopped"):
        for _ in range(200):  # the pipe's buffer takes the first writes
            finder.add_many(list(range(1000)))
        finder.repeated()
    finder.close()


def test_where_no_helper_starts_the_finder_stays_in_this_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise OSError("no processes left")

    monkeypatch.setattr(dedup, "SPILL_AT", 10)
    monkeypatch.setattr(subprocess, "Popen", refuse)
    batches = [list(range(n, n + 30)) for n in range(0, 200, 20)]
    finder = helper.HelperFinder()
    assert find(finder, batches, "list") == truth(batches)


def test_the_helper_is_for_the_local_runtime_on_more_than_one_core(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(helper, "ENABLED", False)
    assert type(helper.new_finder()) is dedup.DuplicateFinder
    monkeypatch.setattr(helper, "ENABLED", True)
    monkeypatch.setattr(helper, "_cores", lambda: 1)
    assert type(helper.new_finder()) is dedup.DuplicateFinder
    monkeypatch.setattr(helper, "_cores", lambda: 2)
    assert type(helper.new_finder()) is helper.HelperFinder


def test_a_big_file_s_helper_takes_its_first_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """A file of EARLY_BYTES or more starts its helper at the first hashes: none of them is
    partitioned in this process; a smaller one's stay here until SPILL_AT."""
    monkeypatch.setattr(helper, "ENABLED", True)
    monkeypatch.setattr(helper, "_cores", lambda: 2)
    big, small = helper.new_finder(helper.EARLY_BYTES), helper.new_finder(helper.EARLY_BYTES - 1)
    batches = [[1, 2, 3], [3, 4]]
    for finder in (big, small):
        finder.add_many(list(batches[0]))
    assert big._proc is not None and not any(big._parts)
    assert small._proc is None and sum(map(len, small._parts)) == 3
    for finder in (big, small):
        finder.add_many(list(batches[1]))
        found = finder.repeated()
        assert (sorted(found.items()), finder.repeats) == truth(batches)
        found.close()
