"""Customer: a scripted customer who talks to your :class:`~waflow.App` on WhatsApp and Messenger.

::

    fake = FakeGraphAPI(clock=FrozenClock())
    app = App(app_secret=fake.app_secret, store=MemoryStore(), clock=fake.clock,
              whatsapp=fake.async_whatsapp(), messenger=fake.async_messenger())
    customer = Customer(app, fake)

    await customer.messenger.says("Hallo!")
    await customer.messenger.taps("Ansehen")             # a postback button of the bot's cards
    await customer.messenger.taps(customer.phone)        # the user_phone_number quick reply
    await customer.whatsapp.taps("Ja")                   # a template's quick-reply button
    await customer.whatsapp.orders(fake.catalog_id, [("trek-3", 1, 899.0, "EUR")])
    assert customer.last_reply.text == "Danke für deine Bestellung über 899.00 EUR!"
    print(customer.transcript())

Every action builds the webhook Meta would POST (with ``fake.inbound``), signs it with the fake's
app secret, hands it to ``app.dispatch`` and checks the answer is 200, then runs
``app.run_pending()`` so queued replies go out. It returns the messages the bot sent to this
customer meanwhile, on either channel, as a :class:`~waflow.testing.SentLog`. A handler that
raised is reported as an ``AssertionError`` with its error (the app itself would only log it and
retry later), unless the customer was made with ``check_handlers=False``.

The customer has one identity per channel: ``wa_id`` (and ``phone``, ``"+"`` and the same digits
unless given) on WhatsApp, ``psid`` on Messenger (derived from the number unless given, so it is
the same in every run). Actions do not move the clock: use :meth:`Customer.waits` for that.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from waflow.app import App
from waflow.testing.fake_graph import Channel, FakeGraphAPI, SentLog, SentMessage
from waflow.testing.inbound import MediaKind, OrderLine, WebhookBody
from waflow.webhooks import parse

__all__ = [
    "DEFAULT_NAME",
    "DEFAULT_WA_ID",
    "Customer",
    "CustomerSide",
    "MessengerSide",
    "TapError",
    "TapKind",
    "Tappable",
    "WhatsAppSide",
    "describe",
]

#: The number a :class:`Customer` writes from unless told otherwise.
DEFAULT_WA_ID = "4915112345678"
#: The profile name a :class:`Customer` has unless told otherwise.
DEFAULT_NAME = "Lena Berg"

#: What can be tapped: WhatsApp reply buttons, list rows, template quick-reply buttons; Messenger
#: text, phone and email quick replies, postback buttons; and buttons that open a link.
TapKind = Literal[
    "reply_button",
    "list_row",
    "template_button",
    "quick_reply",
    "phone_quick_reply",
    "email_quick_reply",
    "postback",
    "link",
]

_CHANNEL_NAMES: dict[str, str] = {"whatsapp": "WhatsApp", "messenger": "Messenger"}
_KIND_NAMES: dict[str, str] = {
    "reply_button": "reply button",
    "list_row": "list row",
    "template_button": "template button",
    "quick_reply": "quick reply",
    "phone_quick_reply": "phone number quick reply",
    "email_quick_reply": "email quick reply",
    "postback": "postback button",
    "link": "link button",
}
_WHATSAPP_LINK_HOSTS = frozenset({"wa.me", "api.whatsapp.com", "whatsapp.com"})
_MESSENGER_LINK_HOSTS = frozenset({"m.me"})


class TapError(AssertionError):
    """The customer could not tap what a test asked for: nothing the bot sent matches, or several
    things do. The message lists what was tappable. An ``AssertionError``, so pytest shows it as a
    failed expectation about the bot."""


@dataclass(frozen=True)
class Tappable:
    """Something in a message the bot sent that the customer can tap.

    ``title`` is what the customer sees, ``payload`` what the tap sends back (a reply id, a
    payload, or the URL of a link button), ``message`` the message that shows it, and
    ``detail`` a list row's description or the card a Messenger button sits on.
    """

    kind: TapKind
    title: str
    payload: str
    message: SentMessage
    detail: str | None = None

    def __str__(self) -> str:
        what = _KIND_NAMES[self.kind]
        if self.kind in ("phone_quick_reply", "email_quick_reply"):
            return f"{self.title!r} ({what})"
        label = "opens" if self.kind == "link" else "payload"
        where = f", on {self.detail!r}" if self.detail and self.kind != "list_row" else ""
        return f"{self.title!r} ({what}, {label} {self.payload!r}{where})"


@dataclass(frozen=True)
class _Turn:
    """Something the customer did (or a pause), placed before the ``position``-th sent message."""

    position: int
    channel: Channel | None
    text: str
    at: datetime


def _digits(value: str) -> str:
    return "".join(ch for ch in value if ch.isdigit())


def _psid_for(wa_id: str) -> str:
    # Derived, not drawn from the fake's sequence: making a Customer must not shift the wamids
    # a test asserts on, and the same number gets the same PSID in every run.
    digest = int(hashlib.sha256(f"psid:{wa_id}".encode()).hexdigest(), 16)
    return str(10**15 + digest % (9 * 10**15))


def _email_for(name: str | None) -> str:
    local = re.sub(r"[^a-z0-9]+", ".", (name or "customer").lower()).strip(".")
    return f"{local or 'customer'}@example.com"


class Customer:
    """A scripted customer of ``app``, talking to it through signed webhooks built by ``fake``.

    ``app`` must verify signatures with ``fake.app_secret`` and send through clients of ``fake``
    (``fake.async_whatsapp()``, ``fake.async_messenger()``), so that what it answers lands in
    ``fake.sent``. ``wa_id`` is the customer's WhatsApp number, ``phone`` the number a
    ``user_phone_number`` quick reply shares (default ``"+" + wa_id``), ``psid`` the Messenger
    page-scoped id (default: derived from ``wa_id``), ``email`` what a ``user_email`` quick reply
    shares, ``user_id`` a business-scoped WhatsApp user id to send along. ``check_handlers``
    turns a handler that raised into an ``AssertionError`` of the action that caused it.

    ``customer.whatsapp`` and ``customer.messenger`` are the two channels' actions
    (:class:`WhatsAppSide`, :class:`MessengerSide`).
    """

    def __init__(
        self,
        app: App,
        fake: FakeGraphAPI,
        *,
        wa_id: str = DEFAULT_WA_ID,
        psid: str | None = None,
        name: str | None = DEFAULT_NAME,
        phone: str | None = None,
        email: str | None = None,
        user_id: str | None = None,
        check_handlers: bool = True,
    ) -> None:
        number = _digits(wa_id)
        if not number or any(ch.isalpha() for ch in wa_id):
            raise ValueError(f"wa_id must be a phone number, got {wa_id!r}")
        self.app = app
        self.fake = fake
        #: The WhatsApp id (digits only) the customer writes from.
        self.wa_id = number
        #: The number the customer shares through a ``user_phone_number`` quick reply.
        self.phone = phone if phone is not None else f"+{number}"
        #: The customer's page-scoped id on the fake's Messenger Page.
        self.psid = psid or _psid_for(number)
        #: The profile name WhatsApp shows the business (``None``: no profile).
        self.name = name
        #: The address the customer shares through a ``user_email`` quick reply.
        self.email = email or _email_for(name)
        #: A business-scoped user id sent with WhatsApp messages, if any.
        self.user_id = user_id
        self.check_handlers = check_handlers
        #: The customer's WhatsApp actions.
        self.whatsapp = WhatsAppSide(self)
        #: The customer's Messenger actions.
        self.messenger = MessengerSide(self)
        self._turns: list[_Turn] = []

    def __repr__(self) -> str:
        return f"Customer({self.name!r}, wa_id={self.wa_id!r}, psid={self.psid!r})"

    # -- what the bot said ---------------------------------------------------------------------

    def side(self, channel: Channel) -> CustomerSide:
        """The actions of ``channel`` (``"whatsapp"`` or ``"messenger"``)."""
        if channel == "whatsapp":
            return self.whatsapp
        if channel == "messenger":
            return self.messenger
        raise ValueError(f"unknown channel {channel!r}: use 'whatsapp' or 'messenger'")

    def is_recipient(self, message: SentMessage) -> bool:
        """Whether the bot sent ``message`` to this customer (on either channel)."""
        if message.channel == "messenger":
            return message.to == self.psid
        if self.user_id is not None and message.to == self.user_id:
            return True
        return _digits(message.to) in (self.wa_id, _digits(self.phone))

    @property
    def replies(self) -> SentLog:
        """Every message the bot sent to this customer, on both channels, oldest first
        (follow-ups sent by deadlines included)."""
        return SentLog(m for m in self.fake.sent if self.is_recipient(m))

    @property
    def last_reply(self) -> SentMessage:
        """The bot's most recent message to this customer (``AssertionError`` when none)."""
        __tracebackhide__ = True
        replies = self.replies
        if not replies:
            raise AssertionError(f"the bot has sent {self._who()} nothing yet")
        return replies[-1]

    def transcript(self, *, bot: str = "Bot") -> str:
        """The conversation as readable text, both channels interleaved, one line per message::

            09:00 Lena Berg (Messenger): Hallo!
            09:00 Bot (Messenger): [cards: Stadtrad (Ansehen) | Trekkingrad (Ansehen)]

        The bot's messages are shown with :func:`describe`; a new day starts with its date.
        """
        lines: list[str] = []
        day: date | None = None

        def add(at: datetime, who: str, channel: Channel | None, text: str) -> None:
            nonlocal day
            if day is not None and at.date() != day:
                lines.append(f"-- {at.date().isoformat()} --")
            day = at.date()
            where = f" ({_CHANNEL_NAMES[channel]})" if channel else ""
            head = f"{at:%H:%M} {who}{where}: " if who else f"{at:%H:%M} "
            body = text.replace("\n", "\n" + " " * len(head))
            lines.append(head + body)

        turns = iter(self._turns)
        turn = next(turns, None)
        for position, message in enumerate(self.fake.sent):
            while turn is not None and turn.position <= position:
                add(turn.at, self._who() if turn.channel else "", turn.channel, turn.text)
                turn = next(turns, None)
            if self.is_recipient(message):
                add(message.sent_at, bot, message.channel, describe(message, self.fake))
        while turn is not None:
            add(turn.at, self._who() if turn.channel else "", turn.channel, turn.text)
            turn = next(turns, None)
        return "\n".join(lines)

    # -- actions on any channel ----------------------------------------------------------------

    async def sends_webhook(self, body: Mapping[str, Any], *, says: str | None = None) -> SentLog:
        """Dispatch any webhook ``body`` (e.g. built with ``fake.inbound``) as this customer's;
        ``says`` is its line in the transcript. Returns the bot's replies, as every action does."""
        channel: Channel = "messenger" if body.get("object") == "page" else "whatsapp"
        return await self._act(channel, body, says or "[webhook]")

    async def opens_link(self, url: str) -> SentLog:
        """Open a chat link as the customer would.

        A wa.me link (or ``api.whatsapp.com/send``) with a prefilled ``text``: the customer sends
        that text on WhatsApp. An m.me link with a ``ref``: Meta's referral webhook of the
        customer's Messenger thread. Raises :class:`ValueError` for other links, and for chat
        links that would send nothing (no prefilled text, no ref).
        """
        __tracebackhide__ = True
        return await self._open(url, None)

    async def waits(self, seconds: float = 0, *, minutes: float = 0, hours: float = 0) -> SentLog:
        """Let time pass on the fake's clock (a :class:`~waflow.testing.FrozenClock`), then run
        the app's due work (deadlines, retries, queued sends); return what the bot sent this
        customer meanwhile."""
        advance = getattr(self.fake.clock, "advance", None)
        if advance is None:
            raise TypeError(
                "waits() needs a fake on a FrozenClock: FakeGraphAPI(clock=FrozenClock())"
            )
        before = len(self.fake.sent)
        advance(seconds, minutes=minutes, hours=hours)
        span = timedelta(seconds=seconds, minutes=minutes, hours=hours)
        self._turns.append(_Turn(before, None, f"(… {_span(span)} later)", self.fake.clock.now()))
        await self.app.run_pending()
        return self._since(before)

    async def reads(self) -> SentLog:
        """The customer's phone reports everything the bot sent them as delivered and read: the
        status webhooks of :meth:`FakeGraphAPI.read_all` are dispatched to the app."""
        before = len(self.fake.sent)
        for key in (self.wa_id, self.psid):
            for body in self.fake.read_all(to=key):
                await self._dispatch(body)
        await self.app.run_pending()
        return self._since(before)

    # -- internals -----------------------------------------------------------------------------

    def _who(self) -> str:
        return self.name or "Customer"

    def _since(self, position: int) -> SentLog:
        return SentLog(m for m in self.fake.sent[position:] if self.is_recipient(m))

    async def _act(self, channel: Channel, body: Mapping[str, Any], says: str) -> SentLog:
        __tracebackhide__ = True  # pytest shows the test's line, not the driver's
        before = len(self.fake.sent)
        self._turns.append(_Turn(before, channel, says, self.fake.clock.now()))
        await self._dispatch(body)
        await self.app.run_pending()
        return self._since(before)

    async def _dispatch(self, body: Mapping[str, Any]) -> None:
        __tracebackhide__ = True  # pytest shows the test's line, not the driver's
        response = await self.app.dispatch(self.fake.webhook_request(body))
        if response.status != 200:
            hint = ""
            if response.status in (401, 403):
                hint = " (is the App made with app_secret=fake.app_secret?)"
            raise AssertionError(
                f"the app answered {response.status} to {self._who()}'s webhook: "
                f"{response.text}{hint}"
            )
        if self.check_handlers:
            await self._check_handled(body)

    async def _check_handled(self, body: Mapping[str, Any]) -> None:
        __tracebackhide__ = True  # pytest shows the test's line, not the driver's
        # The inbox keeps a failed event for a later retry and only logs the error, which would
        # leave a test looking at "no reply"; the customer reports the error instead.
        for event in parse(dict(body)):
            item = await self.app.store.inbox_get(event.dedupe_key)
            if item is not None and item.state != "done" and item.last_error:
                raise AssertionError(
                    f"the app's handler of {self._who()}'s {event.channel} {event.kind} "
                    f"failed: {item.last_error}"
                )

    async def _open(self, url: str, tapped: str | None) -> SentLog:
        __tracebackhide__ = True  # pytest shows the test's line, not the driver's
        parts = urlsplit(url if "://" in url else f"https://{url}")
        host = (parts.hostname or "").lower().removeprefix("www.")
        query = parse_qs(parts.query)
        prefix = f"taps {tapped!r}: " if tapped else ""
        if host in _WHATSAPP_LINK_HOSTS:
            # wa.me/<number>, or api.whatsapp.com/send?phone=<number>: it must be the shop's
            # number (as customers see it), or the customer would write to someone else.
            number = parts.path.strip("/") if host == "wa.me" else (query.get("phone") or [""])[0]
            number = "".join(ch for ch in number if ch.isdigit())
            shop = "".join(ch for ch in self.fake.display_phone_number if ch.isdigit())
            if number != shop:
                raise ValueError(
                    f"{url} leads to {number or 'no number'}, not the shop's WhatsApp number "
                    f"{shop} (fake.display_phone_number): link the display number, not the "
                    "phone number id"
                )
            text = (query.get("text") or [""])[0]
            if not text:
                raise ValueError(
                    f"{url} has no prefilled text: opening it sends nothing; "
                    "let the customer write with customer.whatsapp.says(...)"
                )
            body = self.fake.inbound.whatsapp_text(
                self.wa_id, text, name=self.name, user_id=self.user_id
            )
            return await self._act("whatsapp", body, f"{prefix}{text}  (sent from {url})")
        if host in _MESSENGER_LINK_HOSTS:
            ref = (query.get("ref") or [""])[0]
            if not ref:
                raise ValueError(
                    f"{url} has no ref: opening it sends nothing; "
                    "let the customer write with customer.messenger.says(...)"
                )
            body = self.fake.inbound.messenger_referral(self.psid, ref=ref)
            return await self._act("messenger", body, f"{prefix}opens {url}")
        raise ValueError(
            f"{url} is not a wa.me or m.me chat link: opening it sends the bot nothing"
        )

    # -- tapping -------------------------------------------------------------------------------

    def _tappables(self, channel: Channel) -> list[Tappable]:
        messages = [m for m in self.fake.sent.on(channel) if self.is_recipient(m)]
        found: list[Tappable] = []
        for age, message in enumerate(reversed(messages)):
            # Messenger hides quick replies once a newer message arrives; buttons stay.
            found.extend(self._tappables_in(message, quick_replies=age == 0))
        return found

    def _tappables_in(self, message: SentMessage, *, quick_replies: bool) -> list[Tappable]:
        body = message.body
        if message.channel == "whatsapp":
            if message.type == "interactive":
                return _interactive_tappables(message)
            if message.type == "template":
                return self._template_tappables(message)
            return []
        content = body.get("message") or {}
        found: list[Tappable] = []
        for reply in (content.get("quick_replies") or []) if quick_replies else []:
            kind = reply.get("content_type")
            if kind == "text":
                found.append(
                    Tappable("quick_reply", str(reply["title"]), str(reply["payload"]), message)
                )
            elif kind == "user_phone_number":
                found.append(Tappable("phone_quick_reply", self.phone, self.phone, message))
            elif kind == "user_email":
                found.append(Tappable("email_quick_reply", self.email, self.email, message))
        attachment = content.get("attachment") or {}
        if attachment.get("type") == "template":
            payload = attachment.get("payload") or {}
            buttons = [(b, None) for b in payload.get("buttons") or []]
            for element in payload.get("elements") or []:
                buttons.extend((b, element.get("title")) for b in element.get("buttons") or [])
            for button, card in buttons:
                if button.get("type") == "postback":
                    found.append(
                        Tappable("postback", button["title"], button["payload"], message, card)
                    )
                elif button.get("type") == "web_url":
                    found.append(Tappable("link", button["title"], button["url"], message, card))
        return found

    def _template_tappables(self, message: SentMessage) -> list[Tappable]:
        template = message.body.get("template") or {}
        payloads: dict[int, str] = {}
        for component in template.get("components") or []:
            if component.get("type") != "button":
                continue
            if str(component.get("sub_type", "")).lower() != "quick_reply":
                continue
            for parameter in component.get("parameters") or []:
                value = parameter.get("payload") or parameter.get("text")
                if value is not None:
                    payloads[int(component.get("index", 0))] = str(value)
        language = (template.get("language") or {}).get("code", "")
        registered = self.fake.templates.get(str(template.get("name", "")), str(language))
        if registered is None:
            # Without the template the fake cannot know the buttons' texts: payloads stand in.
            return [
                Tappable("template_button", payload, payload, message)
                for _, payload in sorted(payloads.items())
            ]
        found = []
        for index, button in enumerate(registered.buttons):
            if getattr(button, "type", None) == "QUICK_REPLY":
                title = str(button.text)
                # A quick reply sent without a payload sends its text back, as at Meta.
                found.append(
                    Tappable("template_button", title, payloads.get(index, title), message)
                )
        return found

    async def _tap(self, channel: Channel, wanted: str, on: str | None = None) -> SentLog:
        __tracebackhide__ = True  # pytest shows the test's line, not the driver's
        choice = self._choose(channel, wanted, self._tappables(channel), on)
        said = f"taps {choice.title!r}"
        message = choice.message
        inbound = self.fake.inbound
        body: WebhookBody
        if choice.kind == "link":
            return await self._open(choice.payload, choice.title)
        if choice.kind == "reply_button":
            body = inbound.whatsapp_button_reply(
                self.wa_id,
                choice.payload,
                choice.title,
                context_id=message.message_id,
                name=self.name,
                user_id=self.user_id,
            )
        elif choice.kind == "list_row":
            body = inbound.whatsapp_list_reply(
                self.wa_id,
                choice.payload,
                choice.title,
                description=choice.detail,
                context_id=message.message_id,
                name=self.name,
                user_id=self.user_id,
            )
        elif choice.kind == "template_button":
            body = inbound.whatsapp_template_button(
                self.wa_id,
                choice.payload,
                choice.title,
                context_id=message.message_id,
                name=self.name,
                user_id=self.user_id,
            )
        elif choice.kind == "quick_reply":
            body = inbound.messenger_quick_reply(self.psid, choice.payload, choice.title)
        elif choice.kind == "phone_quick_reply":
            body = inbound.messenger_phone_quick_reply(self.psid, self.phone)
            said = f"shares the phone number {self.phone}"
        elif choice.kind == "email_quick_reply":
            body = inbound.messenger_email_quick_reply(self.psid, self.email)
            said = f"shares the email address {self.email}"
        else:
            body = inbound.messenger_postback(self.psid, choice.payload, choice.title)
            if choice.detail:
                said = f"taps {choice.title!r} on {choice.detail!r}"
        return await self._act(channel, body, said)

    def _choose(
        self, channel: Channel, wanted: str, options: list[Tappable], on: str | None
    ) -> Tappable:
        __tracebackhide__ = True
        offered = options
        if on is not None:
            options = [option for option in options if option.detail == on]
        aliases = {"user_phone_number": "phone_quick_reply", "user_email": "email_quick_reply"}

        def exact(option: Tappable) -> bool:
            if aliases.get(wanted) == option.kind:
                return True
            if option.kind == "phone_quick_reply" and _digits(wanted) == _digits(option.title):
                return True
            return wanted in (option.title, option.payload)

        def loose(option: Tappable) -> bool:
            return option.title.casefold().strip() == wanted.casefold().strip()

        for test in (exact, loose):
            matches = [option for option in options if test(option)]
            if not matches:
                continue
            # The newest message that offers a match wins; within it, the match must be unique.
            newest = [m for m in matches if m.message is matches[0].message]
            if len({(m.kind, m.payload) for m in newest}) > 1:
                listed = "\n".join(f"  - {m}" for m in newest)
                raise TapError(
                    f"{self._who()} cannot tell which {wanted!r} to tap on "
                    f"{_CHANNEL_NAMES[channel]}; one message of the bot offers several:\n"
                    f"{listed}\nTap one by its payload"
                    + (
                        f", or name its card with on=..., e.g. taps({wanted!r}, "
                        f"on={newest[0].detail!r})."
                        if newest[0].detail
                        else "."
                    )
                )
            return newest[0]
        raise TapError(self._nothing_to_tap(channel, wanted, offered, on))

    def _nothing_to_tap(
        self, channel: Channel, wanted: str, options: list[Tappable], on: str | None
    ) -> str:
        where = _CHANNEL_NAMES[channel]
        recipient = self.wa_id if channel == "whatsapp" else self.psid
        target = f"{wanted!r} on {on!r}" if on is not None else repr(wanted)
        head = f"{self._who()} cannot tap {target} on {where}"
        messages = [m for m in self.fake.sent.on(channel) if self.is_recipient(m)]
        if not messages:
            return f"{head}: the bot has sent {recipient} nothing on {where}"
        if not options:
            text = f"{head}: nothing the bot sent {recipient} on {where} can be tapped"
            text += f" (its last message: {describe(messages[-1], self.fake)})"
        else:
            seen: set[tuple[str, str, str]] = set()
            listed = []
            for option in options:
                key = (option.kind, option.title, option.payload)
                if key not in seen:
                    seen.add(key)
                    listed.append(f"  - {option}")
            text = (
                f"{head}. What the bot's messages to {recipient} offer, newest first:\n"
                + "\n".join(listed)
            )
        if channel == "messenger":
            older = [
                option
                for message in messages[:-1]
                for option in self._tappables_in(message, quick_replies=True)
                if option.kind.endswith("quick_reply") and wanted in (option.title, option.payload)
            ]
            if older:
                text += (
                    f"\n{wanted!r} was a quick reply of an earlier message; Messenger hides "
                    "quick replies once a newer message arrives."
                )
        return text


class CustomerSide:
    """The actions of a :class:`Customer` on one channel (``customer.whatsapp`` or
    ``customer.messenger``). Each returns the bot's replies to the customer (both channels) as a
    :class:`~waflow.testing.SentLog`."""

    channel: Channel

    def __init__(self, customer: Customer) -> None:
        self.customer = customer

    def __repr__(self) -> str:
        return f"<{_CHANNEL_NAMES[self.channel]} side of {self.customer!r}>"

    @property
    def id(self) -> str:
        """The customer's id on this channel (the wa_id or the PSID)."""
        raise NotImplementedError

    @property
    def replies(self) -> SentLog:
        """Every message the bot sent to the customer on this channel, oldest first."""
        return self.customer.replies.on(self.channel)

    @property
    def last_reply(self) -> SentMessage:
        """The bot's most recent message to the customer on this channel (``AssertionError``
        when none)."""
        __tracebackhide__ = True
        replies = self.replies
        if not replies:
            raise AssertionError(
                f"the bot has sent {self.customer._who()} nothing on "
                f"{_CHANNEL_NAMES[self.channel]} yet"
            )
        return replies[-1]

    def tappables(self) -> list[Tappable]:
        """What the customer could tap now on this channel, newest message first."""
        return self.customer._tappables(self.channel)

    async def says(self, text: str) -> SentLog:
        """The customer writes ``text``."""
        return await self.customer._act(self.channel, self._text(text), text)

    async def taps(self, title_or_payload: str, *, on: str | None = None) -> SentLog:
        """The customer taps what the bot offered, found by its title or its payload (id, URL).

        Searched in the bot's messages to the customer on this channel, newest first: WhatsApp
        reply buttons, list rows and template quick-reply buttons (titles from ``fake.templates``
        when the template is registered there, else the payloads); Messenger quick replies of
        the latest message (a ``user_phone_number`` one by ``customer.phone`` or
        ``"user_phone_number"``, which shares the customer's number; ``user_email`` likewise),
        and postback buttons of button and generic templates. A link button opens its link (see
        :meth:`Customer.opens_link`). Titles match exactly, then ignoring case. ``on`` narrows
        the search to the buttons of one card of a generic template (its title), or to list rows
        with that description. Raises :class:`TapError` listing what was tappable when nothing
        matches, or when one message offers several different matches.
        """
        __tracebackhide__ = True
        return await self.customer._tap(self.channel, title_or_payload, on)

    async def opens_link(self, url: str) -> SentLog:
        """:meth:`Customer.opens_link`, for a link of this channel (``ValueError`` otherwise)."""
        host = (urlsplit(url if "://" in url else f"https://{url}").hostname or "").lower()
        hosts = _WHATSAPP_LINK_HOSTS if self.channel == "whatsapp" else _MESSENGER_LINK_HOSTS
        if host.removeprefix("www.") not in hosts:
            raise ValueError(f"{url} is not a {_CHANNEL_NAMES[self.channel]} chat link")
        return await self.customer.opens_link(url)

    def _text(self, text: str) -> WebhookBody:
        raise NotImplementedError


_MEDIA_NAMES = {
    "image": "a photo",
    "audio": "an audio",
    "video": "a video",
    "document": "a document",
    "sticker": "a sticker",
}


class WhatsAppSide(CustomerSide):
    """What a customer does on WhatsApp: write, tap, order from the catalog, share a location,
    arrive from a click-to-WhatsApp ad."""

    channel: Channel = "whatsapp"

    @property
    def id(self) -> str:
        """The customer's wa_id."""
        return self.customer.wa_id

    def _text(self, text: str, *, context_id: str | None = None) -> WebhookBody:
        customer = self.customer
        return customer.fake.inbound.whatsapp_text(
            customer.wa_id,
            text,
            name=customer.name,
            context_id=context_id,
            user_id=customer.user_id,
        )

    async def says(self, text: str, *, reply_to: SentMessage | str | None = None) -> SentLog:
        """The customer writes ``text``; ``reply_to`` (a sent message or its id) quotes a message
        of the bot."""
        context_id = reply_to.message_id if isinstance(reply_to, SentMessage) else reply_to
        body = self._text(text, context_id=context_id)
        return await self.customer._act(self.channel, body, text)

    async def orders(
        self, catalog_id: str, items: Sequence[OrderLine], *, text: str = ""
    ) -> SentLog:
        """The customer sends a cart from ``catalog_id``: ``items`` are
        ``(product_retailer_id, quantity, item_price, currency)``."""
        customer = self.customer
        body = customer.fake.inbound.whatsapp_order(
            customer.wa_id,
            catalog_id,
            items,
            text=text,
            name=customer.name,
            user_id=customer.user_id,
        )
        cart = ", ".join(
            f"{quantity} × {sku} à {price:g} {currency}" for sku, quantity, price, currency in items
        )
        return await customer._act(self.channel, body, f"orders {cart}")

    async def sends_location(
        self,
        latitude: float,
        longitude: float,
        *,
        name: str | None = None,
        address: str | None = None,
    ) -> SentLog:
        """The customer shares a location (a pin, or a place with ``name`` and ``address``)."""
        customer = self.customer
        body = customer.fake.inbound.whatsapp_location(
            customer.wa_id,
            latitude,
            longitude,
            place_name=name,
            address=address,
            name=customer.name,
            user_id=customer.user_id,
        )
        place = f" ({name})" if name else ""
        return await customer._act(
            self.channel, body, f"shares a location {latitude}, {longitude}{place}"
        )

    async def sends_media(
        self,
        kind: MediaKind,
        content: bytes = b"",
        *,
        mime_type: str | None = None,
        caption: str | None = None,
        filename: str | None = None,
        voice: bool = False,
    ) -> SentLog:
        """The customer sends a photo, voice note, video, file or sticker; the bot can download
        ``content`` from the fake by the event's media id (see
        :meth:`Inbound.whatsapp_media <waflow.testing.inbound.Inbound.whatsapp_media>`)."""
        customer = self.customer
        body = customer.fake.inbound.whatsapp_media(
            customer.wa_id,
            kind,
            content,
            mime_type=mime_type,
            caption=caption,
            filename=filename,
            voice=voice,
            name=customer.name,
            user_id=customer.user_id,
        )
        described = "sends " + ("a voice note" if voice else _MEDIA_NAMES[kind])
        if caption:
            described += f": {caption}"
        return await customer._act(self.channel, body, described)

    async def reacts(self, emoji: str | None, *, to: SentMessage | str | None = None) -> SentLog:
        """The customer reacts with ``emoji`` to ``to`` (default: the bot's last message to them);
        ``None`` removes the reaction."""
        customer = self.customer
        target = to if to is not None else self.last_reply
        message_id = target.message_id if isinstance(target, SentMessage) else target
        body = customer.fake.inbound.whatsapp_reaction(
            customer.wa_id, message_id, emoji, name=customer.name, user_id=customer.user_id
        )
        return await customer._act(
            self.channel, body, f"reacts {emoji}" if emoji else "removes a reaction"
        )

    async def comes_from_ad(
        self,
        text: str = "Hi!",
        *,
        referral: Mapping[str, Any] | None = None,
        source_id: str | None = None,
        ctwa_clid: str | None = None,
        headline: str = "Chat with us",
        welcome_text: str | None = None,
    ) -> SentLog:
        """The customer taps a click-to-WhatsApp ad and sends its prefilled ``text``: the message
        carries the ad's ``referral`` (default: built by
        :meth:`Inbound.whatsapp_referral <waflow.testing.inbound.Inbound.whatsapp_referral>`
        from ``source_id``, ``ctwa_clid``, ``headline`` and ``welcome_text``)."""
        customer = self.customer
        inbound = customer.fake.inbound
        if referral is None:
            referral = inbound.whatsapp_referral(
                source_id=source_id,
                ctwa_clid=ctwa_clid,
                headline=headline,
                welcome_text=welcome_text,
            )
        body = inbound.whatsapp_ad_referral(
            customer.wa_id, text, referral, name=customer.name, user_id=customer.user_id
        )
        ad = referral.get("source_id", "?")
        return await customer._act(self.channel, body, f"{text}  (from ad {ad})")


class MessengerSide(CustomerSide):
    """What a customer does on Messenger: write, tap quick replies and buttons, start the
    conversation (Get Started), arrive from a click-to-Messenger ad or an m.me link."""

    channel: Channel = "messenger"

    @property
    def id(self) -> str:
        """The customer's PSID."""
        return self.customer.psid

    def _text(self, text: str) -> WebhookBody:
        return self.customer.fake.inbound.messenger_text(self.customer.psid, text)

    async def gets_started(
        self, payload: str = "GET_STARTED", *, title: str = "Get Started", ref: str | None = None
    ) -> SentLog:
        """The customer taps the Page's Get Started button (``payload`` is what the Page set);
        ``ref`` adds the m.me link's referral that opened the new thread."""
        inbound = self.customer.fake.inbound
        referral = inbound.messenger_referral_info(ref=ref) if ref is not None else None
        body = inbound.messenger_postback(self.customer.psid, payload, title, referral=referral)
        return await self.customer._act(self.channel, body, f"taps {title!r}")

    async def comes_from_ad(
        self,
        text: str | None = None,
        *,
        ad_id: str | None = None,
        ref: str | None = None,
        ads_context_data: Mapping[str, Any] | None = None,
    ) -> SentLog:
        """The customer comes from a click-to-Messenger ad (an ``ADS`` referral with ``ad_id``,
        ``ref`` and ``ads_context_data``, made up when left out).

        With ``text`` the customer writes it and the message carries the referral (a new
        thread); without, Meta's referral webhook of an existing thread is sent.
        """
        customer = self.customer
        inbound = customer.fake.inbound
        referral = inbound.messenger_referral_info(
            source="ADS", ref=ref, ad_id=ad_id, ads_context_data=ads_context_data
        )
        ad = referral["ad_id"]
        if text is None:
            body = inbound.messenger_referral(
                customer.psid,
                ref=ref,
                ad_id=ad,
                source="ADS",
                ads_context_data=referral["ads_context_data"],
            )
            return await customer._act(self.channel, body, f"opens the chat from ad {ad}")
        body = inbound.messenger_text(customer.psid, text)
        body["entry"][0]["messaging"][0]["message"]["referral"] = referral
        return await customer._act(self.channel, body, f"{text}  (from ad {ad})")


def _interactive_tappables(message: SentMessage) -> list[Tappable]:
    interactive = message.body.get("interactive") or {}
    action = interactive.get("action") or {}
    kind = interactive.get("type")
    found: list[Tappable] = []
    if kind == "button":
        for button in action.get("buttons") or []:
            reply = button.get("reply") or {}
            found.append(Tappable("reply_button", str(reply["title"]), str(reply["id"]), message))
    elif kind == "list":
        for section in action.get("sections") or []:
            for row in section.get("rows") or []:
                found.append(
                    Tappable(
                        "list_row",
                        str(row["title"]),
                        str(row["id"]),
                        message,
                        row.get("description"),
                    )
                )
    elif kind == "cta_url":
        parameters = action.get("parameters") or {}
        found.append(
            Tappable("link", str(parameters["display_text"]), str(parameters["url"]), message)
        )
    return found


def _span(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    parts = []
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min"), (1, "s")):
        if seconds >= size:
            parts.append(f"{seconds // size} {unit}")
            seconds %= size
    return " ".join(parts) or "0 s"


def describe(message: SentMessage, fake: FakeGraphAPI | None = None) -> str:
    """A one-glance text of a message the bot sent, as the transcript shows it: the text, then
    what can be tapped or seen in brackets (``Weiter? [Ja | Nein]``, ``[product trek-3]``).
    With ``fake``, a template registered in ``fake.templates`` shows its body text filled in."""
    if message.channel == "messenger":
        return _describe_messenger(message.body.get("message") or {})
    body = message.body
    kind = message.type
    if kind == "text":
        return str(body["text"]["body"])
    if kind == "interactive":
        return _describe_interactive(message)
    if kind == "template":
        return _describe_template(body.get("template") or {}, fake)
    if kind == "location":
        location = body.get("location") or {}
        return f"[location {location.get('latitude')}, {location.get('longitude')}]"
    if kind == "reaction":
        return f"[reaction {(body.get('reaction') or {}).get('emoji', '')}]"
    caption = message.text
    return f"[{kind}] {caption}" if caption else f"[{kind}]"


def _with(text: str | None, extra: str) -> str:
    return f"{text} {extra}" if text else extra


def _describe_interactive(message: SentMessage) -> str:
    interactive = message.body.get("interactive") or {}
    action = interactive.get("action") or {}
    kind = interactive.get("type")
    text = message.text
    if kind == "button":
        titles = [str((b.get("reply") or {}).get("title")) for b in action.get("buttons") or []]
        return _with(text, f"[{' | '.join(titles)}]")
    if kind == "list":
        rows = [
            str(r.get("title")) for s in action.get("sections") or [] for r in s.get("rows") or []
        ]
        return _with(text, f"[{action.get('button')}: {' | '.join(rows)}]")
    if kind == "cta_url":
        parameters = action.get("parameters") or {}
        return _with(text, f"[{parameters.get('display_text')} → {parameters.get('url')}]")
    if kind == "product":
        return _with(text, f"[product {action.get('product_retailer_id')}]")
    if kind == "product_list":
        items = [
            str(i.get("product_retailer_id"))
            for s in action.get("sections") or []
            for i in s.get("product_items") or []
        ]
        return _with(text, f"[products: {', '.join(items)}]")
    return _with(text, f"[{kind}]")


def _describe_template(template: Mapping[str, Any], fake: FakeGraphAPI | None) -> str:
    name = str(template.get("name", ""))
    language = str((template.get("language") or {}).get("code", ""))
    values: list[str] = []
    named: dict[str, str] = {}
    for component in template.get("components") or []:
        if component.get("type") != "body":
            continue
        for parameter in component.get("parameters") or []:
            value = parameter.get("text")
            if value is None:
                value = (parameter.get("currency") or {}).get("fallback_value")
            if value is None:
                value = (parameter.get("date_time") or {}).get("fallback_value")
            values.append(str(value))
            if parameter.get("parameter_name"):
                named[str(parameter["parameter_name"])] = str(value)
    registered = fake.templates.get(name, language) if fake is not None else None
    if registered is not None and registered.body is not None:

        def fill(match: re.Match[str]) -> str:
            key = match.group(1)
            if key.isdigit() and 0 < int(key) <= len(values):
                return values[int(key) - 1]
            return named.get(key, match.group(0))

        text = re.sub(r"\{\{\s*(\w+)\s*\}\}", fill, str(registered.body.text))
        buttons = [str(b.text) for b in registered.buttons if getattr(b, "text", None)]
        shown = f"[template {name} ({language})] {text}"
        return f"{shown} [{' | '.join(buttons)}]" if buttons else shown
    filled = f": {', '.join(values)}" if values else ""
    return f"[template {name} ({language}){filled}]"


def _describe_messenger(content: Mapping[str, Any]) -> str:
    text = content.get("text")
    quick = []
    for reply in content.get("quick_replies") or []:
        kind = reply.get("content_type")
        quick.append(str(reply.get("title")) if kind == "text" else f"<{kind}>")
    attachment = content.get("attachment") or {}
    extra = ""
    if attachment.get("type") == "template":
        payload = attachment.get("payload") or {}
        if payload.get("template_type") == "button":
            text = payload.get("text")
            extra = f"[{' | '.join(_button_label(b) for b in payload.get('buttons') or [])}]"
        else:
            cards = []
            for element in payload.get("elements") or []:
                labels = ", ".join(_button_label(b) for b in element.get("buttons") or [])
                cards.append(
                    f"{element.get('title')} ({labels})" if labels else str(element.get("title"))
                )
            extra = f"[cards: {' | '.join(cards)}]"
    elif attachment:
        url = (attachment.get("payload") or {}).get("url")
        extra = f"[{attachment.get('type')}{' ' + url if url else ''}]"
    if quick:
        extra = _with(extra or None, f"[quick replies: {' | '.join(quick)}]")
    return _with(text, extra) if extra else str(text or "")


def _button_label(button: Mapping[str, Any]) -> str:
    if button.get("type") == "web_url":
        return f"{button.get('title')} → {button.get('url')}"
    return str(button.get("title"))
