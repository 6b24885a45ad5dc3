"""A small shop flow used by the engine tests: Messenger start -> product -> WhatsApp -> order."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import BaseModel

from waflow import filters as F
from waflow.flows import Flow, State
from waflow.flows.context import FlowContext
from waflow.messenger import build as fb

SHOP = "Lenas Radladen"
CATALOG = "194836987003835"
PRODUCTS = {"city-7": "Stadtrad", "trek-3": "Trekkingrad"}
PHONE_PROMPT = (
    f"Möchtest du auf WhatsApp weiterschreiben? Tippe auf deine Nummer: {SHOP} schreibt dir dann "
    "über WhatsApp."
)


class ShopData(BaseModel):
    product: str | None = None
    reminders: int = 0


Ctx = FlowContext[ShopData]


def _product_tapped(event: Any, ctx: Any) -> bool:
    payload = F.payload_of(event)
    return payload is not None and payload.removeprefix("product:") in PRODUCTS


def _is_phone(event: Any, ctx: Any) -> bool:
    payload = F.payload_of(event)
    return payload is not None and payload.startswith("+")


class ShopFlow(Flow[ShopData]):
    name = "shop"

    start = State(initial=True)
    browsing = State()
    choosing_channel = State(timeout=timedelta(hours=20))
    on_whatsapp = State()
    awaiting_order = State()
    ordered = State()
    opted_out = State(final=True)

    @start.on(F.kind("message", "postback", "referral"), to="browsing")
    async def welcome(self, event: Any, ctx: Ctx) -> None:
        if event.channel == "messenger":
            ctx.messenger.send_generic_template(
                [
                    fb.element(
                        title,
                        subtitle="Jetzt ansehen",
                        buttons=[fb.postback_button("Ansehen", f"product:{sku}")],
                    )
                    for sku, title in PRODUCTS.items()
                ]
            )
        else:
            ctx.reply(f"Willkommen bei {SHOP}!")

    @browsing.on(F.payload(prefix="product:"), to="choosing_channel", guard=_product_tapped)
    async def choose(self, event: Any, ctx: Ctx) -> None:
        payload = F.payload_of(event)
        assert payload is not None
        ctx.data.product = payload.removeprefix("product:")
        ctx.messenger.send_quick_replies(
            PHONE_PROMPT, ["user_phone_number", ("LINK", "Link schicken")]
        )

    @choosing_channel.on(F.kind("message"), to="on_whatsapp", guard=_is_phone)
    async def phone_given(self, event: Any, ctx: Ctx) -> None:
        phone = ctx.link_phone(F.payload_of(event) or "")
        assert phone is not None
        ctx.record_opt_in(PHONE_PROMPT, source="messenger:user_phone_number")
        product = PRODUCTS[ctx.data.product or ""]
        first_name = (ctx.customer.name or "du").split()[0]
        ctx.whatsapp.send_template("order_followup", "de", body=[first_name, SHOP, product])
        ctx.messenger.send_text("Danke! Wir schreiben dir auf WhatsApp.")

    @choosing_channel.on(F.payload("LINK"), to="on_whatsapp")
    async def link_requested(self, event: Any, ctx: Ctx) -> None:
        link = ctx.handoff_link(f"Hallo {SHOP}! Mein Code: {{code}}")
        ctx.messenger.send_button_template(
            "Öffne WhatsApp und sende die vorbereitete Nachricht:",
            [fb.url_button("WhatsApp öffnen", link)],
        )

    @choosing_channel.on_timeout(to="browsing")
    async def remind(self, ctx: Ctx) -> None:
        ctx.data.reminders += 1
        ctx.messenger.send_text("Noch Interesse? Tippe auf ein Rad.")

    @on_whatsapp.on(F.channel("whatsapp") & F.kind("message"), to="awaiting_order")
    async def show_product(self, event: Any, ctx: Ctx) -> None:
        ctx.whatsapp.send_product(
            CATALOG, ctx.data.product or "city-7", body="Dein Rad von Messenger"
        )

    @awaiting_order.on(F.message_type("order"), to="ordered")
    async def confirm(self, event: Any, ctx: Ctx) -> None:
        order = event.order
        ctx.reply(f"Danke für deine Bestellung über {order.total:.2f} {order.currency}!")

    @ordered.on(F.kind("message"), to="awaiting_order")
    async def again(self, event: Any, ctx: Ctx) -> None:
        ctx.reply("Gerne wieder!")

    @Flow.anywhere(F.text("STOP", ignore_case=True), to="opted_out")
    async def stop(self, event: Any, ctx: Ctx) -> None:
        ctx.reply("Du bekommst keine Nachrichten mehr von uns.")


class EchoFlow(Flow):
    """One state that answers every message with its text: the smallest durable bot."""

    name = "echo"
    chatting = State(initial=True)

    @chatting.on(F.kind("message"), to=None)
    async def echo(self, event: Any, ctx: FlowContext[Any]) -> None:
        ctx.reply(f"echo: {event.text}")


class CountData(BaseModel):
    seen: list[int] = []


class CountFlow(Flow[CountData]):
    """Remembers the number in every message (``"<customer>:<n>"``), in the order handled."""

    name = "count"
    counting = State(initial=True)

    handled = 0  # in this process (class-level on purpose: the engine makes one instance)

    @counting.on(F.kind("message"), to=None)
    def count(self, event: Any, ctx: FlowContext[CountData]) -> None:
        ctx.data.seen.append(int(event.text.split(":")[1]))
        CountFlow.handled += 1
