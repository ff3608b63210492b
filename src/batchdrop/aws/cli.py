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
    envvar="BATCHDROP_QUEUE_URL",
    metavar="QUEUE_URL",
    help="The SQS queue the inbound bucket notifies (or $BATCHDROP_QUEUE_URL).",
)
@click.option(
    "--stack",
    "stack_name",
    metavar="NAME",
    help="Work for the stack `batchdrop deploy` made: its queue, buckets, table, ledger and "
    "topic, read from its outputs (the config gives the schema and policies).",
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
    ctx: click.Context,
    queue_url: str | None,
    stack_name: str | None,
    wait_seconds: int,
    batch: int,
    until_empty: bool,
) -> None:
    """Process the S3 events of an SQS queue, as the Lambda does, on this machine.

    For files too big or too slow for Lambda: run it on any container service or machine. It
    stops cleanly between batches on Ctrl-C or SIGTERM. Give the queue (--queue, with a
    config pointing at the stack's resources) or the stack (--stack).
    """
    from .handler import logger
    from .logs import to_terminal

    if not queue_url and not stack_name:
        raise click.UsageError("give the queue (--queue QUEUE_URL) or the stack (--stack NAME)")
    with to_terminal(logger):
        _work(ctx.obj.config(), queue_url, stack_name, wait_seconds, batch, until_empty)


def _work(
    config: Any,
    queue_url: str | None,
    stack_name: str | None,
    wait_seconds: int,
    batch: int,
    until_empty: bool,
) -> None:
    from .handler import Runtime
    from .secrets import add_webhooks, take_parameter_name
    from .worker import Worker

    # with the function's variables, the webhook URLs are in the SSM parameter they name
    parameter = take_parameter_name(os.environ)
    if stack_name:
        from ..deploy.outputs import config_from_outputs, read_stack

        stack = read_stack(config, stack_name)
        config = config_from_outputs(config, stack)
        queue_url = queue_url or stack.queue
        parameter = parameter or stack.notify_parameter
    if parameter:
        add_webhooks(config, parameter)
    w = Worker(Runtime(config), queue_url or "", wait_seconds=wait_seconds, batch=batch)

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
