"""The query API of a deployment with feeds: each feed's table under ``/feeds/{feed}/``.

- ``GET /feeds/{feed}/items/{partition}`` and ``/feeds/{feed}/items/{partition}/{sort}``: the
  same two access patterns as a single-feed API's ``/items/…``, on that feed's table (its own
  key, its own types); ``/feeds/{feed}/runs`` that feed's runs, ``/feeds/{feed}/docs`` its
  documentation.
- ``GET /feeds``: the feeds, what each matches and its table's key.
- ``GET /runs``, ``GET /runs/{run_id}``: every feed's runs (and those of files that matched no
  feed), each naming its feed; ``?feed=NAME`` keeps one feed's.
- An unknown feed is a 404 that lists the feeds; ``/items/…`` (which table?) a 404 that says
  where a feed's items are.

A config without ``feeds:`` gets ``create_app`` as it always was (``create_api`` chooses).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any

from fastapi import FastAPI, Path, Query
from fastapi.responses import JSONResponse, Response

from .. import __version__
from ..config import Config
from ..config_feeds import Feed
from ..feed_runs import deployment_runs, find_run
from .app import (
    DEFAULT_RUNS,
    MAX_RUN_ID,
    MAX_RUNS,
    RunStatus,
    create_app,
    json_response,
    run_body,
)
from .keys import FEED_PREFIX, Scope, route_path

FEEDS = "/feeds/"


def create_api(config: Config) -> Any:
    """The ASGI app of the query API for ``config``: with ``feeds:``, one app per feed under
    ``/feeds/{feed}/`` and the deployment's own routes; without, ``create_app`` as it was."""
    if config.feeds[0].name is None:
        return create_app(config)
    return FeedsApp(config)


class FeedsApp:
    """ASGI: ``/feeds/{feed}/…`` to that feed's app (built on its first request), the rest to
    the deployment's app."""

    def __init__(self, config: Config):
        self.config = config
        self.feeds = {f.name: f for f in config.feeds}
        self.apps: dict[str, Any] = {}
        self.root = _root_app(config, self)

    def app_of(self, feed: Feed) -> Any:
        name = str(feed.name)
        if name not in self.apps:
            self.apps[name] = create_app(feed.config)
        return self.apps[name]

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            path = route_path(scope)
            if path.startswith(FEEDS):
                name, slash, _rest = path[len(FEEDS) :].partition("/")
                feed = self.feeds.get(name)
                if feed is not None and slash:
                    at = FEEDS + name
                    scope = dict(scope)
                    scope["root_path"] = scope.get("root_path", "") + at
                    scope[FEED_PREFIX] = at
                    await self.app_of(feed)(scope, receive, send)
                    return
        await self.root(scope, receive, send)


def _root_app(config: Config, feeds_app: FeedsApp) -> FastAPI:
    sqlite = any(f.config.ledger_url.startswith("sqlite:///") for f in config.feeds)
    # sqlite3 connections belong to the thread that opened them: one thread for SQLite
    executor = ThreadPoolExecutor(max_workers=1 if sqlite else 8, thread_name_prefix="batchdrop")
    opened: dict[str, Any] = {}
    names = [str(f.name) for f in config.feeds]
    app = FastAPI(
        title="batchdrop",
        version=__version__,
        description="The feeds of this deployment: each feed's items under /feeds/{feed}/.",
    )

    async def call(fn: Any, *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(executor, lambda: fn(*args, **kwargs))

    def not_found(detail: str) -> Response:
        return JSONResponse({"detail": detail}, status_code=404)

    @app.get("/health", summary="Is the API up")
    async def health() -> Response:
        return json_response(
            {"status": "ok", "version": __version__, "feeds": [_feed_body(f) for f in config.feeds]}
        )

    @app.get("/feeds", summary="The feeds: what each matches, and its table's key")
    async def list_feeds() -> Response:
        return json_response({"feeds": [_feed_body(f) for f in config.feeds]})

    @app.get("/runs", summary="Every feed's runs, newest first")
    async def list_runs(
        status: Annotated[RunStatus | None, Query(description="only runs with this status")] = None,
        feed: Annotated[str | None, Query(description="only this feed's runs")] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_RUNS, description="runs per page")] = DEFAULT_RUNS,
        before: Annotated[
            str | None, Query(min_length=1, max_length=MAX_RUN_ID, description="next_before")
        ] = None,
    ) -> Response:
        if feed is not None and feed not in feeds_app.feeds:
            return not_found(f"no feed named {feed!r}; the feeds: {', '.join(names)}")
        runs = await call(
            deployment_runs,
            config,
            status=status,
            limit=limit,
            feed=feed,
            before=before,
            opened=opened,
        )
        more = runs[-1]["run_id"] if len(runs) >= limit and runs else None
        return json_response(
            {"runs": [run_body(r) for r in runs], "count": len(runs), "next_before": more}
        )

    @app.get("/runs/{run_id}", summary="One run: its record and receipt")
    async def get_run(run_id: Annotated[str, Path(description="the run's id")]) -> Response:
        run = await call(find_run, config, run_id, opened) if len(run_id) <= MAX_RUN_ID else None
        if run is None:
            return not_found(f"no run with id {run_id!r}")
        return json_response(run_body(run))

    @app.get("/feeds/{feed}/{rest:path}", include_in_schema=False)
    async def unknown_feed(feed: str, rest: str) -> Response:
        return not_found(f"no feed named {feed!r}; the feeds: {', '.join(names)}")

    @app.get("/items/{rest:path}", include_in_schema=False)
    async def which_feed(rest: str) -> Response:
        return not_found(
            f"this deployment has feeds ({', '.join(names)}), each with its own table: "
            f"read a feed's items at /feeds/{{feed}}/items/{rest}"
        )

    from ..web.pages import add_pages

    add_pages(app, config, call, lambda: opened)
    return app


def _feed_body(feed: Feed) -> dict[str, Any]:
    name = str(feed.name)
    return {
        "name": name,
        "match": {"prefix": feed.match.prefix or None, "glob": feed.match.glob},
        "table": feed.config.table.table_name,
        "key": list(feed.config.table.key),
        "links": {"items": f"{FEEDS}{name}/items/{{partition}}", "docs": f"{FEEDS}{name}/docs"},
    }
