"""The ``batchdrop worker`` command (registered on the main CLI)."""

from __future__ import annotations

import os
import signal
from typing import Any

import click


@click.command("worker")
@click.option(
    "--queue",
    "queue_url",
    required=True,
    envvar="BATCHDROP_QUEUE_URL",
    metavar="QUEUE_URL",
    help="The SQS queue the inbound bucket notifies (or $BATCHDROP_QUEUE_URL).",
)
@click.option(
    "--wait",
    "wait_seconds",
    default=20,
    show_default=True,
    type=click.IntRange(0, 20),
    help="Long-poll wait, in seconds.",
)
@click.option(
    "--batch",
    default=1,
    show_default=True,
    type=click.IntRange(1, 10),
    help="Messages taken at once (keep 1 for large files, so others can share).",
)
@click.option(
    "--until-empty",
    is_flag=True,
    help="Stop when a poll finds the queue empty (for cron jobs and scripts).",
)
@click.pass_context
def worker(
    ctx: click.Context, queue_url: str, wait_seconds: int, batch: int, until_empty: bool
) -> None:
    """Process the S3 events of an SQS queue, as the Lambda does, on this machine.

    For files too big or too slow for Lambda: run it on any container service or machine. It
    stops cleanly between batches on Ctrl-C or SIGTERM.
    """
    from .handler import Runtime
    from .secrets import add_webhooks, take_parameter_name
    from .worker import Worker

    # with the function's variables, the webhook URLs are in the SSM parameter they name
    parameter = take_parameter_name(os.environ)
    config = ctx.obj.config()
    if parameter:
        add_webhooks(config, parameter)
    w = Worker(Runtime(config), queue_url, wait_seconds=wait_seconds, batch=batch)

    def stop(signum: int, frame: Any) -> None:
        click.echo("stopping after the current batch…", err=True)
        w.stop.set()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        stats = w.run(until_empty=until_empty)
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
    click.echo(
        f"{stats.received} message(s) received, {stats.deleted} done, "
        f"{stats.failed} left for a retry",
        err=True,
    )
