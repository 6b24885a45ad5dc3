"""Pacing of outbound messages to Meta's throughput and pair-rate limits.

Meta allows a business number 80 messages per second by default (1,000 after an automatic upgrade;
20 for numbers also used in the WhatsApp Business app) and answers 130429 above it. It also limits the
*pair* rate: about one message every 6 seconds to the same customer, with short bursts borrowed from
later quota (131056 above it).

:class:`Pacer` spaces sends out so those limits are never hit, instead of hitting them and backing
off. It uses the generic cell rate algorithm (GCRA, a token bucket kept as a single timestamp) on
integer nanoseconds, so a limit of 80/s never lets 81 sends into any one-second window, not even by
floating-point drift. The same reservation code serves threads (``wait``) and asyncio (``await_turn``);
only the waiting differs.

Booking a slot is not enough on a real machine: a task that wakes late (a busy event loop, a
garbage-collection pause) sends late while the next one keeps its slot. So a send also *departs*:
when it wakes, the moment it really goes out is checked against the limit itself, over the sends
that really went out: at most ``throughput`` of them (rounded down, plus ``burst - 1``) in any
one-second window (a log of the last ones), and, for evenly spaced pacing, never closer than half
a slot to the previous one. A late send therefore never lets the limit be crossed, and it does
not push the slots after it back either: the sends after it catch up (at up to twice the rate,
within the window's count), so late wake-ups do not add up into a drain slower than the tier.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass

from waflow.clock import Clock, SystemClock

__all__ = ["PAIR_INTERVAL_SECONDS", "THROUGHPUT_TIERS", "Pacer", "RateLimit"]

#: Meta's throughput tiers, in messages per second per business number.
THROUGHPUT_TIERS = (20, 80, 1000)
#: One message per this many seconds to the same customer, sustained.
PAIR_INTERVAL_SECONDS = 6.0
#: Added to the one-second window in which departures are counted: a send counted when it leaves
#: reaches Meta a little later, and not every send equally fast. Usually well under 1 ms, but a
#: busy machine can pause the process between the check and the transport: with 10 ms, one drain
#: in twelve on a 2-CPU VM whose hypervisor took 14 % of its time put 81 sends into one second at
#: 80/s. It costs about its fraction of the throughput (2.5 %).
DEFAULT_WINDOW_MARGIN = 0.025
_NS = 1_000_000_000
_PRUNE_EVERY = 4096


@dataclass(frozen=True)
class RateLimit:
    """``rate`` events per second on average, with up to ``burst`` of them back to back.

    ``burst=1`` spaces every event evenly (the strictest pacing).
    """

    rate: float
    burst: int = 1

    def __post_init__(self) -> None:
        if not (self.rate > 0 and math.isfinite(self.rate)):
            raise ValueError(
                f"rate must be a positive number of events per second, got {self.rate}"
            )
        if self.burst < 1:
            raise ValueError(f"burst must be at least 1, got {self.burst}")

    @property
    def interval_ns(self) -> int:
        """Nanoseconds between two evenly spaced events at ``rate``."""
        # Rounded up: pacing may be a hair slower than the limit, never faster.
        return math.ceil(_NS / self.rate)


class _CellRate:
    """GCRA state for many keys: each key's theoretical arrival time, in nanoseconds."""

    def __init__(self, limit: RateLimit) -> None:
        self.limit = limit
        self._interval = limit.interval_ns
        self._tolerance = (limit.burst - 1) * self._interval
        self._tat: dict[object, int] = {}
        self._reservations = 0

    def reserve(self, key: object, now_ns: int, earliest_ns: int | None = None) -> int:
        """Book the next slot for ``key`` at or after ``earliest_ns`` (default: now).

        Returns the nanoseconds from ``earliest_ns`` to the slot (0 = then).
        """
        at = now_ns if earliest_ns is None else earliest_ns
        tat = max(self._tat.get(key, at), at)
        start = max(at, tat - self._tolerance)
        self._tat[key] = tat + self._interval
        self._reservations += 1
        if self._reservations % _PRUNE_EVERY == 0:
            self._prune(now_ns)
        return start - at

    def _prune(self, now_ns: int) -> None:
        # A key whose arrival time has passed behaves exactly like an unseen key. Only the real
        # now may decide that: another key may still book a slot before a future ``earliest_ns``.
        for key in [k for k, tat in self._tat.items() if tat <= now_ns]:
            del self._tat[key]


class _Departures:
    """The sends that really went out, per key: at most as many as ``limit`` allows in a window
    (one second from 1/s up, longer below) widened by ``margin_ns``, and, when ``limit`` spaces
    sends evenly, none closer than half an interval to the one before. Keeps a log of the last
    sends per key."""

    def __init__(self, limit: RateLimit, margin_ns: int) -> None:
        per_window = max(1, math.floor(limit.rate))
        # At least a second: 80.9/s must not fit 81 sends into one (80 per second, then).
        self._window_ns = max(_NS, math.ceil(per_window * _NS / limit.rate)) + margin_ns
        self._size = per_window + limit.burst - 1
        self._min_gap_ns = limit.interval_ns // 2 if limit.burst == 1 else 0
        self._logs: dict[object, deque[int]] = {}

    def conform(self, key: object, now_ns: int) -> int:
        """Count a send for ``key`` going out now if that keeps the limit; else the wait (ns).

        Returns 0 when the send was counted; a positive number of nanoseconds to wait before
        asking again otherwise (nothing is counted then).
        """
        log = self._logs.get(key)
        if log is None:
            log = self._logs[key] = deque(maxlen=self._size)
        wait_ns = 0
        if log:
            wait_ns = log[-1] + self._min_gap_ns - now_ns
            if len(log) == self._size:
                # The send `size` sends back must have left the window that now would close.
                wait_ns = max(wait_ns, log[0] + self._window_ns - now_ns)
        if wait_ns > 0:
            return wait_ns
        log.append(now_ns)  # a full log drops its oldest
        return 0


class Pacer:
    """Spaces sends per business number and, optionally, per (number, customer) pair.

    >>> pacer = Pacer(throughput=80)          # Meta's default tier
    >>> pacer.wait("106540352242922")          # blocks until this send may go
    0.0

    ``throughput`` is messages per second per sending number (20, 80 or 1000, or any positive rate),
    ``burst`` how many may go back to back (default 1: evenly spaced). ``pair_pacing=True`` also keeps
    each customer at one message per ``pair_interval`` seconds after a burst of ``pair_burst``.
    ``window_margin`` (seconds) widens the one-second window in which sends are counted as they
    leave, so that the uneven time a send takes to reach Meta cannot squeeze one send too many
    into a second there; it costs about that fraction of the throughput (2.5 % by default).
    One Pacer should serve every client that sends from the same number in a process.
    """

    def __init__(
        self,
        throughput: float = 80,
        *,
        burst: int = 1,
        pair_pacing: bool = False,
        pair_interval: float = PAIR_INTERVAL_SECONDS,
        pair_burst: int = 10,
        window_margin: float = DEFAULT_WINDOW_MARGIN,
        clock: Clock | None = None,
    ) -> None:
        if not (window_margin >= 0 and math.isfinite(window_margin)):
            raise ValueError(f"window_margin must be 0 or more seconds, got {window_margin}")
        self.clock: Clock = clock or SystemClock()
        self._sender = _CellRate(RateLimit(throughput, burst))
        # The same limit over the times sends actually went out (see the module docstring).
        self._departed = _Departures(RateLimit(throughput, burst), math.ceil(window_margin * _NS))
        self._pair = _CellRate(RateLimit(1.0 / pair_interval, pair_burst)) if pair_pacing else None
        self._lock = threading.Lock()

    @property
    def throughput(self) -> float:
        """Messages per second allowed per sending number."""
        return self._sender.limit.rate

    def reserve(self, sender: str, recipient: str | None = None) -> float:
        """Book a slot and return the seconds to wait before sending (no waiting here).

        Only the plan: :meth:`wait` and :meth:`await_turn` also check the moment the send really
        goes out. Call :meth:`depart` after sleeping yourself to do the same.
        """
        with self._lock:
            now_ns = round(self.clock.monotonic() * _NS)
            delay = self._sender.reserve(sender, now_ns)
            if self._pair is not None and recipient is not None:
                # Book the pair slot from the sender slot on; a later pair slot only wastes the
                # sender slot, which errs on the safe side of the throughput limit.
                delay += self._pair.reserve((sender, recipient), now_ns, now_ns + delay)
        return delay / _NS

    def depart(self, sender: str) -> float:
        """Count a send from ``sender`` going out now, if the throughput allows it now.

        Returns 0.0 when it was counted (send now), else the seconds to wait before asking again.
        Allowed: at most ``throughput`` sends (rounded down, plus ``burst - 1``) in any
        one-second window (widened by ``window_margin``; below 1/s, the window one send takes),
        counting the sends that really went out; with ``burst=1`` also at least half a slot after
        the previous send.
        """
        with self._lock:
            now_ns = round(self.clock.monotonic() * _NS)
            wait_ns = self._departed.conform(sender, now_ns)
        return wait_ns / _NS

    def wait(self, sender: str, recipient: str | None = None) -> float:
        """Block until a send from ``sender`` (to ``recipient``) may go; return seconds waited."""
        waited = delay = self.reserve(sender, recipient)
        while True:
            if delay > 0:
                self.clock.sleep(delay)
            delay = self.depart(sender)
            if delay <= 0:
                return waited
            waited += delay

    async def await_turn(self, sender: str, recipient: str | None = None) -> float:
        """Async :meth:`wait`: suspend the task, not the thread."""
        waited = delay = self.reserve(sender, recipient)
        while True:
            if delay > 0:
                await self.clock.asleep(delay)
            delay = self.depart(sender)
            if delay <= 0:
                return waited
            waited += delay

    def __repr__(self) -> str:
        pair = "on" if self._pair is not None else "off"
        return f"Pacer(throughput={self.throughput:g}/s, pair_pacing={pair})"
