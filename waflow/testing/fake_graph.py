"""FakeGraphAPI: a stateful fake of the Graph API endpoints waflow uses, for your tests and ours.

Plug it into any waflow client through its transport::

    from waflow.testing import FakeGraphAPI

    fake = FakeGraphAPI()
    wa = fake.whatsapp()                      # a WhatsApp client wired to the fake
    wa.send_text("4915112345678", "Hallo!")
    assert fake.sent.last.text == "Hallo!"

It validates request bodies with waflow's own outbound models and answers Meta's code-100 error for
invalid ones, records every accepted message (WhatsApp and Messenger) as a typed
:class:`SentMessage`, hands out seeded ``wamid``\\ s and ``mid``\\ s, and simulates what makes
real life hard: errors by Graph code (:meth:`fail_next`), timeouts, outages (:meth:`outage`) and
throttling (:meth:`limit_throughput`). Routes are matched with respx; anything unmatched gets Meta's
"unsupported request" error and is kept in ``unmatched``, so nothing ever leaks to the network.

Messenger: ``fake.messenger()`` sends to the fake's Page (``POST /{page-id}/messages`` or
``/me/messages``); messages land in ``sent``, sender actions in ``sender_actions``.

Templates: ``fake.templates`` (:class:`~waflow.testing.fake_templates.FakeTemplates`) serves
template management and, once it holds templates, refuses mismatching template sends as Meta does.

Inbound: ``fake.inbound`` builds webhook bodies of both channels from the fake's clock and ids
(see :class:`~waflow.testing.inbound.Inbound`); :meth:`FakeGraphAPI.sign` signs one with the fake's
app secret and :meth:`FakeGraphAPI.webhook_request` wraps it for ``App.dispatch``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import re
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import httpx
import respx

from waflow.app import WebhookRequest
from waflow.clock import Clock, SystemClock
from waflow.conversions import AsyncConversions, ConversionBatch, Conversions
from waflow.errors import MessageValidationError
from waflow.messenger.client import AsyncMessenger, Messenger
from waflow.messenger.messages import MediaAttachment, SenderAction
from waflow.messenger.messages import Message as MessengerMessage
from waflow.messenger.messages import from_body as messenger_from_body
from waflow.testing.fake_catalog import DEFAULT_CATALOG_ID, FakeCatalog
from waflow.testing.fake_templates import FakeTemplates
from waflow.testing.inbound import Inbound, StatusName, WebhookBody
from waflow.webhooks import SIGNATURE_HEADER
from waflow.webhooks import sign as signature_of
from waflow.whatsapp.client import AsyncWhatsApp, WhatsApp
from waflow.whatsapp.messages import Message, ReadReceipt, TemplateMessage, from_body

__all__ = ["FakeGraphAPI", "RecordedRequest", "RecordedSenderAction", "SentLog", "SentMessage"]

DEFAULT_TOKEN = "fake-access-token"  # noqa: S105 - a fake's credential
DEFAULT_APP_SECRET = "fake-app-secret"  # noqa: S105 - a fake's credential
DEFAULT_PHONE_NUMBER_ID = "106540352242922"
DEFAULT_DISPLAY_NUMBER = "15550783881"
DEFAULT_WABA_ID = "102290129340398"
DEFAULT_PAGE_ID = "1122334455667788"
DEFAULT_DATASET_ID = "880123456789012"
MEDIA_HOST = "lookaside.fbsbx.com"
_MEDIA_URL_LIFETIME = 300.0
_VERSION = r"/v\d+\.\d+"
_HANDLER = Callable[..., httpx.Response]

Channel = Literal["whatsapp", "messenger"]

# How far a status takes a sent message (a lower one arriving late changes nothing).
_STATUS_RANK = {"sent": 0, "delivered": 1, "read": 2, "played": 3, "failed": 4}
# Titles of the failures tests meet most, as Meta names them in failed statuses.
_FAILURE_TITLES = {
    131047: "Re-engagement message",
    131026: "Message undeliverable",
    131049: "This message was not delivered to maintain healthy ecosystem engagement.",
    131000: "Something went wrong",
}


@dataclass(frozen=True)
class RecordedRequest:
    """One request the fake received (any route), with its parsed JSON body if it had one."""

    method: str
    path: str
    params: dict[str, str]
    json: Any
    status_code: int
    at: datetime


@dataclass(frozen=True)
class SentMessage:
    """A message the fake accepted: the typed ``message`` model and the raw ``body``.

    ``sender_id`` is the business phone number id (WhatsApp) or the Page id (Messenger, also for
    sends to ``/me/messages``). ``to`` is the wa_id / number, or on Messenger the PSID (or the
    ``user_ref``, ``comment_id`` or ``post_id`` the message went to). ``type`` is the WhatsApp
    message type, or on Messenger :attr:`waflow.messenger.messages.Message.kind`: ``quick_replies``
    for any message carrying quick replies, else ``text``, ``template`` or ``attachment``.
    """

    channel: Channel
    sender_id: str
    to: str
    type: str
    message: Any
    body: dict[str, Any]
    message_id: str
    sent_at: datetime

    @property
    def text(self) -> str | None:
        """The text a customer would read first: a text body, a caption, or an interactive body."""
        body = self.body
        if self.channel == "messenger":
            message = body.get("message") or {}
            return message.get("text") if isinstance(message, dict) else None
        if self.type == "text":
            return str(body["text"]["body"])
        if self.type == "interactive":
            inner = body["interactive"].get("body")
            return str(inner["text"]) if inner else None
        payload = body.get(self.type)
        if isinstance(payload, dict) and isinstance(payload.get("caption"), str):
            return str(payload["caption"])
        return None

    @property
    def interactive_type(self) -> str | None:
        """``button``, ``list``, ``product``, ``product_list``, … for interactive messages."""
        if self.type != "interactive":
            return None
        return str(self.body["interactive"]["type"])


class SentLog(list[SentMessage]):
    """The messages the fake accepted, oldest first, with filters."""

    def to(self, recipient: str) -> SentLog:
        """Only those sent to ``recipient`` (a wa_id, phone number or PSID)."""
        digits = _digits(recipient)
        return SentLog(m for m in self if m.to == recipient or (digits and _digits(m.to) == digits))

    def of_type(self, kind: str) -> SentLog:
        """Only those of a message ``type`` or interactive type (``"text"``, ``"product_list"``)."""
        return SentLog(m for m in self if kind in (m.type, m.interactive_type))

    def on(self, channel: Channel) -> SentLog:
        """Only those sent on ``channel``."""
        return SentLog(m for m in self if m.channel == channel)

    @property
    def last(self) -> SentMessage:
        """The most recent message (``IndexError`` when none was sent)."""
        if not self:
            raise IndexError("no message was sent")
        return self[-1]

    def texts(self) -> list[str | None]:
        """The :attr:`SentMessage.text` of each message, in order."""
        return [m.text for m in self]


@dataclass(frozen=True)
class RecordedSenderAction:
    """A Messenger sender action the fake accepted (they are not messages, so not in ``sent``)."""

    sender_id: str
    to: str
    action: str
    body: dict[str, Any]
    at: datetime


@dataclass
class _Failure:
    code: int | None
    status: int
    message: str
    subcode: int | None
    is_transient: bool | None
    retry_after: float | None
    timeout: bool
    after_send: bool
    match: re.Pattern[str] | None
    body: bytes | None = None


@dataclass
class _Outage:
    until: float | None
    status: int
    body: bytes
    content_type: str


@dataclass
class _Media:
    content: bytes
    mime_type: str
    filename: str
    url_issued_at: float = 0.0


_USER_ID = re.compile(r"[A-Za-z]{2}\.\d")


def _digits(value: str) -> str:
    """The digits of a phone number ("+49.151.1234 5678" too); empty for a business-scoped user
    id ("DE.1349…": a country code, a dot, digits), which names no number."""
    if _USER_ID.match(value):
        return ""
    return "".join(ch for ch in value if ch.isdigit())


def graph_error(
    status: int,
    message: str,
    *,
    code: int,
    subcode: int | None = None,
    error_type: str = "OAuthException",
    is_transient: bool | None = None,
    fbtrace_id: str = "AFakeTraceId00000000000",
    headers: Mapping[str, str] | None = None,
    details: str | None = None,
) -> httpx.Response:
    """A Graph API error response exactly as Meta shapes it."""
    error: dict[str, Any] = {"message": message, "type": error_type, "code": code}
    if subcode is not None:
        error["error_subcode"] = subcode
    if is_transient is not None:
        error["is_transient"] = is_transient
    if details is not None:
        error["error_data"] = {"messaging_product": "whatsapp", "details": details}
    error["fbtrace_id"] = fbtrace_id
    return httpx.Response(status, json={"error": error}, headers=headers)


class FakeGraphAPI:
    """A stateful fake of Meta's Graph API, plugged in as an httpx transport.

    ``access_token`` is the only bearer token it accepts (others get code 190); the Messenger
    clients use it as their Page access token. ``seed`` makes the generated message and media ids
    repeatable. ``clock`` drives outages, throttling and media URL expiry (use
    :class:`~waflow.testing.FrozenClock` for virtual time). ``page_id`` is the Page whose
    ``/{page-id}/messages`` (and ``/me/messages``) it serves; sender actions land in
    ``sender_actions``, not in ``sent``. ``catalog_id`` is the Commerce catalog of ``fake.catalog``
    (a :class:`~waflow.testing.fake_catalog.FakeCatalog`), passed to :meth:`whatsapp` clients.
    """

    def __init__(
        self,
        *,
        access_token: str = DEFAULT_TOKEN,
        app_secret: str = DEFAULT_APP_SECRET,
        phone_number_id: str = DEFAULT_PHONE_NUMBER_ID,
        display_phone_number: str = DEFAULT_DISPLAY_NUMBER,
        waba_id: str = DEFAULT_WABA_ID,
        page_id: str = DEFAULT_PAGE_ID,
        catalog_id: str = DEFAULT_CATALOG_ID,
        base_url: str = "https://graph.facebook.com",
        seed: int = 0,
        clock: Clock | None = None,
    ) -> None:
        self.access_token = access_token
        self.app_secret = app_secret
        self.phone_number_id = phone_number_id
        self.display_phone_number = display_phone_number
        self.phone_number_ids = {phone_number_id}
        self.waba_id = waba_id
        self.page_id = page_id
        self.dataset_id = DEFAULT_DATASET_ID
        self.base_url = base_url.rstrip("/")
        #: Where the download URLs of ``GET /{media-id}`` point: Meta's lookaside host. While
        #: :func:`~waflow.testing.http_fake.serve_fake` serves the fake over HTTP it points at
        #: that server, so a client downloading media reaches the fake, not the internet.
        self.media_base_url = f"https://{MEDIA_HOST}"
        # Requests to any other host are unmatched, whatever their path.
        self._hosts = frozenset({httpx.URL(self.base_url).host, MEDIA_HOST})
        self.seed = seed
        self.clock: Clock = clock or SystemClock()
        self._lock = threading.RLock()
        self.router = respx.Router(assert_all_called=False, assert_all_mocked=False)
        self.catalog_id = catalog_id
        #: The Commerce catalog served at ``/{catalog_id}/products``, ``items_batch``, ….
        self.catalog = FakeCatalog(catalog_id, seed=seed)
        #: Message templates: the management routes and the checks of template sends.
        self.templates = FakeTemplates(self)
        self._install_routes()
        self.transport = httpx.MockTransport(self._handle)
        self.async_transport = httpx.MockTransport(self._ahandle)
        #: Factories of inbound webhook bodies from this fake's clock, ids and accounts.
        self.inbound = Inbound(self)
        self.reset()

    # -- state ---------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget everything sent, recorded, uploaded and scheduled; restart the id sequence."""
        with self._lock:
            self.sent = SentLog()
            self.sender_actions: list[RecordedSenderAction] = []
            #: Conversion events received on ``POST /{dataset_id}/events``, as sent.
            self.conversion_events: list[dict[str, Any]] = []
            self.messenger_profiles: dict[str, dict[str, str]] = {}
            self.requests: list[RecordedRequest] = []
            self.unmatched: list[RecordedRequest] = []
            self._rng = random.Random(self.seed)
            self._failures: deque[_Failure] = deque()
            self._outage: _Outage | None = None
            self._throughput: float | None = None
            self._send_times: dict[str, deque[int]] = {}
            self._media: dict[str, _Media] = {}
            self._enforce_window = False
            self._last_inbound: dict[tuple[str, str], datetime] = {}
            self.window_violations: list[dict[str, Any]] = []
            self._window_on_status = False
            self._pair_rate: tuple[int, float] | None = None
            # (number, customer) -> (sends left, when that was counted), for limit_pair_rate.
            self._pair_buckets: dict[tuple[str, str], tuple[float, float]] = {}
            self._doomed: set[str] = set()  # accepted outside the window: fail on their status
            #: The furthest status each sent message has reached in a status progression.
            self._progress: dict[str, StatusName] = {}
            self.catalog.reset()
            self.templates.reset()

    def enforce_window(self, enabled: bool = True, *, on_status: bool = False) -> None:
        """Refuse free-form WhatsApp messages outside the 24-hour service window with 131047.

        The window opens when :attr:`inbound` builds a message from the customer (or
        :meth:`customer_wrote` is called) and lasts 24 hours of the fake's clock. Such sends are
        kept in ``window_violations``: a bot that checks windows itself never has any.

        By default the send request is answered with the error. With ``on_status=True`` it is
        accepted, as Meta usually does, and the error comes on the message's status instead:
        :meth:`deliver` (and :meth:`deliver_all`) give its ``failed`` status with 131047.
        """
        with self._lock:
            self._enforce_window = enabled
            self._window_on_status = on_status

    def customer_wrote(self, phone_number_id: str, customer: str) -> None:
        """Record that ``customer`` wrote to ``phone_number_id`` now (opens the window)."""
        with self._lock:
            self._last_inbound[(phone_number_id, _digits(customer) or customer)] = self.clock.now()

    def add_phone_number(self, phone_number_id: str) -> None:
        """Accept sends from another business number too."""
        self.phone_number_ids.add(phone_number_id)

    # -- plugging in ---------------------------------------------------------------------------

    def client(self, **kwargs: Any) -> httpx.Client:
        """An ``httpx.Client`` whose requests go to this fake."""
        return httpx.Client(transport=self.transport, **kwargs)

    def async_client(self, **kwargs: Any) -> httpx.AsyncClient:
        """An ``httpx.AsyncClient`` whose requests go to this fake."""
        return httpx.AsyncClient(transport=self.async_transport, **kwargs)

    def whatsapp(self, **overrides: Any) -> WhatsApp:
        """A :class:`~waflow.WhatsApp` client wired to this fake (same clock, pacing off)."""
        options: dict[str, Any] = {
            "access_token": self.access_token,
            "phone_number_id": self.phone_number_id,
            "waba_id": self.waba_id,
            "catalog_id": self.catalog_id,
            "base_url": self.base_url,
            "http_client": self.client(),
            "clock": self.clock,
            "throughput": None,
        }
        return WhatsApp(**{**options, **overrides})

    def async_whatsapp(self, **overrides: Any) -> AsyncWhatsApp:
        """An :class:`~waflow.AsyncWhatsApp` client wired to this fake (same clock, pacing off)."""
        options: dict[str, Any] = {
            "access_token": self.access_token,
            "phone_number_id": self.phone_number_id,
            "waba_id": self.waba_id,
            "catalog_id": self.catalog_id,
            "base_url": self.base_url,
            "http_client": self.async_client(),
            "clock": self.clock,
            "throughput": None,
        }
        return AsyncWhatsApp(**{**options, **overrides})

    def messenger(self, **overrides: Any) -> Messenger:
        """A :class:`~waflow.Messenger` client of the fake's Page, wired to this fake."""
        options: dict[str, Any] = {
            "access_token": self.access_token,
            "page_id": self.page_id,
            "base_url": self.base_url,
            "http_client": self.client(),
            "clock": self.clock,
        }
        return Messenger(**{**options, **overrides})

    def async_messenger(self, **overrides: Any) -> AsyncMessenger:
        """An :class:`~waflow.AsyncMessenger` client of the fake's Page, wired to this fake."""
        options: dict[str, Any] = {
            "access_token": self.access_token,
            "page_id": self.page_id,
            "base_url": self.base_url,
            "http_client": self.async_client(),
            "clock": self.clock,
        }
        return AsyncMessenger(**{**options, **overrides})

    def conversions(self, **overrides: Any) -> Conversions:
        """A :class:`~waflow.conversions.Conversions` client of the fake's dataset."""
        options: dict[str, Any] = {
            "access_token": self.access_token,
            "dataset_id": self.dataset_id,
            "base_url": self.base_url,
            "http_client": self.client(),
            "clock": self.clock,
        }
        return Conversions(**{**options, **overrides})

    def async_conversions(self, **overrides: Any) -> AsyncConversions:
        """An :class:`~waflow.conversions.AsyncConversions` client of the fake's dataset."""
        options: dict[str, Any] = {
            "access_token": self.access_token,
            "dataset_id": self.dataset_id,
            "base_url": self.base_url,
            "http_client": self.async_client(),
            "clock": self.clock,
        }
        return AsyncConversions(**{**options, **overrides})

    # -- trouble -------------------------------------------------------------------------------

    def fail_next(
        self,
        code: int | None = None,
        *,
        times: int = 1,
        status: int | None = None,
        message: str | None = None,
        subcode: int | None = None,
        is_transient: bool | None = None,
        retry_after: float | None = None,
        body: bytes | None = None,
        path: str | None = None,
    ) -> None:
        """Answer the next ``times`` requests (whose path matches regex ``path``) with an error.

        ``code`` is the Graph error code (status 400 unless given, as Meta answers most codes,
        throttling included; 401 for 190, an invalid token; 500 for 1, 2 and 131000). ``body`` replaces the JSON error with raw bytes (an HTML 502 page,
        an empty 503). ``retry_after`` adds a ``Retry-After`` header.
        """
        if code is None and status is None:
            raise ValueError("fail_next needs a Graph code or an HTTP status")
        failure = _Failure(
            code=code,
            status=status or (500 if code in (1, 2, 131000) else 401 if code == 190 else 400),
            message=message or (f"(#{code}) Simulated failure" if code else "Simulated failure"),
            subcode=subcode,
            is_transient=is_transient,
            retry_after=retry_after,
            timeout=False,
            after_send=False,
            match=re.compile(path) if path else None,
            body=body,
        )
        with self._lock:
            self._failures.extend([failure] * times)

    def timeout_next(
        self, *, times: int = 1, after_send: bool = False, path: str | None = None
    ) -> None:
        """Make the next ``times`` requests time out.

        With ``after_send=True`` a message is recorded as sent before the timeout, the case that
        makes at-least-once delivery necessary.
        """
        failure = _Failure(
            code=None,
            status=0,
            message="timeout",
            subcode=None,
            is_transient=None,
            retry_after=None,
            timeout=True,
            after_send=after_send,
            match=re.compile(path) if path else None,
        )
        with self._lock:
            self._failures.extend([failure] * times)

    def outage(
        self,
        seconds: float | None = None,
        *,
        status: int = 503,
        body: bytes = b"",
        content_type: str = "text/html",
    ) -> _OutageHandle:
        """Answer every request with ``status`` (default an empty 503) for ``seconds`` of clock time.

        Without ``seconds`` the outage lasts until :meth:`recover` or the end of a ``with`` block.
        """
        with self._lock:
            until = None if seconds is None else self.clock.monotonic() + seconds
            self._outage = _Outage(until, status, body, content_type)
        return _OutageHandle(self)

    def recover(self) -> None:
        """End an outage now."""
        with self._lock:
            self._outage = None

    def limit_throughput(self, per_second: float | None) -> None:
        """Answer 130429 to sends beyond ``per_second`` from one number in any second (None: off)."""
        with self._lock:
            self._throughput = per_second

    def limit_pair_rate(self, burst: int | None = 45, every: float = 6.0) -> None:
        """Answer 131056 to WhatsApp sends beyond Meta's pair rate to one customer (None: off).

        One message per ``every`` seconds of the fake's clock from a number to the same
        customer, with bursts of up to ``burst`` borrowed from later (a bucket of ``burst``
        sends that refills one every ``every`` seconds).
        """
        if burst is not None and (burst < 1 or every <= 0):
            raise ValueError("limit_pair_rate needs burst >= 1 and every > 0")
        with self._lock:
            self._pair_rate = None if burst is None else (burst, every)
            self._pair_buckets.clear()

    # -- inbound webhooks ----------------------------------------------------------------------

    def sign(self, body: Mapping[str, Any] | bytes) -> tuple[bytes, dict[str, str]]:
        """The exact bytes Meta would POST for ``body`` and their headers, signed with the app
        secret: ``X-Hub-Signature-256`` and ``Content-Type``.

        A dict is serialized once (UTF-8, non-ASCII kept as is); bytes are signed as given, so a
        test can alter them afterwards to check that the signature no longer matches.
        """
        raw = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
        headers = {
            SIGNATURE_HEADER: signature_of(raw, self.app_secret),
            "Content-Type": "application/json",
        }
        return raw, headers

    def webhook_request(
        self, body: Mapping[str, Any] | bytes, *, path: str = "/webhook"
    ) -> WebhookRequest:
        """A signed webhook POST of ``body``, ready for :meth:`waflow.App.dispatch`."""
        raw, headers = self.sign(body)
        return WebhookRequest(method="POST", body=raw, headers=headers, path=path)

    # -- status progressions -------------------------------------------------------------------

    def status(
        self,
        message: SentMessage | str,
        status: StatusName,
        *,
        errors: Sequence[tuple[int, str]] | None = None,
    ) -> WebhookBody:
        """The status webhook Meta would POST about a message the fake accepted.

        ``message`` is a :class:`SentMessage` or its id. WhatsApp: a ``statuses`` body (via
        :meth:`Inbound.whatsapp_status <waflow.testing.inbound.Inbound.whatsapp_status>`) to the
        message's recipient, from the number that sent it, carrying its
        ``biz_opaque_callback_data`` and the pricing category Meta would bill (``service`` for
        free-form messages, the registered template's category, else ``utility``). Messenger: a
        ``delivery`` (``delivered``) or ``read`` (``read``) event of the customer's thread; Meta
        reports nothing else there. The fake remembers how far each message got (see
        :meth:`undelivered`). Raises :class:`ValueError` for a message the fake never sent or a
        status its channel does not have. Dispatch the body with
        ``await app.dispatch(fake.webhook_request(body))``.
        """
        sent = self._sent_message(message)
        if sent.channel == "messenger":
            body = self._messenger_status(sent, status)
        else:
            recipient = _digits(sent.to)
            body = self.inbound.whatsapp_status(
                sent.message_id,
                status,
                recipient,
                errors=errors,
                callback_data=sent.body.get("biz_opaque_callback_data"),
                category=self._pricing_category(sent),
                phone_number_id=sent.sender_id,
                # A message sent to a business-scoped user id has no number to report.
                user_id=None if recipient else sent.to,
            )
        with self._lock:
            self._advance(sent, status)
        return body

    def deliver(self, message: SentMessage | str) -> WebhookBody:
        """The ``delivered`` status of ``message`` (see :meth:`status`); its ``failed`` status
        (131047) instead for a message sent outside the window under
        ``enforce_window(on_status=True)``."""
        sent = self._sent_message(message)
        if sent.message_id in self._doomed:
            return self.fail(sent)
        return self.status(sent, "delivered")

    def read(self, message: SentMessage | str) -> WebhookBody:
        """The ``read`` status of ``message`` (see :meth:`status`)."""
        return self.status(message, "read")

    def fail(
        self, message: SentMessage | str, *, code: int = 131047, title: str | None = None
    ) -> WebhookBody:
        """A ``failed`` status of a WhatsApp ``message`` with Graph error ``code`` (default
        131047, the 24-hour window) and ``title`` (see :meth:`status`)."""
        return self.status(
            message, "failed", errors=[(code, title or _FAILURE_TITLES.get(code, f"Error {code}"))]
        )

    def undelivered(self, to: str | None = None) -> SentLog:
        """The sent messages (to ``to``, if given) that no status has reported delivered, read
        or failed yet, oldest first."""
        sent = self.sent.to(to) if to is not None else self.sent
        return SentLog(m for m in sent if self._progress.get(m.message_id, "sent") == "sent")

    def deliver_all(self, to: str | None = None) -> list[WebhookBody]:
        """The ``delivered`` statuses of every :meth:`undelivered` message (to ``to``), in order:
        one body per WhatsApp message and, as Meta batches them, one per run of Messenger
        messages to the same customer."""
        bodies: list[WebhookBody] = []
        pending = self.undelivered(to)
        index = 0
        while index < len(pending):
            sent = pending[index]
            if sent.channel == "whatsapp":
                bodies.append(self.deliver(sent))
                index += 1
                continue
            run = [sent]
            while (
                index + len(run) < len(pending)
                and pending[index + len(run)].channel == "messenger"
                and pending[index + len(run)].to == sent.to
            ):
                run.append(pending[index + len(run)])
            bodies.append(
                self.inbound.messenger_delivery(self._psid_of(sent), [m.message_id for m in run])
            )
            with self._lock:
                for item in run:
                    self._advance(item, "delivered")
            index += len(run)
        return bodies

    def read_all(self, to: str | None = None) -> list[WebhookBody]:
        """Every status that brings the sent messages (to ``to``) to ``read``, in order: the
        ``delivered`` ones still missing (:meth:`deliver_all`), then a ``read`` per WhatsApp
        message and one ``read`` per Messenger customer (its watermark covers all before it)."""
        bodies = self.deliver_all(to)
        sent = self.sent.to(to) if to is not None else self.sent
        unread = [m for m in sent if self._progress.get(m.message_id) == "delivered"]
        readers: dict[str, SentMessage] = {}
        for message in unread:
            if message.channel == "whatsapp":
                bodies.append(self.read(message))
            else:
                readers[message.to] = message  # the newest one per customer
        for message in readers.values():
            bodies.append(self.read(message))
        return bodies

    def _sent_message(self, message: SentMessage | str) -> SentMessage:
        if isinstance(message, SentMessage):
            return message
        for sent in reversed(self.sent):
            if sent.message_id == message:
                return sent
        raise ValueError(f"the fake sent no message with id {message!r}")

    def _messenger_status(self, sent: SentMessage, status: StatusName) -> WebhookBody:
        psid = self._psid_of(sent)
        if status == "delivered":
            return self.inbound.messenger_delivery(psid, [sent.message_id])
        if status == "read":
            # A read watermark covers everything sent before it; the fake marks them read too.
            with self._lock:
                for earlier in self.sent.on("messenger").to(sent.to):
                    if earlier.sent_at <= sent.sent_at:
                        self._advance(earlier, "read")
            return self.inbound.messenger_read(psid)
        raise ValueError(
            f"Messenger reports only 'delivered' and 'read', not {status!r}: a failed Messenger "
            "send is refused by the Send API itself (use fake.fail_next)"
        )

    @staticmethod
    def _psid_of(sent: SentMessage) -> str:
        recipient = sent.message.recipient
        if recipient.id is None:
            raise ValueError(
                "Meta reports deliveries only for messages sent to a PSID, not to a user_ref, "
                "comment or post"
            )
        return str(recipient.id)

    def _pricing_category(self, sent: SentMessage) -> str:
        if sent.type != "template":
            return "service"
        template = sent.body.get("template") or {}
        language = (template.get("language") or {}).get("code", "")
        registered = self.templates.get(str(template.get("name", "")), str(language))
        category = registered.category if registered is not None else None
        # Without a registered template the fake cannot know; utility is the common case.
        return category.lower() if category else "utility"

    def _advance(self, sent: SentMessage, status: StatusName) -> None:
        current = self._progress.get(sent.message_id, "sent")
        if current == "failed":
            return
        if status == "failed" or _STATUS_RANK[status] > _STATUS_RANK[current]:
            self._progress[sent.message_id] = status

    # -- media ---------------------------------------------------------------------------------

    def add_media(self, content: bytes, mime_type: str, filename: str = "file") -> str:
        """Store a file as if a customer had sent it; return its media id."""
        with self._lock:
            media_id = str(self._rng.randrange(10**15, 10**16))
            self._media[media_id] = _Media(content, mime_type, filename)
            return media_id

    def media_content(self, media_id: str) -> bytes:
        """The bytes stored under ``media_id`` (an upload or :meth:`add_media`)."""
        return self._media[media_id].content

    # -- ids -----------------------------------------------------------------------------------

    def new_wamid(self) -> str:
        """A WhatsApp message id in Meta's format, from the seeded sequence."""
        raw = b"\x15\x02\x00\x11\x18\x12" + self._rng.randbytes(12).hex().upper().encode()
        return "wamid.HBgL" + base64.b64encode(raw).decode()

    def new_mid(self) -> str:
        """A Messenger message id in Meta's format, from the seeded sequence."""
        return "m_" + base64.urlsafe_b64encode(self._rng.randbytes(30)).decode().rstrip("=")

    # -- transport -----------------------------------------------------------------------------

    def _handle(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            return self._dispatch(request)

    async def _ahandle(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        return self._handle(request)

    def _dispatch(self, request: httpx.Request) -> httpx.Response:
        now = self.clock.monotonic()
        if (
            self._outage is not None
            and self._outage.until is not None
            and now >= self._outage.until
        ):
            self._outage = None
        if self._outage is not None:
            outage = self._outage
            response = httpx.Response(
                outage.status, content=outage.body, headers={"content-type": outage.content_type}
            )
            return self._record(request, response)
        failure = self._take_failure(request)
        if failure is not None and failure.timeout and not failure.after_send:
            self._record(request, httpx.Response(0))
            raise httpx.ReadTimeout("simulated timeout", request=request)
        if failure is not None and not failure.timeout:
            return self._record(request, self._failure_response(failure))
        if request.url.host not in self._hosts:
            # Not Meta at all (a typo in base_url, a local URL): never a silent success.
            return self._unmatched(request)
        if request.url.host != MEDIA_HOST and not self._authorized(request):
            response = graph_error(
                401, "Invalid OAuth access token - Cannot parse access token", code=190
            )
            return self._record(request, response)
        response = self.router.handler(request)
        if failure is not None and failure.after_send:
            self._record(request, response)
            raise httpx.ReadTimeout(
                "simulated timeout after the request was handled", request=request
            )
        return self._record(request, response)

    def _take_failure(self, request: httpx.Request) -> _Failure | None:
        for index, failure in enumerate(self._failures):
            if failure.match is None or failure.match.search(request.url.path):
                del self._failures[index]
                return failure
        return None

    @staticmethod
    def _failure_response(failure: _Failure) -> httpx.Response:
        headers = {}
        if failure.retry_after is not None:
            headers["Retry-After"] = f"{failure.retry_after:g}"
        if failure.body is not None or failure.code is None:
            headers["content-type"] = "text/html"
            return httpx.Response(failure.status, content=failure.body or b"", headers=headers)
        return graph_error(
            failure.status,
            failure.message,
            code=failure.code,
            subcode=failure.subcode,
            is_transient=failure.is_transient,
            headers=headers,
        )

    def _authorized(self, request: httpx.Request) -> bool:
        header = request.headers.get("authorization", "")
        bearer = header[7:] if header.lower().startswith("bearer ") else None
        token = bearer or request.url.params.get("access_token")
        return bool(token == self.access_token)

    def _record(self, request: httpx.Request, response: httpx.Response) -> httpx.Response:
        try:
            body = json.loads(request.content) if request.content else None
        except ValueError:
            body = None
        record = RecordedRequest(
            method=request.method,
            path=request.url.path,
            params=dict(request.url.params),
            json=body,
            status_code=response.status_code,
            at=self.clock.now(),
        )
        self.requests.append(record)
        return response

    # -- routes --------------------------------------------------------------------------------

    def _install_routes(self) -> None:
        route = self.router.route
        # One route for both channels: the node decides (a business number, or the Page / "me").
        route(method="POST", path__regex=rf"^{_VERSION}/(?P<node>\d+|me)/messages$").mock(
            side_effect=self._post_message
        )
        route(method="POST", path__regex=rf"^{_VERSION}/(?P<node>\d+)/media$").mock(
            side_effect=self._upload_media
        )
        route(method="POST", path__regex=rf"^{_VERSION}/(?P<dataset>\d+)/events$").mock(
            side_effect=self._post_conversions
        )
        # Before the media routes: a GET /{id} of a product id is the catalog's (others fall through).
        self.catalog.install_routes(route)
        self.templates.install_routes(route)  # template ids fall through like product ids
        route(method="GET", path__regex=rf"^{_VERSION}/(?P<psid>\d+)$").mock(
            side_effect=self._get_profile  # known customers only; other ids fall through
        )
        route(host=MEDIA_HOST, method="GET").mock(side_effect=self._download_media)
        route(method="GET", path__regex=rf"^{_VERSION}/(?P<media_id>\d+)$").mock(
            side_effect=self._get_media
        )
        route(method="DELETE", path__regex=rf"^{_VERSION}/(?P<media_id>\d+)$").mock(
            side_effect=self._delete_media
        )
        self.router.route().mock(side_effect=self._unmatched)

    def add_messenger_profile(
        self, psid: str, first_name: str, last_name: str | None = None, **fields: str
    ) -> None:
        """Give the User Profile API something to say about a Messenger customer."""
        with self._lock:
            profile = {"first_name": first_name, **fields}
            if last_name is not None:
                profile["last_name"] = last_name
            self.messenger_profiles[psid] = profile

    def _get_profile(self, request: httpx.Request, psid: str) -> httpx.Response | None:
        profile = self.messenger_profiles.get(psid)
        if profile is None:
            return None
        wanted = request.url.params.get("fields", "first_name,last_name,profile_pic").split(",")
        return httpx.Response(
            200, json={"id": psid, **{k: v for k, v in profile.items() if k in wanted}}
        )

    def _post_conversions(self, request: httpx.Request, dataset: str) -> httpx.Response:
        if dataset != self.dataset_id:
            return self._unmatched(request)
        try:
            batch = ConversionBatch.model_validate(json.loads(request.content))
        except (ValueError, MessageValidationError) as exc:
            return graph_error(400, f"(#100) Invalid parameter: {exc}", code=100)
        self.conversion_events.extend(event.dump() for event in batch.data)
        return httpx.Response(
            200,
            json={"events_received": len(batch.data), "messages": [], "fbtrace_id": "AFakeTrace"},
        )

    def _unmatched(self, request: httpx.Request) -> httpx.Response:
        self.unmatched.append(
            RecordedRequest(
                request.method,
                request.url.path,
                dict(request.url.params),
                None,
                400,
                self.clock.now(),
            )
        )
        return graph_error(
            400,
            f"Unsupported {request.method.lower()} request. Object with ID does not exist, "
            "cannot be loaded due to missing permissions, or does not support this operation",
            code=100,
            subcode=33,
            error_type="GraphMethodException",
        )

    def _post_message(self, request: httpx.Request, node: str) -> httpx.Response:
        if node in self.phone_number_ids:
            return self._post_whatsapp_message(request, node)
        if node in (self.page_id, "me"):
            return self._post_messenger_message(request)
        return self._unmatched(request)

    def _post_whatsapp_message(self, request: httpx.Request, node: str) -> httpx.Response:
        try:
            body = json.loads(request.content)
        except ValueError:
            return graph_error(400, "(#100) Invalid JSON in request body", code=100)
        if not isinstance(body, dict) or body.get("messaging_product") != "whatsapp":
            # Required by Meta on every send (waflow's models always write it; raw JSON may not).
            return graph_error(400, "(#100) The parameter messaging_product is required.", code=100)
        try:
            message = from_body(body)
        except MessageValidationError as exc:
            return graph_error(400, f"(#100) Invalid parameter: {exc}", code=100)
        if isinstance(message, ReadReceipt):
            return httpx.Response(200, json={"success": True})
        assert isinstance(message, Message)
        doomed = self._outside_window(node, message, body)
        if doomed and not self._window_on_status:
            return graph_error(
                400,
                "(#131047) Re-engagement message: more than 24 hours have passed since the "
                "recipient last replied",
                code=131047,
                details="Message failed to send because more than 24 hours have passed since the "
                "customer last replied to this number.",
            )
        if isinstance(message, TemplateMessage):
            refusal = self.templates.check_send(message)
            if refusal is not None:
                return refusal
        if self._throttled(node):
            return graph_error(
                400,
                "(#130429) Rate limit hit: Cloud API message throughput has been reached.",
                code=130429,
            )
        if self._over_pair_rate(node, message.to):
            return graph_error(
                400,
                "(#131056) (Business Account, Consumer Account) pair rate limit hit",
                code=131056,
            )
        response = self._accept(node, message, body)
        if doomed:  # accepted, to fail on its status (enforce_window(on_status=True))
            self._doomed.add(self.sent[-1].message_id)
        return response

    def _post_messenger_message(self, request: httpx.Request) -> httpx.Response:
        try:
            body = json.loads(request.content)
        except ValueError:
            return graph_error(400, "(#100) Invalid JSON in request body", code=100)
        try:
            message = messenger_from_body(body)
        except MessageValidationError as exc:
            return graph_error(400, f"(#100) Invalid parameter: {exc}", code=100)
        if isinstance(message, SenderAction):
            self.sender_actions.append(
                RecordedSenderAction(
                    sender_id=self.page_id,
                    to=message.to,
                    action=message.sender_action,
                    body=body,
                    at=self.clock.now(),
                )
            )
            return httpx.Response(200, json={"recipient_id": message.to})
        assert isinstance(message, MessengerMessage)
        message_id = self.new_mid()
        self.sent.append(
            SentMessage(
                channel="messenger",
                sender_id=self.page_id,
                to=message.to,
                type=message.kind,
                message=message,
                body=body,
                message_id=message_id,
                sent_at=self.clock.now(),
            )
        )
        # Meta leaves recipient_id out for user_ref recipients; the fake cannot resolve the PSID
        # behind a comment or post either, so it answers recipient_id only for PSIDs.
        answer: dict[str, Any] = {"message_id": message_id}
        if message.recipient.id is not None:
            answer = {"recipient_id": message.recipient.id, **answer}
        attachment = message.message.attachment
        if isinstance(attachment, MediaAttachment) and attachment.payload.is_reusable:
            answer["attachment_id"] = str(self._rng.randrange(10**15, 10**16))
        return httpx.Response(200, json=answer)

    def _outside_window(self, sender: str, message: Message, body: dict[str, Any]) -> bool:
        if not self._enforce_window or message.type == "template":
            return False
        last = self._last_inbound.get((sender, _digits(message.to) or message.to))
        if last is not None and self.clock.now() < last + timedelta(hours=24):
            return False
        self.window_violations.append(body)
        return True

    def _over_pair_rate(self, sender: str, to: str) -> bool:
        if self._pair_rate is None:
            return False
        burst, every = self._pair_rate
        key = (sender, _digits(to) or to)
        now = self.clock.monotonic()
        left, counted = self._pair_buckets.get(key, (float(burst), now))
        left = min(float(burst), left + (now - counted) / every)
        if left < 1.0:
            self._pair_buckets[key] = (left, now)
            return True
        self._pair_buckets[key] = (left - 1.0, now)
        return False

    def _throttled(self, sender: str) -> bool:
        if self._throughput is None:
            return False
        # Whole nanoseconds: float seconds would refuse the 81st send of an exact 80/s pace.
        now = round(self.clock.monotonic() * 1_000_000_000)
        window = self._send_times.setdefault(sender, deque())
        while window and window[0] <= now - 1_000_000_000:
            window.popleft()
        if len(window) >= self._throughput:
            return True
        window.append(now)
        return False

    def _accept(self, sender: str, message: Message, body: dict[str, Any]) -> httpx.Response:
        message_id = self.new_wamid()
        self.sent.append(
            SentMessage(
                channel="whatsapp",
                sender_id=sender,
                to=message.to,
                type=message.type,
                message=message,
                body=body,
                message_id=message_id,
                sent_at=self.clock.now(),
            )
        )
        answer: dict[str, Any] = {"id": message_id}
        if message.type == "template":
            answer["message_status"] = "accepted"
        # A phone number comes back as the customer's wa_id; a business-scoped user id names no
        # number, so none is made up for it.
        digits = _digits(message.to)
        contact = {"input": message.to, "wa_id": digits} if digits else {"input": message.to}
        return httpx.Response(
            200,
            json={
                "messaging_product": "whatsapp",
                "contacts": [contact],
                "messages": [answer],
            },
        )

    def _upload_media(self, request: httpx.Request, node: str) -> httpx.Response:
        if node not in self.phone_number_ids:
            return self._unmatched(request)
        content_type = request.headers.get("content-type", "")
        if "multipart/form-data" not in content_type:
            return graph_error(400, "(#100) Upload must be multipart/form-data", code=100)
        fields = _parse_multipart(request.content, content_type)
        if fields.get("messaging_product", (None, b""))[1] != b"whatsapp":
            return graph_error(400, "(#100) The parameter messaging_product is required.", code=100)
        if "file" not in fields:
            return graph_error(400, "(#100) The parameter file is required.", code=100)
        filename, content = fields["file"]
        mime = fields.get("type", (None, b"application/octet-stream"))[1].decode()
        media_id = str(self._rng.randrange(10**15, 10**16))
        self._media[media_id] = _Media(content, mime, filename or "file")
        return httpx.Response(200, json={"id": media_id})

    def _get_media(self, request: httpx.Request, media_id: str) -> httpx.Response:
        media = self._media.get(media_id)
        if media is None:
            return self._unmatched(request)
        media.url_issued_at = self.clock.monotonic()
        url = (
            f"{self.media_base_url}/whatsapp_business/attachments/"
            f"?mid={media_id}&ext={media.url_issued_at:.6f}&hash=ATfake"
        )
        return httpx.Response(
            200,
            json={
                "messaging_product": "whatsapp",
                "url": url,
                "mime_type": media.mime_type,
                "sha256": hashlib.sha256(media.content).hexdigest(),
                "file_size": str(len(media.content)),
                "id": media_id,
            },
        )

    def _download_media(self, request: httpx.Request) -> httpx.Response:
        if not self._authorized(request):
            return httpx.Response(401, content=b"")
        media = self._media.get(request.url.params.get("mid", ""))
        if media is None:
            return httpx.Response(404, content=b"")
        # Each URL expires on its own: a newer lookup does not revive an older URL.
        try:
            issued = float(request.url.params.get("ext", ""))
        except ValueError:
            issued = float("-inf")
        if not self.clock.monotonic() - issued <= _MEDIA_URL_LIFETIME:
            return httpx.Response(404, content=b"URL signature expired")
        return httpx.Response(200, content=media.content, headers={"content-type": media.mime_type})

    def _delete_media(self, request: httpx.Request, media_id: str) -> httpx.Response:
        if self._media.pop(media_id, None) is None:
            return self._unmatched(request)
        return httpx.Response(200, json={"success": True})


class _OutageHandle:
    """Returned by :meth:`FakeGraphAPI.outage`; ends the outage at the end of a ``with`` block."""

    def __init__(self, fake: FakeGraphAPI) -> None:
        self._fake = fake

    def __enter__(self) -> _OutageHandle:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._fake.recover()


def _parse_multipart(content: bytes, content_type: str) -> dict[str, tuple[str | None, bytes]]:
    """Fields of a multipart body: name -> (filename, bytes)."""
    match = re.search(r"boundary=([^;]+)", content_type)
    if not match:
        return {}
    boundary = b"--" + match.group(1).strip('"').encode()
    fields: dict[str, tuple[str | None, bytes]] = {}
    for part in content.split(boundary):
        head, sep, data = part.partition(b"\r\n\r\n")
        if not sep:
            continue
        headers = head.decode("utf-8", "replace")
        name = re.search(r'name="([^"]*)"', headers)
        if not name:
            continue
        filename = re.search(r'filename="([^"]*)"', headers)
        # Each part's data ends with the CRLF that precedes the next boundary; nothing else.
        data = data[:-2] if data.endswith(b"\r\n") else data
        fields[name.group(1)] = (filename.group(1) if filename else None, data)
    return fields
