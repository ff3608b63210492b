"""``batchdrop worker --queue URL``: the Lambda's work, on any machine or container.

It long-polls the SQS queue the inbound bucket notifies, hands each batch to the same
``Runtime.handle`` the Lambda uses, and deletes the messages that succeeded. A failed message is
left alone: it becomes visible again after the queue's visibility timeout (and goes to the
dead-letter queue after its redrive count). While a batch is being processed, a heartbeat keeps
its messages invisible, so a large file is not handed to a second worker halfway through.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError, TransientError
from .handler import Runtime, logger, metrics


@dataclass
class WorkerStats:
    polls: int = 0
    received: int = 0
    deleted: int = 0
    failed: int = 0


class Worker:
    def __init__(
        self,
        runtime: Runtime,
        queue_url: str,
        *,
        client: Any = None,
        wait_seconds: int = 20,
        batch: int = 1,
    ):
        self.runtime = runtime
        self.queue_url = queue_url
        self.wait_seconds = wait_seconds
        self.batch = batch
        self.stats = WorkerStats()
        self.stop = threading.Event()
        if client is None:
            from .clients import client as make_client

            client = make_client("sqs", runtime.config)
        self.client = client
        self.visibility = self._visibility_timeout()

    def _visibility_timeout(self) -> int:
        from .clients import error_code

        try:
            attrs = self.client.get_queue_attributes(
                QueueUrl=self.queue_url, AttributeNames=["VisibilityTimeout"]
            )["Attributes"]
        except Exception as e:
            code = error_code(e)
            if code in (
                "AWS.SimpleQueueService.NonExistentQueue",
                "QueueDoesNotExist",
                "AccessDenied",
                "InvalidAddress",
            ):
                raise ConfigError(
                    f"cannot use the queue {self.queue_url} ({code}): check "
                    "--queue and the permissions"
                ) from e
            raise TransientError(f"SQS did not answer for {self.queue_url}: {e}") from e
        return int(attrs.get("VisibilityTimeout", 30))

    def poll_once(self) -> int:
        """Receive one batch, process it, delete what succeeded. Returns the messages received."""
        self.stats.polls += 1
        reply = self.client.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.batch,
            WaitTimeSeconds=self.wait_seconds,
            MessageSystemAttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
        )
        messages = reply.get("Messages", [])
        if not messages:
            return 0
        self.stats.received += len(messages)
        event = {
            "Records": [
                {
                    "messageId": m["MessageId"],
                    "receiptHandle": m["ReceiptHandle"],
                    "body": m["Body"],
                    "attributes": m.get("Attributes", {}),
                    "eventSource": "aws:sqs",
                    "eventSourceARN": self.queue_url,
                }
                for m in messages
            ]
        }
        with _Heartbeat(self, [m["ReceiptHandle"] for m in messages]):
            try:
                reply = self.runtime.handle(event, remaining=None)
                failed = {f["itemIdentifier"] for f in reply.get("batchItemFailures", [])}
            finally:
                metrics.flush_metrics()
        done = [m for m in messages if m["MessageId"] not in failed]
        self.stats.failed += len(messages) - len(done)
        if done:
            self.client.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)
                ],
            )
            self.stats.deleted += len(done)
        return len(messages)

    def run(self, *, until_empty: bool = False) -> WorkerStats:
        """Poll until stopped (or, with ``until_empty``, until a poll finds nothing)."""
        logger.info(
            "worker started",
            extra={"queue": self.queue_url, "inbound": self.runtime.config.inbound},
        )
        while not self.stop.is_set():
            try:
                got = self.poll_once()
            except TransientError as e:
                logger.warning("poll failed; trying again", extra={"error": str(e)})
                self.stop.wait(5)
                continue
            if got == 0 and until_empty:
                break
        logger.info("worker stopped", extra=self.stats.__dict__)
        return self.stats


class _Heartbeat:
    """Keeps a batch's messages invisible while it is processed."""

    def __init__(self, worker: Worker, handles: list[str]):
        self.worker = worker
        self.handles = handles
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._beat, name="batchdrop-heartbeat", daemon=True)

    def __enter__(self) -> _Heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join()

    def _beat(self) -> None:
        timeout = self.worker.visibility
        while not self.done.wait(max(timeout / 2, 1)):
            try:
                self.worker.client.change_message_visibility_batch(
                    QueueUrl=self.worker.queue_url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": timeout}
                        for i, h in enumerate(self.handles)
                    ],
                )
            except Exception as e:  # the next beat may succeed; the ledger guards regardless
                logger.warning("could not extend the messages' visibility", extra={"error": str(e)})
