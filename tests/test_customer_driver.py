"""The Customer driver of waflow.testing: a scripted customer talking to an App on both channels.

These tests use the fixtures of waflow's own pytest plugin (``waflow_app``, ``waflow_customer``,
``fake_graph``, ``frozen_clock``, ``memory_store``), as a user's test-suite would.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.engine_flows import CATALOG, PHONE_PROMPT, SHOP, ShopFlow
from waflow import App
from waflow import filters as F
from waflow.flows.engine import Engine
from waflow.messenger import build as fb
from waflow.routing import HandlerContext
from waflow.store import MemoryStore
from waflow.testing import Customer, FakeGraphAPI, FrozenClock, TapError
from waflow.testing.plugin import AppFactory, CustomerFactory
from waflow.whatsapp import build as wa
from waflow.whatsapp.template_components import ButtonComponent, PayloadParameter

# waflow's own session turns the entry point off (see pyproject.toml) and loads the plugin here.
pytest_plugins = ["waflow.testing.plugin"]

APPOINTMENT = {
    "name": "appointment",
    "language": "de",
    "category": "UTILITY",
    "components": [
        {
            "type": "BODY",
            "text": "Hallo {{1}}, dein Termin ist am {{2}}.",
            "example": {"body_text": [["Lena", "Montag"]]},
        },
        {
            "type": "BUTTONS",
            "buttons": [
                {"type": "QUICK_REPLY", "text": "Bestätigen"},
                {"type": "QUICK_REPLY", "text": "Absagen"},
            ],
        },
    ],
}
WA_LINK = "https://wa.me/15550783881?text=Hallo%21%20Mein%20Code%3A%20K7Q2"


def shop_bot(app: App) -> App:
    """A small router bot with something to tap of every kind, on both channels."""

    @app.message(F.channel("whatsapp"), F.text("menü", ignore_case=True))
    async def menu(event: Any, ctx: HandlerContext) -> None:
        ctx.reply(wa.buttons(event.wa_id, "Weiter?", {"yes": "Ja", "no": "Nein"}))

    @app.message(F.channel("whatsapp"), F.text("räder", ignore_case=True))
    async def bikes(event: Any, ctx: HandlerContext) -> None:
        rows = {"Räder": [("city-7", "Stadtrad", "7 Gänge"), ("trek-3", "Trekkingrad", "27 Gänge")]}
        ctx.reply(wa.list_menu(event.wa_id, "Welches Rad?", "Auswählen", rows))

    @app.message(F.channel("whatsapp"), F.text("termin", ignore_case=True))
    async def appointment(event: Any, ctx: HandlerContext) -> None:
        buttons = [
            ButtonComponent(
                sub_type="quick_reply", index=i, parameters=[PayloadParameter(payload=p)]
            )
            for i, p in enumerate(["CONFIRM", "CANCEL"])
        ]
        ctx.reply(
            wa.template(event.wa_id, "appointment", "de", body=["Lena", "Montag"], buttons=buttons)
        )

    @app.message(F.channel("whatsapp"), F.text("web", ignore_case=True))
    async def website(event: Any, ctx: HandlerContext) -> None:
        ctx.reply(wa.cta_url(event.wa_id, "Zum Shop", "Shop öffnen", "https://shop.example/"))

    @app.message(F.channel("whatsapp"), F.message_type("interactive", "button"))
    async def tapped(event: Any, ctx: HandlerContext) -> None:
        ctx.reply(f"Gewählt: {event.reply_title} ({event.reply_id})")

    @app.message(F.channel("whatsapp"), F.message_type("image"))
    async def photo(event: Any, ctx: HandlerContext) -> None:
        content = await ctx.whatsapp.media.download(event.image.id)
        ctx.reply(f"Foto erhalten ({len(content)} Bytes): {event.image.caption}")

    @app.message(F.channel("whatsapp"), F.message_type("reaction"))
    async def reaction(event: Any, ctx: HandlerContext) -> None:
        on = event.reaction.message_id
        if event.reaction.emoji:
            ctx.reply(f"Reaktion {event.reaction.emoji} auf {on}")
        else:
            ctx.reply(f"Reaktion entfernt auf {on}")

    @app.message(F.channel("whatsapp"), F.message_type("location"))
    async def located(event: Any, ctx: HandlerContext) -> None:
        where = event.location
        ctx.reply(f"Standort: {where.latitude}, {where.longitude} {where.name or ''}".strip())

    @app.message(F.channel("whatsapp"), F.message_type("order"))
    async def ordered(event: Any, ctx: HandlerContext) -> None:
        order = event.order
        ctx.reply(f"Bestellung aus {order.catalog_id}: {order.total:.2f} {order.items[0].currency}")

    @app.message(F.channel("whatsapp"), F.referral())
    async def from_ad(event: Any, ctx: HandlerContext) -> None:
        ctx.reply(f"Willkommen aus der Anzeige {event.referral.source_id}!")

    @app.message(F.channel("whatsapp"))
    async def echo(event: Any, ctx: HandlerContext) -> None:
        ctx.reply(f"Du schreibst: {event.text}")

    @app.message(F.channel("messenger"), F.referral())
    async def messenger_ad(event: Any, ctx: HandlerContext) -> None:
        ctx.reply(f"Hallo aus der Anzeige {event.referral.ad_id}!")

    @app.on(F.channel("messenger"), F.kind("referral"))
    async def referred(event: Any, ctx: HandlerContext) -> None:
        ctx.reply(f"Willkommen zurück ({event.ref or event.ad_id})")

    @app.on(F.channel("messenger"), F.kind("postback"))
    async def postback(event: Any, ctx: HandlerContext) -> None:
        if event.payload == "PRICES":
            cards = [
                fb.element("Stadtrad", buttons=[fb.postback_button("Details", "DETAILS:city-7")]),
                fb.element(
                    "Trekkingrad", buttons=[fb.postback_button("Details", "DETAILS:trek-3")]
                ),
            ]
            ctx.reply(fb.generic_template(event.sender_id, cards))
        else:
            ctx.reply(f"Postback: {event.payload}")

    @app.message(F.channel("messenger"), F.payload("MORE"))
    async def more(event: Any, ctx: HandlerContext) -> None:
        buttons = [fb.postback_button("Preise", "PRICES"), fb.url_button("WhatsApp", WA_LINK)]
        ctx.reply(fb.button_template(event.sender_id, "Was darf es sein?", buttons))

    @app.message(F.channel("messenger"), F.when(lambda e: (e.payload or "").startswith("+")))
    async def phone(event: Any, ctx: HandlerContext) -> None:
        ctx.reply(f"Wir schreiben dir an {event.payload}.")

    @app.message(F.channel("messenger"), F.when(lambda e: "@" in (e.payload or "")))
    async def email(event: Any, ctx: HandlerContext) -> None:
        ctx.reply(f"Post an {event.payload}.")

    @app.message(F.channel("messenger"))
    async def hello(event: Any, ctx: HandlerContext) -> None:
        replies = [("MORE", "Mehr"), "user_phone_number", "user_email"]
        ctx.reply(fb.quick_replies(event.sender_id, "Hallo! Wie kann ich helfen?", replies))

    return app


@pytest.fixture
def customer(
    waflow_app: AppFactory, waflow_customer: CustomerFactory, fake_graph: FakeGraphAPI
) -> Customer:
    fake_graph.templates.add(APPOINTMENT)
    return waflow_customer(shop_bot(waflow_app()))


# -- WhatsApp ------------------------------------------------------------------------------------


async def test_says_returns_the_replies_to_the_customer(customer: Customer) -> None:
    replies = await customer.whatsapp.says("Hallo")
    assert replies.texts() == ["Du schreibst: Hallo"]
    assert replies.last.to == customer.wa_id
    assert customer.last_reply is replies.last
    assert customer.whatsapp.last_reply is replies.last


async def test_taps_a_reply_button_by_title_or_id(customer: Customer) -> None:
    await customer.whatsapp.says("Menü")
    buttons = customer.last_reply
    replies = await customer.whatsapp.taps("Ja")
    assert replies.texts() == ["Gewählt: Ja (yes)"]
    await customer.whatsapp.taps("no")
    assert customer.last_reply.text == "Gewählt: Nein (no)"
    assert customer.whatsapp.tappables()[0].message is buttons


async def test_a_tap_carries_the_context_of_the_message_that_showed_it(
    waflow_app: AppFactory, waflow_customer: CustomerFactory, fake_graph: FakeGraphAPI
) -> None:
    seen: list[str | None] = []
    app = waflow_app()

    @app.message(F.text("menü"))
    async def menu(event: Any, ctx: HandlerContext) -> None:
        ctx.reply(wa.buttons(event.wa_id, "Weiter?", {"yes": "Ja"}))

    @app.message(F.message_type("interactive"))
    async def tapped(event: Any, ctx: HandlerContext) -> None:
        seen.append(event.replied_to)

    customer = waflow_customer(app)
    await customer.whatsapp.says("menü")
    await customer.whatsapp.taps("Ja")
    assert seen == [fake_graph.sent.last.message_id]


async def test_taps_a_list_row(customer: Customer) -> None:
    await customer.whatsapp.says("Räder")
    replies = await customer.whatsapp.taps("Trekkingrad")
    assert replies.texts() == ["Gewählt: Trekkingrad (trek-3)"]
    await customer.whatsapp.taps("city-7")
    assert customer.last_reply.text == "Gewählt: Stadtrad (city-7)"


async def test_taps_a_template_quick_reply_by_its_registered_text(customer: Customer) -> None:
    await customer.whatsapp.says("Termin")
    assert customer.last_reply.type == "template"
    replies = await customer.whatsapp.taps("Bestätigen")
    assert replies.texts() == ["Gewählt: Bestätigen (CONFIRM)"]
    await customer.whatsapp.taps("CANCEL")
    assert customer.last_reply.text == "Gewählt: Absagen (CANCEL)"


async def test_an_unregistered_template_offers_its_payloads(customer: Customer) -> None:
    customer.fake.templates.reset()
    await customer.whatsapp.says("Termin")
    assert [t.title for t in customer.whatsapp.tappables()] == ["CONFIRM", "CANCEL"]
    await customer.whatsapp.taps("CONFIRM")
    assert customer.last_reply.text == "Gewählt: CONFIRM (CONFIRM)"


async def test_orders_from_the_catalog(customer: Customer, fake_graph: FakeGraphAPI) -> None:
    replies = await customer.whatsapp.orders(
        fake_graph.catalog_id, [("trek-3", 1, 899.0, "EUR"), ("lock-1", 2, 24.5, "EUR")]
    )
    assert replies.texts() == [f"Bestellung aus {fake_graph.catalog_id}: 948.00 EUR"]


async def test_sends_a_location(customer: Customer) -> None:
    replies = await customer.whatsapp.sends_location(52.52, 13.405, name="Alexanderplatz")
    assert replies.texts() == ["Standort: 52.52, 13.405 Alexanderplatz"]


async def test_sends_a_photo_the_bot_can_download(
    customer: Customer, fake_graph: FakeGraphAPI
) -> None:
    replies = await customer.whatsapp.sends_media("image", b"\xff\xd8 photo", caption="Kaputt")

    assert replies.texts() == ["Foto erhalten (8 Bytes): Kaputt"]
    assert "(WhatsApp): sends a photo: Kaputt" in customer.transcript()


async def test_reacts_to_the_last_reply_and_removes_the_reaction(customer: Customer) -> None:
    await customer.whatsapp.says("Menü")
    asked = customer.whatsapp.last_reply

    liked = await customer.whatsapp.reacts("👍")
    removed = await customer.whatsapp.reacts(None, to=asked.message_id)

    assert liked.texts() == [f"Reaktion 👍 auf {asked.message_id}"]
    assert removed.texts() == [f"Reaktion entfernt auf {asked.message_id}"]


async def test_comes_from_a_click_to_whatsapp_ad(customer: Customer) -> None:
    replies = await customer.whatsapp.comes_from_ad(
        "Ich will das Rad!", source_id="120200000000001"
    )
    assert replies.texts() == ["Willkommen aus der Anzeige 120200000000001!"]


async def test_opens_a_wa_me_link_and_sends_its_prefilled_text(customer: Customer) -> None:
    replies = await customer.opens_link(WA_LINK)
    assert replies.texts() == ["Du schreibst: Hallo! Mein Code: K7Q2"]
    assert replies.last.channel == "whatsapp"


async def test_a_link_that_sends_nothing_is_refused(customer: Customer) -> None:
    with pytest.raises(ValueError, match="no prefilled text"):
        await customer.opens_link("https://wa.me/15550783881")
    with pytest.raises(ValueError, match=r"not a wa.me or m.me chat link"):
        await customer.opens_link("https://shop.example/")
    with pytest.raises(ValueError, match="not a Messenger chat link"):
        await customer.messenger.opens_link(WA_LINK)
    await customer.whatsapp.says("web")
    with pytest.raises(ValueError, match=r"shop.example"):
        await customer.whatsapp.taps("Shop öffnen")


async def test_replies_to_a_message_of_the_bot(
    waflow_app: AppFactory, waflow_customer: CustomerFactory
) -> None:
    quoted: list[str | None] = []
    app = waflow_app()

    @app.message()
    async def note(event: Any, ctx: HandlerContext) -> None:
        quoted.append(event.replied_to)
        ctx.reply("Notiert.")

    customer = waflow_customer(app)
    await customer.whatsapp.says("Erste")
    await customer.whatsapp.says("Zweite", reply_to=customer.last_reply)
    assert quoted == [None, customer.replies[0].message_id]


# -- Messenger -----------------------------------------------------------------------------------


async def test_messenger_quick_replies_postbacks_and_cards(customer: Customer) -> None:
    replies = await customer.messenger.says("Hallo")
    assert replies.last.type == "quick_replies"
    assert replies.last.to == customer.psid

    replies = await customer.messenger.taps("Mehr")
    assert replies.last.text is None  # a button template
    await customer.messenger.taps("Preise")
    assert customer.last_reply.type == "template"

    # Two cards offer "Details": the driver will not guess.
    with pytest.raises(TapError, match="several") as failure:
        await customer.messenger.taps("Details")
    assert "DETAILS:city-7" in str(failure.value) and "DETAILS:trek-3" in str(failure.value)
    replies = await customer.messenger.taps("Details", on="Trekkingrad")
    assert replies.texts() == ["Postback: DETAILS:trek-3"]
    await customer.messenger.taps("DETAILS:city-7")
    assert customer.last_reply.text == "Postback: DETAILS:city-7"


async def test_the_phone_quick_reply_shares_the_customers_number(customer: Customer) -> None:
    await customer.messenger.says("Hallo")
    replies = await customer.messenger.taps(customer.phone)
    assert replies.texts() == ["Wir schreiben dir an +4915112345678."]
    await customer.messenger.says("Hallo")
    await customer.messenger.taps("user_phone_number")
    assert customer.last_reply.text == "Wir schreiben dir an +4915112345678."
    await customer.messenger.says("Hallo")
    await customer.messenger.taps("user_email")
    assert customer.last_reply.text == "Post an lena.berg@example.com."


async def test_quick_replies_of_older_messages_are_gone(customer: Customer) -> None:
    await customer.messenger.says("Hallo")
    await customer.messenger.taps("Mehr")
    with pytest.raises(TapError, match="Messenger hides quick replies"):
        await customer.messenger.taps("Mehr")


async def test_a_url_button_to_whatsapp_continues_there(customer: Customer) -> None:
    await customer.messenger.says("Hallo")
    await customer.messenger.taps("Mehr")
    replies = await customer.messenger.taps("WhatsApp")
    assert [(m.channel, m.text) for m in replies] == [
        ("whatsapp", "Du schreibst: Hallo! Mein Code: K7Q2")
    ]


async def test_comes_from_a_click_to_messenger_ad(customer: Customer) -> None:
    replies = await customer.messenger.comes_from_ad("Ist das Rad noch da?", ad_id="1202777")
    assert replies.texts() == ["Hallo aus der Anzeige 1202777!"]
    # Without a text: Meta's referral webhook of an existing thread.
    replies = await customer.messenger.comes_from_ad(ad_id="1202888")
    assert replies.texts() == ["Willkommen zurück (1202888)"]


async def test_opens_an_m_me_link_with_a_ref(customer: Customer) -> None:
    replies = await customer.messenger.opens_link("https://m.me/lenasradladen?ref=spring-sale")
    assert replies.texts() == ["Willkommen zurück (spring-sale)"]
    with pytest.raises(ValueError, match="no ref"):
        await customer.opens_link("https://m.me/lenasradladen")


async def test_gets_started(customer: Customer) -> None:
    replies = await customer.messenger.gets_started()
    assert replies.texts() == ["Postback: GET_STARTED"]


# -- failures that explain themselves ------------------------------------------------------------


async def test_tapping_something_absent_lists_what_was_tappable(customer: Customer) -> None:
    await customer.whatsapp.says("Menü")
    with pytest.raises(TapError) as failure:
        await customer.whatsapp.taps("Vielleicht")
    message = str(failure.value)
    assert message.startswith("Lena Berg cannot tap 'Vielleicht' on WhatsApp.")
    assert "'Ja' (reply button, payload 'yes')" in message
    assert "'Nein' (reply button, payload 'no')" in message
    assert isinstance(failure.value, AssertionError)


async def test_tapping_when_nothing_is_tappable_says_so(customer: Customer) -> None:
    with pytest.raises(TapError, match="has sent 4915112345678 nothing on WhatsApp"):
        await customer.whatsapp.taps("Ja")
    await customer.whatsapp.says("Hallo")
    with pytest.raises(TapError, match=r"can be tapped .*Du schreibst: Hallo"):
        await customer.whatsapp.taps("Ja")


async def test_a_failing_handler_fails_the_action(
    waflow_app: AppFactory, waflow_customer: CustomerFactory
) -> None:
    app = waflow_app()

    @app.message()
    async def broken(event: Any, ctx: HandlerContext) -> None:
        raise RuntimeError("database is down")

    with pytest.raises(AssertionError, match=r"handler .* failed: RuntimeError: database is down"):
        await waflow_customer(app).whatsapp.says("Hallo")
    # Tests of retries can turn the check off.
    replies = await waflow_customer(app, check_handlers=False).whatsapp.says("Hallo")
    assert replies == []


async def test_an_app_with_another_secret_is_reported(
    waflow_customer: CustomerFactory, frozen_clock: FrozenClock
) -> None:
    app = App(app_secret="other", store=MemoryStore(), clock=frozen_clock)
    with pytest.raises(AssertionError, match=r"answered 403.*app_secret=fake.app_secret"):
        await waflow_customer(app).whatsapp.says("Hallo")


# -- statuses --------------------------------------------------------------------------------------


async def test_deliver_and_read_reach_the_apps_store(
    customer: Customer, fake_graph: FakeGraphAPI
) -> None:
    reply = (await customer.whatsapp.says("Hallo")).last
    callback = reply.body["biz_opaque_callback_data"]
    store = customer.app.store

    body = fake_graph.deliver(reply)
    status = body["entry"][0]["changes"][0]["value"]["statuses"][0]
    assert status["recipient_id"] == customer.wa_id
    assert status["biz_opaque_callback_data"] == callback
    assert status["pricing"]["category"] == "service"
    assert (await customer.app.dispatch(fake_graph.webhook_request(body))).status == 200
    record = await store.message_record(reply.message_id)
    assert record is not None and record.status == "delivered"
    assert record.callback_data == callback

    await customer.app.dispatch(fake_graph.webhook_request(fake_graph.read(reply.message_id)))
    record = await store.message_record(reply.message_id)
    assert record is not None and record.status == "read"
    assert fake_graph.undelivered() == []


async def test_fail_reports_the_error(customer: Customer, fake_graph: FakeGraphAPI) -> None:
    reply = (await customer.whatsapp.says("Termin")).last
    body = fake_graph.fail(reply)
    status = body["entry"][0]["changes"][0]["value"]["statuses"][0]
    assert status["status"] == "failed"
    assert status["errors"][0]["code"] == 131047
    await customer.app.dispatch(fake_graph.webhook_request(body))
    record = await customer.app.store.message_record(reply.message_id)
    assert record is not None and record.status == "failed"
    assert record.errors[0]["code"] == 131047


async def test_template_statuses_carry_the_templates_category(
    customer: Customer, fake_graph: FakeGraphAPI
) -> None:
    reply = (await customer.whatsapp.says("Termin")).last
    status = fake_graph.deliver(reply)["entry"][0]["changes"][0]["value"]["statuses"][0]
    assert status["pricing"]["category"] == "utility"


async def test_deliver_all_covers_every_undelivered_message(
    customer: Customer, fake_graph: FakeGraphAPI
) -> None:
    await customer.whatsapp.says("Hallo")
    await customer.whatsapp.says("Menü")
    await customer.messenger.says("Hallo")
    await customer.messenger.taps("Mehr")
    assert len(fake_graph.undelivered()) == 4
    bodies = fake_graph.deliver_all()
    # Two WhatsApp statuses, and the two Messenger messages in one delivery event.
    assert [b["object"] for b in bodies] == ["whatsapp_business_account"] * 2 + ["page"]
    assert bodies[2]["entry"][0]["messaging"][0]["delivery"]["mids"] == [
        m.message_id for m in customer.messenger.replies
    ]
    assert fake_graph.undelivered() == []
    assert fake_graph.deliver_all() == []


async def test_reads_marks_everything_read_in_the_store(customer: Customer) -> None:
    await customer.whatsapp.says("Hallo")
    await customer.whatsapp.says("Menü")
    await customer.reads()
    for reply in customer.whatsapp.replies:
        record = await customer.app.store.message_record(reply.message_id)
        assert record is not None and record.status == "read"
        assert set(record.statuses) == {"delivered", "read"}


async def test_read_all_reads_each_messenger_thread_once(
    customer: Customer, fake_graph: FakeGraphAPI
) -> None:
    await customer.messenger.says("Hallo")
    await customer.messenger.taps("Mehr")
    events = [body["entry"][0]["messaging"][0] for body in fake_graph.read_all()]
    assert [("delivery" in e, "read" in e) for e in events] == [(True, False), (False, True)]
    assert fake_graph.read_all() == []


async def test_any_status_can_be_built(customer: Customer, fake_graph: FakeGraphAPI) -> None:
    reply = (await customer.whatsapp.says("Hallo")).last
    status = fake_graph.status(reply, "sent")["entry"][0]["changes"][0]["value"]["statuses"][0]
    assert (status["status"], status["id"]) == ("sent", reply.message_id)
    assert fake_graph.undelivered() == [reply]  # "sent" is not delivered


def test_statuses_of_messages_the_fake_never_sent_are_refused() -> None:
    fake = FakeGraphAPI()
    with pytest.raises(ValueError, match=r"sent no message with id 'wamid.nope'"):
        fake.deliver("wamid.nope")
    fake.messenger().send_text("6945398272183744", "Hallo")
    with pytest.raises(ValueError, match="Messenger reports only"):
        fake.fail(fake.sent.last)
    body = fake.read(fake.sent.last)
    assert "read" in body["entry"][0]["messaging"][0]


# -- the whole journey, on the engine --------------------------------------------------------------


async def test_the_engine_journey_from_messenger_to_a_whatsapp_order(
    fake_graph: FakeGraphAPI,
    frozen_clock: FrozenClock,
    memory_store: MemoryStore,
    waflow_app: AppFactory,
    waflow_customer: CustomerFactory,
) -> None:
    engine = Engine(
        ShopFlow,
        store=memory_store,
        clock=frozen_clock,
        whatsapp_number=fake_graph.phone_number_id,
        whatsapp_display_number="+49 30 1234567",
    )
    customer = waflow_customer(waflow_app(engine=engine))

    await customer.messenger.says("Hallo!")
    await customer.messenger.taps("Ansehen", on="Trekkingrad")
    assert customer.last_reply.text == PHONE_PROMPT
    replies = await customer.messenger.taps(customer.phone)
    assert [(m.channel, m.type) for m in replies] == [
        ("whatsapp", "template"),
        ("messenger", "text"),
    ]
    await customer.whatsapp.says("Ja, gerne!")
    assert customer.last_reply.interactive_type == "product"
    await customer.whatsapp.orders(CATALOG, [("trek-3", 1, 899.0, "EUR")])
    assert customer.last_reply.text == "Danke für deine Bestellung über 899.00 EUR!"

    silent = await customer.waits(hours=30)
    assert silent == []
    transcript = customer.transcript(bot=SHOP)
    assert transcript.splitlines()[:3] == [
        "09:00 Lena Berg (Messenger): Hallo!",
        f"09:00 {SHOP} (Messenger): [cards: Stadtrad (Ansehen) | Trekkingrad (Ansehen)]",
        "09:00 Lena Berg (Messenger): taps 'Ansehen' on 'Trekkingrad'",
    ]
    assert "09:00 Lena Berg (Messenger): shares the phone number +4915112345678" in transcript
    assert "[template order_followup (de): du, Lenas Radladen, Trekkingrad]" in transcript
    assert "orders 1 × trek-3 à 899 EUR" in transcript
    assert transcript.endswith("(… 1 d 6 h later)")


async def test_the_link_journey_taps_the_wa_me_button(
    fake_graph: FakeGraphAPI,
    frozen_clock: FrozenClock,
    memory_store: MemoryStore,
    waflow_app: AppFactory,
    waflow_customer: CustomerFactory,
) -> None:
    fake_graph.display_phone_number = "+49 30 1234567"  # the number customers see
    engine = Engine(
        ShopFlow,
        store=memory_store,
        clock=frozen_clock,
        whatsapp_number=fake_graph.phone_number_id,
        whatsapp_display_number="+49 30 1234567",
    )
    customer = waflow_customer(waflow_app(engine=engine), wa_id="+49 176 12345678")
    await customer.messenger.says("Hallo!")
    await customer.messenger.taps("product:city-7")
    await customer.messenger.taps("Link schicken")
    replies = await customer.messenger.taps("WhatsApp öffnen")
    assert [(m.channel, m.interactive_type) for m in replies] == [("whatsapp", "product")]
    assert replies.last.to == "4917612345678"


async def test_a_wa_me_link_to_another_number_is_refused(customer: Customer) -> None:
    # Built with the phone number id (or any number but the shop's), the link leads nowhere
    # real: the handoff must fail in the test, as it would for the customer.
    with pytest.raises(ValueError, match=r"leads to 106540352242922, not the shop's WhatsApp"):
        await customer.opens_link("https://wa.me/106540352242922?text=CODE-123")
    with pytest.raises(ValueError, match="leads to no number"):
        await customer.opens_link("https://wa.me/?text=CODE-123")
    sent = await customer.opens_link("https://api.whatsapp.com/send?phone=15550783881&text=Hi")
    assert sent is not None


async def test_timeouts_fire_while_the_customer_waits(
    fake_graph: FakeGraphAPI,
    frozen_clock: FrozenClock,
    memory_store: MemoryStore,
    waflow_app: AppFactory,
    waflow_customer: CustomerFactory,
) -> None:
    engine = Engine(ShopFlow, store=memory_store, clock=frozen_clock)
    customer = waflow_customer(waflow_app(engine=engine))
    await customer.messenger.says("Hallo!")
    await customer.messenger.taps("product:city-7")
    assert await customer.waits(hours=19, minutes=59) == []
    reminder = await customer.waits(minutes=1)
    assert reminder.texts() == ["Noch Interesse? Tippe auf ein Rad."]


def test_a_customer_has_stable_ids() -> None:
    fake = FakeGraphAPI()
    app = App(app_secret=fake.app_secret, store=MemoryStore())
    one, two = Customer(app, fake), Customer(app, fake)
    assert one.psid == two.psid and len(one.psid) == 16
    assert Customer(app, fake, wa_id="4917612345678").psid != one.psid
    assert (one.wa_id, one.phone, one.email) == (
        "4915112345678",
        "+4915112345678",
        "lena.berg@example.com",
    )
    with pytest.raises(ValueError, match="wa_id must be a phone number"):
        Customer(app, fake, wa_id="lena")
    with pytest.raises(AssertionError, match="has sent Lena Berg nothing"):
        _ = one.last_reply
