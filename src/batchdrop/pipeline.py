"""The engine: claim a file, stream and validate its rows, write them, commit, move, report.

It talks only to the ports (files, table, ledger, notifiers); every runtime — the CLI, the
Lambda handler, the queue worker — calls ``Pipeline.process`` and nothing else.
"""

from __future__ import annotations

import csv
import gc
import logging
import time
from collections.abc import Callable
from pathlib import Path
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

from .config import Config
from .dedup import DuplicateFinder
from .errors import DataError, RowError, TransientError
from .ports import (Backends, Claim, FileRef, FileStore, Load, Notifier, open_notifiers,
                    open_store)
from .reader import SURROGATE, CsvSource, DecodeErrors, csv_error_reason, header_positions, open_text
from .report import (BUSY, FAILED, LOADED, LOADED_WITH_REJECTS, REJECTED, SKIPPED, Receipt,
                     RejectedRowsReport)
from .schema import RowConverter

log = logging.getLogger("batchdrop")

Progress = Callable[[int], None]  # called with the number of bytes read since the last call
Deadline = Callable[[], float]  # seconds left to work
DEADLINE_MARGIN_S = 20.0


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class Scan:
    """What one pass over a file found."""

    read: int = 0
    invalid: int = 0
    bad_lines: set[int] = field(default_factory=set)
    written: int = 0
    repeated: list[tuple[int, Any]] = field(default_factory=list)  # (line, key) seen before
    groups: list[list[int]] = field(default_factory=list)  # candidate duplicate line groups


class Pipeline:
    def __init__(self, config: Config, *, backends: Backends | None = None,
                 notifiers: list[Notifier] | None = None):
        self.config = config
        self.inbound = open_store(config.inbound, config)
        self.archive = open_store(config.archive, config)
        self.errors = open_store(config.errors, config)
        self.backends = backends or Backends(config)
        self.notifiers = open_notifiers(config) if notifiers is None else notifiers
        self.suffixes = (config.suffix, config.suffix + ".gz")
        self._prepared = False

    # --- entry points -----------------------------------------------------------------------

    def pending(self) -> list[FileRef]:
        """Files waiting in the inbound location, oldest first."""
        return self.inbound.list(self.suffixes)

    def recover(self, older_than_s: float = 60.0) -> list[Receipt]:
        """Finish runs that committed their rows and moved the file, then stopped (a crash)
        before recording it: record them done and send their one notification."""
        unfinished = getattr(self.backends.ledger, "unfinished", None)
        if unfinished is None:
            return []
        out = []
        for rec in unfinished(older_than_s):
            if self.inbound.stat(rec["file"]) is not None:
                continue  # still in inbound: its next claim resumes it
            receipt = Receipt.from_dict(rec["receipt"] or {})
            ref = FileRef(rec["file"], rec["size"] or 0, rec["version"], 0.0, rec["source"] or "")
            claim = Claim("resume", rec["run_id"], ref)
            receipt.reason = receipt.reason or "finished after an interruption"
            self.backends.ledger.record(claim, "done", receipt)
            self._notify(receipt)
            out.append(receipt)
        return out

    def process(self, name: str, *, force: bool = False, dry_run: bool = False,
                deadline: Deadline | None = None, progress: Progress | None = None) -> Receipt:
        ref = self.inbound.stat(name)
        if ref is None:
            raise FileNotFoundError(f"{name}: no such file in {self.inbound.url}")
        return self.process_ref(ref, force=force, dry_run=dry_run, deadline=deadline,
                                progress=progress)

    def process_path(self, path: str, **options: Any) -> Receipt:
        """Process a local file wherever it is (it is moved to archive or errors afterwards)."""
        from .files.local import LocalStore

        p = Path(path).expanduser().resolve()
        store = LocalStore(str(p.parent))
        ref = store.stat(p.name)
        if ref is None:
            raise FileNotFoundError(f"{path}: no such file")
        return self.process_ref(ref, store=store, **options)

    def process_ref(self, ref: FileRef, *, force: bool = False, dry_run: bool = False,
                    deadline: Deadline | None = None, progress: Progress | None = None,
                    store: FileStore | None = None) -> Receipt:
        store = store or self.inbound
        receipt = Receipt(file=ref.name, source=ref.url, version=ref.version, size=ref.size,
                          dry_run=dry_run)
        started = time.time()
        receipt.started_at = _iso(started)
        if dry_run:
            report = RejectedRowsReport(ref.name)
            try:
                scan = self._scan(store, ref, receipt, report, None, DuplicateFinder(), None, None,
                                  progress)
                self._conclude(receipt, scan, report, exact_duplicates=False)
            except DataError as e:
                self._reject_whole(receipt, e)
            finally:
                report.discard()
            return self._stamp(receipt, started)

        table, ledger = self.backends.table, self.backends.ledger
        if not self._prepared:
            table.prepare()
            self._prepared = True
        claim = ledger.claim(ref, force=force)
        receipt.run_id = claim.run_id
        if claim.outcome == "done":
            done = Receipt.from_dict(claim.receipt or receipt.to_dict())
            done.status, done.run_id = SKIPPED, claim.run_id
            done.reason = f"loaded before by run {claim.run_id}"
            try:  # a second drop of the same content: out of inbound, no second notification
                done.moved_to = store.move(ref, self.archive)
            except FileNotFoundError:
                done.moved_to = None
            return done
        if claim.outcome == "busy":
            receipt.status = BUSY
            receipt.reason = f"run {claim.run_id} is processing this file now"
            return receipt
        if claim.outcome == "resume":
            log.info("%s: rows were committed by run %s; finishing it", ref.name, claim.run_id)
            resumed = Receipt.from_dict(claim.receipt or receipt.to_dict())
            return self._finish(store, claim, resumed, None, started)

        report = RejectedRowsReport(ref.name)
        try:
            try:
                if table.single_pass:
                    self._load_single(store, claim, receipt, report, deadline, progress)
                else:
                    self._load_two_pass(store, claim, receipt, report, deadline, progress)
            except DataError as e:
                self._reject_whole(receipt, e)
            except FileNotFoundError:
                receipt.status, receipt.reason = SKIPPED, "the file left inbound while it was read"
                self.backends.ledger.record(claim, "failed", self._stamp(receipt, started))
                return receipt
            except (TransientError, OSError) as e:
                return self._fail(claim, receipt, e, started)
            except Exception as e:
                self._fail(claim, receipt, e, started)
                raise
            return self._finish(store, claim, receipt, report, started)
        finally:
            report.discard()

    # --- loading ------------------------------------------------------------------------------

    def _load_single(self, store: FileStore, claim: Claim, receipt: Receipt, report: RejectedRowsReport,
                     deadline: Deadline | None, progress: Progress | None) -> None:
        load = self.backends.table.begin(claim, self.backends.ledger)
        try:
            scan = self._scan(store, claim.ref, receipt, report, load, None, None, deadline,
                              progress)
            self._conclude(receipt, scan, report, exact_duplicates=True)
            if receipt.status == REJECTED:
                load.abort()
            else:
                self._commit(load, claim, receipt, report)
        except BaseException:
            load.abort()
            raise

    def _load_two_pass(self, store: FileStore, claim: Claim, receipt: Receipt, report: RejectedRowsReport,
                       deadline: Deadline | None, progress: Progress | None) -> None:
        """Validate the whole file first, then write: the table cannot roll a file back."""
        first = self._scan(store, claim.ref, receipt, report, None, DuplicateFinder(), None, deadline,
                           progress)
        dup_rejects = 0
        if self.config.duplicates == "reject":
            dup_rejects = sum(len(g) - 1 for g in first.groups)
        if self._rejects_file(first.invalid + dup_rejects, first.read):
            self._conclude(receipt, first, report, exact_duplicates=False)
            return
        held = {line for group in first.groups for line in group}
        load = self.backends.table.begin(claim, self.backends.ledger)
        second = self._scan(store, claim.ref, receipt, report, load, None, (first.bad_lines, held),
                            deadline, None)
        second.read = first.read
        second.invalid += first.invalid
        self._conclude(receipt, second, report, exact_duplicates=True)
        if receipt.status == REJECTED:
            load.abort()
        else:
            self._commit(load, claim, receipt, report)

    def _commit(self, load: Load, claim: Claim, receipt: Receipt,
                report: RejectedRowsReport) -> None:
        """Place the rejected-rows report first, so the committed receipt names it even if the
        run stops before the file is moved."""
        self._place_report(claim.ref, receipt, report)
        receipt.finished_at = _iso(time.time())
        load.commit(receipt)

    def _place_report(self, ref: FileRef, receipt: Receipt,
                      report: RejectedRowsReport | None) -> None:
        path = report.path() if report is not None else None
        if path and not receipt.rejected_rows_report:
            stem = _stem(ref.name, self.suffixes)
            receipt.rejected_rows_report = self.errors.put(f"{stem}.rejected.csv", path,
                                                           "text/csv")

    def _rejects_file(self, invalid: int, read: int) -> bool:
        if not invalid:
            return False
        if self.config.on_error == "reject_file":
            return True
        limit = self.config.rejected_limit(read)
        return limit is not None and invalid > limit

    def _scan(self, *args: Any) -> Scan:
        # The scan makes millions of short-lived tuples and no reference cycles: the cyclic
        # garbage collector would only re-walk the batch lists, again and again.
        enabled = gc.isenabled()
        gc.disable()
        try:
            return self._scan_file(*args)
        finally:
            if enabled:
                gc.enable()

    def _scan_file(self, store: FileStore, ref: FileRef, receipt: Receipt, report: RejectedRowsReport,
              load: Load | None, finder: DuplicateFinder | None,
              skip: tuple[set[int], set[int]] | None, deadline: Deadline | None,
              progress: Progress | None) -> Scan:
        """One streaming pass. Writes to ``load`` unless the file is already known to fail."""
        config = self.config
        scan = Scan()
        table = self.backends.table if (load is not None or finder is not None) else None
        row_check = table.row_check if (table is not None and skip is None) else None
        reject_file = config.on_error == "reject_file"
        batch_size = config.batch_size
        bad_seen = DecodeErrors.count  # undecodable bytes found by other reads before this one
        with store.open(ref) as raw:
            src = CsvSource(open_text(raw, config, ref.name, progress), config, ref.name,
                            bad_seen)
            positions = header_positions(src.header, config, ref.name)
            conv = RowConverter(config.schema_, positions, config.key)
            convert, ncols, rows = conv.convert, len(src.header), src.rows
            key_at = [conv.names.index(k) for k in config.key]
            keyof = itemgetter(*key_at)
            key_names = "+".join(config.key)
            batch: list[tuple[Any, ...]] = []
            lines: list[int] = []
            held: list[tuple[int, tuple[Any, ...]]] = []
            skip_lines, hold_lines = skip if skip else (set(), set())
            writing = load is not None

            def reject(*errs: RowError) -> None:
                nonlocal writing
                scan.invalid += 1
                scan.bad_lines.add(errs[0].line)
                for err in errs:
                    receipt.add_error(err)
                    report.add(err)
                if reject_file:
                    writing = False

            def flush() -> None:
                if writing and batch:
                    if deadline is not None and deadline() < DEADLINE_MARGIN_S:
                        raise TransientError(f"{ref.name}: stopped at line {lines[0]} with "
                                             "too little time left; a retry starts it again")
                    repeated = load.write(batch, lines)  # type: ignore[union-attr]
                    if repeated:
                        at = {ln: i for i, ln in enumerate(lines)}
                        scan.repeated += [(ln, keyof(batch[at[ln]])) for ln in repeated]
                    scan.written += len(batch)
                batch.clear()
                lines.clear()

            skipping = bool(skip_lines)
            start = src.header_lines + 1
            while True:
                try:
                    for row in rows:
                        line = start
                        start = rows.line_num + 1
                        if len(row) != ncols:
                            if not row:
                                continue  # a blank line is not a row
                            scan.read += 1
                            if not (skipping and line in skip_lines):
                                reject(RowError(line, "", config.csv.delimiter.join(row)[:200],
                                                f"expected {ncols} fields, found {len(row)}"))
                            continue
                        scan.read += 1
                        if skipping and line in skip_lines:
                            continue
                        if DecodeErrors.count != bad_seen:
                            bad = [c for c in row if SURROGATE.search(c)]
                            if bad:
                                bad_seen += sum(len(SURROGATE.findall(c)) for c in bad)
                                col = src.header[row.index(bad[0])]
                                value = bad[0].encode("utf-8", "surrogateescape")
                                reject(RowError(line, col, repr(value)[2:-1],
                                                "bytes that are not valid UTF-8"))
                                continue
                        out = convert(row)
                        if out is None:
                            reject(*(RowError(line, col, value, reason)
                                     for col, value, reason in conv.explain(row)))
                            continue
                        if row_check is not None:
                            problem = row_check(out)
                            if problem is not None:
                                reject(RowError(line, problem[0], str(keyof(out)), problem[1]))
                                continue
                        if finder is not None:
                            finder.add(hash(keyof(out)), line)
                        if line in hold_lines:
                            held.append((line, out))
                            continue
                        if writing:
                            batch.append(out)
                            lines.append(line)
                            if len(batch) >= batch_size:
                                flush()
                    break
                except csv.Error as e:
                    scan.read += 1
                    if not (skipping and start in skip_lines):
                        reject(RowError(start, "", "", csv_error_reason(e, config)))
                    start = rows.line_num + 1
                except (OSError, EOFError, UnicodeError) as e:
                    receipt.rows_read = scan.read
                    raise DataError(f"the file cannot be read: {e}", file=ref.name,
                                    line=start) from None
            flush()
            if held:
                self._write_held(held, keyof, key_names, scan, reject, load if writing else None)
        if finder is not None:
            scan.groups = finder.candidates()
        return scan

    def _write_held(self, held: list[tuple[int, tuple[Any, ...]]], keyof: Callable[..., Any],
                    key_names: str, scan: Scan, reject: Callable[..., None],
                    load: Load | None) -> None:
        """Rows whose keys may repeat, grouped by their real key, the policy applied."""
        by_key: dict[Any, list[tuple[int, tuple[Any, ...]]]] = {}
        for line, out in held:
            by_key.setdefault(keyof(out), []).append((line, out))
        policy = self.config.duplicates
        keep: list[tuple[int, tuple[Any, ...]]] = []
        for key, group in by_key.items():
            winner = group[-1] if policy == "last_wins" else group[0]
            keep.append(winner)
            for line, _ in group:
                if line == winner[0]:
                    continue
                if policy == "reject":
                    reject(RowError(line, key_names, _key_text(key),
                                    f"duplicate key: line {winner[0]} has the same key"))
                else:
                    scan.repeated.append((line, key))
        keep.sort()
        if load is not None:
            for i in range(0, len(keep), self.config.batch_size):
                part = keep[i : i + self.config.batch_size]
                load.write([o for _, o in part], [ln for ln, _ in part])
                scan.written += len(part)

    def _conclude(self, receipt: Receipt, scan: Scan, report: RejectedRowsReport,
                  exact_duplicates: bool) -> None:
        """Counts and status from a scan; every row ends in exactly one count."""
        policy, key_names = self.config.duplicates, "+".join(self.config.key)
        if exact_duplicates:
            repeated = scan.repeated
        else:  # validation only: candidate groups (by key hash), the policy applied
            repeated = [(ln, None) for g in scan.groups
                        for ln in (g[:-1] if policy == "last_wins" else g[1:])]
        duplicates = len(repeated)
        if policy == "reject" and repeated:
            for ln, key in repeated:
                err = RowError(ln, key_names, "" if key is None else _key_text(key),
                               "duplicate key: an earlier line has the same key")
                scan.invalid += 1
                receipt.add_error(err)
                report.add(err)
            duplicates = 0
        receipt.rows_read = scan.read
        receipt.rows_invalid = scan.invalid
        if self._rejects_file(scan.invalid, scan.read):
            receipt.status = REJECTED
            receipt.rows_loaded, receipt.rows_rejected, receipt.rows_duplicate = 0, scan.read, 0
            limit = self.config.rejected_limit(scan.read)
            receipt.reason = (f"{scan.invalid} invalid row(s)" if limit is None else
                              f"{scan.invalid} invalid row(s), more than max_rejected "
                              f"({self.config.max_rejected})")
        else:
            receipt.rows_rejected = scan.invalid
            receipt.rows_duplicate = duplicates
            receipt.rows_loaded = scan.read - scan.invalid - duplicates
            receipt.status = LOADED_WITH_REJECTS if scan.invalid else LOADED
        receipt.errors.sort(key=lambda e: e["line"])

    def _reject_whole(self, receipt: Receipt, e: DataError) -> None:
        receipt.status = REJECTED
        receipt.reason = e.reason if e.line is None else f"line {e.line}: {e.reason}"
        receipt.rows_loaded = receipt.rows_duplicate = 0
        receipt.rows_rejected = receipt.rows_read
        receipt.errors = []

    # --- finishing ----------------------------------------------------------------------------

    def _stamp(self, receipt: Receipt, started: float) -> Receipt:
        now = time.time()
        receipt.finished_at = _iso(now)
        receipt.duration_s = round(now - started, 3)
        return receipt

    def _fail(self, claim: Claim, receipt: Receipt, e: BaseException, started: float) -> Receipt:
        receipt.status = FAILED
        receipt.reason = str(e) or type(e).__name__
        receipt.rows_loaded = receipt.rows_rejected = receipt.rows_duplicate = 0
        receipt.rows_rejected = receipt.rows_read
        self._stamp(receipt, started)
        try:
            self.backends.ledger.record(claim, "failed", receipt)
        except Exception:  # the ledger may be what failed; the receipt still goes out
            log.exception("%s: could not record the failed run", claim.ref.name)
        self._notify(receipt)
        return receipt

    def _finish(self, store: FileStore, claim: Claim, receipt: Receipt,
                report: RejectedRowsReport | None, started: float) -> Receipt:
        ref = claim.ref
        try:
            self._place_report(ref, receipt, report)
            dest = self.errors if receipt.status == REJECTED else self.archive
            try:
                receipt.moved_to = store.move(ref, dest)
            except FileNotFoundError:
                receipt.moved_to = None
                log.warning("%s: gone from %s before it could be moved", ref.name, store.url)
            if receipt.status in (REJECTED, LOADED_WITH_REJECTS):
                self._place_receipt(ref, receipt)
        except Exception as e:
            if receipt.status == REJECTED:  # nothing was written: a retry starts over at once
                return self._fail(claim, receipt, e, started)
            raise  # rows are committed: the run stays "committed" and the next claim resumes it
        self._stamp(receipt, started)
        self.backends.ledger.record(claim, "done", receipt)
        self._notify(receipt)
        return receipt

    def _place_receipt(self, ref: FileRef, receipt: Receipt) -> None:
        """The receipt as JSON beside the rejected rows (or the rejected file) in errors."""
        import os
        import tempfile

        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False,
                                         encoding="utf-8") as tmp:
            tmp.write(receipt.to_json())
        try:
            receipt_name = f"{_stem(ref.name, self.suffixes)}.receipt.json"
            self.errors.put(receipt_name, tmp.name, "application/json")
        finally:
            os.unlink(tmp.name)

    def _notify(self, receipt: Receipt) -> None:
        for notifier in self.notifiers:
            try:
                notifier.send(receipt)
            except Exception as e:  # one notifier failing must not lose the others
                log.error("%s: notification by %s failed: %s", receipt.file,
                          type(notifier).__name__, e)


def _stem(name: str, suffixes: tuple[str, ...]) -> str:
    for s in sorted(suffixes, key=len, reverse=True):
        if name.endswith(s):
            return name[: -len(s)]
    return name


def _key_text(key: Any) -> str:
    return " / ".join(map(str, key)) if isinstance(key, tuple) else str(key)
