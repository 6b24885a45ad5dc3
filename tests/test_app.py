"""App.dispatch: handshake, limits, signatures, batching, dedupe, retries, dead letters, order."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from waflow import filters as F
from waflow.app import App, WebhookRequest, WebhookResponse
from waflow.events import Event
from waflow.routing import HandlerContext, Router
from waflow.store import MemoryStore, SQLiteStore, Store
from waflow.store.base import InboxItem
from waflow.testing import FakeGraphAPI, FrozenClock
from waflow.webhooks import sign
from waflow.whatsapp import build

SECRET = "app-secret-for-tests"
PNID = "106540352242922"
OTHER_PNID = "200000000000001"


def wa_message(
    i: int, sender: str = "4915112345678", *, text: str | None = None, pnid: str = PNID
) -> dict[str, Any]:
    return {
        "field": "messages",
        "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": pnid},
            "contacts": [{"profile": {"name": "Lena"}, "wa_id": sender}],
            "messages": [
                {
                    "from": sender,
                    "id": f"wamid.TEST{i}",
                    "timestamp": str(1772442000 + i),
                    "type": "text",
                    "text": {"body": text if text is not None else f"message {i}"},
                }
            ],
        },
    }


def wa_body(*changes: dict[str, Any]) -> dict[str, Any]:
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": list(changes)}],
    }


def signed(body: dict[str, Any] | bytes, secret: str = SECRET) -> WebhookRequest:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return WebhookRequest("POST", raw, {"X-Hub-Signature-256": sign(raw, secret)})


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def fake(clock: FrozenClock) -> FakeGraphAPI:
    fake = FakeGraphAPI(clock=clock)
    fake.add_phone_number(OTHER_PNID)
    return fake


def make_app(fake: FakeGraphAPI, clock: FrozenClock, store: Store | None = None, **kw: Any) -> App:
    return App(
        app_secret=SECRET,
        verify_token="verify-me",
        store=store or MemoryStore(),
        whatsapp=fake.async_whatsapp(),
        messenger=fake.async_messenger(),
        clock=clock,
        **kw,
    )


# -- handshake and refusals ------------------------------------------------------------------


async def test_handshake_answers_the_challenge_as_plain_text(
    fake: FakeGraphAPI, clock: FrozenClock
) -> None:
    app = make_app(fake, clock)
    query = {
        "hub.mode": "subscribe",
        "hub.verify_token": "verify-me",
        "hub.challenge": "1158201444",
    }
    response = await app.dispatch(WebhookRequest("GET", query=query))
    assert (response.status, response.text) == (200, "1158201444")
    assert response.headers["content-type"] == "text/plain"


async def test_handshake_with_a_wrong_token_is_refused(
    fake: FakeGraphAPI, clock: FrozenClock
) -> None:
    app = make_app(fake, clock)
    query = {"hub.mode": "subscribe", "hub.verify_token": "guess", "hub.challenge": "1"}
    response = await app.dispatch(WebhookRequest("GET", query=query))
    assert response.status == 403
    assert "verify_token" in response.json()["error"]


@pytest.mark.parametrize(
    ("request_", "status", "reason"),
    [
        (
            WebhookRequest("POST", b'{"object": "page", "entry": []}'),
            401,
            "missing X-Hub-Signature-256",
        ),
        (
            WebhookRequest(
                "POST",
                b'{"object": "page", "entry": []}',
                {"X-Hub-Signature-256": "sha256=" + "0" * 64},
            ),
            403,
            "does not match",
        ),
        (
            WebhookRequest(
                "POST", b'{"object": "page", "entry": []}', {"X-Hub-Signature": "sha1=" + "0" * 40}
            ),
            403,
            "only a sha1 X-Hub-Signature",
        ),
        (signed(b"{not json"), 400, "not valid JSON"),
        (signed(b'{"hello": "world"}'), 400, "`object` is missing"),
        (signed(b"x" * (1024 * 1024 + 1)), 413, "exceeds"),
        (WebhookRequest("PUT", b""), 405, "not allowed"),
    ],
)
async def test_bad_requests_get_a_4xx_with_the_reason_in_body_and_log(
    fake: FakeGraphAPI,
    clock: FrozenClock,
    caplog: pytest.LogCaptureFixture,
    request_: WebhookRequest,
    status: int,
    reason: str,
) -> None:
    app = make_app(fake, clock)
    calls: list[Event] = []
    app.on()(lambda event, ctx: calls.append(event))
    with caplog.at_level(logging.WARNING, logger="waflow"):
        response = await app.dispatch(request_)
    assert response.status == status
    assert reason in response.json()["error"]
    if status != 405:
        assert any(reason in record.getMessage() for record in caplog.records)
    else:
        assert response.headers.get("allow") == "GET, POST"
    assert calls == []
    assert fake.sent == []


async def test_unknown_kinds_are_acknowledged_with_200(
    fake: FakeGraphAPI, clock: FrozenClock
) -> None:
    app = make_app(fake, clock)
    body = wa_body({"field": "brand_new_field", "value": {"something": [{"id": "x1"}]}})
    response = await app.dispatch(signed(body))
    assert response.status == 200
    assert response.json() == {"ok": True, "events": 1, "new": 1}


def test_an_app_without_a_secret_refuses_to_start() -> None:
    from waflow.errors import ConfigError

    with pytest.raises(ConfigError, match="app_secret is required"):
        App(store=MemoryStore())


# -- batching, order, dedupe -----------------------------------------------------------------


async def test_two_entries_with_five_items_make_five_handler_calls_in_order(
    fake: FakeGraphAPI, clock: FrozenClock
) -> None:
    app = make_app(fake, clock)
    seen: list[str] = []

    @app.message()
    async def record(event: Any, ctx: HandlerContext) -> None:
        seen.append(event.text)

    first = wa_body(wa_message(1, "491", text="a"), wa_message(2, "492", text="b"))
    second_entry = {
        "id": "102290129340398",
        "changes": [
            wa_message(3, "491", text="c"),
            wa_message(4, "493", text="d"),
            wa_message(5, "491", text="e"),
        ],
    }
    body = {"object": first["object"], "entry": [*first["entry"], second_entry]}
    response = await app.dispatch(signed(body))
    assert response.json() == {"ok": True, "events": 5, "new": 5}
    assert seen == ["a", "b", "c", "d", "e"]


async def test_a_message_delivered_three_times_is_handled_once_even_across_a_restart(
    fake: FakeGraphAPI, clock: FrozenClock, tmp_path: Path
) -> None:
    path = tmp_path / "inbox.db"
    calls: list[str] = []

    def build_app() -> App:
        app = make_app(fake, clock, store=SQLiteStore(path))
        app.message()(lambda event, ctx: calls.append(event.id))
        return app

    request = signed(wa_body(wa_message(7)))
    app = build_app()
    assert (await app.dispatch(request)).json()["new"] == 1
    assert (await app.dispatch(request)).json()["new"] == 0
    await app.store.close()

    restarted = build_app()  # a new process on the same file
    response = await restarted.dispatch(request)
    assert response.status == 200 and response.json()["new"] == 0
    assert calls == ["wamid.TEST7"]


class _UnavailableStore(MemoryStore):
    """A store that cannot record anything while ``down`` (a full disk, Redis gone)."""

    def __init__(self) -> None:
        super().__init__()
        self.down = True

    async def inbox_add(self, items: Any, now: Any) -> list[bool]:
        if self.down:
            raise OSError("database or disk is full")
        return await super().inbox_add(items, now)

    async def inbox_add_claim(
        self, items: Any, now: Any, lease_seconds: float, owner: str
    ) -> tuple[list[bool], InboxItem | None]:
        if self.down:
            raise OSError("database or disk is full")
        return await super().inbox_add_claim(items, now, lease_seconds, owner)


async def test_events_that_cannot_be_recorded_get_a_503_so_meta_delivers_them_again(
    fake: FakeGraphAPI, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    store = _UnavailableStore()
    app = make_app(fake, clock, store=store)
    calls: list[str] = []
    app.message()(lambda event, ctx: calls.append(event.id))
    request = signed(wa_body(wa_message(1), wa_message(2)))

    refused = await app.dispatch(request)

    assert refused.status == 503
    assert "retry later" in refused.json()["error"]
    assert calls == []  # nothing handled that was not recorded
    assert any("could not record 2 webhook events" in r.getMessage() for r in caplog.records)

    store.down = False
    redelivered = await app.dispatch(request)  # Meta retries the same body
    again = await app.dispatch(request)

    assert redelivered.status == again.status == 200
    assert redelivered.json()["new"] == 2 and again.json()["new"] == 0
    assert calls == ["wamid.TEST1", "wamid.TEST2"]


async def test_dedupe_is_by_message_id_not_by_body(fake: FakeGraphAPI, clock: FrozenClock) -> None:
    app = make_app(fake, clock)
    calls: list[str] = []
    app.message()(lambda event, ctx: calls.append(event.id))
    # the same message inside two different bodies (Meta re-batches redeliveries)
    await app.dispatch(signed(wa_body(wa_message(1))))
    await app.dispatch(signed(wa_body(wa_message(2), wa_message(1))))
    assert calls == ["wamid.TEST1", "wamid.TEST2"]


# -- failing handlers ------------------------------------------------------------------------


async def test_a_raising_handler_is_retried_then_dead_lettered_and_replayable(
    fake: FakeGraphAPI, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(fake, clock, retry_delays=(5, 30))
    attempts: list[str] = []
    broken = True

    @app.message()
    async def flaky(event: Any, ctx: HandlerContext) -> None:
        attempts.append(event.id)
        if broken:
            raise RuntimeError("database is down")
        ctx.reply("Danke!")

    response = await app.dispatch(signed(wa_body(wa_message(1))))
    assert response.status == 200  # recorded: Meta need not resend
    assert attempts == ["wamid.TEST1"]

    assert await app.run_pending() == 0  # not due yet
    clock.advance(5)
    await app.run_pending()
    assert len(attempts) == 2
    clock.advance(30)
    with caplog.at_level(logging.ERROR, logger="waflow"):
        await app.run_pending()
    assert len(attempts) == 3
    assert any("dead-lettered" in r.getMessage() for r in caplog.records)

    (dead,) = await app.dead_letters()
    assert dead.event.id == "wamid.TEST1"
    assert dead.attempts == 3
    assert dead.last_error == "RuntimeError: database is down"
    clock.advance(3600)
    await app.run_pending()
    assert len(attempts) == 3  # dead letters are not retried on their own

    broken = False
    assert await app.replay(dead.key) is True
    assert len(attempts) == 4
    assert fake.sent.texts() == ["Danke!"]
    assert await app.dead_letters() == []


async def test_a_failing_event_holds_back_the_same_customers_later_events(
    fake: FakeGraphAPI, clock: FrozenClock
) -> None:
    app = make_app(fake, clock, retry_delays=(10,))
    handled: list[str] = []
    fail_once = {"wamid.TEST1"}

    @app.message()
    async def handler(event: Any, ctx: HandlerContext) -> None:
        if event.id in fail_once:
            fail_once.discard(event.id)
            raise RuntimeError("transient")
        handled.append(event.id)

    await app.dispatch(signed(wa_body(wa_message(1, "491"))))
    await app.dispatch(signed(wa_body(wa_message(2, "491"), wa_message(3, "492"))))
    assert handled == ["wamid.TEST3"]  # another customer is not held back
    clock.advance(10)
    await app.run_pending()
    assert handled == ["wamid.TEST3", "wamid.TEST1", "wamid.TEST2"]


async def test_replies_are_not_sent_when_the_handler_raises(
    fake: FakeGraphAPI, clock: FrozenClock
) -> None:
    app = make_app(fake, clock)

    @app.message()
    async def handler(event: Any, ctx: HandlerContext) -> None:
        ctx.reply("first")
        raise RuntimeError("after replying")

    await app.dispatch(signed(wa_body(wa_message(1))))
    assert fake.sent == []


# -- routing ---------------------------------------------------------------------------------


async def test_replies_go_out_from_the_number_that_received_the_message(
    fake: FakeGraphAPI, clock: FrozenClock
) -> None:
    app = make_app(fake, clock)
    app.message()(lambda event, ctx: ctx.reply(f"hi from {event.phone_number_id}"))
    await app.dispatch(signed(wa_body(wa_message(1, pnid=PNID), wa_message(2, pnid=OTHER_PNID))))
    assert [(m.sender_id, m.text) for m in fake.sent] == [
        (PNID, f"hi from {PNID}"),
        (OTHER_PNID, f"hi from {OTHER_PNID}"),
    ]


async def test_routers_filter_by_business_and_text(fake: FakeGraphAPI, clock: FrozenClock) -> None:
    app = make_app(fake, clock)
    second_shop = Router(F.business(OTHER_PNID), name="second shop")
    second_shop.message()(lambda event, ctx: ctx.reply("second shop"))
    app.include_router(second_shop)

    @app.message(F.regex(r"(?i)^preis (\w+)"))
    async def price(event: Any, ctx: HandlerContext) -> None:
        assert ctx.match is not None
        ctx.reply(f"price of {ctx.match.group(1)}")

    app.router.fallback(lambda event, ctx: ctx.reply("sorry?"))
    await app.dispatch(signed(wa_body(wa_message(1, text="Preis Stadtrad"))))
    await app.dispatch(signed(wa_body(wa_message(2, pnid=OTHER_PNID))))
    await app.dispatch(signed(wa_body(wa_message(3, text="hm"))))
    assert fake.sent.texts() == ["price of Stadtrad", "second shop", "sorry?"]


async def test_middleware_wraps_handlers_in_order(fake: FakeGraphAPI, clock: FrozenClock) -> None:
    app = make_app(fake, clock)
    trace: list[str] = []

    async def outer(ctx: HandlerContext, call_next: Callable[[], Awaitable[None]]) -> None:
        trace.append("outer in")
        ctx.state["user"] = "lena"
        await call_next()
        trace.append("outer out")

    app.use(outer)

    def sync_handler(event: Any, ctx: HandlerContext) -> None:
        trace.append(f"handler sees {ctx.state['user']}")

    app.message()(sync_handler)
    await app.dispatch(signed(wa_body(wa_message(1))))
    assert trace == ["outer in", "handler sees lena", "outer out"]


async def test_statuses_update_the_record_of_the_sent_message(
    fake: FakeGraphAPI, clock: FrozenClock
) -> None:
    app = make_app(fake, clock)
    wa = fake.async_whatsapp()
    sent = await wa.send(
        build.text("4915112345678", "Ihr Rad ist fertig", callback_data="outbox:9")
    )

    def status(name: str, ts: int) -> dict[str, Any]:
        return {
            "field": "messages",
            "value": {
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "15550783881", "phone_number_id": PNID},
                "statuses": [
                    {
                        "id": sent.message_id,
                        "status": name,
                        "timestamp": str(ts),
                        "recipient_id": "4915112345678",
                        "biz_opaque_callback_data": "outbox:9",
                    }
                ],
            },
        }

    await app.dispatch(signed(wa_body(status("read", 1772442010), status("delivered", 1772442005))))
    record = await app.store.message_record(sent.message_id)
    assert record is not None
    assert record.status == "read"
    assert set(record.statuses) == {"read", "delivered"}
    assert record.callback_data == "outbox:9"


async def test_messenger_replies_go_through_the_page_client(
    fake: FakeGraphAPI, clock: FrozenClock
) -> None:
    app = make_app(fake, clock)
    app.message(F.channel("messenger"))(lambda event, ctx: ctx.reply(f"you said {event.text}"))
    body = {
        "object": "page",
        "entry": [
            {
                "id": fake.page_id,
                "time": 1772442000000,
                "messaging": [
                    {
                        "sender": {"id": "6945398272183744"},
                        "recipient": {"id": fake.page_id},
                        "timestamp": 1772442000000,
                        "message": {"mid": "m_abc", "text": "hallo"},
                    }
                ],
            }
        ],
    }
    await app.dispatch(signed(body))
    assert [(m.channel, m.to, m.text) for m in fake.sent] == [
        ("messenger", "6945398272183744", "you said hallo")
    ]


# -- ASGI ------------------------------------------------------------------------------------


async def test_asgi_app_serves_the_webhook(fake: FakeGraphAPI, clock: FrozenClock) -> None:
    app = make_app(fake, clock)
    app.message()(lambda event, ctx: ctx.reply("over ASGI"))
    transport = httpx.ASGITransport(app=app.asgi)
    async with httpx.AsyncClient(transport=transport, base_url="http://shop.test") as client:
        hello = await client.get(
            "/webhook",
            params={
                "hub.mode": "subscribe",
                "hub.verify_token": "verify-me",
                "hub.challenge": "42",
            },
        )
        assert (hello.status_code, hello.text) == (200, "42")
        request = signed(wa_body(wa_message(1)))
        posted = await client.post("/webhook", content=request.body, headers=dict(request.headers))
        assert posted.status_code == 200
        missing = await client.post("/elsewhere", content=b"{}")
        assert missing.status_code == 404
        too_big = await client.post("/webhook", content=b"x" * (1024 * 1024 + 10))
        assert too_big.status_code == 413
    assert fake.sent.texts() == ["over ASGI"]


def test_dispatch_sync_for_sync_frameworks(fake: FakeGraphAPI, clock: FrozenClock) -> None:
    app = make_app(fake, clock)
    app.message()(lambda event, ctx: ctx.reply("sync"))
    response: WebhookResponse = app.dispatch_sync(signed(wa_body(wa_message(1))))
    assert response.status == 200
    assert fake.sent.texts() == ["sync"]


@pytest.mark.parametrize("attribute", ["app", "asgi"])
def test_uvicorn_serves_the_app_as_asgi3(attribute: str) -> None:
    from uvicorn.config import Config

    app = App(app_secret=SECRET, store=MemoryStore())
    target = app if attribute == "app" else app.asgi
    config = Config(target, lifespan="on")
    config.load()
    assert config.interface == "asgi3"


async def test_prune_forgets_old_events_but_not_within_metas_retry_period(
    fake: FakeGraphAPI, clock: FrozenClock
) -> None:
    app = make_app(fake, clock)
    calls: list[str] = []
    app.message()(lambda event, ctx: calls.append(event.id))
    request = signed(wa_body(wa_message(1)))
    await app.dispatch(request)
    clock.advance(timedelta(days=7))
    assert await app.prune() == 0
    await app.dispatch(request)  # a redelivery on day 7 is still recognised
    clock.advance(timedelta(days=2))
    assert await app.prune() == 1
    assert calls == ["wamid.TEST1"]


async def test_prune_keeps_what_status_webhooks_reconcile_for_forty_days_and_parked_for_ninety(
    fake: FakeGraphAPI, clock: FrozenClock
) -> None:
    app = make_app(fake, clock)
    app.message()(lambda event, ctx: ctx.reply("Danke!"))
    await app.dispatch(signed(wa_body(wa_message(1))))
    (sent,) = fake.sent
    (item,) = await app.store.outbox_list("sent")
    await app.dispatch(signed(fake.deliver(sent)))
    fake.fail_next(131026, message="(#131026) Message undeliverable")
    await app.dispatch(signed(wa_body(wa_message(2))))
    (parked,) = await app.outbox.parked()

    clock.advance(timedelta(days=39))
    assert await app.prune() == 3  # the three webhook events; a late status still reconciles
    await app.dispatch(signed(fake.read(sent)))
    record = await app.outbox.delivery(item.id)
    assert record is not None and record.status == "read"
    clock.advance(timedelta(days=2))
    assert await app.prune() == 1  # the sent message, 41 days on; its record had news on day 39
    assert await app.store.outbox_get(item.id) is None
    assert await app.store.message_record(sent.message_id) is not None
    clock.advance(timedelta(days=39))
    assert await app.prune() == 2  # the read status's event and the record, 41 days after it
    assert await app.store.message_record(sent.message_id) is None
    assert [message.id for message in await app.outbox.parked()] == [parked.id]
    clock.advance(timedelta(days=11))  # more than 90 days after it was created
    assert await app.prune() == 1
    assert await app.outbox.parked() == []


async def test_a_messenger_client_for_page_me_replies_on_any_page(
    fake: FakeGraphAPI, clock: FrozenClock
) -> None:
    # page_id="me" (a Page token's own Page) is documented for the client; behind an App its
    # replies used to be parked: clients were looked up by the event's numeric page id only.
    me = fake.async_messenger(page_id="me")
    app = App(app_secret=fake.app_secret, store=MemoryStore(), messenger=me, clock=clock)
    seen: list[Any] = []

    @app.message()
    async def answer(event: Event, ctx: HandlerContext) -> None:
        seen.append(ctx.messenger)
        ctx.reply("Hallo!")

    response = await app.dispatch(
        fake.webhook_request(fake.inbound.messenger_text("7000001", "Hi"))
    )
    assert response.status == 200
    assert seen == [me]
    assert fake.sent.on("messenger").texts() == ["Hallo!"]
    assert await app.outbox.parked() == []


async def _asgi_exchange(
    app: App, scope: dict[str, Any], incoming: list[dict[str, Any]]
) -> list[Any]:
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


async def test_a_websocket_is_closed_not_left_hanging(
    fake: FakeGraphAPI, clock: FrozenClock
) -> None:
    sent = await _asgi_exchange(
        make_app(fake, clock),
        {"type": "websocket", "path": "/webhook"},
        [{"type": "websocket.connect"}],
    )
    assert [message["type"] for message in sent] == ["websocket.close"]


async def test_a_store_that_fails_to_close_reports_a_failed_shutdown(
    fake: FakeGraphAPI, clock: FrozenClock
) -> None:
    app = make_app(fake, clock)

    async def broken_close() -> None:
        raise OSError("disk gone")

    app.store.close = broken_close  # type: ignore[method-assign]
    sent = await _asgi_exchange(
        app,
        {"type": "lifespan"},
        [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}],
    )
    assert [message["type"] for message in sent] == [
        "lifespan.startup.complete",
        "lifespan.shutdown.failed",
    ]
    assert "disk gone" in sent[-1]["message"]


async def test_clients_can_be_given_as_a_mapping_by_number(
    fake: FakeGraphAPI, clock: FrozenClock
) -> None:
    # As the Outbox takes them: {phone_number_id: client}.
    second = "200000000000002"
    fake.add_phone_number(second)
    clients = {
        fake.phone_number_id: fake.async_whatsapp(),
        second: fake.async_whatsapp(phone_number_id=second),
    }
    app = App(app_secret=fake.app_secret, store=MemoryStore(), whatsapp=clients, clock=clock)
    app.message()(lambda event, ctx: ctx.reply("Hallo!"))
    for number in (fake.phone_number_id, second):
        body = fake.inbound.whatsapp_text("4915112345678", "Hi", phone_number_id=number)
        assert (await app.dispatch(fake.webhook_request(body))).status == 200
    assert [m.sender_id for m in fake.sent] == [fake.phone_number_id, second]


async def test_a_client_that_disconnects_mid_body_gets_nothing_recorded(
    fake: FakeGraphAPI, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(fake, clock)
    calls: list[Event] = []
    app.on()(lambda event, ctx: calls.append(event))
    raw, headers = fake.sign(fake.inbound.whatsapp_text("4915112345678", "Hi"))
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/webhook",
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }
    with caplog.at_level(logging.WARNING, logger="waflow"):
        sent = await _asgi_exchange(
            app,
            scope,
            [
                {"type": "http.request", "body": raw[:10], "more_body": True},
                {"type": "http.disconnect"},
            ],
        )
    assert sent == []  # nobody to answer
    assert calls == []
    assert "disconnected before sending the whole body" in caplog.text
    assert "signature" not in caplog.text  # not blamed on the signature
