"""The passes over one file that a load needs: one (SQLite rolls a file back itself) or two
(DynamoDB cannot, so the whole file is validated before the first write).

The engine (pipeline.py) decides what to do with a file; this module decides how its rows are
read to do it.
"""

from __future__ import annotations

import gc
import logging
from array import array
from collections.abc import Callable
from typing import Any

from .checkpoint import STAGE_NAMES, TOP, Checkpoints, Delta, Paused
from .config import Config
from .dedup import DuplicateFinder
from .dedup_helper import new_finder
from .errors import DataError, RowError
from .outcome import REPEATS_LISTED, conclude, rejects_duplicates, rejects_file
from .ports import FileRef, FileStore, Load
from .report import REJECTED, Receipt, RejectedRowsReport
from .scan import BadCut, Deadline, Pass, Progress, Scan, Skip
from .segments import cut_reason
from .shard_work import merge_reports, report_rows

log = logging.getLogger("batchdrop")
#: wrong cuts (segments.Cutter) a pass corrects before it reads the rest of a file in one piece
MAX_BAD_CUTS = 8

RowCheck = Callable[[tuple[Any, ...]], tuple[str, str] | None] | None
#: a table's plan of the write pass (tables/dynamodb_modes.py): given a reader of the rows the
#: write pass will write, into a sink load
Plan = Callable[[Callable[[Load], Scan]], None]


def scan_file(
    config: Config,
    store: FileStore,
    ref: FileRef,
    receipt: Receipt,
    report: RejectedRowsReport,
    *,
    stage: str = "",
    run: Checkpoints | None = None,
    **options: Any,
) -> Scan:
    """One pass over the file (see scan.py): in one read, or, for a run with checkpoints, in
    segments that each end with one (this pass is ``stage`` of the run's passes). The pass
    makes millions of short-lived tuples and no reference cycles, so the cyclic garbage
    collector is paused meanwhile."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        if run is None:
            with store.open(ref) as stream:
                return Pass(config, ref.name, receipt, report, size=ref.size, **options).run(stream)
        return _in_segments(config, store, ref, receipt, report, stage, run, options)
    finally:
        if enabled:
            gc.enable()


def _in_segments(
    config: Config,
    store: FileStore,
    ref: FileRef,
    receipt: Receipt,
    report: RejectedRowsReport,
    stage: str,
    run: Checkpoints,
    options: dict[str, Any],
) -> Scan:
    """A pass that saves a checkpoint after each segment and goes on from the last one saved.
    A segment that ended inside a quoted field (a stray quote fooled the cut) is read again,
    and the rest of the file with it, in one segment."""
    entry = (receipt.to_dict(), report.mark())
    cuts = cut_reason(config) is None
    flips = run.flips  # wrong cuts found, by the offset of the segment they ended
    while True:
        p = Pass(config, ref.name, receipt, report, size=ref.size, **options)
        p.journal, p.key_hash = True, run.key_hash
        try:
            last = p.restore(run.deltas(stage), ended=run.ended(stage))
            if last is not None and last.final:
                return _ended(p, last, options.get("finder"))
            at, seq = (last.end, last.seq + 1) if last is not None else (TOP, 0)
            if last is not None:
                log.info(
                    "%s: run %s goes on %s from line %s (byte %s)",
                    ref.name,
                    run.claim.run_id,
                    STAGE_NAMES.get(stage, stage),
                    at.line + 1,
                    at.offset,
                )
            while True:
                want = run.want_cut() if cuts else None
                with store.open(ref, 0 if p.gzipped else at.offset) as stream:
                    end = p.segment(stream, at, want, flips.get(at.offset, ()))
                if end is None:
                    break
                p.settle_segment()
                run.save(p.delta(stage, seq, at, end))
                log.info(
                    "%s: checkpoint %s, %s to line %s (byte %s)",
                    ref.name,
                    seq,
                    STAGE_NAMES.get(stage, stage),
                    end.line,
                    end.offset,
                )
                if run.time_is_short():
                    receipt.rows_read = p.scan.read
                    raise Paused(
                        f"{ref.name}: paused at line {end.line + 1} with too little time left "
                        "in this invocation; it goes on from there when the file comes back"
                    )
                at, seq = end, seq + 1
            scan = p.end()
            final = p.delta(stage, seq, at, at)
            final.final = True
            finder = options.get("finder")
            if finder is not None:
                final.results["repeats"] = finder.repeats
                final.repeated = array("q", scan.repeated_hashes.items())
            run.save(final)
            return scan
        except BadCut as bad:
            p.abandon()
            wrong = flips.setdefault(at.offset, [])
            wrong.append(bad.args[1])
            cuts = sum(map(len, flips.values())) < MAX_BAD_CUTS
            log.warning(
                "%s: line %s ends inside a quoted field, though the quotes before it say "
                "otherwise (a stray quote?): %s",
                ref.name,
                bad.args[0],
                "the segment is read again with that known"
                if cuts
                else "the rest of the file is read in one piece",
            )
            Receipt.restore(receipt, entry[0])
            report.rewind(entry[1])
            if options.get("finder") is not None:
                options["finder"].clear()
        except BaseException:
            p.abandon()
            raise


def _ended(p: Pass, last: Delta, finder: DuplicateFinder | None) -> Scan:
    """A pass that ended before this process: its scan as it ended."""
    p.held.close()
    scan = p.scan
    if finder is not None:
        finder.close()
        finder.repeats = int(last.results.get("repeats", 0))
        scan.repeated_hashes.add_many(last.repeated)
    return scan


def one_pass(
    config: Config,
    store: FileStore,
    ref: FileRef,
    receipt: Receipt,
    report: RejectedRowsReport,
    load: Load,
    deadline: Deadline | None,
    progress: Progress | None,
) -> None:
    """Read, validate and write in one pass, for a table that finds repeated keys itself and
    rolls the whole file back when the outcome is a rejection. The table counts the repeats
    but cannot say which row each one repeats: when they reject the file, it is rolled back
    first, then read again to list them as a two-pass load does."""
    scan = scan_file(
        config, store, ref, receipt, report, load=load, deadline=deadline, progress=progress
    )
    listed: list[RowError] = []
    if not rejects_file(config, scan.invalid, scan.read) and rejects_duplicates(
        config, scan.duplicates, scan.read
    ):
        load.abort()
        listed = list_repeats(config, store, ref, deadline)
    conclude(config, receipt, scan, report, listed)


def two_pass(
    config: Config,
    store: FileStore,
    ref: FileRef,
    receipt: Receipt,
    report: RejectedRowsReport,
    begin: Callable[[], Load] | None,
    row_check: RowCheck,
    deadline: Deadline | None,
    progress: Progress | None,
    run: Checkpoints | None = None,
    plan: Plan | None = None,
) -> Load | None:
    """Pass one validates every row and finds the key hashes that repeat. Pass two skips
    the bad rows, holds back the rows whose key hash repeats, settles those by their real
    keys, and writes through the load that ``begin`` starts (a dry run has none). With
    ``duplicates: reject`` the real keys may reject the file, so they are settled in a pass
    of their own before anything is written; so are they when the repeated key hashes are
    more than ``max_duplicates`` allows (equal keys hash alike: fewer repeated hashes mean
    fewer repeated keys, and the write pass may go ahead at once). With ``run``, each pass
    is a stage of a run that checkpoints (see checkpoint.py). With ``plan`` (a table that
    compares a load with the last one), the rows the write pass will write are read once more
    before it, into the sink ``plan`` is given (never checkpointed: a run that goes on reads
    them again)."""
    finder = new_finder(ref.size)
    first = scan_file(
        config,
        store,
        ref,
        receipt,
        report,
        stage="check",
        run=run,
        finder=finder,
        row_check=row_check,
        deadline=deadline,
        progress=progress,
    )
    try:
        return _settle_and_write(
            config, store, ref, receipt, report, begin, first, finder.repeats, deadline, run, plan
        )
    finally:
        first.bad_lines.close()
        first.repeated_hashes.close()


def _settle_and_write(
    config: Config,
    store: FileStore,
    ref: FileRef,
    receipt: Receipt,
    report: RejectedRowsReport,
    begin: Callable[[], Load] | None,
    first: Scan,
    repeats_by_hash: int,
    deadline: Deadline | None,
    run: Checkpoints | None,
    plan: Plan | None = None,
) -> Load | None:
    repeats = first.repeated_hashes
    skip = (first.bad_lines, repeats)
    if rejects_file(config, first.invalid, first.read) or (begin is None and not repeats):
        conclude(config, receipt, first, report)
        return None
    if (
        repeats
        and config.duplicates != "reject"
        and (begin is None or rejects_duplicates(config, repeats_by_hash, first.read))
    ):
        # Past max_duplicates by key hash: count by the real keys before anything is
        # written, since the table cannot take back a file once rows are in.
        first.duplicates, listed = count_repeats(config, store, ref, skip, deadline, run)
        if begin is None or rejects_duplicates(config, first.duplicates, first.read):
            conclude(config, receipt, first, report, listed)
            return None
        first.duplicates = 0  # hash collisions: the write pass counts the repeats itself
    settled = bool(repeats) and (begin is None or config.duplicates == "reject")
    if settled:
        repeats_report = RejectedRowsReport(ref.name)
        try:
            check = scan_file(
                config,
                store,
                ref,
                receipt,
                repeats_report,
                stage="settle",
                run=run,
                skip=skip,
                deadline=deadline,
            )
            # the repeats among the invalid rows, each at its line
            both = merge_reports(
                config,
                ref.name,
                report_rows(report.contents()),
                report_rows(repeats_report.contents()),
            )
            both.omitted += report.omitted + repeats_report.omitted
            report.adopt(both)
        finally:
            repeats_report.discard()
        conclude(config, receipt, merged(first, check), report)
        if begin is None or receipt.status == REJECTED:
            return None
    if plan is not None:
        scratch = Receipt(file=ref.name, source=ref.url, version=ref.version, size=ref.size)
        ignored = RejectedRowsReport(ref.name)
        try:
            plan(
                lambda sink: scan_file(
                    config, store, ref, scratch, ignored, load=sink, skip=skip, deadline=deadline
                )
            )
        except DataError:  # the plan rejects the file (max_deletes): its rows count as read
            conclude(config, receipt, first, report)
            raise
        finally:
            ignored.discard()
    load = begin()  # type: ignore[misc]
    # once settled, the write pass counts nothing: its findings are already in the receipt
    sink_receipt = Receipt(**receipt.to_dict()) if settled else receipt
    sink_report = RejectedRowsReport(ref.name) if settled else report
    try:
        second = scan_file(
            config,
            store,
            ref,
            sink_receipt,
            sink_report,
            stage="write",
            run=run,
            load=load,
            skip=skip,
            deadline=deadline,
        )
    except BaseException:
        load.abort()
        raise
    finally:
        if settled:
            sink_report.discard()
    if not settled:
        conclude(config, receipt, merged(first, second), report)
    return load


def count_repeats(
    config: Config,
    store: FileStore,
    ref: FileRef,
    skip: Skip,
    deadline: Deadline | None,
    run: Checkpoints | None = None,
) -> tuple[int, list[RowError]]:
    """The rows whose real key repeats an earlier row's, and the first of them: the rows
    whose key hash repeats (``skip``) settled as ``duplicates: reject`` settles them, into a
    throwaway receipt and a report that keeps only the first few."""
    sample = RepeatSample(ref.name)
    scratch = Receipt(file=ref.name, source=ref.url, version=ref.version, size=ref.size)
    scan = scan_file(
        _listing(config),
        store,
        ref,
        scratch,
        sample,
        stage="count",
        run=run,
        skip=skip,
        deadline=deadline,
    )
    return scan.invalid, sample.rows


def list_repeats(
    config: Config, store: FileStore, ref: FileRef, deadline: Deadline | None
) -> list[RowError]:
    """The first rows whose key repeats an earlier row's, found by key hash, then by real key."""
    finder = new_finder(ref.size)
    scratch = Receipt(file=ref.name, source=ref.url, version=ref.version, size=ref.size)
    first = scan_file(
        _listing(config),
        store,
        ref,
        scratch,
        RepeatSample(ref.name, 0),
        finder=finder,
        deadline=deadline,
    )
    try:
        if not first.repeated_hashes:
            return []
        skip = (first.bad_lines, first.repeated_hashes)
        return count_repeats(config, store, ref, skip, deadline)[1]
    finally:
        first.bad_lines.close()
        first.repeated_hashes.close()


def _listing(config: Config) -> Config:
    """The config that reads every repeat as a rejected row naming the line it repeats, and
    every row of the file (no rejection stops the read)."""
    return config.model_copy(
        update={"duplicates": "reject", "on_error": "skip_rows", "max_rejected": None}
    )


class RepeatSample(RejectedRowsReport):
    """A rejected-rows report that writes nothing and keeps the first rows it is given."""

    def __init__(self, file_name: str, keep: int = REPEATS_LISTED):
        super().__init__(file_name)
        self.keep = keep
        self.rows: list[RowError] = []

    def add(self, *errs: RowError) -> None:
        if len(self.rows) < self.keep:
            self.rows.extend(errs)

    def saved(self) -> dict[str, Any]:
        rows = [[e.line, e.column, e.value, e.reason] for e in self.rows]
        return {**super().saved(), "rows": rows}

    def load(self, saved: dict[str, Any]) -> None:
        super().load(saved)
        self.rows = [RowError(*row) for row in saved["rows"]]


def merged(first: Scan, second: Scan) -> Scan:
    """The second pass saw only what the first let through: add the first's findings."""
    second.read = first.read
    second.invalid += first.invalid
    second.stopped_at = second.stopped_at or first.stopped_at
    return second
