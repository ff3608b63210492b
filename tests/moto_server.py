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

The tests' fixtures (``tests/conftest.py``) and the benches (``bench/dynamo_measure.py``) start
moto through this file; every other line of the server is moto's.
"""

from __future__ import annotations

import sys
from typing import Any


class Partitions(dict):  # type: ignore[type-arg]
    """A table's items: partition key → {sort key → item}, a partition made atomically."""

    def __missing__(self, key: Any) -> Any:
        return self.setdefault(key, {})


def patch() -> None:
    from moto.dynamodb.models import table

    made = table.Table.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        made(self, *args, **kwargs)
        self.items = Partitions(self.items)

    table.Table.__init__ = init  # type: ignore[method-assign]


if __name__ == "__main__":
    patch()
    from moto.server import main

    main(sys.argv[1:])
