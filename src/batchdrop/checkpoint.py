"""Passes that outlive one process: a pass over a big file runs in segments, and after each one
the run saves what the segment found (a delta, in the state location) and records where it got
to (``Ledger.checkpoint``). A run stopped by the deadline pauses at the next row boundary; a run
killed outright loses at most the segment in flight. Either way the next claim of the file gets
the same run id and its progress, rebuilds the pass from the deltas and reads on from the byte
offset recorded.

A segment ends at a row boundary found without parsing twice (segments.py: the first LF after
which the quotes seen are even). The csv reader is strict, so a wrong cut (a stray quote fooled
the count) shows as a quoted field left open at the segment's end; the run then reads the rest of
the file in one segment.

Deltas are a JSON header line and binary blocks: key hashes and invalid lines as 64-bit arrays,
the rejected-rows report's new CSV bytes, and the rows held back by key (typed values tagged in
JSON). Nothing in them is executable: a state object is data however it was written.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from array import array
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

from .errors import TransientError

if TYPE_CHECKING:
    from .config import Config
    from .ports import Claim, Ledger
    from .state import StateStore

log = logging.getLogger("batchdrop")
L = TypeVar("L")

VERSION = 1
#: a pass stops to pause when this many seconds are left beyond the engine's own margin (the
#: time to end the segment at the next row boundary, save it and record the pause)
PAUSE_MARGIN_S = 15.0


def key_hasher(salt: bytes) -> Callable[[Iterable[Any]], Iterator[int]]:
    """Key hashes that another process computes alike (Python's own ``hash`` of a string
    changes with each interpreter's PYTHONHASHSEED): BLAKE2b keyed by the run's salt, of the
    key's canonical text (equal keys, equal text: a number's trailing zeros do not count).
    Keyed, so a file cannot be made of keys whose hashes collide."""
    from hashlib import blake2b

    from .schema import key_text

    keyed = blake2b(digest_size=8, key=salt).copy  # the salt's block compressed once
    number = int.from_bytes

    def one(key: Any) -> int:
        if type(key) is str:
            text = key
        elif type(key) is tuple:
            try:
                text = "\x1f".join(key)  # a composite key of text columns
            except TypeError:  # a column holds a number or a date
                text = "\x1f".join(map(key_text, key))
        else:
            text = key_text(key)
        digest = keyed()
        digest.update(text.encode("utf-8", "surrogatepass"))
        return number(digest.digest(), "little", signed=True)

    return lambda keys: map(one, keys)


class Paused(TransientError):
    """The run stopped at a checkpoint to go on later: the time of this invocation ran out."""


@dataclass(frozen=True)
class Position:
    """A row boundary: a byte offset in the uncompressed file and the lines before it."""

    offset: int = 0
    line: int = 0


TOP = Position()
#: the passes of a run, as logs and ``batchdrop runs`` name them
STAGE_NAMES = {
    "check": "validating",
    "count": "counting repeats",
    "settle": "settling repeats",
    "write": "writing",
}


@dataclass
class Delta:
    """What one segment of one pass found, and the pass's counters once it ended."""

    stage: str
    seq: int
    start: Position
    end: Position
    final: bool = False  # the pass ended with this segment (its results are in ``results``)
    #: cumulative: the pass's counters, the receipt's listed errors, the report's counts
    snapshot: dict[str, Any] = field(default_factory=dict)
    hashes: array[int] = field(default_factory=lambda: array("q"))
    bad: array[int] = field(default_factory=lambda: array("q"))
    report: bytes = b""  # the rejected-rows CSV written during the segment
    held: list[tuple[int, tuple[Any, ...]]] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)
    repeated: array[int] = field(default_factory=lambda: array("q"))  # final check pass only

    @property
    def name(self) -> str:
        return f"{self.stage}-{self.seq:06d}.delta"

    def to_bytes(self) -> bytes:
        head = {
            "v": VERSION,
            "stage": self.stage,
            "seq": self.seq,
            "start": [self.start.offset, self.start.line],
            "end": [self.end.offset, self.end.line],
            "final": self.final,
            "snapshot": self.snapshot,
            "held": [[line, list(map(_tag, row))] for line, row in self.held],
            "results": self.results,
            "sizes": [len(self.hashes) * 8, len(self.bad) * 8, len(self.report)],
            "repeated": len(self.repeated) * 8,
        }
        text = json.dumps(head, ensure_ascii=True, separators=(",", ":")).encode()
        blocks = [self.hashes.tobytes(), self.bad.tobytes(), self.report, self.repeated.tobytes()]
        return b"".join([text, b"\n", *blocks])

    @classmethod
    def from_bytes(cls, data: bytes) -> Delta:
        cut = data.index(b"\n")
        head = json.loads(data[:cut])
        if head.get("v") != VERSION:
            raise ValueError(f"a state object of version {head.get('v')}, not {VERSION}")
        at = cut + 1
        blocks = []
        for size in [*head["sizes"], head["repeated"]]:
            blocks.append(data[at : at + size])
            at += size
        hashes, bad, repeated = array("q"), array("q"), array("q")
        hashes.frombytes(blocks[0])
        bad.frombytes(blocks[1])
        repeated.frombytes(blocks[3])
        return cls(
            stage=head["stage"],
            seq=head["seq"],
            start=Position(*head["start"]),
            end=Position(*head["end"]),
            final=head["final"],
            snapshot=head["snapshot"],
            hashes=hashes,
            bad=bad,
            report=blocks[2],
            held=[(line, tuple(map(_untag, row))) for line, row in head["held"]],
            results=head["results"],
            repeated=repeated,
        )


def _tag(value: Any) -> Any:
    """A converted value as JSON that comes back as the same type."""
    if isinstance(value, Decimal):
        return {"d": str(value)}
    if isinstance(value, datetime):
        return {"t": value.isoformat()}
    if isinstance(value, date):
        return {"D": value.isoformat()}
    if isinstance(value, float):
        return {"f": repr(value)}  # JSON has no inf or nan
    return value


def _untag(value: Any) -> Any:
    if isinstance(value, dict):
        kind, text = next(iter(value.items()))
        if kind == "d":
            return Decimal(text)
        if kind == "t":
            return datetime.fromisoformat(text)
        if kind == "D":
            return date.fromisoformat(text)
        if kind == "f":
            return float(text)
        raise ValueError(f"unknown value tag {kind!r} in a state object")
    return value


class Checkpoints:
    """One run's checkpoints: where its deltas are, when a segment should end, and the record
    of each in the ledger."""

    def __init__(
        self,
        config: Config,
        state: StateStore,
        ledger: Ledger,
        claim: Claim,
        deadline: Callable[[], float] | None,
        margin: float,
    ):
        self.config, self.state, self.ledger, self.claim = config, state, ledger, claim
        self.deadline = deadline
        self.margin = margin  # the engine's own: below it, a pass stops mid-segment
        self.every_bytes = int(config.checkpoint.every_bytes)
        self.every_s = float(config.checkpoint.every_seconds)
        self.progress: dict[str, Any] = dict(claim.progress or {})
        if self.progress.get("v") != VERSION:
            self.progress = {}  # written by another version: the run starts at the top
        self.salt = bytes.fromhex(self.progress.get("salt") or secrets.token_hex(16))
        self.key_hash = key_hasher(self.salt)
        #: cuts found wrong (a stray quote fooled the count), by the offset of the segment they
        #: ended, for every pass of the run: the passes of one process cut alike
        self.flips: dict[int, list[int]] = {}
        #: write units the run's earlier invocations consumed up to its last checkpoint; each
        #: checkpoint records them with this invocation's (its load's), so each counts once
        self.carried_units = float(self.progress.get("write_units") or 0.0)
        self.load: Any = None

    def track(self, load: L) -> L:
        """The write pass's load, whose write units (and rows found stale) each checkpoint
        records."""
        self.load = load
        if hasattr(load, "carried_stale"):
            load.carried_stale = int(self.progress.get("rows_stale") or 0)
        return load

    @property
    def write_units(self) -> float:
        """The write units of the run so far: earlier invocations' and this one's."""
        return self.carried_units + (getattr(self.load, "write_units", None) or 0.0)

    @property
    def resuming(self) -> bool:
        return bool(self.progress)

    def deltas(self, stage: str) -> Iterator[Delta]:
        """The deltas saved for ``stage`` up to its last checkpoint, in order, one at a time
        (a pass over millions of rows has megabytes of key hashes in them)."""
        last = self.progress.get("stages", {}).get(stage)
        if last is None:
            return
        for seq in range(int(last) + 1):
            yield Delta.from_bytes(self.state.get(self.claim.run_id, f"{stage}-{seq:06d}.delta"))

    def ended(self, stage: str) -> bool:
        """Whether ``stage`` ended before this process: only what later passes need of it is
        read back (its invalid lines, its report), not its key hashes."""
        return stage in self.progress.get("ended", [])

    def want_cut(self) -> Callable[[int], bool]:
        """For one segment: whether to end it now (at the next row boundary), asked with the
        bytes read since it started."""
        started = time.monotonic()
        every_bytes, every_s = self.every_bytes, self.every_s

        def want(passed: int) -> bool:
            return (
                passed >= every_bytes
                or time.monotonic() - started >= every_s
                or self.time_is_short()
            )

        return want

    def time_is_short(self) -> bool:
        return self.deadline is not None and self.deadline() < self.margin + PAUSE_MARGIN_S

    def save(self, delta: Delta) -> None:
        """Store the delta, then record it: a run killed between the two finds the checkpoint
        before it and writes this delta again."""
        self.state.put(self.claim.run_id, delta.name, delta.to_bytes())
        stages = dict(self.progress.get("stages", {}))
        stages[delta.stage] = delta.seq
        ended = list(self.progress.get("ended", []))
        if delta.final and delta.stage not in ended:
            ended.append(delta.stage)
        self.progress = {
            "v": VERSION,
            "salt": self.salt.hex(),
            "stages": stages,
            "ended": ended,
            "stage": delta.stage,
            "offset": delta.end.offset,
            "line": delta.end.line,
            "final": delta.final,
            "rows_read": int(delta.snapshot.get("read", 0)),
            "write_units": self.write_units,
            "rows_stale": int(getattr(self.load, "carried_stale", 0))
            + int(getattr(self.load, "rows_stale", 0)),
            "at": time.time(),
        }
        self.ledger.checkpoint(self.claim, self.progress)
        self.claim.extra["checkpointed"] = True

    def drop(self) -> None:
        """The run is over: its state goes (best effort; a lifecycle rule catches the rest)."""
        try:
            self.state.drop(self.claim.run_id)
        except Exception as e:
            log.warning(
                "%s: could not remove the state of run %s: %s",
                self.claim.ref.name,
                self.claim.run_id,
                e,
            )
