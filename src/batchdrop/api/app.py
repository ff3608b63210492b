"""The query API: the table's two access patterns and the run ledger, over HTTP.

``create_app(config)`` gives one FastAPI app for every backend; locally ``batchdrop serve`` runs
it with uvicorn, on AWS ``batchdrop.api.lambda_handler.handler`` runs it behind API Gateway.

- ``GET /items/{partition}``: the items of one partition in sort-key order, a page at a time.
  On a table without a sort key a partition holds at most one item: the page has zero or one
  item, and ``begins_with`` and ``cursor`` are refused (there is nothing to continue).
- ``GET /items/{partition}/{sort}``: one item by its full key, 404 when absent (only on a
  table with a sort key).
- A composite key is one path segment per column: ``/items/UA/1545`` is the partition of
  ``[carrier, flight]``, ``/items/UA/1545/2013-01-01/1`` one item of it.
- ``GET /runs``, ``GET /runs/{run_id}``: the ledger, newest first.
- ``GET /health``.

Every error is ``{"detail": "..."}``; a bad parameter is a 400 that names it.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any, Literal, TypeVar, get_args
from urllib.parse import quote

from fastapi import FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError

from .. import __version__
from ..adapters import Backends
from ..config import Config
from ..errors import BatchdropError, TransientError
from ..ports import RUN_FIELDS, Page
from ..report import BUSY, FAILED, LOADED, LOADED_WITH_REJECTS, REJECTED, SKIPPED
from . import docs
from .encoding import NOT_VALID, CursorError, decode_cursor, dumps, encode_cursor
from .keys import KeyError400, KeyPath, Keys, KeyTexts, key_from_scope

T = TypeVar("T")
RunStatus = Literal[
    "loaded", "loaded_with_rejects", "rejected", "failed", "already_processed", "busy"
]
assert set(get_args(RunStatus)) == {LOADED, LOADED_WITH_REJECTS, REJECTED, FAILED, SKIPPED, BUSY}

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
DEFAULT_RUNS = 50
MAX_RUNS = 500
MAX_RUN_ID = 128  # run ids are ~27 characters; DynamoDB refuses range keys over 1 KB


def _digits(value: Any) -> Any:
    """A count is written with the digits 0-9 only: not '1_000', '١٠', ' 10' or '1.0'."""
    if isinstance(value, str) and not (value.isascii() and value.isdigit()):
        raise PydanticCustomError(
            "int_parsing", "Input should be a valid integer, written with the digits 0-9"
        )
    return value


DIGITS = BeforeValidator(_digits)


class ApiError(Exception):
    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers


def json_response(value: Any, status: int = 200) -> Response:
    return Response(dumps(value), status_code=status, media_type="application/json")


def create_app(config: Config, backends: Backends | None = None) -> FastAPI:
    """The API over ``config``'s table and ledger (opened on the first request that needs them)."""
    keys = Keys(config)
    store = backends or Backends(config)
    # sqlite3 connections belong to the thread that opened them: one thread for SQLite
    workers = 1 if config.table.url.startswith("sqlite:///") else 8
    executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="batchdrop-api")

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await asyncio.get_running_loop().run_in_executor(executor, store.close)
        executor.shutdown(wait=False)

    app = FastAPI(
        title="batchdrop", version=__version__, lifespan=lifespan, description=docs.DESCRIPTION
    )

    async def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """A table or ledger read, off the event loop. A ValueError is the backend refusing a
        key or position of this request (DynamoDB's ValidationException): the request's fault,
        so a 400, not a 500."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(executor, lambda: fn(*args, **kwargs))
        except ValueError as e:
            raise ApiError(400, f"the backend refused this request: {e}") from None

    def real_key(request: Request, partition: str, sort: str | None) -> KeyTexts:
        found = key_from_scope(request.scope)
        return found if found is not None else ((partition,), None if sort is None else (sort,))

    # --- errors -----------------------------------------------------------------------------

    @app.exception_handler(RequestValidationError)
    async def _bad_request(_request: Request, exc: RequestValidationError) -> Response:
        return JSONResponse({"detail": docs.explain_validation(exc.errors())}, status_code=400)

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> Response:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(TransientError)
    async def _transient(_request: Request, exc: TransientError) -> Response:
        return JSONResponse(
            {"detail": f"the backend is not available right now: {exc}"},
            status_code=503,
            headers={"Retry-After": "1"},
        )

    @app.exception_handler(BatchdropError)
    async def _batchdrop_error(_request: Request, exc: BatchdropError) -> Response:
        return JSONResponse({"detail": str(exc)}, status_code=500)

    # --- routes -----------------------------------------------------------------------------

    @app.get("/health", summary="Is the API up", responses=docs.health_responses())
    async def health() -> Response:
        return json_response(
            {
                "status": "ok",
                "version": __version__,
                "table": config.table.table_name,
                "key": list(config.table.key),
            }
        )

    limit_q = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="items per page"), DIGITS]
    cursor_q = Annotated[str | None, Query(description="next_cursor of the previous page")]
    prefix_q = Annotated[str | None, Query(description="only sort keys that begin with this")]
    partition_p = Annotated[
        str,
        Path(
            description=f"the {keys.partition.name} to read"
            if len(keys.partitions) == 1
            else f"the {keys.partition_name} to read, one path segment each"
        ),
    ]

    @app.get(
        "/items/{partition}",
        summary="All items of a partition, in sort-key order",
        responses=docs.page_responses(config),
    )
    async def list_items(
        request: Request,
        partition: partition_p,
        limit: limit_q = DEFAULT_LIMIT,
        cursor: cursor_q = None,
        begins_with: prefix_q = None,
    ) -> Response:
        texts, _ = real_key(request, partition, None)
        pk = parse_key(keys, "partition", texts)
        if keys.sort is None:
            if begins_with is not None:
                raise ApiError(
                    400,
                    "begins_with: this table has no sort key "
                    f"(its key is {keys.partition_name!r} alone)",
                )
            if cursor is not None:
                raise ApiError(
                    400,
                    "cursor: this table has no sort key, so a partition holds "
                    "one item and there is no next page",
                )
            item = None
            if keys.all_storable(pk, keys.partitions, "partition"):
                item = await call(store.table.get, _flat(keys, pk))
            return json_response(page_body(Page([item] if item else []), None))
        prefix = begins_with or None
        if prefix is not None and not keys.sort_is_text:
            raise ApiError(
                400,
                f"begins_with: the sort key {keys.sort.name!r} is "
                f"{_a(keys.sort.type)}; begins_with needs a string, date or datetime sort key",
            )
        after = None
        if cursor is not None:
            try:
                # an edited position never reaches the table: it is checked against the key
                after = keys.position(decode_cursor(cursor, pk, prefix))
            except CursorError as e:
                raise ApiError(400, str(e)) from None
            except ValueError:
                raise ApiError(400, NOT_VALID) from None
        if not keys.all_storable(pk, keys.partitions, "partition") or (
            prefix and not keys.prefix_storable(prefix)
        ):
            return json_response(page_body(Page([]), None))
        page = await call(store.table.query, pk, begins_with=prefix, after=after, limit=limit)
        token = encode_cursor(page.next, pk, prefix) if page.next is not None else None
        return json_response(page_body(page, token))

    if keys.sort is not None:
        sort_field = keys.sort

        @app.get(
            "/items/{partition}/{sort:path}",
            summary="One item by its full key",
            responses=docs.item_responses(config),
        )
        async def get_item(
            request: Request,
            partition: partition_p,
            sort: Annotated[
                str,
                Path(
                    description=f"the {sort_field.name}"
                    if len(keys.sorts) == 1
                    else f"the {keys.sort_name}, one path segment each"
                ),
            ],
        ) -> Response:
            p_texts, s_texts = real_key(request, partition, sort)
            pk = parse_key(keys, "partition", p_texts)
            sk = parse_key(keys, "sort", s_texts or ("",))
            item = None
            if keys.all_storable(pk, keys.partitions, "partition") and keys.all_storable(
                sk, keys.sorts, "sort"
            ):
                item = await call(store.table.get, _flat(keys, pk) + _flat(keys, sk, "sort"))
            if item is None:
                raise ApiError(404, f"no item with {_said(keys, p_texts, s_texts or ())}")
            return json_response(shape(item))

    @app.get("/runs", summary="The run ledger, newest first", responses=docs.runs_responses())
    async def list_runs(
        status: Annotated[RunStatus | None, Query(description="only runs with this status")] = None,
        limit: Annotated[
            int, Query(ge=1, le=MAX_RUNS, description="runs per page"), DIGITS
        ] = DEFAULT_RUNS,
        before: Annotated[
            str | None,
            Query(
                min_length=1,
                max_length=MAX_RUN_ID,
                description="next_before of the previous page: runs older than it",
            ),
        ] = None,
    ) -> Response:
        if config.feed is None:
            runs = await call(store.ledger.runs, status=status, limit=limit, before=before)
        else:  # a feed's app (api/feeds.py): its runs, wherever its ledger is shared
            from ..feed_runs import deployment_runs

            runs = await call(
                deployment_runs, config, status=status, limit=limit, feed=config.feed,
                before=before, opened={config.ledger_url: store.ledger},
            )  # fmt: skip
        more = runs[-1]["run_id"] if len(runs) >= limit and runs else None
        return json_response(
            {"runs": [run_body(r) for r in runs], "count": len(runs), "next_before": more}
        )

    @app.get(
        "/runs/{run_id}", summary="One run: its record and receipt", responses=docs.run_responses()
    )
    async def get_run(run_id: Annotated[str, Path(description="the run's id")]) -> Response:
        run = await call(store.ledger.get_run, run_id) if len(run_id) <= MAX_RUN_ID else None
        if run is None:
            raise ApiError(404, f"no run with id {run_id!r}")
        return json_response(run_body(run))

    names = [f.name for f in config.schema_.fields]

    def shape(item: dict[str, Any]) -> dict[str, Any]:
        """Every schema field in schema order, a missing one as null: the same on each backend."""
        return {name: item.get(name) for name in names}

    def page_body(page: Page, token: str | None) -> dict[str, Any]:
        return {
            "items": [shape(i) for i in page.items],
            "count": len(page.items),
            "next_cursor": token,
        }

    app.state.backends = store
    app.openapi = docs.openapi_builder(app, config)  # type: ignore[method-assign]
    app.add_middleware(KeyPath, partition_parts=len(keys.partitions), sort_parts=len(keys.sorts))
    if config.feed is None:  # the runs page (a deployment with feeds has it at its root)
        from ..web.pages import add_pages

        add_pages(app, config, call, lambda: {config.ledger_url: store.ledger})
    return app


def parse_key(keys: Keys, role: str, texts: tuple[str, ...]) -> Any:
    """The typed key part (a tuple for a composite one); a 400 naming what is wrong."""
    fields = keys.partitions if role == "partition" else keys.sorts
    try:
        return keys.parse_all(fields, role, texts)
    except KeyError400 as e:
        raise ApiError(400, str(e)) from None


def _flat(keys: Keys, value: Any, role: str = "partition") -> tuple[Any, ...]:
    fields = keys.partitions if role == "partition" else keys.sorts
    return tuple(value) if len(fields) > 1 else (value,)


def _said(keys: Keys, p_texts: tuple[str, ...], s_texts: tuple[str, ...]) -> str:
    fields = [*keys.partitions, *keys.sorts]
    return " and ".join(
        f"{f.name} = {t!r}" for f, t in zip(fields, p_texts + s_texts, strict=False)
    )


def _a(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


RUN_BODY_FIELDS = (*RUN_FIELDS, "receipt")
COUNTS = ("size", "rows_read", "rows_loaded", "rows_rejected", "rows_duplicate")


def run_body(run: dict[str, Any]) -> dict[str, Any]:
    """A ledger record, the same fields on every backend, with its links."""
    body = {k: run.get(k) for k in RUN_BODY_FIELDS}
    if "feed" in run:  # the runs of a deployment with feeds (feed_runs.py)
        body["feed"] = run["feed"]
    for k in COUNTS:
        body[k] = int(body[k] or 0)
    body["links"] = {
        "self": "/runs/" + quote(str(run.get("run_id", "")), safe=""),
        "rejected_rows_report": run.get("rejected_rows_report"),
    }
    return body
