"""All 16 webhook examples of Meta's OpenAPI spec parse into typed events, one per item."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import pytest

from tests.spec import WEBHOOK_PATH, request_examples
from waflow.errors import WebhookPayloadError
from waflow.events import Event, Unsupported
from waflow.webhooks import _load, parse
from waflow.whatsapp.events import (
    TemplateCategoryUpdate,
    TemplateQualityUpdate,
    TemplateStatusUpdate,
    WhatsAppError,
    WhatsAppMessage,
    WhatsAppStatus,
)


@pytest.fixture(scope="module")
def examples() -> dict[str, dict[str, Any]]:
    return request_examples(WEBHOOK_PATH)


def _items(body: dict[str, Any]) -> list[dict[str, Any]]:
    """Every item of every entry and change, as Meta lists them."""
    items = []
    for entry in body["entry"]:
        for change in entry["changes"]:
            value = change["value"]
            for key in ("messages", "statuses", "errors", "groups"):
                items.extend(value.get(key, []))
    return items


def test_there_are_sixteen_webhook_examples(examples: dict[str, dict[str, Any]]) -> None:
    assert len(examples) == 16


@pytest.mark.parametrize(
    "name",
    [
        "Text Message",
        "Text Message with Context (Product Inquiry)",
        "Text Message from Click to WhatsApp Ad",
        "Reaction Message",
        "Image Message",
        "Location Message",
        "Contact Sharing Message",
        "Unsupported Message",
        "Button Message",
        "Interactive List Reply Message",
        "Interactive Button Reply Message",
        "Order Message",
        "System Message",
        "Group Create Message",
        "Group Settings Update",
        "Group Remove Participants",
    ],
)
def test_every_example_parses_one_event_per_item(
    examples: dict[str, dict[str, Any]], name: str
) -> None:
    body = examples[name]
    events = parse(body)
    items = _items(body)
    assert len(events) == len(items) == 1
    event = events[0]
    assert isinstance(event, Event)
    assert event.channel == "whatsapp"
    assert event.raw == items[0]
    assert event.timestamp.tzinfo is not None
    assert event.timestamp == datetime.fromtimestamp(int(items[0]["timestamp"]), tz=timezone.utc)
    # bytes, str and dict bodies parse alike
    assert parse(json.dumps(body)) == events
    assert parse(json.dumps(body).encode()) == events


def _message(examples: dict[str, dict[str, Any]], name: str) -> WhatsAppMessage:
    (event,) = parse(examples[name])
    assert isinstance(event, WhatsAppMessage)
    return event


def test_text_message(examples: dict[str, dict[str, Any]]) -> None:
    event = _message(examples, "Text Message")
    assert event.kind == "message"
    assert event.type == "text"
    assert event.text == "Does it come in another color?"
    assert event.sender_id == event.wa_id == "16505551234"
    assert event.profile_name == "Sheena Nelson"
    assert event.phone_number_id == event.business_id == "106540352242922"
    assert event.display_phone_number == "15550783881"
    assert event.waba_id == "419561257915477"
    assert event.is_from_customer
    assert event.customer_id == "16505551234"
    assert event.dedupe_key == f"whatsapp:message:{event.id}"


def test_product_inquiry_keeps_the_referred_product(examples: dict[str, dict[str, Any]]) -> None:
    event = _message(examples, "Text Message with Context (Product Inquiry)")
    assert event.context is not None
    assert event.context.from_ == "15550783881"
    assert event.replied_to == "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGA9wcm9kdWN0X2lucXVpcnkA"
    assert event.context.referred_product is not None
    assert event.context.referred_product.catalog_id == "194836987003835"
    assert event.context.referred_product.product_retailer_id == "di9ozbzfi4"


def test_click_to_whatsapp_referral_is_kept_whole(examples: dict[str, dict[str, Any]]) -> None:
    event = _message(examples, "Text Message from Click to WhatsApp Ad")
    referral = event.referral
    assert referral is not None
    assert referral.ctwa_clid is not None and referral.ctwa_clid.startswith("Aff-n8ZTODiE79d22")
    assert referral.source_id == "120226305854810726"
    assert referral.source_type == "ad"
    assert referral.source_url == "https://fb.me/3cr4Wqqkv"
    assert referral.headline == "Chat with us"
    assert referral.body == "Summer Succulents are here!"
    assert referral.media_type == "image"
    assert referral.image_url == "https://scontent.xx.fbcdn.net/v/t45.1..."
    assert referral.welcome_text == "Hi there! Let us know how we can help!"


def test_order_items_are_typed(examples: dict[str, dict[str, Any]]) -> None:
    event = _message(examples, "Order Message")
    order = event.order
    assert order is not None
    assert order.catalog_id == "194836987003835"
    assert [(i.product_retailer_id, i.quantity, i.item_price, i.currency) for i in order.items] == [
        ("di9ozbzfi4", 2, 30.0, "USD"),
        ("nqryix03ez", 1, 25.0, "USD"),
    ]
    assert order.total == 85.0
    assert order.currency == "USD"


def test_unsupported_message_keeps_its_errors(examples: dict[str, dict[str, Any]]) -> None:
    event = _message(examples, "Unsupported Message")
    assert event.type == "unsupported"
    assert [(e.code, e.title, e.details) for e in event.errors] == [
        (131051, "Message type unknown", "Message type is currently not supported.")
    ]


def test_replies_expose_their_ids_and_titles(examples: dict[str, dict[str, Any]]) -> None:
    listed = _message(examples, "Interactive List Reply Message")
    assert (listed.reply_id, listed.reply_title) == ("priority_express", "Priority Mail Express")
    assert listed.interactive is not None and listed.interactive.list_reply is not None
    assert listed.interactive.list_reply.description == "Next Day to 2 Days"
    button = _message(examples, "Interactive Button Reply Message")
    assert (button.reply_id, button.reply_title) == ("cancel-button", "Cancel")
    template = _message(examples, "Button Message")
    assert (template.reply_id, template.reply_title) == ("Unsubscribe", "Unsubscribe")


def test_media_location_contacts_reaction_and_system(examples: dict[str, dict[str, Any]]) -> None:
    image = _message(examples, "Image Message")
    assert image.media is not None and image.media.id == "1003383421387256"
    assert image.media.caption == "Taj Mahal" and image.media.mime_type == "image/jpeg"
    location = _message(examples, "Location Message")
    assert location.location is not None
    assert (location.location.latitude, location.location.name) == (37.44221496582, "Philz Coffee")
    shared = _message(examples, "Contact Sharing Message")
    assert shared.contacts is not None and shared.contacts[0].phones[0]["wa_id"] == "19835552319"
    reaction = _message(examples, "Reaction Message")
    assert reaction.reaction is not None and reaction.reaction.emoji == "👍"
    system = _message(examples, "System Message")
    assert system.system is not None and system.system.type == "user_changed_number"
    assert system.system.wa_id == "12195555358"
    assert system.profile_name is None  # system messages carry no contacts
    assert not system.is_from_customer


def test_group_webhooks_are_unsupported_but_complete(examples: dict[str, dict[str, Any]]) -> None:
    (event,) = parse(examples["Group Create Message"])
    assert isinstance(event, Unsupported)
    assert event.field == "group_lifecycle_update"
    assert event.raw["group_id"].startswith("Y2FwaV9ncm91cDox")
    assert event.business_id is None
    again = parse(examples["Group Create Message"])[0]
    assert again.dedupe_key == event.dedupe_key


def _wa_body(
    value: dict[str, Any], field: str = "messages", time: int | None = None
) -> dict[str, Any]:
    entry: dict[str, Any] = {"id": "102290129340398", "changes": [{"field": field, "value": value}]}
    if time is not None:
        entry["time"] = time
    return {"object": "whatsapp_business_account", "entry": [entry]}


METADATA = {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"}


def test_statuses_with_pricing_errors_and_callback_data() -> None:
    body = _wa_body(
        {
            "messaging_product": "whatsapp",
            "metadata": METADATA,
            "statuses": [
                {
                    "id": "wamid.A",
                    "status": "delivered",
                    "timestamp": "1750263773",
                    "recipient_id": "16505551234",
                    "biz_opaque_callback_data": "outbox:42",
                    "pricing": {
                        "billable": True,
                        "pricing_model": "PMP",
                        "category": "utility",
                        "type": "regular",
                    },
                },
                {
                    "id": "wamid.B",
                    "status": "failed",
                    "timestamp": "1750263774",
                    "recipient_id": "16505551234",
                    "errors": [
                        {
                            "code": 131047,
                            "title": "Re-engagement message",
                            "message": "Re-engagement message",
                            "error_data": {
                                "details": "Message failed to send because more than 24 hours have passed."
                            },
                        }
                    ],
                },
            ],
        }
    )
    delivered, failed = parse(body)
    assert isinstance(delivered, WhatsAppStatus) and isinstance(failed, WhatsAppStatus)
    assert (delivered.message_id, delivered.status, delivered.recipient_id) == (
        "wamid.A",
        "delivered",
        "16505551234",
    )
    assert delivered.biz_opaque_callback_data == "outbox:42"
    assert delivered.pricing is not None and delivered.pricing.pricing_model == "PMP"
    assert delivered.customer_id == "16505551234"
    assert not delivered.is_from_customer
    assert failed.errors[0].code == 131047
    assert failed.errors[0].details is not None and "24 hours" in failed.errors[0].details
    assert delivered.dedupe_key != parse(_status_body("wamid.A", "read"))[0].dedupe_key


def _status_body(message_id: str, status: str) -> dict[str, Any]:
    return _wa_body(
        {
            "messaging_product": "whatsapp",
            "metadata": METADATA,
            "statuses": [
                {"id": message_id, "status": status, "timestamp": "1750263775", "recipient_id": "1"}
            ],
        }
    )


def _one_message(message: dict[str, Any]) -> WhatsAppMessage:
    body = _wa_body(
        {
            "messaging_product": "whatsapp",
            "metadata": METADATA,
            "contacts": [{"profile": {"name": "Lena"}, "wa_id": "4915112345678"}],
            "messages": [
                {"from": "4915112345678", "id": "wamid.M", "timestamp": "1750263775", **message}
            ],
        }
    )
    (event,) = parse(body)
    assert isinstance(event, WhatsAppMessage)
    return event


def test_a_flow_answer_decodes_its_response_json_string() -> None:
    answer = {"flow_token": "order-77", "size": "52", "delivery": True}
    event = _one_message(
        {
            "type": "interactive",
            "interactive": {
                "type": "nfm_reply",
                "nfm_reply": {
                    "name": "flow",
                    "body": "Sent",
                    "response_json": json.dumps(answer),
                },
            },
        }
    )

    assert event.interactive is not None and event.interactive.nfm_reply is not None
    reply = event.interactive.nfm_reply
    assert isinstance(reply.response_json, str)  # Meta sends a JSON *string*
    assert reply.response == answer
    assert (reply.name, reply.body) == ("flow", "Sent")


def test_a_flow_answer_whose_response_json_is_not_json_is_kept_raw() -> None:
    event = _one_message(
        {
            "type": "interactive",
            "interactive": {"type": "nfm_reply", "nfm_reply": {"response_json": "{not json"}},
        }
    )

    assert event.interactive is not None and event.interactive.nfm_reply is not None
    assert event.interactive.nfm_reply.response is None
    assert event.interactive.nfm_reply.response_json == "{not json"


@pytest.mark.parametrize(
    ("context", "forwarded", "frequently"),
    [
        ({"forwarded": True}, True, False),
        ({"frequently_forwarded": True}, False, True),
        ({"from": "15550783881", "id": "wamid.ASKED"}, False, False),
    ],
)
def test_forwarded_messages_are_marked(
    context: dict[str, Any], forwarded: bool, frequently: bool
) -> None:
    event = _one_message({"type": "text", "text": {"body": "Schau mal"}, "context": context})

    assert event.context is not None
    assert (event.context.forwarded, event.context.frequently_forwarded) == (forwarded, frequently)
    assert event.replied_to == context.get("id")


def test_a_played_status_of_a_voice_message() -> None:
    (status,) = parse(_status_body("wamid.VOICE", "played"))

    assert isinstance(status, WhatsAppStatus)
    assert (status.status, status.message_id) == ("played", "wamid.VOICE")
    assert status.dedupe_key != parse(_status_body("wamid.VOICE", "read"))[0].dedupe_key


def test_value_level_errors_and_template_updates() -> None:
    errors = parse(
        _wa_body(
            {
                "messaging_product": "whatsapp",
                "metadata": METADATA,
                "errors": [{"code": 131000, "title": "Something went wrong"}],
            },
            time=1750263775,
        )
    )
    assert isinstance(errors[0], WhatsAppError) and errors[0].error.code == 131000
    status = parse(
        _wa_body(
            {
                "event": "REJECTED",
                "message_template_id": 1234567,
                "message_template_name": "order_followup",
                "message_template_language": "de",
                "reason": "INCORRECT_CATEGORY",
            },
            field="message_template_status_update",
            time=1750263775,
        )
    )[0]
    assert isinstance(status, TemplateStatusUpdate)
    assert (status.id, status.event, status.reason) == ("1234567", "REJECTED", "INCORRECT_CATEGORY")
    assert status.timestamp == datetime.fromtimestamp(1750263775, tz=timezone.utc)
    quality = parse(
        _wa_body(
            {
                "previous_quality_score": "GREEN",
                "new_quality_score": "YELLOW",
                "message_template_id": 1,
                "message_template_name": "x",
                "message_template_language": "en_US",
            },
            field="message_template_quality_update",
            time=1,
        )
    )[0]
    assert isinstance(quality, TemplateQualityUpdate) and quality.new_quality_score == "YELLOW"
    category = parse(
        _wa_body(
            {
                "message_template_id": 1,
                "message_template_name": "x",
                "message_template_language": "en_US",
                "previous_category": "UTILITY",
                "new_category": "MARKETING",
            },
            field="template_category_update",
            time=1,
        )
    )[0]
    assert isinstance(category, TemplateCategoryUpdate) and category.new_category == "MARKETING"


def test_business_scoped_user_ids_without_phone_numbers() -> None:
    body = _wa_body(
        {
            "messaging_product": "whatsapp",
            "metadata": METADATA,
            "contacts": [
                {
                    "profile": {"name": "Lena", "username": "@lena"},
                    "wa_id": "",
                    "user_id": "DE.13491208655302741918",
                }
            ],
            "messages": [
                {
                    "from": "",
                    "id": "wamid.C",
                    "timestamp": "1750263775",
                    "type": "text",
                    "text": {"body": "Hallo"},
                }
            ],
        }
    )
    (event,) = parse(body)
    assert isinstance(event, WhatsAppMessage)
    assert event.wa_id == ""
    assert event.user_id == "DE.13491208655302741918"
    assert event.sender_id == "DE.13491208655302741918"
    assert event.username == "@lena"


def test_batched_body_yields_every_item_in_order() -> None:
    def message(i: int) -> dict[str, Any]:
        return {
            "from": "1",
            "id": f"wamid.{i}",
            "timestamp": "1750263775",
            "type": "text",
            "text": {"body": str(i)},
        }

    body = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "1",
                "changes": [
                    {
                        "field": "messages",
                        "value": {"metadata": METADATA, "messages": [message(0), message(1)]},
                    }
                ],
            },
            {
                "id": "2",
                "changes": [
                    {
                        "field": "messages",
                        "value": {"metadata": METADATA, "messages": [message(2)]},
                    },
                    {
                        "field": "messages",
                        "value": {"metadata": METADATA, "messages": [message(3), message(4)]},
                    },
                ],
            },
        ],
    }
    assert [getattr(e, "text", None) for e in parse(body)] == ["0", "1", "2", "3", "4"]


def test_unknown_fields_are_kept() -> None:
    body = _wa_body(
        {
            "metadata": METADATA,
            "messages": [
                {
                    "from": "1",
                    "id": "wamid.D",
                    "timestamp": "1",
                    "type": "text",
                    "text": {"body": "x"},
                    "brand_new": {"a": 1},
                }
            ],
        }
    )
    (event,) = parse(body)
    assert event.model_extra is not None and event.model_extra["brand_new"] == {"a": 1}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b"\xff\xfe", "not UTF-8"),
        (b'{"entry": []}', "`object` is missing"),
        (b'{"object": "page", "entry": {}}', "`entry` must be a list"),
        (b'{"object": "page", "entry": [1]}', "list of objects"),
        (
            b'{"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "messages"}]}]}',
            "needs field and value",
        ),
        (
            b'{"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "messages", "value": {"messages": [{"type": "text"}]}}]}]}',
            "malformed whatsapp_business_account webhook",
        ),
        (b"[" * 100_000, "nested too deeply"),
    ],
)
def test_bodies_that_are_not_webhooks_raise_with_the_reason(body: bytes, reason: str) -> None:
    with pytest.raises(WebhookPayloadError, match=None) as info:
        parse(body)
    assert reason in str(info.value)


def test_unknown_object_kinds_become_unsupported_events() -> None:
    events = parse(
        {"object": "instagram", "entry": [{"id": "1", "time": 1}, {"id": "2", "time": 2}]}
    )
    assert [type(e) for e in events] == [Unsupported, Unsupported]


def _text_body(text_json: str) -> bytes:
    """A one-message body whose text is the JSON string literal ``text_json`` (escapes kept)."""
    return (
        b'{"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": '
        b'"messages", "value": {"messages": [{"from": "4915", "id": "wamid.J", "timestamp": "1",'
        b' "type": "text", "text": {"body": ' + text_json.encode() + b"}}]}}]}]}"
    )


@pytest.mark.parametrize(
    ("text_json", "expected"),
    [
        ('"\\ud83d\\ude00 gr\\u00fc\\u00df"', "😀 grüß"),  # escaped pair: the emoji
        ('"caf\\u00e9 \\ud83d"', "café \ud83d"),  # a lone surrogate (a cut-off emoji) is kept
        ('"tab\\tquote\\""', 'tab\tquote"'),
    ],
)
def test_text_escapes_decode_as_the_standard_library_does(text_json: str, expected: str) -> None:
    body = _text_body(text_json)
    (event,) = parse(body)
    assert isinstance(event, WhatsAppMessage)
    assert event.text == expected == json.loads(text_json)
    # The same body as a str (how some frameworks hand it over) reads the same.
    (again,) = parse(body.decode())
    assert isinstance(again, WhatsAppMessage) and again.text == expected


def test_a_str_body_holding_a_lone_surrogate_still_parses() -> None:
    # A str that is not encodable as UTF-8 (decoded with surrogateescape, say) is not refused.
    body = _text_body('"x"').decode().replace('"x"', '"x\ud800"')
    (event,) = parse(body)
    assert isinstance(event, WhatsAppMessage) and event.text == "x\ud800"


def test_deep_but_valid_json_parses_like_the_standard_library() -> None:
    # Nesting the fast parser refuses (over 200 levels) but Python's json reads: not a 400.
    deep = "[" * 300 + "]" * 300
    body = _text_body('"x"').replace(b'"type": "text"', f'"deep": {deep}, "type": "text"'.encode())
    (event,) = parse(body)
    assert isinstance(event, WhatsAppMessage) and event.raw["deep"] == json.loads(deep)


@pytest.mark.parametrize("wrap", [bytes, bytearray, memoryview, lambda b: b.decode()])
def test_every_body_type_parses_the_same(wrap: Any) -> None:
    (event,) = parse(wrap(_text_body('"hallo"')))
    assert isinstance(event, WhatsAppMessage) and event.text == "hallo"


def test_spec_examples_load_to_what_the_standard_library_reads(
    examples: dict[str, dict[str, Any]],
) -> None:
    for name, body in examples.items():
        for ascii_only in (True, False):  # \u escapes, and UTF-8 bytes
            encoded = json.dumps(body, ensure_ascii=ascii_only).encode()
            assert _load(encoded) == json.loads(encoded), name
