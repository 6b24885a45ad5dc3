"""Template messages are checked against their registered definitions before any request.

A client given a :class:`TemplateRegistry` refuses a mismatching send with a ``TemplateError``
that names the fix, and the fake (which plays Meta) never sees the request. The registry follows
the status, quality and category webhooks; the fake answers Meta's 132xxx codes to the same
mistakes when it holds the templates itself.
"""

from __future__ import annotations

from typing import Any

import pytest

from waflow import WhatsApp
from waflow.errors import APIStatusError, MessageValidationError, TemplateError
from waflow.testing import FakeGraphAPI, FrozenClock
from waflow.webhooks import parse
from waflow.whatsapp import build
from waflow.whatsapp.events import TemplateStatusUpdate
from waflow.whatsapp.media_refs import media_ref
from waflow.whatsapp.template_components import (
    ActionParameter,
    ButtonAction,
    ButtonComponent,
    CouponCodeParameter,
    Currency,
    CurrencyParameter,
    DateTime,
    DateTimeParameter,
    DocumentParameter,
    ImageParameter,
    PayloadParameter,
    TextParameter,
)
from waflow.whatsapp.templates import (
    MessageTemplate,
    TemplateDefinition,
    TemplateProblem,
    TemplateRegistry,
)

CUSTOMER = "4915112345678"
WABA = "102290129340398"
ORDER_FOLLOWUP_ID = "990000000000001"


def _order_followup(language: str) -> TemplateDefinition:
    return TemplateDefinition.from_body(
        {
            "name": "order_followup",
            "language": language,
            "category": "UTILITY",
            "components": [
                {
                    "type": "HEADER",
                    "format": "TEXT",
                    "text": "Bestellung {{1}}",
                    "example": {"header_text": ["4711"]},
                },
                {
                    "type": "BODY",
                    "text": "Hallo {{1}}, dein {{2}} von {{3}} ist unterwegs.",
                    "example": {"body_text": [["Lena", "Stadtrad", "Lenas Radladen"]]},
                },
                {"type": "FOOTER", "text": "Lenas Radladen"},
                {
                    "type": "BUTTONS",
                    "buttons": [
                        {"type": "QUICK_REPLY", "text": "Danke!"},
                        {
                            "type": "URL",
                            "text": "Sendung verfolgen",
                            "url": "https://shop.example.com/track/{{1}}",
                            "example": ["https://shop.example.com/track/4711"],
                        },
                    ],
                },
            ],
        }
    )


WELCOME = TemplateDefinition.from_body(
    {
        "name": "welcome_named",
        "language": "de",
        "category": "MARKETING",
        "parameter_format": "NAMED",
        "components": [
            {
                "type": "BODY",
                "text": "Hallo {{first_name}}, willkommen bei {{shop_name}}!",
                "example": {
                    "body_text_named_params": [
                        {"param_name": "first_name", "example": "Lena"},
                        {"param_name": "shop_name", "example": "Lenas Radladen"},
                    ]
                },
            }
        ],
    }
)
INVOICE = TemplateDefinition.from_body(
    {
        "name": "invoice_ready",
        "language": "de",
        "category": "UTILITY",
        "components": [
            {"type": "HEADER", "format": "DOCUMENT", "example": {"header_handle": ["4::YXBw"]}},
            {
                "type": "BODY",
                "text": "Deine Rechnung {{1}} über {{2}} ist fällig am {{3}}.",
                "example": {"body_text": [["R-7", "12,50 €", "6. Juni"]]},
            },
            {
                "type": "BUTTONS",
                "buttons": [
                    {"type": "PHONE_NUMBER", "text": "Anrufen", "phone_number": "+4930123456"},
                    {"type": "COPY_CODE", "example": "RAD10"},
                ],
            },
        ],
    }
)
SPRING_SALE = TemplateDefinition.from_body(
    {
        "name": "spring_sale",
        "language": "de",
        "category": "MARKETING",
        "components": [
            {"type": "HEADER", "format": "IMAGE", "example": {"header_handle": ["4::aW1h"]}},
            {"type": "BODY", "text": "Frühlingsangebote für dein Rad!"},
            {"type": "BUTTONS", "buttons": [{"type": "MPM", "text": "Angebote ansehen"}]},
        ],
    }
)


def _registry() -> TemplateRegistry:
    registry = TemplateRegistry()
    registry.add(_order_followup("de"), status="APPROVED", template_id=ORDER_FOLLOWUP_ID)
    registry.add(_order_followup("en"), status="APPROVED")
    for definition in (WELCOME, INVOICE, SPRING_SALE):
        registry.add(definition, status="APPROVED")
    return registry


@pytest.fixture
def fake() -> FakeGraphAPI:
    return FakeGraphAPI(clock=FrozenClock())


@pytest.fixture
def registry() -> TemplateRegistry:
    return _registry()


@pytest.fixture
def wa(fake: FakeGraphAPI, registry: TemplateRegistry) -> WhatsApp:
    return fake.whatsapp(templates=registry)


def _track(order: str = "4711") -> ButtonComponent:
    return ButtonComponent(sub_type="url", index=1, parameters=[TextParameter(text=order)])


def _followup(**overrides: Any) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "header": "4711",
        "body": ["Lena", "Stadtrad", "Lenas Radladen"],
        "buttons": [_track()],
    }
    return {**arguments, **overrides}


def _currency(fallback: str, code: str = "EUR") -> CurrencyParameter:
    return CurrencyParameter(
        currency=Currency(fallback_value=fallback, code=code, amount_1000=12500)
    )


def _refused(fake: FakeGraphAPI, wa: WhatsApp, message: Any, fix: str) -> TemplateError:
    with pytest.raises(TemplateError) as caught:
        wa.send(message)
    assert fix in str(caught.value)
    assert fake.requests == []  # refused before any request
    return caught.value


# -- the six kinds of mistake the issue names, and more ----------------------------------------


def test_a_correct_template_message_is_sent(fake: FakeGraphAPI, wa: WhatsApp) -> None:
    result = wa.send_template(CUSTOMER, "order_followup", "de", **_followup())
    assert result.message_status == "accepted"
    assert fake.sent.last.body["template"]["name"] == "order_followup"


def test_wrong_number_of_body_parameters(fake: FakeGraphAPI, wa: WhatsApp) -> None:
    message = build.template(CUSTOMER, "order_followup", "de", **_followup(body=["Lena", "Rad"]))
    error = _refused(
        fake, wa, message, "template 'order_followup' (de) takes 3 body parameters, got 2"
    )
    assert (error.code, error.status_code, error.retryable) == (None, 400, False)
    assert isinstance(error, APIStatusError)


def test_missing_named_parameter(fake: FakeGraphAPI, wa: WhatsApp) -> None:
    message = build.template(CUSTOMER, "welcome_named", "de", body={"first_name": "Lena"})
    _refused(
        fake,
        wa,
        message,
        "template 'welcome_named' (de): named parameter 'shop_name' missing; the body takes "
        "first_name, shop_name",
    )


def test_positional_parameters_for_a_named_template(fake: FakeGraphAPI, wa: WhatsApp) -> None:
    message = build.template(CUSTOMER, "welcome_named", "de", body=["Lena", "Lenas Radladen"])
    _refused(fake, wa, message, "uses named parameters: give every body parameter a parameter_name")


def test_unknown_named_parameter(fake: FakeGraphAPI, wa: WhatsApp) -> None:
    body = {"first_name": "Lena", "shop_name": "Lenas Radladen", "city": "Berlin"}
    message = build.template(CUSTOMER, "welcome_named", "de", body=body)
    _refused(fake, wa, message, "named parameter 'city' is not in the template")


def test_button_index_out_of_range(fake: FakeGraphAPI, wa: WhatsApp) -> None:
    extra = ButtonComponent(sub_type="quick_reply", index=3, parameters=[])
    message = build.template(
        CUSTOMER, "order_followup", "de", **_followup(buttons=[_track(), extra])
    )
    _refused(
        fake,
        wa,
        message,
        "button index 3 out of range: template 'order_followup' (de) has 2 buttons (0-1)",
    )


def test_media_header_without_media(fake: FakeGraphAPI, wa: WhatsApp) -> None:
    message = build.template(
        CUSTOMER,
        "invoice_ready",
        "de",
        body=["R-7", "12,50 €", "6. Juni"],
        buttons=[
            ButtonComponent(
                sub_type="copy_code", index=1, parameters=[CouponCodeParameter(coupon_code="RAD10")]
            )
        ],
    )
    _refused(
        fake,
        wa,
        message,
        "template 'invoice_ready' (de): header of format DOCUMENT needs a document parameter: "
        "pass header=DocumentParameter(document=media_ref('https://…'))",
    )


def test_media_header_of_the_wrong_kind(fake: FakeGraphAPI, wa: WhatsApp) -> None:
    message = build.template(
        CUSTOMER,
        "spring_sale",
        "de",
        header=DocumentParameter(document=media_ref("https://cdn.example.com/a.pdf")),
        buttons=[_mpm()],
    )
    _refused(fake, wa, message, "header of format IMAGE needs an image parameter, got document")


def _mpm() -> ButtonComponent:
    return ButtonComponent(
        sub_type="mpm",
        index=0,
        parameters=[ActionParameter(action=ButtonAction(thumbnail_product_retailer_id="city-7"))],
    )


def test_currency_without_fallback(fake: FakeGraphAPI, wa: WhatsApp) -> None:
    message = build.template(
        CUSTOMER,
        "invoice_ready",
        "de",
        header=DocumentParameter(document=media_ref("https://cdn.example.com/r7.pdf")),
        body=["R-7", _currency(""), "6. Juni"],
        buttons=[
            ButtonComponent(
                sub_type="copy_code", index=1, parameters=[CouponCodeParameter(coupon_code="RAD10")]
            )
        ],
    )
    _refused(
        fake,
        wa,
        message,
        "template 'invoice_ready' (de): currency parameter 2 needs a fallback_value, the amount "
        "as customers should read it",
    )


def test_unknown_language(fake: FakeGraphAPI, wa: WhatsApp) -> None:
    message = build.template(CUSTOMER, "order_followup", "fr", **_followup())
    _refused(
        fake,
        wa,
        message,
        "no template 'order_followup' in language 'fr'; registered languages: de, en",
    )


def test_unknown_template_name_suggests_the_closest(fake: FakeGraphAPI, wa: WhatsApp) -> None:
    message = build.template(CUSTOMER, "order_folowup", "de", **_followup())
    _refused(
        fake,
        wa,
        message,
        "no template 'order_folowup' is registered (did you mean 'order_followup'?)",
    )


@pytest.mark.parametrize(
    ("overrides", "fix"),
    [
        ({"header": None}, "takes 1 header parameter, got 0: pass header=… for {{1}}"),
        (
            {"header": ImageParameter(image=media_ref("https://cdn.example.com/a.jpg"))},
            "the TEXT header takes a text parameter, got image",
        ),
        ({"buttons": []}, "button 1 (URL) needs a parameter: add ButtonComponent(sub_type='url'"),
        (
            {
                "buttons": [
                    ButtonComponent(sub_type="quick_reply", index=1, parameters=[]),
                ]
            },
            "button 1 is a URL button: use sub_type 'url', got 'quick_reply'",
        ),
        (
            {"buttons": [_track(), _track("4712")]},
            "button index 1 is given twice",
        ),
        (
            {
                "buttons": [
                    _track(),
                    ButtonComponent(
                        sub_type="quick_reply", index=0, parameters=[PayloadParameter(payload="ok")]
                    ),
                ]
            },
            None,
        ),
        (
            {"body": ["Lena", "Stadt\nrad", "Lenas Radladen"]},
            "body parameter 2 holds a newline, a tab or more than 4 spaces in a row",
        ),
        ({"body": ["Lena", " ", "Lenas Radladen"]}, "body parameter 2 is empty"),
        (
            {"body": ["Lena", ImageParameter(image=media_ref("https://x.example/a.jpg")), "x"]},
            "body parameter 2 is image; body parameters are text, currency or date_time",
        ),
        (
            {"body": ["Lena", _currency("12,50 €", code="euro"), "Lenas Radladen"]},
            "needs an ISO 4217 code such as 'EUR', got 'euro'",
        ),
        (
            {
                "body": [
                    "Lena",
                    DateTimeParameter(date_time=DateTime(fallback_value="")),
                    "Lenas Radladen",
                ]
            },
            "date_time parameter 2 needs a fallback_value",
        ),
        (
            {"body": ["Lena", _currency("12,50 €"), "Lenas Radladen"]},
            None,
        ),
    ],
)
def test_header_body_and_button_parameters_are_checked(
    fake: FakeGraphAPI, wa: WhatsApp, overrides: dict[str, Any], fix: str | None
) -> None:
    message = build.template(CUSTOMER, "order_followup", "de", **_followup(**overrides))
    if fix is None:
        wa.send(message)
        assert len(fake.sent) == 1
    else:
        _refused(fake, wa, message, fix)


def test_buttons_that_take_no_parameters(fake: FakeGraphAPI, wa: WhatsApp) -> None:
    message = build.template(
        CUSTOMER,
        "invoice_ready",
        "de",
        header=DocumentParameter(document=media_ref("https://cdn.example.com/r7.pdf")),
        body=["R-7", "12,50 €", "6. Juni"],
        buttons=[ButtonComponent(sub_type="url", index=0, parameters=[TextParameter(text="x")])],
    )
    _refused(fake, wa, message, "button 0 is a PHONE_NUMBER button and takes no parameters")
    no_code = build.template(
        CUSTOMER,
        "invoice_ready",
        "de",
        header=DocumentParameter(document=media_ref("https://cdn.example.com/r7.pdf")),
        body=["R-7", "12,50 €", "6. Juni"],
    )
    _refused(fake, wa, no_code, "button 1 (COPY_CODE) needs a parameter")


def test_templates_without_a_header_or_buttons_refuse_them(
    fake: FakeGraphAPI, wa: WhatsApp
) -> None:
    body = {"first_name": "Lena", "shop_name": "Lenas Radladen"}
    with_header = build.template(CUSTOMER, "welcome_named", "de", header="Hallo", body=body)
    _refused(fake, wa, with_header, "template 'welcome_named' (de) has no header")
    with_button = build.template(
        CUSTOMER,
        "welcome_named",
        "de",
        body=body,
        buttons=[ButtonComponent(sub_type="quick_reply", index=0)],
    )
    _refused(
        fake,
        wa,
        with_button,
        "button index 0 out of range: template 'welcome_named' (de) has no buttons",
    )


async def test_the_async_client_checks_too(fake: FakeGraphAPI, registry: TemplateRegistry) -> None:
    async with fake.async_whatsapp(templates=registry) as wa:
        message = build.template(CUSTOMER, "order_followup", "de", **_followup(body=["Lena"]))
        with pytest.raises(TemplateError, match="takes 3 body parameters, got 1"):
            await wa.send(message)
        assert fake.requests == []
        await wa.send_template(CUSTOMER, "order_followup", "de", **_followup())
    assert len(fake.sent) == 1


def test_a_client_without_a_registry_sends_unchecked(fake: FakeGraphAPI) -> None:
    fake.whatsapp().send_template(CUSTOMER, "whatever", "de", body=["x"])
    assert fake.sent.last.body["template"]["name"] == "whatever"


def test_unregistered_templates_can_be_let_through(fake: FakeGraphAPI) -> None:
    registry = TemplateRegistry([WELCOME], require_registered=False)
    wa = fake.whatsapp(templates=registry)
    wa.send_template(CUSTOMER, "not_registered", "de", body=["x"])
    with pytest.raises(TemplateError, match="named parameter 'shop_name' missing"):
        wa.send_template(CUSTOMER, "welcome_named", "de", body={"first_name": "Lena"})


def test_problem_names_the_kind_and_meta_s_code(registry: TemplateRegistry) -> None:
    problem = registry.problem(
        build.template(CUSTOMER, "order_followup", "de", **_followup(body=["x"]))
    )
    assert problem == TemplateProblem(
        "parameter_count", "template 'order_followup' (de) takes 3 body parameters, got 1"
    )
    assert problem.meta_code == 132000
    assert registry.problem(build.template(CUSTOMER, "order_followup", "de", **_followup())) is None


# -- webhooks keep the registry current -------------------------------------------------------


def _webhook(field: str, value: dict[str, Any]) -> dict[str, Any]:
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": WABA, "time": 1750263775, "changes": [{"value": value, "field": field}]}],
    }


def _status(event: str, reason: str = "NONE", **about: Any) -> dict[str, Any]:
    value = {
        "event": event,
        "message_template_id": int(ORDER_FOLLOWUP_ID),
        "message_template_name": "order_followup",
        "message_template_language": "de",
        "reason": reason,
        **about,
    }
    return _webhook("message_template_status_update", value)


def _apply(registry: TemplateRegistry, body: dict[str, Any]) -> MessageTemplate | None:
    (event,) = parse(body)
    return registry.apply(event)


def test_status_webhooks_pause_reject_disable_and_reinstate(
    fake: FakeGraphAPI, wa: WhatsApp, registry: TemplateRegistry
) -> None:
    message = build.template(CUSTOMER, "order_followup", "de", **_followup())

    paused = _apply(registry, _status("PAUSED"))
    assert paused is not None and paused.status == "PAUSED"
    error = _refused(fake, wa, message, "template 'order_followup' (de) is PAUSED: Meta paused it")
    assert registry.problem(message) is not None
    assert registry.problem(message).meta_code == 132015  # type: ignore[union-attr]
    assert "send another template" in str(error)

    _apply(registry, _status("REINSTATED"))
    assert registry.get("order_followup", "de").status == "APPROVED"  # type: ignore[union-attr]
    wa.send(message)

    rejected = _apply(registry, _status("REJECTED", reason="INVALID_FORMAT"))
    assert rejected is not None and rejected.rejected_reason == "INVALID_FORMAT"
    with pytest.raises(TemplateError, match=r"was REJECTED \(INVALID_FORMAT\): edit it and submit"):
        wa.send(message)

    _apply(registry, _status("DISABLED"))
    with pytest.raises(TemplateError, match=r"is DISABLED .*create a new template"):
        wa.send(message)
    # The English translation is another template: untouched.
    wa.send(build.template(CUSTOMER, "order_followup", "en", **_followup()))


def test_pending_templates_wait_for_approval(fake: FakeGraphAPI) -> None:
    registry = TemplateRegistry()
    registry.add(WELCOME, status="PENDING", template_id="42")
    wa = fake.whatsapp(templates=registry)
    body = {"first_name": "Lena", "shop_name": "Lenas Radladen"}
    _refused(
        fake,
        wa,
        build.template(CUSTOMER, "welcome_named", "de", body=body),
        "is PENDING review: wait for the APPROVED status webhook",
    )
    # A webhook that names only the id finds the template too.
    approved = _apply(
        registry,
        _webhook(
            "message_template_status_update", {"event": "APPROVED", "message_template_id": 42}
        ),
    )
    assert approved is not None and approved.status == "APPROVED"
    wa.send_template(CUSTOMER, "welcome_named", "de", body=body)


def test_flagged_keeps_the_template_sendable(registry: TemplateRegistry) -> None:
    updated = _apply(registry, _status("FLAGGED"))
    assert updated is not None and updated.status == "APPROVED"


def test_quality_and_category_webhooks(registry: TemplateRegistry) -> None:
    quality = _apply(
        registry,
        _webhook(
            "message_template_quality_update",
            {
                "previous_quality_score": "GREEN",
                "new_quality_score": "YELLOW",
                "message_template_id": int(ORDER_FOLLOWUP_ID),
                "message_template_name": "order_followup",
                "message_template_language": "de",
            },
        ),
    )
    assert quality is not None and quality.quality_score is not None
    assert quality.quality_score.score == "YELLOW"
    category = _apply(
        registry,
        _webhook(
            "template_category_update",
            {
                "message_template_id": int(ORDER_FOLLOWUP_ID),
                "message_template_name": "order_followup",
                "message_template_language": "de",
                "previous_category": "UTILITY",
                "new_category": "MARKETING",
            },
        ),
    )
    assert category is not None
    assert (category.category, category.previous_category) == ("MARKETING", "UTILITY")
    assert registry.get("order_followup", "de") == category


def test_events_about_other_templates_or_of_other_kinds_change_nothing(
    fake: FakeGraphAPI, registry: TemplateRegistry
) -> None:
    other = _status("PAUSED", message_template_name="unknown_one", message_template_id=1)
    assert _apply(registry, other) is None
    text = parse(fake.inbound.whatsapp_text(CUSTOMER, "Hallo"))[0]
    assert registry.apply(text) is None
    assert {t.status for t in registry} == {"APPROVED"}


def test_the_fake_s_lifecycle_webhooks_drive_an_app_s_registry(fake: FakeGraphAPI) -> None:
    added = fake.templates.add(WELCOME, status="APPROVED")
    registry = TemplateRegistry([added])
    body = fake.templates.set_status("welcome_named", "de", "PAUSED")
    (event,) = parse(body)
    assert isinstance(event, TemplateStatusUpdate) and event.id == added.id
    assert registry.apply(event) is not None
    assert registry.get("welcome_named", "de").status == "PAUSED"  # type: ignore[union-attr]
    assert fake.templates.get("welcome_named", "de").status == "PAUSED"  # type: ignore[union-attr]
    (quality,) = parse(fake.templates.set_quality("welcome_named", "de", "RED"))
    registry.apply(quality)
    assert registry.get("welcome_named", "de").quality_score.score == "RED"  # type: ignore[union-attr]


# -- the fake plays Meta ---------------------------------------------------------------------


def _meta_refusal(wa: WhatsApp, *args: Any, **kwargs: Any) -> APIStatusError:
    with pytest.raises(TemplateError) as caught:
        wa.send_template(CUSTOMER, *args, **kwargs)
    return caught.value


def test_the_fake_answers_meta_s_template_codes(fake: FakeGraphAPI) -> None:
    fake.templates.add(_order_followup("de"))
    fake.templates.add(WELCOME, status="PAUSED")
    wa = fake.whatsapp()  # no local registry: Meta (the fake) refuses

    unknown = _meta_refusal(wa, "order_followup", "fr", **_followup())
    assert unknown.code == 132001
    assert "Template name does not exist in the translation" in str(unknown)
    assert "no template 'order_followup' in language 'fr'" in str(unknown)
    count = _meta_refusal(wa, "order_followup", "de", **_followup(body=["Lena"]))
    assert count.code == 132000
    paused = _meta_refusal(wa, "welcome_named", "de", body={"first_name": "L", "shop_name": "S"})
    assert paused.code == 132015
    shape = _meta_refusal(
        wa,
        "order_followup",
        "de",
        **_followup(header=ImageParameter(image=media_ref("https://cdn.example.com/a.jpg"))),
    )
    assert shape.code == 132012
    assert fake.sent == []
    wa.send_template(CUSTOMER, "order_followup", "de", **_followup())
    assert len(fake.sent) == 1


def test_the_fake_enforces_only_once_it_holds_templates(fake: FakeGraphAPI) -> None:
    wa = fake.whatsapp()
    wa.send_template(CUSTOMER, "anything", "de")  # no templates registered: accepted as before
    fake.templates.enforce = True
    with pytest.raises(TemplateError) as caught:
        wa.send_template(CUSTOMER, "anything", "de")
    assert caught.value.code == 132001
    fake.templates.add(WELCOME)
    fake.templates.enforce = False
    wa.send_template(CUSTOMER, "anything", "de")
    assert len(fake.sent) == 2


def test_a_template_message_that_breaks_meta_s_limits_never_reaches_the_registry() -> None:
    # Structural limits stay the message models' job (MessageValidationError).
    with pytest.raises(MessageValidationError, match="button index must be 0-9"):
        ButtonComponent(sub_type="url", index=12)


def test_the_fake_announces_category_changes(fake: FakeGraphAPI) -> None:
    added = fake.templates.add(_order_followup("de"))
    registry = TemplateRegistry([added])
    (event,) = parse(fake.templates.set_category("order_followup", "de", "MARKETING"))
    updated = registry.apply(event)
    assert updated is not None and updated.category == "MARKETING"
    assert fake.templates.get("order_followup", "de").category == "MARKETING"  # type: ignore[union-attr]
    with pytest.raises(KeyError, match="no template 'nope' \\(de\\)"):
        fake.templates.set_status("nope", "de", "APPROVED")


def test_registry_housekeeping(registry: TemplateRegistry) -> None:
    assert ("order_followup", "de") in registry
    assert registry.by_id(ORDER_FOLLOWUP_ID) == registry.get("order_followup", "de")
    assert registry.languages("order_followup") == ["de", "en"]
    assert registry.remove("order_followup", "en") == 1
    assert registry.remove("order_followup") == 1
    assert ("order_followup", "de") not in registry
    assert len(registry) == 3
    with pytest.raises(MessageValidationError, match="needs a name and a language"):
        registry.add(MessageTemplate(name="x"))
