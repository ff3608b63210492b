"""The threads that send a load's requests: a queue of jobs, no future per request.

The governor (dynamodb_governor.py) already bounds the requests in flight: the loading thread
takes a request's place before it hands the request over, so the queue never holds more than
the cap. What a thread pool adds on top of that, a future and its condition for every request,
a lock and a semaphore at every submit, cost more CPU than building the request's body. Here a
job is a function and its arguments on a ``SimpleQueue``; a failed job's exception is kept and
raised in the loading thread, at its next ``check`` or ``drain``; ``drain`` waits until every
job handed over has ended.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from queue import SimpleQueue
from typing import Any

__all__ = ["Senders"]

#: a job: a function and its arguments; None tells a thread to end
Job = tuple[Callable[..., None], tuple[Any, ...]] | None


class Senders:
    """Up to ``cap`` threads, started as jobs need them, running the jobs handed to ``submit``."""

    def __init__(self, cap: int, name: str):
        self.cap, self.name = max(1, cap), name
        self._jobs: SimpleQueue[Job] = SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._submitted = 0
        self._ended = 0  # jobs run (or skipped, once cancelled) to their end
        self._idle = threading.Condition()  # notified when the last job handed over ends
        self._failures: list[BaseException] = []
        self._cancelled = False

    def submit(self, fn: Callable[..., None], *args: Any) -> None:
        """Run ``fn(*args)`` on a sender thread."""
        self._submitted += 1
        # one more thread while the jobs not ended outnumber the threads, as a pool would
        if self._submitted - self._ended > len(self._threads) < self.cap:
            thread = threading.Thread(
                target=self._work, name=f"{self.name}_{len(self._threads)}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        self._jobs.put((fn, args))

    def check(self) -> None:
        """Raise the first failure of a job, if one failed since the last ``check``."""
        if self._failures:
            first = self._failures[0]
            self._failures.clear()
            raise first

    def drain(self) -> None:
        """Wait until every job handed over has ended, then raise the first failure."""
        with self._idle:
            while self._ended < self._submitted:
                self._idle.wait()
        self.check()

    def cancel(self) -> None:
        """The jobs not started yet end without running."""
        self._cancelled = True

    def shutdown(self) -> None:
        """Every thread ends, once the jobs before are done."""
        for _ in self._threads:
            self._jobs.put(None)
        for thread in self._threads:
            thread.join()
        self._threads.clear()

    def _work(self) -> None:
        jobs, failures = self._jobs, self._failures
        while (job := jobs.get()) is not None:
            fn, args = job
            try:
                if not self._cancelled:
                    fn(*args)
            except BaseException as e:  # the loading thread raises it
                failures.append(e)
            finally:
                del job, fn, args
                with self._idle:
                    self._ended += 1
                    if self._ended == self._submitted:
                        self._idle.notify_all()
