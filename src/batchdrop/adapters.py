"""URL → adapter: which file store, table, ledger and notifiers a config's URLs name.

Each adapter module is imported only when its URL scheme is used, so local mode never imports
boto3. The engine and the runtimes ask here; the ports (ports.py) know no adapter.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import ConfigError
from .ports import FileStore, Ledger, Notifier, Table

if TYPE_CHECKING:
    from .config import Config


def open_store(url: str, config: Config) -> FileStore:
    if url.startswith("s3://"):
        from .files.s3 import S3Store

        return S3Store(url, config)
    if "://" in url:
        raise ConfigError(f"{url!r} is not a file location: use a directory or s3://bucket/prefix/")
    from .files.local import LocalStore

    return LocalStore(url)


class Backends:
    """The table and ledger for a config, sharing one connection where they share a database."""

    def __init__(self, config: Config):
        self.config = config
        self._table: Table | None = None
        self._ledger: Ledger | None = None

    @property
    def table(self) -> Table:
        if self._table is None:
            url = self.config.table.url
            if url.startswith("sqlite:///"):
                from .tables.sqlite import SqliteTable

                self._table = SqliteTable.from_config(self.config)
            else:
                from .tables.dynamodb import DynamoTable

                self._table = DynamoTable.from_config(self.config)
        return self._table

    @property
    def ledger(self) -> Ledger:
        if self._ledger is None:
            url = self.config.ledger_url
            if url.startswith("sqlite:///"):
                from .tables.sqlite import SqliteTable
                from .tables.sqlite_ledger import SqliteLedger

                table = self.table
                if isinstance(table, SqliteTable) and url == self.config.table.url:
                    self._ledger = table.ledger
                else:
                    self._ledger = SqliteLedger.open(url.removeprefix("sqlite:///"))
            elif url.startswith("dynamodb://"):
                from .tables.dynamodb import DynamoLedger

                self._ledger = DynamoLedger.from_config(self.config)
            else:
                raise ConfigError(
                    f"{url!r} is not a ledger: use sqlite:///file.db or dynamodb://TABLE",
                    key="ledger",
                )
        return self._ledger

    def close(self) -> None:
        if self._table is not None:
            self._table.close()


def open_notifiers(config: Config) -> list[Notifier]:
    out: list[Notifier] = []
    for target in config.notify:
        if target == "console":
            from .notify.console import ConsoleNotifier

            out.append(ConsoleNotifier())
        elif target.startswith(("https://", "http://")):
            from .notify.webhook import WebhookNotifier

            out.append(WebhookNotifier(target))
        elif target.startswith("sns://"):
            from .notify.sns import SnsNotifier

            out.append(SnsNotifier(target.removeprefix("sns://"), config))
        else:
            from .notify.console import JsonLinesNotifier

            out.append(JsonLinesNotifier(target))
    return out
