"""Inbound WhatsApp events: messages of every type, statuses, errors, template updates.

Each event is one item of a webhook body (one message, one status, …) together with what the
envelope says about it: the receiving ``phone_number_id``, the ``waba_id`` (the entry id), and the
customer's ``profile_name``, ``wa_id``, business-scoped ``user_id`` and ``username`` from
``contacts``. Since 2026 ``wa_id`` and ``from`` may be empty strings for customers who use a
username: ``sender_id`` falls back to the business-scoped user id, and identity code must never key
a customer on ``wa_id`` alone.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import Field, field_validator

from waflow._models import InboundModel
from waflow.events import Event

__all__ = [
    "ButtonReply",
    "Context",
    "ErrorDetail",
    "InboundContact",
    "InboundLocation",
    "InboundMedia",
    "InteractiveReply",
    "ListReply",
    "NfmReply",
    "Order",
    "OrderItem",
    "Pricing",
    "ReactionContent",
    "Referral",
    "ReferredProduct",
    "StatusConversation",
    "SystemContent",
    "TemplateButtonReply",
    "TemplateCategoryUpdate",
    "TemplateQualityUpdate",
    "TemplateStatusUpdate",
    "WhatsAppError",
    "WhatsAppEvent",
    "WhatsAppMessage",
    "WhatsAppStatus",
]


class _Inbound(InboundModel):
    pass


class ErrorDetail(_Inbound):
    """One error Meta reports in a webhook (on a status, a message, or the whole change)."""

    code: int | None = None
    title: str | None = None
    message: str | None = None
    details: str | None = None
    href: str | None = None

    @classmethod
    def from_raw(cls, raw: dict[str, Any]) -> ErrorDetail:
        """Read one error object, lifting ``error_data.details`` up to ``details``."""
        data = dict(raw)
        error_data = data.get("error_data")
        if isinstance(error_data, dict) and "details" not in data:
            data["details"] = error_data.get("details")
        return cls.model_validate(data)


def _errors(value: Any) -> Any:
    if isinstance(value, list):
        return [ErrorDetail.from_raw(e) if isinstance(e, dict) else e for e in value]
    return value


class ReferredProduct(_Inbound):
    """The catalog product a customer asked about ("Message business" on a product)."""

    catalog_id: str
    product_retailer_id: str


class Context(_Inbound):
    """What a message refers to: the business message it replies to, a product, a forward."""

    from_: str | None = Field(default=None, alias="from")
    id: str | None = None
    forwarded: bool = False
    frequently_forwarded: bool = False
    referred_product: ReferredProduct | None = None


class Referral(_Inbound):
    """The click-to-WhatsApp ad (or post) a customer came from, kept whole.

    ``ctwa_clid`` is absent for ads shown in WhatsApp Status; report conversions with it.
    """

    source_url: str | None = None
    source_id: str | None = None
    source_type: str | None = None
    headline: str | None = None
    body: str | None = None
    media_type: str | None = None
    image_url: str | None = None
    video_url: str | None = None
    thumbnail_url: str | None = None
    ctwa_clid: str | None = None
    welcome_message: dict[str, Any] | None = None

    @property
    def welcome_text(self) -> str | None:
        """The welcome message the ad showed, if any."""
        text = (self.welcome_message or {}).get("text")
        return text if isinstance(text, str) else None


class OrderItem(_Inbound):
    """One line of an order: product, quantity (integer), unit price (number), currency."""

    product_retailer_id: str
    quantity: int
    item_price: float
    currency: str


class Order(_Inbound):
    """A cart the customer sent from the catalog."""

    catalog_id: str
    text: str | None = None
    items: list[OrderItem] = Field(default_factory=list, alias="product_items")

    @property
    def total(self) -> float:
        """Sum of quantity x unit price over all items."""
        return sum(item.quantity * item.item_price for item in self.items)

    @property
    def currency(self) -> str | None:
        """The currency of the items (``None`` for an empty order)."""
        return self.items[0].currency if self.items else None


class ButtonReply(_Inbound):
    """A tap on a reply button: the id and title the business gave it."""

    id: str
    title: str


class ListReply(_Inbound):
    """A row chosen from a list message."""

    id: str
    title: str
    description: str | None = None


class NfmReply(_Inbound):
    """A WhatsApp Flow's answer; ``response_json`` is a JSON *string*, ``response`` its value."""

    name: str | None = None
    body: str | None = None
    response_json: str

    @property
    def response(self) -> Any:
        """``response_json`` decoded (``None`` if Meta sent something that is not JSON)."""
        try:
            return json.loads(self.response_json)
        except ValueError:
            return None


class InteractiveReply(_Inbound):
    """The customer's answer to an interactive message."""

    type: str
    button_reply: ButtonReply | None = None
    list_reply: ListReply | None = None
    nfm_reply: NfmReply | None = None


class TemplateButtonReply(_Inbound):
    """A tap on a template's quick-reply button: its payload and text."""

    payload: str | None = None
    text: str | None = None


class ReactionContent(_Inbound):
    """A reaction; ``emoji`` is missing or empty when the customer removed it."""

    message_id: str
    emoji: str | None = None


class InboundMedia(_Inbound):
    """A media file the customer sent: download it with ``wa.media.download(media.id)``."""

    id: str
    mime_type: str | None = None
    sha256: str | None = None
    caption: str | None = None
    filename: str | None = None
    voice: bool | None = None
    animated: bool | None = None


class InboundLocation(_Inbound):
    """A location the customer shared (latitude and longitude are numbers)."""

    latitude: float
    longitude: float
    name: str | None = None
    address: str | None = None
    url: str | None = None


class InboundContact(_Inbound):
    """A contact card the customer shared (all of Meta's fields kept)."""

    name: dict[str, Any] | None = None
    phones: list[dict[str, Any]] = Field(default_factory=list)


class SystemContent(_Inbound):
    """A system notice, e.g. the customer changed their number (``type == "user_changed_number"``)."""

    body: str | None = None
    type: str | None = None
    wa_id: str | None = None
    new_wa_id: str | None = None
    user_id: str | None = None
    new_user_id: str | None = None


class WhatsAppEvent(Event):
    """Base of WhatsApp events: the receiving number and the business account."""

    channel: Literal["whatsapp"] = "whatsapp"
    phone_number_id: str | None = None
    display_phone_number: str | None = None
    waba_id: str | None = None

    @property
    def business_id(self) -> str | None:
        return self.phone_number_id


_MEDIA_TYPES = ("image", "audio", "video", "document", "sticker")


class WhatsAppMessage(WhatsAppEvent):
    """A message from a customer, of any ``type``.

    The payload of the type is in the attribute of the same name (``image``, ``location``,
    ``order`` …); ``text`` is the body of a text message. ``reply_id`` / ``reply_title`` give the
    id and title of a tapped button or list row (or a template button's payload) whatever the kind.
    """

    kind: Literal["message"] = "message"
    type: str
    text: str | None = None
    context: Context | None = None
    referral: Referral | None = None
    order: Order | None = None
    interactive: InteractiveReply | None = None
    button: TemplateButtonReply | None = None
    reaction: ReactionContent | None = None
    image: InboundMedia | None = None
    audio: InboundMedia | None = None
    video: InboundMedia | None = None
    document: InboundMedia | None = None
    sticker: InboundMedia | None = None
    location: InboundLocation | None = None
    contacts: list[InboundContact] | None = None
    system: SystemContent | None = None
    errors: list[ErrorDetail] = Field(default_factory=list)
    from_: str | None = Field(default=None, alias="from")
    profile_name: str | None = None
    wa_id: str | None = None
    user_id: str | None = None
    username: str | None = None

    @field_validator("text", mode="before")
    @classmethod
    def _text_body(cls, value: Any) -> Any:
        return value.get("body") if isinstance(value, dict) else value

    @field_validator("errors", mode="before")
    @classmethod
    def _error_details(cls, value: Any) -> Any:
        return _errors(value)

    @property
    def is_from_customer(self) -> bool:
        return self.type != "system"

    @property
    def media(self) -> InboundMedia | None:
        """The media of an image, audio, video, document or sticker message."""
        for name in _MEDIA_TYPES:
            media = getattr(self, name)
            if media is not None:
                return media  # type: ignore[no-any-return]
        return None

    @property
    def reply_id(self) -> str | None:
        """Id of the tapped reply button or list row, or the payload of a template button."""
        if self.interactive is not None:
            chosen = self.interactive.button_reply or self.interactive.list_reply
            return chosen.id if chosen is not None else None
        if self.button is not None:
            return self.button.payload
        return None

    @property
    def reply_title(self) -> str | None:
        """Title of the tapped reply button or list row, or the text of a template button."""
        if self.interactive is not None:
            chosen = self.interactive.button_reply or self.interactive.list_reply
            return chosen.title if chosen is not None else None
        if self.button is not None:
            return self.button.text
        return None

    @property
    def replied_to(self) -> str | None:
        """The id of the business message this one answers (a reply or a button tap)."""
        return self.context.id if self.context is not None else None


class Pricing(_Inbound):
    """How a message is billed: ``pricing_model`` (PMP), ``type`` and ``category``."""

    billable: bool | None = None
    pricing_model: str | None = None
    type: str | None = None
    category: str | None = None


class StatusConversation(_Inbound):
    """The conversation a status belongs to (only inside a free entry point window since v24)."""

    id: str | None = None
    origin: dict[str, Any] | None = None
    expiration_timestamp: str | None = None


class WhatsAppStatus(WhatsAppEvent):
    """The fate of a message the business sent: sent, delivered, read, played or failed.

    ``message_id`` is the ``wamid`` of the sent message; ``biz_opaque_callback_data`` comes back
    exactly as it was sent. Statuses may arrive out of order, and ``delivered`` may never arrive.
    """

    kind: Literal["status"] = "status"
    status: str
    recipient_id: str | None = None
    recipient_user_id: str | None = None
    errors: list[ErrorDetail] = Field(default_factory=list)
    pricing: Pricing | None = None
    conversation: StatusConversation | None = None
    biz_opaque_callback_data: str | None = None

    @field_validator("errors", mode="before")
    @classmethod
    def _error_details(cls, value: Any) -> Any:
        return _errors(value)

    @property
    def message_id(self) -> str:
        """The ``wamid`` of the message this status is about."""
        return self.id

    @property
    def customer_id(self) -> str | None:
        return self.recipient_id or self.recipient_user_id or None

    @property
    def dedupe_key(self) -> str:
        # One message has several statuses: each status of each message is one event.
        return f"whatsapp:status:{self.id}:{self.status}"


class WhatsAppError(WhatsAppEvent):
    """An error about the account or the webhook itself (``value.errors``), not about a message."""

    kind: Literal["error"] = "error"
    error: ErrorDetail

    @property
    def dedupe_key(self) -> str:
        return f"whatsapp:error:{self.id}:{self.error.code}:{self.timestamp.timestamp():.0f}"


class TemplateStatusUpdate(WhatsAppEvent):
    """A template was approved, rejected (``reason``), paused, disabled, …"""

    kind: Literal["template_status"] = "template_status"
    event: str
    message_template_id: str | None = None
    message_template_name: str | None = None
    message_template_language: str | None = None
    reason: str | None = None

    @property
    def dedupe_key(self) -> str:
        return f"whatsapp:template_status:{self.id}:{self.event}:{self.timestamp.timestamp():.0f}"


class TemplateQualityUpdate(WhatsAppEvent):
    """A template's quality score changed (``previous_quality_score`` -> ``new_quality_score``)."""

    kind: Literal["template_quality"] = "template_quality"
    message_template_id: str | None = None
    message_template_name: str | None = None
    message_template_language: str | None = None
    previous_quality_score: str | None = None
    new_quality_score: str | None = None

    @property
    def dedupe_key(self) -> str:
        stamp = f"{self.timestamp.timestamp():.0f}"
        return f"whatsapp:template_quality:{self.id}:{self.new_quality_score}:{stamp}"


class TemplateCategoryUpdate(WhatsAppEvent):
    """Meta changed (or will change) a template's category."""

    kind: Literal["template_category"] = "template_category"
    message_template_id: str | None = None
    message_template_name: str | None = None
    message_template_language: str | None = None
    previous_category: str | None = None
    new_category: str | None = None
    correct_category: str | None = None

    @property
    def dedupe_key(self) -> str:
        stamp = f"{self.timestamp.timestamp():.0f}"
        return f"whatsapp:template_category:{self.id}:{self.new_category}:{stamp}"
