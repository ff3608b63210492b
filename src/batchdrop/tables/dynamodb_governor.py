"""How many BatchWriteItem requests a load keeps in flight, and how fast it spends write units.

In flight: additive increase, multiplicative decrease (AIMD), between 1 and a cap. The limit
starts at 1 and doubles each round trip while requests succeed (slow start), then grows by one
request per round trip. Throttling (an error or items handed back unprocessed) halves it;
latency risen well above the lowest seen (the endpoint or the network is queueing) takes a
tenth off. A cut happens at most once per round trip: requests already in flight when it came
report the same congestion and must not cut again.

Write units: an optional token bucket of ``units_per_s``, a second's worth of burst. A request
takes its estimate before it is sent; its reply's ConsumedCapacity corrects the estimate, so
the rate holds whatever the items' sizes. Time comes from ``clock`` and waits go to ``sleep``,
so the governor can be driven without real time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Governor", "Ticket"]

#: a cut on latency: when the smoothed latency passes this many times the lowest seen, plus
#: ``LATENCY_SLACK`` seconds (so that a sub-millisecond floor does not make noise a signal)
LATENCY_FACTOR = 2.0
LATENCY_SLACK = 0.005
LATENCY_CUT = 0.9
THROTTLE_CUT = 0.5
#: weight of a new latency in the smoothed latency
SMOOTHING = 0.2


@dataclass
class Ticket:
    """One request on its way: when it was sent, which it was, the units it took."""

    seq: int
    sent: float
    units: float


class Governor:
    def __init__(
        self,
        cap: int,
        *,
        units_per_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.cap = max(1, cap)
        #: requests allowed in flight now (a float: additive increase adds fractions)
        self.limit = 1.0
        self.threshold = float(self.cap)  # slow start below it
        self.in_flight = 0
        self.cuts = 0
        self.floor: float | None = None  # the lowest latency seen
        self.latency: float | None = None  # smoothed
        self._issued = 0
        self._recover = 0  # requests issued up to the last cut: their reports do not cut again
        self._cond = threading.Condition()
        self._clock, self._sleep = clock, sleep
        self.rate = units_per_s
        self.tokens = units_per_s or 0.0
        self._stamp = clock()
        self._bucket = threading.Lock()

    # --- in flight -----------------------------------------------------------------------------

    def acquire(self, units: float = 0.0) -> Ticket:
        """Wait for room in flight and for the write units, then take them."""
        with self._cond:
            while self.in_flight >= int(self.limit):
                self._cond.wait()
            self.in_flight += 1
            self._issued += 1
            seq = self._issued
        wait = self._take(units)
        if wait > 0:
            self._sleep(wait)
        return Ticket(seq, self._clock(), units)

    def started(self, ticket: Ticket) -> None:
        """The request of ``ticket`` leaves now: a ticket taken by one thread and sent by
        another is timed from here, so waiting for a free sender is not the table's latency."""
        ticket.sent = self._clock()

    def again(self, ticket: Ticket, units: float = 0.0) -> None:
        """A retry on the place ``ticket`` kept (``release(keep=True)``): a new request, so a
        cut after the last one can be followed by another, and its write units taken."""
        with self._cond:
            self._issued += 1
            ticket.seq = self._issued
        wait = self._take(units)
        if wait > 0:
            self._sleep(wait)
        ticket.units = units
        ticket.sent = self._clock()

    def release(
        self, ticket: Ticket, *, throttled: bool, units: float | None = None, keep: bool = False
    ) -> None:
        """A reply came (or a failure): ``throttled`` when the table pushed back, ``units`` the
        write units the reply says were consumed (None: not said). With ``keep`` the sender
        keeps the place for a retry (``again``), so the thread that takes places never waits
        on a sender and a retry goes before the requests behind it."""
        latency = self._clock() - ticket.sent
        if units is not None:
            self._correct(units - ticket.units)
        with self._cond:
            if not keep:
                self.in_flight -= 1
            if throttled:
                self._cut(ticket, THROTTLE_CUT)
            elif self._slow(latency):
                self._cut(ticket, LATENCY_CUT)
            elif self.limit < self.threshold:
                self.limit = min(self.limit + 1, self.cap)
            else:
                self.limit = min(self.limit + 1 / self.limit, self.cap)
            # wake as many waiters as there is room for: waking all of them (up to the cap,
            # 32 threads) at every reply cost more CPU than building the requests
            room = int(self.limit) - self.in_flight
            if room > 0:
                self._cond.notify(room)

    def _slow(self, latency: float) -> bool:
        self.floor = latency if self.floor is None else min(self.floor, latency)
        if self.latency is None:
            self.latency = latency
        else:
            self.latency += SMOOTHING * (latency - self.latency)
        return self.latency > self.floor * LATENCY_FACTOR + LATENCY_SLACK

    def _cut(self, ticket: Ticket, factor: float) -> None:
        if ticket.seq <= self._recover:
            return  # sent before the last cut: the same congestion
        self.limit = max(1.0, self.limit * factor)
        self.threshold = self.limit
        self._recover = self._issued
        self.cuts += 1
        if factor == LATENCY_CUT:
            self.latency = self.floor  # judge the new limit on its own latencies

    # --- write units ---------------------------------------------------------------------------

    def _refill(self) -> None:
        now = self._clock()
        assert self.rate is not None
        self.tokens = min(self.rate, self.tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def _take(self, units: float) -> float:
        """Take ``units`` now (the bucket may go into debt): the seconds to wait before sending,
        so that the debt is paid at ``rate``."""
        if self.rate is None:
            return 0.0
        with self._bucket:
            self._refill()
            self.tokens -= units
            return -self.tokens / self.rate if self.tokens < 0 else 0.0

    def _correct(self, extra: float) -> None:
        """The reply consumed ``extra`` units more than taken (fewer when negative)."""
        if self.rate is None or not extra:
            return
        with self._bucket:
            self._refill()
            self.tokens -= extra
