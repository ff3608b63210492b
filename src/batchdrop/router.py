"""The router: one deployment, several feeds, each file to its own feed's pipeline.

A deployment has one inbound location, one archive, one errors location and one set of
notifiers; each feed (config_feeds.py) has its own table, schema and policies, so the engine
stays one ``Pipeline`` per feed, built the first time a file of that feed comes. A file is routed
by its name relative to the inbound location: the first feed whose match takes it (and whose
suffix it has). A config without ``feeds:`` is one feed that takes every file, so the router
then does exactly what its one pipeline does.

A file that matches no feed is not left in inbound for ever, nor silently ignored: the
deployment's first pipeline rejects it whole (its receipt says which feeds there are and what
each matches), moves it to the errors location with its receipt beside it, records it in its
ledger and notifies it. It is claimed per version like any file, so two events of one drop (or
two workers) never both reject it; and as for any rejected file, the same content dropped again
is looked at again (rejected again, or loaded by a feed added for it since).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .config_feeds import Feed, route, unmatched_reason
from .errors import ConfigError

if TYPE_CHECKING:
    from .config import Config
    from .pipeline import Pipeline
    from .ports import FileRef, FileStore, Notifier
    from .report import Receipt
    from .scan import Deadline
    from .shards import ShardTask, Step


class Router:
    """Routes files, shard tasks and recovery to the pipeline of each file's feed."""

    def __init__(
        self,
        config: Config,
        *,
        notifiers: list[Notifier] | None = None,
        make: Callable[[Config, list[Notifier]], Pipeline] | None = None,
    ):
        from .adapters import open_notifiers

        self.config = config
        self.feeds: list[Feed] = config.feeds
        #: the deployment's notifiers, shared by every feed's pipeline
        self.notifiers = open_notifiers(config) if notifiers is None else notifiers
        self._make = make or _pipeline
        self._pipelines: dict[str | None, Pipeline] = {}
        self._dispatch: Callable[[list[ShardTask]], Receipt | None] | None = None

    # --- the feeds' pipelines ---------------------------------------------------------------

    @property
    def named(self) -> bool:
        """Whether the config has ``feeds:`` (a single-feed config's one feed has no name)."""
        return self.feeds[0].name is not None

    def pipeline(self, feed: Feed) -> Pipeline:
        if feed.name not in self._pipelines:
            made = self._make(feed.config, self.notifiers)
            if self._dispatch is not None:
                made.dispatch = self._dispatch
            self._pipelines[feed.name] = made
        return self._pipelines[feed.name]

    @property
    def first(self) -> Pipeline:
        """The first feed's pipeline: it stands for the deployment (its inbound location, the
        ledger of files that match no feed)."""
        return self.pipeline(self.feeds[0])

    @property
    def inbound(self) -> FileStore:
        return self.first.inbound

    @property
    def dispatch(self) -> Callable[[list[ShardTask]], Receipt | None] | None:
        return self._dispatch

    @dispatch.setter
    def dispatch(self, value: Callable[[list[ShardTask]], Receipt | None] | None) -> None:
        """Where every feed's shard tasks go (the AWS runtime sets it per message)."""
        self._dispatch = value
        for made in self._pipelines.values():
            made.dispatch = value

    @property
    def suffixes(self) -> tuple[str, ...]:
        """Every suffix some feed takes, in the feeds' order."""
        out: list[str] = []
        for feed in self.feeds:
            for s in (feed.config.suffix, feed.config.suffix + ".gz"):
                if s not in out:
                    out.append(s)
        return tuple(out)

    def feed_of(self, name: str) -> Feed | None:
        """The feed that takes ``name`` (relative to inbound): the first whose match takes it
        and whose suffix it has, else the first whose match takes it; None when none does."""
        for feed in self.feeds:
            suffix = feed.config.suffix
            if feed.match(name) and name.endswith((suffix, suffix + ".gz")):
                return feed
        return route(self.feeds, name)

    def feed_named(self, name: str) -> Feed:
        if not self.named:
            raise ConfigError(f"there is no feed {name!r}: this config has no feeds:")
        for feed in self.feeds:
            if feed.name == name:
                return feed
        raise ConfigError(f"no feed named {name!r}; the feeds: {self.listing()}")

    def listing(self) -> str:
        return "; ".join(f"{f.name}: {f.match.describe()}" for f in self.feeds)

    def unmatched(self, name: str) -> str:
        return unmatched_reason(self.feeds, name)

    # --- what the runtimes call -------------------------------------------------------------

    def pending(self) -> list[FileRef]:
        """Files waiting in the inbound location for any feed (or for none), oldest first."""
        return self.first.inbound.list(self.suffixes)

    def recover(self) -> list[Receipt]:
        """Every ledger's unfinished runs and unsent notifications, each ledger once (feeds
        that share a ledger, DynamoDB's or one SQLite database's, recover together)."""
        out: list[Receipt] = []
        seen: set[str] = set()
        for feed in self.feeds:
            url = feed.config.ledger_url
            if url in seen:
                continue
            seen.add(url)
            out += self.pipeline(feed).recover()
        return out

    def process(self, name: str, **options: Any) -> Receipt:
        ref = self.first.inbound.stat(name)
        if ref is None:
            raise FileNotFoundError(f"{name}: no such file in {self.first.inbound.url}")
        return self.process_ref(ref, **options)

    def process_ref(
        self,
        ref: FileRef,
        *,
        feed: str | None = None,
        route_as: str | None = None,
        dry_run: bool = False,
        **options: Any,
    ) -> Receipt:
        """Process ``ref`` with its feed's pipeline: the feed named ``feed``, or the one that
        takes ``route_as`` (the file's name relative to inbound; by default its name). A file
        that matches no feed is rejected with its reason (a dry run raises it instead: there is
        no feed to check it against)."""
        name = route_as if route_as is not None else ref.name
        chosen = self.feed_named(feed) if feed is not None else self.feed_of(name)
        if chosen is not None:
            return self.pipeline(chosen).process_ref(ref, dry_run=dry_run, **options)
        if dry_run:
            raise ConfigError(f"{self.unmatched(name)}; or name the feed with --feed")
        options.pop("progress", None)
        options.pop("deadline", None)
        return self.first.process_ref(ref, unmatched=self.unmatched(name), **options)

    def shard_task(self, task: ShardTask, deadline: Deadline | None = None) -> Step:
        """A step of a sharded run, by the pipeline of the feed that planned it."""
        feed = self.feed_named(task.feed) if task.feed else self.feed_of(task.file)
        if feed is None:
            raise ConfigError(f"a shard task of {task.file}, which {self.unmatched(task.file)}")
        return self.pipeline(feed).shard_task(task, deadline)

    def close(self) -> None:
        for made in self._pipelines.values():
            made.backends.close()


def _pipeline(config: Config, notifiers: list[Notifier]) -> Pipeline:
    from .pipeline import Pipeline

    return Pipeline(config, notifiers=notifiers)
