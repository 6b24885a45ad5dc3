"""Inbound webhooks for tests: bodies of both channels, shaped exactly as Meta sends them.

Every :class:`~waflow.testing.FakeGraphAPI` has one, as ``fake.inbound``::

    fake = FakeGraphAPI(clock=FrozenClock())
    body = fake.inbound.whatsapp_text("4915112345678", "Hallo!", name="Lena")
    response = await app.dispatch(fake.webhook_request(body))    # signed with fake.app_secret

The factories return webhook *body dicts* (``{"object": …, "entry": […]}``), the form Meta POSTs
and :func:`waflow.webhooks.parse` reads. Timestamps come from the fake's clock (WhatsApp: Unix
seconds as strings; Messenger: Unix milliseconds as integers); message ids come from the fake's
seeded sequence, so two fakes with the same ``seed`` hand out the same ids in the same order, and
every call hands out new ones. Business-side ids (phone number id, display number, WABA id, Page id)
are the fake's unless a factory is told otherwise.

:meth:`Inbound.batch` merges bodies the way Meta batches deliveries. To send a body to an app, sign
it with :meth:`FakeGraphAPI.sign <waflow.testing.FakeGraphAPI.sign>` or build the whole request
with :meth:`FakeGraphAPI.webhook_request <waflow.testing.FakeGraphAPI.webhook_request>`.
"""

from __future__ import annotations

import base64
import copy
import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from waflow.testing.fake_graph import FakeGraphAPI

__all__ = ["Inbound", "OrderLine", "StatusName", "WebhookBody"]

#: A webhook body as Meta POSTs it: ``{"object": …, "entry": […]}``, ready for ``json.dumps``.
WebhookBody = dict[str, Any]

#: One line of an order: (product_retailer_id, quantity, item_price, currency).
OrderLine = tuple[str, int, float, str]

#: The statuses Meta reports for a message the business sent.
StatusName = Literal["sent", "delivered", "read", "failed", "played"]
MediaKind = Literal["image", "audio", "video", "document", "sticker"]
_DEFAULT_MIME_TYPES: dict[str, str] = {
    "image": "image/jpeg",
    "audio": "audio/ogg; codecs=opus",
    "video": "video/mp4",
    "document": "application/pdf",
    "sticker": "image/webp",
}

_WHATSAPP_OBJECT = "whatsapp_business_account"
_MESSENGER_OBJECT = "page"
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_ERROR_CODES_URL = "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"
# Meta's `error_data.details` for the codes tests meet most; others repeat the title.
_ERROR_DETAILS = {
    131000: "Something went wrong",
    131026: "Message Undeliverable.",
    131047: "Message failed to send because more than 24 hours have passed since the customer "
    "last replied to this number.",
    131049: "This message was not delivered to maintain healthy ecosystem engagement.",
}
# A failed status always names its reason; this one stands in when a test does not care which.
_DEFAULT_FAILURE = (131000, "Something went wrong")
_FREE_ENTRY_POINT_HOURS = 72
# Pricing rides on these; `failed` is not billed and `played` (voice) only follows a `read`.
_BILLED_STATUSES = frozenset({"sent", "delivered", "read"})


def _phone_digits(value: str, what: str) -> str:
    """A phone number as Meta writes ``wa_id`` / ``from``: digits only (``""`` stays ``""``)."""
    if value and any(ch.isalpha() for ch in value):
        raise ValueError(f"{what} must be a phone number (digits, optionally with + and spaces)")
    return "".join(ch for ch in value if ch.isdigit())


class Inbound:
    """Factories of inbound webhook bodies, bound to a :class:`~waflow.testing.FakeGraphAPI`.

    WhatsApp factories take the customer's number as ``from_`` (``"+49 151 12345678"`` becomes
    the ``wa_id`` ``"4915112345678"``), the profile ``name`` and ``username``, the business-scoped
    ``user_id`` (with ``from_=""`` the body carries ``wa_id: ""`` and ``from: ""`` as Meta's 2026
    payloads do for customers who hide their number) and ``phone_number_id`` (default: the fake's
    number). Messenger factories take the customer's page-scoped id ``psid`` and ``page_id``
    (default: the fake's Page). Every factory raises :class:`ValueError` for an impossible body.
    """

    def __init__(self, fake: FakeGraphAPI) -> None:
        self._fake = fake

    # -- clock and ids -------------------------------------------------------------------------

    def _seconds(self) -> str:
        return str((self._fake.clock.now() - _EPOCH) // timedelta(seconds=1))

    def _milliseconds(self) -> int:
        return (self._fake.clock.now() - _EPOCH) // timedelta(milliseconds=1)

    def _wamid(self) -> str:
        # The fake's sequence is shared with its HTTP handlers, which draw from it under its lock.
        with self._fake._lock:
            return self._fake.new_wamid()

    def _mid(self) -> str:
        with self._fake._lock:
            return self._fake.new_mid()

    def _random_token(self, size: int) -> str:
        with self._fake._lock:
            raw = self._fake._rng.randbytes(size)
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def _random_hex(self, size: int) -> str:
        with self._fake._lock:
            return self._fake._rng.randbytes(size).hex()

    def _random_digits(self, count: int) -> str:
        with self._fake._lock:
            return str(self._fake._rng.randrange(10 ** (count - 1), 10**count))

    # -- WhatsApp: envelope --------------------------------------------------------------------

    def _whatsapp_body(self, value: dict[str, Any], phone_number_id: str | None) -> WebhookBody:
        fake = self._fake
        return {
            "object": _WHATSAPP_OBJECT,
            "entry": [
                {
                    "id": fake.waba_id,
                    "changes": [
                        {
                            "value": {
                                "messaging_product": "whatsapp",
                                "metadata": {
                                    "display_phone_number": fake.display_phone_number,
                                    "phone_number_id": phone_number_id or fake.phone_number_id,
                                },
                                **value,
                            },
                            "field": "messages",
                        }
                    ],
                }
            ],
        }

    def _context(self, context_id: str) -> dict[str, Any]:
        # `context.from` is the business's display number: the customer answers its message.
        return {"from": self._fake.display_phone_number, "id": context_id}

    def _replied_message(self, from_: str, kind: str) -> str:
        """The id of the fake's last ``kind`` message to ``from_``, else a fresh wamid.

        A tap on a button, list row or template button always carries the id of the message that
        showed it; pointing at what the fake really sent lets tests follow the thread.
        """
        if from_:
            earlier = self._fake.sent.on("whatsapp").to(from_).of_type(kind)
            if earlier:
                return earlier.last.message_id
        return self._wamid()

    def _whatsapp_message(
        self,
        from_: str,
        message_type: str,
        content: Any,
        *,
        name: str | None,
        username: str | None,
        user_id: str | None,
        phone_number_id: str | None,
        context_id: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> WebhookBody:
        wa_id = _phone_digits(from_, "from_")
        if not wa_id and not user_id:
            raise ValueError("a WhatsApp customer needs a number (from_) or a user_id, or both")
        contact: dict[str, Any] = {}
        profile = {key: value for key, value in (("name", name), ("username", username)) if value}
        if profile:
            contact["profile"] = profile
        contact["wa_id"] = wa_id
        if user_id:
            contact["user_id"] = user_id
        message: dict[str, Any] = {}
        if context_id is not None:
            message["context"] = self._context(context_id)
        message["from"] = wa_id
        if user_id:
            message["from_user_id"] = user_id
        message["id"] = self._wamid()
        message["timestamp"] = self._seconds()
        message.update(extra or {})
        message["type"] = message_type
        message[message_type] = content
        # The customer wrote: the fake opens the service window it enforces (if asked to).
        self._fake.customer_wrote(
            phone_number_id or self._fake.phone_number_id, wa_id or user_id or ""
        )
        return self._whatsapp_body({"contacts": [contact], "messages": [message]}, phone_number_id)

    # -- WhatsApp: messages --------------------------------------------------------------------

    def whatsapp_text(
        self,
        from_: str,
        text: str,
        *,
        name: str | None = None,
        context_id: str | None = None,
        referral: Mapping[str, Any] | None = None,
        phone_number_id: str | None = None,
        user_id: str | None = None,
        username: str | None = None,
    ) -> WebhookBody:
        """A text message from ``from_``; ``context_id`` makes it a reply to that message.

        ``referral`` (see :meth:`whatsapp_referral`) marks it as the first message after a
        click-to-WhatsApp ad.
        """
        extra = {"referral": dict(referral)} if referral is not None else None
        return self._whatsapp_message(
            from_,
            "text",
            {"body": text},
            name=name,
            username=username,
            user_id=user_id,
            phone_number_id=phone_number_id,
            context_id=context_id,
            extra=extra,
        )

    def whatsapp_referral(
        self,
        *,
        source_id: str | None = None,
        source_type: Literal["ad", "post"] = "ad",
        source_url: str | None = None,
        headline: str = "Chat with us",
        body: str = "Spring sale: 15% off all trekking bikes",
        media_type: Literal["image", "video"] = "image",
        image_url: str | None = None,
        video_url: str | None = None,
        thumbnail_url: str | None = None,
        ctwa_clid: str | None = None,
        welcome_text: str | None = None,
        status_ad: bool = False,
    ) -> dict[str, Any]:
        """The ``referral`` of a message that came through a click-to-WhatsApp ad.

        Ids and URLs left out are made up from the fake's seeded sequence: ``source_id`` (the ad
        id), ``source_url``, the media URL and ``ctwa_clid`` (the click id conversions are
        reported with). ``status_ad=True`` leaves ``ctwa_clid`` out, as Meta does for ads shown
        in WhatsApp Status. ``welcome_text`` adds the ad's ``welcome_message``.
        """
        referral: dict[str, Any] = {
            "source_url": source_url or f"https://fb.me/{self._random_token(6)}",
            "source_id": source_id or "1202" + self._random_digits(14),
            "source_type": source_type,
            "body": body,
            "headline": headline,
            "media_type": media_type,
        }
        if media_type == "image":
            referral["image_url"] = image_url or (
                f"https://scontent.xx.fbcdn.net/v/t45.1600-4/{self._random_digits(9)}_n.jpg"
            )
        else:
            referral["video_url"] = video_url or (
                f"https://video.xx.fbcdn.net/v/t42.1790-2/{self._random_digits(9)}_n.mp4"
            )
            referral["thumbnail_url"] = thumbnail_url or (
                f"https://scontent.xx.fbcdn.net/v/t15.5256-10/{self._random_digits(9)}_n.jpg"
            )
        if not status_ad:
            referral["ctwa_clid"] = ctwa_clid or "Aff" + self._random_token(90)
        if welcome_text is not None:
            referral["welcome_message"] = {"text": welcome_text}
        return referral

    def whatsapp_ad_referral(
        self,
        from_: str,
        text: str,
        referral: Mapping[str, Any] | None = None,
        *,
        name: str | None = None,
        phone_number_id: str | None = None,
        user_id: str | None = None,
        username: str | None = None,
    ) -> WebhookBody:
        """A customer's first message after a click-to-WhatsApp ad (the ad's prefilled text).

        ``referral`` defaults to :meth:`whatsapp_referral` with made-up ids.
        """
        return self.whatsapp_text(
            from_,
            text,
            name=name,
            referral=referral if referral is not None else self.whatsapp_referral(),
            phone_number_id=phone_number_id,
            user_id=user_id,
            username=username,
        )

    def whatsapp_button_reply(
        self,
        from_: str,
        button_id: str,
        title: str,
        *,
        context_id: str | None = None,
        name: str | None = None,
        phone_number_id: str | None = None,
        user_id: str | None = None,
        username: str | None = None,
    ) -> WebhookBody:
        """A tap on a reply button of an interactive ``button`` message.

        ``context_id`` is the message that showed the button (default: the fake's last button
        message to ``from_``, else a fresh id).
        """
        return self._whatsapp_message(
            from_,
            "interactive",
            {"type": "button_reply", "button_reply": {"id": button_id, "title": title}},
            name=name,
            username=username,
            user_id=user_id,
            phone_number_id=phone_number_id,
            context_id=context_id or self._replied_message(from_, "button"),
        )

    def whatsapp_list_reply(
        self,
        from_: str,
        row_id: str,
        title: str,
        *,
        description: str | None = None,
        context_id: str | None = None,
        name: str | None = None,
        phone_number_id: str | None = None,
        user_id: str | None = None,
        username: str | None = None,
    ) -> WebhookBody:
        """A row chosen from a ``list`` message (``context_id`` as for button replies)."""
        row: dict[str, Any] = {"id": row_id, "title": title}
        if description is not None:
            row["description"] = description
        return self._whatsapp_message(
            from_,
            "interactive",
            {"type": "list_reply", "list_reply": row},
            name=name,
            username=username,
            user_id=user_id,
            phone_number_id=phone_number_id,
            context_id=context_id or self._replied_message(from_, "list"),
        )

    def whatsapp_template_button(
        self,
        from_: str,
        payload: str,
        text: str,
        *,
        context_id: str | None = None,
        name: str | None = None,
        phone_number_id: str | None = None,
        user_id: str | None = None,
        username: str | None = None,
    ) -> WebhookBody:
        """A tap on a template's quick-reply button: Meta's ``type: "button"`` message.

        ``context_id`` defaults to the fake's last template message to ``from_``.
        """
        return self._whatsapp_message(
            from_,
            "button",
            {"payload": payload, "text": text},
            name=name,
            username=username,
            user_id=user_id,
            phone_number_id=phone_number_id,
            context_id=context_id or self._replied_message(from_, "template"),
        )

    def whatsapp_location(
        self,
        from_: str,
        latitude: float,
        longitude: float,
        *,
        place_name: str | None = None,
        address: str | None = None,
        url: str | None = None,
        name: str | None = None,
        phone_number_id: str | None = None,
        user_id: str | None = None,
        username: str | None = None,
    ) -> WebhookBody:
        """A shared location: a dropped pin, or a place with ``place_name`` and ``address``.

        ``name`` is the customer's profile name, as for every factory; the place's own name is
        ``place_name`` (Meta's ``location.name``).
        """
        location: dict[str, Any] = {"latitude": latitude, "longitude": longitude}
        for key, value in (("name", place_name), ("address", address), ("url", url)):
            if value is not None:
                location[key] = value
        return self._whatsapp_message(
            from_,
            "location",
            location,
            name=name,
            username=username,
            user_id=user_id,
            phone_number_id=phone_number_id,
        )

    def whatsapp_media(
        self,
        from_: str,
        kind: MediaKind,
        content: bytes = b"",
        *,
        mime_type: str | None = None,
        caption: str | None = None,
        filename: str | None = None,
        media_id: str | None = None,
        voice: bool = False,
        name: str | None = None,
        phone_number_id: str | None = None,
        user_id: str | None = None,
        username: str | None = None,
    ) -> WebhookBody:
        """A photo, voice note, video, file or sticker from the customer.

        ``content`` is stored in the fake (unless ``media_id`` names one already there), so the
        bot can download it with ``media.download(event.media.id)`` as from Meta; ``sha256`` is
        the content's, as Meta sends it. ``caption`` goes with images, videos and documents,
        ``filename`` with documents, ``voice=True`` marks an audio as a recorded voice note.
        """
        mime = mime_type or _DEFAULT_MIME_TYPES[kind]
        if media_id is None:
            media_id = self._fake.add_media(content, mime, filename or kind)
        else:
            content = self._fake.media_content(media_id)
        media: dict[str, Any] = {
            "id": media_id,
            "mime_type": mime,
            "sha256": base64.b64encode(hashlib.sha256(content).digest()).decode(),
        }
        if caption is not None:
            if kind not in ("image", "video", "document"):
                raise ValueError(f"a {kind} carries no caption (only image, video and document)")
            media["caption"] = caption
        if filename is not None:
            if kind != "document":
                raise ValueError(f"only a document has a filename, not a {kind}")
            media["filename"] = filename
        if voice:
            if kind != "audio":
                raise ValueError(f"only an audio can be a voice note, not a {kind}")
            media["voice"] = True
        if kind == "sticker":
            media["animated"] = False
        return self._whatsapp_message(
            from_,
            kind,
            media,
            name=name,
            username=username,
            user_id=user_id,
            phone_number_id=phone_number_id,
        )

    def whatsapp_reaction(
        self,
        from_: str,
        message_id: str,
        emoji: str | None,
        *,
        name: str | None = None,
        phone_number_id: str | None = None,
        user_id: str | None = None,
        username: str | None = None,
    ) -> WebhookBody:
        """The customer reacts to ``message_id`` with ``emoji``; ``None`` removes the reaction
        (Meta then sends the reaction without an emoji)."""
        reaction: dict[str, Any] = {"message_id": message_id}
        if emoji is not None:
            reaction["emoji"] = emoji
        return self._whatsapp_message(
            from_,
            "reaction",
            reaction,
            name=name,
            username=username,
            user_id=user_id,
            phone_number_id=phone_number_id,
        )

    def whatsapp_order(
        self,
        from_: str,
        catalog_id: str,
        items: Sequence[OrderLine],
        *,
        text: str = "",
        name: str | None = None,
        phone_number_id: str | None = None,
        user_id: str | None = None,
        username: str | None = None,
    ) -> WebhookBody:
        """A cart sent from the catalog: ``items`` are (product_retailer_id, quantity,
        item_price, currency); quantity stays an integer and the price a number, as Meta sends.
        """
        if not items:
            raise ValueError("an order holds at least one item")
        product_items = [
            {
                "product_retailer_id": product_retailer_id,
                "quantity": int(quantity),
                "item_price": item_price,
                "currency": currency,
            }
            for product_retailer_id, quantity, item_price, currency in items
        ]
        return self._whatsapp_message(
            from_,
            "order",
            {"catalog_id": catalog_id, "text": text, "product_items": product_items},
            name=name,
            username=username,
            user_id=user_id,
            phone_number_id=phone_number_id,
        )

    # -- WhatsApp: statuses --------------------------------------------------------------------

    def whatsapp_status(
        self,
        message_id: str,
        status: StatusName,
        recipient_id: str,
        *,
        errors: Sequence[tuple[int, str]] | None = None,
        callback_data: str | None = None,
        pricing: bool = True,
        category: str = "service",
        free_entry_point: bool = False,
        phone_number_id: str | None = None,
        user_id: str | None = None,
    ) -> WebhookBody:
        """A status of a message the business sent (``message_id``) to ``recipient_id``.

        ``errors`` are (code, title) pairs, e.g. ``[(131047, "Re-engagement message")]``; a
        ``failed`` status without them gets a generic 131000, since Meta always names a reason.
        ``callback_data`` comes back as ``biz_opaque_callback_data``. With ``pricing`` a
        per-message-pricing block is added to ``sent``, ``delivered`` and ``read``:
        ``category`` ``service`` is free customer service, others are ``regular``; with
        ``free_entry_point`` it is free and carries the entry point's ``conversation``, the only
        case where v24+ statuses still have one. ``user_id`` adds ``recipient_user_id`` (and
        ``recipient_id`` may then be ``""``).
        """
        recipient = _phone_digits(recipient_id, "recipient_id")
        if not recipient and not user_id:
            raise ValueError("a status needs a recipient_id or a user_id, or both")
        item: dict[str, Any] = {
            "id": message_id,
            "status": status,
            "timestamp": self._seconds(),
            "recipient_id": recipient,
        }
        if user_id:
            item["recipient_user_id"] = user_id
        if callback_data is not None:
            item["biz_opaque_callback_data"] = callback_data
        if status == "failed":
            item["errors"] = [
                {
                    "code": code,
                    "title": title,
                    "message": title,
                    "error_data": {"details": _ERROR_DETAILS.get(code, title)},
                    "href": _ERROR_CODES_URL,
                }
                for code, title in (errors or [_DEFAULT_FAILURE])
            ]
        elif errors:
            raise ValueError(f"only a failed status carries errors, not a {status!r} one")
        elif pricing and status in _BILLED_STATUSES:
            if free_entry_point:
                expires = self._fake.clock.now() + timedelta(hours=_FREE_ENTRY_POINT_HOURS)
                item["conversation"] = {
                    "id": self._random_hex(16),
                    "expiration_timestamp": str((expires - _EPOCH) // timedelta(seconds=1)),
                    "origin": {"type": "referral_conversion"},
                }
            free = free_entry_point or category == "service"
            if free_entry_point:
                pricing_type = "free_entry_point"
            elif category == "service":
                pricing_type = "free_customer_service"
            else:
                pricing_type = "regular"
            item["pricing"] = {
                "billable": not free,
                "pricing_model": "PMP",
                "type": pricing_type,
                "category": category,
            }
        return self._whatsapp_body({"statuses": [item]}, phone_number_id)

    # -- Messenger -----------------------------------------------------------------------------

    def _messenger_body(
        self, psid: str, event: Mapping[str, Any], page_id: str | None
    ) -> WebhookBody:
        if not psid:
            raise ValueError("a Messenger customer needs a page-scoped id (psid)")
        page = page_id or self._fake.page_id
        stamp = self._milliseconds()
        item = {"sender": {"id": psid}, "recipient": {"id": page}, "timestamp": stamp, **event}
        return {
            "object": _MESSENGER_OBJECT,
            "entry": [{"id": page, "time": stamp, "messaging": [item]}],
        }

    def _messenger_message(
        self, psid: str, message: Mapping[str, Any], page_id: str | None
    ) -> WebhookBody:
        return self._messenger_body(psid, {"message": {"mid": self._mid(), **message}}, page_id)

    def messenger_text(self, psid: str, text: str, *, page_id: str | None = None) -> WebhookBody:
        """A text message from the customer ``psid`` to the Page."""
        return self._messenger_message(psid, {"text": text}, page_id)

    def messenger_quick_reply(
        self, psid: str, payload: str, text: str, *, page_id: str | None = None
    ) -> WebhookBody:
        """A tap on a text quick reply: its title arrives as ``text``, with its ``payload``."""
        return self._messenger_message(
            psid, {"text": text, "quick_reply": {"payload": payload}}, page_id
        )

    def messenger_phone_quick_reply(
        self, psid: str, phone: str, *, page_id: str | None = None
    ) -> WebhookBody:
        """A tap on a ``user_phone_number`` quick reply: the number is text and payload."""
        return self.messenger_quick_reply(psid, phone, phone, page_id=page_id)

    def messenger_email_quick_reply(
        self, psid: str, email: str, *, page_id: str | None = None
    ) -> WebhookBody:
        """A tap on a ``user_email`` quick reply: the address is text and payload."""
        return self.messenger_quick_reply(psid, email, email, page_id=page_id)

    def messenger_referral_info(
        self,
        *,
        source: str = "SHORTLINK",
        ref: str | None = None,
        ad_id: str | None = None,
        ads_context_data: Mapping[str, Any] | None = None,
        page_id: str | None = None,
    ) -> dict[str, Any]:
        """The ``referral`` object of an m.me link (``SHORTLINK``) or an ad (``ADS``).

        For ``ADS``, ``ad_id`` and ``ads_context_data`` (ad title, image, post id) are made up
        from the fake's seeded sequence when left out.
        """
        referral: dict[str, Any] = {}
        if ref is not None:
            referral["ref"] = ref
        if source == "ADS":
            ad = ad_id or "1202" + self._random_digits(14)
            referral["ad_id"] = ad
            referral["source"] = source
            referral["type"] = "OPEN_THREAD"
            referral["ads_context_data"] = (
                dict(ads_context_data)
                if ads_context_data is not None
                else {
                    "ad_title": "Spring sale: 15% off all trekking bikes",
                    "photo_url": (
                        "https://scontent.xx.fbcdn.net/v/t45.1600-4/"
                        f"{self._random_digits(9)}_{ad}_n.jpg"
                    ),
                    "post_id": f"{page_id or self._fake.page_id}_{self._random_digits(15)}",
                }
            )
            return referral
        if ad_id is not None or ads_context_data is not None:
            raise ValueError(f"ad_id and ads_context_data belong to source 'ADS', not {source!r}")
        referral["source"] = source
        referral["type"] = "OPEN_THREAD"
        return referral

    def messenger_postback(
        self,
        psid: str,
        payload: str,
        title: str,
        *,
        referral: Mapping[str, Any] | None = None,
        page_id: str | None = None,
    ) -> WebhookBody:
        """A tap on a postback button, Get Started or a persistent-menu item.

        ``referral`` (see :meth:`messenger_referral_info`) marks the tap that opened a new thread
        from an ad or an m.me link.
        """
        postback: dict[str, Any] = {"mid": self._mid(), "title": title, "payload": payload}
        if referral is not None:
            postback["referral"] = dict(referral)
        return self._messenger_body(psid, {"postback": postback}, page_id)

    def messenger_referral(
        self,
        psid: str,
        *,
        ref: str | None = None,
        ad_id: str | None = None,
        source: str = "SHORTLINK",
        ads_context_data: Mapping[str, Any] | None = None,
        page_id: str | None = None,
    ) -> WebhookBody:
        """A customer with an existing thread came in again through an m.me link or an ad.

        ``ad_id`` implies ``source="ADS"``; see :meth:`messenger_referral_info`.
        """
        if ad_id is not None and source == "SHORTLINK":
            source = "ADS"
        referral = self.messenger_referral_info(
            source=source, ref=ref, ad_id=ad_id, ads_context_data=ads_context_data, page_id=page_id
        )
        return self._messenger_body(psid, {"referral": referral}, page_id)

    def messenger_delivery(
        self,
        psid: str,
        mids: Sequence[str],
        *,
        watermark: int | None = None,
        page_id: str | None = None,
    ) -> WebhookBody:
        """Messages the Page sent (``mids``) were delivered; ``watermark`` defaults to now."""
        delivery = {"mids": list(mids), "watermark": watermark or self._milliseconds()}
        return self._messenger_body(psid, {"delivery": delivery}, page_id)

    def messenger_read(
        self, psid: str, *, watermark: int | None = None, page_id: str | None = None
    ) -> WebhookBody:
        """The customer read everything the Page sent before ``watermark`` (default: now)."""
        read = {"watermark": watermark or self._milliseconds()}
        return self._messenger_body(psid, {"read": read}, page_id)

    # -- both ----------------------------------------------------------------------------------

    def batch(self, *bodies: Mapping[str, Any]) -> WebhookBody:
        """One body holding every entry of ``bodies``, in order, as Meta batches deliveries.

        The bodies must be of one channel (the same ``object``); they are copied, not shared.
        Raises :class:`ValueError` for no bodies, mixed objects, or a body without entries.
        """
        if not bodies:
            raise ValueError("batch() needs at least one body")
        objects = {body.get("object") for body in bodies}
        if len(objects) != 1:
            found = ", ".join(sorted(repr(obj) for obj in objects))
            raise ValueError(f"batch() takes bodies of one object, got {found}")
        entries: list[Any] = []
        for body in bodies:
            body_entries = body.get("entry")
            if not isinstance(body_entries, list):
                raise ValueError("batch() takes webhook bodies, each with an `entry` list")
            entries.extend(copy.deepcopy(body_entries))
        return {"object": bodies[0]["object"], "entry": entries}
