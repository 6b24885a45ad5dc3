"""How many store calls a webhook costs, and that the shortcuts keep every guarantee.

A new event is recorded and leased in one call (``Store.inbox_add_claim``) and settled in one
more (``inbox_complete``, which says whether the customer has more waiting): no extra claim. A
store that offers neither shortcut (written before them) still gets every event handled, in order.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import pytest

from tests.store_support import Counting
from waflow import App
from waflow.events import Event
from waflow.inbox import Inbox, customer_key
from waflow.routing import HandlerContext
from waflow.store import MemoryStore, SQLiteStore, Store
from waflow.store.base import NewInboxItem
from waflow.testing import FakeGraphAPI, FrozenClock
from waflow.webhooks import parse

CUSTOMER = "4915112345678"


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def fake(clock: FrozenClock) -> FakeGraphAPI:
    return FakeGraphAPI(clock=clock)


def make_app(fake: FakeGraphAPI, clock: FrozenClock, store: Any) -> tuple[App, list[str]]:
    app = App(app_secret=fake.app_secret, store=store, clock=clock)
    handled: list[str] = []

    @app.message()
    async def record(event: Event, _ctx: HandlerContext) -> None:
        handled.append(getattr(event, "text", None) or event.id)

    return app, handled


class _Legacy:
    """A store as written before ``inbox_add_claim`` and the answer of ``inbox_complete``."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        if name in ("inbox_add_claim", "inbox_renew", "keeps_objects"):
            raise AttributeError(name)
        return getattr(self._store, name)

    async def inbox_complete(self, key: str, owner: str) -> None:
        await self._store.inbox_complete(key, owner)


class _WithoutRenewal:
    """A store as written before ``inbox_renew`` (it records and leases in one call)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        if name == "inbox_renew":
            raise AttributeError(name)
        return getattr(self._store, name)


async def test_a_new_event_costs_one_record_and_one_settlement(
    each_store: Store, fake: FakeGraphAPI, clock: FrozenClock
) -> None:
    store = Counting(each_store)
    app, handled = make_app(fake, clock, store)

    response = await app.dispatch(fake.webhook_request(fake.inbound.whatsapp_text(CUSTOMER, "a")))

    assert response.status == 200 and handled == ["a"]
    assert store.calls["inbox_add_claim"] == 1
    assert store.calls["inbox_complete"] == 1
    # recorded and leased at once, and told nothing more waits: no claim at all
    assert store.calls["inbox_add"] == store.calls["inbox_claim"] == 0


async def test_two_events_of_one_customer_in_one_body_take_one_claim_between_them(
    each_store: Store, fake: FakeGraphAPI, clock: FrozenClock
) -> None:
    store = Counting(each_store)
    app, handled = make_app(fake, clock, store)
    body = fake.inbound.batch(
        fake.inbound.whatsapp_text(CUSTOMER, "first"),
        fake.inbound.whatsapp_text(CUSTOMER, "second"),
    )

    await app.dispatch(fake.webhook_request(body))

    assert handled == ["first", "second"]
    # the first was leased while recording; the second waited behind it and is claimed after
    assert (store.calls["inbox_add_claim"], store.calls["inbox_claim"]) == (1, 1)
    assert store.calls["inbox_complete"] == 2


@pytest.mark.parametrize("legacy", [False, True], ids=["shortcuts", "legacy store"])
async def test_an_event_left_waiting_is_handled_before_a_newer_one_of_its_customer(
    each_store: Store, fake: FakeGraphAPI, clock: FrozenClock, legacy: bool
) -> None:
    store: Any = _Legacy(each_store) if legacy else each_store
    app, handled = make_app(fake, clock, store)
    older = fake.webhook_request(fake.inbound.whatsapp_text(CUSTOMER, "older"))
    newer = fake.webhook_request(fake.inbound.whatsapp_text(CUSTOMER, "newer"))

    assert (await app.dispatch(older, process=False)).status == 200  # recorded, not handled
    await app.dispatch(newer)

    assert handled == ["older", "newer"]
    assert await app.run_pending() == 0  # nothing left behind


async def test_events_recorded_without_processing_are_not_leased(
    each_store: Store, fake: FakeGraphAPI, clock: FrozenClock
) -> None:
    app, handled = make_app(fake, clock, each_store)
    request = fake.webhook_request(fake.inbound.whatsapp_text(CUSTOMER, "later"))

    await app.dispatch(request, process=False)

    assert handled == []
    # a lease taken while recording would hold the event back for its 30 s
    assert await app.run_pending() == 1 and handled == ["later"]


async def test_the_memory_store_keeps_the_parsed_event_itself(
    fake: FakeGraphAPI, clock: FrozenClock
) -> None:
    app = App(app_secret=fake.app_secret, store=MemoryStore(), clock=clock, retry_delays=())
    seen: list[Event] = []

    @app.message()
    async def broken(event: Event, _ctx: HandlerContext) -> None:
        seen.append(event)
        raise RuntimeError("boom")

    await app.dispatch(fake.webhook_request(fake.inbound.whatsapp_text(CUSTOMER, "hi")))

    [dead] = await app.dead_letters()
    assert dead.event is seen[0]  # nothing serialized, nothing rebuilt


async def test_a_durable_store_gets_the_event_as_json(
    tmp_path: Any, fake: FakeGraphAPI, clock: FrozenClock
) -> None:
    written: list[NewInboxItem] = []

    class Spy(SQLiteStore):
        async def inbox_add_claim(
            self, items: Any, now: Any, lease_seconds: float, owner: str
        ) -> Any:
            written.extend(items)
            return await super().inbox_add_claim(items, now, lease_seconds, owner)

    store = Spy(tmp_path / "spy.db")
    app, handled = make_app(fake, clock, store)
    await app.dispatch(fake.webhook_request(fake.inbound.whatsapp_text(CUSTOMER, "hi")))
    await store.close()

    assert handled == ["hi"]
    [item] = written
    assert set(item.event) == {"type", "data"} and item.event["data"]["text"] == "hi"


async def test_a_slow_first_handler_of_a_batch_does_not_get_a_later_event_handled_twice(
    each_store: Store, fake: FakeGraphAPI, clock: FrozenClock
) -> None:
    """Only the first event is leased while recording: the next customer's event is claimed
    when its turn comes. Had it been leased at once, its lease would have run out during a slow
    first handler, another worker would have handled it, and this one would have again."""
    app = App(app_secret=fake.app_secret, store=each_store, clock=clock)
    handled: list[str] = []
    body = fake.inbound.batch(
        fake.inbound.whatsapp_text("4915100000001", "anna"),
        fake.inbound.whatsapp_text("4915100000002", "ben"),
    )
    ben = customer_key(parse(body)[1])

    @app.message()
    async def slow_for_anna(event: Event, _ctx: HandlerContext) -> None:
        handled.append(getattr(event, "text", ""))
        if event.sender_id == "4915100000001":
            clock.advance(seconds=45)  # longer than a lease: the Graph API was slow
            await app.inbox.process([ben])  # meanwhile another worker looks at ben's queue

    await app.dispatch(fake.webhook_request(body))

    assert handled == ["anna", "ben"]


async def test_a_lease_mostly_gone_before_handling_is_renewed_and_used(
    each_store: Store, fake: FakeGraphAPI, clock: FrozenClock
) -> None:
    app, handled = make_app(fake, clock, each_store)
    [event] = _parsed(fake, "late")
    receipt = await app.inbox.receive([event], claim=True)
    assert receipt.leased is not None and receipt.leased.key == event.dedupe_key

    clock.advance(seconds=20)  # the 200 took 20 s to send: 10 s of a 30 s lease are left
    assert await app.inbox.handle_new(receipt) == 1  # renewed first, then handled
    assert handled == ["late"]
    item = await each_store.inbox_get(event.dedupe_key)
    # One attempt, its own: not taken for a stopped worker's (LEASE_RAN_OUT) later on.
    assert item is not None and (item.state, item.attempts, item.last_error) == ("done", 1, None)


async def test_without_renewal_a_lease_mostly_gone_is_not_used(
    each_store: Store, fake: FakeGraphAPI, clock: FrozenClock
) -> None:
    app, handled = make_app(fake, clock, _WithoutRenewal(each_store))
    [event] = _parsed(fake, "late")
    receipt = await app.inbox.receive([event], claim=True)
    assert receipt.leased is not None

    clock.advance(seconds=20)
    assert await app.inbox.handle_new(receipt) == 0  # not on what is left of that lease
    assert await app.run_pending() == 0  # still leased: nobody takes it yet

    clock.advance(seconds=11)  # the lease has run out
    assert await app.run_pending() == 1 and handled == ["late"]


async def test_receive_leases_nothing_unless_asked(
    each_store: Store, fake: FakeGraphAPI, clock: FrozenClock
) -> None:
    app, handled = make_app(fake, clock, each_store)
    receipt = await app.inbox.receive(_parsed(fake, "plain"))

    assert receipt.leased is None and receipt.fresh == [True]
    # nothing held: handled by whoever processes the customer, with or without the receipt
    assert await app.inbox.process(receipt.customers) == 1 and handled == ["plain"]


def _parsed(fake: FakeGraphAPI, text: str) -> list[Event]:
    return parse(fake.inbound.whatsapp_text(CUSTOMER, text))


class _SlowRace:
    """Two workers on one store: ``first`` handles slowly (0.8 s against a 0.3 s lease) while
    ``second`` polls for due events every 50 ms; which events did each of them handle?"""

    def __init__(self, store: Any) -> None:
        self.first_calls: list[str] = []
        self.second_calls: list[str] = []
        self.first = Inbox(store, self._slow, lease_seconds=0.3, owner="first")
        self.second = Inbox(store, self._other, lease_seconds=0.3, owner="second")

    async def _slow(self, event: Event) -> None:
        self.first_calls.append(event.id)
        await asyncio.sleep(0.8)

    async def _other(self, event: Event) -> None:
        self.second_calls.append(event.id)

    async def run(self, *handling: Awaitable[int]) -> list[int]:
        async def poll() -> int:
            for _ in range(20):
                await self.second.process()
                await asyncio.sleep(0.05)
            return 0

        return list(await asyncio.gather(*handling, poll()))[:-1]


async def test_a_handler_that_outlives_its_lease_keeps_it(each_store: Store) -> None:
    """The inbox renews the lease while the handler runs, so another worker polling the same
    store never takes the event."""
    race = _SlowRace(each_store)
    [event] = parse(FakeGraphAPI(seed=5).inbound.whatsapp_text(CUSTOMER, "slow"))
    await race.first.record([event])

    assert await race.run(race.first.process()) == [1]
    assert (race.first_calls, race.second_calls) == ([event.id], [])
    assert await race.second.process() == 0


async def test_without_renewal_a_slow_handler_loses_its_event_to_another_worker(
    each_store: Store,
) -> None:
    """What the renewal prevents, shown on a store without ``inbox_renew``."""
    race = _SlowRace(_Legacy(each_store))
    [event] = parse(FakeGraphAPI(seed=6).inbound.whatsapp_text(CUSTOMER, "slow"))
    await race.first.record([event])

    await race.run(race.first.process())
    assert race.second_calls == [event.id]  # taken over once the first lease ran out


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_handlers_on_two_event_loops_keep_their_leases(kind: str, tmp_path: Path) -> None:
    """One inbox serving two threads, each with a loop of its own (``App.dispatch_sync`` under a
    threaded WSGI server): the quick request's loop ends while the slow handler still runs on
    the other, whose lease must go on being renewed there. Another worker polls meanwhile."""
    store: Store = MemoryStore() if kind == "memory" else SQLiteStore(tmp_path / "w.db")
    fake = FakeGraphAPI(seed=8)
    slow, quick = (
        *parse(fake.inbound.whatsapp_text("4915100000021", "slow")),
        *parse(fake.inbound.whatsapp_text("4915100000022", "quick")),
    )
    first_calls: list[str] = []
    second_calls: list[str] = []

    async def first_handler(event: Event) -> None:
        first_calls.append(event.id)
        await asyncio.sleep(0.9 if event.id == slow.id else 0.05)

    async def second_handler(event: Event) -> None:
        second_calls.append(event.id)

    first = Inbox(store, first_handler, lease_seconds=0.3, owner="first")
    second = Inbox(store, second_handler, lease_seconds=0.3, owner="second")
    asyncio.run(first.record([slow, quick]))

    def serve(event: Event) -> None:
        asyncio.run(first.process([customer_key(event)]))

    threads = [threading.Thread(target=serve, args=(event,)) for event in (slow, quick)]
    threads[0].start()
    time.sleep(0.05)
    threads[1].start()

    async def poll() -> None:
        await asyncio.sleep(0.15)  # both requests' handlers have started
        for _ in range(24):
            await second.process()
            await asyncio.sleep(0.05)

    asyncio.run(poll())
    for thread in threads:
        thread.join(timeout=5)
    assert sorted(first_calls + second_calls) == sorted([slow.id, quick.id])  # each once
    assert slow.id in first_calls and slow.id not in second_calls  # its lease was kept

    # Loops that were closed after their request are forgotten when the next one comes.
    [later] = parse(fake.inbound.whatsapp_text("4915100000023", "later"))
    asyncio.run(first.record([later]))
    serve(later)
    keeper = first._keeper
    assert keeper is not None and len(keeper._loops) <= 1
    asyncio.run(store.close())


async def test_one_timer_keeps_every_running_handlers_lease(each_store: Store) -> None:
    """Two slow handlers at once (one per customer), one renewal timer for both."""
    fake = FakeGraphAPI(seed=7)
    race = _SlowRace(each_store)
    events = [
        *parse(fake.inbound.whatsapp_text("4915100000011", "one")),
        *parse(fake.inbound.whatsapp_text("4915100000012", "two")),
    ]
    await race.first.record(events)
    one, two = (customer_key(event) for event in events)

    assert await race.run(race.first.process([one]), race.first.process([two])) == [1, 1]
    assert race.second_calls == []


class _DiesBeforeSettling:
    """A store whose first ``inbox_complete`` fails: as if the worker died right before it."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.failed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def inbox_complete(self, key: str, owner: str) -> bool | None:
        if not self.failed:
            self.failed = True
            raise ConnectionError("the worker died before settling the event")
        return await self._store.inbox_complete(key, owner)


async def test_a_handler_run_again_after_a_crash_queues_its_replies_once(
    each_store: Store,
) -> None:
    # Its replies were committed, then the worker died before the event was marked handled:
    # after the lease the handler runs again, and its replies (same ids) are not queued twice.
    clock = FrozenClock()
    fake = FakeGraphAPI(clock=clock)
    app = App(
        app_secret=fake.app_secret,
        store=_DiesBeforeSettling(each_store),  # type: ignore[arg-type]
        clock=clock,
        whatsapp=fake.async_whatsapp(),
    )
    runs = 0

    @app.message()
    async def answer(event: Event, ctx: HandlerContext) -> None:
        nonlocal runs
        runs += 1
        ctx.reply("Danke, wir melden uns!")
        ctx.reply("Bis gleich.")

    response = await app.dispatch(fake.webhook_request(fake.inbound.whatsapp_text(CUSTOMER, "Hi")))
    assert response.status == 200
    clock.advance(seconds=31)  # the lease runs out
    await app.run_pending()
    assert runs == 2  # at least once: the handler did run again
    assert fake.sent.texts() == ["Danke, wir melden uns!", "Bis gleich."]


async def test_an_event_whose_workers_keep_dying_is_dead_lettered_and_its_customer_goes_on(
    each_store: Store,
) -> None:
    # Each worker that took the first event stopped before settling it (it kills them: an OOM,
    # a segfault in a library). After the attempts are used up it is dead-lettered without
    # running again, and the customer's next event is handled.
    clock = FrozenClock()
    fake = FakeGraphAPI(seed=9, clock=clock)
    handled: list[str] = []

    async def handler(event: Event) -> None:
        handled.append(event.id)

    inbox = Inbox(each_store, handler, clock=clock, retry_delays=(1, 1), owner="survivor")
    assert inbox.max_attempts == 3
    poison, after = (
        *parse(fake.inbound.whatsapp_text(CUSTOMER, "poison")),
        *parse(fake.inbound.whatsapp_text(CUSTOMER, "next")),
    )
    await inbox.record([poison, after])
    customer = customer_key(poison)
    for number in range(3):  # three workers took it and died with it
        taken = await each_store.inbox_claim(customer, clock.now(), 30, f"dead-{number}")
        assert taken is not None and taken.key == poison.dedupe_key
        clock.advance(seconds=31)

    await inbox.process([customer])
    await inbox.process([customer])
    assert handled == [after.id]  # the poison was not run again
    (dead,) = await inbox.dead_letters()
    assert dead.key == poison.dedupe_key and dead.event.id == poison.id
    assert dead.last_error is not None and "worker stopped" in dead.last_error
