"""Messenger Send API bodies: builders produce Meta's JSON, bodies round-trip, limits fail locally.

The expected bodies are written by hand after the request examples of Meta's Messenger Platform
documentation (Send API reference, quick replies, button / generic template, URL and postback
buttons, sender actions, saving assets, private replies, message tags).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from waflow.errors import MessageValidationError
from waflow.messenger import build
from waflow.messenger.messages import (
    DefaultAction,
    GenericElement,
    MediaAttachment,
    MediaPayload,
    Message,
    MessageContent,
    PostbackButton,
    Recipient,
    SenderAction,
    TextQuickReply,
    UrlButton,
    from_body,
)

PSID = "6783423498392"
WA_ME = "https://wa.me/4930123456789?text=Hallo%20Lena%2C%20Code%20K7Q2"

# builder call -> the body Meta documents for it
BUILT: dict[str, tuple[Callable[[], Any], dict[str, Any]]] = {
    "text": (
        lambda: build.text(PSID, "hello, world"),
        {
            "recipient": {"id": PSID},
            "messaging_type": "RESPONSE",
            "message": {"text": "hello, world"},
        },
    ),
    "text with update, silent push and metadata": (
        lambda: build.text(
            PSID,
            "Dein Rad ist fertig.",
            messaging_type="UPDATE",
            notification_type="SILENT_PUSH",
            metadata="outbox:42",
        ),
        {
            "recipient": {"id": PSID},
            "messaging_type": "UPDATE",
            "notification_type": "SILENT_PUSH",
            "message": {"text": "Dein Rad ist fertig.", "metadata": "outbox:42"},
        },
    ),
    "tagged text (messaging_type inferred)": (
        lambda: build.text(PSID, "Deine Bestellung ist unterwegs.", tag="POST_PURCHASE_UPDATE"),
        {
            "recipient": {"id": PSID},
            "messaging_type": "MESSAGE_TAG",
            "tag": "POST_PURCHASE_UPDATE",
            "message": {"text": "Deine Bestellung ist unterwegs."},
        },
    ),
    "human agent text": (
        lambda: build.text(
            PSID, "Hier ist Lena, ich helfe dir.", tag="HUMAN_AGENT", human_agent=True
        ),
        {
            "recipient": {"id": PSID},
            "messaging_type": "MESSAGE_TAG",
            "tag": "HUMAN_AGENT",
            "message": {"text": "Hier ist Lena, ich helfe dir."},
        },
    ),
    "private reply to a comment": (
        lambda: build.text(Recipient(comment_id="1234567890_9876543210"), "Danke für deine Frage!"),
        {
            "recipient": {"comment_id": "1234567890_9876543210"},
            "messaging_type": "RESPONSE",
            "message": {"text": "Danke für deine Frage!"},
        },
    ),
    "image by url, saved for reuse": (
        lambda: build.attachment(
            PSID, "image", "https://cdn.example.com/shirt.png", is_reusable=True
        ),
        {
            "recipient": {"id": PSID},
            "messaging_type": "RESPONSE",
            "message": {
                "attachment": {
                    "type": "image",
                    "payload": {"url": "https://cdn.example.com/shirt.png", "is_reusable": True},
                }
            },
        },
    ),
    "file by saved attachment_id": (
        lambda: build.attachment(PSID, "file", "1857777774821032"),
        {
            "recipient": {"id": PSID},
            "messaging_type": "RESPONSE",
            "message": {
                "attachment": {"type": "file", "payload": {"attachment_id": "1857777774821032"}}
            },
        },
    ),
    "text quick replies": (
        lambda: build.quick_replies(
            PSID, "Pick a color:", {"PICK_RED": "Red", "PICK_GREEN": "Green"}
        ),
        {
            "recipient": {"id": PSID},
            "messaging_type": "RESPONSE",
            "message": {
                "text": "Pick a color:",
                "quick_replies": [
                    {"content_type": "text", "title": "Red", "payload": "PICK_RED"},
                    {"content_type": "text", "title": "Green", "payload": "PICK_GREEN"},
                ],
            },
        },
    ),
    "phone number and email quick replies": (
        lambda: build.quick_replies(
            PSID,
            "Wie erreichen wir dich?",
            ["user_phone_number", "user_email", ("LATER", "Später")],
        ),
        {
            "recipient": {"id": PSID},
            "messaging_type": "RESPONSE",
            "message": {
                "text": "Wie erreichen wir dich?",
                "quick_replies": [
                    {"content_type": "user_phone_number"},
                    {"content_type": "user_email"},
                    {"content_type": "text", "title": "Später", "payload": "LATER"},
                ],
            },
        },
    ),
    "quick reply with an image": (
        lambda: build.quick_replies(
            PSID,
            "Pick a color:",
            [
                TextQuickReply(
                    title="Red", payload="PICK_RED", image_url="http://example.com/img/red.png"
                )
            ],
        ),
        {
            "recipient": {"id": PSID},
            "messaging_type": "RESPONSE",
            "message": {
                "text": "Pick a color:",
                "quick_replies": [
                    {
                        "content_type": "text",
                        "title": "Red",
                        "payload": "PICK_RED",
                        "image_url": "http://example.com/img/red.png",
                    }
                ],
            },
        },
    ),
    "button template: wa.me link and postback": (
        lambda: build.button_template(
            PSID,
            "Lieber auf WhatsApp weiter?",
            [
                build.url_button("Zu WhatsApp", WA_ME),
                build.postback_button("Hier bleiben", "STAY_ON_MESSENGER"),
            ],
        ),
        {
            "recipient": {"id": PSID},
            "messaging_type": "RESPONSE",
            "message": {
                "attachment": {
                    "type": "template",
                    "payload": {
                        "template_type": "button",
                        "text": "Lieber auf WhatsApp weiter?",
                        "buttons": [
                            {"type": "web_url", "url": WA_ME, "title": "Zu WhatsApp"},
                            {
                                "type": "postback",
                                "title": "Hier bleiben",
                                "payload": "STAY_ON_MESSENGER",
                            },
                        ],
                    },
                }
            },
        },
    ),
    "generic template": (
        lambda: build.generic_template(
            PSID,
            [
                build.element(
                    "Welcome!",
                    subtitle="We have the right hat for everyone.",
                    image_url="https://cdn.example.com/hat.jpg",
                    default_url=DefaultAction(
                        url="https://shop.example.com/", webview_height_ratio="tall"
                    ),
                    buttons=[
                        build.url_button("View Website", "https://shop.example.com/"),
                        build.postback_button("Start Chatting", "DEVELOPER_DEFINED_PAYLOAD"),
                    ],
                ),
                build.element("Stadtrad", subtitle="ab 499 €"),
            ],
        ),
        {
            "recipient": {"id": PSID},
            "messaging_type": "RESPONSE",
            "message": {
                "attachment": {
                    "type": "template",
                    "payload": {
                        "template_type": "generic",
                        "elements": [
                            {
                                "title": "Welcome!",
                                "image_url": "https://cdn.example.com/hat.jpg",
                                "subtitle": "We have the right hat for everyone.",
                                "default_action": {
                                    "type": "web_url",
                                    "url": "https://shop.example.com/",
                                    "webview_height_ratio": "tall",
                                },
                                "buttons": [
                                    {
                                        "type": "web_url",
                                        "url": "https://shop.example.com/",
                                        "title": "View Website",
                                    },
                                    {
                                        "type": "postback",
                                        "title": "Start Chatting",
                                        "payload": "DEVELOPER_DEFINED_PAYLOAD",
                                    },
                                ],
                            },
                            {"title": "Stadtrad", "subtitle": "ab 499 €"},
                        ],
                    },
                }
            },
        },
    ),
    "typing_on": (
        lambda: build.sender_action(PSID, "typing_on"),
        {"recipient": {"id": PSID}, "sender_action": "typing_on"},
    ),
    "mark_seen": (
        lambda: build.sender_action(PSID, "mark_seen"),
        {"recipient": {"id": PSID}, "sender_action": "mark_seen"},
    ),
    "typing_off": (
        lambda: build.sender_action(PSID, "typing_off"),
        {"recipient": {"id": PSID}, "sender_action": "typing_off"},
    ),
}

# Bodies no builder writes this way, read back unchanged.
HAND_WRITTEN: dict[str, dict[str, Any]] = {
    "user_ref recipient, no push": {
        "recipient": {"user_ref": "UNIQUE_REF_PARAM"},
        "messaging_type": "UPDATE",
        "notification_type": "NO_PUSH",
        "message": {"text": "Danke für dein Opt-in!"},
    },
    "private reply to a visitor post": {
        "recipient": {"post_id": "542998526103632_461184817813069"},
        "messaging_type": "RESPONSE",
        "message": {"text": "Of course, what is your budget?"},
    },
    "persona": {
        "recipient": {"id": PSID},
        "messaging_type": "RESPONSE",
        "persona_id": "1254477777772919",
        "message": {"text": "Hi, ich bin Lena."},
    },
    "numeric quick reply payload, empty title with image": {
        "recipient": {"id": PSID},
        "messaging_type": "RESPONSE",
        "message": {
            "text": "Wie viele?",
            "quick_replies": [
                {"content_type": "text", "title": "Eins", "payload": 1},
                {
                    "content_type": "text",
                    "title": "",
                    "payload": "",
                    "image_url": "https://cdn.example.com/two.png",
                },
            ],
        },
    },
    "quick replies on an attachment": {
        "recipient": {"id": PSID},
        "messaging_type": "RESPONSE",
        "message": {
            "attachment": {"type": "video", "payload": {"url": "https://cdn.example.com/a.mp4"}},
            "quick_replies": [{"content_type": "user_email"}],
        },
    },
    "url button with messenger extensions": {
        "recipient": {"id": PSID},
        "messaging_type": "RESPONSE",
        "message": {
            "attachment": {
                "type": "template",
                "payload": {
                    "template_type": "button",
                    "text": "Try the URL button!",
                    "buttons": [
                        {
                            "type": "web_url",
                            "url": "https://www.messenger.com/",
                            "title": "URL Button",
                            "webview_height_ratio": "full",
                            "messenger_extensions": True,
                            "fallback_url": "https://www.messenger.com/fallback",
                            "webview_share_button": "hide",
                        }
                    ],
                },
            }
        },
    },
    "sharable generic template, audio attachment not reusable": {
        "recipient": {"id": PSID},
        "messaging_type": "RESPONSE",
        "message": {
            "attachment": {
                "type": "template",
                "payload": {
                    "template_type": "generic",
                    "sharable": True,
                    "elements": [
                        {
                            "title": "Stadtrad",
                            "buttons": [{"type": "postback", "title": "Kaufen", "payload": "B7"}],
                        }
                    ],
                },
            }
        },
    },
    "audio by url, not saved": {
        "recipient": {"id": PSID},
        "messaging_type": "RESPONSE",
        "message": {
            "attachment": {
                "type": "audio",
                "payload": {"url": "https://cdn.example.com/hi.mp3", "is_reusable": False},
            }
        },
    },
}


@pytest.mark.parametrize("case", sorted(BUILT))
def test_builder_produces_the_documented_body(case: str) -> None:
    make, expected = BUILT[case]
    assert make().to_body() == expected


@pytest.mark.parametrize("body", [b for _, b in BUILT.values()] + list(HAND_WRITTEN.values()))
def test_every_body_round_trips_exactly(body: dict[str, Any]) -> None:
    assert from_body(body).to_body() == body


@pytest.mark.parametrize("body", [b for _, b in BUILT.values()] + list(HAND_WRITTEN.values()))
def test_every_body_is_posted_as_the_bytes_httpx_would_encode(body: dict[str, Any]) -> None:
    message = from_body(body)
    httpx_json = json.dumps(
        message.to_body(), ensure_ascii=False, separators=(",", ":"), allow_nan=False
    )
    assert message.to_json() == httpx_json.encode()


@pytest.mark.parametrize("case", sorted(BUILT))
def test_built_models_read_back_equal(case: str) -> None:
    message = BUILT[case][0]()
    assert from_body(message.to_body()) == message


def test_body_kinds() -> None:
    kinds = {case: from_body(body) for case, (_, body) in BUILT.items()}
    assert isinstance(kinds["typing_on"], SenderAction)
    messages = {case: m for case, m in kinds.items() if isinstance(m, Message)}
    assert messages["text"].kind == "text"
    assert messages["image by url, saved for reuse"].kind == "attachment"
    assert messages["button template: wa.me link and postback"].kind == "template"
    assert messages["generic template"].kind == "template"
    assert messages["phone number and email quick replies"].kind == "quick_replies"


# -- HUMAN_AGENT ---------------------------------------------------------------------------------


def test_human_agent_tag_for_a_bot_message_is_refused() -> None:
    with pytest.raises(MessageValidationError, match="only for messages a person wrote") as info:
        build.text(PSID, "Automatische Antwort", tag="HUMAN_AGENT")
    assert info.value.limit == "HUMAN_AGENT only for human-written messages"


def test_human_agent_flag_is_never_sent() -> None:
    message = build.text(PSID, "Lena hier", tag="HUMAN_AGENT", human_agent=True)
    assert message.human_agent is True
    assert "human_agent" not in message.to_body()
    assert b"human_agent" not in message.to_json()


def test_a_human_may_answer_inside_the_window_without_the_tag() -> None:
    message = build.text(PSID, "Lena hier", human_agent=True)
    assert message.to_body()["messaging_type"] == "RESPONSE"
    assert "tag" not in message.to_body()


def test_from_body_takes_a_human_agent_body_as_already_decided() -> None:
    _, body = BUILT["human agent text"]
    message = from_body(body)
    assert isinstance(message, Message)
    assert message.human_agent is True
    bot = from_body(BUILT["text"][1])
    assert isinstance(bot, Message)
    assert bot.human_agent is False


def test_from_body_can_be_told_a_human_agent_body_came_from_a_bot() -> None:
    _, body = BUILT["human agent text"]
    with pytest.raises(MessageValidationError, match="HUMAN_AGENT"):
        from_body(body, human_agent=False)


def test_human_agent_is_not_a_send_api_field() -> None:
    body = {**BUILT["text"][1], "human_agent": True}
    with pytest.raises(MessageValidationError, match="not a Send API field"):
        from_body(body)


def test_model_level_human_agent_rule() -> None:
    with pytest.raises(MessageValidationError, match="HUMAN_AGENT"):
        Message(
            recipient=Recipient(id=PSID),
            messaging_type="MESSAGE_TAG",
            tag="HUMAN_AGENT",
            message=MessageContent(text="bot"),
        )


# -- limits --------------------------------------------------------------------------------------


def _buttons(n: int) -> list[PostbackButton]:
    return [build.postback_button(f"B{i}", f"P{i}") for i in range(n)]


def _element(i: int) -> GenericElement:
    return build.element(f"Rad {i}", subtitle="ab 499 €")


VIOLATIONS: list[tuple[str, Callable[[], Any], str]] = [
    (
        "four buttons on a button template",
        lambda: build.button_template(PSID, "Pick", _buttons(4)),
        "buttons <= 3",
    ),
    (
        "a button template without buttons",
        lambda: build.button_template(PSID, "Pick", []),
        "buttons >= 1",
    ),
    (
        "four buttons on a generic element",
        lambda: build.generic_template(PSID, [build.element("Rad", buttons=_buttons(4))]),
        "element buttons <= 3",
    ),
    (
        "button title of 21 characters",
        lambda: build.button_template(PSID, "Pick", [build.postback_button("x" * 21, "P")]),
        "button title <= 20 characters",
    ),
    (
        "url button title of 21 characters",
        lambda: build.button_template(PSID, "Pick", [build.url_button("x" * 21, WA_ME)]),
        "button title <= 20 characters",
    ),
    (
        "postback payload of 1001 characters",
        lambda: build.postback_button("Go", "p" * 1001),
        "postback payload <= 1000 characters",
    ),
    (
        "button template text of 641 characters",
        lambda: build.button_template(PSID, "t" * 641, _buttons(1)),
        "button template text <= 640 characters",
    ),
    (
        "fourteen quick replies",
        lambda: build.quick_replies(PSID, "Pick", {f"P{i}": f"T{i}" for i in range(14)}),
        "quick replies <= 13",
    ),
    (
        "quick reply title of 21 characters",
        lambda: build.quick_replies(PSID, "Pick", {"P": "x" * 21}),
        "quick reply title <= 20 characters",
    ),
    (
        "quick reply payload of 1001 characters",
        lambda: build.quick_replies(PSID, "Pick", {"p" * 1001: "T"}),
        "quick reply payload <= 1000 characters",
    ),
    (
        "eleven carousel elements",
        lambda: build.generic_template(PSID, [_element(i) for i in range(11)]),
        "generic template elements <= 10",
    ),
    (
        "element title of 81 characters",
        lambda: build.element("x" * 81, subtitle="s"),
        "element title <= 80 characters",
    ),
    (
        "element subtitle of 81 characters",
        lambda: build.element("Rad", subtitle="x" * 81),
        "element subtitle <= 80 characters",
    ),
    (
        "element with nothing but a title",
        lambda: build.element("Rad"),
        "element: title plus at least one more property",
    ),
    (
        "text of 2001 characters",
        lambda: build.text(PSID, "x" * 2001),
        "text <= 2000 characters",
    ),
    ("empty text", lambda: build.text(PSID, ""), "text >= 1 characters"),
    (
        "metadata of 1001 characters",
        lambda: build.text(PSID, "Hi", metadata="m" * 1001),
        "metadata <= 1000 characters",
    ),
    (
        "MESSAGE_TAG without a tag",
        lambda: build.text(PSID, "Hi", messaging_type="MESSAGE_TAG"),
        "tag required with MESSAGE_TAG",
    ),
    (
        "a tag with RESPONSE",
        lambda: build.text(PSID, "Hi", messaging_type="RESPONSE", tag="ACCOUNT_UPDATE"),
        "tag only with MESSAGE_TAG",
    ),
    (
        "HUMAN_AGENT for a bot message",
        lambda: build.quick_replies(PSID, "Pick", {"P": "T"}, tag="HUMAN_AGENT"),
        "HUMAN_AGENT only for human-written messages",
    ),
    (
        "a sender action with a message",
        lambda: from_body(
            {"recipient": {"id": PSID}, "sender_action": "typing_on", "message": {"text": "x"}}
        ),
        "sender_action without message",
    ),
]


@pytest.mark.parametrize(
    ("make", "limit"), [(m, lim) for _, m, lim in VIOLATIONS], ids=[d for d, _, _ in VIOLATIONS]
)
def test_limit_violation_names_the_limit(make: Callable[[], Any], limit: str) -> None:
    with pytest.raises(MessageValidationError) as info:
        make()
    assert info.value.limit == limit
    assert limit in str(info.value)


MALFORMED: list[tuple[str, Callable[[], Any], str]] = [
    (
        "two recipient ids",
        lambda: Recipient(id=PSID, user_ref="ref"),
        "exactly one of id, user_ref, comment_id or post_id",
    ),
    ("no recipient id", lambda: Recipient(), "exactly one of id"),
    ("blank PSID", lambda: build.text(" ", "Hallo"), "recipient.id must not be empty"),
    (
        "text and attachment",
        lambda: MessageContent(
            text="x",
            attachment=MediaAttachment(type="file", payload=MediaPayload(attachment_id="1")),
        ),
        "exactly one of `text` or `attachment`",
    ),
    ("neither text nor attachment", lambda: MessageContent(), "exactly one of `text`"),
    (
        "attachment by url and id",
        lambda: from_body(
            {
                "recipient": {"id": PSID},
                "messaging_type": "RESPONSE",
                "message": {
                    "attachment": {
                        "type": "image",
                        "payload": {"url": "https://x.example/a.png", "attachment_id": "1"},
                    }
                },
            }
        ),
        "exactly one of `url` or `attachment_id`",
    ),
    (
        "is_reusable with a saved attachment",
        lambda: build.attachment(PSID, "image", "1857777774821032", is_reusable=True),
        "`is_reusable` applies to attachments sent by `url` only",
    ),
    (
        "attachment url that is not http(s)",
        lambda: build.attachment(PSID, "image", "ftp://x.example/a.png"),
        "attachment url must be an http(s) URL",
    ),
    (
        "messenger extensions over http",
        lambda: UrlButton(title="Shop", url="http://shop.example.com", messenger_extensions=True),
        "button url must be an https URL",
    ),
    (
        "fallback_url without messenger extensions",
        lambda: UrlButton(title="Shop", url=WA_ME, fallback_url="https://x.example"),
        "fallback_url is only allowed with messenger_extensions=True",
    ),
    (
        "title on a phone number quick reply",
        lambda: from_body(
            {
                "recipient": {"id": PSID},
                "messaging_type": "RESPONSE",
                "message": {
                    "text": "Nummer?",
                    "quick_replies": [{"content_type": "user_phone_number", "title": "Nummer"}],
                },
            }
        ),
        "user_phone_number quick replies take no title",
    ),
    (
        "quick reply without title or image",
        lambda: TextQuickReply(title="", payload="P"),
        "needs a non-empty title and payload",
    ),
    (
        "sender action to a comment",
        lambda: SenderAction(recipient=Recipient(comment_id="1_2"), sender_action="typing_on"),
        "recipient.id (a PSID) is required",
    ),
    (
        "missing messaging_type",
        lambda: from_body({"recipient": {"id": PSID}, "message": {"text": "x"}}),
        "messaging_type",
    ),
    (
        "unknown body",
        lambda: from_body({"recipient": {"id": PSID}}),
        "`message` or `sender_action`",
    ),
    ("not an object", lambda: from_body([]), "must be a JSON object"),  # type: ignore[arg-type]
    (
        "a typo in a field name",
        lambda: from_body(
            {"recipient": {"id": PSID}, "messaging_type": "RESPONSE", "mesage": {"text": "x"}}
        ),
        "`message` or `sender_action`",
    ),
    (
        "an unsupported button type",
        lambda: from_body(
            {
                "recipient": {"id": PSID},
                "messaging_type": "RESPONSE",
                "message": {
                    "attachment": {
                        "type": "template",
                        "payload": {
                            "template_type": "button",
                            "text": "Call us",
                            "buttons": [
                                {"type": "phone_number", "title": "Call", "payload": "+4930"}
                            ],
                        },
                    }
                },
            }
        ),
        "phone_number",
    ),
]


@pytest.mark.parametrize(
    ("make", "message"), [(m, s) for _, m, s in MALFORMED], ids=[d for d, _, _ in MALFORMED]
)
def test_malformed_payloads_raise_message_validation_error(
    make: Callable[[], Any], message: str
) -> None:
    with pytest.raises(MessageValidationError) as info:
        make()
    assert message in str(info.value)


def test_errors_do_not_repeat_the_offending_value() -> None:
    with pytest.raises(MessageValidationError) as info:
        build.text(PSID, "x" * 2001)
    assert "x" * 50 not in str(info.value)


def test_explicit_models_equal_builder_output() -> None:
    built = build.button_template(PSID, "Weiter?", [build.url_button("WhatsApp", WA_ME)])
    by_hand = from_body(
        {
            "recipient": {"id": PSID},
            "messaging_type": "RESPONSE",
            "message": {
                "attachment": {
                    "type": "template",
                    "payload": {
                        "template_type": "button",
                        "text": "Weiter?",
                        "buttons": [{"type": "web_url", "url": WA_ME, "title": "WhatsApp"}],
                    },
                }
            },
        }
    )
    assert by_hand == built


@pytest.mark.parametrize(
    "make",
    [
        lambda: build.text(PSID, "Hi", tag="SHIPPING_UPDATE"),  # a tag Meta retired in 2020
        lambda: from_body(
            {
                "recipient": {"id": PSID},
                "messaging_type": "MESSAGE_TAG",
                "tag": "PROMOTION",
                "message": {"text": "Sale!"},
            }
        ),
    ],
    ids=["builder", "from_body"],
)
def test_an_unknown_message_tag_is_refused_naming_the_allowed_ones(
    make: Callable[[], Any],
) -> None:
    with pytest.raises(MessageValidationError, match=r"Message\.tag") as info:
        make()
    for allowed in (
        "CONFIRMED_EVENT_UPDATE",
        "POST_PURCHASE_UPDATE",
        "ACCOUNT_UPDATE",
        "HUMAN_AGENT",
    ):
        assert allowed in str(info.value)
