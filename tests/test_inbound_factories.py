"""``fake.inbound``: webhook bodies of both channels, as Meta shapes them, signed by the fake.

Every factory's body goes through the fake's signature and :func:`waflow.webhooks.unwrap` (verify +
parse) and must come out as the expected typed event, with the fake's clock and seeded ids.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from waflow import App
from waflow.errors import WebhookVerificationError
from waflow.events import Event
from waflow.messenger.events import (
    MessengerDelivery,
    MessengerMessage,
    MessengerPostback,
    MessengerRead,
    MessengerReferral,
)
from waflow.routing import HandlerContext
from waflow.store.memory import MemoryStore
from waflow.testing import FakeGraphAPI, FrozenClock, Inbound
from waflow.webhooks import unwrap
from waflow.whatsapp import WhatsApp, build
from waflow.whatsapp.events import WhatsAppMessage, WhatsAppStatus

START = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
LENA = "4915112345678"
PSID = "7029384756102938"
BSUID = "DE.1502576394655843"
CATALOG = "194836987003835"


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


@pytest.fixture
def fake(clock: FrozenClock) -> FakeGraphAPI:
    return FakeGraphAPI(clock=clock, seed=7)


def receive(fake: FakeGraphAPI, body: dict[str, Any]) -> list[Event]:
    """What an app would get: the body signed by the fake, then verified and parsed."""
    raw, headers = fake.sign(body)
    return unwrap(raw, headers, app_secret=fake.app_secret)


def one(fake: FakeGraphAPI, body: dict[str, Any]) -> Event:
    events = receive(fake, body)
    assert len(events) == 1
    return events[0]


def whatsapp_message(fake: FakeGraphAPI, body: dict[str, Any]) -> WhatsAppMessage:
    event = one(fake, body)
    assert isinstance(event, WhatsAppMessage)
    assert event.phone_number_id == fake.phone_number_id
    assert event.display_phone_number == fake.display_phone_number
    assert event.waba_id == fake.waba_id
    assert event.id.startswith("wamid.")
    assert event.timestamp == START
    return event


def messenger_message(fake: FakeGraphAPI, body: dict[str, Any]) -> MessengerMessage:
    event = one(fake, body)
    assert isinstance(event, MessengerMessage)
    assert event.page_id == fake.page_id
    assert event.sender_id == PSID
    assert event.id.startswith("m_")
    assert event.timestamp == START
    return event


# -- the fake wires it up ------------------------------------------------------------------------


def test_every_fake_has_inbound_factories_bound_to_it(fake: FakeGraphAPI) -> None:
    assert isinstance(fake.inbound, Inbound)
    assert FakeGraphAPI().inbound is not fake.inbound


def test_sign_gives_the_exact_bytes_and_meta_headers(fake: FakeGraphAPI) -> None:
    body = fake.inbound.whatsapp_text(LENA, "Grüße aus Köln 🚲", name="Lena")

    raw, headers = fake.sign(body)

    assert raw == json.dumps(body, ensure_ascii=False).encode()
    assert "Grüße aus Köln 🚲".encode() in raw  # serialized once, non-ASCII kept
    digest = hmac.new(fake.app_secret.encode(), raw, hashlib.sha256).hexdigest()
    assert headers == {
        "X-Hub-Signature-256": f"sha256={digest}",
        "Content-Type": "application/json",
    }


def test_signature_no_longer_matches_altered_bytes(fake: FakeGraphAPI) -> None:
    raw, headers = fake.sign(fake.inbound.messenger_text(PSID, "Hallo"))

    with pytest.raises(WebhookVerificationError):
        unwrap(raw.replace(b"Hallo", b"Hallo!"), headers, app_secret=fake.app_secret)
    with pytest.raises(WebhookVerificationError):
        unwrap(raw, headers, app_secret="another-app-secret")


def test_sign_signs_given_bytes_as_they_are(fake: FakeGraphAPI) -> None:
    raw = b'{"object": "page", "entry": []}'

    signed, headers = fake.sign(raw)

    assert signed is raw
    assert unwrap(signed, headers, app_secret=fake.app_secret) == []


async def test_webhook_request_is_accepted_and_handled_by_an_app(fake: FakeGraphAPI) -> None:
    seen: list[Event] = []
    app = App(app_secret=fake.app_secret, store=MemoryStore(), clock=fake.clock)

    @app.message()
    async def record(event: Event, ctx: HandlerContext) -> None:
        seen.append(event)

    request = fake.webhook_request(fake.inbound.whatsapp_text(LENA, "Hallo", name="Lena"))
    response = await app.dispatch(request)

    assert request.method == "POST"
    assert request.path == "/webhook"
    assert response.status == 200
    assert [event.text for event in seen if isinstance(event, WhatsAppMessage)] == ["Hallo"]


async def test_app_refuses_a_body_signed_with_another_secret(fake: FakeGraphAPI) -> None:
    app = App(app_secret="the-real-app-secret", store=MemoryStore(), clock=fake.clock)

    response = await app.dispatch(fake.webhook_request(fake.inbound.messenger_text(PSID, "Hi")))

    assert response.status == 403


# -- WhatsApp messages ---------------------------------------------------------------------------


def test_whatsapp_text(fake: FakeGraphAPI) -> None:
    event = whatsapp_message(fake, fake.inbound.whatsapp_text(LENA, "Hallo!", name="Lena"))

    assert (event.type, event.text) == ("text", "Hallo!")
    assert event.sender_id == event.wa_id == event.customer_id == LENA
    assert event.profile_name == "Lena"
    assert event.context is None
    assert event.referral is None
    assert event.is_from_customer


def test_whatsapp_text_normalizes_the_number_to_a_wa_id(fake: FakeGraphAPI) -> None:
    body = fake.inbound.whatsapp_text("+49 151 12345678", "Hallo")

    event = whatsapp_message(fake, body)

    assert event.sender_id == LENA
    assert body["entry"][0]["changes"][0]["value"]["contacts"] == [{"wa_id": LENA}]
    with pytest.raises(ValueError, match="phone number"):
        fake.inbound.whatsapp_text("lena", "Hallo")


def test_whatsapp_text_reply_carries_context(fake: FakeGraphAPI) -> None:
    earlier = fake.new_wamid()

    event = whatsapp_message(fake, fake.inbound.whatsapp_text(LENA, "Ja", context_id=earlier))

    assert event.replied_to == earlier
    assert event.context is not None
    assert event.context.from_ == fake.display_phone_number


def test_whatsapp_text_to_another_number(fake: FakeGraphAPI) -> None:
    event = one(fake, fake.inbound.whatsapp_text(LENA, "Hallo", phone_number_id="200000000000001"))

    assert event.business_id == "200000000000001"


def test_whatsapp_text_from_a_business_scoped_user_without_number(fake: FakeGraphAPI) -> None:
    body = fake.inbound.whatsapp_text("", "Hallo", user_id=BSUID, username="lena.rides")
    value = body["entry"][0]["changes"][0]["value"]

    event = whatsapp_message(fake, body)

    assert value["contacts"][0]["wa_id"] == ""
    assert value["messages"][0]["from"] == ""
    assert value["messages"][0]["from_user_id"] == BSUID
    assert event.sender_id == event.user_id == event.customer_id == BSUID
    assert event.username == "lena.rides"
    assert not event.wa_id


def test_whatsapp_text_with_number_and_business_scoped_user_id(fake: FakeGraphAPI) -> None:
    event = whatsapp_message(fake, fake.inbound.whatsapp_text(LENA, "Hallo", user_id=BSUID))

    assert (event.sender_id, event.wa_id, event.user_id) == (LENA, LENA, BSUID)


def test_whatsapp_customer_needs_a_number_or_a_user_id(fake: FakeGraphAPI) -> None:
    with pytest.raises(ValueError, match="user_id"):
        fake.inbound.whatsapp_text("", "Hallo")


def test_whatsapp_button_reply(fake: FakeGraphAPI) -> None:
    wa = fake.whatsapp()
    sent = wa.send(build.buttons(LENA, "Weiter auf WhatsApp?", [("yes", "Ja"), ("no", "Nein")]))
    wa.send_text(LENA, "Noch etwas?")  # the tap still answers the button message

    event = whatsapp_message(fake, fake.inbound.whatsapp_button_reply(LENA, "yes", "Ja"))

    assert event.type == "interactive"
    assert (event.reply_id, event.reply_title) == ("yes", "Ja")
    assert event.interactive is not None
    assert event.interactive.type == "button_reply"
    assert event.replied_to == sent.message_id


def test_whatsapp_button_reply_to_a_given_message(fake: FakeGraphAPI) -> None:
    body = fake.inbound.whatsapp_button_reply(LENA, "yes", "Ja", context_id="wamid.ABC")

    assert whatsapp_message(fake, body).replied_to == "wamid.ABC"


def test_whatsapp_list_reply(fake: FakeGraphAPI) -> None:
    wa = fake.whatsapp()
    sent = wa.send(
        build.list_menu(LENA, "Welche Größe?", "Größen", {"Rahmen": [("size_m", "M (54 cm)")]})
    )

    body = fake.inbound.whatsapp_list_reply(
        LENA, "size_m", "M (54 cm)", description="170-180 cm", name="Lena"
    )
    event = whatsapp_message(fake, body)

    assert (event.reply_id, event.reply_title) == ("size_m", "M (54 cm)")
    assert event.interactive is not None
    assert event.interactive.list_reply is not None
    assert event.interactive.list_reply.description == "170-180 cm"
    assert event.replied_to == sent.message_id


def test_whatsapp_template_button(fake: FakeGraphAPI) -> None:
    sent = fake.whatsapp().send(build.template(LENA, "order_followup", "de", body=["Lena"]))

    event = whatsapp_message(
        fake, fake.inbound.whatsapp_template_button(LENA, "STOP_PROMOS", "Abbestellen")
    )

    assert event.type == "button"
    assert (event.reply_id, event.reply_title) == ("STOP_PROMOS", "Abbestellen")
    assert event.replied_to == sent.message_id


def test_interactive_reply_without_earlier_message_gets_a_fresh_context_id(
    fake: FakeGraphAPI,
) -> None:
    event = whatsapp_message(fake, fake.inbound.whatsapp_button_reply(LENA, "yes", "Ja"))

    assert event.replied_to is not None
    assert event.replied_to.startswith("wamid.")
    assert event.replied_to != event.id


def test_whatsapp_location_of_a_place(fake: FakeGraphAPI) -> None:
    body = fake.inbound.whatsapp_location(
        LENA,
        52.5219,
        13.4132,
        place_name="Fahrradladen",
        address="Torstraße 1, Berlin",
        name="Lena",
    )
    event = whatsapp_message(fake, body)

    assert event.type == "location"
    assert event.location is not None
    assert (event.location.latitude, event.location.longitude) == (52.5219, 13.4132)
    assert (event.location.name, event.location.address) == ("Fahrradladen", "Torstraße 1, Berlin")
    assert event.profile_name == "Lena"
    # Meta sends coordinates as JSON numbers, not strings.
    raw = body["entry"][0]["changes"][0]["value"]["messages"][0]["location"]
    assert raw == {
        "latitude": 52.5219,
        "longitude": 13.4132,
        "name": "Fahrradladen",
        "address": "Torstraße 1, Berlin",
    }


def test_whatsapp_location_of_a_dropped_pin_has_only_coordinates(fake: FakeGraphAPI) -> None:
    event = whatsapp_message(fake, fake.inbound.whatsapp_location(LENA, -33.8688, 151.2093))

    assert event.location is not None
    assert (event.location.name, event.location.address) == (None, None)
    assert event.raw["location"] == {"latitude": -33.8688, "longitude": 151.2093}


@pytest.mark.parametrize(
    ("kind", "mime_type"),
    [
        ("image", "image/jpeg"),
        ("audio", "audio/ogg; codecs=opus"),
        ("video", "video/mp4"),
        ("document", "application/pdf"),
        ("sticker", "image/webp"),
    ],
)
def test_whatsapp_media_of_every_kind_can_be_downloaded(
    fake: FakeGraphAPI, kind: str, mime_type: str
) -> None:
    content = f"the {kind} bytes".encode()
    event = whatsapp_message(fake, fake.inbound.whatsapp_media(LENA, kind, content))  # type: ignore[arg-type]

    assert event.type == kind
    media = event.media
    assert media is not None and media is getattr(event, kind)
    assert media.mime_type == mime_type
    assert media.sha256 == base64.b64encode(hashlib.sha256(content).digest()).decode()
    with fake.client() as http:
        wa = WhatsApp(
            access_token=fake.access_token, phone_number_id=fake.phone_number_id, http_client=http
        )
        assert wa.media.download(media.id) == content


def test_whatsapp_photo_with_caption_and_a_document_with_its_filename(fake: FakeGraphAPI) -> None:
    photo = whatsapp_message(
        fake, fake.inbound.whatsapp_media(LENA, "image", b"\xff\xd8", caption="Die Bremse")
    )
    invoice = whatsapp_message(
        fake,
        fake.inbound.whatsapp_media(
            LENA, "document", b"%PDF", filename="rechnung.pdf", caption="Rechnung"
        ),
    )
    voice = whatsapp_message(fake, fake.inbound.whatsapp_media(LENA, "audio", b"OggS", voice=True))

    assert photo.image is not None and photo.image.caption == "Die Bremse"
    assert invoice.document is not None
    assert (invoice.document.filename, invoice.document.caption) == ("rechnung.pdf", "Rechnung")
    assert voice.audio is not None and voice.audio.voice is True


def test_whatsapp_media_by_the_id_of_a_file_already_in_the_fake(fake: FakeGraphAPI) -> None:
    media_id = fake.add_media(b"PNG bytes", "image/png", "photo.png")
    event = whatsapp_message(
        fake, fake.inbound.whatsapp_media(LENA, "image", media_id=media_id, mime_type="image/png")
    )

    assert event.image is not None
    assert event.image.id == media_id
    assert event.image.sha256 == base64.b64encode(hashlib.sha256(b"PNG bytes").digest()).decode()


@pytest.mark.parametrize(
    ("kind", "options", "complaint"),
    [
        ("audio", {"caption": "hi"}, "carries no caption"),
        ("sticker", {"caption": "hi"}, "carries no caption"),
        ("image", {"filename": "a.jpg"}, "only a document has a filename"),
        ("video", {"voice": True}, "only an audio can be a voice note"),
    ],
)
def test_whatsapp_media_refuses_what_meta_never_sends(
    fake: FakeGraphAPI, kind: str, options: dict[str, Any], complaint: str
) -> None:
    with pytest.raises(ValueError, match=complaint):
        fake.inbound.whatsapp_media(LENA, kind, b"x", **options)  # type: ignore[arg-type]


def test_whatsapp_reaction_and_its_removal(fake: FakeGraphAPI) -> None:
    reacted = whatsapp_message(fake, fake.inbound.whatsapp_reaction(LENA, "wamid.ABC", "👍"))
    removed = whatsapp_message(fake, fake.inbound.whatsapp_reaction(LENA, "wamid.ABC", None))

    assert reacted.type == removed.type == "reaction"
    assert reacted.reaction is not None and removed.reaction is not None
    assert (reacted.reaction.message_id, reacted.reaction.emoji) == ("wamid.ABC", "👍")
    assert (removed.reaction.message_id, removed.reaction.emoji) == ("wamid.ABC", None)
    assert "emoji" not in removed.raw["reaction"]


def test_whatsapp_order(fake: FakeGraphAPI) -> None:
    body = fake.inbound.whatsapp_order(
        LENA, CATALOG, [("alpina-28-m", 1, 899.0, "EUR"), ("helmet-m", 2, 49.95, "EUR")]
    )
    product_items = body["entry"][0]["changes"][0]["value"]["messages"][0]["order"]["product_items"]

    event = whatsapp_message(fake, body)

    assert event.type == "order"
    assert event.order is not None
    assert event.order.catalog_id == CATALOG
    assert [
        (i.product_retailer_id, i.quantity, i.item_price, i.currency) for i in event.order.items
    ] == [
        ("alpina-28-m", 1, 899.0, "EUR"),
        ("helmet-m", 2, 49.95, "EUR"),
    ]
    assert event.order.total == pytest.approx(998.9)
    assert isinstance(product_items[0]["quantity"], int)
    with pytest.raises(ValueError, match="at least one item"):
        fake.inbound.whatsapp_order(LENA, CATALOG, [])


def test_whatsapp_ad_referral(fake: FakeGraphAPI) -> None:
    event = whatsapp_message(
        fake, fake.inbound.whatsapp_ad_referral(LENA, "Ich interessiere mich für das Angebot")
    )

    assert event.text == "Ich interessiere mich für das Angebot"
    referral = event.referral
    assert referral is not None
    assert referral.source_type == "ad"
    assert referral.source_id is not None
    assert referral.source_id.isdigit()
    assert referral.source_url is not None
    assert referral.source_url.startswith("https://fb.me/")
    assert referral.ctwa_clid is not None
    assert referral.ctwa_clid.startswith("Aff")
    assert (referral.headline, referral.body) == (
        "Chat with us",
        "Spring sale: 15% off all trekking bikes",
    )
    assert referral.media_type == "image"
    assert referral.image_url is not None


def test_whatsapp_referral_helper_takes_every_field(fake: FakeGraphAPI) -> None:
    referral = fake.inbound.whatsapp_referral(
        source_id="120226305854810726",
        source_url="https://fb.me/3cr4Wqqkv",
        source_type="post",
        headline="Frühlingsaktion",
        body="-15 % auf Trekkingräder",
        media_type="video",
        ctwa_clid="Aff-n8ZTODiE79d22KtAwQKj9e",
        welcome_text="Hallo! Wie können wir helfen?",
    )

    event = whatsapp_message(fake, fake.inbound.whatsapp_text(LENA, "Hallo", referral=referral))

    assert event.referral is not None
    assert event.referral.model_dump(exclude_none=True) == referral | {
        "video_url": referral["video_url"],
        "thumbnail_url": referral["thumbnail_url"],
    }
    assert event.referral.welcome_text == "Hallo! Wie können wir helfen?"
    assert "image_url" not in referral


def test_whatsapp_referral_of_a_status_ad_has_no_click_id(fake: FakeGraphAPI) -> None:
    referral = fake.inbound.whatsapp_referral(status_ad=True)

    event = whatsapp_message(fake, fake.inbound.whatsapp_ad_referral(LENA, "Hallo", referral))

    assert event.referral is not None
    assert event.referral.ctwa_clid is None
    assert event.referral.source_id == referral["source_id"]


# -- WhatsApp statuses ---------------------------------------------------------------------------


def test_whatsapp_status_delivered_with_pricing(fake: FakeGraphAPI) -> None:
    sent = fake.whatsapp().send_text(LENA, "Deine Bestellung ist unterwegs")

    event = one(fake, fake.inbound.whatsapp_status(sent.message_id, "delivered", LENA))

    assert isinstance(event, WhatsAppStatus)
    assert (event.status, event.message_id, event.recipient_id) == (
        "delivered",
        sent.message_id,
        LENA,
    )
    assert event.customer_id == LENA
    assert event.timestamp == START
    assert event.errors == []
    assert event.conversation is None  # v24+: only inside a free entry point window
    assert event.pricing is not None
    assert (event.pricing.pricing_model, event.pricing.type, event.pricing.category) == (
        "PMP",
        "free_customer_service",
        "service",
    )
    assert event.pricing.billable is False


def test_whatsapp_status_of_a_billed_template(fake: FakeGraphAPI) -> None:
    body = fake.inbound.whatsapp_status("wamid.T", "sent", LENA, category="marketing")

    event = one(fake, body)

    assert isinstance(event, WhatsAppStatus)
    assert event.pricing is not None
    assert (event.pricing.type, event.pricing.category, event.pricing.billable) == (
        "regular",
        "marketing",
        True,
    )


def test_whatsapp_status_without_pricing(fake: FakeGraphAPI) -> None:
    event = one(fake, fake.inbound.whatsapp_status("wamid.R", "read", LENA, pricing=False))

    assert isinstance(event, WhatsAppStatus)
    assert event.pricing is None


def test_whatsapp_status_failed_with_errors_and_callback_data(fake: FakeGraphAPI) -> None:
    body = fake.inbound.whatsapp_status(
        "wamid.F",
        "failed",
        LENA,
        errors=[(131047, "Re-engagement message")],
        callback_data="outbox:42",
    )

    event = one(fake, body)

    assert isinstance(event, WhatsAppStatus)
    assert event.status == "failed"
    assert event.biz_opaque_callback_data == "outbox:42"
    assert [(error.code, error.title) for error in event.errors] == [
        (131047, "Re-engagement message")
    ]
    assert event.errors[0].details is not None
    assert "24 hours" in event.errors[0].details
    assert event.pricing is None


def test_whatsapp_failed_status_always_names_a_reason(fake: FakeGraphAPI) -> None:
    event = one(fake, fake.inbound.whatsapp_status("wamid.F", "failed", LENA))

    assert isinstance(event, WhatsAppStatus)
    assert [error.code for error in event.errors] == [131000]
    with pytest.raises(ValueError, match="failed"):
        fake.inbound.whatsapp_status("wamid.D", "delivered", LENA, errors=[(131000, "x")])


def test_whatsapp_status_in_a_free_entry_point_window(
    fake: FakeGraphAPI, clock: FrozenClock
) -> None:
    body = fake.inbound.whatsapp_status("wamid.E", "delivered", LENA, free_entry_point=True)

    event = one(fake, body)

    assert isinstance(event, WhatsAppStatus)
    assert event.pricing is not None
    assert (event.pricing.type, event.pricing.billable) == ("free_entry_point", False)
    assert event.conversation is not None
    assert event.conversation.origin == {"type": "referral_conversion"}
    expires = int(event.conversation.expiration_timestamp or 0)
    assert datetime.fromtimestamp(expires, tz=timezone.utc) == START + timedelta(hours=72)


def test_whatsapp_status_to_a_business_scoped_user(fake: FakeGraphAPI) -> None:
    body = fake.inbound.whatsapp_status("wamid.B", "read", "", user_id=BSUID)

    event = one(fake, body)

    assert isinstance(event, WhatsAppStatus)
    assert body["entry"][0]["changes"][0]["value"]["statuses"][0]["recipient_id"] == ""
    assert event.recipient_user_id == BSUID
    assert event.customer_id == event.sender_id == BSUID


# -- Messenger -----------------------------------------------------------------------------------


def test_messenger_text(fake: FakeGraphAPI) -> None:
    event = messenger_message(fake, fake.inbound.messenger_text(PSID, "Hallo!"))

    assert event.text == "Hallo!"
    assert event.quick_reply is None
    assert event.customer_id == PSID
    assert event.is_from_customer


def test_messenger_text_to_another_page(fake: FakeGraphAPI) -> None:
    body = fake.inbound.messenger_text(PSID, "Hallo", page_id="218765432109876")

    event = one(fake, body)

    assert event.business_id == "218765432109876"
    assert body["entry"][0]["id"] == "218765432109876"


def test_messenger_quick_reply(fake: FakeGraphAPI) -> None:
    event = messenger_message(fake, fake.inbound.messenger_quick_reply(PSID, "SIZE_M", "Größe M"))

    assert (event.text, event.payload) == ("Größe M", "SIZE_M")


def test_messenger_phone_quick_reply(fake: FakeGraphAPI) -> None:
    event = messenger_message(
        fake, fake.inbound.messenger_phone_quick_reply(PSID, "+4915112345678")
    )

    assert event.payload == event.text == "+4915112345678"
    assert event.quick_reply is not None


def test_messenger_email_quick_reply(fake: FakeGraphAPI) -> None:
    body = fake.inbound.messenger_email_quick_reply(PSID, "lena.schmidt@example.de")

    event = messenger_message(fake, body)

    assert event.payload == event.text == "lena.schmidt@example.de"


def test_messenger_postback(fake: FakeGraphAPI) -> None:
    event = one(fake, fake.inbound.messenger_postback(PSID, "GET_STARTED", "Los geht's"))

    assert isinstance(event, MessengerPostback)
    assert (event.payload, event.title) == ("GET_STARTED", "Los geht's")
    assert event.referral is None
    assert event.id.startswith("m_")
    assert (event.sender_id, event.page_id, event.timestamp) == (PSID, fake.page_id, START)


def test_messenger_postback_from_an_ad(fake: FakeGraphAPI) -> None:
    referral = fake.inbound.messenger_referral_info(source="ADS", ref="spring-sale")

    event = one(
        fake, fake.inbound.messenger_postback(PSID, "GET_STARTED", "Los geht's", referral=referral)
    )

    assert isinstance(event, MessengerPostback)
    assert event.referral is not None
    assert (event.referral.source, event.referral.ref) == ("ADS", "spring-sale")
    assert event.referral.ad_id == referral["ad_id"]
    assert event.referral.ads_context_data is not None
    assert event.referral.ads_context_data["post_id"].startswith(f"{fake.page_id}_")


def test_messenger_referral_from_an_m_me_link(fake: FakeGraphAPI) -> None:
    event = one(fake, fake.inbound.messenger_referral(PSID, ref="flyer-ladentheke"))

    assert isinstance(event, MessengerReferral)
    assert (event.ref, event.ad_id) == ("flyer-ladentheke", None)
    assert (event.referral.source, event.referral.type) == ("SHORTLINK", "OPEN_THREAD")
    assert (event.sender_id, event.timestamp) == (PSID, START)


def test_messenger_referral_from_an_ad(fake: FakeGraphAPI) -> None:
    context = {"ad_title": "Dein Helm fehlt noch?", "post_id": "1122334455667788_42"}

    body = fake.inbound.messenger_referral(
        PSID, ad_id="120214567890987654", ads_context_data=context
    )
    event = one(fake, body)

    assert isinstance(event, MessengerReferral)
    assert event.ad_id == "120214567890987654"
    assert event.referral.source == "ADS"
    assert event.referral.ads_context_data == context
    with pytest.raises(ValueError, match="ADS"):
        fake.inbound.messenger_referral_info(source="SHORTLINK", ad_id="1")


def test_messenger_delivery_and_read(fake: FakeGraphAPI, clock: FrozenClock) -> None:
    sent = fake.messenger().send_text(PSID, "Hallo Lena!")
    clock.advance(2)

    delivery = one(fake, fake.inbound.messenger_delivery(PSID, [sent.message_id]))
    read = one(fake, fake.inbound.messenger_read(PSID))

    assert isinstance(delivery, MessengerDelivery)
    assert delivery.mids == [sent.message_id]
    assert delivery.watermark == int((START + timedelta(seconds=2)).timestamp() * 1000)
    assert isinstance(read, MessengerRead)
    assert read.customer_id == PSID
    assert read.watermark == delivery.watermark


def test_messenger_customer_needs_a_psid(fake: FakeGraphAPI) -> None:
    with pytest.raises(ValueError, match="psid"):
        fake.inbound.messenger_text("", "Hallo")


# -- batches -------------------------------------------------------------------------------------


def test_batch_of_whatsapp_bodies_keeps_every_event_in_order(fake: FakeGraphAPI) -> None:
    first = fake.inbound.whatsapp_text(LENA, "eins")
    second = fake.inbound.whatsapp_text("4917612345678", "zwei", phone_number_id="200000000000001")
    status = fake.inbound.whatsapp_status("wamid.S", "read", LENA)

    body = fake.inbound.batch(first, second, status)
    events = receive(fake, body)

    assert len(body["entry"]) == 3
    assert [event.kind for event in events] == ["message", "message", "status"]
    assert [getattr(event, "text", None) for event in events] == ["eins", "zwei", None]
    assert [event.business_id for event in events] == [
        fake.phone_number_id,
        "200000000000001",
        fake.phone_number_id,
    ]


def test_batch_of_messenger_bodies(fake: FakeGraphAPI) -> None:
    body = fake.inbound.batch(
        fake.inbound.messenger_text(PSID, "eins"),
        fake.inbound.messenger_phone_quick_reply(PSID, "+4915112345678"),
        fake.inbound.messenger_postback("6783423498392001", "GET_STARTED", "Start"),
    )

    events = receive(fake, body)

    assert [event.kind for event in events] == ["message", "message", "postback"]
    assert len({event.id for event in events}) == 3


def test_batch_copies_its_bodies(fake: FakeGraphAPI) -> None:
    single = fake.inbound.messenger_text(PSID, "eins")

    body = fake.inbound.batch(single)
    body["entry"][0]["messaging"][0]["message"]["text"] = "geändert"

    assert single["entry"][0]["messaging"][0]["message"]["text"] == "eins"


def test_batch_refuses_mixed_channels_and_nothing(fake: FakeGraphAPI) -> None:
    with pytest.raises(ValueError, match="one object"):
        fake.inbound.batch(
            fake.inbound.whatsapp_text(LENA, "Hallo"), fake.inbound.messenger_text(PSID, "Hallo")
        )
    with pytest.raises(ValueError, match="at least one"):
        fake.inbound.batch()
    with pytest.raises(ValueError, match="entry"):
        fake.inbound.batch({"object": "page"})


# -- clock and ids -------------------------------------------------------------------------------


def test_timestamps_come_from_the_fake_clock(fake: FakeGraphAPI, clock: FrozenClock) -> None:
    clock.advance(hours=25, seconds=0.25)
    later = START + timedelta(hours=25, seconds=0.25)

    whatsapp = fake.inbound.whatsapp_text(LENA, "Hallo")
    messenger = fake.inbound.messenger_text(PSID, "Hallo")

    stamp = whatsapp["entry"][0]["changes"][0]["value"]["messages"][0]["timestamp"]
    assert stamp == str(int(later.timestamp()))  # Unix seconds, as a string
    item = messenger["entry"][0]["messaging"][0]
    assert item["timestamp"] == int(later.timestamp() * 1000)  # Unix milliseconds, an integer
    assert one(fake, messenger).timestamp == later
    assert one(fake, whatsapp).timestamp == later.replace(microsecond=0)


def all_factories(fake: FakeGraphAPI) -> list[dict[str, Any]]:
    """One body of every factory, in a fixed order."""
    inbound = fake.inbound
    return [
        inbound.whatsapp_text(LENA, "Hallo"),
        inbound.whatsapp_ad_referral(LENA, "Hallo"),
        inbound.whatsapp_button_reply(LENA, "yes", "Ja"),
        inbound.whatsapp_list_reply(LENA, "size_m", "M"),
        inbound.whatsapp_template_button(LENA, "STOP", "Stopp"),
        inbound.whatsapp_order(LENA, CATALOG, [("alpina-28-m", 1, 899.0, "EUR")]),
        inbound.whatsapp_status(fake.new_wamid(), "delivered", LENA, free_entry_point=True),
        inbound.messenger_text(PSID, "Hallo"),
        inbound.messenger_quick_reply(PSID, "SIZE_M", "M"),
        inbound.messenger_phone_quick_reply(PSID, "+4915112345678"),
        inbound.messenger_email_quick_reply(PSID, "lena@example.de"),
        inbound.messenger_postback(PSID, "GET_STARTED", "Start"),
        inbound.messenger_referral(PSID, source="ADS"),
    ]


def event_ids(fake: FakeGraphAPI) -> list[str]:
    return [event.id for body in all_factories(fake) for event in receive(fake, body)]


def test_ids_differ_per_call(fake: FakeGraphAPI) -> None:
    bodies = [fake.inbound.whatsapp_text(LENA, "Hallo") for _ in range(3)]
    bodies += [fake.inbound.messenger_text(PSID, "Hallo") for _ in range(3)]

    ids = [one(fake, body).id for body in bodies]

    assert len(set(ids)) == len(ids)


def test_same_seed_repeats_every_body_and_id(clock: FrozenClock) -> None:
    first = FakeGraphAPI(clock=clock, seed=11)
    second = FakeGraphAPI(clock=clock, seed=11)
    other = FakeGraphAPI(clock=clock, seed=12)

    assert all_factories(first) == all_factories(second)
    assert event_ids(first) == event_ids(second)
    assert set(event_ids(first)).isdisjoint(
        i for i in event_ids(other) if i.startswith(("wamid.", "m_"))
    )


def test_reset_restarts_the_id_sequence(fake: FakeGraphAPI) -> None:
    before = all_factories(fake)

    fake.reset()

    assert all_factories(fake) == before
