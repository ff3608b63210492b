"""The receipt of one file run, the notification made from it, and the rejected-rows CSV."""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import tempfile
from dataclasses import asdict, dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import IO, Any

from .errors import RowError

LOADED = "loaded"
LOADED_WITH_REJECTS = "loaded_with_rejects"
REJECTED = "rejected"
FAILED = "failed"
SKIPPED = "already_processed"  # not an outcome: this version was loaded before; no notification
BUSY = "busy"  # not an outcome: another run holds this file right now
#: not an outcome: the run stopped at a checkpoint (the time of an invocation ran out) and goes
#: on from there when the file's event comes back
PAUSED = "paused"
#: not an outcome: the file's shards were handed to the consumers of the events queue
SHARDED = "sharded"
#: a dry run's verdicts (``rejected`` stays ``rejected``): nothing was written, so never "loaded"
WOULD_LOAD = "would_load"
WOULD_LOAD_WITH_REJECTS = "would_load_with_rejects"
OUTCOMES = (LOADED, LOADED_WITH_REJECTS, REJECTED, FAILED)
MAX_ERRORS_IN_RECEIPT = 10


@dataclass
class Receipt:
    file: str
    source: str
    version: str
    size: int
    run_id: str = ""
    status: str = FAILED
    rows_read: int = 0
    rows_loaded: int = 0
    rows_rejected: int = 0
    rows_duplicate: int = 0
    rows_invalid: int = 0  # rows with errors; in a rejected file every row counts as rejected
    started_at: str = ""
    finished_at: str = ""
    duration_s: float = 0.0
    reason: str | None = None  # why the file was rejected or failed, in one line
    errors: list[dict[str, Any]] = field(default_factory=list)  # the first rejected rows
    moved_to: str | None = None
    rejected_rows_report: str | None = None
    dry_run: bool = False
    attempt: int = 1  # which run of this file version this is (failed runs count)
    set_aside: bool = False  # failed max_attempts times: moved to errors, never retried again
    #: rejected rows left out of the rejected-rows report (limits.max_report_rows)
    report_rows_omitted: int = 0
    #: DynamoDB write units the load consumed (ReturnConsumedCapacity, summed over every
    #: invocation and shard), or in a dry run the units a load would take; None: SQLite
    write_units: float | None = None
    #: their cost in US dollars at ``aws.write_unit_price`` (an estimate)
    write_cost_usd: float | None = None
    #: the feed the file was routed to (None: a config without ``feeds:``)
    feed: str | None = None
    #: ``only_if_newer``: valid rows not written because the table holds a newer version
    rows_stale: int = 0
    #: ``write: changed_only``: loaded rows the table already held as they are (not written;
    #: part of ``rows_loaded``)
    rows_unchanged: int = 0
    #: ``mode: snapshot``: keys of the previous snapshot absent from this file, deleted
    rows_deleted: int = 0

    def add_error(self, err: RowError) -> None:
        """Keep the first errors of the file by line, whatever order they are found in (a
        pass that settles repeated keys reads the file again from the top)."""
        errors = self.errors
        if len(errors) >= MAX_ERRORS_IN_RECEIPT and errors[-1]["line"] <= err.line:
            return
        at = len(errors)
        while at and errors[at - 1]["line"] > err.line:
            at -= 1
        errors.insert(at, err.to_dict())
        del errors[MAX_ERRORS_IN_RECEIPT:]

    @property
    def reconciles(self) -> bool:
        return self.rows_read == (
            self.rows_loaded + self.rows_rejected + self.rows_duplicate + self.rows_stale
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def restore(self, data: dict[str, Any]) -> None:
        """Back to what ``to_dict`` said then."""
        for name, value in data.items():
            setattr(self, name, [dict(e) for e in value] if name == "errors" else value)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Receipt:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, default=str)


def count_write_units(receipt: Receipt, units: float, price: float) -> None:
    """The write units of a load (or of a dry run's estimate) and their cost at ``price``
    US dollars per million."""
    receipt.write_units = units
    receipt.write_cost_usd = round(units * price / 1e6, 9)


def dollars(amount: float) -> str:
    """An amount in US dollars as people read it: $12.50, $0.025, $0.000025."""
    if amount <= 0:
        return "$0"
    places = 2 if amount >= 1 else 1 - math.floor(math.log10(amount))  # 2 significant digits
    rounded = Decimal(repr(amount)).quantize(Decimal(1).scaleb(-places), ROUND_HALF_UP)
    return f"${rounded:,}"


def units_text(r: Receipt, price: float | None = None) -> str | None:
    """ "write units: 40,012 (~$0.025)" for a load; for a dry run, what it would take at
    ``price`` dollars per million units. None: the table counts no units (SQLite)."""
    if r.write_units is None:
        return None
    units = f"{r.write_units:,.0f}" if float(r.write_units).is_integer() else f"{r.write_units:,}"
    cost = dollars(r.write_cost_usd or 0.0)
    if not r.dry_run:
        return f"write units: {units} (~{cost})"
    at = f" at ${price:g} per million" if price is not None else ""
    return f"write units: {units}, about {cost}{at}"


def as_dry_run(receipt: Receipt) -> Receipt:
    """A dry run's receipt says what a load would do: its ``rows_loaded`` are the rows that
    would load."""
    receipt.dry_run = True
    receipt.status = {LOADED: WOULD_LOAD, LOADED_WITH_REJECTS: WOULD_LOAD_WITH_REJECTS}.get(
        receipt.status, receipt.status
    )
    return receipt


def already_processed(receipt: Receipt, run_id: str, earlier: dict[str, Any] | None) -> Receipt:
    """The receipt of content dropped again after a run finished it: nothing is read or
    written this time, so every count is 0, and the reason names that run and what it did."""
    receipt.status, receipt.run_id = SKIPPED, run_id
    receipt.rows_read = receipt.rows_loaded = receipt.rows_rejected = 0
    receipt.rows_duplicate = receipt.rows_invalid = 0
    reason = f"already processed by run {run_id}"
    if earlier:
        done = Receipt.from_dict(earlier)
        if done.finished_at:
            reason += f" at {done.finished_at}"
        reason += f" ({done.status}: {done.rows_loaded} of {done.rows_read} rows loaded)"
    receipt.reason = reason + "; not loaded again"
    return receipt


def subject(r: Receipt, limit: int = 100) -> str:
    """One line, within SNS's 100 characters."""
    verb = {
        LOADED: "loaded",
        LOADED_WITH_REJECTS: "loaded with rejects",
        REJECTED: "REJECTED",
        FAILED: "FAILED",
        WOULD_LOAD: "would load",
        WOULD_LOAD_WITH_REJECTS: "would load with rejects",
        SKIPPED: "already processed",
    }.get(r.status, r.status)
    counts = f"{r.rows_loaded}/{r.rows_read} rows"
    name = r.file.rsplit("/", 1)[-1]
    text = f"batchdrop: {name} {verb} ({counts})"
    if len(text) > limit:
        room = limit - len(text) + len(name) - 1
        text = f"batchdrop: {name[: max(room, 1)]}… {verb} ({counts})"[:limit]
    return text


def mode_counts(r: Receipt, sep: str) -> str:
    """What the write modes did, when they did something: stale rows (beside the counts
    that reconcile), unchanged rows (of those loaded) and deleted rows."""
    parts = [
        f"{n} {what}"
        for n, what in (
            (r.rows_stale, "stale"),
            (r.rows_unchanged, "unchanged"),
            (r.rows_deleted, "deleted"),
        )
        if n
    ]
    return "".join(sep + p for p in parts)


def summary(r: Receipt) -> str:
    """The readable text of a notification."""
    lines = [
        f"File:       {r.source}",
        f"Status:     {r.status}",
        f"Rows:       {r.rows_read} read, {r.rows_loaded} {'would load' if r.dry_run else 'loaded'}"
        f", {r.rows_rejected} rejected, {r.rows_duplicate} duplicate" + mode_counts(r, ", "),
        f"Duration:   {r.duration_s:.2f} s",
    ]
    if r.reason:
        lines.append(f"Reason:     {r.reason}")
    units = units_text(r)
    if units:
        lines.append(f"Write units: {units.removeprefix('write units: ')}")
    if r.moved_to:
        lines.append(f"Moved to:   {r.moved_to}")
    if r.rejected_rows_report:
        lines.append(f"Rejected rows: {r.rejected_rows_report}")
    if r.report_rows_omitted:
        lines.append(
            f"Report cut: {r.report_rows_omitted} more rejected rows not listed "
            "(limits.max_report_rows)"
        )
    if r.errors:
        lines.append("First errors:")
        for e in r.errors:
            col = f", column {e['column']!r}" if e["column"] else ""
            lines.append(f"  line {e['line']}{col}: {e['reason']} (value {e['value']!r})")
    return "\n".join(lines)


def message(r: Receipt) -> dict[str, Any]:
    """What every notifier sends: subject, text and the receipt."""
    return {"subject": subject(r), "text": summary(r), "receipt": r.to_dict()}


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: str) -> str:
    """Keep a spreadsheet from running a value as a formula (CSV injection)."""
    return "'" + value if value.startswith(_FORMULA_START) else value


class RejectedRowsReport:
    """The rejected-rows CSV, spooled to a temporary file while the input streams. It holds at
    most ``max_rows`` lines (None: no limit), whole rows only: once a rejected row does not fit,
    it is ``full``, and the rows after it are only counted in ``omitted``."""

    HEADER = ("file", "line", "column", "value", "reason")

    def __init__(self, file_name: str, max_rows: int | None = None):
        self.file_name = file_name
        self.max_rows = max_rows
        self.count = 0  # lines written (a row with several errors has a line for each)
        self.omitted = 0  # rejected rows left out
        self.full = False
        self._tmp: IO[str] | None = None
        self._writer: Any = None
        self._told = 0  # bytes ``tail`` has given

    def add(self, *errs: RowError) -> None:
        """One rejected row: a line for each of its errors."""
        if self.full or (self.max_rows is not None and self.count + len(errs) > self.max_rows):
            self.full = True
            self.omitted += 1
            return
        if self._writer is None:
            self._tmp = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in discard()
                "w", newline="", encoding="utf-8", suffix=".rejected.csv", delete=False
            )
            self._writer = csv.writer(self._tmp)
            self._writer.writerow(self.HEADER)
        for err in errs:
            self._writer.writerow(
                (
                    neutralise(self.file_name),
                    err.line,
                    neutralise(err.column),
                    neutralise(err.value),
                    neutralise(err.reason),
                )
            )
        self.count += len(errs)

    def path(self) -> str | None:
        if self._tmp is None:
            return None
        self._tmp.flush()
        return self._tmp.name

    # --- checkpoints: the report of a run that goes on in another process ------------------

    def tail(self) -> bytes:
        """The CSV bytes written since the last call."""
        if self._tmp is None:
            return b""
        self._tmp.flush()
        with open(self._tmp.name, "rb") as f:
            f.seek(self._told)
            data = f.read()
        self._told += len(data)
        return data

    def extend(self, data: bytes) -> None:
        """Bytes an earlier ``tail`` gave, written again (the first holds the header row)."""
        if self._writer is None:
            self._tmp = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in discard()
                "w", newline="", encoding="utf-8", suffix=".rejected.csv", delete=False
            )
            self._writer = csv.writer(self._tmp)
        assert self._tmp is not None
        self._tmp.flush()
        with open(self._tmp.name, "ab") as f:
            f.write(data)
        self._tmp.seek(0, 2)  # the writer goes on after what was added
        self._told += len(data)

    def mark(self) -> tuple[int, dict[str, Any]]:
        """Where the report is now, for ``rewind``."""
        size = 0
        if self._tmp is not None:
            self._tmp.flush()
            size = os.path.getsize(self._tmp.name)
        return size, self.saved()

    def rewind(self, mark: tuple[int, dict[str, Any]]) -> None:
        """Back to ``mark``: the rows added since are dropped."""
        size, saved = mark
        if self._tmp is not None and not size:
            self.discard()
        elif self._tmp is not None:
            self._tmp.flush()
            self._tmp.truncate(size)
            self._tmp.seek(0, 2)
        self._told = min(self._told, size)
        self.load(saved)

    def contents(self) -> bytes:
        """The CSV written so far (b"" when there is none)."""
        path = self.path()
        if path is None:
            return b""
        with open(path, "rb") as f:
            return f.read()

    def adopt(self, other: RejectedRowsReport) -> None:
        """Become ``other`` (a report rebuilt from this one), which is left empty."""
        self.discard()
        self.count, self.omitted, self.full = other.count, other.omitted, other.full
        self._tmp, self._writer, self._told = other._tmp, other._writer, other._told
        other._tmp, other._writer, other._told = None, None, 0

    def saved(self) -> dict[str, Any]:
        return {"count": self.count, "omitted": self.omitted, "full": self.full}

    def load(self, saved: dict[str, Any]) -> None:
        self.count, self.omitted, self.full = saved["count"], saved["omitted"], saved["full"]

    def discard(self) -> None:
        if self._tmp is not None:
            import os

            self._tmp.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._tmp.name)
            self._tmp = None
            self._writer = None
            self._told = 0
