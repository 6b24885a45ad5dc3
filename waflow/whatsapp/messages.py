"""Outbound WhatsApp messages: every body of ``POST /{phone-number-id}/messages``.

Each kind is a pydantic model; ``to_body()`` gives the exact JSON Meta expects and
:func:`from_body` reads any such body back into its model, so every body round-trips::

    >>> message = TextMessage(to="4915112345678", text=TextBody(body="Hallo!"))
    >>> from_body(message.to_body()) == message
    True

Meta's limits are checked when a model is built and raise
:class:`~waflow.errors.MessageValidationError` naming the limit, before any request is made.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from waflow._models import OutboundModel, check_count, check_length, violation
from waflow.errors import MessageValidationError
from waflow.whatsapp.interactive import (
    Body,
    ButtonInteractive,
    ButtonsAction,
    CatalogAction,
    CatalogInteractive,
    CatalogParameters,
    CtaUrlAction,
    CtaUrlInteractive,
    CtaUrlParameters,
    FlowAction,
    FlowActionPayload,
    FlowInteractive,
    FlowParameters,
    Footer,
    Header,
    Interactive,
    ListAction,
    ListInteractive,
    ListRow,
    ListSection,
    LocationRequestAction,
    LocationRequestInteractive,
    ProductAction,
    ProductInteractive,
    ProductItem,
    ProductListAction,
    ProductListInteractive,
    ProductSection,
    ReplyButton,
    ReplyButtonReply,
)
from waflow.whatsapp.media_refs import MediaRef, media_ref
from waflow.whatsapp.template_components import Language, Template, TemplateComponent

__all__ = [
    "TEXT_BODY_MAX",
    "Address",
    "AudioMessage",
    "Body",
    "ButtonInteractive",
    "ButtonsAction",
    "CatalogAction",
    "CatalogInteractive",
    "CatalogParameters",
    "Contact",
    "ContactEmail",
    "ContactName",
    "ContactOrg",
    "ContactPhone",
    "ContactUrl",
    "ContactsMessage",
    "CtaUrlAction",
    "CtaUrlInteractive",
    "CtaUrlParameters",
    "DocumentMessage",
    "FlowAction",
    "FlowActionPayload",
    "FlowInteractive",
    "FlowParameters",
    "Footer",
    "Header",
    "ImageMessage",
    "InteractiveMessage",
    "Language",
    "ListAction",
    "ListInteractive",
    "ListRow",
    "ListSection",
    "Location",
    "LocationMessage",
    "LocationRequestAction",
    "LocationRequestInteractive",
    "MediaRef",
    "Message",
    "OutboundMessage",
    "ProductAction",
    "ProductInteractive",
    "ProductItem",
    "ProductListAction",
    "ProductListInteractive",
    "ProductSection",
    "Reaction",
    "ReactionMessage",
    "ReadReceipt",
    "ReplyButton",
    "ReplyButtonReply",
    "ReplyContext",
    "StickerMessage",
    "Template",
    "TemplateComponent",
    "TemplateMessage",
    "TextBody",
    "TextMessage",
    "TypingIndicator",
    "VideoMessage",
    "from_body",
    "media_ref",
]

#: Meta's limit on a text message.
TEXT_BODY_MAX = 4096
#: Meta's limit on ``biz_opaque_callback_data``.
CALLBACK_DATA_MAX = 512
# Envelope keys Meta lets a caller leave out; from_body remembers which were absent.
_OPTIONAL_ENVELOPE = ("messaging_product", "recipient_type", "type")


class OutboundMessage(OutboundModel):
    """Anything POSTed to ``/{phone-number-id}/messages``: a :class:`Message` or a read receipt."""

    messaging_product: Literal["whatsapp"] = "whatsapp"
    #: Envelope keys (``messaging_product``, ``recipient_type``, ``type``) that ``to_body()``
    #: leaves out; :func:`from_body` sets it for bodies written without them. A plain excluded
    #: field rather than a private attribute: private attributes make every message slower to build.
    omit: frozenset[str] = Field(default=frozenset(), exclude=True, repr=False)

    def to_body(self) -> dict[str, Any]:
        """The JSON body Meta expects (envelope keys included unless listed in ``omit``)."""
        body = self.dump()
        for key in self.omit:
            body.pop(key, None)
        return body

    def to_json(self) -> bytes:
        """:meth:`to_body` encoded as compact UTF-8 JSON: the bytes a send POSTs."""
        return self.dump_json(exclude=set(self.omit) if self.omit else None)

    @property
    def recipient(self) -> str | None:
        """Who receives this message (``None`` for a read receipt)."""
        return None


class ReplyContext(OutboundModel):
    """Makes a message a reply to an earlier one (quoted in the chat)."""

    message_id: str


class Message(OutboundMessage):
    """A message to a customer (or a group). Subclasses fix ``type`` and add the payload."""

    recipient_type: Literal["individual", "group"] = "individual"
    to: str
    type: str
    context: ReplyContext | None = None
    biz_opaque_callback_data: str | None = None

    @field_validator("to")
    @classmethod
    def _recipient(cls, value: str) -> str:
        if not value.strip():
            raise violation("`to` must not be empty", field="to")
        return value

    @field_validator("biz_opaque_callback_data")
    @classmethod
    def _callback(cls, value: str | None) -> str | None:
        check_length(value, CALLBACK_DATA_MAX, "biz_opaque_callback_data")
        return value

    @property
    def recipient(self) -> str:
        return self.to


class TextBody(OutboundModel):
    """The text (<= 4096 characters) and whether to preview its first URL."""

    body: str
    preview_url: bool | None = None

    @field_validator("body")
    @classmethod
    def _length(cls, value: str) -> str:
        check_length(value, TEXT_BODY_MAX, "text body", minimum=1)
        return value


class TextMessage(Message):
    """A text message."""

    type: Literal["text"] = "text"
    text: TextBody


def _no_extras(media: MediaRef, kind: str, *, caption: bool, filename: bool) -> None:
    if not caption and media.caption is not None:
        raise violation(f"{kind} messages take no caption", field=f"{kind}.caption")
    if not filename and media.filename is not None:
        raise violation(f"{kind} messages take no filename", field=f"{kind}.filename")


class ImageMessage(Message):
    """An image, by media id or link, with an optional caption."""

    type: Literal["image"] = "image"
    image: MediaRef

    @model_validator(mode="after")
    def _extras(self) -> ImageMessage:
        _no_extras(self.image, "image", caption=True, filename=False)
        return self


class VideoMessage(Message):
    """A video, by media id or link, with an optional caption."""

    type: Literal["video"] = "video"
    video: MediaRef

    @model_validator(mode="after")
    def _extras(self) -> VideoMessage:
        _no_extras(self.video, "video", caption=True, filename=False)
        return self


class AudioMessage(Message):
    """An audio file or voice note, by media id or link (no caption)."""

    type: Literal["audio"] = "audio"
    audio: MediaRef

    @model_validator(mode="after")
    def _extras(self) -> AudioMessage:
        _no_extras(self.audio, "audio", caption=False, filename=False)
        return self


class DocumentMessage(Message):
    """A document, by media id or link, with an optional caption and filename."""

    type: Literal["document"] = "document"
    document: MediaRef


class StickerMessage(Message):
    """A sticker (WebP), by media id or link."""

    type: Literal["sticker"] = "sticker"
    sticker: MediaRef

    @model_validator(mode="after")
    def _extras(self) -> StickerMessage:
        _no_extras(self.sticker, "sticker", caption=False, filename=False)
        return self


class Location(OutboundModel):
    """A point on the map, optionally named."""

    latitude: float
    longitude: float
    name: str | None = None
    address: str | None = None

    @model_validator(mode="after")
    def _range(self) -> Location:
        if not (-90 <= self.latitude <= 90 and -180 <= self.longitude <= 180):
            raise violation("latitude must be within ±90 and longitude within ±180")
        return self


class LocationMessage(Message):
    """A location pin."""

    type: Literal["location"] = "location"
    location: Location


class Address(OutboundModel):
    """A postal address of a shared contact."""

    street: str | None = None
    city: str | None = None
    state: str | None = None
    zip: str | None = None
    country: str | None = None
    country_code: str | None = None
    type: str | None = None


class ContactEmail(OutboundModel):
    """An email address of a shared contact."""

    email: str
    type: str | None = None


class ContactName(OutboundModel):
    """The name of a shared contact; ``formatted_name`` is required."""

    formatted_name: str
    first_name: str | None = None
    last_name: str | None = None
    middle_name: str | None = None
    suffix: str | None = None
    prefix: str | None = None


class ContactOrg(OutboundModel):
    """Where a shared contact works."""

    company: str | None = None
    department: str | None = None
    title: str | None = None


class ContactPhone(OutboundModel):
    """A phone number of a shared contact (``wa_id`` adds the WhatsApp buttons)."""

    phone: str
    type: str | None = None
    wa_id: str | None = None


class ContactUrl(OutboundModel):
    """A web address of a shared contact."""

    url: str
    type: str | None = None


class Contact(OutboundModel):
    """A contact card."""

    name: ContactName
    addresses: list[Address] | None = None
    birthday: str | None = None
    emails: list[ContactEmail] | None = None
    org: ContactOrg | None = None
    phones: list[ContactPhone] | None = None
    urls: list[ContactUrl] | None = None


class ContactsMessage(Message):
    """One or more contact cards."""

    type: Literal["contacts"] = "contacts"
    contacts: list[Contact]

    @field_validator("contacts")
    @classmethod
    def _count(cls, contacts: list[Contact]) -> list[Contact]:
        check_count(contacts, len(contacts), "contacts", minimum=1)
        return contacts


class Reaction(OutboundModel):
    """An emoji reaction to a message; ``emoji=""`` removes an earlier reaction."""

    message_id: str
    emoji: str


class ReactionMessage(Message):
    """React to (or, with an empty emoji, un-react to) one of the customer's messages."""

    type: Literal["reaction"] = "reaction"
    reaction: Reaction


class InteractiveMessage(Message):
    """Buttons, lists, products, catalog, CTA URL, flows, payments (see :mod:`.interactive`)."""

    type: Literal["interactive"] = "interactive"
    interactive: Interactive


class TemplateMessage(Message):
    """An approved template, the only kind allowed outside the 24-hour customer service window."""

    type: Literal["template"] = "template"
    template: Template


class TypingIndicator(OutboundModel):
    """Show "typing…" to the customer (up to 25 seconds or until the next message)."""

    type: Literal["text"] = "text"


class ReadReceipt(OutboundMessage):
    """Mark a customer's message as read, optionally showing a typing indicator."""

    status: Literal["read"] = "read"
    message_id: str
    typing_indicator: TypingIndicator | None = None


_MESSAGE_KINDS: dict[str, type[Message]] = {
    "text": TextMessage,
    "image": ImageMessage,
    "video": VideoMessage,
    "audio": AudioMessage,
    "document": DocumentMessage,
    "sticker": StickerMessage,
    "location": LocationMessage,
    "contacts": ContactsMessage,
    "reaction": ReactionMessage,
    "interactive": InteractiveMessage,
    "template": TemplateMessage,
}


def from_body(body: Mapping[str, Any]) -> OutboundMessage:
    """Read a ``POST /{phone-number-id}/messages`` body into its model.

    The kind comes from ``type`` or, when the body leaves ``type`` out (Meta allows that), from the
    payload key present; ``{"status": "read", …}`` is a :class:`ReadReceipt`. ``to_body()`` of the
    result equals ``body``. Raises :class:`MessageValidationError` for anything else.
    """
    if not isinstance(body, Mapping):
        raise MessageValidationError(
            f"a message body must be a JSON object, got {type(body).__name__}"
        )
    model: type[OutboundMessage]
    if body.get("status") == "read" and "to" not in body:
        model = ReadReceipt
    else:
        kind = body.get("type")
        if kind is None:
            present = [name for name in _MESSAGE_KINDS if name in body]
            if len(present) != 1:
                raise MessageValidationError(
                    "cannot tell the message kind: no `type` and "
                    + ("no payload key" if not present else f"several payload keys {present}")
                )
            kind = present[0]
        if not isinstance(kind, str) or kind not in _MESSAGE_KINDS:
            known = ", ".join(_MESSAGE_KINDS)
            raise MessageValidationError(f"unknown message type {kind!r}; known: {known}")
        model = _MESSAGE_KINDS[kind]
    if "omit" in body:
        raise MessageValidationError("`omit` is not part of a message body")
    omitted = frozenset(key for key in _OPTIONAL_ENVELOPE if key not in body)
    return model.model_validate({**body, "omit": omitted} if omitted else body)
