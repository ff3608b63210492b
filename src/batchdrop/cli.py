"""The ``batchdrop`` command.

Exit codes: 0 done (loaded, possibly with rejected rows), 1 data rejected, 2 bad usage or config,
3 failed but retryable (throttling, a locked database, a network fault).
A data or config error is one clear line on stderr, never a traceback.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .cli_output import echo_receipt, progress_bar, status_style, tell_passed_over
from .errors import BatchdropError, ConfigError
from .report import BUSY, FAILED, REJECTED, Receipt

if TYPE_CHECKING:
    from .config import Config

EXIT_REJECTED, EXIT_USAGE, EXIT_RETRY = 1, 2, 3
#: as shard_runner's worker processes log (that module is imported only to shard a file)
LOG_FORMAT = "batchdrop: %(levelname)s: %(message)s"
_status_style = status_style  # the name cli_query imports
#: optional libraries, and the extra that installs each
OPTIONAL_EXTRAS = {
    "boto3": "aws",
    "botocore": "aws",
    "aws_lambda_powertools": "aws",
    "fastapi": "api",
    "uvicorn": "api",
    "mangum": "api",
    "starlette": "api",
}


class State:
    def __init__(self, config_path: str | None, verbose: int):
        self.config_path = config_path
        self.verbose = verbose
        self._config: Config | None = None

    def config(self) -> Config:
        if self._config is None:
            from .config import load_config

            self._config = load_config(self.config_path)
        return self._config

    def router(self, *, prints_receipts: bool = True, jobs: int | None = None) -> Any:
        """The engine: a router (router.py) that gives each file to its feed's pipeline. When
        the command prints each receipt itself (not ``--json``), the console notifier would
        print it a second time: it is left out. A big file's shards run in ``jobs`` worker
        processes (shard_runner.py)."""
        from .adapters import open_notifiers
        from .notify.console import ConsoleNotifier
        from .router import Router

        config = self.config()
        notifiers = open_notifiers(config)
        if prints_receipts:
            notifiers = [n for n in notifiers if not isinstance(n, ConsoleNotifier)]

        def make(feed_config: Config, shared: list[Any]) -> Any:
            from .pipeline import Pipeline

            pipeline = Pipeline(feed_config, notifiers=shared)
            pipeline.dispatch = _LazyShards(pipeline, feed_config, jobs)
            return pipeline

        return Router(config, notifiers=notifiers, make=make)


class _LazyShards:
    """A pipeline's ``dispatch``: the worker processes of shard_runner.py, whose machinery
    (multiprocessing, a process pool) is imported only when a file is big enough to shard."""

    def __init__(self, pipeline: Any, config: Config, jobs: int | None):
        self.pipeline, self.config, self.jobs = pipeline, config, jobs
        self._shards: Any = None

    def __call__(self, tasks: list[Any]) -> Receipt | None:
        if self._shards is None:
            from .shard_runner import LocalShards, default_jobs

            jobs = self.jobs or default_jobs(self.config)
            self._shards = LocalShards(self.pipeline, jobs)
        result: Receipt | None = self._shards(tasks)
        return result


FEED = click.option(
    "--feed",
    metavar="NAME",
    default=None,
    help="The feed FILE belongs to (default: the feed whose match takes its name).",
)

JOBS = click.option(
    "--jobs",
    "-j",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Worker processes for a file bigger than shards.shard_bytes, read as shards side "
    "by side (two-pass tables: DynamoDB). Default: the cores, at most shards.max_in_flight.",
)


def _exit_code(receipts: list[Receipt]) -> int:
    statuses = {r.status for r in receipts}
    if FAILED in statuses:
        return EXIT_RETRY
    if REJECTED in statuses:
        return EXIT_REJECTED
    return 0


LAZY_COMMANDS = {
    "worker": "batchdrop.aws.cli",
    "template": "batchdrop.deploy.cli",
    "package": "batchdrop.deploy.cli",
    "deploy": "batchdrop.deploy.cli",
    "destroy": "batchdrop.deploy.cli",
    "serve": "batchdrop.api.cli",
    "runs": "batchdrop.cli_query",
    "get": "batchdrop.cli_query",
    "init": "batchdrop.cli_query",
    "status": "batchdrop.cli_ops",
    "redrive": "batchdrop.cli_ops",
    "retry": "batchdrop.cli_ops",
}


class LazyGroup(click.Group):
    """Commands outside the load path are imported only when they are used: local commands
    never pay for boto3 or FastAPI, and loading never pays for the others."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(LAZY_COMMANDS))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.commands or name not in LAZY_COMMANDS:
            return super().get_command(ctx, name)
        import importlib

        try:
            module = importlib.import_module(LAZY_COMMANDS[name])
        except ImportError as e:
            missing = e.name or "a module"
            return _unavailable(name, f"needs {missing}: pip install 'batchdrop[aws,api]'")
        cmd = getattr(module, name, None)
        return cmd if isinstance(cmd, click.Command) else None


def _unavailable(name: str, why: str) -> click.Command:
    @click.command(
        name, help=f"(unavailable: {why})", context_settings={"ignore_unknown_options": True}
    )
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def stub(args: Any) -> None:
        raise ConfigError(f"`batchdrop {name}` {why}")

    return stub


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--config",
    "-c",
    "config_path",
    metavar="PATH",
    envvar="BATCHDROP_CONFIG",
    help="The config file (default: ./batchdrop.yaml, or $BATCHDROP_CONFIG).",
)
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.version_option(package_name="batchdrop")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, verbose: int) -> None:
    """batchdrop: CSV drops become validated rows in a keyed table, with a receipt for every
    file.

    Files arrive in the inbound location; each row is checked against the schema and written to
    the table (SQLite locally, DynamoDB on AWS); the file moves to the archive (or, when
    rejected, to the errors location) and a notification summarises it.

    \b
    Start here:
      batchdrop init --from partner.csv   write batchdrop.yaml from a sample
      batchdrop validate partner.csv      dry run: what would happen
      batchdrop run                       process what waits in inbound, then watch
      batchdrop get A10002                read back a partition
    """
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format=LOG_FORMAT)
    from . import dedup_helper

    dedup_helper.ENABLED = True  # a big file's key hashes are counted on another core
    ctx.obj = State(config_path, verbose)


def _state() -> State:
    return click.get_current_context().find_object(State)  # type: ignore[return-value]


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False))
@FEED
@click.option("--json", "as_json", is_flag=True, help="Print the receipt as JSON.")
def validate(file: str, feed: str | None, as_json: bool) -> None:
    """Dry run: check FILE against the schema and print the receipt it would get.

    Nothing is written, moved or sent. The file is `valid`, `valid_with_rejects` (its good
    rows would load) or `invalid`. Exits 1 if the file would be rejected. With `feeds:`, FILE
    is checked against the feed its name matches (or the one --feed names).
    """
    router = _state().router(prints_receipts=not as_json)
    receipt = _run_one(router, file, as_json, dry_run=True, feed=feed)
    sys.exit(_exit_code([receipt]))


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, help="Load it again even if this content was loaded.")
@click.option(
    "--move",
    is_flag=True,
    help="Move FILE to the archive (or errors) even when it is outside the inbound directory.",
)
@JOBS
@FEED
@click.option("--json", "as_json", is_flag=True, help="Print the receipt as JSON.")
def process(
    file: str, force: bool, move: bool, jobs: int | None, feed: str | None, as_json: bool
) -> None:
    """Load one FILE now: validate, write, archive it (or put it in errors), notify.

    FILE may be anywhere on disk; a name relative to the inbound directory works too. A file
    in the inbound directory is moved, as `run` moves it; a file elsewhere stays where it is
    and the archive (or errors) gets a copy, unless --move.
    Exits 0 when loaded (even with rejected rows), 1 when rejected, 3 on a retryable failure.
    """
    router = _state().router(prints_receipts=not as_json, jobs=jobs)
    receipt = _run_one(router, file, as_json, force=force, move=move, feed=feed)
    sys.exit(_exit_code([receipt]))


def _run_one(
    router: Any, file: str, as_json: bool, *, move: bool = False, **options: Any
) -> Receipt:
    path = Path(file)
    if not path.exists():
        inbound_path = Path(router.inbound.url) / file
        if "://" not in router.inbound.url and inbound_path.exists():
            path = inbound_path
        else:
            raise ConfigError(f"{file}: no such file")
    with progress_bar(path.stat().st_size, path.name, not as_json) as progress:
        receipt = _process_path(router, path, progress=progress, move=move, **options)
    dry_run = bool(options.get("dry_run"))
    price = router.config.aws.write_unit_price
    echo_receipt(receipt, as_json, _duplicates(router, receipt), dry_run=dry_run, price=price)
    return receipt


def _duplicates(router: Any, receipt: Receipt) -> str:
    """The duplicates policy of the receipt's feed (what its text says was kept)."""
    if receipt.feed is None:
        return str(router.config.duplicates)
    return str(router.feed_named(receipt.feed).config.duplicates)


def _process_path(router: Any, path: Path, *, move: bool = False, **options: Any) -> Receipt:
    """Process a local file wherever it is. One in the inbound directory (or with ``move``)
    is moved to archive or errors afterwards; one elsewhere is copied there and stays."""
    from .files.local import KeepOriginal, LocalStore

    p = Path(os.path.abspath(path.expanduser()))  # a link stays the link
    inbound = router.inbound.url
    inside = "://" not in inbound and p.parent.resolve().is_relative_to(Path(inbound).resolve())
    store = LocalStore(str(p.parent)) if inside or move else KeepOriginal(str(p.parent))
    ref = store.stat(p.name, versioned=not options.get("dry_run"))  # a dry run needs no hash
    if ref is None:
        raise ConfigError(f"{path}: no such file")
    # a feed matches names relative to inbound: a file there is routed by that name
    route_as = (
        (p.parent.resolve() / p.name).relative_to(Path(inbound).resolve()).as_posix()
        if inside
        else p.name
    )
    if not inside and options.get("feed") is None and router.feed_of(route_as) is None:
        # asked for by name, from outside inbound: said at once, nothing is put in errors
        raise ConfigError(f"{router.unmatched(route_as)}; or name its feed with --feed")
    return router.process_ref(  # type: ignore[no-any-return]
        ref, store=store, route_as=route_as, **options
    )


@cli.command()
@click.option("--once", is_flag=True, help="Process what waits now, then exit (do not watch).")
@click.option(
    "--interval",
    default=2.0,
    show_default=True,
    metavar="SECONDS",
    help="How often to look for new files while watching.",
)
@click.option(
    "--settle",
    default=2.0,
    show_default=True,
    metavar="SECONDS",
    help="While watching, take a file only once it has not changed for this long "
    "(it may still be being written).",
)
@JOBS
@click.option("--json", "as_json", is_flag=True, help="Print one JSON receipt per line.")
def run(once: bool, interval: float, settle: float, jobs: int | None, as_json: bool) -> None:
    """Process the files waiting in inbound, oldest first, then watch for new ones.

    Files whose name starts with '.' or '_' are never taken: write a file under such a name
    and rename it when it is complete, or rely on --settle. A file with another suffix is
    named once, with why it is not taken. Ctrl-C stops cleanly after the
    current file; a second Ctrl-C stops at once (the file's rows are rolled back and the next
    run loads it again).

    A bad file never stops the run: it is rejected with its reason, or its run fails and it is
    tried again (while watching, after a pause that grows with each failure); after
    max_attempts failed runs (default 5) it is set aside in the errors location. Runs that a
    crash left unfinished, and notifications it left unsent, are finished first.
    """
    router = _state().router(prints_receipts=not as_json, jobs=jobs)
    stopping = {"now": False}

    def on_signal(signum: int, frame: Any) -> None:
        if stopping["now"]:
            raise KeyboardInterrupt
        stopping["now"] = True
        click.echo(
            "batchdrop: stopping after the current file (Ctrl-C again to stop now)", err=True
        )

    old_int = signal.signal(signal.SIGINT, on_signal)
    old_term = signal.signal(signal.SIGTERM, on_signal)
    receipts: list[Receipt] = []
    errors = 0
    for receipt in router.recover():
        echo_receipt(receipt, as_json, _duplicates(router, receipt))
    told: set[str] = set()  # files passed over, said once each
    #: while watching, a file that failed waits before its next try, longer each time
    retry_at: dict[str, float] = {}
    try:
        if not once and not as_json:
            click.echo(f"batchdrop: watching {router.inbound.url} (Ctrl-C to stop)", err=True)
        while not stopping["now"]:
            now = time.time()
            if not as_json:
                tell_passed_over(router, told)
            pending = router.pending()
            if not once:  # a file still being written waits for the next look
                pending = [
                    r
                    for r in pending
                    if now - r.modified >= settle and retry_at.get(r.name, 0) <= now
                ]
            for ref in pending:
                if stopping["now"]:
                    break
                try:
                    receipt = _take(router, ref, as_json)
                except FileNotFoundError:
                    continue  # another process took it
                if receipt is None:
                    errors += 1
                    retry_at[ref.name] = time.time() + _backoff(interval, errors)
                    continue
                if receipt.status == FAILED:
                    retry_at[ref.name] = time.time() + _backoff(interval, receipt.attempt)
                if receipt.status != BUSY:
                    echo_receipt(receipt, as_json, _duplicates(router, receipt))
                receipts.append(receipt)
            if once:
                break
            deadline = time.monotonic() + interval
            while not stopping["now"] and time.monotonic() < deadline:
                time.sleep(0.1)
    except KeyboardInterrupt:
        click.echo("batchdrop: stopped", err=True)
        sys.exit(130)
    finally:
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)
    if once and not receipts and not errors and not as_json:
        click.echo(f"batchdrop: nothing waiting in {router.inbound.url}", err=True)
    sys.exit(EXIT_RETRY if errors else _exit_code(receipts))


def _take(router: Any, ref: Any, as_json: bool) -> Receipt | None:
    """Process one waiting file. Whatever goes wrong with it is said in one line and the run
    goes on to the next file (None); only a config error, which every file would meet, stops
    the run."""
    with progress_bar(ref.size, ref.name, not as_json) as progress:
        try:
            return router.process_ref(ref, progress=progress)  # type: ignore[no-any-return]
        except (ConfigError, FileNotFoundError):
            raise
        except BatchdropError as e:
            click.echo(f"batchdrop: {ref.name}: not processed, retried later: {e}", err=True)
        except Exception as e:
            logging.getLogger("batchdrop").debug("traceback", exc_info=True)
            click.echo(
                f"batchdrop: {ref.name}: internal error, retried later: {type(e).__name__}: {e} "
                "(run with -vv for the traceback, and please report it)",
                err=True,
            )
    return None


def _backoff(interval: float, attempt: int) -> float:
    return float(min(interval * 2 ** max(attempt, 1), 300.0))


def _start_up() -> None:
    """Import the config's machinery (pydantic and the config's models, which nearly every
    command needs) with the cyclic garbage collector paused, then put everything start-up
    made out of the collector's sight (gc.freeze). Those objects, some 40,000, live until the
    process exits, so no collection needs to walk them again: neither the ones of a long run
    nor the ones the interpreter makes as it exits, which otherwise cost a small file's
    `validate` about 50 ms, a sixth of its time. Only the program does this, never an import
    of this module: a process that merely imports it keeps its collector as it was."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        from . import config  # noqa: F401
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def main() -> None:
    """The ``batchdrop`` program (the process's entry point)."""
    _start_up()
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("batchdrop: aborted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(EXIT_USAGE)
    except BatchdropError as e:
        click.echo(f"batchdrop: error: {e}", err=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        click.echo("batchdrop: stopped", err=True)
        sys.exit(130)
    except SystemExit:
        raise
    except BrokenPipeError:
        os._exit(0)
    except ModuleNotFoundError as e:
        extra = OPTIONAL_EXTRAS.get((e.name or "").split(".")[0])
        if extra is None:
            raise
        click.echo(
            f"batchdrop: error: this command needs {e.name}, which is not installed: "
            f"pip install 'batchdrop[{extra}]'",
            err=True,
        )
        sys.exit(EXIT_USAGE)
    except Exception as e:  # a bug: say so in one line; -v shows where
        if "-v" in sys.argv or "-vv" in sys.argv or "--verbose" in sys.argv:
            raise
        click.echo(
            f"batchdrop: internal error: {type(e).__name__}: {e} "
            "(run with -v for the traceback, and please report it)",
            err=True,
        )
        sys.exit(4)
