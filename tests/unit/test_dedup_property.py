"""The duplicate finder against a plain count: the same repeated hashes and the same number of
repeats, whatever the buffer, group and piece sizes and however the hashes are skewed."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import batchdrop.dedup as dedup

#: a few values drawn often (repeats, one partition crowded), and any 64-bit hash
HASHES = st.lists(
    st.one_of(
        st.sampled_from([0, -1, 7, 1024, -(1 << 63), (1 << 63) - 1]),
        st.integers(-(1 << 63), (1 << 63) - 1),
    ),
    max_size=400,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    batches=st.lists(HASHES, max_size=6),
    spill_at=st.sampled_from([1, 7, 64, 1 << 17]),
    group=st.sampled_from([1, 3, 50, 1 << 14]),
    piece=st.sampled_from([2, 5, 1 << 16]),
    as_list=st.booleans(),
)
def test_finder_agrees_with_a_count(
    batches: list[list[int]], spill_at: int, group: int, piece: int, as_list: bool
) -> None:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(dedup, "SPILL_AT", spill_at)
        mp.setattr(dedup, "GROUP", group)
        mp.setattr(dedup, "PIECE", piece)
        finder = dedup.DuplicateFinder()
        for batch in batches:
            finder.add_many(list(batch) if as_list else iter(batch))
        found = finder.repeated()
    counts = Counter(h for batch in batches for h in batch)
    assert sorted(found.items()) == sorted(h for h, n in counts.items() if n > 1)
    assert finder.repeats == sum(n - 1 for n in counts.values())
    found.close()


def test_one_hash_on_every_row_crowds_one_partition_and_is_counted_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A group holding a crowded partition is counted partition by partition, the crowded
    one in blocks (never read whole)."""
    monkeypatch.setattr(dedup, "SPILL_AT", 500)
    monkeypatch.setattr(dedup, "GROUP", 100)
    monkeypatch.setattr(dedup, "PIECE", 50)
    finder = dedup.DuplicateFinder()
    hashes = [5] * 20_000 + list(range(1 << 20, (1 << 20) + 3000))
    for start in range(0, len(hashes), 700):
        finder.add_many(hashes[start : start + 700])
    found = finder.repeated()
    assert list(found.items()) == [5]
    assert finder.repeats == 19_999


@pytest.mark.parametrize("as_list", [True, False])
def test_buffers_spill_at_the_cap_whether_their_length_is_known_or_not(
    monkeypatch: pytest.MonkeyPatch, as_list: bool
) -> None:
    monkeypatch.setattr(dedup, "SPILL_AT", 1000)
    finder = dedup.DuplicateFinder()
    for start in range(0, 10_000, 300):
        batch = range(start, start + 300)
        finder.add_many(list(batch) if as_list else iter(batch))
        assert sum(map(len, finder._parts)) < 1000 + 300  # what memory holds stays bounded
    assert not finder.repeated()
