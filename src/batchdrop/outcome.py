"""A file's outcome from what its scan found: the status and counts that always reconcile."""

from __future__ import annotations

from collections.abc import Iterable

from .config import Config
from .errors import DataError, RowError
from .report import LOADED, LOADED_WITH_REJECTS, REJECTED, Receipt, RejectedRowsReport
from .scan import Scan

#: repeated rows listed in the rejected-rows report of a file rejected for its duplicates
REPEATS_LISTED = 100


def rejects_file(config: Config, invalid: int, read: int) -> bool:
    """Whether this many invalid rows reject the whole file."""
    if not invalid:
        return False
    if config.on_error == "reject_file":
        return True
    limit = config.rejected_limit(read)
    return limit is not None and invalid > limit


def rejects_duplicates(config: Config, duplicates: int, read: int) -> bool:
    """Whether this many rows repeating an earlier row's key reject the whole file: a wrong
    key collapses most of a file, and that must not pass as a load."""
    return duplicates > config.duplicates_limit(read)


def conclude(
    config: Config,
    receipt: Receipt,
    scan: Scan,
    report: RejectedRowsReport,
    repeats: Iterable[RowError] = (),
) -> None:
    """Counts and status from a scan: every row ends in exactly one count
    (read = loaded + rejected + duplicate). Repeated keys rejected by ``duplicates: reject``
    are already among the invalid rows; ``scan.duplicates`` are the rows the policy left out.
    ``repeats`` are some of those rows, listed when they reject the file."""
    duplicates = scan.duplicates
    receipt.report_rows_omitted = report.omitted
    receipt.rows_read = scan.read
    receipt.rows_invalid = scan.invalid
    if rejects_file(config, scan.invalid, scan.read):
        receipt.status = REJECTED
        receipt.rows_loaded, receipt.rows_rejected, receipt.rows_duplicate = 0, scan.read, 0
        receipt.reason = f"{scan.invalid} invalid row(s)"
        if config.rejected_limit(scan.read) is not None:
            receipt.reason += f", more than max_rejected ({config.max_rejected})"
        if scan.stopped_at is not None:
            receipt.reason += (
                f"; reading stopped at line {scan.stopped_at}: the rejected-rows report holds "
                f"its limits.max_report_rows ({config.limits.max_report_rows}) and the file is "
                "rejected whatever follows"
            )
    elif rejects_duplicates(config, duplicates, scan.read):
        receipt.status = REJECTED
        receipt.rows_loaded, receipt.rows_duplicate = 0, duplicates
        receipt.rows_rejected = scan.read - duplicates
        receipt.reason = duplicates_reason(config, duplicates, scan.read)
        for err in repeats:
            receipt.add_error(err)
            report.add(err)
        receipt.report_rows_omitted = report.omitted
    else:
        receipt.rows_rejected = scan.invalid
        receipt.rows_duplicate = duplicates
        receipt.rows_loaded = scan.read - scan.invalid - duplicates
        receipt.status = LOADED_WITH_REJECTS if scan.invalid else LOADED
    receipt.errors.sort(key=lambda e: e["line"])


def duplicates_reason(config: Config, duplicates: int, read: int) -> str:
    share = 100 * duplicates / read if read else 0.0
    shown = f"{share:.1f}%" if share >= 0.1 else "under 0.1%"
    return (
        f"{duplicates} of {read} rows repeat the key ({', '.join(config.key)}) — {shown}, "
        f"more than max_duplicates ({config.max_duplicates}): check table.partition_key/"
        "sort_key, or raise max_duplicates"
    )


def reject_whole(receipt: Receipt, e: DataError) -> None:
    """A file that cannot be read as a whole (its header, its compression): every row it had
    counts as rejected."""
    receipt.status = REJECTED
    receipt.reason = e.reason if e.line is None else f"line {e.line}: {e.reason}"
    receipt.rows_loaded = receipt.rows_duplicate = 0
    receipt.rows_rejected = receipt.rows_read
    receipt.errors = []


def check_deletes(
    config: Config, deleted: int, held: int, partitions: int, file: str, what: str = "rows"
) -> None:
    """``mode: snapshot``'s guard: a DataError when the snapshot would delete more than
    ``max_deletes`` of the ``held`` rows (items) in its scope (``partitions``: how many the file
    holds, with ``snapshot_scope: partition``; 0 for the whole table)."""
    if config.mode != "snapshot" or deleted <= config.deletes_limit(held):
        return
    share = 100 * deleted / held if held else 100.0
    scope = f" in the {partitions:,} partition(s) the file holds" if partitions else ""
    raise DataError(
        f"the snapshot would delete {deleted:,} of {held:,} {what}{scope} "
        f"({f'{share:.1f}'.removesuffix('.0')}%), over max_deletes {config.max_deletes}: a file "
        "that lost rows on the way (a truncated upload) must not empty the table, so nothing "
        f"was written. If those {what} are really gone, load it again with a higher "
        "max_deletes",
        file=file,
    )
