"""Interactive WhatsApp messages: reply buttons, lists, CTA URL, product, product list, catalog,
flows, order details and order status, location requests.

Each kind is its own model, discriminated by ``type``; Meta's limits are checked on construction
(3 reply buttons with titles of at most 20 characters, lists of at most 10 rows, product lists of at
most 30 items in at most 10 sections with a text header, …).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from waflow._models import (
    JsonObject,
    OutboundModel,
    check_count,
    check_length,
    check_unique,
    violation,
)
from waflow.whatsapp.media_refs import MediaRef

__all__ = [
    "Amount",
    "Body",
    "ButtonInteractive",
    "ButtonsAction",
    "CatalogAction",
    "CatalogInteractive",
    "CatalogParameters",
    "CtaUrlAction",
    "CtaUrlInteractive",
    "CtaUrlParameters",
    "FlowAction",
    "FlowActionPayload",
    "FlowInteractive",
    "FlowParameters",
    "Footer",
    "Header",
    "Interactive",
    "ListAction",
    "ListInteractive",
    "ListRow",
    "ListSection",
    "LocationRequestAction",
    "LocationRequestInteractive",
    "OrderDetails",
    "OrderDetailsAction",
    "OrderDetailsInteractive",
    "OrderDetailsParameters",
    "OrderItem",
    "OrderStatusAction",
    "OrderStatusInteractive",
    "OrderStatusParameters",
    "OrderStatusUpdate",
    "ProductAction",
    "ProductInteractive",
    "ProductItem",
    "ProductListAction",
    "ProductListInteractive",
    "ProductSection",
    "ReplyButton",
    "ReplyButtonReply",
]

BODY_MAX = 1024
FOOTER_MAX = 60
HEADER_TEXT_MAX = 60
REPLY_BUTTONS_MAX = 3
BUTTON_TITLE_MAX = 20
BUTTON_ID_MAX = 256
LIST_BUTTON_MAX = 20
LIST_SECTIONS_MAX = 10
LIST_ROWS_MAX = 10
ROW_TITLE_MAX = 24
ROW_DESCRIPTION_MAX = 72
ROW_ID_MAX = 200
SECTION_TITLE_MAX = 24
PRODUCT_SECTIONS_MAX = 10
PRODUCT_ITEMS_MAX = 30
CTA_DISPLAY_TEXT_MAX = 20
FLOW_CTA_MAX = 30


class Header(OutboundModel):
    """Header of an interactive message: text (<= 60 characters) or an image, video or document."""

    type: Literal["text", "image", "video", "document"]
    text: str | None = None
    sub_text: str | None = None
    image: MediaRef | None = None
    video: MediaRef | None = None
    document: MediaRef | None = None

    @model_validator(mode="after")
    def _matches_type(self) -> Header:
        if self.type == "text":
            if not self.text:
                raise violation("a text header needs `text`", field="header.text")
            check_length(self.text, HEADER_TEXT_MAX, "header text")
        elif getattr(self, self.type) is None:
            raise violation(
                f"a {self.type} header needs `{self.type}`", field=f"header.{self.type}"
            )
        check_length(self.sub_text, HEADER_TEXT_MAX, "header sub_text")
        return self


class Body(OutboundModel):
    """Body text of an interactive message (<= 1024 characters)."""

    text: str

    @field_validator("text")
    @classmethod
    def _length(cls, value: str) -> str:
        check_length(value, BODY_MAX, "body text", minimum=1)
        return value


class Footer(OutboundModel):
    """Footer text of an interactive message (<= 60 characters)."""

    text: str

    @field_validator("text")
    @classmethod
    def _length(cls, value: str) -> str:
        check_length(value, FOOTER_MAX, "footer text", minimum=1)
        return value


class ReplyButtonReply(OutboundModel):
    """The id (<= 256 characters, returned on tap) and title (<= 20 characters) of a reply button."""

    id: str
    title: str

    @model_validator(mode="after")
    def _limits(self) -> ReplyButtonReply:
        check_length(self.id, BUTTON_ID_MAX, "button id", minimum=1)
        check_length(self.title, BUTTON_TITLE_MAX, "button title", minimum=1)
        return self


class ReplyButton(OutboundModel):
    """One reply button."""

    type: Literal["reply"] = "reply"
    reply: ReplyButtonReply


class ButtonsAction(OutboundModel):
    """Up to 3 reply buttons with unique ids and titles."""

    buttons: list[ReplyButton]

    @field_validator("buttons")
    @classmethod
    def _limits(cls, buttons: list[ReplyButton]) -> list[ReplyButton]:
        check_count(buttons, REPLY_BUTTONS_MAX, "reply buttons", minimum=1)
        check_unique([b.reply.id for b in buttons], "reply button ids")
        check_unique([b.reply.title for b in buttons], "reply button titles")
        return buttons


class ListRow(OutboundModel):
    """A row of a list message: id (<= 200), title (<= 24), description (<= 72)."""

    id: str
    title: str
    description: str | None = None

    @model_validator(mode="after")
    def _limits(self) -> ListRow:
        check_length(self.id, ROW_ID_MAX, "list row id", minimum=1)
        check_length(self.title, ROW_TITLE_MAX, "list row title", minimum=1)
        check_length(self.description, ROW_DESCRIPTION_MAX, "list row description")
        return self


class ListSection(OutboundModel):
    """A section of a list message; its title is required when there are several sections."""

    title: str | None = None
    rows: list[ListRow]

    @model_validator(mode="after")
    def _limits(self) -> ListSection:
        check_length(self.title, SECTION_TITLE_MAX, "section title")
        check_count(self.rows, LIST_ROWS_MAX, "list rows", minimum=1)
        return self


def _check_section_titles(sections: list[Any]) -> None:
    if len(sections) > 1 and any(not section.title for section in sections):
        raise violation(
            "every section needs a title when there is more than one section",
            limit="section title required with several sections",
            field="sections",
        )


class ListAction(OutboundModel):
    """The button label (<= 20) and sections (<= 10, with <= 10 rows in all) of a list message."""

    button: str
    sections: list[ListSection]

    @model_validator(mode="after")
    def _limits(self) -> ListAction:
        check_length(self.button, LIST_BUTTON_MAX, "list button label", minimum=1)
        check_count(self.sections, LIST_SECTIONS_MAX, "list sections", minimum=1)
        rows = [row for section in self.sections for row in section.rows]
        check_count(rows, LIST_ROWS_MAX, "list rows (all sections)", minimum=1)
        check_unique([row.id for row in rows], "list row ids")
        _check_section_titles(self.sections)
        return self


class CtaUrlParameters(OutboundModel):
    """The button label (<= 20 characters) and the URL it opens."""

    display_text: str
    url: str

    @model_validator(mode="after")
    def _limits(self) -> CtaUrlParameters:
        check_length(self.display_text, CTA_DISPLAY_TEXT_MAX, "cta_url display_text", minimum=1)
        if not self.url.startswith(("http://", "https://")):
            raise violation("cta_url `url` must be an http(s) URL", field="action.parameters.url")
        return self


class CtaUrlAction(OutboundModel):
    """A button that opens a URL."""

    name: Literal["cta_url"] = "cta_url"
    parameters: CtaUrlParameters


class ProductAction(OutboundModel):
    """One product of a catalog."""

    catalog_id: str
    product_retailer_id: str


class ProductItem(OutboundModel):
    """A product of a product list, by its retailer id (SKU)."""

    product_retailer_id: str


class ProductSection(OutboundModel):
    """A titled section of a product list."""

    title: str | None = None
    product_items: list[ProductItem]

    @model_validator(mode="after")
    def _limits(self) -> ProductSection:
        check_length(self.title, SECTION_TITLE_MAX, "section title")
        check_count(self.product_items, PRODUCT_ITEMS_MAX, "products in a section", minimum=1)
        return self


class ProductListAction(OutboundModel):
    """Up to 30 products of one catalog in up to 10 sections."""

    catalog_id: str
    sections: list[ProductSection]

    @model_validator(mode="after")
    def _limits(self) -> ProductListAction:
        check_count(self.sections, PRODUCT_SECTIONS_MAX, "product sections", minimum=1)
        items = [item for section in self.sections for item in section.product_items]
        check_count(items, PRODUCT_ITEMS_MAX, "products (all sections)", minimum=1)
        _check_section_titles(self.sections)
        return self


class CatalogParameters(OutboundModel):
    """Which product's image to show as the catalog thumbnail (default: the first)."""

    thumbnail_product_retailer_id: str | None = None


class CatalogAction(OutboundModel):
    """Open the business's whole catalog."""

    name: Literal["catalog_message"] = "catalog_message"
    parameters: CatalogParameters | None = None


class FlowActionPayload(OutboundModel):
    """The first screen of a flow and the data it starts with."""

    screen: str | None = None
    data: JsonObject | None = None


class FlowParameters(OutboundModel):
    """Which flow to open (by ``flow_id`` or ``flow_name``) and how."""

    flow_message_version: Literal["3"] = "3"
    flow_id: str | None = None
    flow_name: str | None = None
    flow_cta: str
    flow_token: str | None = None
    mode: Literal["draft", "published"] | None = None
    flow_action: Literal["navigate", "data_exchange"] | None = None
    flow_action_payload: FlowActionPayload | None = None

    @model_validator(mode="after")
    def _limits(self) -> FlowParameters:
        if (self.flow_id is None) == (self.flow_name is None):
            raise violation("a flow needs exactly one of `flow_id` or `flow_name`", field="flow")
        check_length(self.flow_cta, FLOW_CTA_MAX, "flow_cta", minimum=1)
        return self


class FlowAction(OutboundModel):
    """Open a WhatsApp Flow."""

    name: Literal["flow"] = "flow"
    parameters: FlowParameters


class LocationRequestAction(OutboundModel):
    """Ask the customer to share their location."""

    name: Literal["send_location"] = "send_location"


class Amount(OutboundModel):
    """An amount as Meta's payment messages write it: ``value / 10**offset``."""

    value: int
    offset: int
    description: str | None = None
    discount_program_name: str | None = None


class OrderItem(OutboundModel):
    """One line of an order-details message."""

    retailer_id: str | None = None
    product_id: str | None = None
    name: str
    amount: Amount
    quantity: int
    sale_amount: Amount | None = None
    country_of_origin: str | None = None
    importer_name: str | None = None
    importer_address: dict[str, str] | None = None


class OrderDetails(OutboundModel):
    """The order of an order-details message."""

    status: str
    catalog_id: str | None = None
    type: str | None = None
    items: list[OrderItem]
    subtotal: Amount
    tax: Amount
    shipping: Amount | None = None
    discount: Amount | None = None
    expiration: JsonObject | None = None


class OrderDetailsParameters(OutboundModel):
    """Payment request: reference, payment configuration, total and order."""

    reference_id: str
    type: str
    payment_type: str | None = None
    payment_settings: list[JsonObject] | None = None
    payment_configuration: str | None = None
    currency: str
    total_amount: Amount
    order: OrderDetails


class OrderDetailsAction(OutboundModel):
    """Ask the customer to review and pay an order."""

    name: Literal["review_and_pay"] = "review_and_pay"
    parameters: OrderDetailsParameters


class OrderStatusUpdate(OutboundModel):
    """The new status of an order."""

    status: str
    description: str | None = None


class OrderStatusParameters(OutboundModel):
    """Which order changed, and how."""

    reference_id: str
    order: OrderStatusUpdate
    payment: JsonObject | None = None


class OrderStatusAction(OutboundModel):
    """Tell the customer an order's status changed."""

    name: Literal["review_order"] = "review_order"
    parameters: OrderStatusParameters


class _InteractiveBase(OutboundModel):
    header: Header | None = None
    body: Body | None = None
    footer: Footer | None = None

    def _require_body(self, kind: str) -> None:
        if self.body is None:
            raise violation(f"a {kind} message needs a body", field="interactive.body")


class ButtonInteractive(_InteractiveBase):
    """Up to 3 reply buttons under a body text."""

    type: Literal["button"] = "button"
    action: ButtonsAction

    @model_validator(mode="after")
    def _shape(self) -> ButtonInteractive:
        self._require_body("reply-button")
        return self


class ListInteractive(_InteractiveBase):
    """A menu of up to 10 rows behind a button."""

    type: Literal["list"] = "list"
    action: ListAction

    @model_validator(mode="after")
    def _shape(self) -> ListInteractive:
        self._require_body("list")
        if self.header is not None and self.header.type != "text":
            raise violation("a list message takes only a text header", field="interactive.header")
        return self


class CtaUrlInteractive(_InteractiveBase):
    """A body text with a button that opens a URL."""

    type: Literal["cta_url"] = "cta_url"
    action: CtaUrlAction

    @model_validator(mode="after")
    def _shape(self) -> CtaUrlInteractive:
        self._require_body("cta_url")
        return self


class ProductInteractive(_InteractiveBase):
    """One product of the catalog (no header allowed)."""

    type: Literal["product"] = "product"
    action: ProductAction

    @model_validator(mode="after")
    def _shape(self) -> ProductInteractive:
        if self.header is not None:
            raise violation(
                "a single-product message takes no header",
                limit="product message: no header",
                field="interactive.header",
            )
        return self


class ProductListInteractive(_InteractiveBase):
    """Up to 30 products in up to 10 sections, with a required text header."""

    type: Literal["product_list"] = "product_list"
    action: ProductListAction

    @model_validator(mode="after")
    def _shape(self) -> ProductListInteractive:
        if self.header is None or self.header.type != "text":
            raise violation(
                "a product_list message needs a text header",
                limit="product_list: text header required",
                field="interactive.header",
            )
        self._require_body("product_list")
        return self


class CatalogInteractive(_InteractiveBase):
    """A button that opens the whole catalog."""

    type: Literal["catalog_message"] = "catalog_message"
    action: CatalogAction

    @model_validator(mode="after")
    def _shape(self) -> CatalogInteractive:
        self._require_body("catalog_message")
        return self


class FlowInteractive(_InteractiveBase):
    """A button that opens a WhatsApp Flow."""

    type: Literal["flow"] = "flow"
    action: FlowAction

    @model_validator(mode="after")
    def _shape(self) -> FlowInteractive:
        self._require_body("flow")
        return self


class OrderDetailsInteractive(_InteractiveBase):
    """A payment request for an order."""

    type: Literal["order_details"] = "order_details"
    action: OrderDetailsAction


class OrderStatusInteractive(_InteractiveBase):
    """An update of an order's status."""

    type: Literal["order_status"] = "order_status"
    action: OrderStatusAction


class LocationRequestInteractive(_InteractiveBase):
    """A request for the customer's location."""

    type: Literal["location_request_message"] = "location_request_message"
    action: LocationRequestAction

    @model_validator(mode="after")
    def _shape(self) -> LocationRequestInteractive:
        self._require_body("location request")
        return self


#: Every interactive kind, chosen by its ``type``.
Interactive = Annotated[
    ButtonInteractive
    | ListInteractive
    | CtaUrlInteractive
    | ProductInteractive
    | ProductListInteractive
    | CatalogInteractive
    | FlowInteractive
    | OrderDetailsInteractive
    | OrderStatusInteractive
    | LocationRequestInteractive,
    Field(discriminator="type"),
]
