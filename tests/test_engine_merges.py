"""Merging two records of one customer keeps what each knew: the conversation that goes on, the
latest ad click, the events already applied; ids linked in a timeout handler are indexed too."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import BaseModel

from waflow import filters as F
from waflow.flows import Flow, State
from waflow.flows.context import FlowContext
from waflow.flows.engine import Engine, _merged_key
from waflow.flows.identity import ConsentRecord, Customer
from waflow.flows.windows import record_inbound
from waflow.outbox import Outbox, draft_item
from waflow.store import Commit, Document, MemoryStore
from waflow.testing import FakeGraphAPI, FrozenClock
from waflow.webhooks import parse
from waflow.whatsapp import build as wa

WA_ID = "4915112345678"
PSID = "6945398272183744"
T0 = datetime(2026, 3, 1, 10, 0, tzinfo=timezone.utc)


class Wish(BaseModel):
    product: str | None = None


class Handoff(Flow[Wish]):
    """Messenger offers WhatsApp with a code; on WhatsApp the wish is remembered."""

    on_messenger = State(initial=True)
    on_whatsapp = State(timeout=timedelta(hours=20))

    @on_messenger.on(F.channel("messenger") & F.kind("message"), to="on_whatsapp")
    def offer(self, event: Any, ctx: FlowContext[Wish]) -> None:
        ctx.data.product = "Stadtrad"
        ctx.reply("Weiter auf WhatsApp: " + ctx.handoff_link("Hallo! Mein Code: {code}"))

    @on_whatsapp.on(F.channel("whatsapp") & F.kind("message"), to=None)
    def welcome(self, event: Any, ctx: FlowContext[Wish]) -> None:
        ctx.reply(f"Willkommen zurück! Du wolltest das {ctx.data.product}.")

    @on_whatsapp.on_timeout(to="on_messenger")
    def forget(self, ctx: FlowContext[Wish]) -> None:
        pass


async def test_the_conversation_that_issued_the_code_goes_on_after_the_merge() -> None:
    # Lena wrote on WhatsApp last week (the older record, which stays), then today on Messenger,
    # which offered WhatsApp with a code: the Messenger conversation must go on.
    clock = FrozenClock(T0)
    fake = FakeGraphAPI(clock=clock)
    store = MemoryStore()
    engine = Engine(Handoff, store=store, clock=clock, whatsapp_display_number="+49 30 1234567")
    [first] = parse(fake.inbound.whatsapp_text(WA_ID, "Hi"))
    await engine.handle(first)
    clock.advance(hours=24 * 7)
    [hello] = parse(fake.inbound.messenger_text(PSID, "Hallo"))
    await engine.handle(hello)
    (code,) = store._handoffs  # the one code the offer issued
    [coded] = parse(fake.inbound.whatsapp_text(WA_ID, f"Hallo! Mein Code: {code}"))
    assert await engine.handle(coded)

    lena = await engine.customer_for(coded)
    assert lena is not None and {linked.kind for linked in lena.ids} >= {"psid", "wa_id"}
    assert (lena.state, lena.data) == ("on_whatsapp", {"product": "Stadtrad"})
    assert lena.deadline is not None
    merged_away = (await engine.customer_for(hello)) or lena
    assert merged_away.id == lena.id  # Messenger now finds Lena's one record
    forwarded = [key for key in store._index if key.startswith(_merged_key(""))]
    assert forwarded and all(store._index[key] == lena.id for key in forwarded)
    assert [c for c, _ in await store.deadlines_due(clock.now() + timedelta(days=1))] == [lena.id]


def _customer(name: str, created: datetime) -> Customer:
    return Customer(id=name, created_at=created)


def test_merged_referrals_come_in_time_order() -> None:
    kept, other = _customer("a", T0), _customer("b", T0 + timedelta(days=1))
    kept.referrals.append({"channel": "whatsapp", "at": (T0 + timedelta(days=8)).isoformat()})
    other.referrals.append({"channel": "messenger", "at": T0.isoformat()})
    kept.merge(other)
    assert [r["channel"] for r in kept.referrals] == ["messenger", "whatsapp"]  # latest last


def test_a_merge_keeps_the_latest_applied_events_of_both_records() -> None:
    kept, other = _customer("a", T0), _customer("b", T0)
    kept.mark_applied("whatsapp:message:the-order")
    for n in range(200):
        other.mark_applied(f"messenger:message:{n}")
    kept.merge(other)
    assert kept.was_applied("whatsapp:message:the-order")
    assert kept.was_applied("messenger:message:199")


class LinksLater(Flow):
    """Links the customer's phone number in a timeout handler."""

    start = State(initial=True)
    waiting = State(timeout=timedelta(hours=1))

    @start.on(F.kind("message"), to="waiting")
    def hello(self, event: Any, ctx: FlowContext[Any]) -> None:
        pass

    @waiting.on_timeout(to="start")
    def link(self, ctx: FlowContext[Any]) -> None:
        ctx.link_phone("+" + WA_ID)

    waiting.to(None, F.kind("message"))


async def test_a_phone_linked_in_a_timeout_handler_is_indexed() -> None:
    clock = FrozenClock(T0)
    fake = FakeGraphAPI(clock=clock)
    store = MemoryStore()
    engine = Engine(LinksLater, store=store, clock=clock)
    [hello] = parse(fake.inbound.messenger_text(PSID, "Hallo"))
    await engine.handle(hello)
    clock.advance(hours=2)
    assert await engine.tick() == 1
    customer = await engine.customer_for(hello)
    assert customer is not None
    assert await store.index_lookup([f"phone:+{WA_ID}"]) == {f"phone:+{WA_ID}": customer.id}
    [later] = parse(fake.inbound.whatsapp_text(WA_ID, "Hi"))
    await engine.handle(later)
    same = await engine.customer_for(later)
    assert same is not None and same.id == customer.id


class _Client:
    phone_number_id = "PN"

    def __init__(self) -> None:
        self.sent: list[Any] = []

    async def send(self, message: Any) -> None:
        self.sent.append(message)


@pytest.mark.parametrize("forwarded", [True, False])
async def test_a_message_queued_for_a_merged_away_customer_is_checked_against_the_survivor(
    forwarded: bool,
) -> None:
    # B (later merged into A, who has opted out) had a marketing message queued. At send time
    # the guard must check it against A — or, without the forwarding entry a merge leaves,
    # refuse it — never send it unchecked.
    clock = FrozenClock(T0)
    store = MemoryStore()
    engine = Engine(Handoff, store=store, clock=clock)
    a, b = Customer(id="A", created_at=T0), Customer(id="B", created_at=T0)
    for customer in (a, b):
        record_inbound(customer, "whatsapp", "PN", T0)
    a.record_consent(
        ConsentRecord(channel="whatsapp", granted=False, wording="STOP", source="keyword", at=T0)
    )
    queued = draft_item(
        wa.text(WA_ID, "50 % auf alle Räder!"),
        channel="whatsapp",
        business_id="PN",
        customer="B",
        now=T0,
        marketing=True,
    )
    await store.commit(
        Commit(save=[Document("A", a.to_document(), 0), Document("B", b.to_document(), 0)])
    )
    await store.commit(Commit(outbox=[queued]))
    a.merge(b)
    await store.commit(
        Commit(
            save=[Document("A", a.to_document(), 1)],
            delete=["B"],
            index={_merged_key("B"): "A"} if forwarded else {},
        )
    )
    client = _Client()
    outbox = Outbox(
        store,
        whatsapp=client,
        clock=clock,
        guard=engine.send_guard,
        prefetch=engine.prefetch_for_send,
    )
    report = await outbox.drain()
    assert (report.sent, report.parked, client.sent) == (0, 1, [])
    (parked,) = await outbox.parked()
    expected = "ConsentRequiredError" if forwarded else "no longer exists"
    assert parked.last_error is not None and expected in parked.last_error
