"""The commands that read what was loaded (`runs`, `get`) and write a starting config (`init`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from .cli import _state, _status_style
from .config import Config
from .errors import ConfigError
from .report import FAILED, LOADED, LOADED_WITH_REJECTS, REJECTED


@click.command()
@click.option(
    "--status",
    type=click.Choice([LOADED, LOADED_WITH_REJECTS, REJECTED, FAILED]),
    help="Only runs with this outcome.",
)
@click.option("--limit", default=20, show_default=True, help="How many runs to show.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines (one run each).")
def runs(status: str | None, limit: int, as_json: bool) -> None:
    """The run ledger: one line per file run, newest first."""
    from .adapters import Backends

    backends = Backends(_state().config())
    records = backends.ledger.runs(status=status, limit=limit)
    if as_json:
        for rec in records:
            click.echo(json.dumps(rec, ensure_ascii=False, default=str))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(
        "run",
        "file",
        "state",
        "status",
        "read",
        "loaded",
        "rejected",
        "dup",
        "finished",
        box=None,
        header_style="bold",
    )
    for rec in records:
        style = _status_style(rec["status"] or "")
        table.add_row(
            rec["run_id"],
            rec["file"],
            rec["state"],
            f"[{style}]{rec['status'] or ''}[/{style}]" if style else rec["status"] or "",
            *(
                str(rec[k] if rec[k] is not None else "")
                for k in ("rows_read", "rows_loaded", "rows_rejected", "rows_duplicate")
            ),
            rec["finished_at"] or "",
        )
    Console(width=None if sys.stdout.isatty() else 200).print(table if records else "no runs yet")


@click.command()
@click.argument("partition")
@click.argument("sort", required=False)
@click.option("--begins-with", metavar="PREFIX", help="Only sort keys starting with PREFIX.")
@click.option("--limit", type=int, default=None, help="At most this many items.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines (one item each).")
def get(
    partition: str, sort: str | None, begins_with: str | None, limit: int | None, as_json: bool
) -> None:
    """Read the table: one item by its full key (PARTITION SORT), or all items of PARTITION
    in sort-key order.

    Exits 1 when nothing is found.
    """
    from .adapters import Backends
    from .schema import parse_value

    config = _state().config()
    schema = config.schema_
    try:
        pk = parse_value(schema.field(config.table.partition_key), partition)
        sk = (
            parse_value(schema.field(config.table.sort_key), sort)
            if sort is not None and config.table.sort_key
            else None
        )
    except ValueError as e:
        raise ConfigError(f"bad key: {e}") from None
    if sort is not None and not config.table.sort_key:
        raise ConfigError(f"the table has no sort key; use: batchdrop get {partition}")
    table = Backends(config).table
    if sk is not None:
        item = table.get((pk, sk))
        items = [item] if item else []
    else:
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

    if as_json:
        for item in items:
            click.echo(
                json.dumps(
                    {
                        k: to_text(v) if not isinstance(v, int | bool) else v
                        for k, v in item.items()
                    },
                    ensure_ascii=False,
                )
            )
        return
    if not items:
        return
    from rich.console import Console
    from rich.table import Table

    names = [f.name for f in config.schema_.fields]
    table = Table(*names, box=None, header_style="bold")
    for item in items:
        table.add_row(*(to_text(item.get(n)) or "" for n in names))
    Console(width=None if sys.stdout.isatty() else 200).print(table)


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
