"""The four ports the engine talks to, and URL → adapter.

The engine knows nothing about S3, DynamoDB or SQLite. Each adapter module is imported only
when its URL scheme is used, so local mode never imports boto3.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, BinaryIO, Literal, Protocol

if TYPE_CHECKING:
    from .report import Receipt


@dataclass(frozen=True, slots=True)
class FileRef:
    """One version of one file in a store."""

    name: str  # the key below the store's root, with '/' separators ("2026/11/students.csv")
    size: int
    version: str  # what makes this version unique: sha256 (local), versionId or ETag (S3)
    modified: float  # seconds since the epoch; the order files are taken in
    url: str  # where it is, for people: /abs/path or s3://bucket/key
    #: "" for a regular file; otherwise what it is ("symbolic link", "FIFO", …): never opened,
    #: rejected and set aside with that reason
    special: str = ""


class FileStore(Protocol):
    url: str

    def list(self, suffixes: Sequence[str]) -> list[FileRef]:
        """Files waiting here whose name ends with one of ``suffixes``, oldest first. A store
        for which the version costs a read of the file may leave it "" (``stat`` gives it)."""

    def stat(self, name: str) -> FileRef | None:
        """The current version of ``name``, or None if it is not (or no longer) here."""

    def open(self, ref: FileRef, offset: int = 0) -> BinaryIO:
        """A binary stream of the file's bytes from ``offset`` on (a resumed run reads from its
        checkpoint); raises FileNotFoundError if it is gone."""

    def move(self, ref: FileRef, dest: FileStore, name: str | None = None) -> str:
        """Move the file to ``dest`` (as ``name``, default ``ref.name``) and return its new URL.

        A name already taken in ``dest`` is never overwritten: the file gets a unique name.
        """

    def put(self, name: str, local_path: str, content_type: str) -> str:
        """Store a local file (a report) as ``name``; never overwrites. Returns its URL."""


class RowCheck(Protocol):
    """What only the backend knows about a row (DynamoDB: item size, empty key strings,
    numbers it cannot hold), checked while the file is validated."""

    def __call__(self, row: tuple[Any, ...]) -> tuple[str, str] | None:
        """(column, reason) when the backend would refuse this row, else None."""

    def first(self, rows: Sequence[tuple[Any, ...]]) -> int | None:
        """The index of the first row of a chunk that may fail ``__call__``, or None when no
        row can: cheap, decided for the whole chunk at once (the engine then calls
        ``__call__`` row by row from that index only)."""

    # Optional: ``clear_text(text, rows) -> bool``, whether no row of a block of ``rows``
    # whole lines of plain text fields (read for their keys alone, see rawkeys.py) can be
    # refused, known from the text alone; a check without it has such blocks converted.


class Load(Protocol):
    """One file's rows on their way into the table."""

    def write(self, rows: list[tuple[Any, ...]], lines: list[int]) -> list[tuple[int, Any]]:
        """Write converted rows (in schema field order); ``lines`` are their line numbers.

        A single-pass table applies the duplicates policy itself and returns (line, key) for
        each row that repeated a key already written by this load (it may report them later,
        from ``finish``). Other tables return [].
        """

    def finish(self) -> Iterable[tuple[int, Any]]:
        """Wait until every row handed to ``write`` is written; the repeats not yet returned
        (possibly streamed back from disk: read it to its end before ``commit``)."""

    def commit(self, receipt: Receipt) -> None:
        """Make the rows durable and record ``receipt`` in the ledger as committed."""

    def abort(self) -> None:
        """Discard what this load wrote, where the table can (SQLite); otherwise nothing."""


class Table(Protocol):
    key: tuple[str, ...]
    #: True when the table checks duplicate keys and can roll a whole file back itself, so the
    #: engine reads the file once. False (DynamoDB): the engine validates the whole file first.
    single_pass: bool

    def prepare(self) -> None:
        """Create the table if it can (SQLite) or check that it exists (DynamoDB)."""

    @property
    def row_check(self) -> RowCheck | Callable[[tuple[Any, ...]], tuple[str, str] | None] | None:
        """A check of what only the backend knows (DynamoDB: item size, empty key strings),
        made during validation: (column, reason) for a bad row. None: no check. A check with
        ``first`` (a ``RowCheck``) lets whole chunks that cannot fail skip the row-by-row walk."""

    def begin(self, claim: Claim, ledger: Ledger) -> Load:
        """Start loading one file; ``Load.commit`` records the receipt in ``ledger``."""

    def get(self, key: Sequence[Any]) -> dict[str, Any] | None:
        """One item by its full key, or None."""

    def query(
        self, partition: Any, *, begins_with: str | None = None, after: Any = None, limit: int = 100
    ) -> Page:
        """Items of one partition in sort-key order, ``limit`` at a time from after ``after``."""

    def close(self) -> None: ...


@dataclass
class Page:
    items: list[dict[str, Any]]
    next: Any = None  # pass back as ``after`` for the next page; None when there is no more


ClaimOutcome = Literal["new", "done", "busy", "resume"]


@dataclass
class Claim:
    outcome: ClaimOutcome
    run_id: str
    ref: FileRef
    #: for "resume" (rows committed, file not yet moved) and "done": the receipt recorded then
    receipt: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: which run of this file version this is: 1, then one more after each failed run (a crash
    #: counts), back to 1 once the file is set aside or loaded, or once a run made progress
    attempt: int = 1
    #: for a "new" claim that goes on with an earlier run (same ``run_id``): the progress that
    #: run last recorded with ``Ledger.checkpoint``; None for a run that starts at the top
    progress: dict[str, Any] | None = None


RunState = Literal["running", "paused", "committed", "done", "failed"]

#: The fields of a run record, the same for every ledger (``runs()`` and ``get_run()`` add
#: ``receipt``, the full receipt as a dict).
RUN_FIELDS = (
    "run_id",
    "file",
    "source",
    "version",
    "size",
    "state",
    "status",
    "started_at",
    "finished_at",
    "rows_read",
    "rows_loaded",
    "rows_rejected",
    "rows_duplicate",
    "reason",
    "moved_to",
    "rejected_rows_report",
)


class Ledger(Protocol):
    def claim(self, ref: FileRef, *, force: bool = False) -> Claim:
        """Claim this file version for a run.

        "new": go ahead (with ``progress``, go on from where an earlier run of this version
        stopped: a paused run, or one that failed or crashed after a checkpoint). "done": this
        version was loaded before (skip, unless ``force``).
        "busy": another live run holds it. "resume": its rows were committed by a run that
        stopped before moving the file; finish that run.
        """

    def record(self, claim: Claim, state: RunState, receipt: Receipt) -> None:
        """Record the run's state and receipt. "done" and "failed" also put the run's
        notification in the outbox (see ``outbox``), in the same write. A receipt with
        ``set_aside`` ends the count of attempts (the next claim of this version is attempt 1)."""

    def checkpoint(self, claim: Claim, progress: dict[str, Any]) -> None:
        """Record how far the run got (``progress``: a small JSON-able dict only the engine
        reads) and renew its lease. Progress resets the count of attempts (``claim.attempt``
        becomes 1). Raises TransientError when the claim is no longer this run's."""

    def shard_done(self, claim: Claim, phase: str, index: int) -> int:
        """Record that shard ``index`` of the run ``claim`` holds finished ``phase`` (a short
        name of lowercase letters and "+", such as "check", "write" or "check+") and renew the
        claim's lease; progress and the count of attempts stay as they are.

        Idempotent: the same index recorded twice counts once. Returns how many distinct shards
        have finished ``phase`` now: a count that includes this index and every index recorded
        before it, atomically, so that of shards finishing at the same moment each sees a
        different count and exactly one sees the final one. The counts belong to the run id:
        a run that goes on (paused, or failed after a checkpoint) keeps them, a new run of the
        same file version starts with none. Raises TransientError when the claim is no longer
        this run's (another run took the file over); nothing is counted then."""

    def shards_done(self, run_id: str, phase: str) -> int:
        """How many distinct shards of the run ``run_id`` have finished ``phase`` (read only;
        0 when none did). Once the run has ended (loaded, or set aside) or another run took its
        file over, its counts may be gone."""

    def pause(self, claim: Claim, receipt: Receipt) -> None:
        """The run stops at its last checkpoint, to go on when the file is claimed again: the
        claim is released at once and the run record says "paused" (with the receipt so far).
        Nothing goes to the outbox: a paused run has nothing to notify."""

    def unfinished(self) -> list[dict[str, Any]]:
        """Run records whose rows were committed but whose run was never recorded done, and
        whose owner is gone (a dead process, or a lapsed lease). Each carries ``claim_extra``,
        what ``record`` needs to finish it."""

    def outbox(self) -> list[dict[str, Any]]:
        """Finished runs whose notification may not have gone out: the owner recorded the
        run, then stopped (or is gone) before ``sent``. Run records, oldest first."""

    def sent(self, run_id: str) -> None:
        """The run's notification went out: take it out of the outbox."""

    def runs(
        self, *, status: str | None = None, limit: int = 50, before: str | None = None
    ) -> list[dict[str, Any]]:
        """Run records, newest first."""

    def get_run(self, run_id: str) -> dict[str, Any] | None: ...


class Notifier(Protocol):
    def send(self, receipt: Receipt) -> None: ...


def iso_time(t: float | None = None) -> str:
    """UTC to the microsecond, the one time format of receipts and both ledgers."""
    now = time.time() if t is None else t
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_run_id() -> str:
    """A run id that sorts by time, to the millisecond: 20261127T084730.123Z-3f9a1c."""
    now = time.time()
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"
    return stamp + "-" + secrets.token_hex(3)


def iter_chunks(items: Iterator[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
