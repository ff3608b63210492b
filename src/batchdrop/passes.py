"""The passes over one file that a load needs: one (SQLite rolls a file back itself) or two
(DynamoDB cannot, so the whole file is validated before the first write).

The engine (pipeline.py) decides what to do with a file; this module decides how its rows are
read to do it.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

from .config import Config
from .dedup import DuplicateFinder
from .outcome import conclude, rejects_file
from .ports import FileRef, FileStore, Load
from .report import REJECTED, Receipt, RejectedRowsReport
from .scan import Deadline, Pass, Progress, Scan

RowCheck = Callable[[tuple[Any, ...]], tuple[str, str] | None] | None


def scan_file(
    config: Config,
    store: FileStore,
    ref: FileRef,
    receipt: Receipt,
    report: RejectedRowsReport,
    **options: Any,
) -> Scan:
    """One pass over the file (see scan.py). The pass makes millions of short-lived tuples
    and no reference cycles, so the cyclic garbage collector is paused meanwhile."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        with store.open(ref) as stream:
            return Pass(config, ref.name, receipt, report, size=ref.size, **options).run(stream)
    finally:
        if enabled:
            gc.enable()


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
) -> Load | None:
    """Pass one validates every row and finds the key hashes that repeat. Pass two skips
    the bad rows, holds back the rows whose key hash repeats, settles those by their real
    keys, and writes through the load that ``begin`` starts (a dry run has none). With
    ``duplicates: reject`` the real keys may reject the file, so they are settled in a pass
    of their own before anything is written."""
    first = scan_file(
        config,
        store,
        ref,
        receipt,
        report,
        finder=DuplicateFinder(),
        row_check=row_check if begin else None,
        deadline=deadline,
        progress=progress,
    )
    try:
        return _settle_and_write(config, store, ref, receipt, report, begin, first, deadline)
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
    deadline: Deadline | None,
) -> Load | None:
    repeats = first.repeated_hashes
    skip = (first.bad_lines, repeats)
    if rejects_file(config, first.invalid, first.read) or (begin is None and not repeats):
        conclude(config, receipt, first, report)
        return None
    settled = bool(repeats) and (begin is None or config.duplicates == "reject")
    if settled:
        check = scan_file(config, store, ref, receipt, report, skip=skip, deadline=deadline)
        conclude(config, receipt, merged(first, check), report)
        if begin is None or receipt.status == REJECTED:
            return None
    load = begin()  # type: ignore[misc]
    # once settled, the write pass counts nothing: its findings are already in the receipt
    sink_receipt = Receipt(**receipt.to_dict()) if settled else receipt
    sink_report = RejectedRowsReport(ref.name) if settled else report
    try:
        second = scan_file(
            config, store, ref, sink_receipt, sink_report, load=load, skip=skip, deadline=deadline
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


def merged(first: Scan, second: Scan) -> Scan:
    """The second pass saw only what the first let through: add the first's findings."""
    second.read = first.read
    second.invalid += first.invalid
    second.stopped_at = second.stopped_at or first.stopped_at
    return second
