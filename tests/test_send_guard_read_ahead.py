"""The send guard reads a claimed batch's customers in one store call, never staler than 1 s."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from waflow.errors import WaflowError
from waflow.flows.engine import SEND_GUARD_FRESHNESS_SECONDS, Engine
from waflow.outbox import DrainReport, Outbox
from waflow.store import Commit, Document, MemoryStore, SQLiteStore, Store
from waflow.store.base import OutboxItem
from waflow.testing import FakeGraphAPI, FrozenClock
from waflow.webhooks import parse
from waflow.whatsapp import build

from .engine_flows import EchoFlow
from .store_support import Counting


class Setup:
    def __init__(self, store: Store) -> None:
        self.clock = FrozenClock()
        self.fake = FakeGraphAPI(clock=self.clock)
        self.store = Counting(store)
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


@pytest.fixture
def setup(each_store: Store) -> Setup:
    return Setup(each_store)


async def test_a_drain_reads_each_batchs_customers_in_one_call(setup: Setup) -> None:
    for n in range(5):
        await setup.customer_writes(n)
    setup.store.calls.clear()

    assert await setup.outbox.drain() == DrainReport(sent=5)

    assert setup.store.calls["documents_get"] == 1
    assert setup.store.calls["document_get"] == 0
    assert len(setup.fake.sent.on("whatsapp")) == 5


async def test_a_read_ahead_older_than_the_freshness_bound_is_read_again(setup: Setup) -> None:
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


async def test_a_read_ahead_serves_one_send_only(setup: Setup) -> None:
    await setup.customer_writes(1)
    item = await setup.claim_one()
    await setup.engine.prefetch_for_send([item])

    await setup.engine.send_guard(item, object())
    await setup.engine.send_guard(item, object())

    assert setup.store.calls["document_get"] == 1


async def test_the_guard_reads_a_customer_again_after_the_engine_saved_it(setup: Setup) -> None:
    await setup.customer_writes(1)
    item = await setup.claim_one()
    await setup.engine.prefetch_for_send([item])

    await setup.customer_writes(1, "noch was")  # saves the customer: the read-ahead is stale
    calls_before = setup.store.calls["document_get"]
    await setup.engine.send_guard(item, object())

    assert setup.store.calls["document_get"] == calls_before + 1


async def test_a_failed_read_ahead_only_costs_the_shortcut(setup: Setup) -> None:
    for n in range(3):
        await setup.customer_writes(n)
    setup.store.calls.clear()
    setup.store.fail["documents_get"] = {1}

    assert await setup.outbox.drain() == DrainReport(sent=3)
    assert setup.store.calls["document_get"] == 3  # each guard read for itself


async def test_a_read_ahead_answered_after_a_save_is_not_used(setup: Setup) -> None:
    # The read reaches the store before the engine saves the customer, and its answer comes
    # back after the save (a network round trip): that answer is older than the save.
    await setup.customer_writes(1)
    item = await setup.claim_one()
    answer_held = asyncio.Event()
    store: Any = setup.store._store
    documents_get = store.documents_get

    async def slow_documents_get(ids: Sequence[str]) -> dict[str, Document]:
        found = await documents_get(ids)
        await answer_held.wait()
        return found  # type: ignore[no-any-return]

    store.documents_get = slow_documents_get
    prefetch = asyncio.create_task(setup.engine.prefetch_for_send([item]))
    await asyncio.sleep(0)
    await setup.customer_writes(1, "noch was")  # the engine saves the customer meanwhile
    answer_held.set()
    await prefetch

    calls_before = setup.store.calls["document_get"]
    await setup.engine.send_guard(item, object())
    assert setup.store.calls["document_get"] == calls_before + 1


async def test_a_customer_the_engine_deletes_is_not_served_from_the_read_ahead(
    setup: Setup,
) -> None:
    await setup.customer_writes(1)
    item = await setup.claim_one()
    await setup.engine.prefetch_for_send([item])

    # What a merge does to the customer merged away (the public path needs two channels).
    await setup.engine._commit(Commit(delete=[item.customer]))
    calls_before = setup.store.calls["document_get"]
    # Read again, not served from the read-ahead: gone, and merged into nobody, so refused.
    with pytest.raises(WaflowError, match="no longer exists"):
        await setup.engine.send_guard(item, "message")

    assert setup.store.calls["document_get"] == calls_before + 1


async def test_messages_the_guard_does_not_check_are_not_read_ahead(setup: Setup) -> None:
    draft = setup.outbox.draft(
        build.text("4917000000001", "Ihre Bestellung"),
        channel="whatsapp",
        business_id=setup.fake.phone_number_id,
        customer="someone",
        checked=False,
    )
    await setup.store._store.commit(Commit(outbox=[draft]))

    assert await setup.outbox.drain() == DrainReport(sent=1)
    assert setup.store.calls["documents_get"] == 0
    assert setup.engine._read_ahead == {}


async def test_a_failed_sqlite_read_does_not_pin_the_reader_to_an_old_snapshot(
    tmp_path: Path,
) -> None:
    # A statement left open on the reader (its cursor kept alive by a traceback someone holds)
    # would keep showing the database as it was: claims would then find nothing due.
    path = tmp_path / "s.db"
    store = SQLiteStore(path)
    try:
        await store.commit(Commit(save=[Document("a", {}, 0), Document("b", {}, 0)]))
        raw = sqlite3.connect(path)
        raw.execute("UPDATE documents SET data = '{' WHERE id = 'a'")
        raw.commit()
        raw.close()
        with pytest.raises(ValueError, match="Expecting") as kept:  # its traceback stays alive
            await store.documents_get(["a", "b"])

        clock = FrozenClock()
        outbox = Outbox(store, clock=clock)
        draft = outbox.draft(
            build.text("4917000000001", "Hallo"), channel="whatsapp", business_id="1", customer="a"
        )
        await store.commit(Commit(outbox=[draft]))

        assert kept.value is not None
        assert len(await store.outbox_claim(clock.now(), 30, "w", 10)) == 1
    finally:
        await store.close()


async def test_a_store_without_documents_get_still_sends_every_message(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A Store written before documents_get existed: no read-ahead, no warning, each guard reads.
    class OlderStore:
        def __init__(self) -> None:
            self._store = MemoryStore()

        def __getattr__(self, name: str) -> Any:
            if name == "documents_get":
                raise AttributeError(name)
            return getattr(self._store, name)

    setup = Setup(OlderStore())  # type: ignore[arg-type]
    for n in range(3):
        await setup.customer_writes(n)
    setup.store.calls.clear()

    assert await setup.outbox.drain() == DrainReport(sent=3)
    assert setup.store.calls["document_get"] == 3
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]
