"""The send guard reads a claimed batch's customers in one store call, never staler than 1 s."""

from __future__ import annotations

from collections import Counter
from typing import Any

from waflow.flows.engine import SEND_GUARD_FRESHNESS_SECONDS, Engine
from waflow.outbox import DrainReport, Outbox
from waflow.store import MemoryStore, Store
from waflow.store.base import OutboxItem
from waflow.testing import FakeGraphAPI, FrozenClock
from waflow.webhooks import parse

from .engine_flows import EchoFlow


class Counting:
    """Wraps a store: counts the calls of each method; ``fail`` names methods that raise once."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.calls: Counter[str] = Counter()
        self.fail: set[str] = set()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._store, name)

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            if name in self.fail:
                self.fail.discard(name)
                raise ConnectionError(f"the store is away ({name})")
            return await method(*args, **kwargs)

        return counted


class Setup:
    def __init__(self) -> None:
        self.clock = FrozenClock()
        self.fake = FakeGraphAPI(clock=self.clock)
        self.store = Counting(MemoryStore())
        store: Any = self.store
        self.engine = Engine(
            EchoFlow, store=store, clock=self.clock, whatsapp_number=self.fake.phone_number_id
        )
        self.outbox = Outbox(
            store,
            whatsapp=self.fake.async_whatsapp(),
            clock=self.clock,
            guard=self.engine.send_guard,
            prefetch=self.engine.prefetch_for_send,
        )

    async def customer_writes(self, n: int, text: str = "Hallo") -> None:
        event = parse(self.fake.inbound.whatsapp_text(f"49170000{n:04d}", text))[0]
        await self.engine.handle(event)

    async def claim_one(self) -> OutboxItem:
        [item] = await self.store._store.outbox_claim(self.clock.now(), 30, "test", 1)
        return item


async def test_a_drain_reads_each_batchs_customers_in_one_call() -> None:
    setup = Setup()
    for n in range(5):
        await setup.customer_writes(n)
    setup.store.calls.clear()

    assert await setup.outbox.drain() == DrainReport(sent=5)

    assert setup.store.calls["documents_get"] == 1
    assert setup.store.calls["document_get"] == 0
    assert len(setup.fake.sent.on("whatsapp")) == 5


async def test_a_read_ahead_older_than_the_freshness_bound_is_read_again() -> None:
    setup = Setup()
    await setup.customer_writes(1)
    item = await setup.claim_one()
    message = object()

    await setup.engine.prefetch_for_send([item])
    setup.clock.advance(SEND_GUARD_FRESHNESS_SECONDS)
    assert await setup.engine.send_guard(item, message) is message
    assert setup.store.calls["document_get"] == 0  # exactly at the bound: still used

    await setup.engine.prefetch_for_send([item])
    setup.clock.advance(SEND_GUARD_FRESHNESS_SECONDS + 0.001)
    assert await setup.engine.send_guard(item, message) is message
    assert setup.store.calls["document_get"] == 1


async def test_a_read_ahead_serves_one_send_only() -> None:
    setup = Setup()
    await setup.customer_writes(1)
    item = await setup.claim_one()
    await setup.engine.prefetch_for_send([item])

    await setup.engine.send_guard(item, object())
    await setup.engine.send_guard(item, object())

    assert setup.store.calls["document_get"] == 1


async def test_the_guard_reads_a_customer_again_after_the_engine_saved_it() -> None:
    setup = Setup()
    await setup.customer_writes(1)
    item = await setup.claim_one()
    await setup.engine.prefetch_for_send([item])

    await setup.customer_writes(1, "noch was")  # saves the customer: the read-ahead is stale
    calls_before = setup.store.calls["document_get"]
    await setup.engine.send_guard(item, object())

    assert setup.store.calls["document_get"] == calls_before + 1


async def test_a_failed_read_ahead_only_costs_the_shortcut() -> None:
    setup = Setup()
    for n in range(3):
        await setup.customer_writes(n)
    setup.store.calls.clear()
    setup.store.fail.add("documents_get")

    assert await setup.outbox.drain() == DrainReport(sent=3)
    assert setup.store.calls["document_get"] == 3  # each guard read for itself
