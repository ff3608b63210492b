"""The write governor driven by a fake clock and scripted outcomes: slow start, additive
increase, one cut per round trip on throttling, a gentler cut on latency, the cap, and the
token bucket of write units (its waits computed, never slept)."""

from __future__ import annotations

import threading
import time

import pytest

from batchdrop.tables.dynamodb_governor import Governor, Ticket


class Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def governor(cap: int = 32, units_per_s: float | None = None) -> tuple[Governor, Clock]:
    clock = Clock()
    return Governor(cap, units_per_s=units_per_s, clock=clock, sleep=clock.sleep), clock


def round_trip(
    gov: Governor, clock: Clock, *, latency: float = 0.008, throttled: bool = False
) -> int:
    """Send as many requests as allowed, then answer them all: how many were sent."""
    tickets = [gov.acquire() for _ in range(int(gov.limit))]
    clock.now += latency
    for t in tickets:
        gov.release(t, throttled=throttled)
    return len(tickets)


def test_slow_start_doubles_then_stops_at_the_cap() -> None:
    gov, clock = governor(cap=20)
    sent = [round_trip(gov, clock) for _ in range(7)]
    assert sent == [1, 2, 4, 8, 16, 20, 20]
    assert gov.limit == 20 and gov.cuts == 0


def test_one_throttled_round_halves_once_then_grows_by_one_a_round() -> None:
    gov, clock = governor()
    for _ in range(5):
        round_trip(gov, clock)
    assert gov.limit == 32
    round_trip(gov, clock, throttled=True)  # 32 requests throttled: one congestion, one cut
    assert gov.cuts == 1 and gov.limit == 16
    sent = [round_trip(gov, clock) for _ in range(4)]
    assert sent == [16, 16, 17, 18]  # congestion avoidance: about +1 a round trip


def test_throttled_again_after_the_cut_cuts_again() -> None:
    gov, clock = governor()
    for _ in range(5):
        round_trip(gov, clock)
    round_trip(gov, clock, throttled=True)
    round_trip(gov, clock, throttled=True)  # sent after the first cut: a new congestion
    assert gov.cuts == 2 and gov.limit == 8


def test_never_below_one_in_flight() -> None:
    gov, clock = governor()
    for _ in range(10):
        round_trip(gov, clock, throttled=True)
    assert gov.limit == 1.0
    assert round_trip(gov, clock) == 1


def test_risen_latency_cuts_a_tenth_and_steady_latency_does_not() -> None:
    gov, clock = governor()
    for _ in range(6):
        round_trip(gov, clock, latency=0.008)
    assert gov.limit == 32 and gov.cuts == 0
    for _ in range(3):
        round_trip(gov, clock, latency=0.080)  # ten times the floor: the endpoint queues
    assert gov.cuts >= 1
    assert gov.limit == pytest.approx(32 * 0.9**gov.cuts, abs=gov.cuts)
    assert gov.limit > 16  # gentler than a throttle


def test_a_failure_releases_its_place() -> None:
    gov, _ = governor(cap=1)
    ticket = gov.acquire()
    done = threading.Event()

    def second() -> None:
        gov.release(gov.acquire(), throttled=False)
        done.set()

    t = threading.Thread(target=second)
    t.start()
    assert not done.wait(0.05)  # the cap of 1 holds it back
    gov.release(ticket, throttled=True)
    t.join(5)
    assert done.is_set() and gov.in_flight == 0


def test_token_bucket_paces_write_units() -> None:
    gov, clock = governor(units_per_s=100)
    # a second's worth of burst, then each request of 25 units waits a quarter of a second
    for _ in range(4):
        gov.release(gov.acquire(25), throttled=False, units=25)
    assert clock.slept == []
    start = clock.now
    for _ in range(8):
        gov.release(gov.acquire(25), throttled=False, units=25)
    assert clock.now - start == pytest.approx(2.0)  # 200 units at 100 a second


def test_consumed_capacity_corrects_the_estimate() -> None:
    gov, clock = governor(units_per_s=100)
    start = clock.now
    for _ in range(10):
        # estimated 25 units, the reply says 50 (bigger items than guessed): the debt is paid
        gov.release(gov.acquire(25), throttled=False, units=50)
    waited = clock.now - start
    assert waited == pytest.approx(4.0 - 0.25, abs=0.26)  # 500 units, 100 of burst, at 100/s
    # and without the correction it would have been a quarter of the time
    plain, clock2 = governor(units_per_s=100)
    for _ in range(10):
        plain.release(plain.acquire(25), throttled=False, units=None)
    assert clock2.now - 100.0 == pytest.approx(1.5)


def test_no_pacing_without_a_rate() -> None:
    gov, clock = governor()
    for _ in range(100):
        gov.release(gov.acquire(1000), throttled=False, units=1000)
    assert clock.slept == []


def test_tickets_carry_their_order() -> None:
    gov, _ = governor(cap=4)
    a = gov.acquire()
    gov.release(a, throttled=False)
    b = gov.acquire()
    assert isinstance(b, Ticket) and b.seq == a.seq + 1


class CountingCondition(threading.Condition):
    """A condition that counts its waiters' wake-ups."""

    def __init__(self) -> None:
        super().__init__()
        self.wakeups = 0

    def wait(self, timeout: float | None = None) -> bool:
        woken = super().wait(timeout)
        self.wakeups += 1
        return woken


def test_threads_waiting_for_room_are_woken_as_room_comes_not_all_at_every_reply() -> None:
    """32 senders on a limit that throttling keeps low: every request is sent, never more in
    flight than the limit allows, and a reply wakes about one waiter, not all 31 (each
    needless wake-up costs a thread switch on the loading core)."""
    gov = Governor(32)
    cond = gov._cond = CountingCondition()
    most = 0
    replies = 0
    lock = threading.Lock()

    def sender(n: int) -> None:
        nonlocal most, replies
        for i in range(60):
            ticket = gov.acquire()
            with lock:
                most = max(most, gov.in_flight - int(gov.limit))
            time.sleep(0.001)  # the request's round trip
            gov.release(ticket, throttled=(i + n) % 7 == 0)
            with lock:
                replies += 1

    threads = [threading.Thread(target=sender, args=(n,)) for n in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads), "a sender was never woken"
    assert replies == 32 * 60 and gov.in_flight == 0
    assert most <= 0  # never more in flight than the limit
    assert gov.cuts > 0  # the limit was low enough for senders to wait
    assert cond.wakeups <= 2 * replies, (cond.wakeups, replies)


def test_a_retry_keeps_its_place_and_counts_as_a_new_request() -> None:
    """A sender retrying keeps its place in flight (the loading thread, which takes places,
    then never waits on a sender), and the retry is a new request: throttled again after the
    cut its first refusal caused, it cuts again."""
    gov, clock = governor(cap=8)
    for _ in range(3):
        round_trip(gov, clock)
    assert gov.limit == 8
    ticket = gov.acquire()
    others = [gov.acquire() for _ in range(7)]
    gov.release(ticket, throttled=True, keep=True)
    assert gov.in_flight == 8 and gov.limit == 4  # cut, the place kept
    for t in others:  # sent before the cut: the same congestion, no second cut
        gov.release(t, throttled=True)
    assert gov.limit == 4 and gov.in_flight == 1
    gov.again(ticket)
    gov.release(ticket, throttled=True)  # sent after the cut: cuts again
    assert gov.limit == 2 and gov.in_flight == 0


def test_a_retry_takes_its_write_units_again() -> None:
    gov, clock = governor(units_per_s=100)
    ticket = gov.acquire(100)  # the burst
    gov.release(ticket, throttled=True, keep=True)
    gov.again(ticket, 50)
    assert clock.slept == [pytest.approx(0.5)] and ticket.units == 50
