"""The steps of a sharded run that read every shard's findings (shards.py): the reductions
between phases, and the conclusion. They read the shards' deltas in file order, so what they
produce — counts, the rejected-rows report, which row of a repeated key wins — is what one pass
over the whole file would have produced.
"""

from __future__ import annotations

import logging
from array import array
from collections.abc import Iterator
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from .checkpoint import TOP, Delta
from .dedup import DuplicateFinder
from .errors import DataError
from .outcome import conclude, reject_whole, rejects_duplicates, rejects_file
from .ports import iso_time
from .reader import header_positions
from .report import REJECTED, Receipt
from .scan import Scan
from .shard_work import (
    first_errors,
    grouped,
    merge_check,
    merge_reports,
    report_of,
    report_rows,
    settle_held,
)
from .shards import (
    PLAN,
    Plan,
    ShardTask,
    Step,
    deltas_of,
    record_step,
    reduced_name,
    reduction,
    store_of,
)

if TYPE_CHECKING:
    from .pipeline import Pipeline

log = logging.getLogger("batchdrop")


def _receipt(task: ShardTask, the_plan: Plan) -> Receipt:
    receipt = Receipt(file=task.file, source=task.url, version=task.version, size=task.size)
    receipt.run_id, receipt.attempt = task.run_id, task.attempt
    receipt.started_at = iso_time(the_plan.started)
    return receipt


def reduce_check(pipeline: Pipeline, task: ShardTask, the_plan: Plan) -> Step:
    config = pipeline.config
    bad_cuts: list[int] = []
    fatal: list[Any] = []
    finder = DuplicateFinder()

    def shards() -> Iterator[Delta]:
        for d in deltas_of(pipeline, task, "check"):
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
        name = reduced_name(the_plan, "check")
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
    record_step(pipeline, task, next_step, task.total)
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
    record_step(pipeline, base, "check", total)
    return [base.to("check", i, total) for i in range(total)]


def reduce_settle(pipeline: Pipeline, task: ShardTask, the_plan: Plan) -> Step:
    config = pipeline.config
    checked = reduction(pipeline, task, "check")
    keyof = _keyof(pipeline, the_plan)
    held, duplicates, rejected = settle_held(
        config, (d.held for d in deltas_of(pipeline, task, "settle")), keyof
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
        pipeline.state().put(task.run_id, reduced_name(the_plan, "settle"), reduced.to_bytes())
    finally:
        report.discard()
    record_step(pipeline, task, "write", task.total)
    return Step([task.to("write", i) for i in range(task.total)])


def _keyof(pipeline: Pipeline, the_plan: Plan) -> Any:
    from operator import itemgetter

    from .schema import RowConverter

    config = pipeline.config
    positions = header_positions(the_plan.header, config, "")
    names = RowConverter(config.schema_, positions, config.key).names
    return itemgetter(*(names.index(k) for k in config.key))


def conclude_run(pipeline: Pipeline, task: ShardTask, the_plan: Plan) -> Receipt:
    """Every shard is written: the held rows settle, their winners are written last, and the
    run ends as one run does."""
    config, names = pipeline.config, set(pipeline.state().names(task.run_id))
    settled = reduced_name(the_plan, "settle") in names
    base = reduction(pipeline, task, "settle" if settled else "check")
    written, units = 0, 0.0
    helds = []
    for d in deltas_of(pipeline, task, "write"):
        written += d.snapshot["written"]
        units += d.results.get("write_units", 0.0)
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
        pipeline._commit(load, claim, receipt, report, units)
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
    store = store_of(pipeline, task)
    return pipeline._finish(store, claim, receipt, report, the_plan.started)
