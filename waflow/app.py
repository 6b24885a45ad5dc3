"""The webhook app: a function from request to response, with no web framework in it.

``App.dispatch(WebhookRequest) -> WebhookResponse`` answers Meta's subscription handshake (GET) and
webhook deliveries (POST) of both channels on one endpoint: it checks the body size and the
signature, parses every event, records them durably in the inbox, answers 200 — only after that —
and hands the events to the router, in order per customer, retrying failed handlers with backoff.

The app is an ASGI application (``uvicorn module:app``; ``app.asgi`` is the same as a plain
function); the documented adapters
for FastAPI/Starlette and Flask are a few lines each (see docs/webhooks.md).

Answers: 200 for well-formed webhooks (unknown kinds included), 400 for malformed JSON or a body
that is not a webhook, 401 for a missing signature, 403 for a wrong one or a wrong verify token,
413 for a body over ``max_body_bytes``, 503 when the store cannot record the events (Meta retries).
Every refusal carries its reason in the body and in the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import threading
from collections.abc import Awaitable, Callable, Coroutine, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar
from urllib.parse import parse_qsl

from pydantic import SecretStr

from waflow.clock import Clock, SystemClock
from waflow.config import Settings
from waflow.errors import ConfigError, WebhookPayloadError, WebhookVerificationError
from waflow.events import Event
from waflow.filters import Filter
from waflow.flows.engine import Engine
from waflow.inbox import DEFAULT_RETRY_DELAYS, DeadLetter, Inbox, Receipt, customer_key, mask
from waflow.outbox import Outbox, clients_by_business
from waflow.routing import H, HandlerContext, Middleware, Outgoing, Router
from waflow.store import Store, open_store
from waflow.store.base import Commit, StatusUpdate
from waflow.webhooks import parse, verify_signature, verify_subscription
from waflow.whatsapp.events import (
    TemplateCategoryUpdate,
    TemplateQualityUpdate,
    TemplateStatusUpdate,
    WhatsAppStatus,
)

__all__ = ["DEFAULT_MAX_BODY_BYTES", "App", "WebhookRequest", "WebhookResponse"]

logger = logging.getLogger("waflow.app")
_T = TypeVar("_T")

#: How long handled events are remembered for deduplication (Meta retries for up to 7 days).
DEDUPE_RETENTION = timedelta(days=8)
#: How long sent messages and their delivery records are kept. Meta holds a message for an offline
#: customer for up to 30 days (its default time-to-live) and retries a status webhook for up to 7
#: more, so a message's last status can come 37 days after it was sent.
DELIVERY_RETENTION = timedelta(days=40)
#: How long parked messages are kept, for someone to look at them or put them back in line.
PARKED_RETENTION = timedelta(days=90)
#: Bodies above this size are refused with 413 (Meta's webhooks are a few KiB).
DEFAULT_MAX_BODY_BYTES = 1024 * 1024

ASGIScope = MutableMapping[str, Any]
ASGIReceive = Callable[[], Awaitable[MutableMapping[str, Any]]]
ASGISend = Callable[[MutableMapping[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class WebhookRequest:
    """An HTTP request as the app needs it; build one from any framework's request object."""

    method: str
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)
    path: str = "/webhook"

    def header(self, name: str) -> str | None:
        """A header by case-insensitive name."""
        wanted = name.lower()
        for key, value in self.headers.items():
            if key.lower() == wanted:
                return value
        return None


@dataclass(frozen=True)
class WebhookResponse:
    """What to answer: status, body and headers."""

    status: int
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def text(self) -> str:
        """The body as text."""
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)

    @classmethod
    def of_json(cls, status: int, data: Mapping[str, Any]) -> WebhookResponse:
        """A JSON response."""
        return cls(status, json.dumps(data).encode(), {"content-type": "application/json"})

    @classmethod
    def refusal(cls, status: int, reason: str) -> WebhookResponse:
        """A 4xx/5xx answer whose body says why."""
        return cls.of_json(status, {"ok": False, "error": reason})


_JSON_HEADERS = {"content-type": "application/json"}


@functools.lru_cache(maxsize=256)
def _accepted_body(events: int, new: int) -> bytes:
    # The same few answers over and over (mostly one event, new): encoded once each.
    return json.dumps({"ok": True, "events": events, "new": new}).encode()


class _LoopThread:
    """One event loop running in a daemon thread, started on first use, for ``dispatch_sync``.

    One for the process, shared by every app (a test suite that builds many apps starts one
    thread, not one each). Started again when it is gone: after a fork (the child has the loop
    but not its thread) or if it stopped.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pid = 0

    def run(self, work: Coroutine[Any, Any, _T]) -> _T:
        """Run ``work`` on the loop and wait for its result in the calling thread."""
        with self._lock:
            alive = self._thread is not None and self._thread.is_alive()
            if self._loop is None or self._pid != os.getpid() or not alive:
                self._loop, self._thread = self._start()
                self._pid = os.getpid()
            loop, thread = self._loop, self._thread
        if threading.current_thread() is thread:
            work.close()
            raise ConfigError("dispatch_sync called on the loop it runs on: await dispatch()")
        outcome = asyncio.run_coroutine_threadsafe(_guarded(work), loop).result()
        if isinstance(outcome, _Raised):
            raise outcome.exception
        return outcome

    @staticmethod
    def _start() -> tuple[asyncio.AbstractEventLoop, threading.Thread]:
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()

        thread = threading.Thread(target=serve, name="waflow-dispatch-sync", daemon=True)
        thread.start()
        ready.wait()
        return loop, thread


_SYNC_LOOP = _LoopThread()


@dataclass(frozen=True)
class _Raised:
    exception: BaseException


async def _guarded(work: Coroutine[Any, Any, _T]) -> _T | _Raised:
    # SystemExit or KeyboardInterrupt raised by a handler would stop the loop itself (asyncio
    # lets them through): hand them to the calling thread instead, as asyncio.run would.
    try:
        return await work
    except (SystemExit, KeyboardInterrupt) as exc:
        return _Raised(exc)


class App:
    """A webhook endpoint for WhatsApp numbers and Messenger Pages, with a durable inbox.

    ``app_secret`` verifies signatures (required unless ``verify_signatures=False``, which is
    only for local experiments); ``verify_token`` answers the subscription handshake. ``store``
    keeps the inbox (default: ``WAFLOW_STORE``, i.e. SQLite). ``whatsapp`` / ``messenger`` are
    the clients replies go out with: one client, or several (one per number or Page); a WhatsApp
    event received by a number without its own client is answered through the first client,
    re-targeted to that number. ``retry_delays`` are the waits between handler attempts.
    """

    def __init__(
        self,
        *,
        app_secret: str | SecretStr | None = None,
        verify_token: str | SecretStr | None = None,
        store: Store | None = None,
        router: Router | None = None,
        whatsapp: Any = None,
        messenger: Any = None,
        clock: Clock | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        path: str = "/webhook",
        retry_delays: Sequence[float] = DEFAULT_RETRY_DELAYS,
        verify_signatures: bool = True,
        retry_interval: float = 1.0,
        engine: Engine | None = None,
        conversions: Any = None,
    ) -> None:
        if verify_signatures and not app_secret:
            raise ConfigError(
                "app_secret is required to verify webhook signatures (or set WAFLOW_APP_SECRET)"
            )
        self.app_secret = SecretStr(app_secret) if isinstance(app_secret, str) else app_secret
        self.verify_token = (
            SecretStr(verify_token) if isinstance(verify_token, str) else verify_token
        )
        self.verify_signatures = verify_signatures
        self.clock: Clock = clock or SystemClock()
        self.store: Store = store if store is not None else open_store(Settings.from_env().store)
        self.router = router or Router(name="app")
        self.max_body_bytes = max_body_bytes
        self.path = path
        self.retry_interval = retry_interval
        self.inbox = Inbox(self.store, self._handle, clock=self.clock, retry_delays=retry_delays)
        self.engine = engine
        self.outbox = Outbox(
            self.store,
            whatsapp=whatsapp,
            messenger=messenger,
            clock=self.clock,
            guard=engine.send_guard if engine is not None else None,
            prefetch=engine.prefetch_for_send if engine is not None else None,
            conversions=conversions,
        )
        self._whatsapp = clients_by_business(whatsapp, "phone_number_id")
        self._messenger = clients_by_business(messenger, "page_id")
        self._sync_loop = _SYNC_LOOP

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> App:
        """An app configured by ``WAFLOW_APP_SECRET``, ``WAFLOW_VERIFY_TOKEN``, ``WAFLOW_STORE``."""
        settings = Settings.from_env(env)
        options: dict[str, Any] = {
            "app_secret": settings.app_secret,
            "verify_token": settings.verify_token,
            "store": open_store(settings.store) if "store" not in overrides else None,
        }
        return cls(**{**options, **overrides})

    # -- registration, delegated to the root router ---------------------------------------------

    def on(self, *filters: Filter) -> Callable[[H], H]:
        """Register a handler on the app's root router (see :meth:`Router.on`)."""
        return self.router.on(*filters)

    def message(self, *filters: Filter) -> Callable[[H], H]:
        """Register a handler for customer messages (see :meth:`Router.message`)."""
        return self.router.message(*filters)

    def use(self, middleware: Middleware) -> Middleware:
        """Add middleware around every handler."""
        return self.router.use(middleware)

    def include_router(self, router: Router) -> Router:
        """Add a router to the root router."""
        return self.router.include(router)

    # -- dispatch --------------------------------------------------------------------------------

    async def dispatch(self, request: WebhookRequest, *, process: bool = True) -> WebhookResponse:
        """Answer one request. With ``process=False`` events are only recorded (see :meth:`run_pending`)."""
        method = request.method.upper()
        if method == "GET":
            return self._handshake(request)
        if method != "POST":
            refusal = WebhookResponse.refusal(405, f"method {method} not allowed; use GET or POST")
            # A 405 names the methods that are allowed (RFC 9110).
            return WebhookResponse(405, refusal.body, {**refusal.headers, "allow": "GET, POST"})
        response, receipt = await self._receive(request, claim=process)
        if receipt is not None and receipt.new and process:
            await self._process(receipt)
        return response

    def dispatch_sync(self, request: WebhookRequest) -> WebhookResponse:
        """:meth:`dispatch` for synchronous frameworks (Flask, Django), from any thread.

        Every call runs on one event loop in a background thread (one for the process): async
        clients and stores keep their connections on the loop that opened them, which a new
        loop per request (``asyncio.run``) would close under them. Not from that loop itself.
        """
        return self._sync_loop.run(self.dispatch(request))

    async def prune(
        self,
        older_than: timedelta = DEDUPE_RETENTION,
        *,
        deliveries_older_than: timedelta = DELIVERY_RETENTION,
        parked_older_than: timedelta = PARKED_RETENTION,
    ) -> int:
        """Forget what the store no longer needs; return how many records it forgot.

        - Handled events received more than ``older_than`` ago (default 8 days): their ids are
          what recognises Meta's redeliveries, so keep them longer than Meta retries (7 days).
        - Sent messages, and delivery records whose latest status is dated, more than
          ``deliveries_older_than`` ago (default 40 days): a status can come up to 37 days after
          a send (Meta holds a message for an offline customer for 30 days and retries a status
          webhook for 7 more), and :meth:`Outbox.delivery <waflow.outbox.Outbox.delivery>`
          reconciles it until then. A status arriving later starts a record of its own.
        - Parked messages created more than ``parked_older_than`` ago (default 90 days).

        Pending messages and events not yet handled are never forgotten. Served under ASGI, this
        runs every hour.
        """
        now = self.clock.now()
        events = await self.store.inbox_prune(now - older_than)
        messages = await self.store.outbox_prune(
            now - deliveries_older_than, now - parked_older_than
        )
        records = await self.store.status_prune(now - deliveries_older_than)
        if events or messages or records:
            logger.info(
                "pruned %d handled webhook events, %d sent or parked messages, %d delivery records",
                events,
                messages,
                records,
            )
        return events + messages + records

    async def _housekeeping(self, interval: float = 3600.0) -> None:
        while True:
            try:
                await self.prune()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("pruning the store failed; trying again in an hour")
            await self.clock.asleep(interval)

    async def run_pending(self) -> int:
        """Do everything that is due now: handle events (retries, leftovers, events recorded with
        ``process=False``), fire flow deadlines, and send queued messages. Returns the number of
        events handled."""
        handled = await self.inbox.process()
        if self.engine is not None:
            await self.engine.tick()
        await self.outbox.drain()
        return handled

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """Events whose handlers kept failing, oldest first (see :meth:`replay`)."""
        return await self.inbox.dead_letters(limit)

    async def replay(self, key: str) -> bool:
        """Handle a dead-lettered event again now (and send its replies); false if not dead."""
        replayed = await self.inbox.replay(key)
        if replayed:
            await self.outbox.drain()
        return replayed

    def _handshake(self, request: WebhookRequest) -> WebhookResponse:
        if self.verify_token is None:
            return WebhookResponse.refusal(403, "no verify token configured")
        try:
            challenge = verify_subscription(request.query, self.verify_token)
        except WebhookVerificationError as exc:
            logger.warning("webhook handshake refused: %s", exc)
            return WebhookResponse.refusal(403, str(exc))
        return WebhookResponse(200, challenge.encode(), {"content-type": "text/plain"})

    async def _receive(
        self, request: WebhookRequest, *, claim: bool = True
    ) -> tuple[WebhookResponse, Receipt | None]:
        if len(request.body) > self.max_body_bytes:
            reason = f"body of {len(request.body)} bytes exceeds {self.max_body_bytes}"
            logger.warning("webhook refused: %s", reason)
            return WebhookResponse.refusal(413, reason), None
        if self.verify_signatures:
            assert self.app_secret is not None
            signature = request.header("x-hub-signature-256")
            try:
                if signature is None and request.header("x-hub-signature") is not None:
                    raise WebhookVerificationError(
                        "only a sha1 X-Hub-Signature was sent; waflow verifies X-Hub-Signature-256"
                    )
                verify_signature(request.body, signature, self.app_secret)
            except WebhookVerificationError as exc:
                logger.warning("webhook refused: %s", exc)
                unsigned = signature is None and request.header("x-hub-signature") is None
                return WebhookResponse.refusal(401 if unsigned else 403, str(exc)), None
        try:
            events = parse(request.body, received_at=self.clock.now())
        except WebhookPayloadError as exc:
            logger.warning("webhook refused: %s", exc)
            return WebhookResponse.refusal(400, str(exc)), None
        except Exception:  # a parser bug must not turn into a 500 that Meta retries for days
            logger.exception("webhook refused: the body could not be parsed")
            return WebhookResponse.refusal(400, "malformed webhook"), None
        try:
            receipt = await self.inbox.receive(events, claim=claim)
        except Exception:
            logger.exception("could not record %d webhook events; Meta will retry", len(events))
            return WebhookResponse.refusal(503, "could not record the events; retry later"), None
        unsupported = [event for event in events if event.kind == "unsupported"]
        if unsupported:
            logger.info("webhook held %d event(s) of kinds waflow does not model", len(unsupported))
        body = _accepted_body(len(events), len(receipt.new))
        return WebhookResponse(200, body, _JSON_HEADERS), receipt

    async def _process(self, receipt: Receipt) -> None:
        try:
            await self.inbox.handle_new(receipt)
        except Exception:
            logger.exception("inbox processing failed; the events stay recorded for a retry")
        try:
            await self.outbox.drain()
        except Exception:
            logger.exception("sending queued messages failed; they stay queued for a retry")

    # -- handling --------------------------------------------------------------------------------

    async def _handle(self, event: Event) -> None:
        business_id = event.business_id
        ctx = HandlerContext(
            event=event,
            now=self.clock.now(),
            whatsapp=self._client_for("whatsapp", business_id),
            messenger=self._client_for("messenger", business_id),
        )
        if isinstance(event, (TemplateStatusUpdate, TemplateQualityUpdate, TemplateCategoryUpdate)):
            # Keep every client's template registry current, so sends are checked against what
            # Meta says now (a paused template fails locally, not at Meta).
            for client in self._whatsapp.values():
                registry = getattr(client, "template_registry", None)
                if registry is not None:
                    registry.apply(event)
        if isinstance(event, WhatsAppStatus):
            await self.store.record_status(
                StatusUpdate(
                    message_id=event.message_id,
                    status=event.status,
                    at=event.timestamp,
                    recipient=event.customer_id,
                    errors=[error.model_dump(exclude_none=True) for error in event.errors],
                    callback_data=event.biz_opaque_callback_data,
                )
            )
        if self.engine is not None:
            if await self.engine.handle(event):
                return
            customer = await self.engine.customer_for(event)
            ctx.customer_state = customer.state if customer is not None else None
        handled = await self.router.handle(event, ctx)
        if not handled and event.is_from_customer:
            logger.debug(
                "no handler for a %s %s from %s", event.channel, event.kind, mask(event.sender_id)
            )
        if ctx.replies:
            await self._queue(event, ctx.replies)

    def _client_for(self, channel: str, business_id: str | None) -> Any:
        clients = self._whatsapp if channel == "whatsapp" else self._messenger
        if not clients:
            return None
        if business_id is not None and business_id in clients:
            return clients[business_id]
        if channel == "whatsapp" and business_id:
            first = next(iter(clients.values()))
            return first.for_phone_number(business_id)
        if channel == "messenger":
            return clients.get("me")  # a Page token's client sends as its Page, whichever it is
        return None

    async def _queue(self, event: Event, replies: Sequence[Outgoing]) -> None:
        """Write a handler's replies to the outbox (they are sent right after, in order)."""
        if not replies:
            return
        items = []
        for number, outgoing in enumerate(replies):
            if outgoing.business_id is None:
                raise ConfigError(f"cannot reply to a {event.kind} event: no receiving number")
            items.append(
                self.outbox.draft(
                    outgoing.message,
                    channel=outgoing.channel,
                    business_id=outgoing.business_id,
                    customer=customer_key(event),
                    checked=False,
                    # The same ids when the handler runs again (a crash after this commit, before
                    # the event was marked handled): the store keeps the first, nothing goes twice.
                    key=f"{event.dedupe_key}#{number}",
                )
            )
        await self.store.commit(Commit(outbox=items))

    # -- ASGI ------------------------------------------------------------------------------------

    @property
    def asgi(self) -> Callable[[ASGIScope, ASGIReceive, ASGISend], Awaitable[None]]:
        """This app as a plain ASGI 3 function (the app itself is an ASGI app too).

        A function, not the bound ``__call__``: servers such as uvicorn take a bound method for
        an old-style ASGI 2 app and would fail every request. The same function every time;
        its ``__self__`` is the app, as for a method.
        """
        cached: Callable[[ASGIScope, ASGIReceive, ASGISend], Awaitable[None]] | None = (
            self.__dict__.get("_asgi_function")
        )
        if cached is None:
            app = self

            async def asgi_app(scope: ASGIScope, receive: ASGIReceive, send: ASGISend) -> None:
                await app(scope, receive, send)

            asgi_app.__self__ = app  # type: ignore[attr-defined]
            cached = asgi_app
            self.__dict__["_asgi_function"] = cached
        return cached

    async def __call__(self, scope: ASGIScope, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1003})  # webhooks are plain HTTP
            return
        if scope["type"] != "http":
            return
        if scope.get("path") != self.path:
            await _send_response(send, WebhookResponse.refusal(404, f"not found; use {self.path}"))
            return
        try:
            body, too_large = await _read_body(scope, receive, self.max_body_bytes)
        except _ClientGone:
            # Half a body is not a webhook to check or record; Meta sends it again.
            logger.warning(
                "the client disconnected before sending the whole body; nothing recorded"
            )
            return
        if too_large:
            reason = f"body exceeds {self.max_body_bytes} bytes"
            logger.warning("webhook refused: %s", reason)
            await _send_response(send, WebhookResponse.refusal(413, reason))
            return
        request = WebhookRequest(
            method=scope.get("method", "GET"),
            body=body,
            headers={k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])},
            query=_query(scope.get("query_string", b"")),
            path=scope.get("path", self.path),
        )
        if request.method.upper() != "POST":
            await _send_response(send, await self.dispatch(request))
            return
        # Answer first, handle after: Meta gets its 200 as soon as the events are recorded.
        response, receipt = await self._receive(request)
        await _send_response(send, response)
        if receipt is not None and receipt.new:
            await self._process(receipt)

    async def _lifespan(self, receive: ASGIReceive, send: ASGISend) -> None:
        runners: list[asyncio.Task[None]] = []
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                runners = [
                    asyncio.create_task(self.inbox.run(self.retry_interval)),
                    asyncio.create_task(self.outbox.run(self.retry_interval / 2)),
                ]
                if self.engine is not None:
                    runners.append(asyncio.create_task(self.engine.run(self.retry_interval)))
                runners.append(asyncio.create_task(self._housekeeping()))
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for runner in runners:
                    runner.cancel()
                for runner in runners:
                    with contextlib.suppress(asyncio.CancelledError):
                        await runner
                try:
                    await self.store.close()
                except Exception as exc:  # tell the server, rather than raise into it
                    logger.exception("closing the store at shutdown failed")
                    await send({"type": "lifespan.shutdown.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.shutdown.complete"})
                return


def _query(raw: bytes) -> dict[str, str]:
    return dict(parse_qsl(raw.decode("latin-1"), keep_blank_values=True))


class _ClientGone(Exception):
    """The client disconnected before sending the whole body."""


async def _read_body(scope: ASGIScope, receive: ASGIReceive, limit: int) -> tuple[bytes, bool]:
    for name, value in scope.get("headers", []):
        if name.lower() == b"content-length" and value.isdigit() and int(value) > limit:
            return b"", True
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return b"", True
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks), False


async def _send_response(send: ASGISend, response: WebhookResponse) -> None:
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers.items()]
    headers.append((b"content-length", str(len(response.body)).encode()))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})
