"""Routers: handlers registered by decorators, chosen by composable filters, wrapped by middleware.

::

    router = Router()

    @router.message(F.text("hallo", ignore_case=True))
    async def greet(event, ctx):
        ctx.reply("Hallo! Wie kann ich helfen?")

    @router.postback(F.payload(prefix="product:"))
    def show_product(event, ctx):             # sync handlers work too (run in a thread)
        ...

The first handler whose filters all pass takes the event (routers are searched in the order they
were included). Replies are queued with ``ctx.reply(...)`` and go out after the handler returns,
from the number or Page that received the event.
"""

from __future__ import annotations

import asyncio
import inspect
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from waflow.errors import ConfigError
from waflow.events import Event
from waflow.filters import Filter, kind

__all__ = ["Handler", "HandlerContext", "Middleware", "Outgoing", "Router"]

Handler = Callable[[Any, "HandlerContext"], Awaitable[None] | None]
Middleware = Callable[["HandlerContext", Callable[[], Awaitable[None]]], Awaitable[None]]
H = TypeVar("H", bound=Handler)


@dataclass(frozen=True)
class Outgoing:
    """A message a handler queued: the channel, the sending number/Page, and the message model."""

    channel: str
    business_id: str | None
    message: Any


@dataclass
class HandlerContext:
    """What a handler gets besides the event.

    ``now`` is the app clock's time, ``match`` the match of a :func:`~waflow.filters.regex`
    filter, ``whatsapp`` / ``messenger`` the clients bound to the receiving number or Page,
    ``state`` a dict middleware can use to pass data along, and ``customer_state`` the customer's
    flow state when the app runs an engine (see :func:`waflow.filters.state`).
    """

    event: Event
    now: datetime
    whatsapp: Any = None
    messenger: Any = None
    match: re.Match[str] | None = None
    state: dict[str, Any] = field(default_factory=dict)
    customer_state: str | None = None
    replies: list[Outgoing] = field(default_factory=list)

    @property
    def customer_id(self) -> str | None:
        """The customer the event is about."""
        return self.event.customer_id

    def reply(self, message: Any) -> None:
        """Queue a reply to the event's customer on the event's channel.

        ``message`` is a plain string (a text message) or any outbound model of the event's
        channel (e.g. built with :mod:`waflow.whatsapp.build`). Nothing is sent until the
        handler returns; a handler that raises sends nothing.
        """
        event = self.event
        if isinstance(message, str):
            message = self._text(message)
        else:
            _check_channel(message, event.channel)
        self.replies.append(Outgoing(event.channel, event.business_id, message))

    def _text(self, body: str) -> Any:
        event = self.event
        to = self.customer_id
        if not to:
            raise ConfigError(f"cannot reply to a {event.kind} event: it has no customer")
        if event.channel == "whatsapp":
            from waflow.whatsapp import build as wa_build

            return wa_build.text(getattr(event, "wa_id", None) or to, body)
        from waflow.messenger import build as fb_build

        return fb_build.text(to, body)


def _check_channel(message: Any, channel: str) -> None:
    """Refuse, where the handler calls it, a reply model built for the other channel."""
    from waflow.messenger.messages import OutboundMessage as MessengerMessage
    from waflow.whatsapp.messages import OutboundMessage as WhatsAppMessage

    other, builder = (
        (MessengerMessage, "waflow.whatsapp.build")
        if channel == "whatsapp"
        else (WhatsAppMessage, "waflow.messenger.build")
    )
    if isinstance(message, other):
        raise ConfigError(
            f"ctx.reply() on a {channel} event got a "
            f"{'Messenger' if channel == 'whatsapp' else 'WhatsApp'} message "
            f"({type(message).__name__}): build it with {builder}, or send it on the other "
            "channel through the client of that channel"
        )


@dataclass(frozen=True)
class _Route:
    filters: tuple[Filter, ...]
    handler: Handler
    # Asked once, at registration: inspect.iscoroutinefunction costs a microsecond per call.
    is_async: bool = False

    def matches(self, event: Event, ctx: HandlerContext) -> bool:
        # A loop, not all(<generator>): it runs for every route of every event.
        for check in self.filters:  # noqa: SIM110
            if not check(event, ctx):
                return False
        return True


class Router:
    """A set of handlers with filters, optional router-wide filters, and middleware.

    Routers nest with :meth:`include`: an included router is searched after the including
    router's own handlers, and only if the included router's own filters pass.
    """

    def __init__(self, *filters: Filter, name: str | None = None) -> None:
        self.name = name or "router"
        self.filters = filters
        self._routes: list[_Route] = []
        self._children: list[Router] = []
        self._middleware: list[Middleware] = []
        self._fallback: _Route | None = None

    def on(self, *filters: Filter) -> Callable[[H], H]:
        """Register a handler for events that pass every filter."""

        def register(handler: H) -> H:
            if not callable(handler):
                raise TypeError(f"{handler!r} is not callable")
            self._routes.append(_Route(filters, handler, inspect.iscoroutinefunction(handler)))
            return handler

        return register

    def message(self, *filters: Filter) -> Callable[[H], H]:
        """Register a handler for customer messages (both channels)."""
        return self.on(kind("message"), *filters)

    def postback(self, *filters: Filter) -> Callable[[H], H]:
        """Register a handler for Messenger postbacks."""
        return self.on(kind("postback"), *filters)

    def referral(self, *filters: Filter) -> Callable[[H], H]:
        """Register a handler for Messenger referrals (ads and m.me links)."""
        return self.on(kind("referral"), *filters)

    def status(self, *filters: Filter) -> Callable[[H], H]:
        """Register a handler for WhatsApp delivery statuses."""
        return self.on(kind("status"), *filters)

    def fallback(self, handler: H) -> H:
        """Register the handler for events no other handler of this router tree takes.

        On an included router it takes the events its filters let in that none of its handlers
        (or its own included routers) took, before the routers included after it are asked.
        """
        self._fallback = _Route((), handler, inspect.iscoroutinefunction(handler))
        return handler

    def use(self, middleware: Middleware) -> Middleware:
        """Add middleware ``async def mw(ctx, call_next)`` around this router's handlers."""
        self._middleware.append(middleware)
        return middleware

    def include(self, router: Router) -> Router:
        """Search ``router`` after this router's own handlers; returns ``router``."""
        if router is self:
            raise ValueError("a router cannot include itself")
        self._children.append(router)
        return router

    def resolve(self, event: Event, ctx: HandlerContext) -> tuple[Handler, list[Middleware]] | None:
        """The handler for ``event`` and the middleware around it, or ``None``."""
        found = self._find(event, ctx)
        return None if found is None else (found[0].handler, found[1])

    def _find(self, event: Event, ctx: HandlerContext) -> tuple[_Route, list[Middleware]] | None:
        found = self._resolve(event, ctx, [])
        if found is None and self._fallback is not None:
            return self._fallback, list(self._middleware)
        return found

    def _resolve(
        self, event: Event, ctx: HandlerContext, outer: list[Middleware]
    ) -> tuple[_Route, list[Middleware]] | None:
        if self.filters and not all(f(event, ctx) for f in self.filters):
            return None
        chain = [*outer, *self._middleware] if self._middleware else outer
        for route in self._routes:
            if route.matches(event, ctx):
                return route, chain
        for child in self._children:
            found = child._resolve(event, ctx, chain)
            if found is not None:
                return found
        if self._fallback is not None:  # the event is this router's (its filters passed)
            return self._fallback, chain
        return None

    async def handle(self, event: Event, ctx: HandlerContext) -> bool:
        """Run the matching handler (through its middleware); false if no handler took it."""
        found = self._find(event, ctx)
        if found is None:
            return False
        route, chain = found
        if not chain and route.is_async:  # the common case: straight to the coroutine
            await route.handler(event, ctx)  # type: ignore[misc]
            return True
        handler = route.handler

        async def call_handler() -> None:
            await _call(handler, event, ctx)

        call: Callable[[], Awaitable[None]] = call_handler
        for middleware in reversed(chain):
            call = _wrap(middleware, ctx, call)
        await call()
        return True


def _wrap(
    middleware: Middleware, ctx: HandlerContext, call_next: Callable[[], Awaitable[None]]
) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        await middleware(ctx, call_next)

    return run


async def _call(handler: Handler, event: Event, ctx: HandlerContext) -> None:
    if inspect.iscoroutinefunction(handler):
        await handler(event, ctx)
        return
    # A sync handler may block (a sync client, a database): keep it off the event loop.
    result = await asyncio.to_thread(handler, event, ctx)
    if inspect.isawaitable(result):
        await result
