"""The Router: which handler takes an event, and the middleware around it."""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone

import pytest

from waflow import filters as F
from waflow.events import Event
from waflow.routing import HandlerContext, Router
from waflow.testing import FakeGraphAPI
from waflow.webhooks import parse

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
CUSTOMER = "4915112345678"


@pytest.fixture
def event() -> Event:
    fake = FakeGraphAPI(seed=1)
    [parsed] = parse(fake.inbound.whatsapp_text("4915112345678", "hallo"))
    return parsed


def context(event: Event) -> HandlerContext:
    return HandlerContext(event=event, now=NOW)


def tracing(log: list[str], name: str) -> Callable[..., Awaitable[None]]:
    async def middleware(ctx: HandlerContext, call_next: Callable[[], Awaitable[None]]) -> None:
        log.append(f"{name}>")
        await call_next()
        log.append(f"<{name}")

    return middleware


async def test_an_async_handler_without_middleware_gets_the_event_and_context(
    event: Event,
) -> None:
    router = Router()
    got: list[tuple[Event, HandlerContext]] = []

    @router.message(F.text("hallo"))
    async def greet(e: Event, ctx: HandlerContext) -> None:
        got.append((e, ctx))

    ctx = context(event)
    assert await router.handle(event, ctx) is True
    assert got == [(event, ctx)]


async def test_a_sync_handler_runs_off_the_event_loop_thread(event: Event) -> None:
    router = Router()
    threads: list[threading.Thread] = []
    router.message()(lambda e, ctx: threads.append(threading.current_thread()))

    assert await router.handle(event, context(event)) is True
    assert threads and threads[0] is not threading.current_thread()


async def test_middleware_wraps_async_and_sync_handlers_outer_first(event: Event) -> None:
    log: list[str] = []
    parent, child = Router(), Router()
    parent.use(tracing(log, "parent"))
    child.use(tracing(log, "child"))
    parent.include(child)

    @child.message()
    async def handler(_e: Event, _ctx: HandlerContext) -> None:
        log.append("handler")

    await parent.handle(event, context(event))
    assert log == ["parent>", "child>", "handler", "<child", "<parent"]

    log.clear()
    sync_only = Router()
    sync_only.use(tracing(log, "mw"))
    sync_only.message()(lambda _e, _ctx: log.append("sync handler"))
    await sync_only.handle(event, context(event))
    assert log == ["mw>", "sync handler", "<mw"]


async def test_a_childs_middleware_does_not_wrap_the_parents_own_handlers(event: Event) -> None:
    log: list[str] = []
    parent, child = Router(), Router()
    child.use(tracing(log, "child"))
    parent.include(child)

    @parent.message()
    async def own(_e: Event, _ctx: HandlerContext) -> None:
        log.append("parent handler")

    await parent.handle(event, context(event))
    assert log == ["parent handler"]


async def test_fallback_takes_what_no_route_takes_with_the_routers_middleware(
    event: Event,
) -> None:
    log: list[str] = []
    router = Router()
    router.use(tracing(log, "mw"))
    router.postback()(lambda _e, _ctx: log.append("postback"))

    @router.fallback
    async def fallback(_e: Event, _ctx: HandlerContext) -> None:
        log.append("fallback")

    assert await router.handle(event, context(event)) is True
    assert log == ["mw>", "fallback", "<mw"]
    assert router.resolve(event, context(event)) == (fallback, router._middleware)

    sync_router = Router()
    sync_router.fallback(lambda _e, _ctx: log.append("sync fallback"))
    await sync_router.handle(event, context(event))
    assert log[-1] == "sync fallback"


async def test_an_included_routers_fallback_takes_what_its_filters_let_in() -> None:
    # One router per number, each with its own fallback, behind one root.
    fake = FakeGraphAPI()
    log: list[str] = []
    root = Router(name="app")
    shop_a = root.include(Router(F.business("100000000000001"), name="a"))
    shop_b = root.include(Router(F.business("200000000000002"), name="b"))
    shop_a.fallback(lambda _e, _ctx: log.append("a fallback"))
    shop_b.message(F.text("preis"))(lambda _e, _ctx: log.append("b price"))
    shop_b.fallback(lambda _e, _ctx: log.append("b fallback"))
    root.fallback(lambda _e, _ctx: log.append("root fallback"))

    def to(number: str, text: str) -> Event:
        return parse(fake.inbound.whatsapp_text(CUSTOMER, text, phone_number_id=number))[0]

    for number, text in (
        ("200000000000002", "preis"),
        ("200000000000002", "hallo"),
        ("100000000000001", "hallo"),
        ("300000000000003", "hallo"),  # neither shop's number: the root's own fallback
    ):
        message = to(number, text)
        assert await root.handle(message, context(message)) is True
    assert log == ["b price", "b fallback", "a fallback", "root fallback"]


async def test_nothing_matches_nothing_runs(event: Event) -> None:
    router = Router()
    router.postback()(lambda _e, _ctx: pytest.fail("a postback handler took a message"))
    assert await router.handle(event, context(event)) is False
    assert router.resolve(event, context(event)) is None


async def test_resolve_names_the_handler_and_its_middleware_chain(event: Event) -> None:
    log: list[str] = []
    parent, child = Router(), Router()
    outer, inner = tracing(log, "outer"), tracing(log, "inner")
    parent.use(outer)
    child.use(inner)
    parent.include(child)

    async def handler(_e: Event, _ctx: HandlerContext) -> None:
        return None

    child.message()(handler)
    assert parent.resolve(event, context(event)) == (handler, [outer, inner])
    assert log == []  # resolving runs nothing


@pytest.mark.parametrize("channel", ["whatsapp", "messenger"])
def test_a_reply_model_of_the_other_channel_is_refused_where_it_is_made(channel: str) -> None:
    from waflow.errors import ConfigError
    from waflow.messenger import build as fb
    from waflow.whatsapp import build as wa

    fake = FakeGraphAPI()
    body = (
        fake.inbound.whatsapp_text(CUSTOMER, "Hi")
        if channel == "whatsapp"
        else fake.inbound.messenger_text("7000000000001", "Hi")
    )
    event = parse(body)[0]
    ctx = context(event)
    wrong = fb.text("7000000000001", "x") if channel == "whatsapp" else wa.text(CUSTOMER, "x")
    with pytest.raises(ConfigError, match=f"ctx.reply\\(\\) on a {channel} event got a"):
        ctx.reply(wrong)
    right = wa.text(CUSTOMER, "x") if channel == "whatsapp" else fb.text("7000000000001", "x")
    ctx.reply(right)
    assert [reply.message for reply in ctx.replies] == [right]
