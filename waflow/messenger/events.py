"""Inbound Messenger events: messages, echoes, quick replies, postbacks, referrals, opt-ins, reads,
deliveries and reactions.

Each event is one item of ``entry[].messaging[]``. Messenger timestamps are Unix *milliseconds*;
they become aware UTC datetimes. ``sender_id`` is the customer's page-scoped id (PSID) and
``page_id`` the Page that received the event — except on echoes, where Meta swaps the two and the
Page is the sender.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from waflow._models import InboundModel
from waflow.events import Event

__all__ = [
    "Attachment",
    "MessengerDelivery",
    "MessengerEcho",
    "MessengerEvent",
    "MessengerMessage",
    "MessengerOptin",
    "MessengerPostback",
    "MessengerReaction",
    "MessengerRead",
    "MessengerReferral",
    "QuickReplyPayload",
    "ReferralInfo",
]


class QuickReplyPayload(InboundModel):
    """The payload of a tapped quick reply (for ``user_phone_number`` / ``user_email``: the value)."""

    payload: str


class Attachment(InboundModel):
    """An attachment the customer sent: ``type`` (image, audio, video, file, sticker, fallback…)
    and its ``payload`` (``url`` for media; ``url`` and ``title`` for a shared link).

    A ``fallback`` attachment (a shared link, or a share Messenger cannot show) may come without
    any payload.
    """

    type: str
    payload: dict[str, Any] | None = None

    def _lookup(self, key: str) -> str | None:
        value = (self.payload or {}).get(key)
        if value is None:
            # Webhooks before v6.0, and echoes of templates, put url and title on the attachment
            # itself rather than in its payload.
            value = (self.model_extra or {}).get(key)
        return value if isinstance(value, str) else None

    @property
    def url(self) -> str | None:
        """The attachment's URL, when it has one."""
        return self._lookup("url")

    @property
    def title(self) -> str | None:
        """The title of a shared link (``fallback``), when Meta gives one."""
        return self._lookup("title")


class ReferralInfo(InboundModel):
    """Where a conversation came from: an ad (``source == "ADS"``), an m.me link (``SHORTLINK``)…"""

    source: str | None = None
    type: str | None = None
    ref: str | None = None
    ad_id: str | None = None
    ads_context_data: dict[str, Any] | None = None
    referer_uri: str | None = None


class MessengerEvent(Event):
    """Base of Messenger events: the receiving Page."""

    channel: Literal["messenger"] = "messenger"
    page_id: str | None = None

    _timestamps_in_milliseconds: ClassVar[bool] = True

    @property
    def business_id(self) -> str | None:
        return self.page_id


class _CustomerEvent(MessengerEvent):
    @property
    def is_from_customer(self) -> bool:
        return True


class MessengerMessage(_CustomerEvent):
    """A message from a customer: text, a quick-reply tap, attachments, or a reply.

    ``quick_reply`` carries the tapped payload; a ``user_phone_number`` or ``user_email`` quick
    reply arrives as the number or address in ``quick_reply.payload`` (and in ``text``).
    ``referral`` is set on the first message after a click-to-Messenger ad.
    """

    kind: Literal["message"] = "message"
    text: str | None = None
    quick_reply: QuickReplyPayload | None = None
    attachments: list[Attachment] = Field(default_factory=list)
    reply_to: dict[str, Any] | None = None
    referral: ReferralInfo | None = None

    @property
    def mid(self) -> str:
        """Meta's message id."""
        return self.id

    @property
    def payload(self) -> str | None:
        """The quick-reply payload, if the customer tapped one."""
        return self.quick_reply.payload if self.quick_reply is not None else None

    @property
    def replied_to(self) -> str | None:
        """The ``mid`` of the message this one replies to (a swipe-reply), if any."""
        mid = (self.reply_to or {}).get("mid")
        return mid if isinstance(mid, str) else None


class MessengerEcho(MessengerEvent):
    """A copy of a message the Page sent (by this app, another app, or a human in the inbox).

    ``sender_id`` is the Page; ``recipient_id`` the customer; ``app_id`` which app sent it.
    """

    kind: Literal["echo"] = "echo"
    recipient_id: str
    text: str | None = None
    app_id: str | None = None
    metadata: str | None = None
    attachments: list[Attachment] = Field(default_factory=list)

    @property
    def customer_id(self) -> str | None:
        return self.recipient_id


class MessengerPostback(_CustomerEvent):
    """A tap on a postback button (or Get Started / persistent menu): ``payload`` and ``title``.

    ``referral`` is set when the tap started the conversation from an ad or an m.me link.
    """

    kind: Literal["postback"] = "postback"
    title: str | None = None
    payload: str | None = None
    referral: ReferralInfo | None = None


class MessengerReferral(_CustomerEvent):
    """A customer who already talked to the Page came in again through an ad or an m.me link."""

    kind: Literal["referral"] = "referral"
    referral: ReferralInfo

    @property
    def ref(self) -> str | None:
        """The ``ref`` parameter of the link or ad."""
        return self.referral.ref

    @property
    def ad_id(self) -> str | None:
        """The ad's id, for click-to-Messenger ads."""
        return self.referral.ad_id


class MessengerOptin(_CustomerEvent):
    """The customer opted in (a checkbox plugin, a notification request, …)."""

    kind: Literal["optin"] = "optin"
    type: str | None = None
    payload: str | None = None
    ref: str | None = None
    user_ref: str | None = None
    notification_messages_token: str | None = None


class MessengerRead(MessengerEvent):
    """The customer read every message sent before ``watermark``."""

    kind: Literal["read"] = "read"
    watermark: int

    @property
    def customer_id(self) -> str | None:
        return self.sender_id


class MessengerDelivery(MessengerEvent):
    """Messages (``mids``, when Meta lists them) were delivered up to ``watermark``."""

    kind: Literal["delivery"] = "delivery"
    watermark: int
    mids: list[str] = Field(default_factory=list)

    @property
    def customer_id(self) -> str | None:
        return self.sender_id


class MessengerReaction(_CustomerEvent):
    """The customer reacted to (``action == "react"``) or un-reacted from a message ``mid``."""

    kind: Literal["reaction"] = "reaction"
    reaction: str | None = None
    emoji: str | None = None
    action: str | None = None
    mid: str | None = None
