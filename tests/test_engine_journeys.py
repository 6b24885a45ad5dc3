"""In-process journeys on the fakes: Messenger start -> product -> WhatsApp -> order."""

from __future__ import annotations

from typing import Any

import pytest

from tests.engine_flows import CATALOG, PHONE_PROMPT, SHOP, ShopFlow
from waflow import App
from waflow.flows.engine import Engine
from waflow.store import MemoryStore
from waflow.testing import FakeGraphAPI, FrozenClock

PSID = "6945398272183744"
PHONE = "+4915112345678"
WA_ID = "4915112345678"


class Shop:
    """An app with the engine on the fakes, and a customer talking to it."""

    def __init__(self) -> None:
        self.clock = FrozenClock()
        self.fake = FakeGraphAPI(clock=self.clock)
        self.store = MemoryStore()
        self.engine = Engine(
            ShopFlow,
            store=self.store,
            clock=self.clock,
            whatsapp_number=self.fake.phone_number_id,
            whatsapp_display_number="+49 30 1234567",
        )
        self.app = App(
            app_secret=self.fake.app_secret,
            store=self.store,
            whatsapp=self.fake.async_whatsapp(),
            messenger=self.fake.async_messenger(),
            clock=self.clock,
            engine=self.engine,
        )

    async def deliver(self, body: dict[str, Any]) -> None:
        response = await self.app.dispatch(self.fake.webhook_request(body))
        assert response.status == 200, response.text


@pytest.fixture
def shop() -> Shop:
    return Shop()


async def test_messenger_to_whatsapp_by_phone_and_opt_in(shop: Shop) -> None:
    fake, inbound = shop.fake, shop.fake.inbound
    await shop.deliver(inbound.messenger_text(PSID, "Hallo!"))
    carousel = fake.sent.last
    assert (carousel.channel, carousel.type) == ("messenger", "template")
    payloads = [
        b["payload"]
        for e in carousel.body["message"]["attachment"]["payload"]["elements"]
        for b in e["buttons"]
    ]
    assert payloads == ["product:city-7", "product:trek-3"]

    await shop.deliver(inbound.messenger_postback(PSID, "product:trek-3", "Ansehen"))
    prompt = fake.sent.last
    assert prompt.type == "quick_replies"
    assert prompt.text == PHONE_PROMPT
    assert {"content_type": "user_phone_number"} in prompt.body["message"]["quick_replies"]

    await shop.deliver(inbound.messenger_phone_quick_reply(PSID, PHONE))
    template = fake.sent.on("whatsapp").last
    assert template.type == "template"
    assert template.to == WA_ID
    assert template.body["template"]["name"] == "order_followup"
    params = [p["text"] for p in template.body["template"]["components"][0]["parameters"]]
    assert params[1:] == [SHOP, "Trekkingrad"]
    customer = await shop.engine.customer(
        next(iter((await shop.store.index_lookup([f"psid:{fake.page_id}:{PSID}"])).values()))
    )
    assert customer is not None
    assert customer.phone == PHONE
    assert customer.opted_in("whatsapp")
    assert customer.consents[-1].wording == PHONE_PROMPT

    await shop.deliver(inbound.whatsapp_text(WA_ID, "Ja, gerne!", name="Lena Berg"))
    product = fake.sent.on("whatsapp").last
    assert product.interactive_type == "product"
    assert product.body["interactive"]["action"] == {
        "catalog_id": CATALOG,
        "product_retailer_id": "trek-3",
    }

    await shop.deliver(inbound.whatsapp_order(WA_ID, CATALOG, [("trek-3", 1, 899.0, "EUR")]))
    assert fake.sent.last.text == "Danke für deine Bestellung über 899.00 EUR!"

    # One customer throughout: linked Messenger and WhatsApp ids, one conversation.
    same = await shop.engine.customer(customer.id)
    assert same is not None and same.state == "ordered"
    assert {(i.kind, i.value) for i in same.ids} >= {
        ("psid", PSID),
        ("phone", PHONE),
        ("wa_id", WA_ID),
    }
    assert [m.channel for m in fake.sent] == [
        "messenger",
        "messenger",
        "whatsapp",
        "messenger",
        "whatsapp",
        "whatsapp",
    ]


async def test_messenger_to_whatsapp_by_link_code_needs_no_template(shop: Shop) -> None:
    fake, inbound = shop.fake, shop.fake.inbound
    await shop.deliver(inbound.messenger_text(PSID, "Hallo!"))
    await shop.deliver(inbound.messenger_postback(PSID, "product:city-7", "Ansehen"))
    await shop.deliver(inbound.messenger_quick_reply(PSID, "LINK", "Link schicken"))
    button = fake.sent.last.body["message"]["attachment"]["payload"]["buttons"][0]
    link = button["url"]
    assert link.startswith("https://wa.me/49301234567?text=")
    from urllib.parse import parse_qs, urlparse

    prefilled = parse_qs(urlparse(link).query)["text"][0]
    assert prefilled.startswith(f"Hallo {SHOP}! Mein Code: ")

    # The customer taps the link and sends the prefilled text from a number we never saw.
    await shop.deliver(inbound.whatsapp_text("4917612345678", prefilled))
    whatsapp = fake.sent.on("whatsapp")
    assert [m.type for m in whatsapp] == ["interactive"]  # no template: the customer wrote first
    assert whatsapp.last.body["interactive"]["action"]["product_retailer_id"] == "city-7"
    assert whatsapp.last.to == "4917612345678"

    # The code is single-use: sending it again from another number links nobody.
    await shop.deliver(inbound.whatsapp_text("4917699999999", prefilled))
    stranger = fake.sent.to("4917699999999")
    assert [m.text for m in stranger] == [f"Willkommen bei {SHOP}!"]


async def test_a_redelivered_event_changes_nothing(shop: Shop) -> None:
    inbound = shop.fake.inbound
    hello = inbound.messenger_text(PSID, "Hallo!")
    await shop.deliver(hello)
    tap = inbound.messenger_postback(PSID, "product:city-7", "Ansehen")
    await shop.deliver(tap)
    sent = len(shop.fake.sent)
    await shop.deliver(tap)
    await shop.deliver(hello)
    assert len(shop.fake.sent) == sent


async def test_timeouts_fire_from_stored_deadlines(shop: Shop) -> None:
    inbound = shop.fake.inbound
    await shop.deliver(inbound.messenger_text(PSID, "Hallo!"))
    await shop.deliver(inbound.messenger_postback(PSID, "product:city-7", "Ansehen"))
    shop.clock.advance(hours=19, minutes=59)
    await shop.app.run_pending()
    assert shop.fake.sent.last.type == "quick_replies"
    shop.clock.advance(minutes=1)
    await shop.app.run_pending()
    assert shop.fake.sent.last.text == "Noch Interesse? Tippe auf ein Rad."
    shop.clock.advance(hours=5)
    await shop.app.run_pending()
    assert shop.fake.sent.last.text == "Noch Interesse? Tippe auf ein Rad."  # fired once


async def test_stop_opts_out(shop: Shop) -> None:
    inbound = shop.fake.inbound
    await shop.deliver(inbound.whatsapp_text(WA_ID, "Hallo"))
    await shop.deliver(inbound.whatsapp_text(WA_ID, "STOP"))
    assert shop.fake.sent.last.text == "Du bekommst keine Nachrichten mehr von uns."
    customer = await shop.engine.customer_for(_event(shop, WA_ID))
    assert customer is not None and customer.opted_out("whatsapp")


def _event(shop: Shop, wa_id: str) -> Any:
    from waflow.webhooks import parse

    return parse(shop.fake.inbound.whatsapp_text(wa_id, "x"))[0]


async def test_routers_see_the_customers_flow_state(shop: Shop) -> None:
    from waflow import filters as F

    seen: list[str | None] = []
    # Reactions are not taken by the flow: they fall through to the app's router.
    shop.app.router.on(F.kind("reaction") & F.state("browsing"))(
        lambda event, ctx: seen.append(ctx.customer_state)
    )
    await shop.deliver(shop.fake.inbound.messenger_text(PSID, "Hallo!"))
    body = {
        "object": "page",
        "entry": [
            {
                "id": shop.fake.page_id,
                "time": 1772442000000,
                "messaging": [
                    {
                        "sender": {"id": PSID},
                        "recipient": {"id": shop.fake.page_id},
                        "timestamp": 1772442000000,
                        "reaction": {
                            "mid": "m_1",
                            "action": "react",
                            "emoji": "👍",
                            "reaction": "like",
                        },
                    }
                ],
            }
        ],
    }
    await shop.deliver(body)
    assert seen == ["browsing"]


async def test_status_webhooks_reconcile_with_the_outbox(shop: Shop) -> None:
    inbound = shop.fake.inbound
    await shop.deliver(inbound.whatsapp_text(WA_ID, "Hallo"))
    (item,) = await shop.store.outbox_list("sent")
    sent = shop.fake.sent.last
    assert sent.body["biz_opaque_callback_data"] == f"wf:{item.id}"
    await shop.deliver(
        inbound.whatsapp_status(sent.message_id, "delivered", WA_ID, callback_data=f"wf:{item.id}")
    )
    await shop.deliver(
        inbound.whatsapp_status(sent.message_id, "read", WA_ID, callback_data=f"wf:{item.id}")
    )
    record = await shop.app.outbox.delivery(item.id)
    assert record is not None
    assert record.status == "read"
    assert record.callback_data == f"wf:{item.id}"
