"""A deployment's feeds as the stack's tables: a DynamoDB table per feed (feeds naming one table
share it), each reached by the bundled config through the feed's name in the function's
environment, each granted only what its own feeds' writes call.

A config without ``feeds:`` keeps its one table (``Table``, ``BATCHDROP_TABLE__URL``). With
``feeds:``, the feed ``grades`` gets the table ``FeedGradesTable`` and the variables
``BATCHDROP_FEEDS__GRADES__TABLE__URL``/``__NAME``; every feed records its runs in the one
ledger (``LedgerTable``), and the one function routes each file to its feed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import ConfigError
from ..tables.dynamodb_modes import keeps_state
from .policy import Json, TableGrant, ref, sub

if TYPE_CHECKING:
    from ..config import Config

#: the variables of a feed's table (``-`` in a feed's name is ``_``: CloudFormation's variable
#: names are letters, digits and ``_``)
ENV_URL = "BATCHDROP_FEEDS__{feed}__TABLE__URL"
ENV_NAME = "BATCHDROP_FEEDS__{feed}__TABLE__NAME"


@dataclass(frozen=True)
class FeedTable:
    """One feed's table in the stack: the feed, where it is in the config, its table's logical
    id (shared with the feeds before it that name the same table), and its config."""

    feed: str
    at: str
    logical: str
    config: Config

    @property
    def env_name(self) -> str:
        """The feed's name as the environment spells it (``BATCHDROP_FEEDS__<this>__...``)."""
        return env_name(self.feed)


def env_name(feed: str) -> str:
    return feed.upper().replace("-", "_")


def logical_id(feed: str) -> str:
    """``grades`` → ``FeedGradesTable``, ``late-grades_v2`` → ``FeedLateGradesV2Table``: stable
    for a feed's name (a renamed feed is a new table), letters and digits only, and never one
    of the stack's other ids (none starts with ``Feed``)."""
    words = re.split(r"[-_]+", feed)
    return "Feed" + "".join(w[:1].upper() + w[1:] for w in words) + "Table"


def feed_tables(config: Config) -> list[FeedTable] | None:
    """The table of each feed of ``config``, or None for a config without ``feeds:`` (its one
    table is the stack's ``Table``). Feeds that name the same table share it in the stack too,
    under the first one's id.

    A feed must load into DynamoDB: the stack holds DynamoDB tables only. Two feeds whose names
    differ only by case or by ``-``/``_`` would be one feed to the environment (or one table to
    CloudFormation): both are refused, naming the feed.
    """
    feeds = config.feeds
    if len(feeds) == 1 and feeds[0].name is None:
        return None
    out: list[FeedTable] = []
    taken: dict[str, str] = {}
    tables: dict[str, str] = {}  # table name → the logical id of its first feed
    for i, feed in enumerate(feeds):
        name = feed.name or ""
        at = f"feeds[{i}] ({name})"
        url = feed.config.table.url
        if not url.startswith("dynamodb://"):
            raise ConfigError(
                f"feed {name!r} loads into {url}, but a deployed stack holds DynamoDB tables "
                f"only: give it a DynamoDB table (url: dynamodb://{feed.config.table.table_name}) "
                "to deploy it, or keep it out of the deployed config",
                key=f"{at}.table.url",
                source=config.source,
            )
        table = feed.config.table.table_name
        logical = tables.get(table) or logical_id(name)
        names = [(env_name(name), f"variables BATCHDROP_FEEDS__{env_name(name)}__...")]
        if table not in tables:
            names.append((logical.lower(), f"table {logical}"))
        for same, what in names:
            if same in taken:
                raise ConfigError(
                    f"feed {name!r} and feed {taken[same]!r} would share the stack's {what} "
                    "(names are told apart there without case, and '-' is '_'): rename one "
                    "of them to deploy both",
                    key=f"{at}.name",
                    source=config.source,
                )
            taken[same] = name
        tables.setdefault(table, logical)
        out.append(FeedTable(name, at, logical, feed.config))
    return out


def by_table(tables: list[FeedTable]) -> dict[str, list[FeedTable]]:
    """The feeds of each table of the stack, by its logical id, in the config's order."""
    out: dict[str, list[FeedTable]] = {}
    for t in tables:
        out.setdefault(t.logical, []).append(t)
    return out


def grants(tables: list[FeedTable]) -> tuple[TableGrant, ...]:
    """What the loader may do on each table: batches, and single conditional puts when one of
    its feeds writes only_if_newer (each row on condition of the version the table holds)."""
    return tuple(
        TableGrant(
            logical,
            any(t.config.only_if_newer is not None for t in group),
            any(keeps_state(t.config) for t in group),
        )
        for logical, group in by_table(tables).items()
    )


def environment(tables: list[FeedTable]) -> Json:
    """The variables pointing each feed of the bundled config at its table in the stack: its
    URL, and its name where the config gives the table one (else the URL names it)."""
    out: Json = {}
    for t in tables:
        out[ENV_URL.format(feed=t.env_name)] = sub(f"dynamodb://${{{t.logical}}}")
        if t.config.table.name is not None:
            out[ENV_NAME.format(feed=t.env_name)] = ref(t.logical)
    return out


#: Lambda's limit on a function's environment (names and values together)
ENVIRONMENT_LIMIT = 4096
#: the longest a pseudo parameter's value gets, and CloudFormation's generated names:
#: ``<stack>-<logical id>-<13 characters>``, the stack's name being 27 characters at most
PSEUDO_LENGTH = {"AWS::AccountId": 12, "AWS::Region": 14, "AWS::Partition": 10}
STACK_NAME_LENGTH = 27
#: what a topic's Ref adds to its name: ``arn:aws-us-gov:sns:ap-southeast-2:123456789012:``
ARN_PREFIX = 47


def _longest(value: object) -> int:
    """The most characters ``value`` (a string or an intrinsic function) resolves to."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict) and len(value) == 1:
        ((fn, arg),) = value.items()
        if fn == "Ref":
            return _longest({"Fn::Sub": f"${{{arg}}}"})
        if fn == "Fn::Sub" and isinstance(arg, str):
            names = re.findall(r"\$\{([^}]+)\}", arg)
            text = re.sub(r"\$\{[^}]+\}", "", arg)
            return len(text) + sum(_resolved(n) for n in names)
        if fn == "Fn::Join":
            sep, parts = arg
            return len(sep) * max(len(parts) - 1, 0) + sum(_longest(p) for p in parts)
    return 255  # no longer than a name CloudFormation gives


def _resolved(name: str) -> int:
    if name in PSEUDO_LENGTH:
        return PSEUDO_LENGTH[name]
    if name == "AWS::StackName":
        return STACK_NAME_LENGTH
    generated = STACK_NAME_LENGTH + 1 + len(name) + 1 + 13
    return generated + ARN_PREFIX if name == "Topic" else generated


def environment_size(env: Json) -> int:
    """The most bytes the function's environment ``env`` takes once the stack is made, written
    as JSON (``"name":"value",``): Lambda's reckoning is not documented more closely."""
    return sum(len(k) + _longest(v) + 6 for k, v in env.items())


def check_environment(env: Json, tables: list[FeedTable], source: str | None) -> None:
    """Refuse a template whose function's environment may outgrow what Lambda takes: the
    deploy would fail (and roll back) only once CloudFormation reached the function."""
    size = environment_size(env)
    if size > ENVIRONMENT_LIMIT:
        raise ConfigError(
            f"with {len(tables)} feeds the function's environment may reach {size} bytes, more "
            f"than the {ENVIRONMENT_LIMIT} Lambda takes (each feed's table is a variable): "
            "shorten the feeds' names, or deploy some of them as a stack of their own",
            key="feeds",
            source=source,
        )


def suffixes(config: Config) -> list[str]:
    """Every feed's file suffix, in the order the feeds come (one, without ``feeds:``)."""
    return list(dict.fromkeys(f.config.suffix for f in config.feeds))
