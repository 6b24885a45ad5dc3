"""Click-to-chat ads: where a conversation came from, what it should offer, and links into chats.

- :class:`AdContext`: the ad (or m.me link, or post) behind a conversation, from a WhatsApp referral
  (``ctwa_clid``, ``source_id``, …) or a Messenger referral (``ad_id``, ``ref``,
  ``ads_context_data``). The engine keeps every referral on the customer at first contact; read
  them back with :meth:`AdContext.latest`.
- :class:`AdMapping`: which product (or flow entry point) an ad or m.me ``ref`` leads to.
- :func:`wa_me_link` / :func:`m_me_link`: links that open a chat.
- Conversions go back to Meta with :meth:`waflow.flows.context.FlowContext.report_conversion`
  (through the outbox) or :mod:`waflow.conversions` directly.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from waflow.events import Event
from waflow.flows.identity import Customer
from waflow.links import m_me_link, wa_me_link

__all__ = ["AdContext", "AdMapping", "m_me_link", "wa_me_link"]


class AdContext(BaseModel):
    """Where a conversation came from.

    ``source`` is Meta's word for it: ``ad`` / ``post`` on WhatsApp, ``ADS`` / ``SHORTLINK`` /
    ``CUSTOMER_CHAT_PLUGIN`` … on Messenger. ``ad_id`` is the ad's id (WhatsApp: the
    ``source_id`` of an ad referral). ``ctwa_clid`` identifies a click-to-WhatsApp click for
    conversion reports (absent for ads shown in WhatsApp Status). ``business_id`` is the number or
    Page that received the conversation, ``customer`` the customer's id there.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    channel: Literal["whatsapp", "messenger"]
    business_id: str | None = None
    customer: str | None = None
    at: datetime | None = None
    source: str | None = None
    ad_id: str | None = None
    ctwa_clid: str | None = None
    ref: str | None = None
    ads_context_data: dict[str, Any] | None = None
    headline: str | None = None
    body: str | None = None
    source_url: str | None = None
    media_type: str | None = None
    image_url: str | None = None
    video_url: str | None = None
    welcome_text: str | None = None
    waba_id: str | None = None

    @property
    def is_ad(self) -> bool:
        """True for an ad (not an organic post or a plain m.me link)."""
        return self.source in ("ad", "ADS") or (self.ad_id is not None and self.source is None)

    @classmethod
    def from_event(cls, event: Event) -> AdContext | None:
        """The context of an event that carries a referral (``None`` otherwise)."""
        referral = getattr(event, "referral", None)
        if referral is None:
            return None
        return cls._from_fields(
            {
                **referral.model_dump(mode="json", exclude_none=True),
                "channel": event.channel,
                "business_id": event.business_id,
                "customer": event.sender_id,
                "waba_id": getattr(event, "waba_id", None),
                "at": event.timestamp,
            }
        )

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> AdContext:
        """The context of a referral as the engine records it on the customer."""
        return cls._from_fields(dict(record))

    @classmethod
    def latest(cls, customer: Customer, *, ads_only: bool = True) -> AdContext | None:
        """The customer's most recent referral (by default: the most recent ad)."""
        for record in reversed(customer.referrals):
            context = cls.from_record(record)
            if context.is_ad or not ads_only:
                return context
        return None

    @classmethod
    def _from_fields(cls, fields: dict[str, Any]) -> AdContext:
        channel = fields.get("channel")
        if channel == "whatsapp":
            fields["source"] = fields.get("source_type")
            if fields.get("source_type") == "ad":
                fields["ad_id"] = fields.get("source_id")
            welcome = fields.get("welcome_message")
            if isinstance(welcome, Mapping):
                fields["welcome_text"] = welcome.get("text")
        return cls.model_validate(fields)


class AdMapping:
    """Which product (or flow entry point) an ad or an m.me ``ref`` leads to::

    mapping = AdMapping({"120226305854810726": "city-7"}, refs={"spring": "trek-3"})
    mapping.target(AdContext.from_event(event))   # "city-7" for that ad
    """

    def __init__(
        self, ads: Mapping[str, str] | None = None, *, refs: Mapping[str, str] | None = None
    ) -> None:
        self.ads = dict(ads or {})
        self.refs = dict(refs or {})

    def target(self, context: AdContext | None) -> str | None:
        """What ``context`` leads to: by ad id first, then by ref; ``None`` if unmapped."""
        if context is None:
            return None
        if context.ad_id is not None and context.ad_id in self.ads:
            return self.ads[context.ad_id]
        if context.ref is not None and context.ref in self.refs:
            return self.refs[context.ref]
        return None
