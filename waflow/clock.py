"""Time, injected: everything in waflow that waits or compares times takes a :class:`Clock`.

Production code uses :class:`SystemClock`; tests use :class:`waflow.testing.FrozenClock`, whose
``sleep`` advances virtual time instantly, so retries, pacing and 24-hour windows are tested without
real waiting.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "SystemClock", "utc_from_timestamp"]


@runtime_checkable
class Clock(Protocol):
    """The source of time for waflow.

    ``now()`` is wall-clock time (aware, UTC) for windows and deadlines; ``monotonic()`` is for
    measuring intervals (pacing, backoff). ``sleep`` / ``asleep`` wait on this clock.
    """

    def now(self) -> datetime:
        """The current time, timezone-aware, in UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards."""
        ...

    def sleep(self, seconds: float) -> None:
        """Block the calling thread for ``seconds``."""
        ...

    async def asleep(self, seconds: float) -> None:
        """Suspend the calling task for ``seconds``."""
        ...


class SystemClock:
    """The real clock: :func:`time.monotonic`, :func:`time.sleep`, :func:`asyncio.sleep`."""

    def now(self) -> datetime:
        """The current time, aware, in UTC."""
        return datetime.now(timezone.utc)

    def monotonic(self) -> float:
        """:func:`time.monotonic`."""
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        """:func:`time.sleep` (nothing for zero or less)."""
        if seconds > 0:
            time.sleep(seconds)

    async def asleep(self, seconds: float) -> None:
        """:func:`asyncio.sleep` (a bare yield to the loop for zero or less)."""
        await asyncio.sleep(max(seconds, 0.0))

    def __repr__(self) -> str:
        return "SystemClock()"


def utc_from_timestamp(seconds: float) -> datetime:
    """An aware UTC datetime from Unix seconds."""
    return datetime.fromtimestamp(seconds, tz=timezone.utc)
