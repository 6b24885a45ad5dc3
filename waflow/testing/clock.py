"""A clock that stands still until told to move: deterministic tests of time-dependent code."""

from __future__ import annotations

import asyncio
import threading
from datetime import datetime, timedelta, timezone

__all__ = ["FrozenClock"]

_NS = 1_000_000_000
DEFAULT_START = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)


def _to_ns(seconds: float | timedelta) -> int:
    if isinstance(seconds, timedelta):
        seconds = seconds.total_seconds()
    return round(seconds * _NS)


class FrozenClock:
    """A :class:`~waflow.clock.Clock` whose time moves only by :meth:`advance` and ``sleep``.

    ``sleep`` and ``asleep`` return at once after moving the clock forward, so code that backs off
    for 8 seconds, or paces 1,000 sends at 80/s, runs instantly and exactly. Time is kept in integer
    nanoseconds, so adding up many small sleeps never drifts. ``sleeps`` records every wait.

    >>> clock = FrozenClock("2026-03-02T09:00:00Z")
    >>> clock.advance(hours=23, minutes=59).isoformat()
    '2026-03-03T08:59:00+00:00'
    """

    def __init__(self, start: datetime | str | None = None) -> None:
        if isinstance(start, str):
            start = datetime.fromisoformat(start.replace("Z", "+00:00"))
        start = start or DEFAULT_START
        if start.tzinfo is None:
            raise ValueError("FrozenClock needs an aware datetime (e.g. with tzinfo=timezone.utc)")
        self._start = start.astimezone(timezone.utc)
        self._elapsed_ns = 0
        self._lock = threading.Lock()
        self.sleeps: list[float] = []

    def now(self) -> datetime:
        """The frozen wall-clock time (aware, UTC)."""
        return self._start + timedelta(microseconds=self._elapsed_ns // 1000)

    def monotonic(self) -> float:
        """Seconds since the clock was created."""
        return self._elapsed_ns / _NS

    def advance(
        self, seconds: float | timedelta = 0, *, minutes: float = 0, hours: float = 0
    ) -> datetime:
        """Move time forward and return the new :meth:`now`."""
        step = _to_ns(seconds) + _to_ns(minutes * 60) + _to_ns(hours * 3600)
        if step < 0:
            raise ValueError("time only moves forward")
        with self._lock:
            self._elapsed_ns += step
        return self.now()

    def set(self, when: datetime) -> None:
        """Jump forward to ``when``."""
        self.advance(when.astimezone(timezone.utc) - self.now())

    def sleep(self, seconds: float) -> None:
        """Record the wait and move time forward by it, without blocking."""
        if seconds > 0:
            self.sleeps.append(seconds)
            self.advance(seconds)

    async def asleep(self, seconds: float) -> None:
        """Like :meth:`sleep`, then yield to the event loop once so other tasks run."""
        self.sleep(seconds)
        await asyncio.sleep(0)

    def __repr__(self) -> str:
        return f"FrozenClock({self.now().isoformat()})"
