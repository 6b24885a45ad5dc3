"""Meta's windows with a frozen clock: the engine never makes a request Meta would refuse."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from waflow import App
from waflow import filters as F
from waflow.errors import ConsentRequiredError, MessageValidationError, OutsideServiceWindowError
from waflow.flows import Flow, State
from waflow.flows.context import FlowContext
from waflow.flows.engine import Engine
from waflow.flows.identity import ConsentRecord, Customer, LinkedId
from waflow.flows.windows import (
    check_messenger_send,
    check_whatsapp_send,
    close_window,
    free_entry_until,
    record_inbound,
    record_reply,
)
from waflow.messenger import build as fb
from waflow.store import MemoryStore
from waflow.testing import FakeGraphAPI, FrozenClock
from waflow.whatsapp import build as wa

PSID = "6945398272183744"
WA_ID = "4915112345678"


class PingFlow(Flow):
    """Any message from Messenger makes the bot write on WhatsApp (free-form)."""

    name = "ping"
    idle = State(initial=True)

    @idle.on(F.channel("whatsapp"), to=None)
    def whatsapp_message(self, event: Any, ctx: FlowContext[Any]) -> None:
        ctx.reply("Hallo auf WhatsApp!")

    @idle.on(F.channel("messenger") & F.text("link"), to=None)
    def link(self, event: Any, ctx: FlowContext[Any]) -> None:
        ctx.link_phone("+" + WA_ID)

    @idle.on(F.channel("messenger"), to=None)
    def ping(self, event: Any, ctx: FlowContext[Any]) -> None:
        ctx.whatsapp.send_text("Kurze Frage zu deiner Bestellung …")


def followup(ctx: FlowContext[Any]) -> wa.TemplateMessage:
    to = ctx.customer.whatsapp_id
    assert to is not None
    return wa.template(to, "order_followup", "de", body=["Lena", "Lenas Radladen", "Stadtrad"])


class Setup:
    def __init__(self, *, fallback: bool) -> None:
        self.clock = FrozenClock()
        self.fake = FakeGraphAPI(clock=self.clock)
        self.fake.enforce_window()
        self.store = MemoryStore()
        self.engine = Engine(
            PingFlow,
            store=self.store,
            clock=self.clock,
            whatsapp_number=self.fake.phone_number_id,
            fallback_template=followup if fallback else None,
        )
        self.app = App(
            app_secret=self.fake.app_secret,
            store=self.store,
            whatsapp=self.fake.async_whatsapp(),
            messenger=self.fake.async_messenger(),
            clock=self.clock,
            engine=self.engine,
            retry_delays=(),
        )

    async def deliver(self, body: dict[str, Any]) -> None:
        assert (await self.app.dispatch(self.fake.webhook_request(body))).status == 200

    async def customer_on_both_channels(self) -> None:
        # The customer writes on WhatsApp (window opens), and on Messenger, where we link the two.
        await self.deliver(self.fake.inbound.whatsapp_text(WA_ID, "Hallo"))
        await self.deliver(self.fake.inbound.messenger_text(PSID, "link"))
        customer = await self.engine.customer_for(_whatsapp_event(self, "x"))
        assert customer is not None
        # consent for business-initiated templates
        customer.record_consent(
            ConsentRecord(
                channel="whatsapp",
                granted=True,
                wording="Dürfen wir…",
                source="test",
                at=self.clock.now(),
            )
        )
        from waflow.store import Commit, Document

        await self.store.commit(
            Commit(save=[Document(customer.id, customer.to_document(), customer.version)])
        )


def _whatsapp_event(setup: Setup, text: str) -> Any:
    from waflow.webhooks import parse

    return parse(setup.fake.inbound.whatsapp_text(WA_ID, text))[0]


async def _link_both(setup: Setup) -> None:
    await setup.deliver(setup.fake.inbound.whatsapp_text(WA_ID, "Hallo"))
    await setup.deliver(setup.fake.inbound.messenger_text(PSID, "link"))


@pytest.mark.parametrize("fallback", [True, False])
async def test_free_form_at_23h59_is_sent(fallback: bool) -> None:
    setup = Setup(fallback=fallback)
    await _link_both(setup)
    setup.clock.advance(hours=23, minutes=59)
    await setup.deliver(setup.fake.inbound.messenger_text(PSID, "ping"))
    assert setup.fake.sent.on("whatsapp").last.text == "Kurze Frage zu deiner Bestellung …"
    assert setup.fake.window_violations == []


async def test_at_24h01_the_fallback_template_goes_out_instead() -> None:
    setup = Setup(fallback=True)
    await setup.customer_on_both_channels()
    setup.clock.advance(hours=24, minutes=1)
    await setup.deliver(setup.fake.inbound.messenger_text(PSID, "ping"))
    last = setup.fake.sent.on("whatsapp").last
    assert last.type == "template"
    assert last.body["template"]["name"] == "order_followup"
    assert setup.fake.window_violations == []


async def test_at_24h01_without_a_fallback_the_handler_fails_with_a_window_error() -> None:
    setup = Setup(fallback=False)
    await _link_both(setup)
    sent_before = len(setup.fake.sent)
    setup.clock.advance(hours=24, minutes=1)
    await setup.deliver(setup.fake.inbound.messenger_text(PSID, "ping"))
    (dead,) = await setup.app.dead_letters()
    assert dead.last_error is not None
    assert dead.last_error.startswith(
        "OutsideServiceWindowError: free-form WhatsApp message outside"
    )
    assert len(setup.fake.sent) == sent_before  # nothing went out
    assert setup.fake.window_violations == []


async def test_a_message_queued_in_time_but_sent_too_late_switches_to_its_fallback() -> None:
    setup = Setup(fallback=True)
    await setup.customer_on_both_channels()
    setup.clock.advance(hours=23, minutes=59)
    with setup.fake.outage():  # Meta is down while the reply is queued
        await setup.deliver(setup.fake.inbound.messenger_text(PSID, "ping"))
        assert setup.fake.sent.on("whatsapp").of_type("text").texts() == ["Hallo auf WhatsApp!"]
    setup.clock.advance(minutes=2)  # back at 24h01
    await setup.app.run_pending()
    assert setup.fake.sent.on("whatsapp").last.type == "template"
    assert setup.fake.window_violations == []


async def test_a_message_queued_in_time_but_sent_too_late_without_fallback_is_parked() -> None:
    setup = Setup(fallback=False)
    await _link_both(setup)
    setup.clock.advance(hours=23, minutes=59)
    with setup.fake.outage():
        await setup.deliver(setup.fake.inbound.messenger_text(PSID, "ping"))
    setup.clock.advance(minutes=2)
    await setup.app.run_pending()
    (parked,) = await setup.app.outbox.parked()
    assert parked.last_error is not None and "OutsideServiceWindowError" in parked.last_error
    assert setup.fake.window_violations == []


async def test_a_failed_status_with_131047_closes_the_window() -> None:
    setup = Setup(fallback=True)
    await setup.customer_on_both_channels()
    customer = await setup.engine.customer_for(_whatsapp_event(setup, "x"))
    assert customer is not None
    status = setup.fake.inbound.whatsapp_status(
        "wamid.X", "failed", WA_ID, errors=[(131047, "Re-engagement message")]
    )
    await setup.deliver(status)
    setup.clock.advance(minutes=1)  # our records still say "open" for 23 more hours
    await setup.deliver(setup.fake.inbound.messenger_text(PSID, "ping"))
    assert setup.fake.sent.on("whatsapp").last.type == "template"


async def test_free_entry_point_is_recorded_after_an_ad() -> None:
    setup = Setup(fallback=False)
    referral = setup.fake.inbound.whatsapp_referral()
    await setup.deliver(setup.fake.inbound.whatsapp_text(WA_ID, "Info bitte", referral=referral))
    customer = await setup.engine.customer_for(_whatsapp_event(setup, "x"))
    assert customer is not None
    until = free_entry_until(customer, setup.fake.phone_number_id)
    assert until == setup.clock.now() + timedelta(hours=72)
    assert customer.referrals[0]["ctwa_clid"] == referral["ctwa_clid"]


# -- the rules themselves ----------------------------------------------------------------------


def _customer(clock: FrozenClock) -> Customer:
    return Customer(id="c1", created_at=clock.now(), ids=[LinkedId(kind="wa_id", value=WA_ID)])


def test_business_initiated_templates_need_an_opt_in() -> None:
    clock = FrozenClock()
    customer = _customer(clock)
    with pytest.raises(ConsentRequiredError, match="no WhatsApp opt-in"):
        check_whatsapp_send(customer, "pn", clock.now(), is_template=True)
    customer.record_consent(
        ConsentRecord(channel="whatsapp", granted=True, wording="ok", source="t", at=clock.now())
    )
    check_whatsapp_send(customer, "pn", clock.now(), is_template=True)


def test_opt_out_stops_marketing_but_not_a_reply_inside_the_window() -> None:
    clock = FrozenClock()
    customer = _customer(clock)
    record_inbound(customer, "whatsapp", "pn", clock.now())
    customer.record_consent(
        ConsentRecord(
            channel="whatsapp", granted=False, wording="STOP", source="keyword", at=clock.now()
        )
    )
    check_whatsapp_send(customer, "pn", clock.now(), is_template=False)
    with pytest.raises(ConsentRequiredError, match="opted out"):
        check_whatsapp_send(customer, "pn", clock.now(), is_template=True, marketing=True)


def test_windows_are_per_business_number() -> None:
    clock = FrozenClock()
    customer = _customer(clock)
    record_inbound(customer, "whatsapp", "pn-a", clock.now())
    check_whatsapp_send(customer, "pn-a", clock.now(), is_template=False)
    with pytest.raises(OutsideServiceWindowError, match="never wrote"):
        check_whatsapp_send(customer, "pn-b", clock.now(), is_template=False)
    close_window(customer, "whatsapp", "pn-a", clock.now())
    with pytest.raises(OutsideServiceWindowError):
        check_whatsapp_send(customer, "pn-a", clock.now(), is_template=False)


def test_messenger_window_and_human_agent_allowance() -> None:
    clock = FrozenClock()
    customer = _customer(clock)
    record_inbound(customer, "messenger", "page", clock.now())
    clock.advance(hours=23, minutes=59)
    check_messenger_send(customer, "page", clock.now(), tag=None, human=False)
    clock.advance(minutes=2)
    with pytest.raises(OutsideServiceWindowError) as info:
        check_messenger_send(customer, "page", clock.now(), tag=None, human=False)
    assert (info.value.code, info.value.subcode) == (10, 2018278)
    check_messenger_send(customer, "page", clock.now(), tag="HUMAN_AGENT", human=True)
    with pytest.raises(OutsideServiceWindowError, match="written by a person"):
        check_messenger_send(customer, "page", clock.now(), tag="HUMAN_AGENT", human=False)
    clock.advance(timedelta(days=7))
    with pytest.raises(OutsideServiceWindowError):
        check_messenger_send(customer, "page", clock.now(), tag="HUMAN_AGENT", human=True)


def _clicked_ad(customer: Customer, at: Any) -> None:
    customer.referrals.append(
        {"ctwa_clid": "clid", "channel": "whatsapp", "business_id": "pn", "at": at.isoformat()}
    )


def test_the_free_entry_point_counts_from_the_ad_click_not_the_last_message() -> None:
    clock = FrozenClock()
    customer = _customer(clock)
    _clicked_ad(customer, clock.now())
    record_inbound(customer, "whatsapp", "pn", clock.now())  # the ad-referred message
    clock.advance(hours=48)
    record_inbound(customer, "whatsapp", "pn", clock.now())  # writes again, two days later
    record_reply(customer, "whatsapp", "pn", clock.now())
    assert free_entry_until(customer, "pn") is None  # the ad click was not answered in 24 h


def test_a_later_ad_click_opens_a_new_free_entry_point_and_a_running_one_is_not_extended() -> None:
    clock = FrozenClock()
    customer = _customer(clock)
    _clicked_ad(customer, clock.now())
    clock.advance(hours=1)
    record_reply(customer, "whatsapp", "pn", clock.now())
    first = clock.now() + timedelta(hours=72)
    assert free_entry_until(customer, "pn") == first
    clock.advance(hours=10)
    _clicked_ad(customer, clock.now())  # clicks again while the first one runs
    record_reply(customer, "whatsapp", "pn", clock.now())
    assert free_entry_until(customer, "pn") == first
    clock.advance(hours=240)
    _clicked_ad(customer, clock.now())
    clock.advance(hours=23)
    record_reply(customer, "whatsapp", "pn", clock.now())
    assert free_entry_until(customer, "pn") == clock.now() + timedelta(hours=72)
    clock.advance(hours=80)  # that one ended; its click has had its entry point
    record_reply(customer, "whatsapp", "pn", clock.now())
    assert free_entry_until(customer, "pn") == clock.now() - timedelta(hours=8)


def test_a_bots_human_agent_message_is_refused_inside_the_window_too() -> None:
    clock = FrozenClock()
    customer = _customer(clock)
    record_inbound(customer, "messenger", "page", clock.now())
    with pytest.raises(MessageValidationError, match="only for messages a person wrote"):
        check_messenger_send(customer, "page", clock.now(), tag="HUMAN_AGENT", human=False)
    check_messenger_send(customer, "page", clock.now(), tag="HUMAN_AGENT", human=True)


class AgentFlow(Flow):
    """A person's replies, written the documented ways: now, and 30 hours later."""

    name = "agent"
    idle = State(initial=True)
    waiting = State(timeout=timedelta(hours=30))

    @idle.on(F.channel("messenger") & F.text("now"), to=None)
    def agent_now(self, event: Any, ctx: FlowContext[Any]) -> None:
        ctx.reply("Hier ist Lena vom Laden.", human=True)

    @idle.on(F.channel("messenger") & F.text("later"), to="waiting")
    def later(self, event: Any, ctx: FlowContext[Any]) -> None:
        pass

    @waiting.on_timeout(to="idle")
    def agent_late(self, ctx: FlowContext[Any]) -> None:
        ctx.messenger.send_text("Lena hier, sorry.", tag="HUMAN_AGENT", human_agent=True)


def _agent_app(*, flow: bool) -> tuple[FrozenClock, FakeGraphAPI, App, Engine | None]:
    clock = FrozenClock()
    fake = FakeGraphAPI(clock=clock)
    store = MemoryStore()
    engine = Engine(AgentFlow, store=store, clock=clock) if flow else None
    app = App(
        app_secret=fake.app_secret,
        store=store,
        messenger=fake.async_messenger(),
        clock=clock,
        engine=engine,
    )
    return clock, fake, app, engine


async def _sent_human_agent(fake: FakeGraphAPI, app: App) -> list[tuple[str | None, str | None]]:
    assert await app.outbox.parked() == []
    return [(m.body.get("tag"), m.text) for m in fake.sent.on("messenger")]


async def test_a_persons_reply_in_a_flow_goes_out_with_the_human_agent_tag() -> None:
    _clock, fake, app, _engine = _agent_app(flow=True)
    await app.dispatch(fake.webhook_request(fake.inbound.messenger_text(PSID, "now")))
    assert await _sent_human_agent(fake, app) == [("HUMAN_AGENT", "Hier ist Lena vom Laden.")]


async def test_a_persons_reply_after_the_24_hours_goes_out_within_7_days() -> None:
    clock, fake, app, engine = _agent_app(flow=True)
    await app.dispatch(fake.webhook_request(fake.inbound.messenger_text(PSID, "later")))
    clock.advance(hours=30)
    assert engine is not None and await engine.tick() == 1
    await app.outbox.drain()
    assert await _sent_human_agent(fake, app) == [("HUMAN_AGENT", "Lena hier, sorry.")]


async def test_a_router_reply_built_with_human_agent_goes_out() -> None:
    _clock, fake, app, _engine = _agent_app(flow=False)

    @app.on(F.channel("messenger"))
    def handler(event: Any, ctx: Any) -> None:
        ctx.reply(fb.text(event.sender_id, "Lena hier.", tag="HUMAN_AGENT", human_agent=True))

    await app.dispatch(fake.webhook_request(fake.inbound.messenger_text(PSID, "hallo")))
    assert await _sent_human_agent(fake, app) == [("HUMAN_AGENT", "Lena hier.")]
