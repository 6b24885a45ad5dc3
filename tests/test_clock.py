"""Time is injected: FrozenClock moves only when told to, exactly; SystemClock is the real one."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest

from waflow.clock import Clock, SystemClock, utc_from_timestamp
from waflow.testing import FrozenClock

START = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)


def test_frozen_clock_stands_still() -> None:
    clock = FrozenClock(START)

    assert clock.now() == START
    assert clock.now() == START
    assert clock.monotonic() == 0.0


@pytest.mark.parametrize(
    "start", ["2026-03-02T09:00:00Z", "2026-03-02T10:00:00+01:00", START, START.astimezone()]
)
def test_frozen_clock_starts_at_an_aware_utc_time(start: str | datetime) -> None:
    clock = FrozenClock(start)

    assert clock.now() == START
    assert clock.now().tzinfo == timezone.utc


def test_frozen_clock_refuses_a_naive_start() -> None:
    with pytest.raises(ValueError, match="aware"):
        FrozenClock(datetime(2026, 3, 2, 9, 0))


def test_advance_moves_wall_and_monotonic_time_together() -> None:
    clock = FrozenClock(START)

    now = clock.advance(hours=23, minutes=59)
    clock.advance(timedelta(seconds=30))
    clock.advance(0.5)

    assert now == START + timedelta(hours=23, minutes=59)
    assert clock.now() == START + timedelta(hours=23, minutes=59, seconds=30.5)
    assert clock.monotonic() == 23 * 3600 + 59 * 60 + 30.5


def test_time_never_moves_backwards() -> None:
    clock = FrozenClock(START)
    clock.advance(60)

    with pytest.raises(ValueError, match="forward"):
        clock.advance(-1)
    with pytest.raises(ValueError, match="forward"):
        clock.set(START)
    assert clock.monotonic() == 60.0


def test_set_jumps_to_a_later_time() -> None:
    clock = FrozenClock(START)

    clock.set(START + timedelta(days=3))

    assert clock.now() == START + timedelta(days=3)
    assert clock.monotonic() == 3 * 86400


def test_sleep_advances_at_once_and_is_recorded() -> None:
    clock = FrozenClock(START)

    clock.sleep(0.5)
    clock.sleep(8)
    clock.sleep(0)
    clock.sleep(-1)

    assert clock.sleeps == [0.5, 8]
    assert clock.monotonic() == 8.5


def test_many_small_sleeps_do_not_drift() -> None:
    clock = FrozenClock(START)

    for _ in range(1000):
        clock.sleep(0.0125)

    assert clock.monotonic() == 12.5
    assert clock.now() == START + timedelta(seconds=12.5)


async def test_asleep_advances_and_lets_other_tasks_run() -> None:
    clock = FrozenClock(START)
    ran: list[str] = []

    async def other() -> None:
        ran.append("other")

    task = asyncio.ensure_future(other())
    await clock.asleep(2)

    assert ran == ["other"]
    assert clock.sleeps == [2]
    assert clock.monotonic() == 2.0
    await task


@pytest.mark.parametrize("clock", [FrozenClock(), SystemClock()], ids=["frozen", "system"])
def test_both_clocks_satisfy_the_clock_protocol(clock: Clock) -> None:
    assert isinstance(clock, Clock)
    assert clock.now().tzinfo is not None
    assert clock.now().utcoffset() == timedelta(0)


def test_system_clock_monotonic_never_goes_backwards() -> None:
    clock = SystemClock()

    first = clock.monotonic()

    assert clock.monotonic() >= first


def test_utc_from_timestamp_is_aware_utc() -> None:
    assert utc_from_timestamp(1_772_442_000) == datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
