"""``batchdrop serve``: the query API on this machine, with uvicorn."""

from __future__ import annotations

import click


@click.command("serve")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on (0.0.0.0 exposes the API to the network).",
)
@click.option(
    "--port",
    default=8000,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to listen on.",
)
@click.pass_context
def serve(ctx: click.Context, host: str, port: int) -> None:
    """Serve the query API: items by key, whole partitions, and the run ledger.

    Open http://HOST:PORT/docs for the interactive documentation.
    """
    import uvicorn

    from .feeds import create_api

    config = ctx.obj.config()
    app = create_api(config)
    serving = (
        config.table.url
        if config.feed is None
        else "feeds " + ", ".join(f"{f.name} at /feeds/{f.name}/" for f in config.feeds)
    )
    click.echo(
        f"batchdrop: serving {serving} on http://{host}:{port} (docs at /docs, Ctrl-C to stop)",
        err=True,
    )
    uvicorn.run(app, host=host, port=port, log_level="info", lifespan="on")
