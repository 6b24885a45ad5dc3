"""The shop's conversation, as a waflow flow.

Messenger: welcome and the catalog as a carousel -> a product -> "continue on WhatsApp?", by the
customer's own number (a ``user_phone_number`` quick reply whose prompt names the shop and says it
will write on WhatsApp: the tap is the recorded opt-in, and the ``order_followup`` template goes
out) or by a wa.me link whose prefilled text carries a handoff code. WhatsApp: the product chosen
on Messenger as an interactive product message -> an order from the catalog -> the confirmation,
and a Purchase reported to Meta when the customer came from an ad. A click-to-WhatsApp ad starts
directly with the product mapped to the ad. Anywhere: STOP opts out, MENSCH / HUMAN asks for a
person.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from pydantic import BaseModel

from shop_bot.config import ShopConfig
from waflow import filters as F
from waflow.ads import AdContext, AdMapping
from waflow.errors import APIError
from waflow.flows import Flow, State
from waflow.flows.context import FlowContext
from waflow.messenger import AsyncMessenger
from waflow.messenger import build as fb
from waflow.render import Texts, order_confirmation
from waflow.whatsapp import AsyncWhatsApp
from waflow.whatsapp.catalog import AsyncCatalog, Product
from waflow.whatsapp.catalog_messages import (
    carousel_retailer_id,
    messenger_carousel,
    product_list_message,
)
from waflow.whatsapp.templates import TemplateRegistry

HUMAN_WORDS = ("MENSCH", "HUMAN", "AGENT", "HUMAIN")
STOP_WORDS = ("STOP", "STOPP", "ARRET", "ARRÊT")
LINK_PAYLOAD = "LINK"
CAROUSEL_MAX = 10


class ShopData(BaseModel):
    """What the flow remembers per customer."""

    product: str | None = None
    first_name: str | None = None
    orders: int = 0


@dataclass
class Shop:
    """Everything the flow needs besides the customer: texts, catalog, clients, templates."""

    config: ShopConfig
    texts: Texts
    catalog: AsyncCatalog
    catalog_id: str
    whatsapp: AsyncWhatsApp
    messenger: AsyncMessenger | None
    templates: TemplateRegistry
    mapping: AdMapping = field(init=False)
    _templates_loaded: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.mapping = AdMapping(self.config.ads)

    @property
    def name(self) -> str:
        """The shop's name, as customers see it."""
        return self.config.shop.name

    def text(self, name: str, **variables: Any) -> str:
        """A text in the shop's language (German, English or French)."""
        return self.texts.render(name, self.config.shop.locale, shop=self.name, **variables)

    def price(self, product: Product) -> str | None:
        """A product's price in the shop's language (Meta's text is in the catalog's)."""
        if product.amount is None or product.currency is None:
            return product.price_text
        return self.text("price", amount=product.amount, currency=product.currency)

    async def product(self, retailer_id: str | None) -> Product | None:
        """A product of the catalog by its retailer id (SKU)."""
        return None if retailer_id is None else await self.catalog.get(retailer_id)

    async def showcase(self) -> list[Product]:
        """The products to show first: those in stock, at most a carousel's worth."""
        products = [p for p in await self.catalog.all() if p.in_stock is not False]
        return products[:CAROUSEL_MAX]

    async def ensure_templates(self) -> None:
        """Load the account's templates once, so template sends are checked before Meta sees them."""
        if not self._templates_loaded:
            await self.templates.aload_from_api(self.whatsapp.templates)
            self._templates_loaded = True


Ctx = FlowContext[ShopData]


def _is_phone(event: Any, ctx: Any) -> bool:
    payload = F.payload_of(event)
    return payload is not None and payload.lstrip().startswith("+")


def shop_of(ctx: Ctx) -> Shop:
    """The shop this conversation belongs to (the engine's ``services``)."""
    shop = ctx.services
    assert isinstance(shop, Shop), "pass services=Shop(...) to the Engine"
    return shop


async def greet_on_messenger(event: Any, ctx: Ctx) -> None:
    shop = shop_of(ctx)
    if ctx.data.first_name is None and shop.messenger is not None:
        try:
            profile = await shop.messenger.user_profile(event.sender_id)
            ctx.data.first_name = profile.first_name
        except APIError:
            pass  # a greeting without a name is fine
    ctx.messenger.send_text(shop.text("welcome", first_name=ctx.data.first_name))
    products = await shop.showcase()
    if products:
        carousel = messenger_carousel(
            ctx.messenger.recipient,
            products,
            button_title=shop.text("view_button"),
            subtitle=shop.price,
        )
        ctx.messenger.send(carousel)


async def phone_prompt(ctx: Ctx) -> str:
    """The question with the ``user_phone_number`` quick reply. It names the shop and says the
    shop will write on WhatsApp, so a tap on the number is the customer's opt-in."""
    shop = shop_of(ctx)
    product = await shop.product(ctx.data.product)
    name = product.name if product is not None and product.name else ctx.data.product
    amount = product.amount if product is not None else None
    currency = product.currency if product is not None else None
    return shop.text("chosen", product=name, amount=amount, currency=currency)


async def offer_whatsapp(ctx: Ctx) -> None:
    shop = shop_of(ctx)
    ctx.messenger.send_quick_replies(
        await phone_prompt(ctx),
        ["user_phone_number", (LINK_PAYLOAD, shop.text("link_option"))],
    )


async def send_product(ctx: Ctx, intro: str) -> None:
    shop = shop_of(ctx)
    product = await shop.product(ctx.data.product)
    name = product.name if product is not None and product.name else ctx.data.product
    ctx.whatsapp.send_product(
        shop.catalog_id, ctx.data.product or "", body=shop.text(intro, product=name)
    )


async def show_whatsapp_list(event: Any, ctx: Ctx) -> None:
    shop = shop_of(ctx)
    products = [p for p in await shop.catalog.all() if p.in_stock is not False][:30]
    if not products:
        ctx.reply(shop.text("order_hint"))
        return
    ctx.whatsapp.send(
        product_list_message(
            ctx.whatsapp.recipient,
            shop.catalog_id,
            shop.text("list_header"),
            shop.text("list_body"),
            products,
        )
    )


async def confirm_order(event: Any, ctx: Ctx) -> None:
    shop = shop_of(ctx)
    order = event.order
    products = {p.retailer_id: p for p in await shop.catalog.all() if p.retailer_id}
    ctx.reply(order_confirmation(shop.texts, order, products, shop.config.shop.locale))
    ctx.data.orders += 1
    if ctx.engine.dataset_id:  # report the sale to the ad that brought the customer, if any
        ctx.report_conversion(
            "Purchase",
            value=order.total,
            currency=order.currency,
            content_ids=[item.product_retailer_id for item in order.items],
        )


class ShopFlow(Flow[ShopData]):
    """Lenas Radladen: from Messenger to WhatsApp to an order (``waflow flow diagram
    shop_bot.flow:ShopFlow --app-dir examples`` draws it)."""

    name = "shop"

    start = State(initial=True)
    browsing = State()
    choosing_channel = State(timeout=timedelta(hours=23))
    waiting_for_whatsapp = State()
    awaiting_order = State()
    ordered = State()
    with_human = State()
    opted_out = State(final=True)

    # -- first contact ----------------------------------------------------------------------------

    @start.on(F.channel("messenger") & F.referral(), to="choosing_channel")
    async def messenger_ad(self, event: Any, ctx: Ctx) -> None:
        ctx.data.product = shop_of(ctx).mapping.target(AdContext.from_event(event))
        if ctx.data.product is None:  # an m.me link or an unmapped ad: show everything
            await greet_on_messenger(event, ctx)
            return
        await offer_whatsapp(ctx)

    @start.on(F.channel("messenger") & F.kind("message", "postback"), to="browsing")
    async def messenger_hello(self, event: Any, ctx: Ctx) -> None:
        await greet_on_messenger(event, ctx)

    @start.on(F.channel("whatsapp") & F.referral(), to="awaiting_order")
    async def whatsapp_ad(self, event: Any, ctx: Ctx) -> None:
        ctx.data.first_name = (event.profile_name or "").split(" ")[0] or None
        ctx.data.product = shop_of(ctx).mapping.target(AdContext.from_event(event))
        if ctx.data.product is not None:
            await send_product(ctx, "ad_intro")
        else:
            await show_whatsapp_list(event, ctx)

    @start.on(F.channel("whatsapp") & F.kind("message"), to="awaiting_order")
    async def whatsapp_hello(self, event: Any, ctx: Ctx) -> None:
        ctx.data.first_name = (event.profile_name or "").split(" ")[0] or None
        await show_whatsapp_list(event, ctx)

    # -- Messenger: choosing ----------------------------------------------------------------------

    @browsing.on(F.payload(prefix="product:"), to="choosing_channel")
    async def choose(self, event: Any, ctx: Ctx) -> None:
        ctx.data.product = carousel_retailer_id(F.payload_of(event))
        await offer_whatsapp(ctx)

    @browsing.on(F.channel("messenger"), to=None)
    async def browse_again(self, event: Any, ctx: Ctx) -> None:
        await greet_on_messenger(event, ctx)

    @choosing_channel.on(F.payload(prefix="product:"), to=None)
    async def choose_other(self, event: Any, ctx: Ctx) -> None:
        ctx.data.product = carousel_retailer_id(F.payload_of(event))
        await offer_whatsapp(ctx)

    @choosing_channel.on(F.kind("message"), to="waiting_for_whatsapp", guard=_is_phone)
    async def phone_given(self, event: Any, ctx: Ctx) -> None:
        shop = shop_of(ctx)
        ctx.link_phone(F.payload_of(event) or "")
        # The prompt the customer answered named the shop and WhatsApp: that is the opt-in.
        ctx.record_opt_in(await phone_prompt(ctx), source="messenger:user_phone_number")
        product = await shop.product(ctx.data.product)
        name = product.name if product is not None and product.name else ctx.data.product
        template = shop.config.whatsapp.followup_template
        await shop.ensure_templates()
        ctx.whatsapp.send_template(
            template.name,
            template.language,
            body=[ctx.data.first_name or "", shop.name, name or ""],
        )
        ctx.messenger.send_text(shop.text("thanks_whatsapp"))

    @choosing_channel.on(F.payload(LINK_PAYLOAD), to="waiting_for_whatsapp")
    async def link_requested(self, event: Any, ctx: Ctx) -> None:
        shop = shop_of(ctx)
        link = ctx.handoff_link(shop.text("prefilled"), number=shop.config.shop.whatsapp_number)
        ctx.messenger.send_button_template(
            shop.text("link_prompt"), [fb.url_button(shop.text("link_button"), link)]
        )

    @choosing_channel.on_timeout(to="browsing")
    async def remind(self, ctx: Ctx) -> None:
        shop = shop_of(ctx)
        product = await shop.product(ctx.data.product)
        ctx.messenger.send_text(shop.text("reminder", product=product.name if product else ""))

    # -- WhatsApp ---------------------------------------------------------------------------------

    @waiting_for_whatsapp.on(F.channel("whatsapp") & F.kind("message"), to="awaiting_order")
    async def arrived_on_whatsapp(self, event: Any, ctx: Ctx) -> None:
        await send_product(ctx, "product_intro")

    @waiting_for_whatsapp.on(F.channel("messenger"), to=None)
    async def still_on_messenger(self, event: Any, ctx: Ctx) -> None:
        ctx.reply(shop_of(ctx).text("waiting_for_whatsapp"))

    @awaiting_order.on(F.message_type("order"), to="ordered")
    async def order_received(self, event: Any, ctx: Ctx) -> None:
        await confirm_order(event, ctx)

    @awaiting_order.on(F.kind("message"), to=None)
    async def hint(self, event: Any, ctx: Ctx) -> None:
        ctx.reply(shop_of(ctx).text("order_hint"))

    @ordered.on(F.message_type("order"), to="ordered")
    async def another_order(self, event: Any, ctx: Ctx) -> None:
        await confirm_order(event, ctx)

    @ordered.on(F.kind("message"), to=None)
    async def after_order(self, event: Any, ctx: Ctx) -> None:
        ctx.reply(shop_of(ctx).text("after_order"))

    # -- a person ---------------------------------------------------------------------------------

    @with_human.on(F.text("BOT", ignore_case=True), to="start")
    def back_to_bot(self, event: Any, ctx: Ctx) -> None:
        pass

    @with_human.on(F.kind("message"), to=None)
    def quiet(self, event: Any, ctx: Ctx) -> None:
        pass  # a person answers now; the bot keeps the messages in order and stays silent

    @Flow.anywhere(F.text(*STOP_WORDS, ignore_case=True), to="opted_out", first=True)
    async def stop(self, event: Any, ctx: Ctx) -> None:
        ctx.reply(shop_of(ctx).text("opted_out"))  # the engine has recorded the opt-out

    @Flow.anywhere(F.text(*HUMAN_WORDS, ignore_case=True), to="with_human", first=True)
    async def ask_for_human(self, event: Any, ctx: Ctx) -> None:
        ctx.reply(shop_of(ctx).text("human"))
