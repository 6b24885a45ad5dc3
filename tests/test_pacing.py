"""Pacing keeps sends under Meta's throughput and pair-rate limits, on virtual time.

Send times are read from a FrozenClock, so "no one-second window holds more than 80" is checked
exactly, without sleeping for real.
"""

from __future__ import annotations

import asyncio
import bisect
import heapq
import itertools
import random
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime

import pytest

from waflow.ratelimit import (
    DEFAULT_WINDOW_MARGIN,
    PAIR_INTERVAL_SECONDS,
    THROUGHPUT_TIERS,
    Pacer,
    RateLimit,
)
from waflow.testing import FakeGraphAPI, FrozenClock

SENDER = "106540352242922"
OTHER_SENDER = "106540352242923"
CUSTOMER = "4915112345678"
OTHER_CUSTOMER = "4915187654321"
_NS = 1_000_000_000


def busiest_second(times: Sequence[float]) -> int:
    """The most sends in any window [t, t + 1 s).

    Counted on whole nanoseconds, the clock's own unit, so that float sums like 0.1 + 0.2 do not
    move a send across a window's edge.
    """
    ordered = sorted(round(t * _NS) for t in times)
    return max(
        (bisect.bisect_left(ordered, start + _NS) - i for i, start in enumerate(ordered)),
        default=0,
    )


def seconds_since(start: datetime, moments: Sequence[datetime]) -> list[float]:
    return [(moment - start).total_seconds() for moment in moments]


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def small_switch_interval() -> Iterator[None]:
    """Switch threads as often as possible, so races have every chance to show."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


def test_busiest_second_counts_a_half_open_window() -> None:
    assert busiest_second([0.0, 0.5, 0.999, 1.0]) == 3
    assert busiest_second([0.0, 0.0, 0.0]) == 3
    assert busiest_second([]) == 0


# -- throughput -----------------------------------------------------------------------------------


def test_thousand_sends_at_80_per_second_take_at_least_12_4_seconds(clock: FrozenClock) -> None:
    pacer = Pacer(80, window_margin=0, clock=clock)

    times = []
    for _ in range(1000):
        pacer.wait(SENDER)
        times.append(clock.monotonic())

    assert times[-1] >= 12.4
    assert times[-1] == pytest.approx(999 / 80)  # and not slower than needed
    assert busiest_second(times) <= 80
    assert sum(clock.sleeps) == pytest.approx(times[-1])


async def test_thousand_async_sends_at_80_per_second_take_at_least_12_4_seconds(
    clock: FrozenClock,
) -> None:
    pacer = Pacer(80, clock=clock)

    times = []
    for _ in range(1000):
        await pacer.await_turn(SENDER)
        times.append(clock.monotonic())

    assert times[-1] >= 12.4
    assert busiest_second(times) <= 80


def record_departures(pacer: Pacer, clock: FrozenClock) -> list[float]:
    """The clock's reading at every send the pacer let go (each successful ``depart``)."""
    departures: list[float] = []
    depart = pacer.depart

    def recording(sender: str) -> float:
        wait = depart(sender)
        if wait == 0:
            departures.append(clock.monotonic())
        return wait

    pacer.depart = recording  # type: ignore[method-assign]
    return departures


async def test_concurrent_async_senders_share_the_limit(clock: FrozenClock) -> None:
    pacer = Pacer(80, clock=clock)
    departures = record_departures(pacer, clock)

    await asyncio.gather(*(pacer.await_turn(SENDER) for _ in range(1000)))

    assert len(departures) == 1000
    assert max(departures) >= 12.4
    assert busiest_second(departures) <= 80


class LateClock(FrozenClock):
    """A FrozenClock whose every ``late_every``-th sleep overshoots by ``lateness`` seconds: a
    sender woken late by a busy event loop or a garbage-collection pause."""

    def __init__(self, lateness: float, late_every: int) -> None:
        super().__init__()
        self.lateness = lateness
        self.late_every = late_every
        self._sleeps = 0

    def sleep(self, seconds: float) -> None:
        self._sleeps += 1
        overshoot = self.lateness if self._sleeps % self.late_every == 0 else 0.0
        super().sleep(seconds + overshoot)


def test_a_send_woken_late_does_not_let_the_next_one_crowd_it() -> None:
    # A sender that wakes 12 ms after its slot must not be followed 0.5 ms later by the next
    # slot's sender: that is how 81 sends got into one second on a busy machine.
    clock = LateClock(lateness=0.012, late_every=7)
    pacer = Pacer(80, window_margin=0, clock=clock)

    times = []
    for _ in range(1000):
        pacer.wait(SENDER)
        times.append(clock.monotonic())

    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert min(gaps) >= 1 / 160 - 1e-9  # catching up, at most twice the rate
    assert busiest_second(times) <= 80
    # The next send catches up: the late wake-ups (about 1.9 s together) are not added up.
    total_lateness = (clock._sleeps // 7) * 0.012
    assert times[-1] - 999 / 80 < 0.1 * total_lateness


async def test_an_async_send_woken_late_does_not_let_the_next_one_crowd_it() -> None:
    clock = LateClock(lateness=0.010, late_every=5)
    pacer = Pacer(80, window_margin=0, clock=clock)

    times = []
    for _ in range(500):
        await pacer.await_turn(SENDER)
        times.append(clock.monotonic())

    assert busiest_second(times) <= 80
    assert min(b - a for a, b in itertools.pairwise(times)) >= 1 / 160 - 1e-9
    assert times[-1] - 499 / 80 < 0.02


def concurrent_departures(
    pacer: Pacer, clock: FrozenClock, count: int, lateness: Callable[[float, int], float]
) -> list[float]:
    """When ``count`` sends booked at once (as the outbox's concurrent senders book them) go out,
    each waking ``lateness(wake, i)`` seconds after the moment it asked to wake.

    A discrete-event run on the frozen clock: every wake-up calls ``depart``, and a refused send
    sleeps the time it was told and asks again.
    """
    wakes: list[tuple[float, int]] = []
    for i in range(count):
        wake = clock.monotonic() + pacer.reserve(SENDER)
        heapq.heappush(wakes, (wake + lateness(wake, i), i))
    departures = []
    while wakes:
        at, i = heapq.heappop(wakes)
        clock.advance(max(0.0, at - clock.monotonic()))
        wait = pacer.depart(SENDER)
        if wait == 0:
            departures.append(clock.monotonic())
        else:
            wake = clock.monotonic() + wait
            heapq.heappush(wakes, (wake + lateness(wake, i), i))
    return departures


def test_late_wake_ups_of_concurrent_senders_are_caught_up_within_the_limit(
    clock: FrozenClock,
) -> None:
    # Every 7th send wakes 9 ms late (a busy event loop): the sends after it catch up, so the
    # drain takes what 1,000 slots take (with the sends refused and retried, the late wake-ups
    # add up to far more than a second), and no second ever holds more than 80 sends.
    def lateness(wake: float, i: int) -> float:
        return 0.009 if i % 7 == 0 else 0.0

    departures = concurrent_departures(
        Pacer(80, window_margin=0, clock=clock), clock, 1000, lateness
    )

    assert len(departures) == 1000
    assert busiest_second(departures) <= 80
    assert min(b - a for a, b in itertools.pairwise(departures)) >= 1 / 160 - 1e-9
    assert max(departures) <= 999 / 80 + 0.009 + 1e-6


def test_a_stall_of_every_sender_costs_its_length_once(clock: FrozenClock) -> None:
    # The whole loop stalls for half a second once (a long garbage collection) besides the late
    # wake-ups. At most 80 in any second means a second after the stall can't make up for it:
    # the drain ends half a second later, not later still.
    def lateness(wake: float, i: int) -> float:
        stall = 3.0 - wake if 2.5 <= wake < 3.0 else 0.0
        return stall + (0.009 if i % 7 == 0 else 0.0)

    departures = concurrent_departures(
        Pacer(80, window_margin=0, clock=clock), clock, 1000, lateness
    )

    assert len(departures) == 1000
    assert busiest_second(departures) <= 80
    assert max(departures) <= 999 / 80 + 0.5 + 0.009 + 1e-6


@pytest.mark.parametrize("rate", THROUGHPUT_TIERS)
def test_a_stalled_sender_never_puts_more_than_the_tier_into_a_second(
    rate: int, clock: FrozenClock
) -> None:
    # After a stall, every overdue send wakes at once: they go out as fast as the window allows.
    def lateness(wake: float, i: int) -> float:
        return 0.8 - wake if 0.5 <= wake < 0.8 else 0.0

    departures = concurrent_departures(Pacer(rate, clock=clock), clock, 3 * rate, lateness)

    assert len(departures) == 3 * rate
    assert busiest_second(departures) <= rate


def test_burst_allows_back_to_back_departures_within_the_window(clock: FrozenClock) -> None:
    pacer = Pacer(80, burst=5, window_margin=0, clock=clock)

    assert [pacer.depart(SENDER) for _ in range(84)] == [0.0] * 84
    assert pacer.depart(SENDER) == pytest.approx(1.0)  # 84 = 80 + 5 - 1 in the window


def test_slow_rates_count_over_a_longer_window(clock: FrozenClock) -> None:
    pacer = Pacer(0.5, window_margin=0, clock=clock)  # one send per two seconds

    assert pacer.depart(SENDER) == 0.0
    assert pacer.depart(SENDER) == pytest.approx(2.0)


def test_the_window_margin_keeps_the_tier_where_sends_arrive_unevenly(clock: FrozenClock) -> None:
    # A send reaches Meta some time after it left, not always the same time: up to 8 ms here.
    # Counted without a margin, 81 sends then arrive within one second; with the default, never.
    jitter = random.Random(5)
    arrive_after = [jitter.uniform(0, 0.008) for _ in range(2000)]

    def arrivals(pacer: Pacer) -> list[float]:
        departures = concurrent_departures(pacer, clock, 2000, lambda wake, i: 0.0)
        return [left + arrive_after[i] for i, left in enumerate(departures)]

    assert busiest_second(arrivals(Pacer(80, window_margin=0, clock=clock))) > 80
    assert busiest_second(arrivals(Pacer(80, clock=clock))) <= 80


@pytest.mark.parametrize("rate", THROUGHPUT_TIERS)
def test_the_default_window_margin_costs_its_fraction_of_the_tier(
    rate: int, clock: FrozenClock
) -> None:
    pacer = Pacer(rate, clock=clock)

    departures = concurrent_departures(pacer, clock, 3 * rate + 1, lambda wake, i: 0.0)

    assert busiest_second(departures) <= rate
    assert max(departures) == pytest.approx(3 * (1 + DEFAULT_WINDOW_MARGIN))
    assert DEFAULT_WINDOW_MARGIN <= 0.03  # the drains' target is 95 % of the tier


def test_the_default_margin_absorbs_a_pause_of_twenty_milliseconds(clock: FrozenClock) -> None:
    # The process paused for 20 ms after the check of one send in forty, before the request
    # reached the transport (a busy VM): 10 ms of margin let 81 sends arrive within a second.
    pause = random.Random(11)
    arrive_after = [0.02 if pause.random() < 0.025 else 0.0 for _ in range(2000)]

    def arrivals(pacer: Pacer) -> list[float]:
        departures = concurrent_departures(pacer, clock, 2000, lambda wake, i: 0.0)
        return [left + arrive_after[i] for i, left in enumerate(departures)]

    assert busiest_second(arrivals(Pacer(80, window_margin=0.01, clock=clock))) > 80
    assert busiest_second(arrivals(Pacer(80, clock=clock))) <= 80


def test_a_negative_window_margin_is_refused() -> None:
    with pytest.raises(ValueError, match="window_margin"):
        Pacer(80, window_margin=-0.1)


def test_depart_says_how_long_to_wait_and_counts_nothing_then(clock: FrozenClock) -> None:
    pacer = Pacer(80, clock=clock)

    assert pacer.depart(SENDER) == 0.0
    wait = pacer.depart(SENDER)
    assert wait == pytest.approx(1 / 160)  # half a slot: a late send's successor may catch up
    assert pacer.depart(SENDER) == pytest.approx(1 / 160)  # the refused call counted nothing
    clock.advance(wait)
    assert pacer.depart(SENDER) == 0.0
    assert pacer.depart(OTHER_SENDER) == 0.0  # another number has its own limit


def test_thousand_sends_through_a_client_at_80_per_second(clock: FrozenClock) -> None:
    fake = FakeGraphAPI(clock=clock)
    wa = fake.whatsapp(throughput=80)
    start = clock.now()

    results = [wa.send_text(f"49151{i:08d}", f"Nachricht {i}") for i in range(1000)]

    times = seconds_since(start, [r.at for r in fake.requests])
    assert len(fake.sent) == 1000
    assert all(r.retries_taken == 0 for r in results)
    assert times[-1] >= 12.4
    assert busiest_second(times) <= 80


async def test_thousand_sends_through_an_async_client_at_80_per_second(
    clock: FrozenClock,
) -> None:
    fake = FakeGraphAPI(clock=clock)
    wa = fake.async_whatsapp(throughput=80)
    start = clock.now()

    for i in range(1000):
        await wa.send_text(f"49151{i:08d}", f"Nachricht {i}")

    times = seconds_since(start, [r.at for r in fake.requests])
    assert len(fake.sent) == 1000
    assert times[-1] >= 12.4
    assert busiest_second(times) <= 80
    await wa.aclose()


def test_client_with_a_throughput_sleeps_between_sends(clock: FrozenClock) -> None:
    fake = FakeGraphAPI(clock=clock)
    wa = fake.whatsapp(throughput=80)

    for i in range(3):
        wa.send_text(CUSTOMER, f"Nachricht {i}")

    assert clock.sleeps == [pytest.approx(1 / 80)] * 2


@pytest.mark.parametrize("rate", THROUGHPUT_TIERS)
def test_each_throughput_tier_is_kept(rate: int, clock: FrozenClock) -> None:
    pacer = Pacer(rate, window_margin=0, clock=clock)
    sends = 3 * rate + 1

    times = []
    for _ in range(sends):
        pacer.wait(SENDER)
        times.append(clock.monotonic())

    assert times[-1] == pytest.approx(3.0)
    assert busiest_second(times) == rate


def test_senders_are_paced_independently(clock: FrozenClock) -> None:
    pacer = Pacer(20, clock=clock)

    first = [pacer.reserve(SENDER) for _ in range(3)]
    second = [pacer.reserve(OTHER_SENDER) for _ in range(3)]

    assert first == second == [0.0, 0.05, 0.1]


def test_burst_goes_at_once_then_sends_are_spaced(clock: FrozenClock) -> None:
    pacer = Pacer(80, burst=10, clock=clock)

    delays = [pacer.reserve(SENDER) for _ in range(12)]

    assert delays[:10] == [0.0] * 10
    assert delays[10:] == [pytest.approx(1 / 80), pytest.approx(2 / 80)]


def test_burst_refills_after_a_quiet_spell(clock: FrozenClock) -> None:
    pacer = Pacer(80, burst=10, clock=clock)
    for _ in range(10):
        pacer.wait(SENDER)

    clock.advance(10 / 80)

    assert [pacer.reserve(SENDER) for _ in range(10)] == [0.0] * 10
    assert pacer.reserve(SENDER) > 0


def test_sustained_rate_with_a_burst_is_the_rate(clock: FrozenClock) -> None:
    pacer = Pacer(80, burst=10, clock=clock)

    times = []
    for _ in range(810):
        pacer.wait(SENDER)
        times.append(clock.monotonic())

    # The burst is borrowed from later quota: 800 spaced sends after the first 10.
    assert times[-1] == pytest.approx(800 / 80)
    assert busiest_second(times) <= 80 + 10 - 1


@pytest.mark.parametrize("rate", [0, -1, float("inf"), float("nan")])
def test_invalid_rate_is_refused(rate: float) -> None:
    with pytest.raises(ValueError, match="rate"):
        RateLimit(rate)


def test_burst_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="burst"):
        Pacer(80, burst=0)


# -- pair pacing ----------------------------------------------------------------------------------


def test_pair_pacing_allows_a_burst_then_one_per_six_seconds(clock: FrozenClock) -> None:
    pacer = Pacer(1000, pair_pacing=True, pair_burst=3, clock=clock)

    times = []
    for _ in range(8):
        pacer.wait(SENDER, CUSTOMER)
        times.append(clock.monotonic())

    burst, sustained = times[:3], times[3:]
    assert burst[-1] < 0.01
    gaps = [b - a for a, b in itertools.pairwise(sustained)]
    assert gaps == [pytest.approx(PAIR_INTERVAL_SECONDS)] * len(gaps)
    assert sustained[0] == pytest.approx(PAIR_INTERVAL_SECONDS)


def test_pair_pacing_default_burst_is_sustained_at_six_seconds(clock: FrozenClock) -> None:
    pacer = Pacer(pair_pacing=True, clock=clock)

    times = []
    for _ in range(30):
        pacer.wait(SENDER, CUSTOMER)
        times.append(clock.monotonic())

    # Over any stretch after the burst, one message per six seconds to the customer.
    assert times[-1] - times[10] == pytest.approx(19 * PAIR_INTERVAL_SECONDS)
    assert times[9] < 1.0


def test_pair_pacing_applies_only_per_sender_and_recipient(clock: FrozenClock) -> None:
    pacer = Pacer(1000, pair_pacing=True, pair_burst=1, clock=clock)

    assert pacer.reserve(SENDER, CUSTOMER) == 0.0
    waited = pacer.reserve(SENDER, CUSTOMER)
    assert waited == pytest.approx(PAIR_INTERVAL_SECONDS, abs=0.01)
    # Another customer of the same number, and the same customer of another number, go now.
    assert pacer.reserve(SENDER, OTHER_CUSTOMER) < 0.01
    assert pacer.reserve(OTHER_SENDER, CUSTOMER) == 0.0
    # A send without a recipient is paced by throughput only.
    assert pacer.reserve(SENDER) < 0.01


def test_without_pair_pacing_one_customer_is_paced_by_throughput_only(
    clock: FrozenClock,
) -> None:
    pacer = Pacer(80, clock=clock)

    delays = [pacer.reserve(SENDER, CUSTOMER) for _ in range(20)]

    assert delays[-1] == pytest.approx(19 / 80)


def test_pair_pacing_is_kept_while_another_number_is_backlogged(clock: FrozenClock) -> None:
    """Housekeeping of old pair slots must not forget a pair whose next slot is still ahead."""
    pacer = Pacer(100, pair_pacing=True, pair_burst=1, clock=clock)
    assert pacer.reserve(OTHER_SENDER, CUSTOMER) == 0.0

    # A big campaign from another number, to many customers, books slots far into the future.
    for i in range(5000):
        pacer.reserve(SENDER, f"49160{i:08d}")

    assert pacer.reserve(OTHER_SENDER, CUSTOMER) == pytest.approx(PAIR_INTERVAL_SECONDS)


# -- threads --------------------------------------------------------------------------------------


@pytest.mark.usefixtures("small_switch_interval")
def test_threads_sharing_a_pacer_never_exceed_the_rate(clock: FrozenClock) -> None:
    pacer = Pacer(80, clock=clock)
    slots: list[float] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def sender() -> None:
        start.wait()
        booked = [pacer.reserve(SENDER) for _ in range(250)]
        with lock:
            slots.extend(booked)

    threads = [threading.Thread(target=sender) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # The clock stood still: each delay is the slot itself, and every slot is taken once.
    ordered = sorted(slots)
    assert len(ordered) == 2000
    assert ordered == pytest.approx([i / 80 for i in range(2000)])
    assert busiest_second(ordered) <= 80


@pytest.mark.usefixtures("small_switch_interval")
def test_threads_waiting_on_a_pacer_never_exceed_the_rate(clock: FrozenClock) -> None:
    pacer = Pacer(80, clock=clock)
    slots: list[float] = []
    lock = threading.Lock()

    def sender() -> None:
        for _ in range(100):
            # Reading the clock, booking and sleeping are one step: a FrozenClock shared by threads
            # adds up concurrent sleeps, so a sleep outside the lock would move another thread's
            # clock between its reading and its booking, and the computed send time would be wrong.
            with lock:
                delay = pacer.wait(SENDER)
                slots.append(clock.monotonic())
            assert delay >= 0

    threads = [threading.Thread(target=sender) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(slots) == 600
    assert busiest_second(slots) <= 80
    assert max(slots) >= 599 / 80 - 1e-9


def test_repr_names_the_limits() -> None:
    assert repr(Pacer(80, pair_pacing=True)) == "Pacer(throughput=80/s, pair_pacing=on)"
    assert Pacer(1000).throughput == 1000


@pytest.mark.parametrize("rate", [80.9, 1.5, 2.5])
def test_a_fractional_rate_never_puts_more_than_its_whole_part_into_a_second(
    rate: float, clock: FrozenClock
) -> None:
    departures = concurrent_departures(
        Pacer(rate, window_margin=0, clock=clock), clock, 4 * int(rate) + 1, lambda wake, i: 0.0
    )

    assert busiest_second(departures) <= int(rate)
