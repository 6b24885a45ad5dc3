"""Every typed helper, through both the sync and the async client, against the FakeGraphAPI."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import pytest

from waflow import AsyncWhatsApp, SendResult, WhatsApp
from waflow.graph import GraphRequest, GraphResponse
from waflow.testing import FakeGraphAPI, FrozenClock
from waflow.whatsapp import build
from waflow.whatsapp.interactive import Amount, OrderDetails, OrderDetailsParameters, OrderItem
from waflow.whatsapp.messages import Contact, ContactName, ContactPhone

TO = "4915112345678"
CATALOG = "194836987003835"
WAMID = "wamid.HBgNNDkxNTExMjM0NTY3OBUCABIYFDNBQTI="

ORDER = OrderDetailsParameters(
    reference_id="order-7",
    type="physical-goods",
    currency="EUR",
    total_amount=Amount(value=64900, offset=100),
    order=OrderDetails(
        status="pending",
        items=[
            OrderItem(
                retailer_id="bike-7",
                name="Stadtrad",
                amount=Amount(value=64900, offset=100),
                quantity=1,
            )
        ],
        subtotal=Amount(value=64900, offset=100),
        tax=Amount(value=0, offset=100),
    ),
)

# helper name -> (builder, positional args, keyword args)
CASES: dict[str, tuple[Any, tuple[Any, ...], dict[str, Any]]] = {
    "send_text": (build.text, (TO, "Hallo Lena!"), {"preview_url": True, "reply_to": WAMID}),
    "send_image": (build.image, (TO, "https://cdn.example.com/bike.jpg"), {"caption": "Dein Rad"}),
    "send_video": (build.video, (TO, "1276358963412345"), {"caption": "So geht's"}),
    "send_audio": (build.audio, (TO, "https://cdn.example.com/hello.ogg"), {}),
    "send_document": (build.document, (TO, "1276358963412345"), {"filename": "Rechnung.pdf"}),
    "send_sticker": (build.sticker, (TO, "https://cdn.example.com/s.webp"), {}),
    "send_location": (build.location, (TO, 52.52, 13.405), {"name": "Lenas Radladen"}),
    "send_contacts": (
        build.contacts,
        (
            TO,
            [
                Contact(
                    name=ContactName(formatted_name="Lena"),
                    phones=[ContactPhone(phone="+49 30 1234")],
                )
            ],
        ),
        {},
    ),
    "send_reaction": (build.reaction, (TO, WAMID, "👍"), {}),
    "remove_reaction": (build.remove_reaction, (TO, WAMID), {}),
    "send_buttons": (
        build.buttons,
        (TO, "Weiter auf WhatsApp?", {"yes": "Ja", "no": "Nein"}),
        {"footer": "Lenas Radladen"},
    ),
    "send_list": (
        build.list_menu,
        (TO, "Was suchst du?", "Auswahl", {"Räder": [("city", "Stadtrad", "ab 499 €")]}),
        {"header": "Sortiment"},
    ),
    "send_cta_url": (build.cta_url, (TO, "Unser Shop", "Zum Shop", "https://shop.example.com"), {}),
    "send_product": (build.product, (TO, CATALOG, "bike-7"), {"body": "Das Stadtrad"}),
    "send_product_list": (
        build.product_list,
        (TO, CATALOG, "Räder", "Unsere Räder", {"Stadt": ["bike-7", "bike-8"]}),
        {},
    ),
    "send_catalog": (
        build.catalog,
        (TO, "Stöbere im Katalog"),
        {"thumbnail_product_retailer_id": "bike-7"},
    ),
    "send_flow": (
        build.flow,
        (TO, "Termin buchen", "Buchen"),
        {"flow_id": "1234567890", "screen": "BOOK"},
    ),
    "send_location_request": (build.location_request, (TO, "Wo bist du?"), {}),
    "send_order_details": (build.order_details, (TO, "Bitte bezahlen", ORDER), {}),
    "send_order_status": (build.order_status, (TO, "Unterwegs!", "order-7", "shipped"), {}),
    "send_template": (
        build.template,
        (TO, "order_followup", "de"),
        {"body": ["Lena", "Lenas Radladen", "Stadtrad"]},
    ),
}


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def call(client: WhatsApp | AsyncWhatsApp, helper: str, /, *args: Any, **kwargs: Any) -> Any:
    result = getattr(client, helper)(*args, **kwargs)
    return await result if inspect.isawaitable(result) else result


def make_client(fake: FakeGraphAPI, mode: str) -> WhatsApp | AsyncWhatsApp:
    return fake.whatsapp() if mode == "sync" else fake.async_whatsapp()


def test_every_public_send_helper_is_covered() -> None:
    helpers = {name for name in dir(WhatsApp) if name.startswith(("send_", "remove_"))}
    assert helpers == set(CASES)


@pytest.mark.parametrize("helper", sorted(CASES))
async def test_helper_sends_the_built_body_and_returns_a_send_result(
    helper: str, mode: str
) -> None:
    builder, args, kwargs = CASES[helper]
    fake = FakeGraphAPI(seed=7)
    client = make_client(fake, mode)
    result = await call(client, helper, *args, **kwargs)
    assert isinstance(result, SendResult)
    sent = fake.sent.last
    assert sent.body == builder(*args, **kwargs).to_body()
    assert result.channel == "whatsapp"
    assert result.message_id == sent.message_id
    assert result.message_id.startswith("wamid.")
    assert result.wa_id == TO
    assert result.retries_taken == 0
    if helper == "send_template":
        assert result.message_status == "accepted"


@pytest.mark.parametrize("cls", [SendResult, GraphRequest, GraphResponse])
def test_results_and_requests_are_frozen_dataclasses_their_init_fills_completely(
    cls: type[Any],
) -> None:
    # Their __init__ is written by hand (for speed): it must still take and set every field.
    values = {f.name: f"value of {f.name}" for f in dataclasses.fields(cls)}
    made = cls(**values)
    assert dataclasses.asdict(made) == values
    assert dataclasses.replace(made, **values) == made
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(made, dataclasses.fields(cls)[0].name, "changed")


async def test_mark_read_with_typing_indicator(mode: str) -> None:
    fake = FakeGraphAPI()
    client = make_client(fake, mode)
    assert await call(client, "mark_read", WAMID, typing=True) is True
    assert fake.requests[-1].json == {
        "messaging_product": "whatsapp",
        "status": "read",
        "message_id": WAMID,
        "typing_indicator": {"type": "text"},
    }
    assert fake.sent == []  # a read receipt is not a message


async def test_seeded_fakes_hand_out_the_same_ids(mode: str) -> None:
    ids = []
    for _ in range(2):
        fake = FakeGraphAPI(seed=42)
        client = make_client(fake, mode)
        ids.append([(await call(client, "send_text", TO, str(i))).message_id for i in range(3)])
    assert ids[0] == ids[1]
    assert len(set(ids[0])) == 3


async def test_replies_go_out_from_the_configured_number(mode: str) -> None:
    fake = FakeGraphAPI()
    fake.add_phone_number("200000000000001")
    client = make_client(fake, mode)
    await call(client.with_options(max_retries=0), "send_text", TO, "one")
    await call(client.for_phone_number("200000000000001"), "send_text", TO, "two")
    await call(client, "send_text", TO, "three")
    assert [m.sender_id for m in fake.sent] == [
        fake.phone_number_id,
        "200000000000001",
        fake.phone_number_id,
    ]


def test_sync_client_context_manager_closes_its_own_pool() -> None:
    with WhatsApp(access_token="t", phone_number_id="1", throughput=None) as wa:
        http = wa._graph.http
    assert http.is_closed


async def test_async_client_context_manager_closes_its_own_pool() -> None:
    async with AsyncWhatsApp(access_token="t", phone_number_id="1", throughput=None) as wa:
        http = wa._graph.http
    assert http.is_closed


def test_sent_log_filters() -> None:
    fake = FakeGraphAPI(clock=FrozenClock())
    wa = fake.whatsapp()
    wa.send_text(TO, "a")
    wa.send_buttons("4917600000000", "b", {"x": "X"})
    wa.send_text("+49 176 00000000", "c")
    assert fake.sent.to(TO).texts() == ["a"]
    assert fake.sent.to("4917600000000").texts() == ["b", "c"]
    assert fake.sent.of_type("button").texts() == ["b"]
    assert fake.sent.of_type("text").texts() == ["a", "c"]
    assert fake.sent.on("messenger") == []
