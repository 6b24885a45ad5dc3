"""A worker process for the concurrency test: several processes on one shared store.

``python -m tests.store_worker <store url> <prefix> <customers> <each>`` dispatches every webhook
of the test, in order, to its own App on the shared store (a Redis with ``prefix``, or a SQLite
file; the other worker gets the same deliveries, as behind a load balancer that retries), then
keeps handling until every event is.
"""

from __future__ import annotations

import asyncio
import sys

from tests.engine_flows import CountFlow
from waflow import App
from waflow.app import WebhookRequest
from waflow.flows.engine import Engine
from waflow.store import Store, open_store
from waflow.testing import FakeGraphAPI, FrozenClock
from waflow.webhooks import sign


def bodies(customers: int, each: int) -> list[bytes]:
    """The same signed bodies in every process: a seeded fake on a frozen clock builds them."""
    fake = FakeGraphAPI(seed=11, clock=FrozenClock("2026-03-02T09:00:00Z"))
    built = []
    for n in range(each):
        for c in range(customers):
            body = fake.inbound.whatsapp_text(f"49151000000{c:02d}", f"{c}:{n}")
            built.append(fake.sign(body)[0])
    return built


def shared_store(url: str, prefix: str) -> Store:
    """The store every worker of the test opens: Redis under ``prefix``, or the SQLite file."""
    if url.startswith("redis"):
        from waflow.store.redis import RedisStore

        return RedisStore.from_url(url, prefix=prefix)
    return open_store(url)


async def main(url: str, prefix: str, customers: int, each: int) -> None:
    fake = FakeGraphAPI(seed=11)
    store = shared_store(url, prefix)
    engine = Engine(CountFlow, store=store, whatsapp_number=fake.phone_number_id)
    app = App(
        app_secret=fake.app_secret, store=store, whatsapp=fake.async_whatsapp(), engine=engine
    )
    for raw in bodies(customers, each):
        request = WebhookRequest("POST", raw, {"X-Hub-Signature-256": sign(raw, fake.app_secret)})
        response = await app.dispatch(request)
        assert response.status == 200, response.text
    for _ in range(600):  # until the other worker's leases and retries are settled too
        await app.run_pending()
        if not await store.inbox_due_customers(engine.clock.now()):
            break
        await asyncio.sleep(0.05)
    await store.close()
    print(f"DONE {CountFlow.handled}", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
