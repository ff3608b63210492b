"""The runs of a whole deployment, newest first: every ledger its feeds keep (DynamoDB feeds
share one; a SQLite feed keeps its own, in its database), each run with the feed it loaded
for. What ``batchdrop runs`` and the query API's ``/runs`` list."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .config_feeds import Feed, route

if TYPE_CHECKING:
    from .config import Config
    from .ports import Ledger


def feed_of_run(feeds: list[Feed], rec: dict[str, Any]) -> str | None:
    """The feed a run loaded for: its receipt's, or for a run under way the feed its file's
    name matches (None: a config without feeds:, or a file that matched none)."""
    receipt = rec.get("receipt") or {}
    if receipt.get("status"):
        return receipt.get("feed")  # type: ignore[no-any-return]
    found = route(feeds, str(rec.get("file") or ""))
    return found.name if found is not None else None


def ledgers(config: Config, opened: dict[str, Ledger] | None = None) -> list[Ledger]:
    """Each ledger of the deployment once, in the order of the feeds that keep them
    (``opened``: the ledgers a long-lived caller keeps open, by URL)."""
    from .adapters import Backends

    seen: dict[str, Ledger] = {} if opened is None else opened
    urls: list[str] = []
    for feed in config.feeds:
        url = feed.config.ledger_url
        if url not in seen:
            seen[url] = Backends(feed.config).ledger
        if url not in urls:
            urls.append(url)
    return [seen[u] for u in urls]


def deployment_runs(
    config: Config,
    *,
    status: str | None = None,
    limit: int = 50,
    feed: str | None = None,
    before: str | None = None,
    each: Callable[[Ledger, dict[str, Any]], None] | None = None,
    opened: dict[str, Ledger] | None = None,
) -> list[dict[str, Any]]:
    """The newest ``limit`` runs of every ledger (older than the run ``before``; only
    ``feed``'s with ``feed``), each with its ``feed``. Run ids sort by time, so the runs of
    several ledgers merge by them. ``each(ledger, record)`` sees every record taken."""
    feeds = config.feeds
    found: list[dict[str, Any]] = []
    for ledger in ledgers(config, opened):
        taken: list[dict[str, Any]] = []
        after: str | None = None  # this ledger's own cursor
        while len(taken) < limit:
            page = ledger.runs(status=status, limit=limit, before=after)
            for rec in page:
                rec["feed"] = feed_of_run(feeds, rec)
                if (feed is None or rec["feed"] == feed) and (
                    before is None or str(rec["run_id"]) < before
                ):
                    if each is not None:
                        each(ledger, rec)
                    taken.append(rec)
            if len(page) < limit or not page:
                break
            after = str(page[-1]["run_id"])
        found += taken[:limit]
    found.sort(key=lambda r: str(r["run_id"]), reverse=True)
    return found[:limit]


def find_run(
    config: Config, run_id: str, opened: dict[str, Ledger] | None = None
) -> dict[str, Any] | None:
    """One run, from whichever ledger holds it, with its feed."""
    for ledger in ledgers(config, opened):
        rec = ledger.get_run(run_id)
        if rec is not None:
            rec["feed"] = feed_of_run(config.feeds, rec)
            return rec
    return None
