"""Every send example of Meta's OpenAPI spec round-trips, and the typed helpers produce it.

The 50 examples of ``POST /{Phone-Number-ID}/messages`` are read from ../shared at test time, their
placeholders replaced by realistic values (tests/spec.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.spec import SEND_PATH, realistic, request_examples
from waflow import WhatsApp
from waflow.testing import FakeGraphAPI
from waflow.whatsapp.interactive import Header, OrderDetailsParameters
from waflow.whatsapp.media_refs import MediaRef
from waflow.whatsapp.messages import Contact, from_body
from waflow.whatsapp.template_components import (
    ActionParameter,
    ButtonAction,
    ButtonComponent,
    Currency,
    CurrencyParameter,
    DateTime,
    DateTimeParameter,
    ImageParameter,
    Language,
    PayloadParameter,
    TextParameter,
)

EXAMPLE_NAMES = [
    "Send Audio Message by ID",
    "Send Audio Message by URL",
    "Send Catalog Message",
    "Send Catalog Template Message",
    "Send Contact Message",
    "Send Document Message by ID",
    "Send Document Message by URL",
    "Send Draft Flow by ID",
    "Send Draft Flow by Name",
    "Send Flow Template Message",
    "Send Image Message by ID",
    "Send Image Message by URL",
    "Send List Message",
    "Send Location Message",
    "Send Message Template Interactive",
    "Send Message Template Media",
    "Send Message Template Text",
    "Send Multi-Product Message",
    "Send Order Details Message",
    "Send Order Status Message",
    "Send Published Flow by ID",
    "Send Published Flow by Name",
    "Send Reply Button",
    "Send Reply to Audio Message by ID",
    "Send Reply to Audio Message by URL",
    "Send Reply to Contact Message",
    "Send Reply to Document Message by ID",
    "Send Reply to Document Message by URL",
    "Send Reply to Image Message by ID",
    "Send Reply to Image Message by URL",
    "Send Reply to List Message",
    "Send Reply to Location Message",
    "Send Reply to Sticker Message by ID",
    "Send Reply to Sticker Message by URL",
    "Send Reply to Text Message",
    "Send Reply to Video Message by ID",
    "Send Reply to Video Message by URL",
    "Send Reply with Reaction Message",
    "Send Sample Issue Resolution Template",
    "Send Sample Shipping Confirmation Template",
    "Send Sample Text Message",
    "Send Single Product Message",
    "Send Sticker Message by ID",
    "Send Sticker Message by URL",
    "Send Test Message",
    "Send Text Message",
    "Send Text Message with Preview URL",
    "Send Video Message by ID",
    "Send Video Message by URL",
    "Send typing indicator and read receipt",
]


@pytest.fixture(scope="module")
def examples() -> dict[str, dict[str, Any]]:
    return {name: realistic(body) for name, body in request_examples(SEND_PATH).items()}


def test_the_spec_holds_exactly_the_fifty_examples_this_suite_covers(
    examples: dict[str, dict[str, Any]],
) -> None:
    assert sorted(examples) == sorted(EXAMPLE_NAMES)


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_example_round_trips_through_its_model(
    examples: dict[str, dict[str, Any]], name: str
) -> None:
    body = examples[name]
    message = from_body(body)
    assert message.to_body() == body
    # And the model is stable: reading its own output gives an equal model.
    assert from_body(message.to_body()) == message


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_example_is_posted_as_the_bytes_httpx_would_encode(
    examples: dict[str, dict[str, Any]], name: str
) -> None:
    # A send POSTs to_json() (pydantic encodes it straight from the model): exactly the bytes
    # httpx's json= makes of to_body().
    message = from_body(examples[name])
    httpx_json = json.dumps(
        message.to_body(), ensure_ascii=False, separators=(",", ":"), allow_nan=False
    )
    assert message.to_json() == httpx_json.encode()
    assert json.loads(message.to_json()) == examples[name]


# -- helpers ---------------------------------------------------------------------------------

Sender = Callable[[WhatsApp, dict[str, Any]], Any]


def _media_source(payload: dict[str, Any]) -> str:
    return str(payload.get("id") or payload["link"])


def _reply_to(body: dict[str, Any]) -> str | None:
    context = body.get("context")
    return None if context is None else str(context["message_id"])


def _send_media(kind: str) -> Sender:
    def send(wa: WhatsApp, body: dict[str, Any]) -> Any:
        payload = body[kind]
        extras: dict[str, Any] = {}
        if "caption" in payload:
            extras["caption"] = payload["caption"]
        if "filename" in payload:
            extras["filename"] = payload["filename"]
        helper = getattr(wa, f"send_{kind}")
        return helper(body["to"], _media_source(payload), reply_to=_reply_to(body), **extras)

    return send


def _send_text(wa: WhatsApp, body: dict[str, Any]) -> Any:
    text = body["text"]
    return wa.send_text(
        body["to"], text["body"], preview_url=text["preview_url"], reply_to=_reply_to(body)
    )


def _send_location(wa: WhatsApp, body: dict[str, Any]) -> Any:
    loc = body["location"]
    return wa.send_location(
        body["to"],
        loc["latitude"],
        loc["longitude"],
        name=loc["name"],
        address=loc["address"],
        reply_to=_reply_to(body),
    )


def _send_contacts(wa: WhatsApp, body: dict[str, Any]) -> Any:
    cards = [Contact.model_validate(card) for card in body["contacts"]]
    return wa.send_contacts(body["to"], cards, reply_to=_reply_to(body))


def _send_reaction(wa: WhatsApp, body: dict[str, Any]) -> Any:
    return wa.send_reaction(body["to"], body["reaction"]["message_id"], body["reaction"]["emoji"])


def _send_buttons(wa: WhatsApp, body: dict[str, Any]) -> Any:
    interactive = body["interactive"]
    choices = {b["reply"]["id"]: b["reply"]["title"] for b in interactive["action"]["buttons"]}
    return wa.send_buttons(body["to"], interactive["body"]["text"], choices)


def _send_list(wa: WhatsApp, body: dict[str, Any]) -> Any:
    interactive = body["interactive"]
    sections = {
        section["title"]: [(r["id"], r["title"], r["description"]) for r in section["rows"]]
        for section in interactive["action"]["sections"]
    }
    return wa.send_list(
        body["to"],
        interactive["body"]["text"],
        interactive["action"]["button"],
        sections,
        header=interactive["header"]["text"],
        footer=interactive["footer"]["text"],
        reply_to=_reply_to(body),
    )


def _send_catalog(wa: WhatsApp, body: dict[str, Any]) -> Any:
    interactive = body["interactive"]
    return wa.send_catalog(
        body["to"],
        interactive["body"]["text"],
        thumbnail_product_retailer_id=interactive["action"]["parameters"][
            "thumbnail_product_retailer_id"
        ],
        footer=interactive["footer"]["text"],
    )


def _send_product(wa: WhatsApp, body: dict[str, Any]) -> Any:
    interactive = body["interactive"]
    action = interactive["action"]
    return wa.send_product(
        body["to"],
        action["catalog_id"],
        action["product_retailer_id"],
        body=interactive["body"]["text"],
        footer=interactive["footer"]["text"],
    )


def _send_product_list(wa: WhatsApp, body: dict[str, Any]) -> Any:
    interactive = body["interactive"]
    action = interactive["action"]
    sections = {
        section["title"]: [item["product_retailer_id"] for item in section["product_items"]]
        for section in action["sections"]
    }
    return wa.send_product_list(
        body["to"],
        action["catalog_id"],
        interactive["header"]["text"],
        interactive["body"]["text"],
        sections,
        footer=interactive["footer"]["text"],
    )


def _send_flow(wa: WhatsApp, body: dict[str, Any]) -> Any:
    interactive = body["interactive"]
    params = interactive["action"]["parameters"]
    return wa.send_flow(
        body["to"],
        interactive["body"]["text"],
        params["flow_cta"],
        flow_id=params.get("flow_id"),
        flow_name=params.get("flow_name"),
        flow_token=params["flow_token"],
        mode=params.get("mode"),
        flow_action=params["flow_action"],
        screen=params["flow_action_payload"]["screen"],
        data=params["flow_action_payload"]["data"],
        header=interactive["header"]["text"],
        footer=interactive["footer"]["text"],
    )


def _send_order_details(wa: WhatsApp, body: dict[str, Any]) -> Any:
    interactive = body["interactive"]
    return wa.send_order_details(
        body["to"],
        interactive["body"]["text"],
        OrderDetailsParameters.model_validate(interactive["action"]["parameters"]),
        header=Header(type="image", image=MediaRef(link=interactive["header"]["image"]["link"])),
        footer=interactive["footer"]["text"],
    )


def _send_order_status(wa: WhatsApp, body: dict[str, Any]) -> Any:
    interactive = body["interactive"]
    params = interactive["action"]["parameters"]
    return wa.send_order_status(
        body["to"],
        interactive["body"]["text"],
        params["reference_id"],
        params["order"]["status"],
        description=params["order"]["description"],
    )


def _body_parameters(body: dict[str, Any]) -> list[Any]:
    """The body component's parameters as typed values (plain strings for text)."""
    for component in body["template"].get("components", []):
        if component["type"] == "body":
            values: list[Any] = []
            for param in component["parameters"]:
                if param["type"] == "text":
                    values.append(param["text"])
                elif param["type"] == "currency":
                    values.append(CurrencyParameter(currency=Currency(**param["currency"])))
                else:
                    values.append(DateTimeParameter(date_time=DateTime(**param["date_time"])))
            return values
    return []


def _buttons(body: dict[str, Any]) -> list[ButtonComponent]:
    result = []
    for component in body["template"].get("components", []):
        if component["type"] != "button":
            continue
        params: list[Any] = []
        for param in component["parameters"]:
            if param["type"] == "payload":
                params.append(PayloadParameter(payload=param["payload"]))
            elif param["type"] == "text":
                params.append(TextParameter(text=param["text"]))
            else:
                params.append(ActionParameter(action=ButtonAction(**param["action"])))
        result.append(
            ButtonComponent(
                sub_type=component["sub_type"], index=component["index"], parameters=params
            )
        )
    return result


def _send_template(wa: WhatsApp, body: dict[str, Any]) -> Any:
    template = body["template"]
    header = None
    for component in template.get("components", []):
        if component["type"] == "header":
            header = ImageParameter(image=MediaRef(**component["parameters"][0]["image"]))
    return wa.send_template(
        body["to"],
        template["name"],
        Language(**template["language"]),
        header=header,
        body=_body_parameters(body) or None,
        buttons=_buttons(body),
    )


def _mark_read(wa: WhatsApp, body: dict[str, Any]) -> Any:
    return wa.mark_read(body["message_id"], typing="typing_indicator" in body)


HELPERS: dict[str, Sender] = {
    "audio": _send_media("audio"),
    "image": _send_media("image"),
    "video": _send_media("video"),
    "document": _send_media("document"),
    "sticker": _send_media("sticker"),
    "text": _send_text,
    "location": _send_location,
    "contacts": _send_contacts,
    "reaction": _send_reaction,
    "button": _send_buttons,
    "list": _send_list,
    "catalog_message": _send_catalog,
    "product": _send_product,
    "product_list": _send_product_list,
    "flow": _send_flow,
    "order_details": _send_order_details,
    "order_status": _send_order_status,
    "template": _send_template,
    "read": _mark_read,
}


def _kind(body: dict[str, Any]) -> str:
    if body.get("status") == "read":
        return "read"
    message = from_body(body)
    kind = str(message.model_dump()["type"])
    return str(body["interactive"]["type"]) if kind == "interactive" else kind


def _complete(body: dict[str, Any]) -> dict[str, Any]:
    """The body with the envelope keys a helper always writes (some examples leave them out)."""
    if body.get("status") == "read":
        return body
    completed = {"messaging_product": "whatsapp", "recipient_type": "individual", **body}
    completed.setdefault("type", from_body(body).model_dump()["type"])
    return completed


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_typed_helper_sends_exactly_the_example_body(
    examples: dict[str, dict[str, Any]], name: str
) -> None:
    body = examples[name]
    fake = FakeGraphAPI()
    wa = fake.whatsapp()
    HELPERS[_kind(body)](wa, body)
    assert fake.requests[-1].status_code == 200
    assert fake.requests[-1].json == _complete(body)


def test_every_kind_in_the_spec_has_a_helper(examples: dict[str, dict[str, Any]]) -> None:
    kinds = {_kind(body) for body in examples.values()}
    assert kinds == set(HELPERS)
