"""The FastAPI and Flask examples serve the webhook like the ASGI app does."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from waflow import App, WebhookRequest
from waflow.errors import ConfigError
from waflow.store import MemoryStore
from waflow.testing import FakeGraphAPI

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))


@pytest.fixture
def fake() -> FakeGraphAPI:
    return FakeGraphAPI()


def _app(fake: FakeGraphAPI, text: str) -> App:
    app = App(
        app_secret=fake.app_secret,
        verify_token="vt",
        store=MemoryStore(),
        whatsapp=fake.async_whatsapp(),
    )
    app.message()(lambda event, ctx: ctx.reply(text))
    return app


async def test_fastapi_adapter(fake: FakeGraphAPI) -> None:
    pytest.importorskip("fastapi")
    from fastapi_app import create_api

    # Through httpx's ASGI transport, as a server would call it (Starlette's TestClient now
    # warns that it wants another HTTP client).
    api = create_api(_app(fake, "Hallo aus FastAPI!"))
    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url="http://shop.test") as client:
        hello = await client.get(
            "/webhook",
            params={"hub.mode": "subscribe", "hub.verify_token": "vt", "hub.challenge": "7"},
        )
        assert (hello.status_code, hello.text) == (200, "7")
        raw, headers = fake.sign(fake.inbound.whatsapp_text("4915112345678", "Hi"))
        assert (await client.post("/webhook", content=raw, headers=headers)).status_code == 200
        tampered = await client.post("/webhook", content=raw + b" ", headers=headers)
        assert tampered.status_code == 403
    assert fake.sent.texts() == ["Hallo aus FastAPI!"]


def test_flask_adapter(fake: FakeGraphAPI) -> None:
    pytest.importorskip("flask")
    from flask_app import create_web

    client = create_web(_app(fake, "Hallo aus Flask!")).test_client()
    hello = client.get(
        "/webhook",
        query_string={"hub.mode": "subscribe", "hub.verify_token": "no", "hub.challenge": "7"},
    )
    assert hello.status_code == 403
    raw, headers = fake.sign(fake.inbound.whatsapp_text("4915112345678", "Hi"))
    assert client.post("/webhook", data=raw, headers=headers).status_code == 200
    assert (
        client.post("/webhook", data=b"{", headers=headers).status_code == 403
    )  # signature of other bytes
    assert fake.sent.texts() == ["Hallo aus Flask!"]


def test_flask_with_an_async_client_over_http_records_every_reply_as_sent(
    tmp_path: Path, fake: FakeGraphAPI
) -> None:
    # dispatch_sync runs every request on one loop of the app's own: the async client's pooled
    # connections belong to it. A new loop per request closed them under the next send, which
    # went out but was parked as failed ("Event loop is closed"), to be sent again on retry.
    pytest.importorskip("flask")
    from flask_app import create_web

    from waflow.store import SQLiteStore
    from waflow.testing.http_fake import serve_fake
    from waflow.whatsapp import AsyncWhatsApp

    with serve_fake(fake) as url:
        client = AsyncWhatsApp(
            access_token=fake.access_token,
            phone_number_id=fake.phone_number_id,
            base_url=url,
            throughput=None,
        )
        app = App(app_secret=fake.app_secret, store=SQLiteStore(tmp_path / "w.db"), whatsapp=client)
        app.message()(lambda event, ctx: ctx.reply(f"Hallo {event.text}"))
        web = create_web(app).test_client()
        for n in range(4):
            raw, headers = fake.sign(fake.inbound.whatsapp_text("4915112345678", f"#{n}"))
            assert web.post("/webhook", data=raw, headers=headers).status_code == 200
        assert fake.sent.texts() == [f"Hallo #{n}" for n in range(4)]
        parked = asyncio.run(app.store.outbox_list("parked", 10))
        assert parked == [], [item.last_error for item in parked]


def test_dispatch_sync_from_several_threads(fake: FakeGraphAPI) -> None:
    app = _app(fake, "Hallo!")
    bodies = [fake.sign(fake.inbound.whatsapp_text(f"49151000000{n:02d}", "Hi")) for n in range(8)]
    answers: list[int] = []

    def post(raw: bytes, headers: dict[str, str]) -> None:
        answers.append(app.dispatch_sync(WebhookRequest("POST", raw, headers)).status)

    threads = [threading.Thread(target=post, args=body) for body in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert answers == [200] * 8
    assert fake.sent.texts() == ["Hallo!"] * 8


def _sync_loop_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "waflow-dispatch-sync"]


def test_a_handler_raising_system_exit_does_not_stop_later_requests(fake: FakeGraphAPI) -> None:
    app = App(app_secret=fake.app_secret, verify_token="vt", store=MemoryStore())

    @app.message()
    def stop(event: Any, ctx: Any) -> None:
        if event.text == "boom":
            raise SystemExit(3)
        ctx.reply("Hallo!")

    raw, headers = fake.sign(fake.inbound.whatsapp_text("4915112345678", "boom"))
    with pytest.raises(SystemExit):  # as asyncio.run would have let it through
        app.dispatch_sync(WebhookRequest("POST", raw, headers))
    raw, headers = fake.sign(fake.inbound.whatsapp_text("4915112345679", "hello"))
    assert app.dispatch_sync(WebhookRequest("POST", raw, headers)).status == 200


def test_many_apps_share_one_loop_thread(fake: FakeGraphAPI) -> None:
    # A test suite building an app per test must not pile up threads and open files.
    for _ in range(5):
        app = _app(fake, "Hallo!")
        raw, headers = fake.sign(fake.inbound.whatsapp_text("4915112345678", "Hi"))
        assert app.dispatch_sync(WebhookRequest("POST", raw, headers)).status == 200
    assert len(_sync_loop_threads()) == 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_dispatch_sync_works_in_a_child_forked_after_it_was_used(fake: FakeGraphAPI) -> None:
    # gunicorn --preload with a warm-up request: the child has the loop but not its thread.
    app = _app(fake, "Hallo!")
    raw, headers = fake.sign(fake.inbound.whatsapp_text("4915112345678", "Hi"))
    assert app.dispatch_sync(WebhookRequest("POST", raw, headers)).status == 200
    child = os.fork()
    if child == 0:  # pragma: no cover  # the child reports by its exit status only
        signal.alarm(10)
        raw, headers = fake.sign(fake.inbound.whatsapp_text("4915112345679", "Hi"))
        ok = app.dispatch_sync(WebhookRequest("POST", raw, headers)).status == 200
        os._exit(0 if ok else 1)
    _, status = os.waitpid(child, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status


def test_dispatch_sync_on_its_own_loop_is_refused_not_deadlocked(fake: FakeGraphAPI) -> None:
    app = _app(fake, "Hallo!")
    raw, headers = fake.sign(fake.inbound.whatsapp_text("4915112345678", "Hi"))

    async def from_the_loop() -> str:
        try:
            app.dispatch_sync(WebhookRequest("POST", raw, headers))
        except ConfigError as exc:
            return str(exc)
        return "no error"

    assert "await dispatch()" in app._sync_loop.run(from_the_loop())
