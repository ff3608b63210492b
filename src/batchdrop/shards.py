"""Big files in parallel: a file bigger than ``shards.shard_bytes`` is cut at row boundaries into
shards, and the shards are read side by side, by any number of consumers.

A sharded run is still one run: one claim, one run id, one receipt. Its work is a chain of
steps, each a ``ShardTask`` that any consumer can take up (a local worker process, or the Lambda
function reading shard messages from the events queue):

- ``check``, one task per shard: validate it, hash its keys (deltas in the state location);
- ``reduce-check``: every shard's findings in file order — counts, the rejected-rows report, the
  key hashes that repeat anywhere in the file. Invalid rows under ``on_error: reject_file``
  reject the file here, before anything is written;
- ``settle``, one task per shard, only when the real keys must be known before writing
  (``duplicates: reject``, or more repeated hashes than ``max_duplicates`` allows), then
  ``reduce-settle``;
- ``write``, one task per shard: its rows, less the invalid ones and those whose key hash
  repeats (held back: no shard can tell which of them wins);
- ``conclude``: the held rows settled in file order and the winners written, then the receipt,
  the report, the move and the notification, once.

The ledger counts the shards that finished a step (``Ledger.shard_done``, atomic); the one that
completes the count hands on to the next step. Every task can run twice (a redelivered message,
a retried worker): it rewrites the same state object and counts once.
"""

from __future__ import annotations

import io
import json
import logging
import secrets
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO

from .checkpoint import TOP, VERSION, Delta, Position, key_hasher
from .ports import Claim, FileRef
from .reader import GZIP_MAGIC, CsvSource, header_positions, open_segment
from .report import Receipt
from .scan import Deadline
from .segments import cut_reason, plan
from .shard_work import (
    Shard,
    bad_lines,
    hash_set,
    read_shard,
)

if TYPE_CHECKING:
    from .pipeline import Pipeline
    from .ports import FileStore

log = logging.getLogger("batchdrop")

#: a message body that is a shard task holds this key (aws/events.py tells them apart by it)
SHARD_MARK = "batchdrop_shard"
PLAN = "plan.json"
PHASES = ("check", "settle", "write")
#: the steps as logs and ``batchdrop runs`` name them
STEP_NAMES = {
    "check": "validating",
    "reduce-check": "finding repeated keys",
    "settle": "settling repeats",
    "reduce-settle": "settling repeats",
    "write": "writing",
    "conclude": "concluding",
}
#: how many times its size a compressed file is guessed to expand, to tell whether it is worth
#: splitting (the split finds out: a file of one piece is then read in one piece)
GZIP_GUESS = 5
AFTER = {"check": "reduce-check", "settle": "reduce-settle", "write": "conclude"}


@dataclass(frozen=True)
class ShardTask:
    """One step of a sharded run, for any consumer: JSON as a queue message."""

    run_id: str
    file: str
    size: int
    version: str
    url: str
    extra: dict[str, Any]  # the claim's: its owner token
    step: str
    index: int = 0
    total: int = 1
    plan: int = 1
    attempt: int = 1
    #: where the file is when not in the inbound location: a local folder (``process`` of a
    #: file elsewhere), and whether it stays there (a copy is archived)
    store: str = ""
    keep: bool = False
    #: the feed whose pipeline planned the run (None: a config without ``feeds:``, or a task
    #: of an earlier version, routed by its file's name)
    feed: str | None = None

    @property
    def ref(self) -> FileRef:
        return FileRef(self.file, self.size, self.version, 0.0, self.url)

    @property
    def claim(self) -> Claim:
        return Claim("new", self.run_id, self.ref, extra=dict(self.extra), attempt=self.attempt)

    @property
    def counter(self) -> str:
        return counter_name(self.step, self.plan)

    def message(self) -> dict[str, Any]:
        return {SHARD_MARK: 1, **asdict(self)}

    @classmethod
    def from_message(cls, body: Any) -> ShardTask | None:
        """The task a message body holds, or None when it holds none."""
        if not isinstance(body, dict) or SHARD_MARK not in body:
            return None
        fields = {k: v for k, v in body.items() if k != SHARD_MARK}
        return cls(**fields)

    def to(self, step: str, index: int = 0, total: int | None = None) -> ShardTask:
        changed = {"step": step, "index": index, "total": self.total if total is None else total}
        return ShardTask(**{**asdict(self), **changed})


def counter_name(step: str, plan: int) -> str:
    """The ledger's name for a step's count of shards done (a plan made again counts
    afresh)."""
    return step + "+" * (plan - 1)


@dataclass
class Plan:
    """Where a run's shards start, saved once in the state location."""

    starts: list[Position]
    header: list[str]
    salt: str
    started: float
    version: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    def shard(self, i: int) -> Shard:
        end = self.starts[i + 1].offset if i + 1 < len(self.starts) else None
        return Shard(i, self.starts[i], end, self.header, key_hasher(bytes.fromhex(self.salt)))

    def to_bytes(self) -> bytes:
        data = {**asdict(self), "starts": [[p.offset, p.line] for p in self.starts]}
        return json.dumps(data).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Plan:
        raw = json.loads(data)
        raw["starts"] = [Position(*p) for p in raw["starts"]]
        return cls(**raw)


def wanted(pipeline: Pipeline, store: FileStore, ref: FileRef) -> bool:
    """Whether the file is worth sharding here (the plan may still find it is not)."""
    config = pipeline.config
    return (
        pipeline.dispatch is not None
        # the consumers open it where it is: inbound, or a local folder (``process``)
        and (store.url == pipeline.inbound.url or "://" not in store.url)
        and not pipeline.backends.table.single_pass
        # a load that compares with the feed's last load reads the whole file in one process
        and not getattr(pipeline.backends.table, "keeps_state", False)
        and ref.size * (GZIP_GUESS if ref.name.endswith(".gz") else 1)
        > int(config.shards.shard_bytes)
        and cut_reason(config) is None
    )


def start(pipeline: Pipeline, store: FileStore, claim: Claim) -> list[ShardTask] | None:
    """The first tasks of a sharded run: its plan made (or read back, for a run that goes
    on). None: the file is better read in one piece (compressed, or one shard's worth)."""
    sharded = (claim.progress or {}).get("sharded")
    state = pipeline.state()
    first = ShardTask(
        claim.run_id,
        claim.ref.name,
        claim.ref.size,
        claim.ref.version,
        claim.ref.url,
        dict(claim.extra),
        "check",
        attempt=claim.attempt,
        **_where(pipeline, store),
        feed=pipeline.config.feed,
    )
    if sharded:
        return _going_on(pipeline, first, Plan.from_bytes(state.get(claim.run_id, PLAN)))
    the_plan = _plan(pipeline, store, claim)
    if the_plan is None:
        return None
    state.put(claim.run_id, PLAN, the_plan.to_bytes())
    total = len(the_plan.starts)
    record_step(pipeline, first, "check", total)
    log.info("%s: run %s reads it as %s shards", claim.ref.name, claim.run_id, total)
    return [first.to("check", i, total) for i in range(total)]


def _where(pipeline: Pipeline, store: FileStore) -> dict[str, Any]:
    if store.url == pipeline.inbound.url:
        return {}
    from .files.local import KeepOriginal

    return {"store": store.url, "keep": isinstance(store, KeepOriginal)}


def store_of(pipeline: Pipeline, task: ShardTask) -> FileStore:
    """The store the task's file is in, as the process that planned the run had it."""
    if not task.store:
        return pipeline.inbound
    from .files.local import KeepOriginal, LocalStore

    return (KeepOriginal if task.keep else LocalStore)(task.store)


def _plan(pipeline: Pipeline, store: FileStore, claim: Claim) -> Plan | None:
    """Where the shards start: for a plain file, one read that counts quotes; a compressed
    file is inflated once into plain pieces in the state location (split.py), one a shard."""
    config, ref = pipeline.config, claim.ref
    every = int(config.shards.shard_bytes)
    with store.open(ref) as stream:
        compressed = stream.read(2) == GZIP_MAGIC
    extra: dict[str, Any] = {}
    if compressed:
        from .split import split

        with store.open(ref) as stream:
            pieces = split(
                stream, config, ref.name, state=pipeline.state(), run_id=claim.run_id,
                every=every, size=ref.size,
            )  # fmt: skip
        extra["pieces"] = [[p.name, p.offset] for p in pieces]
        cuts = [(p.offset, p.line) for p in pieces[1:]]
        head = pipeline.state().get(claim.run_id, pieces[0].name)[: 1 << 20]
        if head.startswith(GZIP_MAGIC):  # compressed twice: read whole, it is rejected so
            pipeline.state().drop(claim.run_id)
            return None
        opened = open_segment(io.BytesIO(head), config, ref.name)
    else:
        with store.open(ref) as stream:
            cuts = plan(stream, every, quote=ord(config.csv.quotechar))
        opened = open_segment(store.open(ref), config, ref.name, size=ref.size)
    with opened.text as text:
        header = CsvSource(text, config, ref.name).header
    header_positions(header, config, ref.name)  # a header that cannot be read rejects here
    if not cuts:
        pipeline.state().drop(claim.run_id)  # a piece it made, if any: read in one piece
        return None
    starts = [TOP, *(Position(*c) for c in cuts)]
    return Plan(starts, header, secrets.token_hex(16), time.time(), extra=extra)


def _going_on(pipeline: Pipeline, first: ShardTask, the_plan: Plan) -> list[ShardTask]:
    """A run that stopped (its consumers died, or the claim lapsed): the step it was at, for
    the shards that did not finish it."""
    state, ledger = pipeline.state(), pipeline.backends.ledger
    total = len(the_plan.starts)
    base = first.to("check", 0, total)
    base = ShardTask(**{**asdict(base), "plan": the_plan.version})
    names = set(state.names(first.run_id))
    step = "check"
    if reduced_name(the_plan, "check") in names:
        step = "write"
        if reduction(pipeline, base, "check").snapshot["next"] == "settle":
            step = "write" if reduced_name(the_plan, "settle") in names else "settle"
    done = [i for i in range(total) if _delta_name(base.to(step, i)) in names]
    count = 0
    for i in done:
        count = ledger.shard_done(base.claim, base.to(step, i).counter, i)
    log.info(
        "%s: run %s goes on %s: %s of %s shards done",
        first.file,
        first.run_id,
        STEP_NAMES[step],
        len(done),
        total,
    )
    if count >= total:
        return [base.to(AFTER[step])]
    return [base.to(step, i) for i in range(total) if i not in done]


# --- one task ------------------------------------------------------------------------------


@dataclass
class Step:
    """What a task leaves: the tasks to hand on, and the receipt when the run ended."""

    tasks: list[ShardTask] = field(default_factory=list)
    receipt: Receipt | None = None


def work(pipeline: Pipeline, task: ShardTask, deadline: Deadline | None = None) -> Step:
    """Run one task. A task of a run that has ended (a late or repeated message) does
    nothing."""
    record = pipeline.backends.ledger.get_run(task.run_id)
    if record is None or record.get("state") not in ("running", "paused"):
        log.info("%s: run %s is over; its %s task is dropped", task.file, task.run_id, task.step)
        return Step()
    the_plan = Plan.from_bytes(pipeline.state().get(task.run_id, PLAN))
    if the_plan.version != task.plan:
        return Step()  # the run was planned again since
    if task.step in PHASES:
        return _shard_step(pipeline, task, the_plan, deadline)
    from . import shard_reduce

    if task.step == "reduce-check":
        return shard_reduce.reduce_check(pipeline, task, the_plan)
    if task.step == "reduce-settle":
        return shard_reduce.reduce_settle(pipeline, task, the_plan)
    if task.step == "conclude":
        return Step(receipt=shard_reduce.conclude_run(pipeline, task, the_plan))
    raise ValueError(f"a shard task with an unknown step {task.step!r}")


def _delta_name(task: ShardTask) -> str:
    return f"p{task.plan}-{task.step}-{task.index:06d}.delta"


def reduced_name(the_plan: Plan, phase: str) -> str:
    return f"p{the_plan.version}-{phase}.reduce"


def delta_of(pipeline: Pipeline, task: ShardTask, step: str, i: int) -> Delta:
    data = pipeline.state().get(task.run_id, _delta_name(task.to(step, i)))
    return Delta.from_bytes(data)


def deltas_of(pipeline: Pipeline, task: ShardTask, step: str) -> Iterator[Delta]:
    for i in range(task.total):
        yield delta_of(pipeline, task, step, i)


def reduction(pipeline: Pipeline, task: ShardTask, phase: str) -> Delta:
    name = f"p{task.plan}-{phase}.reduce"
    return Delta.from_bytes(pipeline.state().get(task.run_id, name))


def _open(pipeline: Pipeline, task: ShardTask, shard: Shard, the_plan: Plan) -> BinaryIO:
    """The shard's bytes from its start: a ranged read of the file, or the pieces a
    compressed file was split into (two or more when a wrong cut joined shards)."""
    pieces = the_plan.extra.get("pieces")
    if not pieces:
        return store_of(pipeline, task).open(task.ref, shard.start.offset)
    end = shard.end if shard.end is not None else float("inf")
    names = [name for name, offset in pieces if shard.start.offset <= offset < end]
    state = pipeline.state()
    return io.BytesIO(b"".join(state.get(task.run_id, name) for name in names))


def _shard_step(
    pipeline: Pipeline, task: ShardTask, the_plan: Plan, deadline: Deadline | None
) -> Step:
    config, table = pipeline.config, pipeline.backends.table
    shard = the_plan.shard(task.index)
    options: dict[str, Any] = {"deadline": deadline}
    load = None
    if task.step == "check":
        options["row_check"] = table.row_check
    else:
        check = delta_of(pipeline, task, "check", task.index)
        repeated = hash_set(reduction(pipeline, task, "check").repeated)
        options["skip"] = (bad_lines(check), repeated)
        if task.step == "write":
            load = options["load"] = table.begin(task.claim, pipeline.backends.ledger)
    try:
        with _open(pipeline, task, shard, the_plan) as stream:
            delta = read_shard(config, task.file, task.size, shard, stream, task.step, **options)
    finally:
        if load is not None:
            load.abort()  # its requests are all answered (or the step failed): the pool goes
        for part in options.get("skip", ()):
            part.close()
    pipeline.state().put(task.run_id, _delta_name(task), delta.to_bytes())
    done = pipeline.backends.ledger.shard_done(task.claim, task.counter, task.index)
    log.info(
        "%s: shard %s of %s %s (%s of %s done)",
        task.file,
        task.index + 1,
        task.total,
        "validated" if task.step == "check" else "settled" if task.step == "settle" else "written",
        done,
        task.total,
    )
    if done < task.total:
        return Step()
    record_step(pipeline, task, AFTER[task.step], task.total)
    return Step([task.to(AFTER[task.step])])


def record_step(pipeline: Pipeline, task: ShardTask, step: str, total: int) -> None:
    """The step the run is at, for ``batchdrop runs`` (and for a claim to go on with)."""
    the_plan = {"plan": task.plan, "shards": total, "step": step, "at": time.time()}
    progress = {"v": VERSION, "sharded": the_plan}
    try:
        pipeline.backends.ledger.checkpoint(task.claim, progress)
    except Exception as e:  # only what is shown is late: the work is recorded elsewhere
        log.warning("%s: could not record the run's progress: %s", task.file, e)
    task.claim.extra["checkpointed"] = True
