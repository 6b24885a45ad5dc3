"""Meta's limits on outbound WhatsApp messages are checked locally, before any request.

Each violation raises MessageValidationError whose message (and ``limit``) names the rule, and the
fake records no request at all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from waflow import WhatsApp
from waflow.errors import MessageValidationError
from waflow.testing import FakeGraphAPI
from waflow.whatsapp import build
from waflow.whatsapp.interactive import Header, ListRow, ListSection
from waflow.whatsapp.media_refs import MediaRef
from waflow.whatsapp.messages import from_body
from waflow.whatsapp.template_components import ButtonComponent, PayloadParameter

TO = "4915112345678"
CATALOG = "194836987003835"


def _rows(n: int) -> list[tuple[str, str]]:
    return [(f"row-{i}", f"Row {i}") for i in range(n)]


VIOLATIONS: list[tuple[str, Callable[[WhatsApp], Any], str]] = [
    (
        "four reply buttons",
        lambda wa: wa.send_buttons(TO, "Pick", {"a": "A", "b": "B", "c": "C", "d": "D"}),
        "reply buttons <= 3",
    ),
    (
        "button title of 21 characters",
        lambda wa: wa.send_buttons(TO, "Pick", {"a": "x" * 21}),
        "button title <= 20 characters",
    ),
    (
        "button id of 257 characters",
        lambda wa: wa.send_buttons(TO, "Pick", {"a" * 257: "A"}),
        "button id <= 256 characters",
    ),
    (
        "eleven list rows in one section",
        lambda wa: wa.send_list(TO, "Pick", "Open", {"All": _rows(11)}),
        "list rows <= 10",
    ),
    (
        "eleven list rows over two sections",
        lambda wa: wa.send_list(TO, "Pick", "Open", {"A": _rows(6), "B": _rows(5)}),
        "list rows (all sections) <= 10",
    ),
    (
        "list row title of 25 characters",
        lambda wa: wa.send_list(TO, "Pick", "Open", {"A": [("r", "x" * 25)]}),
        "list row title <= 24 characters",
    ),
    (
        "list row description of 73 characters",
        lambda wa: wa.send_list(TO, "Pick", "Open", [_section_with_long_description()]),
        "list row description <= 72 characters",
    ),
    (
        "list button label of 21 characters",
        lambda wa: wa.send_list(TO, "Pick", "x" * 21, {"A": _rows(1)}),
        "list button label <= 20 characters",
    ),
    (
        "31 products in a product list",
        lambda wa: wa.send_product_list(
            TO, CATALOG, "Bikes", "Our bikes", {"A": [f"sku-{i}" for i in range(31)]}
        ),
        "products in a section <= 30",
    ),
    (
        "31 products over two sections",
        lambda wa: wa.send_product_list(
            TO,
            CATALOG,
            "Bikes",
            "Our bikes",
            {"A": [f"a-{i}" for i in range(16)], "B": [f"b-{i}" for i in range(15)]},
        ),
        "products (all sections) <= 30",
    ),
    (
        "eleven product sections",
        lambda wa: wa.send_product_list(
            TO, CATALOG, "Bikes", "Our bikes", {f"S{i}": [f"sku-{i}"] for i in range(11)}
        ),
        "product sections <= 10",
    ),
    (
        "product list with an image header",
        lambda wa: wa.send(_product_list_with_image_header()),
        "product_list: text header required",
    ),
    (
        "single product with a header",
        lambda wa: wa.send(_product_with_header()),
        "product message: no header",
    ),
    (
        "text of 4097 characters",
        lambda wa: wa.send_text(TO, "x" * 4097),
        "text body <= 4096 characters",
    ),
    (
        "interactive body of 1025 characters",
        lambda wa: wa.send_buttons(TO, "x" * 1025, {"a": "A"}),
        "body text <= 1024 characters",
    ),
    (
        "footer of 61 characters",
        lambda wa: wa.send_buttons(TO, "Pick", {"a": "A"}, footer="x" * 61),
        "footer text <= 60 characters",
    ),
    (
        "header of 61 characters",
        lambda wa: wa.send_buttons(TO, "Pick", {"a": "A"}, header="x" * 61),
        "header text <= 60 characters",
    ),
    (
        "caption of 1025 characters",
        lambda wa: wa.send_image(TO, "https://cdn.example.com/a.jpg", caption="x" * 1025),
        "media caption <= 1024 characters",
    ),
    (
        "cta_url display text of 21 characters",
        lambda wa: wa.send_cta_url(TO, "Visit", "x" * 21, "https://shop.example.com"),
        "cta_url display_text <= 20 characters",
    ),
    (
        "callback data of 513 characters",
        lambda wa: wa.send_text(TO, "Hi", callback_data="x" * 513),
        "biz_opaque_callback_data <= 512 characters",
    ),
    (
        "template button index 10",
        lambda wa: wa.send_template(
            TO,
            "order_followup",
            "de",
            buttons=[
                ButtonComponent(
                    sub_type="quick_reply", index=10, parameters=[PayloadParameter(payload="p")]
                )
            ],
        ),
        "button index 0-9",
    ),
    (
        "duplicate list row ids",
        lambda wa: wa.send_list(TO, "Pick", "Open", {"A": [("r", "One")], "B": [("r", "Two")]}),
        "list row ids unique",
    ),
    (
        "duplicate reply button titles",
        lambda wa: wa.send_buttons(TO, "Pick", [("a", "Same"), ("b", "Same")]),
        "reply button titles unique",
    ),
    (
        "several list sections without titles",
        lambda wa: wa.send_list(
            TO, "Pick", "Open", [_untitled_section("a"), _untitled_section("b")]
        ),
        "section title required with several sections",
    ),
]


def _section_with_long_description() -> Any:
    return ListSection(title="A", rows=[ListRow(id="r", title="Row", description="x" * 73)])


def _untitled_section(row_id: str) -> Any:
    return ListSection(rows=[ListRow(id=row_id, title="Row")])


def _product_list_with_image_header() -> Any:
    body = build.product_list(TO, CATALOG, "Bikes", "Our bikes", {"A": ["sku-1"]}).to_body()
    body["interactive"]["header"] = {"type": "image", "image": {"link": "https://x.example/a.jpg"}}
    return from_body(body)


def _product_with_header() -> Any:
    body = build.product(TO, CATALOG, "sku-1", body="Nice").to_body()
    body["interactive"]["header"] = Header(type="text", text="Hi").dump()
    return from_body(body)


@pytest.mark.parametrize(("case", "send", "limit"), VIOLATIONS, ids=[v[0] for v in VIOLATIONS])
def test_limit_violation_raises_before_any_request_naming_the_limit(
    case: str, send: Callable[[WhatsApp], Any], limit: str
) -> None:
    fake = FakeGraphAPI()
    wa = fake.whatsapp()
    with pytest.raises(MessageValidationError) as info:
        send(wa)
    assert info.value.limit == limit
    assert limit in str(info.value)
    assert fake.requests == []


def test_limits_at_the_boundary_are_accepted() -> None:
    fake = FakeGraphAPI()
    wa = fake.whatsapp()
    wa.send_buttons(TO, "x" * 1024, {"a": "x" * 20, "b": "B", "c": "C"}, footer="f" * 60)
    wa.send_list(
        TO, "Pick", "x" * 20, {"A": _rows(5), "B": [(f"b{i}", "y" * 24) for i in range(5)]}
    )
    wa.send_product_list(
        TO,
        CATALOG,
        "h" * 60,
        "Bikes",
        {f"S{i}": [f"sku-{i}-{j}" for j in range(3)] for i in range(10)},
    )
    wa.send_text(TO, "x" * 4096)
    assert len(fake.sent) == 4


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (
            {
                "messaging_product": "whatsapp",
                "to": TO,
                "type": "text",
                "text": {"body": "hi"},
                "x": 1,
            },
            "x",
        ),
        (
            {"messaging_product": "whatsapp", "to": TO, "type": "carrier_pigeon"},
            "unknown message type",
        ),
        ({"messaging_product": "whatsapp", "to": TO}, "cannot tell the message kind"),
        (
            {"messaging_product": "whatsapp", "to": "", "type": "text", "text": {"body": "hi"}},
            "`to`",
        ),
        ({"messaging_product": "whatsapp", "to": TO, "type": "image", "image": {}}, "exactly one"),
        (
            {
                "messaging_product": "whatsapp",
                "to": TO,
                "type": "image",
                "image": {"link": "ftp://x"},
            },
            "http(s)",
        ),
        (
            {
                "messaging_product": "whatsapp",
                "to": TO,
                "type": "audio",
                "audio": {"id": "1", "caption": "c"},
            },
            "no caption",
        ),
        (
            {
                "messaging_product": "whatsapp",
                "to": TO,
                "type": "location",
                "location": {"latitude": 91, "longitude": 0},
            },
            "latitude",
        ),
    ],
)
def test_malformed_bodies_raise_a_specific_error(body: dict[str, Any], fragment: str) -> None:
    with pytest.raises(MessageValidationError, match=None) as info:
        from_body(body)
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    "make",
    [
        lambda: build.location(TO, float("nan"), 13.4),
        lambda: build.location(TO, 52.5, float("inf")),
        lambda: build.flow(TO, "Pick a slot", "Book", flow_id="1", data={"price": float("nan")}),
        lambda: build.flow(TO, "Pick", "Book", flow_id="1", data={"slots": [{"x": float("-inf")}]}),
    ],
    ids=["nan latitude", "infinite longitude", "nan in flow data", "infinity nested in flow data"],
)
def test_numbers_json_cannot_carry_are_refused_before_any_request(make: Callable[[], Any]) -> None:
    with pytest.raises(MessageValidationError, match="finite"):
        make()


def test_validation_errors_never_repeat_the_recipient_number() -> None:
    with pytest.raises(MessageValidationError) as info:
        from_body({"messaging_product": "whatsapp", "to": TO, "type": "text", "text": {"body": 5}})
    assert TO not in str(info.value)


def test_remove_reaction_sends_an_empty_emoji() -> None:
    fake = FakeGraphAPI()
    fake.whatsapp().remove_reaction(TO, "wamid.abc")
    assert fake.sent.last.body["reaction"] == {"message_id": "wamid.abc", "emoji": ""}


def test_template_rejects_components_together_with_body() -> None:
    with pytest.raises(TypeError, match="either components="):
        build.template(TO, "x", body=["a"], components=[])


def test_media_ref_rejects_both_id_and_link() -> None:
    with pytest.raises(MessageValidationError, match="exactly one"):
        MediaRef(id="1", link="https://x.example/a.jpg")
