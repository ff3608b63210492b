"""The commands for the people who run batchdrop: ``status`` (what happened, what waits),
``redrive`` (dead-letter messages back to the queue) and ``retry`` (a failed file again).

Locally they read the config's ledger and folders and never import boto3; with ``--stack``
they read a deployed stack's ledger and queues, found from its outputs.
"""

from __future__ import annotations

import json
import re
import sys
import time
from datetime import UTC, datetime
from typing import Any

import click

from .cli import EXIT_REJECTED, EXIT_RETRY, _state
from .config import Config
from .errors import ConfigError
from .ops_status import name_in, outcome, router_of, set_aside_ref, sqs_client, summary
from .report import FAILED, REJECTED, Receipt

STACK = click.option(
    "--stack",
    "stack_name",
    metavar="NAME",
    help="A deployed stack: its ledger and queues (from its outputs), not the config's.",
)
UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_since(text: str, now: float | None = None) -> float:
    """``24h``, ``90m``, ``7d``, ``2w`` (that long ago), or a date or time in ISO 8601 (UTC
    unless it says otherwise) → seconds since the epoch."""
    now = time.time() if now is None else now
    found = re.fullmatch(r"\s*(\d+)\s*([mhdw])\s*", text)
    if found:
        return now - int(found[1]) * UNITS[found[2]]
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"--since {text!r}: give a duration (30m, 24h, 7d, 2w) or a date or time "
            "(2026-11-28, 2026-11-28T06:00)"
        ) from None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def _deployment(stack_name: str | None) -> tuple[Config, Any]:
    """The config to read (pointed at the stack's resources with ``--stack``), and the
    stack's outputs (None without ``--stack``)."""
    config = _state().config()
    if not stack_name:
        return config, None
    from .deploy.outputs import config_from_outputs, read_stack

    stack = read_stack(config, stack_name)
    return config_from_outputs(config, stack), stack


# --- status ---------------------------------------------------------------------------------


def _echo_summary(s: dict[str, Any], named: bool, where: str) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
    since = datetime.fromisoformat(s["since"]).strftime("%Y-%m-%d %H:%M UTC")
    console.print(f"[bold]{escape(where)}[/bold] since {since}: {s['runs']} run(s)")
    grid = Table.grid(padding=(0, 2))
    files = " · ".join(f"{n} {k.replace('_', ' ')}" for k, n in s["files"].items()) or "none"
    grid.add_row("files", files)
    grid.add_row("rows", f"{s['rows_loaded']:,} loaded · {s['rows_rejected']:,} rejected")
    if "queue" in s:
        q = s["queue"]
        grid.add_row("queue", f"{q['waiting']} waiting · {q['in_flight']} in flight")
    else:
        i = s["inbound"]
        names = ", ".join(i["files"][:5]) + (" …" if i["waiting"] > 5 else "")
        grid.add_row("inbound", f"{i['waiting']} file(s) waiting" + (f": {names}" if names else ""))
    if "dead_letter_queue" in s:
        d = s["dead_letter_queue"]
        hint = " (batchdrop redrive once the cause is fixed)" if d["waiting"] else ""
        grid.add_row("dead letters", f"{d['waiting']} message(s){hint}")
    aside = s["set_aside"]
    grid.add_row(
        "set aside",
        f"{len(aside)} file(s) in errors" + (f": {', '.join(aside[:5])}" if aside else ""),
    )
    console.print(grid)
    if not s["failures"]:
        return
    table = Table(
        "run", "file", *(["feed"] if named else []), "now in", "reason", box=None,
        header_style="bold", title="failed (batchdrop retry RUN_ID runs one again)",
        title_justify="left",
    )  # fmt: skip
    for f in s["failures"]:
        table.add_row(
            f["run_id"],
            escape(f["file"]),
            *([escape(f["feed"] or "(none)")] if named else []),
            f["where"],
            escape(f["reason"]),
        )
    console.print(table)


@click.command()
@click.option(
    "--since",
    default="24h",
    show_default=True,
    metavar="WHEN",
    help="How far back: a duration (30m, 24h, 7d, 2w) or a date or time (2026-11-28T06:00, UTC).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@STACK
def status(since: str, as_json: bool, stack_name: str | None) -> None:
    """What happened lately and what waits now.

    \b
    - files by status (where each file version's latest run left it) and the rows loaded
      and rejected, over the last 24 hours (or --since);
    - each file whose latest run failed, with the reason and where the file is now
      (inbound: it is retried; errors: set aside after max_attempts);
    - what waits: the files in inbound (locally), or the stack's events queue and its
      dead-letter queue (with --stack).

    \b
    Examples:
      batchdrop status
      batchdrop status --since 7d --json
      batchdrop status --stack students
    """
    t = parse_since(since)
    config, stack = _deployment(stack_name)
    s = summary(config, t, stack)
    if as_json:
        click.echo(json.dumps(s, ensure_ascii=False, default=str))
        return
    where = f"stack {stack.name}" if stack is not None else str(config.source or "batchdrop")
    _echo_summary(s, config.feeds[0].name is not None, where)


# --- redrive --------------------------------------------------------------------------------


@click.command()
@click.option("--stack", "stack_name", metavar="NAME", help="Stack name (default: "
              "deploy.stack_name, or batchdrop-<table>).")  # fmt: skip
@click.option("--dry-run", is_flag=True, help="Show what would move; move nothing.")
@click.option("--limit", type=click.IntRange(min=1), metavar="N", help="Move at most N messages.")
def redrive(stack_name: str | None, dry_run: bool, limit: int | None) -> None:
    """Move the messages of a stack's dead-letter queue back to its events queue.

    An S3 event lands in the dead-letter queue after the function failed it
    deploy.max_receive_count times; its file is still in the inbound bucket. Once the cause
    is fixed (see `batchdrop status --stack NAME` and the function's log), redrive sends
    the events back, and the function loads the files. Prints each message's file and how
    many moved. Try --limit 1 first to see one file go through.

    \b
    Examples:
      batchdrop redrive --dry-run
      batchdrop redrive --stack students --limit 1
    """
    from .deploy.outputs import config_from_outputs, read_stack
    from .deploy.settings import deploy_settings

    config = _state().config()
    if not stack_name and not config.inbound.startswith("s3://"):
        raise ConfigError(
            "redrive moves a deployed stack's dead-letter messages: name the stack with "
            "--stack NAME. Locally, `batchdrop retry RUN_ID` runs a failed file again"
        )
    name = stack_name or deploy_settings(config).resolved_stack_name(config)
    stack = read_stack(config, name)
    if not stack.has_queue:
        raise ConfigError(
            f"stack {name} has the direct trigger: its dead-letter queue holds failed "
            "invocations, and there is no queue to move them to. `batchdrop status --stack "
            f"{name}` lists the failed files; `batchdrop retry RUN_ID --here --stack {name}` "
            "runs one again",
            key="--stack",
        )
    from .aws.ops import redrive as move

    sqs = sqs_client(config_from_outputs(config, stack))
    verb = "would move" if dry_run else "moved"
    done = move(
        sqs,
        stack.dead_letters,
        stack.queue,
        dry_run=dry_run,
        limit=limit,
        each=lambda what: click.echo(f"  {verb}: {what}"),
    )
    click.echo(
        f"{verb} {done.moved} message(s) from the dead-letter queue to the events queue"
        + (f"; {done.failed} could not be sent and stay there" if done.failed else "")
    )
    if done.failed:
        sys.exit(EXIT_RETRY)


# --- retry ----------------------------------------------------------------------------------


@click.command()
@click.argument("run_id")
@click.option(
    "--here",
    is_flag=True,
    help="With --stack: load the file in this process instead of queueing its event.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the receipt as JSON.")
@STACK
def retry(run_id: str, here: bool, as_json: bool, stack_name: str | None) -> None:
    """Run the file of a failed run again (RUN_ID: from `batchdrop status` or `runs`).

    A file whose run failed is still in inbound (it is retried anyway; this runs it now), or,
    after max_attempts, set aside in the errors location: it is moved back to inbound first.
    Locally the file is loaded now, and its receipt printed. With --stack, the file's event
    goes to the stack's events queue for the function (a file moved back into the inbound
    bucket is queued by the bucket's notification), or --here loads it in this process.

    \b
    Examples:
      batchdrop retry 20261128T064730.123Z-3f9a1c
      batchdrop retry 20261128T064730.123Z-3f9a1c --stack students
    """
    from .feed_runs import find_run

    if here and not stack_name:
        raise click.UsageError("--here goes with --stack (locally the file is always loaded here)")
    config, stack = _deployment(stack_name)
    rec = find_run(config, run_id)
    if rec is None:
        raise ConfigError(f"no run {run_id} in the ledger: `batchdrop status` lists failed runs")
    ended = outcome(rec)
    if ended != FAILED:
        raise ConfigError(_not_failed(run_id, rec, ended))
    router = router_of(config)
    name, moved_back = _into_inbound(rec, router)
    if stack is not None and not here:
        _queue(config, stack, router, name, moved_back)
        return
    receipt = _load_here(config, stack, name, as_json)
    sys.exit(
        EXIT_RETRY
        if receipt.status == FAILED
        else EXIT_REJECTED
        if receipt.status == REJECTED
        else 0
    )


def _not_failed(run_id: str, rec: dict[str, Any], ended: str) -> str:
    file = rec["file"]
    if ended in ("running", "paused", "committed"):
        return f"run {run_id} ({file}) is still under way ({ended}): it goes on by itself"
    if ended == REJECTED:
        why = rec.get("reason") or "see its receipt"
        return (
            f"run {run_id} did not fail: {file} was rejected ({why}). The same file would be "
            "rejected again: fix it and drop it in inbound"
        )
    return f"run {run_id} did not fail: {file} was {ended.replace('_', ' ')}; nothing to retry"


def _into_inbound(rec: dict[str, Any], router: Any) -> tuple[str, bool]:
    """The failed run's file in inbound: its name there, and whether it was moved back from
    errors (where it was set aside) to be there."""
    name = str(rec["file"])
    if router.inbound.stat(name) is not None:
        return name, False
    ref = set_aside_ref(rec, router)
    if ref is None:
        raise ConfigError(
            f"the file of run {rec['run_id']} ({name}) is neither in {router.inbound.url} nor "
            "set aside in the errors location: a later run may have loaded it "
            "(`batchdrop runs`)"
        )
    url = router.first.errors.move(ref, router.inbound, name)
    moved = name_in(router.inbound, url) or name
    click.echo(f"batchdrop: {ref.url} moved back to {url}", err=True)
    return moved, True


def _queue(config: Config, stack: Any, router: Any, name: str, moved_back: bool) -> None:
    from .files.s3 import parse_s3_url

    bucket, prefix = parse_s3_url(router.inbound.url)
    if moved_back:
        # an object created in the inbound bucket: the bucket's notification sends its event
        click.echo(f"s3://{bucket}/{prefix}{name} is back in inbound: its event is on its way")
        return
    if not stack.has_queue:
        raise ConfigError(
            f"stack {stack.name} has the direct trigger, with no queue to send the event to: "
            "add --here to load the file in this process",
            key="--stack",
        )
    from .aws.ops import requeue

    requeue(sqs_client(config), stack.queue, bucket, prefix + name)
    click.echo(
        f"queued s3://{bucket}/{prefix}{name}: `batchdrop runs --stack {stack.name}` shows its run"
    )


def _load_here(config: Config, stack: Any, name: str, as_json: bool) -> Receipt:
    """Load the file ``name`` of inbound in this process, notified as the function (or
    ``batchdrop run``) would notify it; print its receipt."""
    from .adapters import open_notifiers
    from .cli_output import echo_receipt
    from .notify.console import ConsoleNotifier
    from .router import Router

    if stack is not None and stack.notify_parameter:  # the stack's webhook URLs, kept in SSM
        from .aws.secrets import add_webhooks

        add_webhooks(config, stack.notify_parameter)
    notifiers = open_notifiers(config)
    if not as_json:  # the receipt is printed below; the console notifier would print it again
        notifiers = [n for n in notifiers if not isinstance(n, ConsoleNotifier)]
    router = Router(config, notifiers=notifiers)
    receipt: Receipt = router.process(name)
    feed = router.feed_named(receipt.feed).config if receipt.feed else config
    echo_receipt(receipt, as_json, str(feed.duplicates))
    return receipt
