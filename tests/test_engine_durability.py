"""Outages and crashes: nothing the shop sends is lost, nothing is sent twice, order is kept."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

from tests.engine_flows import EchoFlow
from waflow import App
from waflow.flows.engine import Engine
from waflow.store import MemoryStore, SQLiteStore, Store
from waflow.testing import FakeGraphAPI, FrozenClock

ROOT = Path(__file__).resolve().parents[1]


def _app(fake: FakeGraphAPI, store: Store, clock: FrozenClock | None = None) -> App:
    engine = Engine(EchoFlow, store=store, clock=clock, whatsapp_number=fake.phone_number_id)
    return App(
        app_secret=fake.app_secret,
        store=store,
        whatsapp=fake.async_whatsapp(),
        clock=clock,
        engine=engine,
    )


def _by_customer(fake: FakeGraphAPI) -> dict[str, list[str]]:
    replies: dict[str, list[str]] = defaultdict(list)
    for message in fake.sent:
        replies[message.to].append(message.text or "")
    return replies


async def test_replies_queued_during_an_outage_all_arrive_in_order_once() -> None:
    clock = FrozenClock()
    fake = FakeGraphAPI(clock=clock)
    app = _app(fake, MemoryStore(), clock)
    fake.outage(60)
    customers, each = 20, 5
    for n in range(each):
        for c in range(customers):
            body = fake.inbound.whatsapp_text(f"49151000000{c:02d}", f"{c}:{n}")
            response = await app.dispatch(fake.webhook_request(body))
            assert response.status == 200  # webhooks are answered throughout the outage
        clock.advance(5)
        await app.run_pending()
    assert fake.sent == []  # Meta was down the whole time
    assert any(r.status_code == 503 for r in fake.requests)

    for _ in range(40):  # the outage ends at 60 s; retries back off up to 60 s
        clock.advance(5)
        await app.run_pending()
    replies = _by_customer(fake)
    assert len(fake.sent) == customers * each
    for c in range(customers):
        assert replies[f"49151000000{c:02d}"] == [f"echo: {c}:{n}" for n in range(each)]
    assert len({m.body["biz_opaque_callback_data"] for m in fake.sent}) == customers * each


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
async def test_a_killed_worker_loses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "shop.db"
    customers, each = 10, 3
    worker = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.crash_worker",
        str(path),
        str(customers),
        str(each),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert worker.stdout is not None
        line = await asyncio.wait_for(worker.stdout.readline(), timeout=60)
        if line.strip() != b"READY":
            assert worker.stderr is not None
            pytest.fail(f"worker did not get ready: {(await worker.stderr.read()).decode()}")
        worker.send_signal(signal.SIGKILL)  # no chance to clean up
        assert await asyncio.wait_for(worker.wait(), timeout=10) == -signal.SIGKILL
    finally:
        if worker.returncode is None:
            worker.kill()
            await worker.wait()

    store = SQLiteStore(path)
    assert len(await store.outbox_list("pending", limit=1000)) == customers * each
    fake = FakeGraphAPI()  # Meta is back; a new process takes over the same file
    app = _app(fake, store)
    deadline = time.monotonic() + 30
    while len(fake.sent) < customers * each and time.monotonic() < deadline:
        await app.run_pending()  # the dead worker's backoff (a second or two) runs out
        await asyncio.sleep(0.2)
    replies = _by_customer(fake)
    assert len(fake.sent) == customers * each
    for c in range(customers):
        assert replies[f"49151000000{c:02d}"] == [f"echo: {c}:{n}" for n in range(each)]
    assert await store.outbox_list("pending") == []
    await store.close()
