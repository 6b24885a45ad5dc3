"""The ``template`` object of a template message: name, language, and the parameters that fill it.

Parameters can be positional (``{{1}}``) or named (``parameter_name``); button components carry a
``sub_type`` (quick_reply, url, copy_code, flow, catalog, mpm, …) and an ``index`` that Meta's own
examples write both as an integer and as a string; both are accepted and kept as given. Checking the
parameters against an approved template's definition is :mod:`waflow.whatsapp.templates`' job.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from waflow._models import JsonObject, OutboundModel, check_count, check_length, violation
from waflow.whatsapp.media_refs import MediaRef

__all__ = [
    "BUTTON_SUB_TYPES",
    "ActionParameter",
    "BodyComponent",
    "ButtonAction",
    "ButtonComponent",
    "CarouselCard",
    "CarouselComponent",
    "CouponCodeParameter",
    "Currency",
    "CurrencyParameter",
    "DateTime",
    "DateTimeParameter",
    "DocumentParameter",
    "HeaderComponent",
    "ImageParameter",
    "Language",
    "LimitedTimeOffer",
    "LimitedTimeOfferComponent",
    "LimitedTimeOfferParameter",
    "LocationParameter",
    "Parameter",
    "PayloadParameter",
    "ProductParameter",
    "ProductRef",
    "Template",
    "TemplateComponent",
    "TemplateLocation",
    "TextParameter",
    "VideoParameter",
]

#: Button sub-types Meta accepts in a template message (compared case-insensitively).
BUTTON_SUB_TYPES = frozenset(
    {"quick_reply", "url", "copy_code", "flow", "catalog", "mpm", "voice_call", "order_details"}
)
TEMPLATE_NAME_MAX = 512
BUTTON_INDEX_MAX = 9
TEXT_PARAMETER_MAX = 32768


class Language(OutboundModel):
    """The template's language (``de``, ``en_US``); ``policy`` is always ``deterministic``."""

    code: str
    policy: Literal["deterministic"] | None = None

    @field_validator("code")
    @classmethod
    def _code(cls, value: str) -> str:
        check_length(value, 16, "language code", minimum=2)
        return value


class _Named(OutboundModel):
    parameter_name: str | None = None


class TextParameter(_Named):
    """Text for a ``{{n}}`` or ``{{name}}`` placeholder (or a quick-reply button's text)."""

    type: Literal["text"] = "text"
    # Meta's own examples send booleans here for quick replies; keep whatever type was given.
    text: str | bool

    @field_validator("text")
    @classmethod
    def _length(cls, value: str | bool) -> str | bool:
        if isinstance(value, str):
            check_length(value, TEXT_PARAMETER_MAX, "template text parameter")
        return value


class Currency(OutboundModel):
    """An amount: ``amount_1000`` is the amount times 1000; ``fallback_value`` is shown as is."""

    fallback_value: str
    code: str
    amount_1000: int


class CurrencyParameter(_Named):
    """A currency placeholder."""

    type: Literal["currency"] = "currency"
    currency: Currency


class DateTime(OutboundModel):
    """A date/time placeholder; Cloud API always shows ``fallback_value``."""

    fallback_value: str
    calendar: str | None = None
    day_of_week: int | None = None
    year: int | None = None
    month: int | None = None
    day_of_month: int | None = None
    hour: int | None = None
    minute: int | None = None
    timestamp: int | None = None


class DateTimeParameter(_Named):
    """A date/time placeholder."""

    type: Literal["date_time"] = "date_time"
    date_time: DateTime


class ImageParameter(_Named):
    """The image of an image header."""

    type: Literal["image"] = "image"
    image: MediaRef


class VideoParameter(_Named):
    """The video of a video header."""

    type: Literal["video"] = "video"
    video: MediaRef


class DocumentParameter(_Named):
    """The document (PDF) of a document header."""

    type: Literal["document"] = "document"
    document: MediaRef


class TemplateLocation(OutboundModel):
    """The location of a location header."""

    latitude: float
    longitude: float
    name: str | None = None
    address: str | None = None


class LocationParameter(_Named):
    """A location header."""

    type: Literal["location"] = "location"
    location: TemplateLocation


class PayloadParameter(OutboundModel):
    """What a quick-reply button sends back when tapped."""

    type: Literal["payload"] = "payload"
    payload: str


class CouponCodeParameter(OutboundModel):
    """The code a copy-code button copies."""

    type: Literal["coupon_code"] = "coupon_code"
    coupon_code: str

    @field_validator("coupon_code")
    @classmethod
    def _length(cls, value: str) -> str:
        check_length(value, 15, "coupon code", minimum=1)
        return value


class ProductItemRef(OutboundModel):
    """A product of a multi-product button section."""

    product_retailer_id: str


class ButtonSection(OutboundModel):
    """A section of a multi-product (MPM) template button."""

    title: str
    product_items: list[ProductItemRef]


class ButtonAction(OutboundModel):
    """The action of a flow, catalog or multi-product button."""

    flow_token: str | None = None
    flow_action_data: JsonObject | None = None
    thumbnail_product_retailer_id: str | None = None
    sections: list[ButtonSection] | None = None


class ActionParameter(OutboundModel):
    """A flow, catalog or multi-product button's action."""

    type: Literal["action"] = "action"
    action: ButtonAction


class ProductRef(OutboundModel):
    """A product shown in a product-card or single-product template."""

    product_retailer_id: str
    catalog_id: str


class ProductParameter(OutboundModel):
    """A product header."""

    type: Literal["product"] = "product"
    product: ProductRef


class LimitedTimeOffer(OutboundModel):
    """When a limited-time offer ends (Unix milliseconds)."""

    expiration_time_ms: int


class LimitedTimeOfferParameter(OutboundModel):
    """A limited-time offer's expiry."""

    type: Literal["limited_time_offer"] = "limited_time_offer"
    limited_time_offer: LimitedTimeOffer


#: Every parameter kind, chosen by its ``type``.
Parameter = Annotated[
    TextParameter
    | CurrencyParameter
    | DateTimeParameter
    | ImageParameter
    | VideoParameter
    | DocumentParameter
    | LocationParameter
    | PayloadParameter
    | CouponCodeParameter
    | ActionParameter
    | ProductParameter
    | LimitedTimeOfferParameter,
    Field(discriminator="type"),
]


class HeaderComponent(OutboundModel):
    """Fills the header: one text, media, location or product parameter."""

    type: Literal["header"] = "header"
    parameters: list[Parameter]

    @field_validator("parameters")
    @classmethod
    def _one(cls, parameters: list[Any]) -> list[Any]:
        check_count(parameters, 1, "header parameters", minimum=1)
        return parameters


class BodyComponent(OutboundModel):
    """Fills the body's placeholders, in order (or by name)."""

    type: Literal["body"] = "body"
    parameters: list[Parameter] = Field(default_factory=list)


class ButtonComponent(OutboundModel):
    """Fills one button: its ``sub_type``, its position ``index`` (0-9) and its parameters."""

    type: Literal["button"] = "button"
    sub_type: str
    index: int | str
    parameters: list[Parameter] = Field(default_factory=list)

    @field_validator("sub_type")
    @classmethod
    def _sub_type(cls, value: str) -> str:
        if value.lower() not in BUTTON_SUB_TYPES:
            known = ", ".join(sorted(BUTTON_SUB_TYPES))
            raise violation(f"unknown button sub_type {value!r}; use one of {known}")
        return value

    @field_validator("index")
    @classmethod
    def _index(cls, value: int | str) -> int | str:
        number = int(value) if isinstance(value, int) or value.isdigit() else -1
        if not 0 <= number <= BUTTON_INDEX_MAX:
            raise violation(
                f"button index must be 0-{BUTTON_INDEX_MAX}, got {value!r}",
                limit=f"button index 0-{BUTTON_INDEX_MAX}",
                field="index",
            )
        return value

    @property
    def position(self) -> int:
        """The button's index as an integer."""
        return int(self.index)


class LimitedTimeOfferComponent(OutboundModel):
    """Fills a limited-time offer."""

    type: Literal["limited_time_offer"] = "limited_time_offer"
    parameters: list[Parameter]


class CarouselCard(OutboundModel):
    """One card of a carousel template."""

    card_index: int
    components: list[TemplateComponent]


class CarouselComponent(OutboundModel):
    """The cards of a carousel template (up to 10)."""

    type: Literal["carousel"] = "carousel"
    cards: list[CarouselCard]

    @field_validator("cards")
    @classmethod
    def _cards(cls, cards: list[CarouselCard]) -> list[CarouselCard]:
        check_count(cards, 10, "carousel cards", minimum=1)
        return cards


#: Every component kind, chosen by its ``type``.
TemplateComponent = Annotated[
    HeaderComponent
    | BodyComponent
    | ButtonComponent
    | LimitedTimeOfferComponent
    | CarouselComponent,
    Field(discriminator="type"),
]
CarouselCard.model_rebuild()


class Template(OutboundModel):
    """An approved template by ``name`` and ``language``, with the components that fill it."""

    name: str
    language: Language
    components: list[TemplateComponent] | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        check_length(value, TEMPLATE_NAME_MAX, "template name", minimum=1)
        return value
