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

import json
import logging
import secrets
import time
from array import array
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO

from .checkpoint import TOP, VERSION, Delta, Position, key_hasher
from .dedup import DuplicateFinder
from .errors import DataError
from .outcome import conclude, reject_whole, rejects_duplicates, rejects_file
from .ports import Claim, FileRef, iso_time
from .reader import GZIP_MAGIC, CsvSource, header_positions, open_segment
from .report import REJECTED, Receipt
from .scan import Deadline, Scan
from .segments import cut_reason, plan
from .shard_work import (
    Shard,
    bad_lines,
    first_errors,
    grouped,
    hash_set,
    merge_check,
    merge_reports,
    read_shard,
    report_of,
    report_rows,
    settle_held,
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
        and store.url == pipeline.inbound.url  # the consumers open it there
        and not pipeline.backends.table.single_pass
        and ref.size > int(config.shards.shard_bytes)
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
    )
    if sharded:
        return _going_on(pipeline, first, Plan.from_bytes(state.get(claim.run_id, PLAN)))
    the_plan = _plan(pipeline, store, claim.ref)
    if the_plan is None:
        return None
    state.put(claim.run_id, PLAN, the_plan.to_bytes())
    total = len(the_plan.starts)
    _progress(pipeline, first, "check", total)
    log.info("%s: run %s reads it as %s shards", claim.ref.name, claim.run_id, total)
    return [first.to("check", i, total) for i in range(total)]


def _plan(pipeline: Pipeline, store: FileStore, ref: FileRef) -> Plan | None:
    config = pipeline.config
    with store.open(ref) as stream:
        if stream.read(2) == GZIP_MAGIC:
            return None
    with store.open(ref) as stream:
        opened = open_segment(stream, config, ref.name, size=ref.size)
        with opened.text as text:
            header = CsvSource(text, config, ref.name).header
    header_positions(header, config, ref.name)  # a header that cannot be read rejects here
    with store.open(ref) as stream:
        every = int(config.shards.shard_bytes)
        cuts = plan(stream, every, quote=ord(config.csv.quotechar))
    if not cuts:
        return None
    starts = [TOP, *(Position(*c) for c in cuts)]
    return Plan(starts, header, secrets.token_hex(16), time.time())


def _going_on(pipeline: Pipeline, first: ShardTask, the_plan: Plan) -> list[ShardTask]:
    """A run that stopped (its consumers died, or the claim lapsed): the step it was at, for
    the shards that did not finish it."""
    state, ledger = pipeline.state(), pipeline.backends.ledger
    total = len(the_plan.starts)
    base = first.to("check", 0, total)
    base = ShardTask(**{**asdict(base), "plan": the_plan.version})
    names = set(state.names(first.run_id))
    step = "check"
    if _reduced(the_plan, "check") in names:
        step = "write"
        if _reduction(pipeline, base, "check").snapshot["next"] == "settle":
            step = "write" if _reduced(the_plan, "settle") in names else "settle"
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
    if task.step == "reduce-check":
        return _reduce_check(pipeline, task, the_plan)
    if task.step == "reduce-settle":
        return _reduce_settle(pipeline, task, the_plan)
    if task.step == "conclude":
        return Step(receipt=_conclude(pipeline, task, the_plan))
    raise ValueError(f"a shard task with an unknown step {task.step!r}")


def _delta_name(task: ShardTask) -> str:
    return f"p{task.plan}-{task.step}-{task.index:06d}.delta"


def _reduced(the_plan: Plan, phase: str) -> str:
    return f"p{the_plan.version}-{phase}.reduce"


def _delta(pipeline: Pipeline, task: ShardTask, step: str, i: int) -> Delta:
    data = pipeline.state().get(task.run_id, _delta_name(task.to(step, i)))
    return Delta.from_bytes(data)


def _deltas(pipeline: Pipeline, task: ShardTask, step: str) -> Iterator[Delta]:
    for i in range(task.total):
        yield _delta(pipeline, task, step, i)


def _reduction(pipeline: Pipeline, task: ShardTask, phase: str) -> Delta:
    name = f"p{task.plan}-{phase}.reduce"
    return Delta.from_bytes(pipeline.state().get(task.run_id, name))


def _open(pipeline: Pipeline, task: ShardTask, shard: Shard) -> BinaryIO:
    return pipeline.inbound.open(task.ref, shard.start.offset)


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
        check = _delta(pipeline, task, "check", task.index)
        repeated = hash_set(_reduction(pipeline, task, "check").repeated)
        options["skip"] = (bad_lines(check), repeated)
        if task.step == "write":
            load = options["load"] = table.begin(task.claim, pipeline.backends.ledger)
    try:
        with _open(pipeline, task, shard) as stream:
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
    _progress(pipeline, task, AFTER[task.step], task.total)
    return Step([task.to(AFTER[task.step])])


def _progress(pipeline: Pipeline, task: ShardTask, step: str, total: int) -> None:
    """The step the run is at, for ``batchdrop runs`` (and for a claim to go on with)."""
    the_plan = {"plan": task.plan, "shards": total, "step": step, "at": time.time()}
    progress = {"v": VERSION, "sharded": the_plan}
    try:
        pipeline.backends.ledger.checkpoint(task.claim, progress)
    except Exception as e:  # only what is shown is late: the work is recorded elsewhere
        log.warning("%s: could not record the run's progress: %s", task.file, e)
    task.claim.extra["checkpointed"] = True


# --- reductions ----------------------------------------------------------------------------


def _receipt(task: ShardTask, the_plan: Plan) -> Receipt:
    receipt = Receipt(file=task.file, source=task.url, version=task.version, size=task.size)
    receipt.run_id, receipt.attempt = task.run_id, task.attempt
    receipt.started_at = iso_time(the_plan.started)
    return receipt


def _reduce_check(pipeline: Pipeline, task: ShardTask, the_plan: Plan) -> Step:
    config = pipeline.config
    bad_cuts: list[int] = []
    fatal: list[Any] = []
    finder = DuplicateFinder()

    def shards() -> Iterator[Delta]:
        for d in _deltas(pipeline, task, "check"):
            if "bad_cut" in d.results:
                bad_cuts.append(d.seq)
            if "fatal" in d.results and not fatal:
                fatal.extend(d.results["fatal"])
            yield d

    try:
        merged = merge_check(config, task.file, shards(), finder)
        if bad_cuts:
            merged.report.discard()
            return Step(_plan_again(pipeline, task, the_plan, bad_cuts))
        receipt = _receipt(task, the_plan)
        if fatal:
            merged.report.discard()
            reject_whole(receipt, DataError(fatal[0], file=task.file, line=fatal[1]))
            return Step(receipt=_end(pipeline, task, the_plan, receipt, None))
        scan = merged.scan
        if scan.read > config.limits.max_rows:
            merged.report.discard()
            why = (
                f"the file has more than {config.limits.max_rows:,} rows, over "
                "limits.max_rows: raise that setting to load it"
            )
            reject_whole(receipt, DataError(why, file=task.file))
            receipt.rows_read = receipt.rows_rejected = scan.read
            return Step(receipt=_end(pipeline, task, the_plan, receipt, None))
        repeated = finder.repeated()
        by_hash = finder.repeats
    finally:
        finder.close()
    try:
        merged.receipt_into(receipt)
        if rejects_file(config, scan.invalid, scan.read):
            conclude(config, receipt, scan, merged.report)
            return Step(receipt=_end(pipeline, task, the_plan, receipt, merged.report))
        settle = bool(repeated) and (
            config.duplicates == "reject" or rejects_duplicates(config, by_hash, scan.read)
        )
        next_step = "settle" if settle else "write"
        reduced = Delta("reduce-check", 0, TOP, TOP, final=True)
        reduced.snapshot = _snapshot(scan, receipt, merged.report, next=next_step)
        reduced.report = merged.report.tail()
        reduced.repeated = array("q", repeated.items())
        name = _reduced(the_plan, "check")
        pipeline.state().put(task.run_id, name, reduced.to_bytes())
    finally:
        repeated.close()
        merged.report.discard()
    log.info(
        "%s: %s rows validated, %s invalid; %s key hashes repeat",
        task.file,
        scan.read,
        scan.invalid,
        len(reduced.repeated),
    )
    _progress(pipeline, task, next_step, task.total)
    return Step([task.to(next_step, i) for i in range(task.total)])


def _snapshot(scan: Scan, receipt: Receipt, report: Any, **more: Any) -> dict[str, Any]:
    return {
        "read": scan.read,
        "invalid": scan.invalid,
        "duplicates": scan.duplicates,
        "stopped_at": scan.stopped_at,
        "errors": receipt.errors,
        "report": report.saved(),
        **more,
    }


def _scan_of(snapshot: dict[str, Any]) -> Scan:
    return Scan(
        read=snapshot["read"],
        invalid=snapshot["invalid"],
        duplicates=snapshot["duplicates"],
        stopped_at=snapshot["stopped_at"],
    )


def _plan_again(
    pipeline: Pipeline, task: ShardTask, the_plan: Plan, bad: list[int]
) -> list[ShardTask]:
    """Shards that ended inside a quoted field (a stray quote fooled the count of quotes that
    found their end): each is joined with the next, and every shard is checked again."""
    wrong = {i + 1 for i in bad}
    starts = [p for i, p in enumerate(the_plan.starts) if i not in wrong]
    again = Plan(starts, the_plan.header, the_plan.salt, the_plan.started, the_plan.version + 1)
    pipeline.state().put(task.run_id, PLAN, again.to_bytes())
    log.warning(
        "%s: %s shard(s) ended inside a quoted field (a stray quote?): joined with the next, "
        "%s shards checked again",
        task.file,
        len(bad),
        len(starts),
    )
    total = len(starts)
    base = ShardTask(**{**asdict(task), "plan": again.version, "total": total})
    _progress(pipeline, base, "check", total)
    return [base.to("check", i, total) for i in range(total)]


def _reduce_settle(pipeline: Pipeline, task: ShardTask, the_plan: Plan) -> Step:
    config = pipeline.config
    checked = _reduction(pipeline, task, "check")
    keyof = _keyof(pipeline, the_plan)
    held, duplicates, rejected = settle_held(
        config, (d.held for d in _deltas(pipeline, task, "settle")), keyof
    )
    held.close()
    scan = _scan_of(checked.snapshot)
    scan.invalid += len(rejected)
    scan.duplicates = duplicates
    report = merge_reports(config, task.file, report_rows(checked.report), grouped(rejected))
    try:
        report.omitted += checked.snapshot["report"]["omitted"]
        receipt = _receipt(task, the_plan)
        receipt.errors = first_errors(checked.snapshot["errors"], (e.to_dict() for e in rejected))
        conclude(config, receipt, scan, report)
        if receipt.status == REJECTED:
            return Step(receipt=_end(pipeline, task, the_plan, receipt, report))
        reduced = Delta("reduce-settle", 0, TOP, TOP, final=True)
        reduced.snapshot = _snapshot(scan, receipt, report, settled=True)
        reduced.report = report.tail()
        pipeline.state().put(task.run_id, _reduced(the_plan, "settle"), reduced.to_bytes())
    finally:
        report.discard()
    _progress(pipeline, task, "write", task.total)
    return Step([task.to("write", i) for i in range(task.total)])


def _keyof(pipeline: Pipeline, the_plan: Plan) -> Any:
    from operator import itemgetter

    from .schema import RowConverter

    config = pipeline.config
    positions = header_positions(the_plan.header, config, "")
    names = RowConverter(config.schema_, positions, config.key).names
    return itemgetter(*(names.index(k) for k in config.key))


def _conclude(pipeline: Pipeline, task: ShardTask, the_plan: Plan) -> Receipt:
    """Every shard is written: the held rows settle, their winners are written last, and the
    run ends as one run does."""
    config, names = pipeline.config, set(pipeline.state().names(task.run_id))
    settled = _reduced(the_plan, "settle") in names
    base = _reduction(pipeline, task, "settle" if settled else "check")
    written = 0
    helds = []
    for d in _deltas(pipeline, task, "write"):
        written += d.snapshot["written"]
        helds.append(d.held)
    held, duplicates, _ = settle_held(config, helds, _keyof(pipeline, the_plan))
    del helds
    claim = task.claim
    load = pipeline.backends.table.begin(claim, pipeline.backends.ledger)
    report = report_of(config, task.file, base.report, base.snapshot["report"])
    try:
        batch: list[Any] = []
        lines: list[int] = []
        for line, row in held.winners():
            batch.append(row)
            lines.append(line)
            if len(batch) >= config.batch_size:
                load.write(batch, lines)
                written += len(batch)
                batch, lines = [], []
        if batch:
            load.write(batch, lines)
            written += len(batch)
        load.finish()
        scan = _scan_of(base.snapshot)
        if not settled:
            scan.duplicates = duplicates
        receipt = _receipt(task, the_plan)
        receipt.errors = list(base.snapshot["errors"])
        conclude(config, receipt, scan, report)
        if receipt.rows_loaded != written:
            log.error(
                "%s: run %s wrote %s rows but counts %s loaded",
                task.file,
                task.run_id,
                written,
                receipt.rows_loaded,
            )
        pipeline._commit(load, claim, receipt, report)
        return _end(pipeline, task, the_plan, receipt, report)
    except BaseException:
        load.abort()
        raise
    finally:
        held.close()
        report.discard()


def _end(
    pipeline: Pipeline,
    task: ShardTask,
    the_plan: Plan,
    receipt: Receipt,
    report: Any,
) -> Receipt:
    claim = task.claim
    claim.extra["checkpointed"] = True  # its state goes when it ends
    return pipeline._finish(pipeline.inbound, claim, receipt, report, the_plan.started)
