"""``batchdrop worker --queue URL``: the Lambda's work, on any machine or container.

It long-polls the SQS queue the inbound bucket notifies, hands each batch to the same
``Runtime.handle`` the Lambda uses, and deletes the messages that succeeded. A failed message is
left alone: it becomes visible again after the queue's visibility timeout (and goes to the
dead-letter queue after its redrive count). While a batch is being processed, a heartbeat keeps
its messages invisible, so a large file is not handed to a second worker halfway through.

No batch stops the worker: whatever one raises is logged and its messages are left to come back.
Only a queue it cannot use at all (a wrong URL, no permission) stops it, with a clear message.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError, TransientError
from .handler import Runtime, logger, metrics

#: SQS error codes that say the queue cannot be used as given (no retry will help)
QUEUE_UNUSABLE = frozenset(
    {
        "AWS.SimpleQueueService.NonExistentQueue",
        "QueueDoesNotExist",
        "AccessDenied",
        "AccessDeniedException",
        "InvalidAddress",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
    }
)
#: seconds between polls after a poll failed
RETRY_PAUSE = 5.0


def _flush_metrics() -> None:
    try:
        metrics.flush_metrics()
    except Exception:  # figures lost are no reason to lose the batch's outcome
        logger.exception("could not flush the batch's metrics")


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

    def _queue_error(self, e: Exception) -> Exception:
        from .clients import error_code

        code = error_code(e)
        status = getattr(e, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in QUEUE_UNUSABLE or status == 403:
            return ConfigError(
                f"cannot use the queue {self.queue_url} ({code}): check --queue and the "
                "permissions (sqs:ReceiveMessage, sqs:DeleteMessage, sqs:GetQueueAttributes, "
                "sqs:ChangeMessageVisibility)"
            )
        return TransientError(f"SQS did not answer for {self.queue_url}: {e}")

    def _visibility_timeout(self) -> int:
        try:
            attrs = self.client.get_queue_attributes(
                QueueUrl=self.queue_url, AttributeNames=["VisibilityTimeout"]
            )["Attributes"]
        except Exception as e:
            raise self._queue_error(e) from e
        return int(attrs.get("VisibilityTimeout", 30))

    def poll_once(self) -> int:
        """Receive one batch, process it, delete what succeeded. Returns the messages received."""
        self.stats.polls += 1
        try:
            reply = self.client.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=self.batch,
                WaitTimeSeconds=self.wait_seconds,
                MessageSystemAttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
            )
        except Exception as e:
            raise self._queue_error(e) from e
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
        ids = [m["MessageId"] for m in messages]
        with _Heartbeat(self, [m["ReceiptHandle"] for m in messages]):
            try:
                reply = self.runtime.handle(event, remaining=None)
                failed = {f["itemIdentifier"] for f in reply.get("batchItemFailures", [])}
            except Exception:
                # A bug or a fault no file catches: the messages come back after the visibility
                # timeout (then go to the dead-letter queue), and the next batch goes on.
                logger.exception(
                    "batch failed; its messages will be delivered again",
                    extra={"message_ids": ids},
                )
                failed = set(ids)
            finally:
                _flush_metrics()
        done = [m for m in messages if m["MessageId"] not in failed]
        deleted = self._delete(done) if done else 0
        self.stats.deleted += deleted
        self.stats.failed += len(messages) - deleted
        return len(messages)

    def _delete(self, done: list[dict[str, Any]]) -> int:
        """Delete the messages of files that are done; returns how many went. One left behind
        comes back, and its file is found done (or gone) then."""
        try:
            reply = self.client.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)
                ],
            )
        except Exception as e:
            logger.warning(
                "could not delete the messages of a finished batch; they will come back",
                extra={"error": str(self._queue_error(e)), "count": len(done)},
            )
            return 0
        refused = reply.get("Failed", [])
        if refused:
            logger.warning(
                "SQS kept some messages of a finished batch; they will come back",
                extra={"failed": [f.get("Code") for f in refused]},
            )
        return len(done) - len(refused)

    def run(self, *, until_empty: bool = False) -> WorkerStats:
        """Poll until stopped (or, with ``until_empty``, until a poll finds nothing)."""
        logger.info(
            "worker started",
            extra={
                "queue": self.queue_url,
                "inbound": self.runtime.config.inbound,
                **(
                    {"feeds": [f.name for f in self.runtime.config.feeds]}
                    if self.runtime.named
                    else {}
                ),
            },
        )
        while not self.stop.is_set():
            try:
                got = self.poll_once()
            except ConfigError:
                raise  # the queue cannot be used at all: waiting will not mend it
            except Exception as e:
                logger.warning(
                    "poll failed; trying again",
                    extra={"error": str(e), "error_type": type(e).__name__},
                )
                self.stop.wait(RETRY_PAUSE)
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
