"""Merging two records of one customer keeps what each knew: the conversation that goes on, the
latest ad click, the events already applied; ids linked in a timeout handler are indexed too."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from pydantic import BaseModel

from waflow import filters as F
from waflow.flows import Flow, State
from waflow.flows.context import FlowContext
from waflow.flows.engine import Engine
from waflow.flows.identity import Customer
from waflow.store import MemoryStore
from waflow.testing import FakeGraphAPI, FrozenClock
from waflow.webhooks import parse

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
