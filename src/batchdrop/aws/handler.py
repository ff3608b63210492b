"""The Lambda entrypoint: ``batchdrop.aws.handler.handler``.

It accepts S3 event notifications (direct), S3 events wrapped in SQS messages (returning
``batchItemFailures`` so only the failed messages come back) and EventBridge "Object Created"
events, and hands each created object to the same engine as ``batchdrop run``. The config is the
bundled ``batchdrop.yaml`` (or ``$BATCHDROP_CONFIG``) with ``BATCHDROP_*`` overrides.

A file that cannot finish in the time left pauses at a checkpoint (checkpoint.py): from the queue,
it goes on in a new message it sends to that queue; from a direct or EventBridge invocation, the
invocation fails and the event source's own retries bring it back. Either way the next claim goes
on from the checkpoint, without lost or repeated rows. A file not started when time runs low is
not started: its message fails, so it is delivered again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from ..errors import BatchdropError, ConfigError, TransientError
from ..files.s3 import parse_s3_url
from ..report import PAUSED
from .events import Message, ObjectCreated, parse_event

if TYPE_CHECKING:
    from ..config import Config
    from ..report import Receipt
    from ..shards import ShardTask

NAMESPACE = SERVICE = "batchdrop"
logger = Logger(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)
#: the Feed dimension of a file that matched no feed
NO_FEED = "(none)"

#: a file is not started with less than this many seconds left in the invocation (the engine
#: itself pauses at a row boundary when it runs low, keeping time to record the run)
MIN_START = 45.0
OK_STATUSES = {"loaded", "loaded_with_rejects", "rejected", "already_processed", "sharded"}
METRIC_NAMES = {
    "loaded": "FilesLoaded",
    "loaded_with_rejects": "FilesLoadedWithRejects",
    "rejected": "FilesRejected",
    "failed": "FilesFailed",
    "already_processed": "FilesSkipped",
    "busy": "FilesBusy",
    "paused": "FilesPaused",
    "sharded": "FilesSharded",
}


class BatchFailed(Exception):
    """Raised for a direct (non-SQS) invocation with a failed file, so Lambda retries it."""


@dataclass
class Result:
    bucket: str
    key: str
    status: str  # a receipt status, or "ignored", "gone", "not_started", "error"
    retry: bool
    detail: str = ""


class Runtime:
    """Turns an event into ``pipeline.process`` calls; shared by the Lambda and the worker.
    Each file (and each shard task) goes to its own feed's pipeline through the router
    (router.py); a config without ``feeds:`` is one feed, one pipeline."""

    def __init__(self, config: Config, router: Any = None):
        if not config.inbound.startswith("s3://"):
            raise ConfigError("the AWS runtime needs an s3:// inbound location", key="inbound")
        self.config = config
        self.bucket, self.prefix = parse_s3_url(config.inbound)
        if router is None:
            from ..router import Router

            router = Router(config)
        self.router = router
        self.suffixes = tuple(
            getattr(router, "suffixes", None) or (config.suffix, config.suffix + ".gz")
        )
        #: whether metrics carry a Feed dimension (only a config with ``feeds:``)
        self.named = bool(getattr(router, "named", False))
        self.last_results: list[Result] = []
        self._recovered = False

    @property
    def pipeline(self) -> Any:
        """The first feed's pipeline: the deployment's inbound location and first ledger."""
        return getattr(self.router, "first", self.router)

    def handle(self, event: Any, remaining: Callable[[], float] | None = None) -> dict[str, Any]:
        if not self._recovered:  # once per container (and per worker): runs a crash left behind
            self._recovered = True
            try:
                for receipt in self.router.recover():
                    logger.info("finished an interrupted run", extra={"file": receipt.file})
            except Exception:
                logger.exception("could not look for interrupted runs")
        parsed = parse_event(event)
        if parsed.kind == "test":
            logger.info("s3:TestEvent ignored")
            metrics.add_metric(name="EventsIgnored", unit=MetricUnit.Count, value=1)
            return {"ignored": "s3:TestEvent"}
        results: list[Result] = []
        failures: list[dict[str, str]] = []
        for msg in parsed.messages:
            self.router.dispatch = self._dispatch(msg)
            done = self._task(msg, remaining) if msg.task is not None else None
            done = done if done is not None else self._message(msg, remaining)
            results.extend(done)
            if any(r.status == PAUSED for r in done) and not msg.error:
                self._continue(msg, done)
            if msg.error or any(r.retry for r in done):
                if msg.error:
                    logger.error(
                        "unreadable message", extra={"message_id": msg.id, "error": msg.error}
                    )
                failures.append({"itemIdentifier": msg.id or ""})
        self.last_results = results
        summary = [r.__dict__ for r in results]
        if parsed.kind == "sqs":
            # Nothing else in the reply: Lambda reads batchItemFailures and nothing more.
            return {"batchItemFailures": failures}
        if parsed.kind == "unknown":
            logger.error("event not understood", extra={"error": parsed.messages[0].error})
            return {"error": parsed.messages[0].error, "results": []}
        if failures:
            raise BatchFailed(
                "; ".join(
                    f"s3://{r.bucket}/{r.key}: {r.status} {r.detail}".strip()
                    for r in results
                    if r.retry
                )
            )
        return {"results": summary}

    def _continue(self, msg: Message, done: list[Result]) -> None:
        """A file paused at a checkpoint goes on in a new message on the queue it came from,
        and this one is taken off: a redelivery would count towards the dead-letter queue's
        maxReceiveCount, which a big file may need many invocations past."""
        if msg.queue_arn is None:
            return  # a direct or EventBridge invocation: its own retries bring it back
        from .clients import client
        from .events import continuation, queue_url

        for r in done:
            if r.status != PAUSED:
                continue
            obj = next(o for o in msg.objects if (o.bucket, o.key) == (r.bucket, r.key))
            try:
                client("sqs", self.config).send_message(
                    QueueUrl=queue_url(msg.queue_arn), MessageBody=continuation(obj)
                )
            except Exception as e:  # the message itself comes back instead
                logger.warning("could not queue the paused file again", extra={"error": str(e)})
                continue
            r.retry = False
            logger.info("paused file queued again", extra={"bucket": r.bucket, "key": r.key})

    def _dispatch(self, msg: Message) -> Callable[[list[ShardTask]], None] | None:
        """A big file's shard tasks go to the queue the message came from, for this function
        to take up (at most deploy.max_concurrency at once). From a direct or EventBridge
        invocation there is no queue: a big file is read in one piece, with checkpoints."""
        arn = msg.queue_arn
        if arn is None or not hasattr(self.router, "dispatch"):
            return None
        return lambda tasks: self._send(arn, tasks)

    def _send(self, arn: str, tasks: list[ShardTask]) -> None:
        from .clients import client
        from .events import queue_url

        sqs, url = client("sqs", self.config), queue_url(arn)
        for i in range(0, len(tasks), 10):  # SendMessageBatch takes ten at a time
            entries = [
                {"Id": str(n), "MessageBody": json.dumps(t.message())}
                for n, t in enumerate(tasks[i : i + 10])
            ]
            reply = sqs.send_message_batch(QueueUrl=url, Entries=entries)
            if reply.get("Failed"):
                failed = reply["Failed"][0]
                raise TransientError(
                    f"the queue refused {len(reply['Failed'])} shard task(s): "
                    f"{failed.get('Code')} {failed.get('Message', '')}".strip()
                )
        logger.info("shard tasks queued", extra={"tasks": len(tasks), "step": tasks[0].step})

    def _task(self, msg: Message, remaining: Callable[[], float] | None) -> list[Result]:
        """One step of a sharded run (shards.py); what it hands on goes to the queue."""
        from ..shards import ShardTask

        try:
            task = ShardTask.from_message(msg.task)
        except TypeError as e:
            msg.error = f"not a shard task of this version: {e}"
            return []
        assert task is not None
        bucket, key = self.bucket, self.prefix + task.file
        if remaining is not None and remaining() < MIN_START:
            return [Result(bucket, key, "not_started", True, "too little time left")]
        try:
            step = self.router.shard_task(task, deadline=remaining)
            if step.tasks and msg.queue_arn is not None:
                self._send(msg.queue_arn, step.tasks)
        except Exception as e:  # the message comes back: the task runs again
            logger.exception(
                "shard task failed; it will be retried",
                extra={
                    "file": task.file,
                    "step": task.step,
                    "shard": task.index + 1,
                    **({"feed": task.feed} if self.named else {}),
                },
            )
            metrics.add_metric(name="ShardTasksFailed", unit=MetricUnit.Count, value=1)
            return [Result(bucket, key, "error", True, f"{type(e).__name__}: {e}")]
        metrics.add_metric(name="ShardTasks", unit=MetricUnit.Count, value=1)
        if step.receipt is not None:
            self._report(step.receipt, step.receipt.duration_s)
            return [Result(bucket, key, step.receipt.status, False, step.receipt.reason or "")]
        return [Result(bucket, key, task.step, False)]

    def _message(self, msg: Message, remaining: Callable[[], float] | None) -> list[Result]:
        for why in msg.ignored:
            logger.info("event part ignored", extra={"message_id": msg.id, "reason": why})
            metrics.add_metric(name="EventsIgnored", unit=MetricUnit.Count, value=1)
        out = []
        for obj in msg.objects:
            if remaining is not None and remaining() < MIN_START:
                out.append(
                    Result(
                        obj.bucket,
                        obj.key,
                        "not_started",
                        True,
                        "too little time left in this invocation",
                    )
                )
                continue
            out.append(self.process(obj, remaining))
        return out

    def name_of(self, obj: ObjectCreated) -> str | None:
        """The object's name in the inbound store, or None when it is not an inbound file."""
        if obj.bucket != self.bucket or not obj.key.startswith(self.prefix):
            return None
        name = obj.key[len(self.prefix) :]
        if not name or name.endswith("/") or not name.endswith(self.suffixes):
            return None
        return name

    def process(self, obj: ObjectCreated, remaining: Callable[[], float] | None) -> Result:
        name = self.name_of(obj)
        if name is None:
            logger.info(
                "object ignored: not a file of the inbound location",
                extra={
                    "bucket": obj.bucket,
                    "key": obj.key,
                    "inbound": self.config.inbound,
                    "suffixes": list(self.suffixes),
                },
            )
            metrics.add_metric(name="EventsIgnored", unit=MetricUnit.Count, value=1)
            return Result(obj.bucket, obj.key, "ignored", False)
        started = time.monotonic()
        try:
            receipt = self.router.process(name, deadline=remaining)
        except FileNotFoundError:
            # Already moved by the run that processed it (S3 delivers events at least once),
            # or deleted: nothing left to do.
            logger.info(
                "object no longer in the inbound location; nothing to do",
                extra={"bucket": obj.bucket, "key": obj.key},
            )
            return Result(obj.bucket, obj.key, "gone", False)
        except BatchdropError as e:
            logger.warning(
                "file not processed; it will be retried",
                extra={
                    "bucket": obj.bucket,
                    "key": obj.key,
                    "error": str(e),
                    "error_type": type(e).__name__,
                },
            )
            metrics.add_metric(name="FilesFailed", unit=MetricUnit.Count, value=1)
            return Result(obj.bucket, obj.key, "error", True, str(e))
        except Exception as e:  # a bug or an unexpected fault: log it whole, retry the file
            logger.exception(
                "file processing crashed; it will be retried",
                extra={"bucket": obj.bucket, "key": obj.key},
            )
            metrics.add_metric(name="FilesFailed", unit=MetricUnit.Count, value=1)
            return Result(obj.bucket, obj.key, "error", True, f"{type(e).__name__}: {e}")
        self._report(receipt, time.monotonic() - started)
        return Result(
            obj.bucket,
            obj.key,
            receipt.status,
            receipt.status not in OK_STATUSES and not receipt.set_aside,
            receipt.reason or "",
        )

    def _report(self, r: Receipt, seconds: float) -> None:
        feed = {"feed": r.feed} if self.named else {}
        logger.info(
            "file processed",
            extra={
                **feed,
                "file": r.file,
                "source": r.source,
                "version": r.version,
                "run_id": r.run_id,
                "status": r.status,
                "rows_read": r.rows_read,
                "rows_loaded": r.rows_loaded,
                "rows_rejected": r.rows_rejected,
                "rows_duplicate": r.rows_duplicate,
                "size": r.size,
                "moved_to": r.moved_to,
                "reason": r.reason,
                "write_units": r.write_units,
                "write_cost_usd": r.write_cost_usd,
            },
        )
        add = self._metric(r)
        add(METRIC_NAMES.get(r.status, "FilesOther"), MetricUnit.Count, 1)
        if r.status in ("loaded", "loaded_with_rejects", "rejected"):
            add("RowsLoaded", MetricUnit.Count, r.rows_loaded)
            add("RowsRejected", MetricUnit.Count, r.rows_rejected)
            add("FileBytes", MetricUnit.Bytes, r.size)
            add("Duration", MetricUnit.Seconds, r.duration_s or seconds)
            if r.write_units is not None:
                add("WriteUnits", MetricUnit.Count, r.write_units)

    def _metric(self, r: Receipt) -> Callable[[str, MetricUnit, float], None]:
        """How a receipt's figures are recorded: with ``feeds:``, under a ``Feed`` dimension
        (``(none)`` for a file that matched no feed), beside the service's own; without,
        as they always were."""
        if not self.named:
            return lambda name, unit, value: metrics.add_metric(name=name, unit=unit, value=value)
        feed = r.feed or NO_FEED

        def add(name: str, unit: MetricUnit, value: float) -> None:
            with single_metric(
                name=name,
                unit=unit,
                value=value,
                namespace=NAMESPACE,
                default_dimensions={"service": SERVICE, **metrics.default_dimensions},
            ) as one:
                one.add_dimension(name="Feed", value=feed)

        return add


_runtime: Runtime | None = None


def runtime() -> Runtime:
    """The runtime for this container, built once from the bundled config (and the webhook URLs
    kept in SSM, see ``secrets``)."""
    global _runtime
    if _runtime is None:
        from .secrets import load_runtime_config

        _runtime = Runtime(load_runtime_config())
    return _runtime


def reset() -> None:
    """Forget the cached runtime (tests; a changed config)."""
    global _runtime
    _runtime = None


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    metrics.clear_metrics()  # only this invocation's figures (a warm container starts clean)

    def remaining() -> float:
        return float(context.get_remaining_time_in_millis()) / 1000

    return runtime().handle(event, remaining)
