"""The moto server the tests and benches start (tests/moto_server.py) keeps every item that two
threads store in one new partition at the same moment, where moto's own table loses one; and
runs its conditional writes one at a time, as DynamoDB decides them."""

from __future__ import annotations

import sys
import threading
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from tests.moto_server import WRITES, Partitions, patch, serialised


class Key:
    """A partition key as moto's: hashed and compared in Python code, so a thread can be
    switched out between a lookup that misses and the store."""

    def __init__(self, value: int):
        self.value = value

    def __hash__(self) -> int:
        return hash(self.value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Key) and self.value == other.value


def items_kept(make: Callable[[], Any]) -> int:
    """Eight threads store an item each in the same 20,000 new partitions, switching threads
    as often as the interpreter can."""
    items = make()

    def store(thread: int) -> None:
        for n in range(20_000):
            items[Key(n)][thread] = True

    threads = [threading.Thread(target=store, args=(t,)) for t in range(8)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    return sum(map(len, items.values()))


def test_partitions_made_at_the_same_moment_keep_every_item() -> None:
    lost = [8 * 20_000 - items_kept(lambda: defaultdict(dict)) for _ in range(3)]
    assert any(lost), "moto's defaultdict kept every item: the race is not shown"
    assert [items_kept(Partitions) for _ in range(3)] == [8 * 20_000] * 3


def test_the_patch_gives_moto_tables_their_partitions() -> None:
    from moto.dynamodb.models.table import Table

    made = Table.__init__
    patch()
    try:
        table = Table(
            "t",
            account_id="123456789012",
            region="us-east-1",
            schema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            attr=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
        )
    finally:
        Table.__init__ = made  # type: ignore[method-assign]
    assert type(table.items) is Partitions


def test_conditional_writes_run_one_at_a_time() -> None:
    """A write that checks, waits, then writes: four threads at once overlap without the lock,
    never with it."""
    import time

    def most_at_once(write: Callable[[], None]) -> int:
        threads = [threading.Thread(target=write) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return peak[0]

    now, peak = [0], [0]

    def check_then_write() -> None:
        now[0] += 1
        peak[0] = max(peak[0], now[0])
        time.sleep(0.02)
        now[0] -= 1

    assert most_at_once(check_then_write) > 1
    peak[0] = 0
    assert most_at_once(serialised(check_then_write)) == 1


def test_the_patch_serialises_motos_conditional_writes() -> None:
    from moto.dynamodb.models import DynamoDBBackend

    patch()
    for name in WRITES:
        assert hasattr(getattr(DynamoDBBackend, name), "__wrapped__"), name
