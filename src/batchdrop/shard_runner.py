"""The local consumers of a sharded run: worker processes (``process``/``run --jobs``).

The runner keeps ``jobs`` tasks at work at once and hands on what each one leaves (shards.py).
A worker is a process of its own (spawned, not forked: a table's client keeps threads and
connections that a fork would copy half-made), with its own table, ledger and state store, so
shards are read, validated and written in parallel on every core. The step that concludes the
run runs here, in the runner's process, with its notifiers.

A task that fails with a retryable error (a throttled table, a dropped connection) is tried
again after a pause, up to ``max_attempts`` times; then the run fails, and its next claim goes on
from the shards already done.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from .errors import TransientError
from .shards import ShardTask, Step

if TYPE_CHECKING:
    from .config import Config
    from .pipeline import Pipeline
    from .report import Receipt

log = logging.getLogger("batchdrop")

#: how the CLI logs (its worker processes too)
LOG_FORMAT = "batchdrop: %(levelname)s: %(message)s"
#: seconds before a failed task's first retry (doubled each time)
RETRY_PAUSE_S = 1.0


def default_jobs(config: Config) -> int:
    """The number of cores this process may use, at most ``shards.max_in_flight``."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, config.shards.max_in_flight))


class LocalShards:
    """A pipeline's ``dispatch`` for local runs: every task of a sharded run, to its end."""

    def __init__(self, pipeline: Pipeline, jobs: int):
        self.pipeline, self.jobs = pipeline, max(1, jobs)
        self._pool: ProcessPoolExecutor | None = None

    def __call__(self, tasks: list[ShardTask]) -> Receipt | None:
        pending = deque(tasks)
        running: dict[Future[list[dict[str, Any]]], ShardTask] = {}
        receipt: Receipt | None = None
        tries: dict[tuple[str, int, int], int] = {}
        try:
            while pending or running:
                while pending and (len(running) < self.jobs or self.jobs == 1):
                    task = pending.popleft()
                    if self.jobs == 1 or task.step == "conclude":
                        step = self._here(task, tries)
                        if step is None:
                            pending.append(task)
                            continue
                        pending.extend(step.tasks)
                        receipt = step.receipt or receipt
                    else:
                        running[self.pool.submit(_work, asdict(task))] = task
                if not running:
                    continue
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    task = running.pop(future)
                    try:
                        pending.extend(ShardTask(**t) for t in future.result())
                    except TransientError as e:
                        self._again(task, e, tries)
                        pending.append(task)
        finally:
            self.close()
        return receipt

    @property
    def pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.jobs,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker,
                initargs=(self.pipeline.config, logging.getLogger().getEffectiveLevel()),
            )
        return self._pool

    def _here(self, task: ShardTask, tries: dict[tuple[str, int, int], int]) -> Step | None:
        try:
            return self.pipeline.shard_task(task)
        except TransientError as e:
            self._again(task, e, tries)
            return None

    def _again(self, task: ShardTask, e: Exception, tries: dict[tuple[str, int, int], int]) -> None:
        """Pause before the task runs again, or give up on the run."""
        key = (task.step, task.index, task.plan)
        tries[key] = n = tries.get(key, 0) + 1
        if n >= self.pipeline.config.max_attempts:
            raise TransientError(
                f"{task.file}: shard {task.index + 1} of {task.total} failed {n} times; the "
                f"next run goes on from the shards done. Last error: {e}"
            ) from e
        log.warning("%s: shard %s failed, tried again: %s", task.file, task.index + 1, e)
        time.sleep(RETRY_PAUSE_S * 2 ** (n - 1))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


# --- in the worker processes -----------------------------------------------------------------

_pipeline: Pipeline | None = None


def _start_worker(config: Config, log_level: int) -> None:
    """A worker logs as the runner does (``-v``), and leaves Ctrl-C to the runner (which stops
    after the file, or at once on a second Ctrl-C, shutting the workers down): no traceback
    from each of them."""
    global _pipeline
    import signal

    from .pipeline import Pipeline

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=log_level, format=LOG_FORMAT)
    _pipeline = Pipeline(config, notifiers=[])


def _work(task: dict[str, Any]) -> list[dict[str, Any]]:
    assert _pipeline is not None
    step = _pipeline.shard_task(ShardTask(**task))
    return [asdict(t) for t in step.tasks]
