"""A file's outcome from what its scan found: the status and counts that always reconcile."""

from __future__ import annotations

from .config import Config
from .errors import DataError
from .report import LOADED, LOADED_WITH_REJECTS, REJECTED, Receipt, RejectedRowsReport
from .scan import Scan


def rejects_file(config: Config, invalid: int, read: int) -> bool:
    """Whether this many invalid rows reject the whole file."""
    if not invalid:
        return False
    if config.on_error == "reject_file":
        return True
    limit = config.rejected_limit(read)
    return limit is not None and invalid > limit


def conclude(config: Config, receipt: Receipt, scan: Scan, report: RejectedRowsReport) -> None:
    """Counts and status from a scan: every row ends in exactly one count
    (read = loaded + rejected + duplicate). Repeated keys rejected by ``duplicates: reject``
    are already among the invalid rows; ``scan.duplicates`` are the rows the policy left out."""
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
    else:
        receipt.rows_rejected = scan.invalid
        receipt.rows_duplicate = duplicates
        receipt.rows_loaded = scan.read - scan.invalid - duplicates
        receipt.status = LOADED_WITH_REJECTS if scan.invalid else LOADED
    receipt.errors.sort(key=lambda e: e["line"])


def reject_whole(receipt: Receipt, e: DataError) -> None:
    """A file that cannot be read as a whole (its header, its compression): every row it had
    counts as rejected."""
    receipt.status = REJECTED
    receipt.reason = e.reason if e.line is None else f"line {e.line}: {e.reason}"
    receipt.rows_loaded = receipt.rows_duplicate = 0
    receipt.rows_rejected = receipt.rows_read
    receipt.errors = []
