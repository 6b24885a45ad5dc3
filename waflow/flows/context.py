"""What a flow handler works with: the event, the customer, the flow's data, and the senders.

Nothing a handler does reaches Meta directly. ``ctx.reply(...)``, ``ctx.whatsapp.send_*(...)`` and
``ctx.messenger.send_*(...)`` queue *drafts*; the engine checks each against Meta's windows and the
customer's consent and writes them to the outbox in the same transaction as the new state. A
handler that raises changes nothing and sends nothing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from pydantic import BaseModel

from waflow._sending import SendsTo
from waflow.conversions import ConversionBatch, EventName, conversion_event
from waflow.errors import ConfigError
from waflow.events import Event
from waflow.flows.identity import (
    ConsentRecord,
    Customer,
    HandoffCode,
    LinkedId,
    new_handoff_code,
    normalize_phone,
)
from waflow.flows.windows import window_closes_at
from waflow.links import wa_me_link
from waflow.messenger import build as fb
from waflow.whatsapp import build as wa
from waflow.whatsapp.messages import TemplateMessage

if TYPE_CHECKING:
    from waflow.flows.engine import Engine

__all__ = ["Draft", "FlowContext", "MessengerSender", "WhatsAppSender"]

D = TypeVar("D", bound=BaseModel)
Channel = Literal["whatsapp", "messenger"]
DraftChannel = Literal["whatsapp", "messenger", "conversions"]
#: Meta credits an ad with conversions for this long after the click.
ATTRIBUTION_WINDOW = timedelta(days=7)


@dataclass(frozen=True)
class Draft:
    """A message a handler queued, before the engine checks and commits it."""

    channel: DraftChannel
    business_id: str
    message: Any
    human: bool = False
    marketing: bool = False
    fallback: TemplateMessage | None = None


class _ChannelSender:
    def __init__(self, ctx: FlowContext[Any], channel: Channel, business_id: str, to: str) -> None:
        self._ctx = ctx
        self.channel = channel
        self.business_id = business_id
        self._to = to

    @property
    def recipient(self) -> str:
        """Who the helpers send to (the customer's id on this channel)."""
        return self._to

    def send(
        self,
        message: Any,
        *,
        human: bool = False,
        marketing: bool = False,
        fallback: TemplateMessage | None = None,
    ) -> None:
        """Queue any outbound model of this channel (``marketing`` and ``fallback``: WhatsApp).

        ``human=True`` marks a message a person wrote (Messenger's HUMAN_AGENT tag needs it); a
        Messenger message built with ``human_agent=True`` is marked so without it.
        """
        human = human or getattr(message, "human_agent", False) is True
        self._ctx.drafts.append(
            Draft(self.channel, self.business_id, message, human, marketing, fallback)
        )


class WhatsAppSender(_ChannelSender):
    """Queues WhatsApp messages to the customer: ``ctx.whatsapp.send_text("Hallo")``.

    The helpers are those of :class:`~waflow.WhatsApp` without ``to``. Free-form messages need
    an open service window; templates outside it need the customer's opt-in.
    """

    send_text = SendsTo(wa.text)
    send_image = SendsTo(wa.image)
    send_video = SendsTo(wa.video)
    send_audio = SendsTo(wa.audio)
    send_document = SendsTo(wa.document)
    send_sticker = SendsTo(wa.sticker)
    send_location = SendsTo(wa.location)
    send_contacts = SendsTo(wa.contacts)
    send_reaction = SendsTo(wa.reaction)
    send_buttons = SendsTo(wa.buttons)
    send_list = SendsTo(wa.list_menu)
    send_cta_url = SendsTo(wa.cta_url)
    send_product = SendsTo(wa.product)
    send_product_list = SendsTo(wa.product_list)
    send_catalog = SendsTo(wa.catalog)
    send_flow = SendsTo(wa.flow)
    send_location_request = SendsTo(wa.location_request)
    send_order_status = SendsTo(wa.order_status)
    send_template = SendsTo(wa.template)


class MessengerSender(_ChannelSender):
    """Queues Messenger messages to the customer: ``ctx.messenger.send_quick_replies(...)``."""

    send_text = SendsTo(fb.text)
    send_attachment = SendsTo(fb.attachment)
    send_quick_replies = SendsTo(fb.quick_replies)
    send_button_template = SendsTo(fb.button_template)
    send_generic_template = SendsTo(fb.generic_template)


class FlowContext(Generic[D]):
    """Everything a flow handler or hook gets besides the event.

    ``event`` is ``None`` in timeout handlers and hooks run by a timeout. ``data`` is the flow's
    typed data for this customer (changes are saved with the transition). ``now`` comes from the
    engine's clock.
    """

    def __init__(
        self,
        *,
        engine: Engine,
        event: Event | None,
        customer: Customer,
        data: D,
        now: datetime,
        state: str,
    ) -> None:
        self.engine = engine
        self.event = event
        self.customer = customer
        self.data = data
        self.now = now
        self.state = state
        self.match: re.Match[str] | None = None
        self.drafts: list[Draft] = []
        self.new_handoffs: list[HandoffCode] = []
        self.new_ids: list[LinkedId] = []
        self.state_changed = False

    @property
    def services(self) -> Any:
        """What the engine was given as ``services=`` (a shop's catalog, texts, clients …)."""
        return self.engine.services

    @property
    def customer_state(self) -> str:
        """The conversation's current state (what :func:`waflow.filters.state` reads)."""
        return self.state

    # -- sending -------------------------------------------------------------------------------

    def reply(self, message: Any, *, human: bool = False) -> None:
        """Queue a reply on the event's channel: a string (text) or an outbound model."""
        event = self.event
        if event is None or event.business_id is None:
            raise ConfigError("reply() needs an event; use ctx.whatsapp or ctx.messenger here")
        if isinstance(message, str):
            if event.channel == "whatsapp":
                self.whatsapp.send_text(message)
            else:
                if human:
                    self.messenger.send_text(message, tag="HUMAN_AGENT", human_agent=True)
                else:
                    self.messenger.send_text(message)
            return
        sender = self.whatsapp if event.channel == "whatsapp" else self.messenger
        sender.send(message, human=human)

    @property
    def whatsapp(self) -> WhatsAppSender:
        """Queue WhatsApp messages to this customer, from the number they wrote to (or the shop's)."""
        to = self.customer.whatsapp_id
        if not to:
            raise ConfigError(
                f"customer {self.customer.id} has no WhatsApp id yet: link a phone number "
                "(ctx.link_phone) or a handoff code first"
            )
        return WhatsAppSender(self, "whatsapp", self.whatsapp_number, to)

    @property
    def messenger(self) -> MessengerSender:
        """Queue Messenger messages to this customer, from the Page they wrote to."""
        page = self._page_id()
        psid = self.customer.psid(page)
        if not psid:
            raise ConfigError(f"customer {self.customer.id} has no Messenger id for page {page}")
        return MessengerSender(self, "messenger", page, psid)

    @property
    def whatsapp_number(self) -> str:
        """The business number to use on WhatsApp: the one the customer wrote to, else the shop's."""
        event = self.event
        if event is not None and event.channel == "whatsapp" and event.business_id:
            return event.business_id
        inbound = self.customer.last_inbound
        wrote_to = [
            key for key in sorted(inbound, key=inbound.__getitem__) if key.startswith("whatsapp:")
        ]
        if wrote_to:
            return wrote_to[-1].split(":", 1)[1]  # the number the customer wrote to last
        if self.engine.whatsapp_number:
            return self.engine.whatsapp_number
        raise ConfigError("no WhatsApp number to send from: pass whatsapp_number= to the Engine")

    def _page_id(self) -> str:
        event = self.event
        if event is not None and event.channel == "messenger" and event.business_id:
            return event.business_id
        for linked in self.customer.ids:
            if linked.kind == "psid" and linked.scope:
                return linked.scope
        raise ConfigError(f"customer {self.customer.id} never wrote on Messenger")

    # -- conversions ---------------------------------------------------------------------------

    def report_conversion(
        self,
        event_name: EventName = "Purchase",
        *,
        value: float | None = None,
        currency: str | None = None,
        content_ids: Sequence[str] | None = None,
        event_id: str | None = None,
    ) -> bool:
        """Report a conversion of this customer's latest ad click to Meta (through the outbox).

        Returns false when the customer did not come from an ad within Meta's 7-day attribution
        window (nothing to report). ``event_id`` defaults to the name and the triggering event's
        id, so a redelivered webhook reports nothing twice.
        """
        dataset = self.engine.dataset_id
        if not dataset:
            raise ConfigError("conversion reports need a dataset: pass dataset_id= to the Engine")
        referral = self.latest_ad_referral()
        if referral is None:
            return False
        if event_id is None:
            if self.event is None:
                raise ConfigError("pass event_id= when reporting outside an event handler")
            event_id = f"{event_name}:{self.event.id}"
        channel: Channel = "whatsapp" if referral.get("channel") == "whatsapp" else "messenger"
        event = conversion_event(
            event_name,
            channel=channel,
            at=self.now,
            ctwa_clid=referral.get("ctwa_clid"),
            waba_id=referral.get("waba_id"),
            page_id=referral.get("business_id"),
            psid=referral.get("customer"),
            value=value,
            currency=currency,
            content_ids=content_ids,
            event_id=event_id,
        )
        self.drafts.append(Draft("conversions", dataset, ConversionBatch(data=[event])))
        return True

    def latest_ad_referral(self) -> dict[str, Any] | None:
        """The customer's latest ad referral within the attribution window, as recorded."""
        for referral in reversed(self.customer.referrals):
            at = datetime.fromisoformat(str(referral.get("at")))
            if self.now - at > ATTRIBUTION_WINDOW:
                return None
            from_ad = referral.get("ctwa_clid") or referral.get("source") == "ADS"
            if from_ad:
                return dict(referral)
        return None

    # -- windows -------------------------------------------------------------------------------

    def window_closes_at(self, channel: Channel = "whatsapp") -> datetime | None:
        """When this customer's service window on ``channel`` closes (``None``: not open)."""
        business = self.whatsapp_number if channel == "whatsapp" else self._page_id()
        return window_closes_at(self.customer, channel, business)

    # -- identity and consent ------------------------------------------------------------------

    def link_phone(self, raw: str) -> str | None:
        """Link a phone number to this customer (E.164); ``None`` if it is not a valid number."""
        number = normalize_phone(raw, self.engine.default_region)
        if number is None:
            return None
        linked = LinkedId(kind="phone", value=number)
        if self.customer.add_id(linked):
            self.new_ids.append(linked)
        return number

    def record_opt_in(self, wording: str, *, source: str, channel: Channel = "whatsapp") -> None:
        """Record that the customer agreed to messages on ``channel`` after seeing ``wording``."""
        self.customer.record_consent(
            ConsentRecord(
                channel=channel, granted=True, wording=wording, source=source, at=self.now
            )
        )

    def record_opt_out(self, wording: str, *, source: str, channel: Channel = "whatsapp") -> None:
        """Record that the customer does not want (marketing) messages on ``channel``."""
        self.customer.record_consent(
            ConsentRecord(
                channel=channel, granted=False, wording=wording, source=source, at=self.now
            )
        )

    def handoff_link(self, text: str = "Code: {code}", *, number: str | None = None) -> str:
        """A wa.me link whose prefilled text carries a fresh single-use code for this customer.

        ``text`` must contain ``{code}``; ``number`` is the shop's WhatsApp number (default: the
        engine's ``whatsapp_display_number``). When the customer sends the text, the engine finds
        the code and links the WhatsApp conversation to this customer.
        """
        if "{code}" not in text:
            raise ConfigError("the prefilled text must contain {code}")
        display = number or self.engine.whatsapp_display_number
        if not display:
            raise ConfigError("no WhatsApp number for wa.me: pass whatsapp_display_number=")
        code = new_handoff_code()
        lifetime: timedelta = self.engine.handoff_lifetime
        self.new_handoffs.append(
            HandoffCode(
                code=code,
                customer_id=self.customer.id,
                created_at=self.now,
                expires_at=self.now + lifetime,
            )
        )
        return wa_me_link(display, text.format(code=code))
