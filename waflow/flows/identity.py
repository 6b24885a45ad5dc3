"""Customers across channels: linked ids, consent, handoff codes, and what we know of their windows.

One :class:`Customer` is one person, whatever channel they write on: a Messenger page-scoped id
(per Page), a WhatsApp id, a business-scoped WhatsApp user id, a phone number in E.164. Ids are
*linked* when we learn they belong together — a handoff code from a wa.me link arrives on WhatsApp,
a phone number comes from Messenger's ``user_phone_number`` quick reply — and two customer records
that turn out to be one person are *merged*.

Consent is recorded, never assumed: an opt-in keeps the channel, the wording the customer was
shown, the time and the source; an opt-out (STOP) is recorded the same way.
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime
from typing import Any, Literal

import phonenumbers
from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "HANDOFF_ALPHABET",
    "ConsentRecord",
    "Customer",
    "HandoffCode",
    "IdKind",
    "LinkedId",
    "find_handoff_code",
    "find_handoff_codes",
    "new_handoff_code",
    "normalize_phone",
]

IdKind = Literal["psid", "wa_id", "bsuid", "phone"]
Channel = Literal["whatsapp", "messenger"]

#: Crockford's base32 without I, L, O, U: nothing a customer could misread or mistype.
HANDOFF_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# The hyphen is required: without it, ordinary words ("WHATSAPP") would look like codes.
_HANDOFF_PATTERN = re.compile(
    rf"(?<![0-9A-Z])([{HANDOFF_ALPHABET}]{{4}})-([{HANDOFF_ALPHABET}]{{4}})(?![0-9A-Z])"
)
_APPLIED_KEEP = 200


def _recent_of_both(mine: list[str], theirs: list[str]) -> list[str]:
    """The most recent applied-event keys of two merged records, alternately from each end, so
    neither record's latest events are forgotten (their relative order is not known)."""
    picked: list[str] = []
    a, b = len(mine) - 1, len(theirs) - 1
    while (a >= 0 or b >= 0) and len(picked) < _APPLIED_KEEP:
        if a >= 0:
            picked.append(mine[a])
            a -= 1
        if b >= 0 and len(picked) < _APPLIED_KEEP:
            picked.append(theirs[b])
            b -= 1
    return list(dict.fromkeys(reversed(picked)))


def normalize_phone(raw: str, default_region: str | None = None) -> str | None:
    """``raw`` as an E.164 number (``+4915112345678``), or ``None`` if it is not a valid number.

    Uses the maintained ``phonenumbers`` library; numbers without a ``+`` need ``default_region``
    (``"DE"``), except WhatsApp ids, which are E.164 without the plus.
    """
    text = raw.strip()
    if not text:
        return None
    # A number written the national way ("030 1234567", "(201) 517-8128") is read in
    # default_region first. Bare digits are read as international first: that is how WhatsApp
    # ids come (E.164 without the plus), and "4915112345678" is also a valid German national
    # number.
    if text.startswith("+"):
        candidates = [text]
    elif default_region is not None and (not text.isdigit() or text.startswith("0")):
        candidates = [text, f"+{text}"]
    else:
        candidates = [f"+{text}", text]
    for candidate in candidates:
        region = None if candidate.startswith("+") else default_region
        try:
            number = phonenumbers.parse(candidate, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return None


def new_handoff_code() -> str:
    """A short, unguessable code such as ``K7Q2-M9XP`` (40 random bits)."""
    raw = "".join(secrets.choice(HANDOFF_ALPHABET) for _ in range(8))
    return f"{raw[:4]}-{raw[4:]}"


def find_handoff_codes(text: str | None) -> list[str]:
    """Every handoff-code-shaped word in a customer's message (``k7q2-m9xp`` -> ``K7Q2-M9XP``)."""
    if not text:
        return []
    return [f"{m.group(1)}-{m.group(2)}" for m in _HANDOFF_PATTERN.finditer(text.upper())]


def find_handoff_code(text: str | None) -> str | None:
    """The first handoff-code-shaped word in a customer's message, or ``None``."""
    codes = find_handoff_codes(text)
    return codes[0] if codes else None


class LinkedId(BaseModel):
    """One id of a customer on a channel; ``scope`` is the Page for page-scoped ids."""

    model_config = ConfigDict(frozen=True)

    kind: IdKind
    value: str
    scope: str | None = None

    @property
    def key(self) -> str:
        """The id's key in the store's index (``psid:<page>:<id>``, ``wa_id:<id>``, …)."""
        if self.kind == "psid":
            return f"psid:{self.scope}:{self.value}"
        return f"{self.kind}:{self.value}"


class ConsentRecord(BaseModel):
    """An opt-in (``granted``) or opt-out, as it happened."""

    model_config = ConfigDict(frozen=True)

    channel: Channel
    granted: bool
    wording: str
    source: str
    at: datetime


class HandoffCode(BaseModel):
    """A single-use code that links a WhatsApp conversation to a customer from another channel."""

    code: str
    customer_id: str
    created_at: datetime
    expires_at: datetime

    def is_valid(self, now: datetime) -> bool:
        """Not yet expired (used codes are deleted)."""
        return now < self.expires_at


class Customer(BaseModel):
    """A person across channels, with what the engine needs to talk to them under Meta's rules.

    ``last_inbound`` maps ``"<channel>:<business id>"`` to the customer's last message there (the
    start of the service window); ``window_closed_at`` records when Meta said a window was closed
    (131047); ``free_entry_until`` the end of a 72-hour free entry point after an ad. ``state`` and
    ``data`` are the conversation flow's; ``applied`` remembers recently applied events so a
    redelivered one changes nothing.
    """

    id: str
    version: int = Field(default=0, exclude=True)
    ids: list[LinkedId] = Field(default_factory=list)
    name: str | None = None
    locale: str | None = None
    created_at: datetime
    consents: list[ConsentRecord] = Field(default_factory=list)
    last_inbound: dict[str, datetime] = Field(default_factory=dict)
    last_human_reply: dict[str, datetime] = Field(default_factory=dict)
    window_closed_at: dict[str, datetime] = Field(default_factory=dict)
    free_entry_until: dict[str, datetime] = Field(default_factory=dict)
    referrals: list[dict[str, Any]] = Field(default_factory=list)
    flow: str | None = None
    state: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    deadline: datetime | None = None
    applied: list[str] = Field(default_factory=list)

    # -- ids -----------------------------------------------------------------------------------

    def add_id(self, linked: LinkedId) -> bool:
        """Link an id; false if it was already linked."""
        if linked in self.ids:
            return False
        self.ids.append(linked)
        return True

    def first_id(self, kind: IdKind, scope: str | None = None) -> str | None:
        """The first linked id of ``kind`` (and ``scope``), or ``None``."""
        for linked in self.ids:
            if linked.kind == kind and (scope is None or linked.scope == scope):
                return linked.value
        return None

    @property
    def whatsapp_id(self) -> str | None:
        """Where to send on WhatsApp: the wa_id, else the phone's digits, else the scoped user id."""
        wa_id = self.first_id("wa_id")
        if wa_id:
            return wa_id
        phone = self.first_id("phone")
        if phone:
            return phone.lstrip("+")
        return self.first_id("bsuid")

    @property
    def phone(self) -> str | None:
        """The customer's phone number in E.164, if known."""
        return self.first_id("phone")

    def psid(self, page_id: str | None = None) -> str | None:
        """The customer's page-scoped id on ``page_id`` (or on any Page)."""
        return self.first_id("psid", page_id)

    def merge(self, other: Customer) -> None:
        """Take over everything ``other`` knows (ids, consents, windows, referrals)."""
        for linked in other.ids:
            self.add_id(linked)
        self.name = self.name or other.name
        self.locale = self.locale or other.locale
        # By time; on a tie this customer's records count as the later ones: the record the
        # current handler just made (an opt-in given with the linking number) must win.
        self.consents = sorted([*other.consents, *self.consents], key=lambda c: c.at)
        for mine, theirs in (
            (self.last_inbound, other.last_inbound),
            (self.last_human_reply, other.last_human_reply),
            (self.window_closed_at, other.window_closed_at),
            (self.free_entry_until, other.free_entry_until),
        ):
            for key, at in theirs.items():
                if key not in mine or mine[key] < at:
                    mine[key] = at
        # By time (ISO stamps of one time zone sort as text): the latest ad click comes last.
        self.referrals = sorted(
            [*self.referrals, *other.referrals], key=lambda r: str(r.get("at", ""))
        )
        self.applied = _recent_of_both(self.applied, other.applied)

    def take_conversation(self, other: Customer) -> None:
        """Continue ``other``'s conversation (flow, state, data, deadline), if it has one.

        For a merge in which the record that stays is not the one whose conversation goes on:
        the customer who sent a handoff code continues the conversation that issued it.
        """
        if other.state is None:
            return
        self.flow, self.state = other.flow, other.state
        self.data, self.deadline = dict(other.data), other.deadline

    # -- consent -------------------------------------------------------------------------------

    def record_consent(self, record: ConsentRecord) -> None:
        """Add an opt-in or opt-out record."""
        self.consents.append(record)

    def _latest(self, channel: Channel) -> ConsentRecord | None:
        for record in reversed(self.consents):
            if record.channel == channel:
                return record
        return None

    def opted_in(self, channel: Channel) -> bool:
        """True if the latest consent record for ``channel`` is an opt-in."""
        latest = self._latest(channel)
        return latest is not None and latest.granted

    def opted_out(self, channel: Channel) -> bool:
        """True if the latest consent record for ``channel`` is an opt-out."""
        latest = self._latest(channel)
        return latest is not None and not latest.granted

    # -- applied events ------------------------------------------------------------------------

    def was_applied(self, event_key: str) -> bool:
        """Whether the event with this dedupe key already changed this customer."""
        return event_key in self.applied

    def mark_applied(self, event_key: str) -> None:
        """Remember that an event was applied (the last 200 are kept)."""
        self.applied.append(event_key)
        del self.applied[:-_APPLIED_KEEP]

    # -- storage -------------------------------------------------------------------------------

    def to_document(self) -> dict[str, Any]:
        """The customer as the JSON document the store keeps."""
        return self.model_dump(mode="json")

    @classmethod
    def from_document(cls, data: dict[str, Any], version: int) -> Customer:
        """A customer from a stored document at ``version``."""
        customer = cls.model_validate(data)
        customer.version = version
        return customer
