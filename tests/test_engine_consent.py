"""Consent through the engine: opt-out keywords, opt-in before business-initiated messages, and
handoff codes that expire — each checked on the fakes, with no request Meta would refuse."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from waflow import App
from waflow import filters as F
from waflow.errors import ConsentRequiredError
from waflow.flows import Flow, State
from waflow.flows.context import FlowContext
from waflow.flows.engine import DEFAULT_OPT_OUT_KEYWORDS, Engine, LockTimeoutError
from waflow.flows.identity import LinkedId
from waflow.store import Commit, MemoryStore, Store
from waflow.testing import FakeGraphAPI, FrozenClock
from waflow.webhooks import parse
from waflow.whatsapp import build as wa
from waflow.whatsapp.templates import TemplateDefinition, TemplateRegistry

PSID = "6945398272183744"
WA_ID = "4915112345678"
SHOP_NUMBER = "+49 30 1234567"


class ConsentFlow(Flow):
    """Messenger: ``phone`` links the number without asking, ``phone+optin`` links it with a
    recorded opt-in; both then send a WhatsApp template. ``link`` sends a wa.me handoff link.
    ``offer`` on WhatsApp sends a marketing template. Anything else is echoed."""

    name = "consent"
    chatting = State(initial=True)

    @chatting.on(F.channel("messenger") & F.text("phone"), to=None)
    def phone_without_opt_in(self, event: Any, ctx: FlowContext[Any]) -> None:
        ctx.link_phone("+" + WA_ID)
        ctx.whatsapp.send_template("order_followup", "de", body=["Lena", "Laden", "Rad"])

    @chatting.on(F.channel("messenger") & F.text("phone+optin"), to=None)
    def phone_with_opt_in(self, event: Any, ctx: FlowContext[Any]) -> None:
        ctx.link_phone("+" + WA_ID)
        ctx.record_opt_in("Dürfen wir dir auf WhatsApp schreiben?", source="messenger:test")
        ctx.whatsapp.send_template("order_followup", "de", body=["Lena", "Laden", "Rad"])

    @chatting.on(F.channel("messenger") & F.text("link"), to=None)
    def link(self, event: Any, ctx: FlowContext[Any]) -> None:
        ctx.messenger.send_text(ctx.handoff_link("Hallo! Mein Code: {code}"))

    @chatting.on(F.channel("whatsapp") & F.text("offer"), to=None)
    def offer(self, event: Any, ctx: FlowContext[Any]) -> None:
        sale = wa.template(ctx.whatsapp.recipient, "spring_sale", "de", body=["Lena"])
        ctx.whatsapp.send(sale, marketing=True)

    @chatting.on(F.channel("whatsapp") & F.text("news"), to=None)
    def news(self, event: Any, ctx: FlowContext[Any]) -> None:
        # No marketing=True: the registry knows the template's category.
        ctx.whatsapp.send_template("spring_sale", "de", body=["Lena"])
        ctx.whatsapp.send_template("order_followup", "de", body=["Lena", "Laden", "Rad"])

    @chatting.on(F.kind("message"), to=None)
    def echo(self, event: Any, ctx: FlowContext[Any]) -> None:
        ctx.reply(f"echo: {event.text}")


class Shop:
    def __init__(self, **engine_options: Any) -> None:
        self.clock = FrozenClock()
        self.fake = FakeGraphAPI(clock=self.clock)
        self.fake.enforce_window()
        self.store = MemoryStore()
        self.engine = Engine(
            ConsentFlow,
            store=self.store,
            clock=self.clock,
            whatsapp_number=self.fake.phone_number_id,
            whatsapp_display_number=SHOP_NUMBER,
            **engine_options,
        )
        self.app = App(
            app_secret=self.fake.app_secret,
            store=self.store,
            whatsapp=self.fake.async_whatsapp(),
            messenger=self.fake.async_messenger(),
            clock=self.clock,
            engine=self.engine,
            retry_delays=(),  # a failing event is dead-lettered at once
        )

    async def deliver(self, body: dict[str, Any]) -> None:
        response = await self.app.dispatch(self.fake.webhook_request(body))
        assert response.status == 200, response.text

    async def whatsapp_customer(self) -> Any:
        event = parse(self.fake.inbound.whatsapp_text(WA_ID, "x"))[0]
        return await self.engine.customer_for(event)

    def whatsapp_sends(self) -> list[Any]:
        return [
            r
            for r in self.fake.requests
            if r.method == "POST" and r.path.endswith(f"/{self.fake.phone_number_id}/messages")
        ]


# -- opt-out keywords ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "STOP",
        "stopp",
        "ARRET",
        "Arrêt",
        "  ARRÊT  ",
        "unsubscribe",
        "Abmelden",
        "Stop.",
        "STOP!",
        "¡stop!",
        "Stop promotions",
    ],
)
async def test_every_default_opt_out_keyword_is_recorded(text: str) -> None:
    shop = Shop()
    await shop.deliver(shop.fake.inbound.whatsapp_text(WA_ID, "Hallo"))
    await shop.deliver(shop.fake.inbound.whatsapp_text(WA_ID, text))

    customer = await shop.whatsapp_customer()
    assert customer is not None and customer.opted_out("whatsapp")
    record = customer.consents[-1]
    assert (record.granted, record.source, record.wording) == (False, "keyword", text.strip())


@pytest.mark.parametrize("text", ["stop please", "Bitte nicht stoppen", "STOP and go", "halt"])
async def test_a_keyword_inside_a_sentence_is_not_an_opt_out(text: str) -> None:
    shop = Shop()
    await shop.deliver(shop.fake.inbound.whatsapp_text(WA_ID, text))

    customer = await shop.whatsapp_customer()
    assert customer is not None and not customer.opted_out("whatsapp")
    assert shop.fake.sent.last.text == f"echo: {text}"


@pytest.mark.parametrize(
    ("payload", "text"), [("Stop promotions", "Stop promotions"), ("OPT_OUT", "STOP")]
)
async def test_a_tap_on_a_templates_stop_button_is_an_opt_out(payload: str, text: str) -> None:
    # Meta's marketing templates carry a "Stop promotions" quick reply; a shop's own button may
    # say STOP. The tap arrives as a `button` message, not as text.
    shop = Shop()
    await shop.deliver(shop.fake.inbound.whatsapp_text(WA_ID, "Hallo"))
    await shop.deliver(shop.fake.inbound.whatsapp_template_button(WA_ID, payload, text))

    customer = await shop.whatsapp_customer()
    assert customer is not None and customer.opted_out("whatsapp")
    assert customer.consents[-1].source == "keyword"


async def test_a_tap_on_another_template_button_is_no_opt_out() -> None:
    shop = Shop()
    await shop.deliver(shop.fake.inbound.whatsapp_template_button(WA_ID, "TRACK", "Sendung"))
    customer = await shop.whatsapp_customer()
    assert customer is not None and not customer.opted_out("whatsapp")


async def test_opt_out_keywords_are_configurable() -> None:
    shop = Shop(opt_out_keywords=("HALT", "Keine Werbung"))
    await shop.deliver(shop.fake.inbound.whatsapp_text(WA_ID, "STOP"))
    customer = await shop.whatsapp_customer()
    assert customer is not None and not customer.opted_out("whatsapp")

    await shop.deliver(shop.fake.inbound.whatsapp_text(WA_ID, "keine werbung"))
    customer = await shop.whatsapp_customer()
    assert customer is not None and customer.opted_out("whatsapp")
    assert "STOP" in DEFAULT_OPT_OUT_KEYWORDS  # the default list was really replaced


async def test_after_an_opt_out_marketing_is_refused_before_any_request() -> None:
    shop = Shop()
    await shop.deliver(shop.fake.inbound.whatsapp_text(WA_ID, "STOPP"))
    before = len(shop.whatsapp_sends())

    await shop.deliver(shop.fake.inbound.whatsapp_text(WA_ID, "offer"))

    assert len(shop.whatsapp_sends()) == before  # the marketing template never left
    (dead,) = await shop.app.dead_letters()
    assert dead.last_error is not None and "ConsentRequiredError" in dead.last_error
    assert "opted out" in dead.last_error


async def test_a_later_opt_in_lifts_the_opt_out() -> None:
    shop = Shop()
    await shop.deliver(shop.fake.inbound.messenger_text(PSID, "Hallo"))
    await shop.deliver(shop.fake.inbound.whatsapp_text(WA_ID, "STOP"))
    customer = await shop.whatsapp_customer()
    assert customer is not None and customer.opted_out("whatsapp")
    shop.clock.advance(minutes=10)

    await shop.deliver(shop.fake.inbound.messenger_text(PSID, "phone+optin"))

    customer = await shop.whatsapp_customer()
    assert customer is not None
    assert not customer.opted_out("whatsapp") and customer.opted_in("whatsapp")


# -- opt-in before business-initiated WhatsApp messages ------------------------------------------


async def test_a_business_initiated_template_without_opt_in_never_reaches_meta() -> None:
    shop = Shop()
    await shop.deliver(shop.fake.inbound.messenger_text(PSID, "Hallo"))
    await shop.deliver(shop.fake.inbound.messenger_text(PSID, "phone"))

    assert shop.whatsapp_sends() == []
    assert shop.fake.sent.on("whatsapp") == []
    (dead,) = await shop.app.dead_letters()
    assert dead.last_error is not None and "ConsentRequiredError" in dead.last_error
    assert "no WhatsApp opt-in" in dead.last_error
    assert await shop.store.outbox_list("pending") == []


async def test_with_a_recorded_opt_in_the_template_goes_out() -> None:
    shop = Shop()
    await shop.deliver(shop.fake.inbound.messenger_text(PSID, "Hallo"))
    await shop.deliver(shop.fake.inbound.messenger_text(PSID, "phone+optin"))

    (template,) = shop.fake.sent.on("whatsapp")
    assert template.type == "template" and template.to == WA_ID
    assert await shop.app.dead_letters() == []
    customer = await shop.whatsapp_customer()
    assert customer is not None
    consent = customer.consents[-1]
    assert (consent.granted, consent.source) == (True, "messenger:test")
    assert consent.wording == "Dürfen wir dir auf WhatsApp schreiben?"


def test_consent_required_error_names_what_to_do() -> None:
    from waflow.flows.identity import Customer, LinkedId
    from waflow.flows.windows import check_whatsapp_send

    clock = FrozenClock()
    customer = Customer(id="c1", created_at=clock.now(), ids=[LinkedId(kind="wa_id", value=WA_ID)])
    with pytest.raises(ConsentRequiredError, match="record it"):
        check_whatsapp_send(customer, "pn", clock.now(), is_template=True)


# -- handoff codes -------------------------------------------------------------------------------


def _code_of(link_text: str) -> str:
    from urllib.parse import parse_qs, urlparse

    prefilled = parse_qs(urlparse(link_text).query)["text"][0]
    return prefilled.rsplit(" ", 1)[-1]


async def test_a_handoff_code_links_while_it_is_valid() -> None:
    shop = Shop(handoff_lifetime=timedelta(hours=1))
    await shop.deliver(shop.fake.inbound.messenger_text(PSID, "link"))
    code = _code_of(shop.fake.sent.last.text or "")
    shop.clock.advance(minutes=59)

    await shop.deliver(shop.fake.inbound.whatsapp_text(WA_ID, f"Hallo! Mein Code: {code}"))

    customer = await shop.whatsapp_customer()
    assert customer is not None
    assert {linked.kind for linked in customer.ids} >= {"psid", "wa_id"}


async def test_an_expired_handoff_code_links_nobody() -> None:
    shop = Shop(handoff_lifetime=timedelta(hours=1))
    await shop.deliver(shop.fake.inbound.messenger_text(PSID, "link"))
    code = _code_of(shop.fake.sent.last.text or "")
    shop.clock.advance(hours=1, seconds=1)

    await shop.deliver(shop.fake.inbound.whatsapp_text(WA_ID, f"Hallo! Mein Code: {code}"))

    customer = await shop.whatsapp_customer()
    assert customer is not None
    assert "psid" not in {linked.kind for linked in customer.ids}  # a new, unlinked customer


async def test_a_handoff_code_is_single_use() -> None:
    shop = Shop()
    await shop.deliver(shop.fake.inbound.messenger_text(PSID, "link"))
    code = _code_of(shop.fake.sent.last.text or "")
    await shop.deliver(shop.fake.inbound.whatsapp_text(WA_ID, f"Code: {code}"))

    other = "4915187654321"
    await shop.deliver(shop.fake.inbound.whatsapp_text(other, f"Code: {code}"))

    event = parse(shop.fake.inbound.whatsapp_text(other, "x"))[0]
    stranger = await shop.engine.customer_for(event)
    assert stranger is not None
    assert "psid" not in {linked.kind for linked in stranger.ids}  # the code was used up


class _SlowStep(Flow):
    """Takes a moment for every message, so two workers' handling of two events overlaps."""

    name = "slow"
    start = State(initial=True)

    @start.on(F.kind("message"), to=None)
    async def step(self, event: Any, ctx: FlowContext[Any]) -> None:
        await asyncio.sleep(0.05)


async def test_one_handoff_code_sent_by_two_numbers_at_once_links_only_one(
    each_store: Store,
) -> None:
    # Two workers each read the code before either used it; the second commit must fail and
    # its event be applied again without the code.
    clock = FrozenClock()
    fake = FakeGraphAPI(clock=clock)
    first = Engine(_SlowStep, store=each_store, clock=clock, owner="worker-1")
    second = Engine(_SlowStep, store=each_store, clock=clock, owner="worker-2")
    [hello] = parse(fake.inbound.messenger_text(PSID, "hallo"))
    await first.handle(hello)
    customer = await first.customer_for(hello)
    assert customer is not None
    code = "K7Q2-M9XP"
    await each_store.commit(
        Commit(
            handoffs=[
                {
                    "code": code,
                    "customer_id": customer.id,
                    "expires_at": (clock.now() + timedelta(days=3)).isoformat(),
                }
            ]
        )
    )
    numbers = ("4915111111111", "4917622222222")
    [one] = parse(fake.inbound.whatsapp_text(numbers[0], f"Mein Code: {code}"))
    [two] = parse(fake.inbound.whatsapp_text(numbers[1], f"Mein Code: {code}"))

    async def soon_after() -> None:
        await asyncio.sleep(0.01)
        await second.handle(two)

    await asyncio.gather(first.handle(one), soon_after())
    owners = await each_store.index_lookup(
        [LinkedId(kind="wa_id", value=number).key for number in numbers]
    )
    assert len(owners) == 2  # both numbers are customers now
    assert list(owners.values()).count(customer.id) == 1  # but only one is the Messenger one
    assert await each_store.handoff_get(code) is None


# -- marketing by the template's category --------------------------------------------------------


def _template(name: str, category: str) -> TemplateDefinition:
    return TemplateDefinition.from_body(
        {
            "name": name,
            "language": "de",
            "category": category,
            "components": [
                {
                    "type": "BODY",
                    "text": "Hallo {{1}}!" + (" {{2}} {{3}}" if name == "order_followup" else ""),
                    "example": {
                        "body_text": [
                            ["Lena", "Laden", "Rad"] if name == "order_followup" else ["Lena"]
                        ]
                    },
                }
            ],
        }
    )


@pytest.mark.parametrize("with_registry", [True, False])
async def test_a_marketing_template_by_category_is_refused_after_an_opt_out(
    with_registry: bool,
) -> None:
    registry = TemplateRegistry(
        [_template("spring_sale", "MARKETING"), _template("order_followup", "UTILITY")]
    )
    shop = Shop(templates=registry if with_registry else None)
    await shop.deliver(shop.fake.inbound.whatsapp_text(WA_ID, "STOP"))
    before = len(shop.whatsapp_sends())

    await shop.deliver(shop.fake.inbound.whatsapp_text(WA_ID, "news"))

    sent = [m.body["template"]["name"] for m in shop.fake.sent.on("whatsapp").of_type("template")]
    if with_registry:
        assert sent == []  # the whole handling was refused: nothing of it went out
        assert len(shop.whatsapp_sends()) == before
        (dead,) = await shop.app.dead_letters()
        assert dead.last_error is not None and "opted out" in dead.last_error
    else:  # without the registry waflow cannot know: both templates go out
        assert sent == ["spring_sale", "order_followup"]


class _CountsOverlap(Flow):
    """Notes how many of its steps run at once."""

    name = "overlap"
    start = State(initial=True)
    running = 0
    most = 0

    @start.on(F.kind("message"), to=None)
    async def step(self, event: Any, ctx: FlowContext[Any]) -> None:
        cls = type(self)
        cls.running += 1
        cls.most = max(cls.most, cls.running)
        await asyncio.sleep(0.05)
        cls.running -= 1


async def test_two_events_of_one_customer_in_one_process_do_not_overlap(
    each_store: Store,
) -> None:
    # The customer lock excludes two tasks of one engine as it does two processes (it used to
    # be held per engine, so both ran at once, and the first to finish unlocked the other).
    _CountsOverlap.running = _CountsOverlap.most = 0
    clock = FrozenClock()
    fake = FakeGraphAPI(clock=clock)
    engine = Engine(_CountsOverlap, store=each_store, clock=clock)
    [first] = parse(fake.inbound.whatsapp_text(WA_ID, "hallo"))
    await engine.handle(first)  # the customer exists
    one, two = (parse(fake.inbound.whatsapp_text(WA_ID, text))[0] for text in ("x", "y"))
    customer = await engine.customer_for(first)
    assert customer is not None
    seen: list[bool] = []

    async def another_process() -> None:
        await asyncio.sleep(0.07)  # the first step is done, the second still runs
        key = f"customer:{customer.id}"
        seen.append(await each_store.lock_acquire(key, "another-process", 30, clock.now()))

    await asyncio.gather(engine.handle(one), engine.handle(two), another_process())
    assert _CountsOverlap.most == 1
    assert seen == [False]  # still locked by the step that runs


async def test_a_task_started_inside_a_locked_block_takes_the_lock_itself() -> None:
    # Tasks copy the context: a child must not believe it holds its parent's customer lock.
    engine = Engine(_CountsOverlap, store=MemoryStore(), lock_wait=5)
    inside = 0
    most = 0

    async def critical(seconds: float) -> None:
        nonlocal inside, most
        inside += 1
        most = max(most, inside)
        await asyncio.sleep(seconds)
        inside -= 1

    async def child() -> None:
        async with engine._locked(["c1"]):
            await critical(0.2)

    async def parent() -> asyncio.Task[None]:
        async with engine._locked(["c1"]):
            started = asyncio.create_task(child())
            await critical(0.05)
        return started

    async def unrelated() -> None:
        await asyncio.sleep(0.1)
        async with engine._locked(["c1"]):
            await critical(0.05)

    started, _ = await asyncio.gather(parent(), unrelated())
    await started
    assert most == 1


async def test_a_failed_release_leaves_the_task_holding_nothing() -> None:
    class BlipOnRelease(MemoryStore):
        blips = 1

        async def lock_release(self, key: str, owner: str) -> None:
            if self.blips:
                self.blips -= 1
                raise ConnectionError("the store went away for a moment")
            await super().lock_release(key, owner)

    clock = FrozenClock()
    store = BlipOnRelease()
    engine = Engine(_CountsOverlap, store=store, clock=clock, lock_wait=1)
    async with engine._locked(["c1"]):
        pass  # the release fails (logged), the lock expires on its own
    clock.advance(seconds=31)
    assert await store.lock_acquire("customer:c1", "another-worker", 30, clock.now())
    with pytest.raises(LockTimeoutError):  # this task must wait for it like anyone else
        async with engine._locked(["c1"]):
            pass
