"""What the API tells about itself: response schemas, the OpenAPI document, error texts."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from ..config import Config, SchemaField
from .keys import PREFIX_TYPES, param_schema, value_schema

DESCRIPTION = (
    "Read the items batchdrop loaded, by their key, and the ledger of its runs.\n\n"
    "A partition key holding '/' is sent as %2F; a sort key may hold '/' as is. "
    "A composite key (several columns) is one path segment per column, in order: "
    "/items/{p1}/{p2} lists a partition, /items/{p1}/{p2}/{s1}/{s2} is one item. "
    "A date or datetime key is taken in ISO 8601 as well as in its field's format, and "
    "`begins_with` reads its ISO 8601 text (2026-01 is January 2026). "
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
    table = config.table
    partitions = [config.schema_.field(c) for c in table.partition_columns]
    sorts = [config.schema_.field(c) for c in table.sort_columns]
    # parameters the API refuses on this table: not offered, so no client is led to send them
    refused = set() if sorts else {"cursor"}
    if not sorts or (len(sorts) == 1 and sorts[0].type not in PREFIX_TYPES):
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
                        param["schema"] = _key_param(partitions, table.key_separator)
                    elif param["name"] == "sort" and sorts:
                        param["schema"] = _key_param(sorts, table.key_separator)
        schemas = doc.setdefault("components", {}).setdefault("schemas", {})
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
        schemas.update({"Error": ERROR, "Item": item_schema(config), "Run": RUN})
        app.openapi_schema = doc
        return doc

    return build


def _key_param(fields: list[SchemaField], separator: str) -> dict[str, Any]:
    """A key part's path parameter: typed for one column; for a composite key, one path
    segment per column (the parameter stands for all of them)."""
    if len(fields) == 1:
        return param_schema(fields[0])
    names = ", ".join(f"{f.name} ({f.type})" for f in fields)
    shape = "/".join("{" + f.name + "}" for f in fields)
    return {
        "type": "string",
        "minLength": 1,
        "description": f"{names}: one path segment each, {shape}; stored joined by {separator!r}",
    }


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
