"""The commands that read what was loaded (`runs`, `get`) and write a starting config (`init`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from .cli import _state
from .cli_output import status_style as _status_style
from .config import Config
from .config_feeds import Feed
from .errors import ConfigError
from .report import FAILED, LOADED, LOADED_WITH_REJECTS, REJECTED

STACK = click.option(
    "--stack",
    "stack_name",
    metavar="NAME",
    help="Read the table and ledger of this deployed stack (its outputs), not the config's.",
)
#: an item with more fields than this prints one field a line
WIDE_ITEM = 8


FEED = click.option(
    "--feed",
    metavar="NAME",
    default=None,
    help="The feed to read (with feeds: in the config).",
)


def _deployment(stack_name: str | None) -> Config:
    config = _state().config()
    if stack_name:
        from .deploy.outputs import stack_config

        config = stack_config(config, stack_name)
    return config


def _feed(config: Config, name: str) -> Feed:
    if config.feeds[0].name is None:
        raise ConfigError(f"--feed {name}: this config has no feeds:")
    for feed in config.feeds:
        if feed.name == name:
            return feed
    raise ConfigError(f"no feed named {name!r}; the feeds: {_names(config)}")


def _names(config: Config) -> str:
    return ", ".join(str(f.name) for f in config.feeds)


def _config(stack_name: str | None, feed: str | None = None) -> Config:
    """The config of the table to read: the feed's own (``--feed``, needed when there are
    several)."""
    config = _deployment(stack_name)
    if feed is not None:
        return _feed(config, feed).config
    if len(config.feeds) > 1:
        raise ConfigError(
            f"this config has {len(config.feeds)} feeds, each with its own table: "
            f"name one with --feed ({_names(config)})"
        )
    return config


@click.command()
@click.option(
    "--status",
    type=click.Choice([LOADED, LOADED_WITH_REJECTS, REJECTED, FAILED]),
    help="Only runs with this outcome.",
)
@click.option("--limit", default=20, show_default=True, help="How many runs to show.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines (one run each).")
@click.option("--feed", metavar="NAME", default=None, help="Only runs of this feed.")
@STACK
def runs(
    status: str | None, limit: int, as_json: bool, feed: str | None, stack_name: str | None
) -> None:
    """The run ledger: one line per file run, newest first (with feeds: in the config, the
    runs of every feed, and the feed each loaded for)."""
    config = _deployment(stack_name)
    if feed is not None:
        _feed(config, feed)
    named = config.feeds[0].name is not None
    from .feed_runs import deployment_runs

    records = deployment_runs(config, status=status, limit=limit, feed=feed, each=shards_progress)
    if as_json:
        for rec in records:
            if not named:
                rec.pop("feed", None)
            click.echo(json.dumps(rec, ensure_ascii=False, default=str))
        return
    from rich.console import Console
    from rich.table import Table

    from .cli_output import state_text

    units = [(rec.get("receipt") or {}).get("write_units") for rec in records]
    shown = any(u is not None for u in units)  # DynamoDB's write units, when counted
    table = Table(
        "run",
        "file",
        *(["feed"] if named else []),
        "state",
        "status",
        "read",
        "loaded",
        "rejected",
        "dup",
        *(["write units"] if shown else []),
        "finished",
        box=None,
        header_style="bold",
    )
    for rec, u in zip(records, units, strict=True):
        style = _status_style(rec["status"] or "")
        table.add_row(
            rec["run_id"],
            rec["file"],
            *([rec["feed"] or "(none)"] if named else []),
            state_text(rec),
            f"[{style}]{rec['status'] or ''}[/{style}]" if style else rec["status"] or "",
            *(
                str(rec[k] if rec[k] is not None else "")
                for k in ("rows_read", "rows_loaded", "rows_rejected", "rows_duplicate")
            ),
            *([f"{u:,.0f}" if u is not None else ""] if shown else []),
            rec["finished_at"] or "",
        )
    Console(width=None if sys.stdout.isatty() else 200).print(table if records else "no runs yet")


def shards_progress(ledger: Any, rec: dict[str, Any]) -> None:
    """A sharded run under way: how many of its shards are through the step it is at, from
    the ledger's count (``progress.sharded.done``)."""
    sharded = (rec.get("progress") or {}).get("sharded") if rec.get("state") == "running" else None
    if not isinstance(sharded, dict) or sharded.get("step") not in ("check", "settle", "write"):
        return
    from .shards import counter_name

    name = counter_name(str(sharded["step"]), int(sharded.get("plan") or 1))
    sharded["done"] = ledger.shards_done(rec["run_id"], name)


@click.command()
@click.argument("key", nargs=-1, required=True)
@click.option("--begins-with", metavar="PREFIX", help="Only sort keys starting with PREFIX.")
@click.option("--limit", type=int, default=None, help="At most this many items.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines (one item each).")
@FEED
@STACK
def get(
    key: tuple[str, ...],
    begins_with: str | None,
    limit: int | None,
    as_json: bool,
    feed: str | None,
    stack_name: str | None,
) -> None:
    """Read the table: one item by its full key, or all items of a partition in sort-key
    order.

    KEY is the values of the key's columns, in order: the partition key's, then the sort
    key's (`get C1 2024-01-05`; with a composite key, one value per column:
    `get UA 1545 2013-01-01T05:00:00`). Give only the partition key's values to list the
    partition; with a composite sort key, the partition and the first sort columns list
    the items whose sort key starts with them.

    An item of more than eight fields prints one field a line. Exits 1 when nothing is found.
    With feeds: in the config, --feed names the feed whose table is read.
    """
    from .adapters import Backends
    from .schema import join_key, parse_value

    config = _config(stack_name, feed)
    schema, tc = config.schema_, config.table
    pks, sks = tc.partition_columns, tc.sort_columns
    usage = " ".join(c.upper() for c in pks) + "".join(f" [{c.upper()}]" for c in sks)
    if len(key) < len(pks) or len(key) > len(pks) + len(sks):
        raise ConfigError(
            f"the key is {', '.join(tc.key)}: give {len(pks)} to {len(pks) + len(sks)} "
            f"value(s) ({len(key)} given); usage: batchdrop get {usage}"
            if sks
            else f"the key is {', '.join(pks)}: give {len(pks)} value(s) ({len(key)} given); "
            f"usage: batchdrop get {usage}"
        )
    try:
        values = [parse_value(schema.field(c), v) for c, v in zip(tc.key, key, strict=False)]
    except ValueError as e:
        raise ConfigError(f"bad key: {e}") from None
    table = Backends(config).table
    if len(values) == len(tc.key) and sks:
        item = table.get(tuple(values))
        items = [item] if item else []
    else:
        pk = tuple(values[: len(pks)]) if len(pks) > 1 else values[0]
        given = values[len(pks) :]
        if given:  # the first columns of a composite sort key: a prefix of the joined text
            begins_with = join_key(given, tc.key_separator) + tc.key_separator + (begins_with or "")
        items = []
        after = None
        while True:
            want = 1000 if limit is None else min(1000, limit - len(items))
            page = table.query(pk, begins_with=begins_with, after=after, limit=want)
            items += page.items
            after = page.next
            if after is None or (limit is not None and len(items) >= limit):
                break
    _echo_items(items, config, as_json)
    if not items:
        click.echo("batchdrop: no item with that key", err=True)
        sys.exit(1)


def _echo_items(items: list[dict[str, Any]], config: Config, as_json: bool) -> None:
    from .schema import to_text

    names = [f.name for f in config.schema_.fields]
    if as_json:
        from .api.encoding import dumps  # numbers as the exact JSON numbers they are

        for item in items:
            click.echo(dumps({n: item.get(n) for n in names}))
        return
    if not items:
        return
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 200)
    if len(names) > WIDE_ITEM:  # one field a line, names aligned; a blank line between items
        width = max(len(n) for n in names)
        for i, item in enumerate(items):
            if i:
                click.echo("")
            for n in names:
                click.echo(f"{n:<{width}}  {to_text(item.get(n)) or ''}")
        return
    table = Table(*names, box=None, header_style="bold")
    for item in items:
        table.add_row(*(to_text(item.get(n)) or "" for n in names))
    console.print(table)


@click.command()
@click.option(
    "--from",
    "sample",
    type=click.Path(exists=True, dir_okay=False),
    help="A sample CSV (or .csv.gz): the schema and key are inferred from it.",
)
@click.option(
    "--output", "-o", default="batchdrop.yaml", show_default=True, help="Where to write the config."
)
@click.option("--force", is_flag=True, help="Overwrite an existing config file.")
def init(sample: str | None, output: str, force: bool) -> None:
    """Write a starting batchdrop.yaml (with --from: inferred from a sample CSV).

    From the sample it infers the delimiter, each column's type (dates and datetimes in
    common forms get their format), the missing-value markers (NA, N/A, NULL, -, ...), and
    the key: the smallest set of columns unique in the sample. A file up to 64 MB is read
    whole; a bigger one is sampled over its whole length. What it cannot be sure of is
    printed and written as a comment in the config.

    Check the inferred types and the guessed key before you load real data.
    """
    from .infer import infer_config

    out = Path(output)
    if out.exists() and not force:
        raise ConfigError(f"{out} exists; pass --force to overwrite it")
    text, notes = infer_config(sample)
    out.write_text(text, encoding="utf-8")
    click.echo(f"wrote {out}")
    for note in notes:
        click.echo(f"  {note}")
    click.echo(f"next: batchdrop --config {out} validate {sample or 'FILE.csv'}")
