"""What a load would cost before anything is written: the write units of a DynamoDB table.

A dry run (``batchdrop validate``) hands the table's row check to its validation pass, counting
(``tables/dynamodb_units.py``): each row that passes adds the units a put of it takes, one per
started KB of the item. Nothing is counted for a table that is not DynamoDB, whose dry run
stays as fast as it was.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import DataError
from .passes import scan_file, two_pass
from .report import REJECTED, Receipt, RejectedRowsReport, count_write_units

if TYPE_CHECKING:
    from .config import Config
    from .ports import FileRef, FileStore
    from .scan import Deadline, Progress


def dry_run_passes(
    config: Config,
    store: FileStore,
    ref: FileRef,
    receipt: Receipt,
    report: RejectedRowsReport,
    deadline: Deadline | None,
    progress: Progress | None,
    table: Any = None,
    ledger: Any = None,
) -> None:
    """The passes of a load that writes nothing (``passes.two_pass`` without a load), and for
    a DynamoDB table the write units the load would take. With ``table`` (a load compared with
    the feed's last one), the plan too: the rows unchanged and deleted, and a snapshot over
    ``max_deletes`` rejected, as the load would."""
    check = units_check(config)
    two_pass(config, store, ref, receipt, report, None, check, deadline, progress)
    if check is not None:
        estimate(config, receipt, check)
    if table is not None and receipt.status != REJECTED and not receipt.rows_duplicate:
        preview(config, store, ref, receipt, table, ledger, deadline)


def preview(
    config: Config,
    store: FileStore,
    ref: FileRef,
    receipt: Receipt,
    table: Any,
    ledger: Any,
    deadline: Deadline | None,
) -> None:
    """What the plan of the load would say (a file whose keys repeat is not previewed: the
    load settles its repeats first)."""
    scratch = Receipt(file=ref.name, source=ref.url, version=ref.version, size=ref.size)
    ignored = RejectedRowsReport(ref.name)

    def read(sink: Any) -> None:
        scan_file(config, store, ref, scratch, ignored, load=sink, deadline=deadline)

    try:
        plan = table.plan("dry-run", ref.name, ledger, read, dry=True)
    except DataError:  # the load would be rejected: it would write nothing
        receipt.write_units = receipt.write_cost_usd = None
        raise
    finally:
        ignored.discard()
    unchanged = len(plan.unchanged)
    receipt.rows_unchanged, receipt.rows_deleted = unchanged, plan.deleted
    if receipt.write_units is not None and receipt.rows_loaded:
        sent = receipt.rows_loaded - unchanged
        units = receipt.write_units * sent / receipt.rows_loaded + plan.deleted
        count_write_units(receipt, float(round(units)), config.aws.write_unit_price)


def units_check(config: Config) -> Any:
    """The row check that counts write units, for a DynamoDB table; None for others."""
    if not config.table.url.startswith("dynamodb://"):
        return None
    from .tables.dynamodb_items import ItemCodec

    check = ItemCodec(config).check
    check.counting = True
    return check


def estimate(config: Config, receipt: Receipt, check: Any) -> None:
    """Put in the dry run's receipt the write units its rows would take, and their cost.

    The check counted every row it passed; rows left out as repeats of a key are not written,
    so a file with repeats is counted in proportion to the rows that would load."""
    if receipt.status == REJECTED or not receipt.rows_loaded:
        return
    units = check.units
    if check.passed > receipt.rows_loaded:
        units = round(units * receipt.rows_loaded / check.passed)
    count_write_units(receipt, float(units), config.aws.write_unit_price)
