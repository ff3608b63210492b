"""The runs page, server-rendered (Jinja2, autoescaped: file names and values are partner
data): ``GET /`` the runs newest first, filtered by status, feed and day, with charts of rows
per day and rows a second per run; ``GET /ui/runs/{run_id}`` one run: its receipt, first
errors and rejected rows; ``GET /runs/{run_id}/report`` its rejected-rows report as CSV.

Forms and links only: every page works without JavaScript."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Path, Query
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from jinja2 import Environment, PackageLoader, select_autoescape

from ..config import Config
from ..feed_runs import deployment_runs, find_run
from . import charts
from .reports import NoReport, chunks, first_rows

Call = Callable[..., Awaitable[Any]]
STATUSES = ("loaded", "loaded_with_rejects", "rejected", "failed", "already_processed", "busy")
DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
#: runs the page looks at (the filters apply to them)
PAGE_RUNS = 500

_env = Environment(
    loader=PackageLoader("batchdrop.web", "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters["q"] = lambda s: quote(str(s), safe="")
_env.filters["num"] = lambda n: "" if n is None else f"{int(n):,}"


def add_pages(
    app: FastAPI, config: Config, call: Call, ledgers: Callable[[], dict[str, Any]]
) -> None:
    """The pages on ``app``; ``call`` runs a ledger read off the event loop, ``ledgers`` (in
    that thread) gives the ledgers the app keeps open, by URL."""
    feeds = [f.name for f in config.feeds if f.name is not None]

    def runs(status: str | None, feed: str | None) -> list[dict[str, Any]]:
        return deployment_runs(config, status=status, limit=PAGE_RUNS, feed=feed, opened=ledgers())

    def one(run_id: str) -> dict[str, Any] | None:
        return find_run(config, run_id, ledgers())

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def runs_page(
        status: str | None = Query(None),
        feed: str | None = Query(None),
        day: str | None = Query(None),
    ) -> Response:
        status = status if status in STATUSES else None
        feed = feed if feed in feeds else None
        day = day if day and DAY.fullmatch(day) else None
        found = await call(runs, status, feed)
        if day:
            found = [r for r in found if str(r.get("started_at") or "").startswith(day)]
        html = _env.get_template("runs.html").render(
            runs=[_row(r) for r in found],
            statuses=STATUSES,
            feeds=feeds,
            chosen={"status": status, "feed": feed, "day": day},
            charts=[charts.rows_per_day(found), charts.speed_per_run(found)],
            title="batchdrop runs",
        )
        return HTMLResponse(html)

    @app.get("/ui/runs/{run_id}", response_class=HTMLResponse, include_in_schema=False)
    async def run_page(run_id: str = Path(max_length=128)) -> Response:
        run = await call(one, run_id)
        if run is None:
            return HTMLResponse(_env.get_template("missing.html").render(run_id=run_id), 404)
        receipt = run.get("receipt") if isinstance(run.get("receipt"), dict) else {}
        where = run.get("rejected_rows_report")
        header, rows = await call(first_rows, _config_of(config, run), where)
        html = _env.get_template("run.html").render(
            run=_row(run),
            receipt=receipt,
            errors=(receipt or {}).get("errors") or [],
            header=header,
            rows=rows,
            report=bool(where),
            title=f"batchdrop run {run_id}",
        )
        return HTMLResponse(html)

    @app.get(
        "/runs/{run_id}/report",
        summary="A run's rejected-rows report (CSV), streamed",
        responses={200: {"content": {"text/csv": {}}}, 404: {"description": "no report"}},
    )
    async def report(run_id: str = Path(max_length=128, description="the run's id")) -> Response:
        run = await call(one, run_id)
        if run is None:
            return JSONResponse({"detail": f"no run {run_id!r} in the ledger"}, status_code=404)
        try:
            body = await call(chunks, _config_of(config, run), run.get("rejected_rows_report"))
        except NoReport as e:
            return JSONResponse({"detail": str(e)}, status_code=404)
        name = str(run["rejected_rows_report"]).rsplit("/", 1)[-1]
        return StreamingResponse(
            body,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}"},
        )


def _config_of(config: Config, run: dict[str, Any]) -> Config:
    """The config of the run's feed (its errors location), or the deployment's."""
    for f in config.feeds:
        if f.name is not None and f.name == run.get("feed"):
            return f.config
    return config


def _row(run: dict[str, Any]) -> dict[str, Any]:
    """A ledger record as the page shows it."""
    receipt = run.get("receipt") if isinstance(run.get("receipt"), dict) else {}
    duration = (receipt or {}).get("duration_s")
    started = str(run.get("started_at") or "")
    return {
        **run,
        "feed": run.get("feed") or "",
        "duration": _seconds(duration),
        "size_text": _size(run.get("size")),
        "when": started[:19].replace("T", " "),
        "day": started[:10],
    }


def _seconds(value: Any) -> str:
    if value is None:
        return ""
    s = float(value)
    return f"{s * 1000:.0f} ms" if s < 1 else f"{s:,.1f} s"


def _size(n: Any) -> str:
    if n is None:
        return ""
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1000
    return ""
