"""Builders of outbound Messenger messages, one per kind, from plain arguments.

They are the single definition of the typed send helpers: ``Messenger.send_text(...)`` is
``send(build.text(...))``, and the same holds for ``AsyncMessenger`` and for the conversation
engine.
``to`` is the customer's PSID, or a :class:`Recipient` (``user_ref``, a private reply to a
``comment_id`` / ``post_id``). Every message builder takes the same envelope keywords:

- ``messaging_type``: ``RESPONSE`` (the default, inside the 24-hour window), ``UPDATE`` or
  ``MESSAGE_TAG``; left out, it is ``MESSAGE_TAG`` when a ``tag`` is given;
- ``tag``: a message tag, for messages outside the window;
- ``human_agent``: ``True`` when a person wrote the message; the ``HUMAN_AGENT`` tag requires it;
- ``notification_type``: ``REGULAR``, ``SILENT_PUSH`` or ``NO_PUSH``;
- ``metadata``: a string (<= 1000 characters) echoed back on the ``message_echoes`` webhook.

::

    from waflow.messenger import build

    handoff = build.button_template(
        psid,
        "Lieber auf WhatsApp weiter?",
        [build.url_button("Zu WhatsApp", "https://wa.me/4930123456?text=Code%20K7Q2")],
    )
    handoff.to_body()  # the exact JSON of POST /{page-id}/messages
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from waflow.messenger.messages import (
    Attachment,
    Button,
    ButtonTemplate,
    DefaultAction,
    GenericElement,
    GenericTemplate,
    MediaAttachment,
    MediaPayload,
    MediaType,
    Message,
    MessageContent,
    MessageTag,
    MessagingType,
    NotificationType,
    PostbackButton,
    ProfileQuickReply,
    QuickReply,
    Recipient,
    SenderAction,
    SenderActionType,
    TemplateAttachment,
    TextQuickReply,
    UrlButton,
)

__all__ = [
    "QuickRepliesSpec",
    "QuickReplySpec",
    "To",
    "attachment",
    "button_template",
    "element",
    "generic_template",
    "postback_button",
    "quick_replies",
    "sender_action",
    "text",
    "url_button",
]

#: The recipient: a PSID, or a ready-made :class:`Recipient`.
To = str | Recipient
#: One quick reply: ``(payload, title)``, ``"user_phone_number"``, ``"user_email"`` or a model.
QuickReplySpec = (
    tuple[str, str]
    | Literal["user_phone_number", "user_email"]
    | TextQuickReply
    | ProfileQuickReply
)
#: Quick replies as ``{payload: title}`` or a sequence of :data:`QuickReplySpec`.
QuickRepliesSpec = Mapping[str, str] | Sequence[QuickReplySpec]
WebviewHeight = Literal["compact", "tall", "full"]


def _message(
    to: To,
    content: MessageContent,
    messaging_type: MessagingType | None,
    tag: MessageTag | None,
    human_agent: bool,
    notification_type: NotificationType | None,
) -> Message:
    return Message(
        recipient=to if isinstance(to, Recipient) else Recipient(id=to),
        messaging_type=messaging_type or ("MESSAGE_TAG" if tag is not None else "RESPONSE"),
        tag=tag,
        notification_type=notification_type,
        message=content,
        human_agent=human_agent,
    )


def _content(payload: str | Attachment, metadata: str | None, **extra: Any) -> MessageContent:
    if isinstance(payload, str):
        return MessageContent(text=payload, metadata=metadata, **extra)
    return MessageContent(attachment=payload, metadata=metadata, **extra)


def text(
    to: To,
    text: str,
    *,
    messaging_type: MessagingType | None = None,
    tag: MessageTag | None = None,
    human_agent: bool = False,
    notification_type: NotificationType | None = None,
    metadata: str | None = None,
) -> Message:
    """A text message (<= 2000 characters)."""
    return _message(
        to, _content(text, metadata), messaging_type, tag, human_agent, notification_type
    )


def attachment(
    to: To,
    type: MediaType,
    source: str,
    *,
    is_reusable: bool | None = None,
    messaging_type: MessagingType | None = None,
    tag: MessageTag | None = None,
    human_agent: bool = False,
    notification_type: NotificationType | None = None,
    metadata: str | None = None,
) -> Message:
    """An ``image``, ``audio``, ``video`` or ``file`` by http(s) URL or saved ``attachment_id``.

    ``is_reusable=True`` (URLs only) has Meta save the file; the send answer's ``attachment_id``
    (in ``SendResult.raw``) sends it again without another upload.
    """
    if "://" in source:  # a URL (the model insists on http/https); ids are plain digits
        payload = MediaPayload(url=source, is_reusable=is_reusable)
    else:
        payload = MediaPayload(attachment_id=source, is_reusable=is_reusable)
    return _message(
        to,
        _content(MediaAttachment(type=type, payload=payload), metadata),
        messaging_type,
        tag,
        human_agent,
        notification_type,
    )


def _quick_reply(spec: QuickReplySpec) -> QuickReply:
    if isinstance(spec, TextQuickReply | ProfileQuickReply):
        return spec
    if isinstance(spec, str):
        return ProfileQuickReply(content_type=spec)
    return TextQuickReply(payload=spec[0], title=spec[1])


def quick_replies(
    to: To,
    text: str,
    replies: QuickRepliesSpec,
    *,
    messaging_type: MessagingType | None = None,
    tag: MessageTag | None = None,
    human_agent: bool = False,
    notification_type: NotificationType | None = None,
    metadata: str | None = None,
) -> Message:
    """``text`` with up to 13 quick replies: ``{payload: title}`` (title <= 20 characters), or a
    sequence mixing ``(payload, title)`` pairs, ``"user_phone_number"`` and ``"user_email"`` (chips
    with the customer's own number or address).
    """
    items = (
        [TextQuickReply(payload=p, title=t) for p, t in replies.items()]
        if isinstance(replies, Mapping)
        else [_quick_reply(spec) for spec in replies]
    )
    return _message(
        to,
        _content(text, metadata, quick_replies=items),
        messaging_type,
        tag,
        human_agent,
        notification_type,
    )


def url_button(
    title: str,
    url: str,
    *,
    webview_height_ratio: WebviewHeight | None = None,
    webview_share_button: Literal["hide"] | None = None,
) -> UrlButton:
    """A button (title <= 20 characters) that opens ``url``, for example a wa.me link."""
    return UrlButton(
        title=title,
        url=url,
        webview_height_ratio=webview_height_ratio,
        webview_share_button=webview_share_button,
    )


def postback_button(title: str, payload: str) -> PostbackButton:
    """A button (title <= 20 characters) that sends ``payload`` to the postback webhook."""
    return PostbackButton(title=title, payload=payload)


def button_template(
    to: To,
    text: str,
    buttons: Sequence[Button],
    *,
    messaging_type: MessagingType | None = None,
    tag: MessageTag | None = None,
    human_agent: bool = False,
    notification_type: NotificationType | None = None,
    metadata: str | None = None,
) -> Message:
    """``text`` (<= 640 characters) with 1–3 URL or postback buttons."""
    template = ButtonTemplate(text=text, buttons=list(buttons))
    return _message(
        to,
        _content(TemplateAttachment(payload=template), metadata),
        messaging_type,
        tag,
        human_agent,
        notification_type,
    )


def element(
    title: str,
    *,
    subtitle: str | None = None,
    image_url: str | None = None,
    default_url: str | DefaultAction | None = None,
    buttons: Sequence[Button] = (),
) -> GenericElement:
    """One card of a generic template; ``default_url`` opens when the card itself is tapped."""
    default_action = DefaultAction(url=default_url) if isinstance(default_url, str) else default_url
    return GenericElement(
        title=title,
        subtitle=subtitle,
        image_url=image_url,
        default_action=default_action,
        buttons=list(buttons) or None,
    )


def generic_template(
    to: To,
    elements: Sequence[GenericElement],
    *,
    sharable: bool | None = None,
    messaging_type: MessagingType | None = None,
    tag: MessageTag | None = None,
    human_agent: bool = False,
    notification_type: NotificationType | None = None,
    metadata: str | None = None,
) -> Message:
    """A card, or a carousel of up to 10 (see :func:`element`)."""
    template = GenericTemplate(elements=list(elements), sharable=sharable)
    return _message(
        to,
        _content(TemplateAttachment(payload=template), metadata),
        messaging_type,
        tag,
        human_agent,
        notification_type,
    )


def sender_action(to: str, action: SenderActionType) -> SenderAction:
    """``mark_seen``, ``typing_on`` or ``typing_off`` in the conversation with PSID ``to``."""
    return SenderAction(recipient=Recipient(id=to), sender_action=action)
