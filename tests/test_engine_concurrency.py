"""Two worker processes on one store (Redis, or one SQLite file): every transition exactly once,
each customer's order kept."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from pathlib import Path

import pytest

from tests.engine_flows import CountFlow
from tests.store_worker import shared_store
from waflow.flows.engine import Engine
from waflow.flows.identity import LinkedId

ROOT = Path(__file__).resolve().parents[1]
CUSTOMERS, EACH = 20, 10  # 200 events


async def _worker(
    url: str, prefix: str, index: int, workers: int, barrier: Path
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.store_worker",
        url,
        prefix,
        str(CUSTOMERS),
        str(EACH),
        str(index),
        str(workers),
        str(barrier),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


@pytest.mark.redis
@pytest.mark.slow
async def test_two_workers_on_redis_apply_every_event_once_in_order(
    clean_redis_url: str, tmp_path: Path
) -> None:
    prefix = f"waflow-test-{uuid.uuid4().hex[:8]}:"
    await _two_workers(clean_redis_url, prefix, tmp_path)


@pytest.mark.slow
async def test_two_workers_on_one_sqlite_file_apply_every_event_once_in_order(
    tmp_path: Path,
) -> None:
    # SQLite's busy wait is not fair: on a loaded machine one process's back-to-back commits can
    # keep the other waiting for the whole run (seen in CI: 200 and 0), so only exactly-once and
    # order are required here, not that both workers took part.
    await _two_workers(f"sqlite:///{tmp_path / 'shared.db'}", "", tmp_path, both_take_part=False)


async def _two_workers(
    url: str, prefix: str, barrier: Path, *, both_take_part: bool = True
) -> None:
    workers = [await _worker(url, prefix, index, 2, barrier) for index in range(2)]
    outputs = await asyncio.wait_for(
        asyncio.gather(*(w.communicate() for w in workers)), timeout=240
    )
    handled = []
    for worker, (stdout, stderr) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, stderr.decode()[-3000:]
        word, count = stdout.decode().split()
        assert word == "DONE"
        handled.append(int(count))
    # Both workers did part of the work, and together each event exactly once.
    assert sum(handled) == CUSTOMERS * EACH
    if both_take_part:
        assert min(handled) > 0, handled

    store = shared_store(url, prefix)
    engine = Engine(CountFlow, store=store)
    try:
        for c in range(CUSTOMERS):
            key = LinkedId(kind="wa_id", value=f"49151000000{c:02d}").key
            (customer_id,) = (await store.index_lookup([key])).values()
            customer = await engine.customer(customer_id)
            assert customer is not None
            # Exactly once each, and in the order Meta sent them.
            assert customer.data["seen"] == list(range(EACH)), f"customer {c}"
            assert len(customer.applied) == EACH
        assert await store.inbox_dead() == []
    finally:
        await store.close()
