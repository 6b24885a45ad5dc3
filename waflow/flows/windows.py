"""Meta's messaging windows and consent rules, decided before every send.

- **WhatsApp customer service window**: free-form messages only within 24 hours of the customer's
  last message to that business number; outside it only approved templates (Meta: 131047).
- **Free entry point**: a customer who came from a click-to-WhatsApp ad and is answered within 24
  hours opens a 72-hour window in which every message is free. It does not lift the 24-hour rule
  for free-form messages; it is recorded for pricing and reporting.
- **Opt-in**: a business-initiated WhatsApp message (one sent while no window is open) needs a
  recorded opt-in; an opt-out (STOP) is honoured for marketing messages.
- **Messenger**: standard messages within 24 hours of the customer's last message; HUMAN_AGENT
  replies, written by a person, up to 7 days (Meta: code 10, subcode 2018278).

These functions are pure: they read a :class:`~waflow.flows.identity.Customer` and a time and
either return or raise the error Meta would have answered — so no request Meta would refuse is made.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from waflow.errors import ConsentRequiredError, MessageValidationError, OutsideServiceWindowError
from waflow.flows.identity import Customer

__all__ = [
    "FREE_ENTRY_POINT",
    "HUMAN_AGENT_WINDOW",
    "MESSENGER_WINDOW",
    "SERVICE_WINDOW",
    "check_messenger_send",
    "check_whatsapp_send",
    "close_window",
    "free_entry_until",
    "is_window_open",
    "record_inbound",
    "record_reply",
    "window_closes_at",
    "window_key",
]

SERVICE_WINDOW = timedelta(hours=24)
FREE_ENTRY_POINT = timedelta(hours=72)
MESSENGER_WINDOW = timedelta(hours=24)
HUMAN_AGENT_WINDOW = timedelta(days=7)
_AD_ANSWER_WITHIN = timedelta(hours=24)

Channel = Literal["whatsapp", "messenger"]


def window_key(channel: Channel, business_id: str) -> str:
    """Windows are per customer *and* business number or Page."""
    return f"{channel}:{business_id}"


def record_inbound(customer: Customer, channel: Channel, business_id: str, at: datetime) -> None:
    """The customer wrote: a (new) service window starts at ``at``."""
    key = window_key(channel, business_id)
    current = customer.last_inbound.get(key)
    if current is None or at > current:
        customer.last_inbound[key] = at


def close_window(customer: Customer, channel: Channel, business_id: str, at: datetime) -> None:
    """Meta said the window is closed (a failed status with 131047): believe Meta."""
    customer.window_closed_at[window_key(channel, business_id)] = at


def window_closes_at(customer: Customer, channel: Channel, business_id: str) -> datetime | None:
    """When the current service window closes, or ``None`` if none is open as far as we know."""
    key = window_key(channel, business_id)
    last = customer.last_inbound.get(key)
    if last is None:
        return None
    closed = customer.window_closed_at.get(key)
    if closed is not None and closed >= last:
        return None
    return last + (SERVICE_WINDOW if channel == "whatsapp" else MESSENGER_WINDOW)


def is_window_open(customer: Customer, channel: Channel, business_id: str, now: datetime) -> bool:
    """Whether a free-form message may go now."""
    closes = window_closes_at(customer, channel, business_id)
    return closes is not None and now < closes


def free_entry_until(customer: Customer, business_id: str) -> datetime | None:
    """The end of the 72-hour free entry point on this number, if one was opened."""
    return customer.free_entry_until.get(window_key("whatsapp", business_id))


def record_reply(customer: Customer, channel: Channel, business_id: str, now: datetime) -> None:
    """The business answers: a customer answered within 24 hours of an ad click gets 72 free hours.

    Counted from the ad-referred message itself (not from whatever the customer wrote last), once
    per ad click: a later click, answered in time after the last entry point ended, opens another.
    """
    if channel != "whatsapp":
        return
    clicked = _last_ad_click(customer, business_id)
    if clicked is None or now - clicked > _AD_ANSWER_WITHIN:
        return
    key = window_key(channel, business_id)
    current = customer.free_entry_until.get(key)
    if current is not None and (now < current or clicked <= current - FREE_ENTRY_POINT):
        return  # one is running, or this click has had its entry point already
    customer.free_entry_until[key] = now + FREE_ENTRY_POINT


def _last_ad_click(customer: Customer, business_id: str) -> datetime | None:
    """When the customer last came to this number from an ad (the referred message's time)."""
    latest = None
    for referral in customer.referrals:
        if referral.get("channel") != "whatsapp" or referral.get("business_id") != business_id:
            continue
        try:
            at = datetime.fromisoformat(str(referral.get("at")))
        except ValueError:
            continue  # written by hand without a time: not counted
        if at.tzinfo is not None and (latest is None or at > latest):
            latest = at
    return latest


def check_whatsapp_send(
    customer: Customer,
    business_id: str,
    now: datetime,
    *,
    is_template: bool,
    marketing: bool = False,
) -> None:
    """Raise unless this WhatsApp message may go now.

    Free-form outside the window: :class:`OutsideServiceWindowError` (send a template instead).
    A template while no window is open is business-initiated and needs an opt-in:
    :class:`ConsentRequiredError` without one. A marketing template to a customer who opted out:
    :class:`ConsentRequiredError`.
    """
    open_now = is_window_open(customer, "whatsapp", business_id, now)
    if marketing and customer.opted_out("whatsapp"):
        raise ConsentRequiredError(
            f"customer {customer.id} opted out of WhatsApp messages: no marketing messages"
        )
    if not is_template:
        if open_now:
            return
        closes = window_closes_at(customer, "whatsapp", business_id)
        when = (
            "never wrote on WhatsApp"
            if closes is None
            else f"window closed at {closes:%Y-%m-%d %H:%M} UTC"
        )
        raise OutsideServiceWindowError(
            f"free-form WhatsApp message outside the 24-hour service window ({when}); "
            "send an approved template instead",
        )
    if open_now:
        return
    if not customer.opted_in("whatsapp"):
        raise ConsentRequiredError(
            f"customer {customer.id} has no WhatsApp opt-in: a business-initiated message needs "
            "one (ask with a prompt that names the business and WhatsApp, and record it)"
        )


def check_messenger_send(
    customer: Customer,
    page_id: str,
    now: datetime,
    *,
    tag: str | None,
    human: bool,
) -> None:
    """Raise :class:`OutsideServiceWindowError` unless this Messenger message may go now."""
    key = window_key("messenger", page_id)
    last = customer.last_inbound.get(key)
    if last is not None and now < last + MESSENGER_WINDOW:
        if tag == "HUMAN_AGENT" and not human:
            # Never for a bot's message, even inside the 24 hours: refused here, when queued.
            raise MessageValidationError(
                "the HUMAN_AGENT tag is only for messages a person wrote: send a bot's message "
                "without it, or mark a person's reply with human=True",
                field="tag",
            )
        return
    if tag == "HUMAN_AGENT":
        if human and last is not None and now < last + HUMAN_AGENT_WINDOW:
            return
        raise OutsideServiceWindowError(
            "HUMAN_AGENT replies must be written by a person within 7 days of the customer's "
            "last message",
            code=10,
            subcode=2018278,
        )
    if tag is not None:
        return  # other message tags are Meta's to judge
    raise OutsideServiceWindowError(
        "Messenger message outside the 24-hour window; a person may answer with the "
        "HUMAN_AGENT tag within 7 days",
        code=10,
        subcode=2018278,
    )
