"""Feeds: several kinds of partner file in one deployment, each with its own schema and table.

A config without ``feeds:`` is one feed that takes every file. With ``feeds:``, each entry names
what it matches under the inbound location (a ``prefix`` and/or a ``glob``) and what it loads
(``table``, ``schema`` and the per-file policies); the top-level settings are every feed's
defaults (mappings merged key by key, lists and values replaced), and the deployment's own
settings (where files come and go, the ledger, who is notified, AWS and deploy settings) are
set once, at the top level. Each feed resolves to a whole ``Config``, so the engine stays one
pipeline per feed and knows nothing of the others.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import ConfigError

if TYPE_CHECKING:
    from .config import Config

#: settings a feed may set for itself (the rest belong to the deployment)
FEED_KEYS = (
    "table",
    "schema",
    "csv",
    "suffix",
    "extra_columns",
    "on_error",
    "max_rejected",
    "duplicates",
    "max_duplicates",
    "batch_size",
    "limits",
    "mode",
    "snapshot_scope",
    "max_deletes",
    "only_if_newer",
    "write",
)
#: settings of the deployment as a whole: one value for every feed
DEPLOYMENT_KEYS = (
    "inbound",
    "archive",
    "errors",
    "ledger",
    "notify",
    "checkpoint",
    "shards",
    "max_attempts",
    "aws",
    "deploy",
)


@dataclass(frozen=True)
class FeedMatch:
    """Which inbound files a feed takes: names (relative to the inbound location, with ``/``)
    that start with ``prefix`` and match ``glob`` (fnmatch on the whole name: ``*`` also
    matches ``/``). Either may be left out; a match with neither takes every file."""

    prefix: str = ""
    glob: str | None = None

    def __call__(self, name: str) -> bool:
        if not name.startswith(self.prefix):
            return False
        return self.glob is None or fnmatch.fnmatchcase(name, self.glob)

    def describe(self) -> str:
        parts = [f"prefix {self.prefix!r}"] if self.prefix else []
        if self.glob is not None:
            parts.append(f"glob {self.glob!r}")
        return " and ".join(parts) or "every file"


@dataclass(frozen=True)
class Feed:
    """One feed: its name (None for a config without ``feeds:``), what it matches, and the
    whole config its files are loaded with."""

    name: str | None
    match: FeedMatch
    config: Config


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` on top of ``base``: mappings merged key by key, anything else replaced."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def resolve_feeds(
    data: dict[str, Any],
    raw: Any,
    validate: Callable[[dict[str, Any], str], Config],
    source: str,
) -> list[Feed]:
    """Each entry of ``feeds:`` as a ``Feed`` whose config is the top-level settings with the
    feed's own on top. ``validate(merged, where)`` validates one feed's settings and names
    its problems under ``where`` (``feeds[1] (grades)``)."""
    if not isinstance(raw, list) or not raw:
        raise ConfigError(
            "must be a list of feeds, each with a name and what it matches",
            key="feeds",
            source=source,
        )
    defaults = {k: v for k, v in data.items() if k != "feeds"}
    feeds: list[Feed] = []
    seen: set[str] = set()
    for i, entry in enumerate(raw):
        at = f"feeds[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(
                "must be a mapping (name, match, table, schema, ...)", key=at, source=source
            )
        name = entry.get("name")
        if not isinstance(name, str) or not _name_ok(name):
            raise ConfigError(
                "needs a name: letters, digits, '_' and '-', starting with a letter "
                "(it is shown in receipts, runs and metrics)",
                key=f"{at}.name",
                source=source,
            )
        if name in seen:
            raise ConfigError(f"feed {name!r} is declared twice", key=f"{at}.name", source=source)
        seen.add(name)
        at = f"{at} ({name})"
        match = _match(entry.get("match"), at, source)
        own = {k: v for k, v in entry.items() if k not in ("name", "match")}
        for key in own:
            if key in DEPLOYMENT_KEYS:
                raise ConfigError(
                    "is a setting of the whole deployment: set it at the top level",
                    key=f"{at}.{key}",
                    source=source,
                )
            if key not in FEED_KEYS:
                import difflib

                close = difflib.get_close_matches(key, [*FEED_KEYS, "name", "match"], n=1)
                hint = (
                    f" (did you mean {close[0]}?)"
                    if close
                    else f"; a feed's settings: name, match, {', '.join(FEED_KEYS)}"
                )
                raise ConfigError(f"is not a feed setting{hint}", key=f"{at}.{key}", source=source)
        config = validate(merge(defaults, own), at)
        config.feed = name
        feeds.append(Feed(name, match, config))
    return feeds


def _name_ok(name: str) -> bool:
    return (
        bool(name)
        and name[0].isascii()
        and name[0].isalpha()
        and all(c.isascii() and (c.isalnum() or c in "_-") for c in name)
    )


def _match(raw: Any, at: str, source: str) -> FeedMatch:
    if raw is None:
        raise ConfigError(
            "is required: the files this feed takes, e.g. {prefix: students/} or "
            "{glob: 'grades_*.csv'}",
            key=f"{at}.match",
            source=source,
        )
    if isinstance(raw, str):
        raw = {"glob": raw}
    if not isinstance(raw, dict) or not raw or set(raw) - {"prefix", "glob"}:
        raise ConfigError(
            "must be a mapping with a prefix and/or a glob, "
            "e.g. {prefix: students/, glob: '*.csv'}",
            key=f"{at}.match",
            source=source,
        )
    prefix, glob = raw.get("prefix") or "", raw.get("glob")
    if not isinstance(prefix, str) or (glob is not None and not isinstance(glob, str)):
        raise ConfigError("prefix and glob are text", key=f"{at}.match", source=source)
    if prefix.startswith("/"):
        raise ConfigError(
            "prefix is relative to the inbound location: leave out the leading '/'",
            key=f"{at}.match.prefix",
            source=source,
        )
    return FeedMatch(prefix, glob)


def route(feeds: list[Feed], name: str) -> Feed | None:
    """The first feed whose match takes the file ``name`` (relative to inbound), or None."""
    return next((f for f in feeds if f.match(name)), None)


def unmatched_reason(feeds: list[Feed], name: str) -> str:
    listed = "; ".join(f"{f.name}: {f.match.describe()}" for f in feeds)
    return f"{name} matches no feed ({listed}): add a feed for it, or rename the file"
