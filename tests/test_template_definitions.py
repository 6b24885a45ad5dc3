"""Template definitions: every create example of Meta's OpenAPI spec round-trips, Meta's creation
rules are checked before any request, and listed templates keep what waflow does not know.

The 11 examples of ``POST /{WABA-ID}/message_templates`` are read from ../shared at test time and
their placeholders replaced by realistic values.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from tests.spec import TEMPLATES_PATH, request_examples
from waflow.errors import MessageValidationError
from waflow.whatsapp.templates import (
    BodyDefinition,
    BodyExample,
    ButtonsDefinition,
    CopyCodeButton,
    FlowButton,
    FooterDefinition,
    HeaderDefinition,
    HeaderExample,
    MessageTemplate,
    MpmButton,
    NamedParamExample,
    OtpButton,
    PhoneNumberButton,
    QuickReplyButton,
    TemplateDefinition,
    TemplateEdit,
    UnknownButton,
    UnknownComponent,
    UrlButton,
    placeholders,
)

EXAMPLE_NAMES = [
    "Create Flow Template Message by Flow JSON",
    "Create Flow Template Message by ID",
    "Create Flow Template Message by Name",
    "Create authentication template w/ OTP copy code button",
    "Create authentication template w/ OTP one-tap autofill button",
    "Create catalog template",
    "Create multi-product message template",
    "Create template w/ document header, text body, a phone number button, and a URL button",
    "Create template w/ image header, text body, text footer, and 2 call-to-action buttons",
    "Create template w/ location header, text body, text footer, and a website buttons",
    "Create template w/ text header, text body, text footer, and 2 quick reply buttons",
]

# Placeholders of Meta's create examples and the realistic values that replace them.
_PLACEHOLDERS = {
    "<TEMPLATE_NAME>": "spring_bike_check",
    "<SCREEN_ID>": "WELCOME_SCREEN",
    "{{Flow-ID}}": "1234567890123456",
    "{{Flow-Name}}": "bike_service_booking",
}


def _realistic(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _realistic(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_realistic(item) for item in value]
    return _PLACEHOLDERS.get(value, value) if isinstance(value, str) else value


@pytest.fixture(scope="module")
def examples() -> dict[str, dict[str, Any]]:
    return {name: _realistic(body) for name, body in request_examples(TEMPLATES_PATH).items()}


def test_the_spec_holds_exactly_the_eleven_create_examples(
    examples: dict[str, dict[str, Any]],
) -> None:
    assert sorted(examples) == sorted(EXAMPLE_NAMES)


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_create_example_round_trips_through_typed_models(
    examples: dict[str, dict[str, Any]], name: str
) -> None:
    body = examples[name]
    definition = TemplateDefinition.from_body(body)
    assert definition.to_body() == body
    assert TemplateDefinition.from_body(definition.to_body()) == definition
    # Nothing fell back to an untyped part.
    parts = [*definition.components, *definition.buttons]
    assert not any(isinstance(part, (UnknownComponent, UnknownButton)) for part in parts)


def test_examples_cover_every_header_format_and_button_kind(
    examples: dict[str, dict[str, Any]],
) -> None:
    definitions = [TemplateDefinition.from_body(body) for body in examples.values()]
    formats = {d.header.format for d in definitions if d.header is not None}
    kinds = {type(button) for d in definitions for button in d.buttons}
    assert formats == {"TEXT", "IMAGE", "DOCUMENT", "LOCATION"}
    assert kinds == {
        QuickReplyButton,
        UrlButton,
        PhoneNumberButton,
        FlowButton,
        OtpButton,
        MpmButton,
    }


def test_the_case_of_component_types_is_kept(examples: dict[str, dict[str, Any]]) -> None:
    flow = TemplateDefinition.from_body(examples["Create Flow Template Message by ID"])
    assert isinstance(flow.body, BodyDefinition)
    assert flow.to_body()["components"][0]["type"] == "body"  # Meta's example writes it so


def test_typed_parts_read_as_they_are_written(examples: dict[str, dict[str, Any]]) -> None:
    offer = TemplateDefinition.from_body(
        examples[
            "Create template w/ image header, text body, text footer, and 2 call-to-action buttons"
        ]
    )
    assert offer.header is not None and offer.header.example is not None
    assert offer.header.example.header_handle is not None
    assert offer.body is not None and offer.body.example is not None
    assert offer.body.example.body_text == [["Mark", "Tuscan Getaway package", "800"]]
    assert offer.footer is not None and offer.footer.text == "Offer valid until May 31, 2023"
    url = offer.buttons[1]
    assert isinstance(url, UrlButton) and url.example == ["summer2023"]
    assert placeholders(url.url) == ["1"]
    otp = TemplateDefinition.from_body(
        examples["Create authentication template w/ OTP one-tap autofill button"]
    ).buttons[0]
    assert isinstance(otp, OtpButton) and otp.otp_type == "ONE_TAP"
    assert otp.package_name == "com.example.luckyshrub"


def _named_definition() -> dict[str, Any]:
    return {
        "name": "order_followup_named",
        "language": "de",
        "category": "UTILITY",
        "parameter_format": "NAMED",
        "components": [
            {
                "type": "HEADER",
                "format": "TEXT",
                "text": "Bestellung {{order_id}}",
                "example": {
                    "header_text_named_params": [{"param_name": "order_id", "example": "4711"}]
                },
            },
            {
                "type": "BODY",
                "text": "Hallo {{first_name}}, dein {{product}} ist abholbereit.",
                "example": {
                    "body_text_named_params": [
                        {"param_name": "first_name", "example": "Lena"},
                        {"param_name": "product", "example": "Stadtrad"},
                    ]
                },
            },
            {"type": "FOOTER", "text": "Lenas Radladen"},
            {
                "type": "BUTTONS",
                "buttons": [
                    {"type": "QUICK_REPLY", "text": "Passt"},
                    {"type": "QUICK_REPLY", "text": "Anderer Termin"},
                    {
                        "type": "URL",
                        "text": "Bestellung ansehen",
                        "url": "https://shop.example.com/orders/{{1}}",
                        "example": ["https://shop.example.com/orders/4711"],
                    },
                    {"type": "PHONE_NUMBER", "text": "Anrufen", "phone_number": "+4930123456"},
                    {"type": "COPY_CODE", "example": "RAD10"},
                ],
            },
        ],
    }


def test_named_parameters_with_their_samples_round_trip() -> None:
    body = _named_definition()
    definition = TemplateDefinition.from_body(body)
    assert definition.to_body() == body
    assert definition.key == ("order_followup_named", "de")
    assert isinstance(definition.buttons[4], CopyCodeButton)


def test_a_definition_built_from_models_gives_meta_s_body() -> None:
    definition = TemplateDefinition(
        name="bike_ready",
        language="de",
        category="UTILITY",
        components=[
            HeaderDefinition(format="IMAGE", example=HeaderExample(header_handle=["4::aW1h"])),
            BodyDefinition(
                text="Hallo {{1}}, dein Rad ist fertig.",
                example=BodyExample(body_text=[["Lena"]]),
            ),
            FooterDefinition(text="Lenas Radladen"),
            ButtonsDefinition(buttons=[QuickReplyButton(text="Danke!")]),
        ],
    )
    assert definition.to_body() == {
        "name": "bike_ready",
        "language": "de",
        "category": "UTILITY",
        "components": [
            {"type": "HEADER", "format": "IMAGE", "example": {"header_handle": ["4::aW1h"]}},
            {
                "type": "BODY",
                "text": "Hallo {{1}}, dein Rad ist fertig.",
                "example": {"body_text": [["Lena"]]},
            },
            {"type": "FOOTER", "text": "Lenas Radladen"},
            {"type": "BUTTONS", "buttons": [{"type": "QUICK_REPLY", "text": "Danke!"}]},
        ],
    }


# -- creation rules --------------------------------------------------------------------------


def _base() -> dict[str, Any]:
    return {
        "name": "order_update",
        "language": "en_US",
        "category": "UTILITY",
        "components": [
            {"type": "HEADER", "format": "TEXT", "text": "Your order"},
            {
                "type": "BODY",
                "text": "Hi {{1}}, order {{2}} ships today.",
                "example": {"body_text": [["Mark", "4711"]]},
            },
            {"type": "FOOTER", "text": "Lenas Radladen"},
            {
                "type": "BUTTONS",
                "buttons": [
                    {"type": "QUICK_REPLY", "text": "Thanks"},
                    {"type": "QUICK_REPLY", "text": "Call me"},
                ],
            },
        ],
    }


def _component(body: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in body["components"] if c["type"] == kind)


Mutation = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Mutation:
    def mutate(body: dict[str, Any]) -> None:
        kind, _, key = path.partition(".")
        if not key:
            body[kind] = value
        else:
            _component(body, kind)[key] = value

    return mutate


def _buttons(*buttons: dict[str, Any]) -> Mutation:
    return _set("BUTTONS.buttons", list(buttons))


def _drop(kind: str) -> Mutation:
    def mutate(body: dict[str, Any]) -> None:
        body["components"] = [c for c in body["components"] if c["type"] != kind]

    return mutate


def _named_body(text: str, samples: list[dict[str, str]]) -> Mutation:
    def mutate(body: dict[str, Any]) -> None:
        body["parameter_format"] = "NAMED"
        component = _component(body, "BODY")
        component["text"] = text
        component["example"] = {"body_text_named_params": samples}

    return mutate


QR = {"type": "QUICK_REPLY", "text": "Thanks"}
URL = {"type": "URL", "text": "Track", "url": "https://shop.example.com/track"}
PHONE = {"type": "PHONE_NUMBER", "text": "Call", "phone_number": "+4930123456"}

BROKEN: dict[str, tuple[Mutation, str, str | None]] = {
    "name_with_capitals": (
        _set("name", "Order-Update"),
        "may only hold lowercase letters, digits and underscores: use e.g. 'order_update'",
        "template name [a-z0-9_]",
    ),
    "name_too_long": (_set("name", "a" * 513), "at most 512 characters", None),
    "unknown_language": (_set("language", "english"), "not a language code like 'de'", None),
    "unknown_category": (_set("category", "SHOPPING"), "MARKETING, UTILITY, AUTHENTICATION", None),
    "body_too_long": (
        _set("BODY.text", "x" * 1025),
        "body text must be at most 1024 characters",
        "body text <= 1024 characters",
    ),
    "header_too_long": (
        _set("HEADER.text", "x" * 61),
        "header text must be at most 60 characters",
        "header text <= 60 characters",
    ),
    "footer_too_long": (
        _set("FOOTER.text", "x" * 61),
        "footer text must be at most 60 characters",
        "footer text <= 60 characters",
    ),
    "footer_with_placeholder": (
        _set("FOOTER.text", "Hi {{1}}"),
        "the footer cannot hold placeholders",
        None,
    ),
    "eleven_buttons": (
        _buttons(*[dict(QR, text=f"Option {n}") for n in range(11)]),
        "at most 10 buttons allowed, got 11",
        "buttons <= 10",
    ),
    "quick_replies_split": (
        _buttons(QR, URL, dict(QR, text="Later")),
        "quick-reply buttons must be grouped together",
        "quick replies grouped",
    ),
    "three_url_buttons": (
        _buttons(URL, URL, URL),
        "at most 2 URL buttons, got 3",
        "URL buttons <= 2",
    ),
    "two_phone_buttons": (_buttons(PHONE, PHONE), "at most 1 PHONE_NUMBER button", None),
    "button_text_too_long": (
        _buttons(dict(QR, text="x" * 26)),
        "button text must be at most 25 characters",
        None,
    ),
    "url_variable_in_the_middle": (
        _buttons(dict(URL, url="https://shop.example.com/{{1}}/track", example=["4711"])),
        "a URL takes one variable, at its very end",
        "URL variable only at the end",
    ),
    "url_variable_without_sample": (
        _buttons(dict(URL, url="https://shop.example.com/track/{{1}}")),
        "URL button 0 has a variable: add one sample in example",
        None,
    ),
    "body_placeholders_without_samples": (
        _set("BODY.example", None),
        "the body has 2 placeholders: add example.body_text with 2 sample values",
        "samples for every placeholder",
    ),
    "too_few_body_samples": (
        _set("BODY.example", {"body_text": [["Mark"]]}),
        "needs one list of 2 values (one per placeholder), got 1",
        None,
    ),
    "placeholders_out_of_order": (
        _set("BODY.text", "Order {{2}} for {{1}}"),
        "placeholders must be numbered {{1}} to {{2}} in order of first appearance, "
        "found {{2}}, {{1}}",
        "placeholders numbered 1..n in order",
    ),
    "placeholder_skipped": (
        _set("BODY.text", "Hi {{1}}, order {{3}}"),
        "found {{1}}, {{3}}",
        None,
    ),
    "named_placeholder_in_positional_template": (
        _set("BODY.text", "Hi {{first_name}}"),
        "has the named placeholder {{first_name}}: set parameter_format='NAMED'",
        None,
    ),
    "number_in_named_template": (
        _named_body("Hi {{1}}", [{"param_name": "1", "example": "x"}]),
        "uses {{1}} but the template's parameter_format is NAMED: name it",
        None,
    ),
    "named_placeholder_without_sample": (
        _named_body(
            "Hi {{first_name}}, order {{order_id}}",
            [{"param_name": "first_name", "example": "Lena"}],
        ),
        "uses {{order_id}}: add a sample for it to example.body_text_named_params",
        None,
    ),
    "named_placeholder_badly_named": (
        _named_body("Hi {{First Name}}", [{"param_name": "First Name", "example": "Lena"}]),
        "may only hold lowercase letters, digits and underscores",
        None,
    ),
    "header_with_two_placeholders": (
        lambda body: _component(body, "HEADER").update(
            text="{{1}} and {{2}}", example={"header_text": ["a", "b"]}
        ),
        "the header holds at most one placeholder, got 2",
        "header placeholders <= 1",
    ),
    "header_placeholder_without_sample": (
        _set("HEADER.text", "Order {{1}}"),
        "add one sample value in example.header_text",
        None,
    ),
    "media_header_without_sample": (
        lambda body: _component(body, "HEADER").update(format="IMAGE", text=None),
        "a IMAGE header needs a sample",
        "samples for media headers",
    ),
    "unknown_header_format": (_set("HEADER.format", "AUDIO"), "header format 'AUDIO'", None),
    "no_body": (_drop("BODY"), "a template needs a BODY component", None),
    "two_footers": (
        lambda body: body["components"].append({"type": "FOOTER", "text": "again"}),
        "at most one FOOTER component",
        None,
    ),
    "unknown_component": (
        lambda body: body["components"].append({"type": "STICKER"}),
        "unknown component type 'STICKER'",
        None,
    ),
    "unknown_button": (_buttons({"type": "SHARE", "text": "Share"}), "unknown button type", None),
    "typo_in_a_field": (
        lambda body: _component(body, "FOOTER").update(txt="oops"),
        "Extra inputs are not permitted",
        None,
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_creation_rules_fail_before_any_request_naming_the_limit(case: str) -> None:
    mutate, fragment, limit = BROKEN[case]
    body = copy.deepcopy(_base())
    mutate(body)
    for component in body["components"]:  # a None set by a mutation means "leave it out"
        if component.get("example", "") is None:
            del component["example"]
        if component.get("text", "") is None:
            del component["text"]
    with pytest.raises(MessageValidationError) as caught:
        TemplateDefinition.from_body(body)
    assert fragment in str(caught.value)
    if limit is not None:
        assert caught.value.limit == limit


def test_the_base_of_the_broken_cases_is_valid() -> None:
    base = _base()
    assert TemplateDefinition.from_body(base).to_body() == base


def test_authentication_templates_need_no_body_text() -> None:
    TemplateDefinition.from_body(
        {
            "name": "login_code",
            "language": "de",
            "category": "AUTHENTICATION",
            "components": [
                {"type": "BODY", "add_security_recommendation": True},
                {"type": "FOOTER", "code_expiration_minutes": 5},
                {"type": "BUTTONS", "buttons": [{"type": "OTP", "otp_type": "COPY_CODE"}]},
            ],
        }
    )
    # A part alone checks its structure; the limits are checked by the definition holding it.
    assert FooterDefinition(code_expiration_minutes=120).code_expiration_minutes == 120
    with pytest.raises(MessageValidationError, match="code_expiration_minutes must be 1-90"):
        TemplateDefinition.from_body(
            {
                "name": "login_code",
                "language": "de",
                "category": "AUTHENTICATION",
                "components": [
                    {"type": "BODY", "add_security_recommendation": True},
                    {"type": "FOOTER", "code_expiration_minutes": 120},
                ],
            }
        )


def test_parts_built_directly_raise_message_validation_errors() -> None:
    with pytest.raises(MessageValidationError, match=r"UrlButton\.url"):
        UrlButton(text="Track")  # type: ignore[call-arg]
    with pytest.raises(MessageValidationError, match="has type 'FOOTER', got 'BODY'"):
        FooterDefinition(type="BODY", text="x")
    with pytest.raises(MessageValidationError, match="exactly one of flow_id, flow_name"):
        TemplateDefinition.from_body(
            {
                "name": "book",
                "language": "de",
                "category": "MARKETING",
                "components": [
                    {"type": "BODY", "text": "Book a service"},
                    {"type": "BUTTONS", "buttons": [{"type": "FLOW", "text": "Book"}]},
                ],
            }
        )


def test_named_samples_for_placeholders_the_text_lacks_are_refused() -> None:
    body = _named_definition()
    _component(body, "BODY")["example"]["body_text_named_params"].append(
        {"param_name": "colour", "example": "rot"}
    )
    with pytest.raises(MessageValidationError, match="sample for 'colour'"):
        TemplateDefinition.from_body(body)
    assert NamedParamExample(param_name="colour", example="rot").param_name == "colour"


def test_an_edit_checks_its_components_like_a_definition() -> None:
    edit = TemplateEdit.model_validate({"components": _base()["components"]})
    assert edit.dump()["components"][1]["text"] == "Hi {{1}}, order {{2}} ships today."
    with pytest.raises(MessageValidationError, match="edit: the body has 2 placeholders"):
        TemplateEdit.model_validate(
            {"components": [{"type": "BODY", "text": "Hi {{1}}, order {{2}}"}]}
        )
    with pytest.raises(MessageValidationError, match="an edit changes components, category"):
        TemplateEdit()
    # Named placeholders are recognised without a parameter_format.
    named = _named_definition()["components"]
    assert TemplateEdit.model_validate({"components": named, "category": "MARKETING"})


# -- listed templates -------------------------------------------------------------------------


def test_listed_templates_keep_unknown_fields_and_kinds() -> None:
    listed = MessageTemplate.model_validate(
        {
            "id": 1192339204654487,
            "name": "bike_ready",
            "language": "de",
            "status": "APPROVED",
            "category": "UTILITY",
            "quality_score": {"score": "GREEN", "date": 1750263775},
            "library_template_name": "order_ready_1",
            "components": [
                {"type": "HEADER", "format": "TEXT", "text": "Fertig!", "new_field": 1},
                {"type": "BODY", "text": "Dein Rad ist fertig."},
                {"type": "HOLOGRAM", "depth": 3},
                {
                    "type": "BUTTONS",
                    "buttons": [
                        {"type": "QUICK_REPLY", "text": "Danke"},
                        {"type": "TELEPORT", "text": "Beam me up"},
                    ],
                },
                {"type": "FOOTER"},
            ],
        }
    )
    assert listed.id == "1192339204654487"
    assert listed.model_extra == {"library_template_name": "order_ready_1"}
    assert listed.quality_score is not None and listed.quality_score.score == "GREEN"
    assert listed.header is not None and listed.header.model_extra == {"new_field": 1}
    hologram = listed.components[2]
    assert isinstance(hologram, UnknownComponent) and hologram.model_extra == {"depth": 3}
    assert isinstance(listed.buttons[1], UnknownButton)
    assert listed.footer is not None  # Meta's listing may leave out what a create needs


def test_a_listed_template_converts_back_to_a_definition(
    examples: dict[str, dict[str, Any]],
) -> None:
    body = examples["Create multi-product message template"]
    listed = MessageTemplate.model_validate({**body, "id": "555", "status": "APPROVED"})
    assert listed.to_definition().to_body() == body
