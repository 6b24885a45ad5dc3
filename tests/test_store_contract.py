"""The Store contract: one suite, every implementation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from waflow.store import MemoryStore, NewInboxItem, SQLiteStore, StatusUpdate, Store

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    made: Store = MemoryStore() if request.param == "memory" else SQLiteStore(tmp_path / "s.db")
    yield made
    await made.close()


def item(key: str, customer: str = "c1") -> NewInboxItem:
    return NewInboxItem(key=key, customer=customer, event={"key": key})


async def test_add_reports_which_items_are_new(store: Store) -> None:
    assert await store.inbox_add([item("a"), item("b")], T0) == [True, True]
    assert await store.inbox_add([item("b"), item("c"), item("c")], T0) == [False, True, False]


async def test_claim_takes_the_oldest_pending_item_of_a_customer(store: Store) -> None:
    await store.inbox_add([item("a"), item("x", "c2"), item("b")], T0)
    first = await store.inbox_claim("c1", T0, 60, "w1")
    assert first is not None and first.key == "a" and first.event == {"key": "a"}
    assert first.lease_owner == "w1"
    # leased: nobody else gets the head, and the next item waits behind it
    assert await store.inbox_claim("c1", T0, 60, "w2") is None
    await store.inbox_complete("a", "w1")
    second = await store.inbox_claim("c1", T0, 60, "w2")
    assert second is not None and second.key == "b"


async def test_an_expired_lease_can_be_taken_over(store: Store) -> None:
    await store.inbox_add([item("a")], T0)
    assert await store.inbox_claim("c1", T0, 60, "crashed") is not None
    assert await store.inbox_claim("c1", T0 + timedelta(seconds=59), 60, "w2") is None
    taken = await store.inbox_claim("c1", T0 + timedelta(seconds=61), 60, "w2")
    assert taken is not None and taken.lease_owner == "w2"
    # the crashed worker's late completion is ignored: only the lease owner may settle it
    await store.inbox_complete("a", "crashed")
    current = await store.inbox_get("a")
    assert current is not None and current.state == "pending"


async def test_failure_schedules_a_retry_that_blocks_later_items(store: Store) -> None:
    await store.inbox_add([item("a"), item("b")], T0)
    await store.inbox_claim("c1", T0, 60, "w")
    await store.inbox_fail("a", "w", "boom", T0 + timedelta(seconds=30))
    assert await store.inbox_claim("c1", T0 + timedelta(seconds=10), 60, "w") is None
    assert await store.inbox_due_customers(T0 + timedelta(seconds=10)) == []
    assert await store.inbox_due_customers(T0 + timedelta(seconds=30)) == ["c1"]
    retried = await store.inbox_claim("c1", T0 + timedelta(seconds=30), 60, "w")
    assert retried is not None and retried.key == "a"
    assert (retried.attempts, retried.last_error) == (1, "boom")


async def test_dead_letters_stop_blocking_and_can_be_replayed(store: Store) -> None:
    await store.inbox_add([item("a"), item("b")], T0)
    await store.inbox_claim("c1", T0, 60, "w")
    await store.inbox_fail("a", "w", "still broken", None)
    dead = await store.inbox_dead()
    assert [(d.key, d.state, d.attempts, d.last_error) for d in dead] == [
        ("a", "dead", 1, "still broken")
    ]
    nxt = await store.inbox_claim("c1", T0, 60, "w")
    assert nxt is not None and nxt.key == "b"
    await store.inbox_complete("b", "w")
    assert await store.inbox_replay("a", T0) is True
    assert await store.inbox_replay("a", T0) is False
    again = await store.inbox_claim("c1", T0, 60, "w")
    assert again is not None and again.key == "a" and again.attempts == 0
    assert await store.inbox_dead() == []


async def test_due_customers_lists_heads_in_arrival_order(store: Store) -> None:
    await store.inbox_add([item("a", "c2"), item("b", "c1"), item("c", "c2")], T0)
    assert await store.inbox_due_customers(T0) == ["c2", "c1"]
    await store.inbox_claim("c2", T0, 60, "w")
    assert await store.inbox_due_customers(T0) == ["c1"]


async def test_prune_forgets_only_old_handled_items(store: Store) -> None:
    await store.inbox_add([item("old")], T0)
    await store.inbox_add([item("new"), item("pending")], T0 + timedelta(days=9))
    for key in ("old", "new"):
        await store.inbox_claim("c1", T0 + timedelta(days=9), 60, "w")
        await store.inbox_complete(key, "w")
    assert await store.inbox_prune(T0 + timedelta(days=1)) == 1
    assert await store.inbox_get("old") is None
    assert await store.inbox_get("new") is not None
    assert await store.inbox_get("pending") is not None


async def test_status_records_never_go_backwards(store: Store) -> None:
    def update(status: str, minute: int, **kw: object) -> StatusUpdate:
        return StatusUpdate("wamid.1", status, T0 + timedelta(minutes=minute), **kw)  # type: ignore[arg-type]

    assert (
        await store.record_status(update("sent", 0, recipient="49151", callback_data="ob:1"))
    ).status == "sent"
    assert (await store.record_status(update("read", 2))).status == "read"
    record = await store.record_status(update("delivered", 1))  # arrives late
    assert record.status == "read"
    assert set(record.statuses) == {"sent", "delivered", "read"}
    assert record.statuses["delivered"] == T0 + timedelta(minutes=1)
    assert (record.recipient, record.callback_data) == ("49151", "ob:1")
    failed = await store.record_status(update("failed", 3, errors=[{"code": 131026}]))
    assert failed.status == "failed" and failed.errors == [{"code": 131026}]
    assert await store.message_record("wamid.1") == failed
    assert await store.message_record("wamid.unknown") is None


async def test_sqlite_keeps_everything_across_reopening(tmp_path: Path) -> None:
    path = tmp_path / "durable.db"
    first = SQLiteStore(path)
    await first.inbox_add([item("a")], T0)
    await first.record_status(StatusUpdate("wamid.1", "sent", T0))
    await first.close()
    second = SQLiteStore(path)
    assert second.schema_version == 1
    assert await second.inbox_add([item("a")], T0) == [False]
    claimed = await second.inbox_claim("c1", T0, 60, "w")
    assert claimed is not None and claimed.key == "a"
    assert (await second.message_record("wamid.1")) is not None
    await second.close()


def test_sqlite_refuses_a_newer_schema(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "future.db"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 99")
    with pytest.raises(RuntimeError, match="newer than this waflow"):
        SQLiteStore(path)
