"""The base of every inbound event, on both channels, and the event of unknown kinds.

Every event has ``channel`` (``"whatsapp"`` | ``"messenger"``), ``kind``, ``id``, ``sender_id``,
``timestamp`` (aware UTC) and ``raw`` (the item exactly as Meta sent it). Unknown fields are kept
(``model_extra``), so nothing Meta adds is lost. The concrete events live in
:mod:`waflow.whatsapp.events` and :mod:`waflow.messenger.events`; :func:`waflow.webhooks.parse`
makes them.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, ClassVar, Literal

from pydantic import Field, SkipValidation, field_validator

from waflow._models import InboundModel

__all__ = ["Channel", "Event", "Unsupported", "utc_from_unix"]

Channel = Literal["whatsapp", "messenger"]


# Below this a "millisecond" timestamp is read as seconds: 1e11 ms is March 1973, 1e11 s is the year
# 5138, so no real value of either unit falls on the wrong side.
_SECONDS_BELOW = 1e11


def utc_from_unix(value: Any, *, milliseconds: bool = False) -> Any:
    """Meta's Unix timestamps (seconds as strings on WhatsApp, milliseconds on Messenger) as UTC.

    With ``milliseconds=True`` a value too small to be milliseconds is read as seconds: Meta's own
    Messenger reference shows some events (postbacks, opt-ins) with timestamps as strings of
    *seconds*, while real deliveries carry integers of milliseconds. Values that are not numbers
    come back unchanged, for pydantic to parse (ISO strings) or to report.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return value
    try:
        number = float(value)
        if milliseconds and abs(number) >= _SECONDS_BELOW:
            number /= 1000
        return datetime.fromtimestamp(number, tz=timezone.utc)
    except (ValueError, OverflowError, OSError):
        return value  # let pydantic report the unparsable timestamp


class Event(InboundModel):
    """Something that happened on a channel: a message, a status, a postback, a referral, …

    ``sender_id`` is whoever caused the event: the customer (wa_id or business-scoped user id on
    WhatsApp, page-scoped id on Messenger), or the account for account-level events.
    ``business_id`` is the receiving side: the phone number id on WhatsApp, the page id on
    Messenger; replies go out from it. ``dedupe_key`` identifies the event across redeliveries.
    """

    channel: Channel
    kind: str
    id: str
    sender_id: str
    timestamp: datetime
    # Kept as given, not copied and checked item by item: it is what Meta sent (parse hands in a
    # dict it has checked), and copying it was a fifth of the cost of building an event.
    raw: SkipValidation[dict[str, Any]] = Field(default_factory=dict, repr=False)

    # The unit of the channel's Unix timestamps. One validator reads it, so a subclass changes the
    # unit by overriding this flag; a second validator would run *as well* as this one.
    _timestamps_in_milliseconds: ClassVar[bool] = False

    @field_validator("timestamp", mode="before")
    @classmethod
    def _unix_time(cls, value: Any) -> Any:
        return utc_from_unix(value, milliseconds=cls._timestamps_in_milliseconds)

    @property
    def business_id(self) -> str | None:
        """The phone number id or page id that received this event."""
        return None

    @property
    def dedupe_key(self) -> str:
        """A key equal for every redelivery of this event and different for any other event."""
        return f"{self.channel}:{self.kind}:{self.id}"

    @property
    def is_from_customer(self) -> bool:
        """True for events a customer caused by writing, tapping or clicking."""
        return False

    @property
    def customer_id(self) -> str | None:
        """The customer this event is about (the sender, or the recipient of a status or echo)."""
        return self.sender_id if self.is_from_customer else None


class Unsupported(Event):
    """An item of a kind waflow does not model (yet); ``field`` names Meta's webhook field.

    Handlers can still read everything from ``raw``; the webhook is acknowledged, never refused.
    """

    kind: Literal["unsupported"] = "unsupported"
    field: str | None = None
    business_account_id: str | None = None
