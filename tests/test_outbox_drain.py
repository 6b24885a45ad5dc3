"""The outbox's drain: a full pipe of sends, recorded in batches, keeping every guarantee.

Sends go through a stand-in client that can hold them (a closed gate), so the tests can look at a
drain in the middle: what is claimed, how many sends are under way, what is recorded.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from waflow import outbox as outbox_module
from waflow.errors import WaflowError
from waflow.messenger import build as messenger_build
from waflow.outbox import DrainReport, Outbox, outbox_id_from_callback
from waflow.store import Commit, MemoryStore, SQLiteStore, Store
from waflow.testing import FakeGraphAPI, FrozenClock
from waflow.whatsapp import build

from .store_support import Counting

PHONE = "106540352242922"


@pytest.fixture
def store(each_store: Store) -> Store:
    return each_store


class Client:
    """Stands in for an ``AsyncWhatsApp``: records each send; holds sends while ``gate`` is shut."""

    phone_number_id = PHONE

    def __init__(self, before_send: Callable[[int], Awaitable[None]] | None = None) -> None:
        self.sent: list[dict[str, Any]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.under_way = 0
        self.most_under_way = 0
        self.before_send = before_send

    async def send(self, message: Any) -> SimpleNamespace:
        self.under_way += 1
        self.most_under_way = max(self.most_under_way, self.under_way)
        try:
            await asyncio.sleep(0)  # every send yields, like a real one
            await self.gate.wait()
            if self.before_send is not None:
                await self.before_send(len(self.sent))
            self.sent.append(message.to_body())
            return SimpleNamespace(message_id=f"wamid.{len(self.sent)}")
        finally:
            self.under_way -= 1

    def texts_by_customer(self) -> dict[str, list[str]]:
        texts: dict[str, list[str]] = {}
        for body in self.sent:
            texts.setdefault(body["to"], []).append(body["text"]["body"])
        return texts


def queue(outbox: Outbox, customers: int, each: int = 1) -> Commit:
    """``each`` texts for every one of ``customers`` customers, queued in order."""
    items = [
        outbox.draft(
            build.text(f"4915100000{c:03d}", f"{c}:{n}"),
            channel="whatsapp",
            business_id=PHONE,
            customer=f"c{c}",
        )
        for n in range(each)
        for c in range(customers)
    ]
    return Commit(outbox=items)


async def until(condition: Callable[[], bool], what: str) -> None:
    """Let the drain run until ``condition`` holds (bounded, so a broken drain fails, not hangs)."""
    for _ in range(5000):
        if condition():
            return
        await asyncio.sleep(0.001)
    pytest.fail(f"never happened: {what}")


async def test_every_customers_messages_go_out_once_and_in_order_across_many_batches(
    store: Store,
) -> None:
    client = Client()
    outbox = Outbox(store, whatsapp=client, batch_size=5, concurrency=3)
    await store.commit(queue(outbox, customers=12, each=4))
    report = await outbox.drain()
    assert report == DrainReport(sent=48)
    assert client.texts_by_customer() == {
        f"4915100000{c:03d}": [f"{c}:{n}" for n in range(4)] for c in range(12)
    }
    tags = [outbox_id_from_callback(body["biz_opaque_callback_data"]) for body in client.sent]
    assert len(set(tags)) == 48
    sent = await store.outbox_list("sent", limit=100)
    assert len(sent) == 48 and all(item.message_id and item.attempts == 1 for item in sent)
    assert await store.outbox_list("pending") == []


async def test_the_next_batch_is_claimed_while_earlier_sends_are_under_way(store: Store) -> None:
    counting = Counting(store)
    client = Client()
    client.gate.clear()  # no send finishes until the gate opens
    outbox = Outbox(counting, whatsapp=client, batch_size=4, concurrency=8)  # type: ignore[arg-type]
    await store.commit(queue(outbox, customers=20))
    drain = asyncio.create_task(outbox.drain())
    await until(lambda: client.under_way == 8, "eight sends under way")
    assert client.sent == [] and counting.calls["outbox_claim"] >= 2  # not one batch at a time
    client.gate.set()
    assert await drain == DrainReport(sent=20)
    assert client.most_under_way == 8


async def test_no_more_than_concurrency_sends_are_under_way_at_once(store: Store) -> None:
    client = Client()
    client.gate.clear()
    outbox = Outbox(store, whatsapp=client, batch_size=10, concurrency=5)
    await store.commit(queue(outbox, customers=30))
    drain = asyncio.create_task(outbox.drain())
    await until(lambda: client.under_way == 5, "five sends under way")
    for _ in range(20):
        await asyncio.sleep(0)  # room for a sixth, if the drain wrongly started one
    assert client.most_under_way == 5
    client.gate.set()
    assert await drain == DrainReport(sent=30)
    assert client.most_under_way == 5


async def test_sends_are_recorded_many_per_store_transaction(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outbox_module, "RECORD_WITHIN_SECONDS", 3600)  # batches only, no timer
    counting = Counting(store)
    client = Client()
    outbox = Outbox(counting, whatsapp=client, batch_size=20, concurrency=40)  # type: ignore[arg-type]
    await store.commit(queue(outbox, customers=40))
    assert await outbox.drain() == DrainReport(sent=40)
    assert counting.calls["outbox_complete"] == 0
    assert sum(counting.recorded) == 40
    assert len(counting.recorded) <= 4  # at least ten sends per transaction on average
    assert len(await store.outbox_list("sent", limit=100)) == 40


async def test_a_message_whose_lease_ran_out_before_its_turn_is_not_sent(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FrozenClock()
    taken_over: list[str] = []

    async def slow_first_send(sent_before: int) -> None:
        if sent_before == 0:  # the first send outlasts every lease; another worker takes over
            clock.advance(seconds=31)
            claimed = await store.outbox_claim(clock.now(), 30, "another-worker")
            taken_over.extend(item.id for item in claimed)

    client = Client(before_send=slow_first_send)
    outbox = Outbox(store, whatsapp=client, clock=clock, lease_seconds=30, concurrency=1)
    await store.commit(queue(outbox, customers=4))
    assert await outbox.drain() == DrainReport(sent=1)
    assert len(client.sent) == 1 and len(taken_over) == 4  # the other three never went out
    for item_id in taken_over:  # each is the other worker's to send now (and to record)
        item = await store.outbox_get(item_id)
        assert item is not None and (item.state, item.lease_owner) == ("pending", "another-worker")
    assert "lease ran out before its turn" in caplog.text
    assert "no longer leased" in caplog.text  # the one sent late may go out twice: said so


async def test_a_message_whose_lease_ran_out_while_it_waited_goes_out_once(store: Store) -> None:
    clock = FrozenClock()

    async def slow_first_send(sent_before: int) -> None:
        if sent_before == 0:
            clock.advance(seconds=31)  # nobody else takes the others over: they stay ours

    client = Client(before_send=slow_first_send)
    outbox = Outbox(store, whatsapp=client, clock=clock, lease_seconds=30, concurrency=1)
    await store.commit(queue(outbox, customers=4, each=2))
    assert await outbox.drain() == DrainReport(sent=8)
    assert client.texts_by_customer() == {
        f"4915100000{c:03d}": [f"{c}:0", f"{c}:1"] for c in range(4)
    }
    assert await store.outbox_list("pending") == []


async def test_sends_the_store_failed_to_record_are_recorded_by_the_next_drain(
    store: Store,
) -> None:
    counting = Counting(store)
    counting.fail["outbox_complete_many"] = {1, 2}  # and its second try, as the drain ends
    client = Client()
    outbox = Outbox(counting, whatsapp=client)  # type: ignore[arg-type]
    await store.commit(queue(outbox, customers=3))
    with pytest.raises(ConnectionError, match="the store is away"):
        await outbox.drain()
    assert len(client.sent) == 3
    assert await store.outbox_list("sent") == []  # sent, not yet recorded: still leased
    assert await outbox.drain() == DrainReport()  # records them first; nothing left to send
    assert len(client.sent) == 3
    sent = await store.outbox_list("sent")
    assert sorted(item.message_id or "" for item in sent) == ["wamid.1", "wamid.2", "wamid.3"]


async def test_a_failed_claim_ends_the_drain_with_every_send_recorded(store: Store) -> None:
    counting = Counting(store)
    counting.fail["outbox_claim"] = {2}
    client = Client()
    outbox = Outbox(counting, whatsapp=client, batch_size=2, concurrency=1)  # type: ignore[arg-type]
    await store.commit(queue(outbox, customers=6))
    with pytest.raises(ConnectionError, match="outbox_claim"):
        await outbox.drain()
    assert 1 <= len(client.sent) <= 2  # the first batch, not beyond
    sent = await store.outbox_list("sent")
    assert len(sent) == len(client.sent)  # what went out is recorded
    assert len(await store.outbox_list("pending")) == 6 - len(client.sent)


async def test_a_store_that_fails_to_park_a_message_ends_the_drain_with_its_error(
    store: Store,
) -> None:
    counting = Counting(store)
    counting.fail["outbox_fail"] = {1}

    async def refuse_the_second(sent_before: int) -> None:
        if sent_before == 1:
            raise WaflowError("no such template")  # permanent: the message is to be parked

    client = Client(before_send=refuse_the_second)
    outbox = Outbox(counting, whatsapp=client, concurrency=1)  # type: ignore[arg-type]
    await store.commit(queue(outbox, customers=3))
    with pytest.raises(ConnectionError, match="outbox_fail"):
        await outbox.drain()
    assert len(client.sent) == 1
    assert len(await store.outbox_list("sent")) == 1  # what went out is recorded
    assert await store.outbox_list("parked") == []  # the refused one is tried again later
    assert len(await store.outbox_list("pending")) == 2


async def test_a_cancelled_drain_records_the_sends_that_went_out(store: Store) -> None:
    client = Client()

    async def hold_after_two(sent_before: int) -> None:
        if sent_before >= 2:
            await asyncio.Event().wait()  # never returns: cancelled with the drain

    client.before_send = hold_after_two
    outbox = Outbox(store, whatsapp=client, concurrency=5)
    await store.commit(queue(outbox, customers=5))
    drain = asyncio.create_task(outbox.drain())
    await until(lambda: len(client.sent) == 2 and client.under_way == 3, "two sent, three held")
    drain.cancel()
    with pytest.raises(asyncio.CancelledError):
        await drain
    assert len(await store.outbox_list("sent")) == 2
    assert len(await store.outbox_list("pending")) == 3


async def test_max_rounds_bounds_the_batches_claimed(store: Store) -> None:
    client = Client()
    outbox = Outbox(store, whatsapp=client, batch_size=2)
    await store.commit(queue(outbox, customers=6))
    assert await outbox.drain(max_rounds=1) == DrainReport(sent=2)
    assert await outbox.drain() == DrainReport(sent=4)


async def test_an_empty_outbox_drains_to_nothing(store: Store) -> None:
    counting = Counting(store)
    outbox = Outbox(counting, whatsapp=Client())  # type: ignore[arg-type]
    assert await outbox.drain() == DrainReport()
    assert counting.calls == Counter({"outbox_claim": 1})


def test_batch_size_and_concurrency_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Outbox(MemoryStore(), batch_size=0)
    with pytest.raises(ValueError, match="at least 1"):
        Outbox(MemoryStore(), concurrency=0)


async def test_a_recorded_send_keeps_the_time_it_went_out(store: Store) -> None:
    clock = FrozenClock()

    async def one_second_each(sent_before: int) -> None:
        clock.advance(seconds=1)

    outbox = Outbox(store, whatsapp=Client(one_second_each), clock=clock, concurrency=1)
    start = clock.now()
    await store.commit(queue(outbox, customers=3))
    await outbox.drain()
    sent = await store.outbox_list("sent")
    assert [item.sent_at for item in sent] == [start + timedelta(seconds=n) for n in (1, 2, 3)]


async def test_an_empty_sqlite_outbox_is_claimed_without_a_write_transaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One drain runs after every webhook: when nothing is due it must not queue for SQLite's
    # write lock (and its fsync) in a worker thread.
    store = SQLiteStore(tmp_path / "s.db")
    writes = 0
    run = store._run

    def counted_run(work: Any) -> Any:
        nonlocal writes
        writes += 1
        return run(work)

    monkeypatch.setattr(store, "_run", counted_run)
    try:
        assert await Outbox(store, whatsapp=Client()).drain() == DrainReport()
        assert writes == 0
    finally:
        await store.close()


async def test_a_sqlite_claim_sees_messages_another_process_queued(tmp_path: Path) -> None:
    # The "anything due?" read runs on the store's own read connection: it must see what another
    # connection to the file (another worker) committed after this store last looked.
    path = tmp_path / "shared.db"
    worker, web = SQLiteStore(path), SQLiteStore(path)
    client = Client()
    outbox = Outbox(worker, whatsapp=client)
    try:
        assert await outbox.drain() == DrainReport()
        await web.commit(queue(Outbox(web), customers=3))
        assert await outbox.drain() == DrainReport(sent=3)
        assert len(client.sent) == 3
    finally:
        await worker.close()
        await web.close()


class _WithoutRenewal:
    """A store as written before ``outbox_renew``."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        if name == "outbox_renew":
            raise AttributeError(name)
        return getattr(self._store, name)


async def _slow_send_race(store: Any) -> list[dict[str, Any]]:
    """One worker's send takes 0.8 s against a 0.3 s lease while a second worker drains the same
    store every 50 ms; every body that went out, from either worker (real time)."""

    async def slow(_sent_before: int) -> None:
        await asyncio.sleep(0.8)

    slow_client, quick_client = Client(before_send=slow), Client()
    first = Outbox(store, whatsapp=slow_client, lease_seconds=0.3, owner="first")
    second = Outbox(store, whatsapp=quick_client, lease_seconds=0.3, owner="second")
    await store.commit(queue(first, customers=1))

    async def poll() -> None:
        for _ in range(20):
            await second.drain()
            await asyncio.sleep(0.05)

    await asyncio.gather(first.drain(), poll())
    return slow_client.sent + quick_client.sent


async def test_a_send_that_outlasts_its_lease_keeps_it(store: Store) -> None:
    sent = await _slow_send_race(store)
    assert len(sent) == 1  # the second worker never took it
    assert await store.outbox_list("pending") == []


async def test_without_renewal_a_slow_send_goes_out_twice(store: Store) -> None:
    # What the renewal prevents, on a store without outbox_renew.
    sent = await _slow_send_race(_WithoutRenewal(store))
    assert len(sent) == 2


async def test_messages_waiting_behind_slow_sends_keep_their_leases(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    # Three messages claimed at once by a drain that sends one at a time, 0.5 s each, against a
    # 0.6 s lease: the third waits a whole second. It must stay leased while it waits (else it
    # could be popped with little lease left, or another worker could take it), and go out
    # from this drain, once.
    async def slow(_sent_before: int) -> None:
        await asyncio.sleep(0.5)

    client = Client(before_send=slow)
    outbox = Outbox(
        store, whatsapp=client, lease_seconds=0.6, owner="first", batch_size=3, concurrency=1
    )
    commit = queue(outbox, customers=3)
    await store.commit(commit)
    last = commit.outbox[-1].id

    async def watch() -> tuple[str | None, bool]:
        await asyncio.sleep(0.8)  # the first lease ran out at 0.6; the last message still waits
        item = await store.outbox_get(last)
        assert item is not None and item.lease_until is not None
        return item.lease_owner, item.lease_until > outbox.clock.now()

    with caplog.at_level(logging.WARNING, logger="waflow"):
        report, (owner, leased) = await asyncio.gather(outbox.drain(), watch())
    assert (owner, leased) == ("first", True)
    assert report.sent == 3 and len(client.sent) == 3
    assert "lease ran out" not in caplog.text


async def test_messages_queued_while_the_only_sender_finishes_are_sent(store: Store) -> None:
    # concurrency=1: the next claim can come after the one sender returned but before its
    # done-callback ran (the memory store never suspends during a claim). It must still start a
    # sender for what it claimed, not wait for ever.
    client = Client()
    outbox = Outbox(store, whatsapp=client, batch_size=2, concurrency=1)
    first, *later = queue(outbox, customers=3).outbox
    await store.commit(Commit(outbox=[first]))

    async def queue_more() -> None:
        await asyncio.sleep(0)  # while the first send is under way
        await store.commit(Commit(outbox=later))

    report, _ = await asyncio.wait_for(asyncio.gather(outbox.drain(), queue_more()), timeout=10)
    sent = report.sent + (await outbox.drain()).sent  # what the first drain did not claim
    assert sent == 3 and len(client.sent) == 3
    assert await store.outbox_list("pending") == []


PHONE_OF_CUSTOMER = "4915112345678"


@pytest.mark.parametrize(
    ("channel", "code", "subcode"),
    [
        ("whatsapp", 131026, None),  # undeliverable
        ("whatsapp", 131047, None),  # window
        ("whatsapp", 100, None),
        ("whatsapp", 190, None),  # token
        ("whatsapp", 368, None),  # blocked for policy
        ("whatsapp", 132001, None),  # template
        ("messenger", 10, 2018278),  # Messenger's window
    ],
)
@pytest.mark.parametrize("status", [400, 500])
async def test_permanent_graph_codes_park_the_message_whatever_the_http_status(
    channel: str, code: int, subcode: int | None, status: int
) -> None:
    # Meta's code, not the HTTP status, says whether a retry can help.
    clock = FrozenClock()
    fake = FakeGraphAPI(clock=clock)
    store = MemoryStore()
    clients: dict[str, Any] = (
        {"whatsapp": fake.async_whatsapp(max_retries=0)}
        if channel == "whatsapp"
        else {"messenger": fake.async_messenger(max_retries=0)}
    )
    outbox = Outbox(store, clock=clock, **clients)
    if channel == "whatsapp":
        message: Any = build.text(PHONE_OF_CUSTOMER, "Hallo")
        business_id = fake.phone_number_id
    else:
        message = messenger_build.text("6945398272183744", "Hallo")
        business_id = fake.page_id
    await store.commit(
        Commit(
            outbox=[
                outbox.draft(
                    message, channel=channel, business_id=business_id, customer="c1", checked=False
                )
            ]
        )
    )
    fake.fail_next(code, status=status, subcode=subcode, times=10)
    for _ in range(3):
        await outbox.drain()
        clock.advance(seconds=3600)
    sends = [r for r in fake.requests if r.path.endswith("/messages")]
    assert len(sends) == 1  # tried once, never again
    (parked,) = await outbox.parked()
    assert parked.last_error is not None and f"code {code}" in parked.last_error
