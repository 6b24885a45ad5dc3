"""A worker process for the crash test: records webhooks while Meta is down, then waits to be killed.

Run as ``python -m tests.crash_worker <sqlite path> <customers> <messages each>``; prints READY
when every reply is queued in the outbox (none sent: the fake Graph API is in an outage).
"""

from __future__ import annotations

import asyncio
import sys

from tests.engine_flows import EchoFlow
from waflow import App
from waflow.flows.engine import Engine
from waflow.store import SQLiteStore
from waflow.testing import FakeGraphAPI


async def main(path: str, customers: int, each: int) -> None:
    fake = FakeGraphAPI()
    fake.outage()  # Meta is down for as long as this process lives
    store = SQLiteStore(path)
    engine = Engine(EchoFlow, store=store, whatsapp_number=fake.phone_number_id)
    app = App(
        app_secret=fake.app_secret, store=store, whatsapp=fake.async_whatsapp(), engine=engine
    )
    for n in range(each):
        for c in range(customers):
            body = fake.inbound.whatsapp_text(f"49151000000{c:02d}", f"{c}:{n}")
            response = await app.dispatch(fake.webhook_request(body))
            assert response.status == 200, response.text
    print("READY", flush=True)
    await asyncio.Event().wait()  # until SIGKILL


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
