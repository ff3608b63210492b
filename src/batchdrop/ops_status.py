"""What ``batchdrop status`` reports, gathered from the ledger(s) and the stores (and, for a
deployed stack, its queues): files by status, rows, the failed files and where each is now,
and what waits."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .report import FAILED, LOADED, LOADED_WITH_REJECTS, REJECTED

if TYPE_CHECKING:
    from .config import Config

#: the order statuses are listed in
STATUS_ORDER = (LOADED, LOADED_WITH_REJECTS, REJECTED, FAILED, "running", "paused", "committed")


def stamp(t: float) -> str:
    """The run id of a run started at ``t`` sorts at or after this (run ids sort by time)."""
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"


def sqs_client(config: Config) -> Any:
    from .aws.clients import client

    return client("sqs", config)


def recent_runs(config: Config, since: float) -> list[dict[str, Any]]:
    """Every run of every ledger of the deployment started since ``since``, newest first."""
    from .feed_runs import feed_of_run, ledgers

    cutoff = stamp(since)
    out: list[dict[str, Any]] = []
    for ledger in ledgers(config):
        before: str | None = None
        while True:
            page = ledger.runs(limit=200, before=before)
            fresh = [r for r in page if str(r["run_id"]) >= cutoff]
            for rec in fresh:
                rec["feed"] = feed_of_run(config.feeds, rec)
            out += fresh
            if len(fresh) < len(page) or len(page) < 200:
                break
            before = str(page[-1]["run_id"])
    out.sort(key=lambda r: str(r["run_id"]), reverse=True)
    return out


def outcome(rec: dict[str, Any]) -> str:
    return str(rec.get("status") or rec.get("state") or "running")


def summary(config: Config, since: float, stack: Any = None) -> dict[str, Any]:
    """What happened since ``since`` and what waits now, as ``status`` prints it."""
    runs = recent_runs(config, since)
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for rec in runs:  # newest first: the first run of each file version is where it stands
        latest.setdefault((str(rec["file"]), str(rec["version"])), rec)
    files: dict[str, int] = {}
    for rec in latest.values():
        files[outcome(rec)] = files.get(outcome(rec), 0) + 1
    order = {s: i for i, s in enumerate(STATUS_ORDER)}
    router = router_of(config)
    failures = [_failure(rec, router) for rec in latest.values() if outcome(rec) == FAILED]
    return {
        "since": datetime.fromtimestamp(since, UTC).isoformat(timespec="seconds"),
        "files": dict(sorted(files.items(), key=lambda kv: order.get(kv[0], 99))),
        "runs": len(runs),
        "failed_runs": sum(1 for r in runs if outcome(r) == FAILED),
        "rows_loaded": sum(int(r.get("rows_loaded") or 0) for r in runs if _counts(r)),
        "rows_rejected": sum(int(r.get("rows_rejected") or 0) for r in runs if _counts(r)),
        "failures": failures,
        **_waiting(config, router, stack, failures),
    }


def _counts(rec: dict[str, Any]) -> bool:
    """Whether the run's row counts are rows that were loaded or rejected (a failed run's
    are not: nothing of it stays)."""
    return outcome(rec) in (LOADED, LOADED_WITH_REJECTS, REJECTED)


def router_of(config: Config) -> Any:
    from .router import Router

    return Router(config, notifiers=[])


def _failure(rec: dict[str, Any], router: Any) -> dict[str, Any]:
    receipt = rec.get("receipt") or {}
    set_aside = bool(receipt.get("set_aside"))
    return {
        "run_id": rec["run_id"],
        "file": rec["file"],
        "feed": rec.get("feed"),
        "finished_at": rec.get("finished_at"),
        "attempt": receipt.get("attempt"),
        "set_aside": set_aside,
        "where": _where(rec, router),
        "reason": rec.get("reason") or receipt.get("reason") or "",
    }


def _where(rec: dict[str, Any], router: Any) -> str:
    """Where a failed run's file is now: ``inbound`` (retried), ``errors`` (set aside), or
    ``gone`` (moved since, by a later run or a person)."""
    if stat_of(router.inbound, str(rec["file"]), versioned=False) is not None:
        return "inbound"
    found = set_aside_ref(rec, router, versioned=False)
    return "errors" if found is not None else "gone"


def stat_of(store: Any, name: str, *, versioned: bool = True) -> Any:
    """``store.stat(name)``; a local file's content hash only when ``versioned`` (it costs a
    read of the whole file)."""
    from .files.local import LocalStore

    if isinstance(store, LocalStore):
        return store.stat(name, versioned=versioned)
    return store.stat(name)


def name_in(store: Any, url: str) -> str | None:
    """The name below ``store`` of the file at ``url`` (None: not one of its files)."""
    base = store.url if store.url.endswith("/") else store.url + "/"
    return url[len(base) :] if url.startswith(base) else None


def set_aside_ref(rec: dict[str, Any], router: Any, *, versioned: bool = True) -> Any:
    """The set-aside file of a failed run, in the errors location (None: not there)."""
    receipt = rec.get("receipt") or {}
    moved_to = rec.get("moved_to") or receipt.get("moved_to")
    errors = router.first.errors
    name = name_in(errors, str(moved_to)) if moved_to and receipt.get("set_aside") else None
    return None if name is None else stat_of(errors, name, versioned=versioned)


def _waiting(
    config: Config, router: Any, stack: Any, failures: list[dict[str, Any]]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if stack is not None and stack.has_queue:
        from .aws.ops import queue_depth

        depth = queue_depth(sqs_client(config), stack.queue)
        out["queue"] = {"waiting": depth.waiting, "in_flight": depth.in_flight}
    else:
        pending = router.pending()
        out["inbound"] = {"waiting": len(pending), "files": [r.name for r in pending[:20]]}
    if stack is not None:
        from .aws.ops import queue_depth

        dead = queue_depth(sqs_client(config), stack.dead_letters)
        out["dead_letter_queue"] = {"waiting": dead.waiting, "in_flight": dead.in_flight}
    out["set_aside"] = [f["file"] for f in failures if f["where"] == "errors"]
    return out
