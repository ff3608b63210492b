"""``python tests/moto_server.py -H 127.0.0.1 -p PORT``: moto's own server (``moto.server``),
with one race of its DynamoDB fixed.

moto keeps a table's items in a ``defaultdict(dict)`` keyed by partition key objects whose
``__hash__`` and ``__eq__`` are Python code. Two requests that create the same partition at
the same moment (two items of one partition key in two concurrent BatchWriteItem calls, as a
load with requests in flight sends) can each miss the key, each make a new partition and each
store it: the first item is then lost, though its request was answered as written. Two 1M-row
loads of up to 32 requests in flight lost 6 and 8 items this way; batchdrop had been
answered for every one (``bench/dynamodb.py``'s memory runs). A partition is made here with
``dict.setdefault``, which never replaces one that another thread has just stored.

moto's conditional writes check the condition and then write, with no lock: two racing
PutItem calls on condition that the item is as each read it could both succeed under the
threaded server, where DynamoDB lets one (the ledger's racing claims of one file both won, once
in a full test run). Here ``put_item``, ``update_item``, ``delete_item`` and
``transact_write_items`` run one at a time.

The tests' fixtures (``tests/conftest.py``) and the benches (``bench/dynamo_measure.py``) start
moto through this file; every other line of the server is moto's.
"""

from __future__ import annotations

import functools
import sys
import threading
from collections.abc import Callable
from typing import Any

#: the conditional writes of moto's DynamoDB, one at a time
WRITES = ("put_item", "update_item", "delete_item", "transact_write_items")
_WRITING = threading.RLock()


class Partitions(dict):  # type: ignore[type-arg]
    """A table's items: partition key → {sort key → item}, a partition made atomically."""

    def __missing__(self, key: Any) -> Any:
        return self.setdefault(key, {})


def serialised(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn``, run under the one lock of every conditional write."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        with _WRITING:
            return fn(*args, **kwargs)

    return run


def patch() -> None:
    from moto.dynamodb.models import DynamoDBBackend, table

    for name in WRITES:
        setattr(DynamoDBBackend, name, serialised(getattr(DynamoDBBackend, name)))

    made = table.Table.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        made(self, *args, **kwargs)
        self.items = Partitions(self.items)

    table.Table.__init__ = init  # type: ignore[method-assign]


if __name__ == "__main__":
    patch()
    from moto.server import main

    main(sys.argv[1:])
