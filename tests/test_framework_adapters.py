"""The FastAPI and Flask examples serve the webhook like the ASGI app does."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest

from waflow import App
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
