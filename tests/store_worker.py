"""A worker process for the concurrency test: several processes on one shared store.

``python -m tests.store_worker <store url> <prefix> <customers> <each> <index> <workers>
<barrier dir>`` dispatches every webhook of the test to its own App on the shared store (a Redis
with ``prefix``, or a SQLite file; the other workers get the same deliveries, as behind a load
balancer that retries), then keeps handling until every event is.

So that every worker takes part whatever the machine's load, the workers start together (each
waits in ``<barrier dir>`` until all are ready) and worker ``index`` first delivers the bodies of
its own share of the customers (``c % workers == index``), then all the others; each customer's
bodies go in Meta's order in every worker.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

from tests.engine_flows import CountFlow
from waflow import App
from waflow.app import WebhookRequest
from waflow.flows.engine import Engine
from waflow.store import Store, open_store
from waflow.testing import FakeGraphAPI, FrozenClock
from waflow.webhooks import sign


def bodies(customers: int, each: int) -> list[tuple[int, bytes]]:
    """The same signed bodies in every process (with their customer's number), in Meta's order:
    a seeded fake on a frozen clock builds them."""
    fake = FakeGraphAPI(seed=11, clock=FrozenClock("2026-03-02T09:00:00Z"))
    built = []
    for n in range(each):
        for c in range(customers):
            body = fake.inbound.whatsapp_text(f"49151000000{c:02d}", f"{c}:{n}")
            built.append((c, fake.sign(body)[0]))
    return built


def await_the_others(barrier: Path, workers: int) -> None:
    """Say this worker is ready, and wait (at most a minute) until every worker is."""
    (barrier / f"ready-{os.getpid()}").touch()
    deadline = time.monotonic() + 60
    while len(list(barrier.glob("ready-*"))) < workers and time.monotonic() < deadline:
        time.sleep(0.01)


def shared_store(url: str, prefix: str) -> Store:
    """The store every worker of the test opens: Redis under ``prefix``, or the SQLite file."""
    if url.startswith("redis"):
        from waflow.store.redis import RedisStore

        return RedisStore.from_url(url, prefix=prefix)
    return open_store(url)


async def main(
    url: str, prefix: str, customers: int, each: int, index: int, workers: int, barrier: Path
) -> None:
    fake = FakeGraphAPI(seed=11)
    store = shared_store(url, prefix)
    engine = Engine(CountFlow, store=store, whatsapp_number=fake.phone_number_id)
    app = App(
        app_secret=fake.app_secret, store=store, whatsapp=fake.async_whatsapp(), engine=engine
    )
    built = bodies(customers, each)
    mine = [raw for c, raw in built if c % workers == index]
    others = [raw for c, raw in built if c % workers != index]
    await_the_others(barrier, workers)
    for raw in mine + others:
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
    url, prefix, customers, each, index, workers, barrier = sys.argv[1:]
    asyncio.run(
        main(url, prefix, int(customers), int(each), int(index), int(workers), Path(barrier))
    )
