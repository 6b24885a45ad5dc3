"""Messenger webhooks: a hand-written corpus of Meta's documented shapes, parsed into typed events.

Each file of ``tests/webhook_corpus/messenger`` is one webhook body modelled on an example of Meta's
Messenger Platform "Webhook Events" reference (messages, message_echoes, messaging_postbacks,
messaging_referrals, messaging_optins, message_reads, message_deliveries, message_reactions), with
realistic ids. Every messaging item must become exactly one event, in order, of the right class,
with its typed attributes, its unknown fields kept and ``raw`` equal to the item.
"""

from __future__ import annotations

import json
import operator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from waflow.events import Event
from waflow.messenger.events import (
    MessengerDelivery,
    MessengerEcho,
    MessengerMessage,
    MessengerOptin,
    MessengerPostback,
    MessengerReaction,
    MessengerRead,
    MessengerReferral,
)
from waflow.webhooks import parse, sign, unwrap

CORPUS = Path(__file__).parent / "webhook_corpus" / "messenger"
PAGE = "104512345678901"
OTHER_PAGE = "218765432109876"
LENA = "7029384756102938"
JONAS = "6783423498392001"
MIRA = "25301234567890123"
APP_ID = "1517776481860111"
ECHOED_MID = "m_gb0aRSmCXnlFWXGyGuEFqrLWoxALCIgPD0Ituzb7lLPLbUJPgTyqpbNI9JMLiTv-M49lrqWpadJwgxVy"
LINK = "https://www.radhaus-example.de/produkte/alpina-28-trekking"
LINK_TITLE = 'Alpina 28" Trekking – Radhaus Beispiel'


def at(milliseconds: int) -> datetime:
    """The aware UTC datetime of a Messenger timestamp."""
    return datetime.fromtimestamp(milliseconds / 1000, tz=timezone.utc)


def load(name: str) -> dict[str, Any]:
    """One corpus body, by file stem."""
    loaded: dict[str, Any] = json.loads((CORPUS / f"{name}.json").read_text(encoding="utf-8"))
    return loaded


def messaging_items(body: dict[str, Any]) -> list[dict[str, Any]]:
    """Every ``entry[].messaging[]`` item of a body, in order."""
    return [item for entry in body["entry"] for item in entry["messaging"]]


def parsed(name: str) -> list[Event]:
    """The events of one corpus file, parsed from its bytes as they would arrive."""
    return parse((CORPUS / f"{name}.json").read_bytes())


# file stem -> one (class, {attribute path: value}) per messaging item, in order.
EXPECTED: dict[str, list[tuple[type[Event], dict[str, Any]]]] = {
    "text": [
        (
            MessengerMessage,
            {
                "kind": "message",
                "id": "m_OLTmUuRNp_I3DZ4mDicTZVCko6bQf1wMMy-LEiQIP9IrkC-JEegYGPjJnV1dmDGVdQTZDpRd4uj1TueB",
                "mid": "m_OLTmUuRNp_I3DZ4mDicTZVCko6bQf1wMMy-LEiQIP9IrkC-JEegYGPjJnV1dmDGVdQTZDpRd4uj1TueB",
                "sender_id": LENA,
                "page_id": PAGE,
                "business_id": PAGE,
                "customer_id": LENA,
                "is_from_customer": True,
                "timestamp": at(1772442000123),
                "text": 'Hallo! Habt ihr das Trekkingrad Alpina 28" noch in Größe M?',
                "quick_reply": None,
                "payload": None,
                "attachments": [],
                "referral": None,
                "replied_to": None,
            },
        )
    ],
    "attachments_image": [
        (
            MessengerMessage,
            {
                "id": "m_zHX2NthQmQlaowAWWmcDb5tUDWuPC-IRJBecPdn3OBfObhGNJkqtbLbdIQ-vlKzTz5LBkCN8sR9dEIzy",
                "sender_id": LENA,
                "timestamp": at(1772442061702),
                "text": None,
            },
        )
    ],
    "attachments_fallback": [
        (
            MessengerMessage,
            {
                "id": "m_WTAmOTizcKG1dp-g8Ug_lakNnfLxMNYPzwS9k_UK5pUU2oxlnOKxDMza6_mQ0Zg4sNfsCz6XgY7LlsTb",
                "text": LINK,
                "timestamp": at(1772442122188),
            },
        )
    ],
    "attachments_fallback_legacy": [
        (
            MessengerMessage,
            {
                "id": "m_rb4XIpbVI0pCskxrpObtJOxjaorAoSceWGYnkjiq-E5YBW2PL6jt0JS6l66LFUQu4tthGpG_45RpczqS",
                "text": LINK,
                "timestamp": at(1772442130655),
            },
        )
    ],
    "quick_reply_text": [
        (
            MessengerMessage,
            {
                "id": "m_R9WPo8VQGDADclVf0jXxGCn7OIwi5Ey2N_ASEMNwepC0BUIPsWl3nt-1uTQkBRV_VLEurmLRHoh-sHZt",
                "text": "Größe M",
                "quick_reply.payload": "SIZE_M",
                "payload": "SIZE_M",
                "timestamp": at(1772442183090),
            },
        )
    ],
    "quick_reply_phone": [
        (
            MessengerMessage,
            {
                "id": "m_GHf4xu_ya1AQrzF30WHnlYenZuww5AN0WKmQXK2HvUx34pg_J3Rcy5oxBS6UTPGyIOqix_sbfT4_c_QU",
                "sender_id": LENA,
                "text": "+4915112345678",
                "quick_reply.payload": "+4915112345678",
                "payload": "+4915112345678",
                "timestamp": at(1772442244609),
            },
        )
    ],
    "quick_reply_email": [
        (
            MessengerMessage,
            {
                "id": "m_r24Nk1Ug3UwhR3OGBvK_fscCCeDNBe5XIO28ujrM5nIISrZJ_Lzkmzi97PrOSr0SEI85HrwHDoPoGApr",
                "text": "lena.schmidt@example.de",
                "payload": "lena.schmidt@example.de",
                "timestamp": at(1772442305034),
            },
        )
    ],
    "reply_to": [
        (
            MessengerMessage,
            {
                "id": "m_1PQ6Kv_808Eu-JBXVXXoJuLL6u6Cryx9aWz0a5d8CQr04Ub20DEQq4bv3hOe6rrDeg3ejvLTsZJeEwLK",
                "text": "Das hier, bitte in Schwarz.",
                "replied_to": "m_V1Af4Mqaf9HMwVFQQkISV4_g_rF7SqVZzZ8omEsUJn8bA3SU3RwBzGrfyXTRcpoR_iAI1zfo9RfWntbx",
                "reply_to": {
                    "mid": "m_V1Af4Mqaf9HMwVFQQkISV4_g_rF7SqVZzZ8omEsUJn8bA3SU3RwBzGrfyXTRcpoR_iAI1zfo9RfWntbx",
                    "is_self_reply": False,
                },
                "timestamp": at(1772442366480),
            },
        )
    ],
    "echo": [
        (
            MessengerEcho,
            {
                "kind": "echo",
                "id": ECHOED_MID,
                "sender_id": PAGE,
                "page_id": PAGE,
                "business_id": PAGE,
                "recipient_id": LENA,
                "customer_id": LENA,
                "is_from_customer": False,
                "app_id": APP_ID,
                "metadata": "outbox:42",
                "text": "Ja, Größe M ist vorrätig. Magst du auf WhatsApp weiterschreiben?",
                "timestamp": at(1772442427311),
            },
        )
    ],
    "postback_get_started": [
        (
            MessengerPostback,
            {
                "kind": "postback",
                "id": "m_r0DbSFLrdLdPOsNiiBIV4x7TLKs9VtVYB6_GBTVYzvCSqTF2KbL_WuY3BSs4OWWceP35HQqqYn4AoxcP",
                "sender_id": JONAS,
                "page_id": PAGE,
                "customer_id": JONAS,
                "is_from_customer": True,
                "payload": "GET_STARTED",
                "title": "Los geht's",
                "referral": None,
                "timestamp": at(1772442487964),
            },
        )
    ],
    "postback_ads_referral": [
        (
            MessengerPostback,
            {
                "id": "m_-3bcN8HqqsSZI5VJz3AcIeZhBb2Dr2M_UJ_cZZxHFWTSd7TqsIIV3zwQG3_n-aAUGvuWKgLy_XJ2KNJm",
                "sender_id": JONAS,
                "payload": "GET_STARTED",
                "title": "Los geht's",
                "referral.source": "ADS",
                "referral.type": "OPEN_THREAD",
                "referral.ref": "spring-sale-2026",
                "referral.ad_id": "120214567890123456",
                "referral.ads_context_data": {
                    "ad_title": "Frühlingsaktion: Trekkingräder -15 %",
                    "photo_url": "https://scontent.xx.fbcdn.net/v/t45.1600-4/432187654_120214567890123456_1122334455667788990_n.jpg?stp=cp0_dst-jpg&_nc_cat=1&oh=00_AfC1xYz&oe=67F1C2D3",
                    "post_id": "104512345678901_987654321098765",
                },
                "timestamp": at(1772442548902),
            },
        )
    ],
    "postback_chat_plugin": [
        (
            MessengerPostback,
            {
                "id": "m_-UIkHJXBDVcJQ8mZXZh1DaCMNRrISQ8AFrsYkX9MuSaz11-JnJH5GUVO7vIvihVdoOIdnfo5hwadMwAS",
                "sender_id": "ur-9b3e77d1-website-chat",
                "payload": "START_CONSULTATION",
                "title": "Beratung starten",
                "referral.source": "CUSTOMER_CHAT_PLUGIN",
                "referral.ref": "produktseite-alpina",
                "referral.referer_uri": LINK,
                # Meta's current reference shows this event's timestamp as a string of seconds.
                "timestamp": at(1772442500000),
            },
        )
    ],
    "referral_shortlink": [
        (
            MessengerReferral,
            {
                "kind": "referral",
                "sender_id": LENA,
                "page_id": PAGE,
                "customer_id": LENA,
                "is_from_customer": True,
                "ref": "flyer-ladentheke",
                "ad_id": None,
                "referral.source": "SHORTLINK",
                "referral.type": "OPEN_THREAD",
                "referral.ads_context_data": None,
                "timestamp": at(1772442609845),
            },
        )
    ],
    "referral_ads": [
        (
            MessengerReferral,
            {
                "sender_id": LENA,
                "ref": "helmet-retargeting",
                # Meta's example writes ad_id unquoted: a number becomes the id string.
                "ad_id": "120214567890987654",
                "referral.source": "ADS",
                "referral.ads_context_data": {
                    "ad_title": "Dein Helm fehlt noch?",
                    "photo_url": "https://scontent.xx.fbcdn.net/v/t45.1600-4/432199887_120214567890987654_5566778899001122334_n.jpg?stp=cp0_dst-jpg&_nc_cat=1&oh=00_AfD9kLm&oe=67F1D4E5",
                    "post_id": "104512345678901_987654321012345",
                    "product_id": "9876543210123456",
                },
                "timestamp": at(1772442671077),
            },
        )
    ],
    "optin": [
        (
            MessengerOptin,
            {
                "kind": "optin",
                "sender_id": LENA,
                "page_id": PAGE,
                "customer_id": LENA,
                "type": "notification_messages",
                "payload": "RESTOCK_ALPINA_M",
                "notification_messages_token": "5914087302912374856",
                "ref": None,
                "user_ref": None,
                "timestamp": at(1772442732398),
            },
        )
    ],
    "optin_checkbox": [
        (
            MessengerOptin,
            {
                # The checkbox plugin sends no `sender`: the user_ref is who opted in.
                "sender_id": "ur-4f1c2a9e-checkout-20260302",
                "customer_id": "ur-4f1c2a9e-checkout-20260302",
                "user_ref": "ur-4f1c2a9e-checkout-20260302",
                "ref": "checkout-newsletter",
                "page_id": PAGE,
                "timestamp": at(1772442792876),
            },
        )
    ],
    "read": [
        (
            MessengerRead,
            {
                "kind": "read",
                "sender_id": LENA,
                "page_id": PAGE,
                "customer_id": LENA,
                "is_from_customer": False,
                "watermark": 1772442427311,
                "timestamp": at(1772442854170),
            },
        )
    ],
    "delivery": [
        (
            MessengerDelivery,
            {
                "kind": "delivery",
                "sender_id": LENA,
                "page_id": PAGE,
                "customer_id": LENA,
                "watermark": 1772442915512,
                "mids": [
                    ECHOED_MID,
                    "m_ERiojB93IEdZcSXifpcNI9lSvNGwqjZuCRYu3V8w24xNmkZHOmrWtE3fUGpKG4n8QG3YWyTwxq4Fdlri",
                ],
                # Meta's example carries no item timestamp: the entry's `time` stands in.
                "timestamp": at(1772442915733),
            },
        )
    ],
    "reaction": [
        (
            MessengerReaction,
            {
                "kind": "reaction",
                "sender_id": LENA,
                "page_id": PAGE,
                "customer_id": LENA,
                "reaction": "love",
                "emoji": "\u2764\ufe0f",
                "action": "react",
                "mid": ECHOED_MID,
                "timestamp": at(1772442975843),
            },
        )
    ],
    "batch": [
        (
            MessengerMessage,
            {
                "id": "m_yZlkYV3fLfX_hxI7vcCiJip8PhXwmhwtvX27JnaGYTuJjJSo6um7O56QFgN_hCZ8LozC1F_M0JbPBa4u",
                "sender_id": LENA,
                "page_id": PAGE,
                "text": "Super, danke!",
                "timestamp": at(1772443036991),
            },
        ),
        (
            MessengerMessage,
            {
                "id": "m_xVxDQ7ycLEhZRwwBTgxLJe8TQGsB9NqI7WaHXveqHJwRvfuQ9YiQUcA5_vMmNiAgLTHEsLKo9NsWP_eD",
                "sender_id": LENA,
                "page_id": PAGE,
                "payload": "HANDOFF_WHATSAPP",
                "timestamp": at(1772443037204),
            },
        ),
        (
            MessengerRead,
            {
                "sender_id": JONAS,
                "page_id": PAGE,
                "watermark": 1772443010000,
                "timestamp": at(1772443037318),
            },
        ),
        (
            MessengerPostback,
            {
                "id": "m_euBB8_SOGp7C4aun23IbrYGIYr1letINXZrmdI_LR-Y0g_jekRSsx7bQrvOTGODffys6rqNpQczIbiyP",
                "sender_id": MIRA,
                "page_id": OTHER_PAGE,
                "payload": "TRACK_ORDER:10442",
                "title": "Bestellung verfolgen",
                "timestamp": at(1772443037455),
            },
        ),
        (
            MessengerEcho,
            {
                "id": "m_o_FyZCPk52UEeiNmrQzlZCxogRpcFEV7C81gooZog2Yoee8PfcnLMH2xPRENLRP8CoFxNTHszHCls4wp",
                "sender_id": OTHER_PAGE,
                "page_id": OTHER_PAGE,
                "recipient_id": MIRA,
                "customer_id": MIRA,
                "app_id": APP_ID,
                "text": "Deine Bestellung 10442 ist unterwegs.",
                "timestamp": at(1772443037590),
            },
        ),
    ],
}

CORPUS_FILES = sorted(path.stem for path in CORPUS.glob("*.json"))


def test_every_corpus_file_has_expectations() -> None:
    assert CORPUS_FILES, f"no corpus at {CORPUS}"
    assert set(CORPUS_FILES) == set(EXPECTED)


@pytest.mark.parametrize("name", CORPUS_FILES)
def test_corpus_body_parses_into_one_typed_event_per_messaging_item(name: str) -> None:
    body = load(name)
    events = parsed(name)
    items = messaging_items(body)
    expected = EXPECTED[name]

    assert len(events) == len(items) == len(expected)
    for event, item, (cls, attributes) in zip(events, items, expected, strict=True):
        assert type(event) is cls
        assert event.channel == "messenger"
        assert event.raw == item
        assert event.timestamp.tzinfo is not None
        assert event.timestamp.utcoffset() == timezone.utc.utcoffset(None)
        for path, value in attributes.items():
            assert operator.attrgetter(path)(event) == value, f"{name}: {path}"


def test_timestamps_are_milliseconds_read_as_aware_utc() -> None:
    (event,) = parsed("text")

    assert event.timestamp == datetime(2026, 3, 2, 9, 0, 0, 123000, tzinfo=timezone.utc)
    assert event.timestamp.tzinfo is timezone.utc


def test_image_attachments_expose_type_and_url() -> None:
    (event,) = parsed("attachments_image")

    assert isinstance(event, MessengerMessage)
    assert [attachment.type for attachment in event.attachments] == ["image", "image"]
    urls = [attachment.url for attachment in event.attachments]
    assert all(
        url and url.startswith("https://scontent.xx.fbcdn.net/v/t1.15752-9/") for url in urls
    )
    assert urls == [a["payload"]["url"] for a in event.raw["message"]["attachments"]]


@pytest.mark.parametrize("name", ["attachments_fallback", "attachments_fallback_legacy"])
def test_shared_link_arrives_as_fallback_with_url_and_title(name: str) -> None:
    # v6.0+ puts url and title in the payload; older webhooks put them on the attachment.
    (event,) = parsed(name)

    assert isinstance(event, MessengerMessage)
    (attachment,) = event.attachments
    assert attachment.type == "fallback"
    assert attachment.url == LINK
    assert attachment.title == LINK_TITLE


def test_unknown_fields_are_kept_on_the_event() -> None:
    (text,) = parsed("text")
    (echo,) = parsed("echo")
    (optin,) = parsed("optin")

    assert text.model_extra is not None
    assert text.model_extra["nlp"]["detected_locales"] == [
        {"locale": "de_DE", "confidence": 0.9812}
    ]
    assert echo.model_extra is not None
    assert echo.model_extra["is_echo"] is True
    assert optin.model_extra is not None
    assert optin.model_extra["notification_messages_timezone"] == "Europe/Berlin"
    assert optin.model_extra["user_token_status"] == "NOT_REFRESHED"


def test_unknown_fields_of_nested_objects_are_kept() -> None:
    (reply,) = parsed("reply_to")
    (postback,) = parsed("postback_ads_referral")

    assert isinstance(reply, MessengerMessage)
    assert reply.reply_to == {"mid": reply.replied_to, "is_self_reply": False}
    assert isinstance(postback, MessengerPostback)
    assert postback.referral is not None
    assert postback.referral.ads_context_data is not None
    assert postback.referral.ads_context_data["post_id"] == "104512345678901_987654321098765"


def test_echo_is_the_page_speaking_to_the_customer() -> None:
    (echo,) = parsed("echo")

    assert isinstance(echo, MessengerEcho)
    assert (echo.sender_id, echo.recipient_id) == (PAGE, LENA)
    assert echo.customer_id == LENA
    assert not echo.is_from_customer
    assert echo.app_id == APP_ID  # Meta sends a number; ids are strings in waflow


def test_batch_yields_every_item_of_every_entry_in_order() -> None:
    events = parsed("batch")

    assert [event.kind for event in events] == ["message", "message", "read", "postback", "echo"]
    assert [event.business_id for event in events] == [PAGE, PAGE, PAGE, OTHER_PAGE, OTHER_PAGE]
    assert [event.customer_id for event in events] == [LENA, LENA, JONAS, MIRA, MIRA]
    assert [event.timestamp for event in events] == sorted(event.timestamp for event in events)


def test_dedupe_keys_are_distinct_across_the_corpus() -> None:
    keys = [event.dedupe_key for name in CORPUS_FILES for event in parsed(name)]

    assert len(keys) == len(set(keys))


def test_dedupe_key_is_stable_across_redelivery() -> None:
    for name in CORPUS_FILES:
        first = [event.dedupe_key for event in parsed(name)]
        again = [event.dedupe_key for event in parse(load(name))]
        assert first == again, name


@pytest.mark.parametrize("name", CORPUS_FILES)
def test_events_survive_a_json_round_trip(name: str) -> None:
    # The durable inbox stores events as JSON and validates them again when it hands them out.
    for event in parsed(name):
        stored = json.loads(json.dumps(event.model_dump(mode="json", by_alias=True)))
        assert type(event).model_validate(stored) == event


def test_bytes_str_and_dict_bodies_parse_alike() -> None:
    raw = (CORPUS / "batch.json").read_bytes()

    assert parse(raw) == parse(raw.decode("utf-8")) == parse(json.loads(raw))


def test_signed_corpus_body_unwraps() -> None:
    raw = (CORPUS / "postback_ads_referral.json").read_bytes()
    headers = {"X-Hub-Signature-256": sign(raw, "messenger-app-secret")}

    events = unwrap(raw, headers, app_secret="messenger-app-secret")

    assert events == parse(raw)
