"""The runtime's metrics as the stack's alarms and dashboard name them.

The function records its figures as CloudWatch embedded metrics (``aws/handler.py``): namespace
``batchdrop``, dimension ``service``; with ``feeds:``, a receipt's figures carry a ``Feed``
dimension beside it (``(none)`` for a file that matched no feed), while a file that failed
before it had a receipt is counted under ``service`` alone.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from .feeds import by_table, feed_tables
from .policy import Json

if TYPE_CHECKING:
    from ..config import Config

#: the embedded metrics' namespace and ``service`` dimension (``aws/handler.py``)
NAMESPACE = SERVICE = "batchdrop"
#: the ``Feed`` dimension of a file that matched no feed
NO_FEED = "(none)"
#: the metrics a receipt records, by status (the dashboard's "files by status")
FILE_METRICS = (
    "FilesLoaded",
    "FilesLoadedWithRejects",
    "FilesRejected",
    "FilesFailed",
    "FilesSkipped",
)
#: metrics also recorded under ``service`` alone with ``feeds:`` (a failure before a receipt)
SERVICE_ONLY_TOO = frozenset({"FilesFailed"})


def feeds_of(config: Config) -> list[str] | None:
    """The feeds whose metrics carry a ``Feed`` dimension (with the no-feed one), or None for
    a config without ``feeds:``."""
    if config.feeds[0].name is None:
        return None
    return [str(f.name) for f in config.feeds] + [NO_FEED]


def dimension_sets(metric: str, feeds: list[str] | None) -> list[list[Json]]:
    """Every dimension set under which the function records ``metric``."""
    service = {"Name": "service", "Value": SERVICE}
    if feeds is None:
        return [[service]]
    out = [[service, {"Name": "Feed", "Value": f}] for f in feeds]
    return [[service], *out] if metric in SERVICE_ONLY_TOO else out


def data_tables(config: Config) -> list[str]:
    """The logical ids of the stack's data tables: ``Table``, or each feed's."""
    tables = feed_tables(config)
    return ["Table"] if tables is None else list(by_table(tables))


def kebab(logical: str) -> str:
    """``FeedLateFeesTable`` → ``feed-late-fees``, ``LedgerTable`` → ``ledger``."""
    words = re.findall(r"[A-Z][a-z0-9]*|[a-z0-9]+", logical.removesuffix("Table"))
    return "-".join(w.lower() for w in words) or "table"
