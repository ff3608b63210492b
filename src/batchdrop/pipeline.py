"""The engine: claim a file, stream and validate its rows, write them, commit, move, report.

It talks only to the ports (files, table, ledger, notifiers); every runtime — the CLI, the
Lambda handler, the queue worker — calls ``Pipeline.process`` and nothing else.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from .adapters import Backends, open_notifiers, open_store
from .checkpoint import Checkpoints, Paused
from .config import Config
from .errors import DataError, TransientError
from .estimate import dry_run_passes
from .intake import as_data_error, check_entry, safe_name, stem
from .outcome import reject_whole
from .passes import one_pass, two_pass
from .ports import Claim, FileRef, FileStore, Load, Notifier, iso_time
from .report import (
    BUSY,
    FAILED,
    LOADED_WITH_REJECTS,
    PAUSED,
    REJECTED,
    SHARDED,
    SKIPPED,
    Receipt,
    RejectedRowsReport,
    already_processed,
    as_dry_run,
    count_write_units,
)
from .scan import DEADLINE_MARGIN_S, Deadline, Progress

if TYPE_CHECKING:
    from .shards import ShardTask, Step
    from .state import StateStore

log = logging.getLogger("batchdrop")


class Pipeline:
    def __init__(
        self,
        config: Config,
        *,
        backends: Backends | None = None,
        notifiers: list[Notifier] | None = None,
    ):
        self.config = config
        self.inbound = open_store(config.inbound, config)
        self.archive = open_store(config.archive, config)
        self.errors = open_store(config.errors, config)
        self.backends = backends or Backends(config)
        self.notifiers = open_notifiers(config) if notifiers is None else notifiers
        self.suffixes = (config.suffix, config.suffix + ".gz")
        self._prepared = False
        self._state: StateStore | None = None
        #: hands a big file's shard tasks to consumers (shards.py): local worker processes
        #: (the runner returns the run's receipt) or the events queue (returns None); None:
        #: a big file is read in one piece, with checkpoints
        self.dispatch: Callable[[list[ShardTask]], Receipt | None] | None = None

    # --- entry points -----------------------------------------------------------------------

    def pending(self) -> list[FileRef]:
        """Files waiting in the inbound location, oldest first."""
        return self.inbound.list(self.suffixes)

    def recover(self) -> list[Receipt]:
        """Finish what runs that died left behind, and return their receipts: runs that
        committed their rows and moved the file but stopped before recording it (recorded done
        now, and notified), and finished runs whose notification never went out (sent now: at
        least once, keyed by run id)."""
        ledger = self.backends.ledger
        out = []
        for rec in ledger.unfinished():
            if self.inbound.stat(rec["file"]) is not None:
                continue  # still in inbound: its next claim resumes it
            receipt = Receipt.from_dict(rec["receipt"] or {})
            ref = FileRef(rec["file"], rec["size"] or 0, rec["version"], 0.0, rec["source"] or "")
            claim = Claim(
                "resume",
                rec["run_id"],
                ref,
                extra=rec.get("claim_extra") or {},
                progress=rec.get("progress"),
            )
            receipt.reason = receipt.reason or "finished after an interruption"
            dest = self.errors if receipt.status == REJECTED else self.archive
            moved = dest.stat(safe_name(rec["file"]))
            receipt.moved_to = moved.url if moved is not None else None  # None: renamed there
            ledger.record(claim, "done", receipt)
            self._drop_state(claim)
            self._notify(receipt)
            out.append(receipt)
        for rec in ledger.outbox():
            receipt = Receipt.from_dict(rec["receipt"] or {})
            log.info("%s: sending the notification of run %s again", receipt.file, rec["run_id"])
            self._notify(receipt)
            out.append(receipt)
        return out

    def process(
        self,
        name: str,
        *,
        force: bool = False,
        dry_run: bool = False,
        deadline: Deadline | None = None,
        progress: Progress | None = None,
    ) -> Receipt:
        ref = self.inbound.stat(name)
        if ref is None:
            raise FileNotFoundError(f"{name}: no such file in {self.inbound.url}")
        return self.process_ref(
            ref, force=force, dry_run=dry_run, deadline=deadline, progress=progress
        )

    def process_ref(
        self,
        ref: FileRef,
        *,
        force: bool = False,
        dry_run: bool = False,
        deadline: Deadline | None = None,
        progress: Progress | None = None,
        store: FileStore | None = None,
        unmatched: str | None = None,
    ) -> Receipt:
        """Process one file. ``unmatched``: the file matches no feed of the deployment
        (router.py); it is claimed, rejected whole with that reason, moved to errors with its
        receipt, recorded and notified like any rejected file, its receipt naming no feed."""
        store = store or self.inbound
        if not ref.version and not dry_run:  # listed without its version (a content hash)
            versioned = store.stat(ref.name)
            if versioned is None:
                raise FileNotFoundError(f"{ref.name}: no longer in {store.url}")
            ref = versioned
        receipt = Receipt(
            file=ref.name, source=ref.url, version=ref.version, size=ref.size, dry_run=dry_run
        )
        receipt.feed = None if unmatched is not None else self.config.feed
        started = time.time()
        receipt.started_at = iso_time(started)
        if dry_run:
            report = RejectedRowsReport(ref.name)
            try:
                check_entry(ref)
                table = self.backends.table if self._compares() else None
                dry_run_passes(
                    self.config,
                    store,
                    ref,
                    receipt,
                    report,
                    deadline,
                    progress,
                    table,
                    self.backends.ledger if table is not None else None,
                )
            except Exception as e:
                data = as_data_error(e, ref.name)
                if data is None:
                    raise
                reject_whole(receipt, data)
            finally:
                report.discard()
            return self._stamp(as_dry_run(receipt), started)

        if unmatched is not None:
            return self._reject_unmatched(store, ref, receipt, unmatched, force, started)
        table, ledger = self.backends.table, self.backends.ledger
        if not self._prepared:
            table.prepare()
            self._prepared = True
        claim = ledger.claim(ref, force=force)
        receipt.run_id, receipt.attempt = claim.run_id, claim.attempt
        settled = self._settled_elsewhere(store, claim, receipt, self.archive, None, started)
        if settled is not None:
            return settled
        if claim.outcome == "resume":
            log.info("%s: rows were committed by run %s; finishing it", ref.name, claim.run_id)
            resumed = Receipt.from_dict(claim.receipt or receipt.to_dict())
            return self._finish(store, claim, resumed, None, started)

        report = RejectedRowsReport(ref.name)
        try:
            try:
                check_entry(ref)
                if self.dispatch is not None:  # only a runner with consumers shards
                    from . import shards

                    if shards.wanted(self, store, ref):
                        tasks = shards.start(self, store, claim)
                        if tasks is not None:
                            return self._hand_over(tasks, receipt, started)
                if table.single_pass:
                    self._load_single(store, claim, receipt, report, deadline, progress)
                else:
                    self._load_two_pass(store, claim, receipt, report, deadline, progress)
            except Paused as e:
                receipt.status, receipt.reason = PAUSED, str(e)
                self.backends.ledger.pause(claim, self._stamp(receipt, started))
                log.info("%s", e)
                return receipt
            except FileNotFoundError:
                receipt.status, receipt.reason = SKIPPED, "the file left inbound while it was read"
                ledger.record(claim, "failed", self._stamp(receipt, started))
                ledger.sent(claim.run_id)  # nothing to tell: the file is gone, not failed
                return receipt
            except TransientError as e:
                return self._fail(store, claim, receipt, e, started)
            except Exception as e:  # one file's problem, whatever it is, stays with that file
                data = as_data_error(e, ref.name)
                if data is None:
                    if not isinstance(e, OSError):  # a bug: its traceback goes to the debug log
                        log.error("%s: unexpected %s: %s", ref.name, type(e).__name__, e)
                        log.debug("%s: traceback", ref.name, exc_info=True)
                    return self._fail(store, claim, receipt, e, started)
                reject_whole(receipt, data)
            return self._finish(store, claim, receipt, report, started)
        finally:
            report.discard()

    def _reject_unmatched(
        self,
        store: FileStore,
        ref: FileRef,
        receipt: Receipt,
        reason: str,
        force: bool,
        started: float,
    ) -> Receipt:
        """A file no feed takes: nothing is read or written; it is claimed per version (the
        same content dropped again is already processed), then rejected whole."""
        ledger = self.backends.ledger
        claim = ledger.claim(ref, force=force)
        receipt.run_id, receipt.attempt = claim.run_id, claim.attempt
        settled = self._settled_elsewhere(
            store, claim, receipt, self.errors, safe_name(ref.name), started
        )
        if settled is not None:
            return settled
        reject_whole(receipt, DataError(reason))
        return self._finish(store, claim, receipt, None, started, routed=False)

    def _settled_elsewhere(
        self,
        store: FileStore,
        claim: Claim,
        receipt: Receipt,
        dest: FileStore,
        dest_name: str | None,
        started: float,
    ) -> Receipt | None:
        """The receipt of a claim another run settles: this content was already processed
        (the file leaves inbound for ``dest``, where it would otherwise be named again and
        again, with no second notification), or a run is processing it now. None: go on."""
        if claim.outcome == "done":
            already_processed(receipt, claim.run_id, claim.receipt)
            try:
                receipt.moved_to = store.move(claim.ref, dest, dest_name)
            except FileNotFoundError:
                receipt.moved_to = None
            return self._stamp(receipt, started)
        if claim.outcome == "busy":
            receipt.status = BUSY
            receipt.reason = f"run {claim.run_id} is processing this file now"
            return receipt
        return None

    # --- loading ------------------------------------------------------------------------------

    def _load_single(
        self,
        store: FileStore,
        claim: Claim,
        receipt: Receipt,
        report: RejectedRowsReport,
        deadline: Deadline | None,
        progress: Progress | None,
    ) -> None:
        load = self.backends.table.begin(claim, self.backends.ledger)
        try:
            one_pass(self.config, store, claim.ref, receipt, report, load, deadline, progress)
            if receipt.status == REJECTED:
                load.abort()
            else:
                self._commit(load, claim, receipt, report)
        except BaseException:
            load.abort()
            raise

    def _load_two_pass(
        self,
        store: FileStore,
        claim: Claim,
        receipt: Receipt,
        report: RejectedRowsReport,
        deadline: Deadline | None,
        progress: Progress | None,
    ) -> None:
        """Validate the whole file first, then write: the table cannot roll a file back. The
        passes save checkpoints: a run that stops goes on from its last one."""
        table, ledger = self.backends.table, self.backends.ledger
        run = self._checkpoints(claim, deadline)
        # a load that compares with the feed's last one plans its writes first (tables/
        # dynamodb_modes.py)
        plan = (
            (lambda read: table.plan(claim.run_id, claim.ref.name, ledger, read))  # type: ignore[attr-defined]
            if getattr(table, "keeps_state", False)
            else None
        )
        load = two_pass(
            self.config,
            store,
            claim.ref,
            receipt,
            report,
            lambda: run.track(table.begin(claim, self.backends.ledger)),
            table.row_check,
            deadline,
            progress,
            run,
            plan,
        )
        if load is None:
            return
        if receipt.status == REJECTED:
            load.abort()
        else:
            self._commit(load, claim, receipt, report, run.carried_units)

    def _compares(self) -> bool:
        """Whether a load is planned against the feed's last one (tables/dynamodb_modes.py)."""
        return self.config.table.url.startswith("dynamodb://") and self.config.compares_loads

    def _hand_over(self, tasks: list[ShardTask], receipt: Receipt, started: float) -> Receipt:
        """A sharded run: its tasks to the consumers. The local runner runs them all and gives
        the run's receipt; the queue takes them, and the run goes on without this process."""
        assert self.dispatch is not None
        ended = self.dispatch(tasks)
        if ended is not None:
            return ended
        receipt.status = SHARDED
        receipt.reason = f"{len(tasks)} shard task(s) handed to the consumers of the queue"
        return self._stamp(receipt, started)

    def shard_task(self, task: ShardTask, deadline: Deadline | None = None) -> Step:
        """One task of a sharded run (see shards.py), for the consumer that took it."""
        if not self._prepared:
            self.backends.table.prepare()
            self._prepared = True
        from . import shards

        return shards.work(self, task, deadline)

    def state(self) -> StateStore:
        """Where runs keep what outlives a process (state.py)."""
        if self._state is None:
            from .state import open_state

            self._state = open_state(self.config)
        return self._state

    def _checkpoints(self, claim: Claim, deadline: Deadline | None) -> Checkpoints:
        return Checkpoints(
            self.config, self.state(), self.backends.ledger, claim, deadline, DEADLINE_MARGIN_S
        )

    def _drop_state(self, claim: Claim) -> None:
        """The run is over: the state its checkpoints kept goes."""
        if claim.progress or claim.extra.get("checkpointed"):
            self._checkpoints(claim, None).drop()

    def _commit(
        self,
        load: Load,
        claim: Claim,
        receipt: Receipt,
        report: RejectedRowsReport,
        units_before: float = 0.0,
    ) -> None:
        """Place the rejected-rows report first, so the committed receipt names it even if the
        run stops before the file is moved. The receipt counts the write units of this load
        and ``units_before`` (of earlier invocations of the run, or of its shards)."""
        receipt.feed = self.config.feed
        self._place_report(claim.ref, receipt, report)
        units = getattr(load, "write_units", None)
        if units is not None:
            count_write_units(receipt, units_before + units, self.config.aws.write_unit_price)
        receipt.finished_at = iso_time(time.time())
        load.commit(receipt)

    def _place_report(
        self, ref: FileRef, receipt: Receipt, report: RejectedRowsReport | None
    ) -> None:
        path = report.path() if report is not None else None
        if path and not receipt.rejected_rows_report:
            base = stem(safe_name(ref.name), self.suffixes)
            receipt.rejected_rows_report = self.errors.put(f"{base}.rejected.csv", path, "text/csv")

    # --- finishing ----------------------------------------------------------------------------

    def _stamp(self, receipt: Receipt, started: float) -> Receipt:
        now = time.time()
        receipt.finished_at = iso_time(now)
        receipt.duration_s = round(now - started, 3)
        return receipt

    def _fail(
        self,
        store: FileStore,
        claim: Claim,
        receipt: Receipt,
        e: BaseException,
        started: float,
        *,
        routed: bool = True,
    ) -> Receipt:
        """A failed run: the file stays in inbound for a retry, unless this was its
        ``max_attempts``-th run, when it is set aside in errors with one last notification.
        ``routed``: the file is this feed's (not one that matches no feed)."""
        if routed:
            receipt.feed = self.config.feed
        receipt.status = FAILED
        reason = str(e) or type(e).__name__
        receipt.reason = reason
        receipt.rows_loaded = receipt.rows_rejected = receipt.rows_duplicate = 0
        receipt.rows_rejected = receipt.rows_read
        if claim.attempt >= self.config.max_attempts:
            try:
                receipt.moved_to = store.move(claim.ref, self.errors, safe_name(claim.ref.name))
            except FileNotFoundError:
                receipt.moved_to = None
            except Exception as move_error:  # it stays in inbound; the next run tries again
                log.error("%s: could not set it aside: %s", claim.ref.name, move_error)
            else:
                receipt.set_aside = True
                receipt.reason = (
                    f"failed {claim.attempt} times (max_attempts: {self.config.max_attempts}); "
                    f"set aside in errors, not retried again. Last error: {reason}"
                )
                self._stamp(receipt, started)
                try:
                    self._place_receipt(claim.ref, receipt)
                except Exception as place_error:  # the notification still carries it
                    log.error("%s: could not place its receipt: %s", claim.ref.name, place_error)
        self._stamp(receipt, started)
        try:
            self.backends.ledger.record(claim, "failed", receipt)
        except Exception:  # the ledger may be what failed; the receipt still goes out
            log.exception("%s: could not record the failed run", claim.ref.name)
        if receipt.set_aside:
            self._drop_state(claim)
        self._notify(receipt)
        return receipt

    def _finish(
        self,
        store: FileStore,
        claim: Claim,
        receipt: Receipt,
        report: RejectedRowsReport | None,
        started: float,
        *,
        routed: bool = True,
    ) -> Receipt:
        ref = claim.ref
        if routed:
            receipt.feed = self.config.feed
        try:
            self._place_report(ref, receipt, report)
            dest = self.errors if receipt.status == REJECTED else self.archive
            try:
                receipt.moved_to = store.move(ref, dest, safe_name(ref.name))
            except FileNotFoundError:
                receipt.moved_to = None
                log.warning("%s: gone from %s before it could be moved", ref.name, store.url)
            self._stamp(receipt, started)
            if receipt.status in (REJECTED, LOADED_WITH_REJECTS):
                self._place_receipt(ref, receipt)
        except Exception as e:
            if receipt.status == REJECTED:  # nothing was written: a retry starts over at once
                return self._fail(store, claim, receipt, e, started, routed=routed)
            raise  # rows are committed: the run stays "committed" and the next claim resumes it
        self.backends.ledger.record(claim, "done", receipt)
        self._drop_state(claim)
        self._notify(receipt)
        return receipt

    def _place_receipt(self, ref: FileRef, receipt: Receipt) -> None:
        """The receipt as JSON beside the rejected rows (or the rejected file) in errors."""
        import tempfile

        with tempfile.NamedTemporaryFile(
            "w", suffix=".json", delete=False, encoding="utf-8"
        ) as tmp:
            tmp.write(receipt.to_json())
        try:
            receipt_name = f"{stem(safe_name(ref.name), self.suffixes)}.receipt.json"
            self.errors.put(receipt_name, tmp.name, "application/json")
        finally:
            os.unlink(tmp.name)

    def _notify(self, receipt: Receipt) -> None:
        """Send the run's notification, then take it out of the ledger's outbox: a process
        that dies in between leaves it there, and the next ``recover`` sends it again."""
        for notifier in self.notifiers:
            try:
                notifier.send(receipt)
            except Exception as e:  # one notifier failing must not lose the others
                log.error(
                    "%s: notification by %s failed: %s", receipt.file, type(notifier).__name__, e
                )
        if receipt.run_id:
            try:
                self.backends.ledger.sent(receipt.run_id)
            except Exception as e:  # it stays in the outbox: sent again later, at least once
                log.error("%s: could not mark the notification sent: %s", receipt.file, e)
