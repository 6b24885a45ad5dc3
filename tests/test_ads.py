"""Click-to-chat ads: AdContext, mapping ads to products, links, and Purchase conversions."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tests.spec import WEBHOOK_PATH, request_examples
from waflow import App
from waflow import filters as F
from waflow.ads import AdContext, AdMapping, m_me_link, wa_me_link
from waflow.conversions import conversion_event, purchase_event
from waflow.errors import ConfigError, MessageValidationError
from waflow.flows import Flow, State
from waflow.flows.context import FlowContext
from waflow.flows.engine import Engine
from waflow.flows.windows import free_entry_until
from waflow.store import MemoryStore
from waflow.testing import FakeGraphAPI, FrozenClock
from waflow.webhooks import parse

CATALOG = "194836987003835"
AD_ID = "120226305854810726"  # the ad of the spec's click-to-WhatsApp example
MAPPING = AdMapping({AD_ID: "succulent-box"})


def ctwa_example() -> dict[str, Any]:
    return request_examples(WEBHOOK_PATH)["Text Message from Click to WhatsApp Ad"]


def test_the_spec_click_to_whatsapp_example_yields_an_ad_context() -> None:
    (event,) = parse(ctwa_example())
    ad = AdContext.from_event(event)
    assert ad is not None
    assert ad.channel == "whatsapp"
    assert ad.ctwa_clid is not None and ad.ctwa_clid.startswith("Aff-n8ZTODiE79d22KtAwQKj9e")
    assert (ad.ad_id, ad.source, ad.is_ad) == (AD_ID, "ad", True)
    assert ad.headline == "Chat with us"
    assert ad.welcome_text == "Hi there! Let us know how we can help!"
    assert (ad.business_id, ad.customer) == ("106540352242922", "16505551234")
    assert MAPPING.target(ad) == "succulent-box"


def test_messenger_ad_and_shortlink_referrals() -> None:
    fake = FakeGraphAPI()
    ad_body = fake.inbound.messenger_referral(
        "6945398272183744", ad_id="23851234567890", source="ADS"
    )
    (ad_event,) = parse(ad_body)
    ad = AdContext.from_event(ad_event)
    assert ad is not None and (ad.channel, ad.source, ad.ad_id, ad.is_ad) == (
        "messenger",
        "ADS",
        "23851234567890",
        True,
    )
    link = parse(fake.inbound.messenger_referral("6945398272183744", ref="spring"))[0]
    shortlink = AdContext.from_event(link)
    assert shortlink is not None and (shortlink.source, shortlink.ref, shortlink.is_ad) == (
        "SHORTLINK",
        "spring",
        False,
    )
    assert AdMapping(refs={"spring": "trek-3"}).target(shortlink) == "trek-3"
    assert AdContext.from_event(parse(fake.inbound.messenger_text("1", "hi"))[0]) is None


def test_links() -> None:
    link = wa_me_link("+49 30 1234567", "Hallo Lenas Radladen! Mein Code: K7Q2-M9XP & 🚲")
    assert (
        link
        == "https://wa.me/49301234567?text=Hallo%20Lenas%20Radladen%21%20Mein%20Code%3A%20K7Q2-M9XP%20%26%20%F0%9F%9A%B2"
    )
    with pytest.raises(MessageValidationError, match="prefilled text <= 256"):
        wa_me_link("+49 30 1234567", "x" * 257)
    with pytest.raises(MessageValidationError, match="international form"):
        wa_me_link("12345")
    for national in ("0049 30 1234567", "030 1234567"):  # wa.me would lead nowhere
        with pytest.raises(MessageValidationError, match="international form"):
            wa_me_link(national)
    assert wa_me_link("+49 (0)30 1234567") == "https://wa.me/49301234567"
    assert (
        m_me_link("lenasradladen", "ad:spring sale")
        == "https://m.me/lenasradladen?ref=ad%3Aspring%20sale"
    )


def test_conversion_events_are_checked_locally() -> None:
    clock = FrozenClock()
    with pytest.raises(MessageValidationError, match="ctwa_clid"):
        conversion_event("LeadSubmitted", channel="whatsapp", at=clock.now(), waba_id="1")
    with pytest.raises(MessageValidationError, match="page_scoped_user_id"):
        conversion_event("LeadSubmitted", channel="messenger", at=clock.now(), page_id="1")
    with pytest.raises(MessageValidationError, match="needs its currency"):
        conversion_event(
            "AddToCart", channel="messenger", at=clock.now(), page_id="1", psid="2", value=3.0
        )
    with pytest.raises(MessageValidationError, match="Purchase"):
        conversion_event("Purchase", channel="messenger", at=clock.now(), page_id="1", psid="2")
    with pytest.raises(MessageValidationError, match="event_name"):
        conversion_event("Lead", channel="messenger", at=clock.now(), page_id="1", psid="2")  # type: ignore[arg-type]


def test_the_conversions_client_posts_to_the_dataset() -> None:
    fake = FakeGraphAPI()
    event = purchase_event(
        channel="whatsapp",
        at=FrozenClock().now(),
        value=899.0,
        currency="EUR",
        event_id="order-1",
        ctwa_clid="ARAkLkA8rmlFeiCktEJQ-QTwRiyYHAFDLMNDBH0CD3qpjd0HR4irJ6LEkR7JwFF4XvnO2E4Nx0-eM-GABDLOPaOdRMv-_zfUQ2a",
        waba_id=fake.waba_id,
    )
    result = fake.conversions().send(event)
    assert result.events_received == 1
    (sent,) = fake.conversion_events
    assert sent == {
        "event_name": "Purchase",
        "event_time": int(FrozenClock().now().timestamp()),
        "action_source": "business_messaging",
        "messaging_channel": "whatsapp",
        "user_data": {
            "whatsapp_business_account_id": fake.waba_id,
            "ctwa_clid": event.user_data.ctwa_clid,
        },
        "custom_data": {"currency": "EUR", "value": 899.0},
        "event_id": "order-1",
    }


# -- the journey: ad -> mapped product -> order -> one Purchase ---------------------------------


class AdFlow(Flow):
    name = "ad"
    start = State(initial=True)
    offered = State()
    ordered = State()

    @start.on(F.channel("whatsapp") & F.kind("message"), to="offered")
    def offer(self, event: Any, ctx: FlowContext[Any]) -> None:
        product = MAPPING.target(AdContext.from_event(event)) or "bestseller"
        ctx.whatsapp.send_product(CATALOG, product, body="Das Produkt aus der Anzeige")

    @offered.on(F.message_type("order"), to="ordered")
    def confirm(self, event: Any, ctx: FlowContext[Any]) -> None:
        order = event.order
        ctx.reply(f"Danke! {order.total:.2f} {order.currency}")
        ctx.report_conversion(
            "Purchase",
            value=order.total,
            currency=order.currency,
            content_ids=[item.product_retailer_id for item in order.items],
        )

    @ordered.on(F.kind("message"), to="offered")
    def again(self, event: Any, ctx: FlowContext[Any]) -> None:
        ctx.reply("Noch etwas?")


def _ad_shop() -> tuple[FakeGraphAPI, App, Engine, FrozenClock]:
    clock = FrozenClock("2025-06-18T19:46:40Z")  # right after the spec example's timestamp
    fake = FakeGraphAPI(clock=clock)
    store = MemoryStore()
    engine = Engine(
        AdFlow,
        store=store,
        clock=clock,
        dataset_id=fake.dataset_id,
        whatsapp_number=fake.phone_number_id,
    )
    app = App(
        app_secret=fake.app_secret,
        store=store,
        whatsapp=fake.async_whatsapp(),
        conversions=fake.async_conversions(),
        clock=clock,
        engine=engine,
    )
    return fake, app, engine, clock


async def test_an_ad_click_leads_to_its_product_and_one_purchase_per_order() -> None:
    fake, app, engine, clock = _ad_shop()
    example = ctwa_example()
    assert (await app.dispatch(fake.webhook_request(example))).status == 200

    offer = fake.sent.last
    assert offer.interactive_type == "product"
    assert offer.body["interactive"]["action"]["product_retailer_id"] == "succulent-box"
    (event,) = parse(example)
    customer = await engine.customer_for(event)
    assert customer is not None
    assert free_entry_until(customer, fake.phone_number_id) == clock.now() + timedelta(hours=72)
    assert AdContext.latest(customer) == AdContext.from_event(event)

    order = fake.inbound.whatsapp_order("16505551234", CATALOG, [("succulent-box", 2, 24.5, "USD")])
    for _ in range(2):  # Meta delivers the order webhook twice
        assert (await app.dispatch(fake.webhook_request(order))).status == 200
    await app.run_pending()

    assert [m.text for m in fake.sent.of_type("text")] == ["Danke! 49.00 USD"]
    (purchase,) = fake.conversion_events
    assert purchase["event_name"] == "Purchase"
    assert purchase["user_data"]["ctwa_clid"] == event.referral.ctwa_clid  # type: ignore[attr-defined]
    assert purchase["user_data"]["whatsapp_business_account_id"] == event.waba_id  # type: ignore[attr-defined]
    assert purchase["custom_data"] == {
        "currency": "USD",
        "value": 49.0,
        "content_ids": ["succulent-box"],
        "content_type": "product",
    }
    assert purchase["event_id"].startswith("Purchase:wamid.")


async def test_the_same_conversion_queued_twice_is_reported_once() -> None:
    # As if a first attempt crashed after queueing and the handler ran again: the outbox id of a
    # conversion comes from its event_id, so the second copy is ignored.
    from waflow.conversions import ConversionBatch
    from waflow.outbox import draft_item
    from waflow.store import Commit

    fake, app, _engine, clock = _ad_shop()
    event = purchase_event(
        channel="whatsapp",
        at=clock.now(),
        value=10.0,
        currency="USD",
        event_id="Purchase:wamid.ORDER",
        ctwa_clid="clid",
        waba_id=fake.waba_id,
    )
    copies = [
        draft_item(
            ConversionBatch(data=[event]),
            channel="conversions",
            business_id=fake.dataset_id,
            customer="c",
            now=clock.now(),
        )
        for _ in range(2)
    ]
    await app.store.commit(Commit(outbox=copies[:1]))
    await app.store.commit(Commit(outbox=copies[1:]))
    await app.run_pending()
    assert len(fake.conversion_events) == 1


async def test_no_report_without_an_ad_or_after_the_attribution_window() -> None:
    fake, app, _engine, clock = _ad_shop()
    await app.dispatch(fake.webhook_request(fake.inbound.whatsapp_text("4917612345678", "Hallo")))
    await app.dispatch(
        fake.webhook_request(
            fake.inbound.whatsapp_order("4917612345678", CATALOG, [("x", 1, 5.0, "EUR")])
        )
    )
    assert fake.conversion_events == []  # not from an ad: nothing to report

    await app.dispatch(fake.webhook_request(ctwa_example()))
    clock.advance(timedelta(days=8))
    order = fake.inbound.whatsapp_order("16505551234", CATALOG, [("succulent-box", 1, 10.0, "USD")])
    await app.dispatch(fake.webhook_request(order))
    assert fake.conversion_events == []  # Meta no longer credits the ad


def test_reporting_needs_a_dataset() -> None:
    clock = FrozenClock()
    engine = Engine(AdFlow, store=MemoryStore(), clock=clock)
    from waflow.flows.identity import Customer

    ctx: FlowContext[Any] = FlowContext(
        engine=engine,
        event=None,
        customer=Customer(id="c", created_at=clock.now()),
        data=AdFlow.new_data(),
        now=clock.now(),
        state="start",
    )
    with pytest.raises(ConfigError, match="dataset_id"):
        ctx.report_conversion("Purchase", value=1.0, currency="EUR", event_id="x")
