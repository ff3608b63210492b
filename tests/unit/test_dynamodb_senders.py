"""The sender threads of a DynamoDB load: every job runs, ``drain`` waits for all of them,
a failure reaches the loading thread, threads start as jobs need them and never more than the
cap, and cancelled jobs do not run."""

from __future__ import annotations

import threading
import time

import pytest

from batchdrop.tables.dynamodb_senders import Senders


def test_every_job_runs_and_drain_waits_for_the_last() -> None:
    senders = Senders(4, "t")
    done: list[int] = []
    lock = threading.Lock()

    def job(n: int) -> None:
        time.sleep(0.001 * (n % 3))
        with lock:
            done.append(n)

    for n in range(300):
        senders.submit(job, n)
    senders.drain()
    assert sorted(done) == list(range(300))
    senders.shutdown()
    assert not any(t.name.startswith("t_") for t in threading.enumerate())


def test_threads_start_as_jobs_wait_and_never_past_the_cap() -> None:
    senders = Senders(3, "capped")
    gate = threading.Event()
    running = threading.Semaphore(0)

    def job() -> None:
        running.release()
        gate.wait()

    senders.submit(job)
    assert running.acquire(timeout=5)
    assert len(senders._threads) == 1  # one job: one thread
    for _ in range(9):
        senders.submit(job)
    for _ in range(2):
        assert running.acquire(timeout=5)
    assert len(senders._threads) == 3
    assert not running.acquire(timeout=0.2)  # the other jobs wait for a thread
    gate.set()
    senders.drain()
    senders.shutdown()


def test_a_failure_reaches_the_loading_thread_after_every_job_ended() -> None:
    senders = Senders(2, "t")
    ran: list[int] = []

    def job(n: int) -> None:
        if n == 3:
            raise ValueError("request 3 refused")
        time.sleep(0.002)
        ran.append(n)

    for n in range(10):
        senders.submit(job, n)
    with pytest.raises(ValueError, match="request 3"):
        senders.drain()
    assert sorted(ran) == [n for n in range(10) if n != 3]  # no job outlives the drain
    senders.check()  # raised once
    senders.submit(job, 3)
    deadline = time.monotonic() + 5
    while not senders._failures and time.monotonic() < deadline:
        time.sleep(0.001)
    with pytest.raises(ValueError):
        senders.check()  # before the next job is handed over
    senders.shutdown()


def test_cancelled_jobs_do_not_run() -> None:
    senders = Senders(1, "t")
    gate = threading.Event()
    ran: list[int] = []

    def job(n: int) -> None:
        gate.wait()
        ran.append(n)

    for n in range(5):
        senders.submit(job, n)
    time.sleep(0.05)  # the first job has started
    senders.cancel()
    gate.set()
    senders.drain()
    assert ran == [0]
    senders.shutdown()
