"""Config errors that name the fix: every problem of a config, unknown keys first, each with
the closest valid name, and no "is required" for a key that a misspelt one stands for."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from typing import Any, get_args

from pydantic import BaseModel, ValidationError


def _model_at(root: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The settings model that holds the key at ``loc`` (list indexes skipped)."""
    model: type[BaseModel] = root
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        found = next(
            (f for n, f in model.model_fields.items() if part in (n, f.alias)),
            None,
        )
        if found is None:
            return None
        inner = found.annotation
        for arg in (inner, *get_args(inner)):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                model = arg
                break
        else:
            return None
    return model


def _setting_names(model: type[BaseModel]) -> list[str]:
    """The names a person writes: ``missingValues`` and ``schema``, not the Python names."""
    return [f.alias or n for n, f in model.model_fields.items() if not f.exclude]


def _field_name(data: Any, loc: tuple[Any, ...]) -> str | None:
    """The name of the schema field that ``loc`` is in, to point at it among many."""
    if len(loc) > 2 and loc[0] in ("schema", "schema_") and loc[1] == "fields":
        try:
            name = data["schema"]["fields"][loc[2]]["name"]
        except (KeyError, IndexError, TypeError):
            return None
        return name if isinstance(name, str) else None
    return None


def describe_problems(
    e: ValidationError, data: Any, root: type[BaseModel], where: Callable[[tuple[Any, ...]], str]
) -> list[tuple[str, str]]:
    """(key, what is wrong and how to fix it) for every problem: unknown keys first, each
    with the closest valid name; a required key that a misspelt one stands for is not
    reported twice."""
    unknown: list[tuple[str, str]] = []
    others: list[tuple[str, str]] = []
    meant: set[tuple[Any, ...]] = set()
    errors = e.errors()
    for err in errors:
        if err["type"] != "extra_forbidden":
            continue
        loc = tuple(err["loc"])
        model = _model_at(root, loc)
        names = _setting_names(model) if model else []
        close = difflib.get_close_matches(str(loc[-1]), names, n=1, cutoff=0.6)
        if close:
            meant.add((*loc[:-1], close[0]))
            hint = f" (did you mean {close[0]}?)"
        else:
            known = f"; the settings here: {', '.join(names)}" if names else ""
            hint = " (check its spelling)" + known
        unknown.append((where(loc), "is not a batchdrop setting" + hint))
    for err in errors:
        loc = tuple(err["loc"])
        kind = err["type"]
        if kind == "extra_forbidden":
            continue
        if kind == "missing":
            if loc in meant:
                continue
            msg = "is required"
        else:
            msg = err["msg"].removeprefix("Value error, ")
            if kind == "literal_error":
                allowed = _literal_values(err)
                close = difflib.get_close_matches(str(err.get("input")), allowed, n=1)
                msg = f"got {err.get('input')!r}; " + msg
                if close:
                    msg += f" (did you mean {close[0]}?)"
        field = _field_name(data, loc)
        others.append((where(loc), msg + (f" (field {field!r})" if field else "")))
    return unknown + others


def _literal_values(err: Any) -> list[str]:
    """The values a Literal setting allows, from pydantic's error context."""
    expected = (err.get("ctx") or {}).get("expected", "")
    return re.findall(r"'([^']*)'", str(expected))
