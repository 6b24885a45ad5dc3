"""Outbound Messenger messages: every body of the Send API, ``POST /{page-id}/messages``.

A body is either a :class:`Message` (``recipient``, ``messaging_type``, optional ``tag`` and
``notification_type``, and the ``message`` itself: text or an attachment, with optional quick
replies and metadata) or a :class:`SenderAction` (``recipient`` and ``sender_action``, nothing
else). ``to_body()`` gives the exact JSON Meta expects and :func:`from_body` reads any such body
back, so every body round-trips::

    >>> message = Message(
    ...     recipient=Recipient(id="6783423498392"),
    ...     messaging_type="RESPONSE",
    ...     message=MessageContent(text="Hallo!"),
    ... )
    >>> from_body(message.to_body()) == message
    True

Meta's limits are checked when a model is built and raise
:class:`~waflow.errors.MessageValidationError` naming the limit, before any request is made.

**HUMAN_AGENT.** Meta allows the ``HUMAN_AGENT`` tag (a reply up to 7 days after the customer's last
message) only for messages a person wrote, never for automated ones. A :class:`Message` therefore
carries ``human_agent``, a flag that is never serialized: building a message with
``tag="HUMAN_AGENT"`` and without ``human_agent=True`` raises. :func:`from_body` reads bodies that
already went through that decision (the outbox, the fake's request log, Meta's own examples), so a
``HUMAN_AGENT`` body read back is taken as human-written unless the caller says otherwise with
``from_body(body, human_agent=False)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Final, Literal

from pydantic import Field, field_validator, model_validator
from typing_extensions import Self

from waflow._models import OutboundModel, check_count, check_length, violation
from waflow.errors import MessageValidationError

__all__ = [
    "BUTTONS_MAX",
    "BUTTON_TEMPLATE_TEXT_MAX",
    "BUTTON_TITLE_MAX",
    "ELEMENT_SUBTITLE_MAX",
    "ELEMENT_TITLE_MAX",
    "GENERIC_ELEMENTS_MAX",
    "HUMAN_AGENT",
    "METADATA_MAX",
    "POSTBACK_PAYLOAD_MAX",
    "QUICK_REPLIES_MAX",
    "QUICK_REPLY_PAYLOAD_MAX",
    "QUICK_REPLY_TITLE_MAX",
    "TEXT_MAX",
    "Attachment",
    "Button",
    "ButtonTemplate",
    "DefaultAction",
    "GenericElement",
    "GenericTemplate",
    "MediaAttachment",
    "MediaPayload",
    "MediaType",
    "Message",
    "MessageContent",
    "MessageKind",
    "MessageTag",
    "MessagingType",
    "NotificationType",
    "OutboundMessage",
    "PostbackButton",
    "ProfileQuickReply",
    "QuickReply",
    "Recipient",
    "SenderAction",
    "SenderActionType",
    "TemplateAttachment",
    "TemplatePayload",
    "TextQuickReply",
    "UrlButton",
    "from_body",
]

#: Meta's limit on ``message.text``.
TEXT_MAX = 2000
#: Meta's limit on ``message.metadata`` (echoed back on the ``message_echoes`` webhook).
METADATA_MAX = 1000
#: Quick replies per message.
QUICK_REPLIES_MAX = 13
QUICK_REPLY_TITLE_MAX = 20
QUICK_REPLY_PAYLOAD_MAX = 1000
#: Buttons of a button template, and of each generic template element.
BUTTONS_MAX = 3
BUTTON_TITLE_MAX = 20
POSTBACK_PAYLOAD_MAX = 1000
BUTTON_TEMPLATE_TEXT_MAX = 640
#: Elements of a generic template (a carousel).
GENERIC_ELEMENTS_MAX = 10
ELEMENT_TITLE_MAX = 80
ELEMENT_SUBTITLE_MAX = 80

#: The tag that lets a human agent answer up to 7 days after the customer's last message.
HUMAN_AGENT: Final = "HUMAN_AGENT"

MessagingType = Literal["RESPONSE", "UPDATE", "MESSAGE_TAG"]
"""``RESPONSE`` answers inside the 24-hour window, ``UPDATE`` is proactive inside it, and
``MESSAGE_TAG`` (with a ``tag``) goes outside it."""
MessageTag = Literal[
    "CONFIRMED_EVENT_UPDATE", "POST_PURCHASE_UPDATE", "ACCOUNT_UPDATE", "HUMAN_AGENT"
]
"""The message tags waflow sends. A 2026 copy of Meta's Send API reference announces that the
first three get error 100 from 2026-04-27 on (HUMAN_AGENT stays); waflow still accepts them."""
NotificationType = Literal["REGULAR", "SILENT_PUSH", "NO_PUSH"]
"""Push notification: sound/vibration (Meta's default), on-screen only, or none."""
SenderActionType = Literal["mark_seen", "typing_on", "typing_off"]
"""What the customer sees the Page doing: read receipt, typing indicator on or off."""
MediaType = Literal["image", "audio", "video", "file"]
"""Attachment types that carry a file (by URL or saved ``attachment_id``)."""
MessageKind = Literal["text", "attachment", "template", "quick_replies"]
"""What a :class:`Message` shows; see :attr:`Message.kind`."""

_RECIPIENT_KEYS: Final = ("id", "user_ref", "comment_id", "post_id")


def _check_url(value: str | None, what: str, *, https: bool = False) -> None:
    if value is None:
        return
    schemes = ("https://",) if https else ("http://", "https://")
    if not value.startswith(schemes):
        scheme = "an https" if https else "an http(s)"
        raise violation(f"{what} must be {scheme} URL", field=what)


class Recipient(OutboundModel):
    """Who receives a message: exactly one of ``id`` (the customer's page-scoped id, PSID),
    ``user_ref`` (from the checkbox or chat plugin), ``comment_id`` or ``post_id`` (a private reply
    to a comment or visitor post; one reply each, within 7 days).
    """

    id: str | None = None
    user_ref: str | None = None
    comment_id: str | None = None
    post_id: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        given = [key for key in _RECIPIENT_KEYS if getattr(self, key) is not None]
        if len(given) != 1:
            raise violation(
                "recipient needs exactly one of id, user_ref, comment_id or post_id"
                + (f", got {', '.join(given)}" if given else ""),
                field="recipient",
            )
        if not str(getattr(self, given[0])).strip():
            raise violation(
                f"recipient.{given[0]} must not be empty", field=f"recipient.{given[0]}"
            )
        return self

    @property
    def key(self) -> str:
        """The one id given: the PSID, user_ref, comment id or post id."""
        return next(str(v) for k in _RECIPIENT_KEYS if (v := getattr(self, k)) is not None)


class OutboundMessage(OutboundModel):
    """Anything POSTed to ``/{page-id}/messages``: a :class:`Message` or a :class:`SenderAction`."""

    recipient: Recipient

    def to_body(self) -> dict[str, Any]:
        """The JSON body Meta expects; unset fields are left out, ``human_agent`` is never sent."""
        return self.dump()

    def to_json(self) -> bytes:
        """:meth:`to_body` encoded as compact UTF-8 JSON: the bytes a send POSTs."""
        return self.dump_json()

    @property
    def to(self) -> str:
        """The recipient's id: a PSID, or the user_ref, comment id or post id it was sent to."""
        return self.recipient.key


# -- attachments ---------------------------------------------------------------------------------


class MediaPayload(OutboundModel):
    """A file by ``url`` (Meta fetches it; ``is_reusable=True`` saves it and the send answer carries
    an ``attachment_id``) or by a saved ``attachment_id`` (valid for 90 days), not both.
    """

    url: str | None = None
    is_reusable: bool | None = None
    attachment_id: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if (self.url is None) == (self.attachment_id is None):
            raise violation(
                "an attachment needs exactly one of `url` or `attachment_id`",
                field="attachment.payload",
            )
        _check_url(self.url, "attachment url")
        if self.attachment_id is not None and self.is_reusable is not None:
            raise violation(
                "`is_reusable` applies to attachments sent by `url` only",
                field="attachment.payload.is_reusable",
            )
        return self


class MediaAttachment(OutboundModel):
    """An image, audio, video or file attachment (up to 25 MB; 8 MB for images fetched by URL)."""

    type: MediaType
    payload: MediaPayload


class _WebUrl(OutboundModel):
    """What a URL button and a default action share: the URL and how the webview opens."""

    type: Literal["web_url"] = "web_url"
    url: str
    webview_height_ratio: Literal["compact", "tall", "full"] | None = None
    messenger_extensions: bool | None = None
    fallback_url: str | None = None
    webview_share_button: Literal["hide"] | None = None

    @model_validator(mode="after")
    def _urls(self) -> Self:
        # Meta: the URL must be https when Messenger Extensions are on, and fallback_url exists
        # only for clients without them.
        _check_url(self.url, "button url", https=bool(self.messenger_extensions))
        if self.fallback_url is not None:
            if not self.messenger_extensions:
                raise violation(
                    "fallback_url is only allowed with messenger_extensions=True",
                    field="fallback_url",
                )
            _check_url(self.fallback_url, "fallback_url")
        return self


class UrlButton(_WebUrl):
    """A button (title <= 20 characters) that opens ``url``: a shop page, or a
    ``https://wa.me/<number>?text=…`` link that moves the conversation to WhatsApp.
    """

    title: str

    @field_validator("title")
    @classmethod
    def _title(cls, value: str) -> str:
        check_length(value, BUTTON_TITLE_MAX, "button title", minimum=1)
        return value


class PostbackButton(OutboundModel):
    """A button (title <= 20 characters) whose tap sends ``payload`` (<= 1000 characters) to the
    ``messaging_postbacks`` webhook.
    """

    type: Literal["postback"] = "postback"
    title: str
    payload: str

    @model_validator(mode="after")
    def _limits(self) -> Self:
        check_length(self.title, BUTTON_TITLE_MAX, "button title", minimum=1)
        check_length(self.payload, POSTBACK_PAYLOAD_MAX, "postback payload", minimum=1)
        return self


Button = Annotated[UrlButton | PostbackButton, Field(discriminator="type")]
"""A button of a button or generic template (waflow sends URL and postback buttons)."""


class DefaultAction(_WebUrl):
    """What tapping a generic template element opens: a URL button without a title."""


def _check_buttons(buttons: list[UrlButton | PostbackButton] | None, what: str) -> None:
    if buttons is not None:
        check_count(buttons, BUTTONS_MAX, what, minimum=1)


class ButtonTemplate(OutboundModel):
    """Text (<= 640 characters) with 1–3 buttons under it."""

    template_type: Literal["button"] = "button"
    text: str
    buttons: list[Button]

    @model_validator(mode="after")
    def _limits(self) -> Self:
        check_length(self.text, BUTTON_TEMPLATE_TEXT_MAX, "button template text", minimum=1)
        _check_buttons(self.buttons, "buttons")
        return self


class GenericElement(OutboundModel):
    """One card of a generic template: title (<= 80), and at least one of subtitle (<= 80),
    ``image_url``, ``default_action`` or 1–3 buttons.
    """

    title: str
    subtitle: str | None = None
    image_url: str | None = None
    default_action: DefaultAction | None = None
    buttons: list[Button] | None = None

    @model_validator(mode="after")
    def _limits(self) -> Self:
        check_length(self.title, ELEMENT_TITLE_MAX, "element title", minimum=1)
        check_length(self.subtitle, ELEMENT_SUBTITLE_MAX, "element subtitle")
        _check_url(self.image_url, "element image_url")
        _check_buttons(self.buttons, "element buttons")
        extras = (self.subtitle, self.image_url, self.default_action, self.buttons)
        if all(extra is None for extra in extras):
            raise violation(
                "a generic template element needs a subtitle, image_url, default_action or "
                "buttons besides its title",
                limit="element: title plus at least one more property",
                field="element",
            )
        return self


class GenericTemplate(OutboundModel):
    """A card, or a horizontally scrolling carousel of up to 10 cards."""

    template_type: Literal["generic"] = "generic"
    elements: list[GenericElement]
    sharable: bool | None = None

    @field_validator("elements")
    @classmethod
    def _count(cls, elements: list[GenericElement]) -> list[GenericElement]:
        check_count(elements, GENERIC_ELEMENTS_MAX, "generic template elements", minimum=1)
        return elements


TemplatePayload = Annotated[ButtonTemplate | GenericTemplate, Field(discriminator="template_type")]
"""The payload of a template attachment, by ``template_type``."""


class TemplateAttachment(OutboundModel):
    """A structured message: a button template or a generic template."""

    type: Literal["template"] = "template"
    payload: TemplatePayload


Attachment = Annotated[MediaAttachment | TemplateAttachment, Field(discriminator="type")]
"""``message.attachment``: a file or a template."""


# -- quick replies -------------------------------------------------------------------------------


class TextQuickReply(OutboundModel):
    """A quick reply chip: title (<= 20) and payload (<= 1000, a string or number) that comes back
    on the message the tap produces. Either may be empty only when ``image_url`` is set.
    """

    content_type: Literal["text"] = "text"
    title: str
    payload: str | int
    image_url: str | None = None

    @model_validator(mode="after")
    def _limits(self) -> Self:
        check_length(self.title, QUICK_REPLY_TITLE_MAX, "quick reply title")
        check_length(str(self.payload), QUICK_REPLY_PAYLOAD_MAX, "quick reply payload")
        _check_url(self.image_url, "quick reply image_url")
        if self.image_url is None and (self.title == "" or self.payload == ""):
            raise violation(
                "a quick reply without image_url needs a non-empty title and payload",
                field="quick_replies",
            )
        return self


class ProfileQuickReply(OutboundModel):
    """A chip showing the customer's own phone number (``user_phone_number``) or email address
    (``user_email``) from their profile; a tap sends it as the message's ``quick_reply.payload``.
    Not shown when the profile has none. Sharing a number is not a WhatsApp opt-in.
    """

    content_type: Literal["user_phone_number", "user_email"]

    @model_validator(mode="before")
    @classmethod
    def _nothing_to_fill_in(cls, data: Any) -> Any:
        # Messenger shows the customer's own value; say so rather than "extra inputs".
        if isinstance(data, Mapping):
            extra = [key for key in ("title", "payload", "image_url") if key in data]
            if extra:
                raise violation(
                    f"{data.get('content_type')} quick replies take no {', '.join(extra)}: "
                    "Messenger shows the customer's own value",
                    field="quick_replies",
                )
        return data


QuickReply = Annotated[TextQuickReply | ProfileQuickReply, Field(discriminator="content_type")]
"""One of up to 13 quick replies, by ``content_type``."""


# -- the message ---------------------------------------------------------------------------------


class MessageContent(OutboundModel):
    """``message``: exactly one of ``text`` (<= 2000 characters) or ``attachment``, optionally with
    up to 13 quick replies and ``metadata`` (<= 1000 characters, echoed back on ``message_echoes``).
    """

    text: str | None = None
    attachment: Attachment | None = None
    quick_replies: list[QuickReply] | None = None
    metadata: str | None = None

    @model_validator(mode="after")
    def _limits(self) -> Self:
        if (self.text is None) == (self.attachment is None):
            raise violation(
                "a message needs exactly one of `text` or `attachment`", field="message"
            )
        check_length(self.text, TEXT_MAX, "text", minimum=1)
        if self.quick_replies is not None:
            check_count(self.quick_replies, QUICK_REPLIES_MAX, "quick replies", minimum=1)
        check_length(self.metadata, METADATA_MAX, "metadata")
        return self


class Message(OutboundMessage):
    """A message to a customer.

    ``messaging_type`` is required by Meta. ``tag`` is required with ``MESSAGE_TAG`` and allowed
    only with it. ``human_agent=True`` declares that a person wrote this message; it is never sent,
    and it is required for the ``HUMAN_AGENT`` tag. ``persona_id`` shows the message as sent by a
    persona of the Page (Personas API).
    """

    messaging_type: MessagingType
    tag: MessageTag | None = None
    notification_type: NotificationType | None = None
    persona_id: str | None = None
    message: MessageContent
    human_agent: bool = Field(default=False, exclude=True)

    @model_validator(mode="after")
    def _tag_rules(self) -> Self:
        if self.messaging_type == "MESSAGE_TAG" and self.tag is None:
            raise violation(
                "messaging_type MESSAGE_TAG needs a tag (CONFIRMED_EVENT_UPDATE, "
                "POST_PURCHASE_UPDATE, ACCOUNT_UPDATE or HUMAN_AGENT)",
                limit="tag required with MESSAGE_TAG",
                field="tag",
            )
        if self.tag is not None and self.messaging_type != "MESSAGE_TAG":
            raise violation(
                f"tag {self.tag} needs messaging_type MESSAGE_TAG, not {self.messaging_type}",
                limit="tag only with MESSAGE_TAG",
                field="messaging_type",
            )
        if self.tag == HUMAN_AGENT and not self.human_agent:
            raise violation(
                "the HUMAN_AGENT tag is only for messages a person wrote, never for automated "
                "ones; pass human_agent=True when a human agent wrote this message",
                limit="HUMAN_AGENT only for human-written messages",
                field="tag",
            )
        return self

    @property
    def kind(self) -> MessageKind:
        """``quick_replies`` when it carries quick replies, else ``text``, ``template`` (button or
        generic template) or ``attachment`` (image, audio, video, file).
        """
        content = self.message
        if content.quick_replies:
            return "quick_replies"
        if content.text is not None:
            return "text"
        if isinstance(content.attachment, TemplateAttachment):
            return "template"
        return "attachment"


class SenderAction(OutboundMessage):
    """Show the customer that the Page has seen their message or is typing.

    Sent alone (no ``message``, no ``messaging_type``) to a PSID (``recipient.id``).
    """

    sender_action: SenderActionType

    @model_validator(mode="after")
    def _to_a_psid(self) -> Self:
        if self.recipient.id is None:
            raise violation(
                "a sender action goes to a conversation: recipient.id (a PSID) is required",
                field="recipient.id",
            )
        return self


def from_body(body: Mapping[str, Any], *, human_agent: bool | None = None) -> OutboundMessage:
    """Read a Send API body (``POST /{page-id}/messages``) into its model; ``to_body()`` equals it.

    ``{"recipient", "sender_action"}`` is a :class:`SenderAction`; anything with ``message`` is a
    :class:`Message`. A body is a decision already taken, so a ``HUMAN_AGENT`` body is read as
    human-written; pass ``human_agent`` to state it instead (``False`` makes such a body raise).
    Raises :class:`MessageValidationError` for anything else.
    """
    if not isinstance(body, Mapping):
        raise MessageValidationError(
            f"a Send API body must be a JSON object, got {type(body).__name__}"
        )
    if "human_agent" in body:
        raise MessageValidationError(
            "`human_agent` is waflow's flag, not a Send API field; it never appears in a body",
            field="human_agent",
        )
    if "sender_action" in body:
        if "message" in body:
            raise MessageValidationError(
                "a sender action is sent alone, without `message`",
                limit="sender_action without message",
                field="sender_action",
            )
        return SenderAction.model_validate(body)
    if "message" not in body:
        raise MessageValidationError("a Send API body needs `message` or `sender_action`")
    if human_agent is None:
        human_agent = body.get("tag") == HUMAN_AGENT
    return Message.model_validate({**body, "human_agent": human_agent})
