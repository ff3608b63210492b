"""What the API tells about itself: response schemas, the OpenAPI document, error texts."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from ..config import Config
from .keys import param_schema, value_schema

DESCRIPTION = (
    "Read the items batchdrop loaded, by their key, and the ledger of its runs.\n\n"
    "A partition key holding '/' is sent as %2F; a sort key may hold '/' as is. "
    "Pages: pass `next_cursor` back as `cursor` until it is null."
)

ERROR = {"type": "object", "required": ["detail"], "properties": {"detail": {"type": "string"}}}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json({"$ref": "#/components/schemas/Error"}, description)


def item_schema(config: Config) -> dict[str, Any]:
    key = set(config.table.key)
    props: dict[str, Any] = {}
    for f in config.schema_.fields:
        s = value_schema(f)
        props[f.name] = s if f.name in key else {"anyOf": [s, {"type": "null"}]}
    return {"type": "object", "properties": props, "required": list(config.table.key)}


def item_responses(config: Config) -> dict[int | str, dict[str, Any]]:
    return {
        200: _json({"$ref": "#/components/schemas/Item"}, "The item"),
        400: _error("A key does not fit its field's type"),
        404: _error("No item has this key"),
    }


def page_responses(config: Config) -> dict[int | str, dict[str, Any]]:
    page = {
        "type": "object",
        "required": ["items", "count", "next_cursor"],
        "properties": {
            "items": {"type": "array", "items": {"$ref": "#/components/schemas/Item"}},
            "count": {"type": "integer", "minimum": 0},
            "next_cursor": {
                "anyOf": [{"type": "string"}, {"type": "null"}],
                "description": "pass as cursor for the next page; null at the end",
            },
        },
    }
    return {
        200: _json(page, "A page of the partition's items (empty if it has none)"),
        400: _error("A bad parameter"),
    }


def health_responses() -> dict[int | str, dict[str, Any]]:
    health = {
        "type": "object",
        "required": ["status"],
        "properties": {
            "status": {"type": "string", "enum": ["ok"]},
            "version": {"type": "string"},
            "table": {"type": "string"},
            "key": {"type": "array", "items": {"type": "string"}},
        },
    }
    return {200: _json(health, "The API is up")}


_NULLABLE_STR = {"anyOf": [{"type": "string"}, {"type": "null"}]}
_COUNT = {"type": "integer", "minimum": 0}
RUN = {
    "type": "object",
    "required": ["run_id", "file", "state", "links"],
    "properties": {
        "run_id": {"type": "string"},
        "file": {"type": "string"},
        "source": _NULLABLE_STR,
        "version": _NULLABLE_STR,
        "size": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
        "state": {"type": "string", "enum": ["running", "committed", "done", "failed"]},
        "status": _NULLABLE_STR,
        "started_at": _NULLABLE_STR,
        "finished_at": _NULLABLE_STR,
        "rows_read": _COUNT,
        "rows_loaded": _COUNT,
        "rows_rejected": _COUNT,
        "rows_duplicate": _COUNT,
        "reason": _NULLABLE_STR,
        "moved_to": _NULLABLE_STR,
        "rejected_rows_report": _NULLABLE_STR,
        "receipt": {"anyOf": [{"type": "object"}, {"type": "null"}]},
        "links": {
            "type": "object",
            "required": ["self", "rejected_rows_report"],
            "properties": {"self": {"type": "string"}, "rejected_rows_report": _NULLABLE_STR},
        },
    },
}


def runs_responses() -> dict[int | str, dict[str, Any]]:
    runs = {
        "type": "object",
        "required": ["runs", "count", "next_before"],
        "properties": {
            "runs": {"type": "array", "items": {"$ref": "#/components/schemas/Run"}},
            "count": _COUNT,
            "next_before": {
                "anyOf": [{"type": "string"}, {"type": "null"}],
                "description": "pass as before for older runs; null at the end",
            },
        },
    }
    return {200: _json(runs, "Runs, newest first"), 400: _error("A bad parameter")}


def run_responses() -> dict[int | str, dict[str, Any]]:
    return {
        200: _json({"$ref": "#/components/schemas/Run"}, "The run"),
        404: _error("No run has this id"),
    }


def openapi_builder(app: FastAPI, config: Config) -> Callable[[], dict[str, Any]]:
    """``app.openapi``: FastAPI's document, with 400 in place of 422 and typed key parameters."""
    partition = config.schema_.field(config.table.partition_key)
    sort = config.schema_.field(config.table.sort_key) if config.table.sort_key else None
    # parameters the API refuses on this table: not offered, so no client is led to send them
    refused = set() if sort is not None else {"cursor"}
    if sort is None or sort.type != "string":
        refused.add("begins_with")

    def build() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        doc = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        for item in doc.get("paths", {}).values():
            for op in item.values():
                responses = op.setdefault("responses", {})
                if responses.pop("422", None) is not None and "400" not in responses:
                    responses["400"] = _error("A bad parameter")
                if "parameters" in op:
                    op["parameters"] = [p for p in op["parameters"] if p["name"] not in refused]
                for param in op.get("parameters", []):
                    if param.get("in") != "path":
                        continue
                    if param["name"] == "partition":
                        param["schema"] = param_schema(partition)
                    elif param["name"] == "sort" and sort is not None:
                        param["schema"] = param_schema(sort)
        schemas = doc.setdefault("components", {}).setdefault("schemas", {})
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
        schemas.update({"Error": ERROR, "Item": item_schema(config), "Run": RUN})
        app.openapi_schema = doc
        return doc

    return build


def explain_validation(errors: Sequence[Any]) -> str:
    """One line per bad parameter: where it is, what is wrong, what was given."""
    out = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ())]
        where = f"{loc[0]} parameter {loc[-1]!r}" if len(loc) >= 2 else ".".join(loc) or "request"
        msg = str(err.get("msg", "is not valid"))
        given = err.get("input")
        if err.get("type") == "missing":
            out.append(f"{where} is required")
        elif given is None or isinstance(given, dict):
            out.append(f"{where}: {msg}")
        else:
            out.append(f"{where}: {msg} (got {given!r})")
    return "; ".join(out) or "the request is not valid"
