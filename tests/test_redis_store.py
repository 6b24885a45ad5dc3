"""What only Redis with many clients shows: races between workers, key prefixes, exact round-trips.

The contract suite (test_store_contract.py) pins the semantics shared with the other stores; here
two ``RedisStore`` instances — separate clients, separate connections, like two worker machines —
race on the same keys from many asyncio tasks.
"""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone

import pytest
from redis.asyncio import Redis

from waflow.errors import ConcurrentUpdateError, ConfigError
from waflow.store import (
    Commit,
    Document,
    NewInboxItem,
    NewOutboxItem,
    RedisStore,
    StatusUpdate,
    open_store,
)
from waflow.store import redis as redis_store

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
WORKERS = 16  # tasks per store


@pytest.fixture
async def stores(clean_redis_url: str) -> AsyncIterator[tuple[RedisStore, RedisStore]]:
    first, second = RedisStore(clean_redis_url), RedisStore(clean_redis_url)
    yield first, second
    await first.close()
    await second.close()


def out(item_id: str, customer: str, at: datetime = T0) -> NewOutboxItem:
    return NewOutboxItem(item_id, customer, "whatsapp", "106540352242922", {"n": item_id}, at)


@pytest.mark.redis
async def test_the_same_event_added_by_two_workers_is_new_exactly_once(
    stores: tuple[RedisStore, RedisStore],
) -> None:
    keys = [f"wamid.{n}" for n in range(50)]

    async def add(store: RedisStore, key: str) -> bool:
        (added,) = await store.inbox_add([NewInboxItem(key, "c1", {"key": key})], T0)
        return added

    attempts = [(store, key) for key in keys for store in stores]
    results = await asyncio.gather(*(add(store, key) for store, key in attempts))
    new = Counter(key for (_, key), added in zip(attempts, results, strict=True) if added)
    assert new == Counter(keys)  # each key reported new once, whichever worker won


@pytest.mark.redis
async def test_racing_inbox_workers_handle_every_event_once_and_in_order(
    stores: tuple[RedisStore, RedisStore],
) -> None:
    customers = [f"c{n}" for n in range(8)]
    events = [NewInboxItem(f"{c}-{i}", c, {"i": i}) for i in range(15) for c in customers]
    await stores[0].inbox_add(events, T0)
    handled: list[tuple[str, str]] = []  # (owner, key) in the order leases were granted

    async def worker(store: RedisStore, owner: str) -> None:
        while due := await store.inbox_due_customers(T0):
            for customer in due:
                leased = await store.inbox_claim(customer, T0, 60, owner)
                if leased is not None:
                    handled.append((owner, leased.key))
                    await store.inbox_complete(leased.key, owner)
            await asyncio.sleep(0)

    await asyncio.gather(
        *(worker(store, f"s{s}-w{w}") for s, store in enumerate(stores) for w in range(WORKERS))
    )
    keys = [key for _, key in handled]
    assert sorted(keys) == sorted(event.key for event in events)  # all of them, none twice
    assert len({owner.split("-")[0] for owner, _ in handled}) == 2  # both clients took part
    for customer in customers:
        mine = [key for key in keys if key.startswith(f"{customer}-")]
        assert mine == [f"{customer}-{i}" for i in range(15)]
    for event in events:
        item = await stores[1].inbox_get(event.key)
        assert item is not None and (item.state, item.attempts) == ("done", 1)


@pytest.mark.redis
async def test_racing_outbox_senders_send_every_message_once_in_order(
    stores: tuple[RedisStore, RedisStore],
) -> None:
    customers = [f"c{n}" for n in range(10)]
    messages = [out(f"{c}-{i}", c) for i in range(12) for c in customers]
    await stores[0].commit(Commit(outbox=messages))
    leased: list[str] = []

    async def sender(store: RedisStore, owner: str) -> None:
        while batch := await store.outbox_claim(T0, 60, owner, limit=3):
            for item in batch:
                leased.append(item.id)
                await asyncio.sleep(0)  # let other senders try to grab the same head
                await store.outbox_complete(item.id, owner, f"wamid.{item.id}", T0)

    await asyncio.gather(
        *(sender(store, f"s{s}-w{w}") for s, store in enumerate(stores) for w in range(WORKERS))
    )
    assert sorted(leased) == sorted(message.id for message in messages)
    for customer in customers:
        assert [i for i in leased if i.startswith(f"{customer}-")] == [
            f"{customer}-{i}" for i in range(12)
        ]
    sent = await stores[1].outbox_list("sent", limit=1000)
    assert len(sent) == len(messages) and all(item.attempts == 1 for item in sent)
    assert await stores[1].outbox_list("pending") == []


@pytest.mark.redis
async def test_of_racing_commits_at_one_version_exactly_one_applies(
    stores: tuple[RedisStore, RedisStore],
) -> None:
    await stores[0].commit(Commit(save=[Document("cust-1", {"n": 0}, 0)]))

    async def attempt(store: RedisStore, n: int) -> str:
        change = Commit(
            save=[Document("cust-1", {"n": n}, 1)],
            index={f"wa_id:{n}": "cust-1"},
            outbox=[out(f"o{n}", "cust-1")],
        )
        try:
            await store.commit(change)
        except ConcurrentUpdateError as exc:
            return str(exc)
        return "applied"

    results = await asyncio.gather(*(attempt(stores[n % 2], n) for n in range(40)))
    assert Counter(results) == {"applied": 1, "customer cust-1 is at version 2, not 1": 39}
    winner = results.index("applied")
    assert await stores[1].document_get("cust-1") == Document("cust-1", {"n": winner}, 2)
    assert [item.id for item in await stores[1].outbox_list("pending")] == [f"o{winner}"]
    known = await stores[1].index_lookup([f"wa_id:{n}" for n in range(40)])
    assert known == {f"wa_id:{winner}": "cust-1"}  # the losers' index keys were not written


@pytest.mark.redis
async def test_read_modify_write_with_retries_loses_no_update(
    stores: tuple[RedisStore, RedisStore],
) -> None:
    conflicts = 0

    async def increment(store: RedisStore) -> None:
        nonlocal conflicts
        while True:
            current = await store.document_get("counter")
            version = 0 if current is None else current.version
            count = 0 if current is None else current.data["count"]
            try:
                await store.commit(
                    Commit(save=[Document("counter", {"count": count + 1}, version)])
                )
                return
            except ConcurrentUpdateError:
                conflicts += 1

    await asyncio.gather(*(increment(stores[n % 2]) for n in range(30)))
    final = await stores[0].document_get("counter")
    assert final is not None and final.data == {"count": 30} and final.version == 30
    assert conflicts > 0  # the race really happened


@pytest.mark.redis
async def test_a_lock_is_held_by_one_worker_at_a_time(
    stores: tuple[RedisStore, RedisStore],
) -> None:
    granted = await asyncio.gather(
        *(stores[n % 2].lock_acquire("cust-1", f"w{n}", 30, T0) for n in range(40))
    )
    assert granted.count(True) == 1

    holders: set[str] = set()
    overlaps = 0

    async def critical(store: RedisStore, owner: str) -> None:
        nonlocal overlaps
        for _ in range(5):
            while True:
                if await store.lock_acquire("cust-2", owner, 30, datetime.now(timezone.utc)):
                    break
                await asyncio.sleep(0)  # someone else holds it: let them finish
            holders.add(owner)
            overlaps += len(holders) > 1
            await asyncio.sleep(0)
            holders.discard(owner)
            await store.lock_release("cust-2", owner)

    await asyncio.gather(*(critical(stores[n % 2], f"w{n}") for n in range(10)))
    assert overlaps == 0


@pytest.mark.redis
async def test_two_prefixes_on_one_database_do_not_see_each_other(clean_redis_url: str) -> None:
    shop_a = RedisStore(clean_redis_url, prefix="shop-a:")
    shop_b = RedisStore(clean_redis_url, prefix="shop-b:")
    raw = Redis.from_url(clean_redis_url, decode_responses=True)
    try:
        # exercise every kind of key in shop A
        await shop_a.inbox_add([NewInboxItem("e1", "c1", {}), NewInboxItem("e2", "c1", {})], T0)
        await shop_a.inbox_claim("c1", T0, 60, "w")
        await shop_a.inbox_complete("e1", "w")
        await shop_a.inbox_claim("c1", T0, 60, "w")
        await shop_a.inbox_fail("e2", "w", "boom", None)
        await shop_a.record_status(StatusUpdate("wamid.1", "failed", T0, errors=[{"code": 1}]))
        await shop_a.commit(
            Commit(
                save=[Document("cust-1", {}, 0)],
                index={"wa_id:4915": "cust-1"},
                deadlines={"cust-1": T0},
                handoffs=[{"code": "K7Q2"}],
                outbox=[out("o1", "cust-1"), out("o2", "cust-1"), out("o3", "cust-2")],
            )
        )
        await shop_a.outbox_claim(T0, 60, "w")
        await shop_a.outbox_complete("o1", "w", "wamid.2", T0)
        await shop_a.outbox_fail("o3", "w", "bad", None)
        assert await shop_a.lock_acquire("lock-1", "w", 30, T0)

        keys = [key async for key in raw.scan_iter()]
        assert keys and all(key.startswith("shop-a:") for key in keys), keys

        assert await shop_b.inbox_get("e1") is None
        assert await shop_b.inbox_dead() == []
        assert await shop_b.inbox_due_customers(T0 + timedelta(days=1)) == []
        assert await shop_b.message_record("wamid.1") is None
        assert await shop_b.document_get("cust-1") is None
        assert await shop_b.index_lookup(["wa_id:4915"]) == {}
        assert await shop_b.handoff_get("K7Q2") is None
        assert await shop_b.deadlines_due(T0) == []
        assert await shop_b.outbox_claim(T0 + timedelta(days=1), 60, "w") == []
        assert await shop_b.outbox_list("parked") == []
        assert await shop_b.lock_acquire("lock-1", "other", 30, T0)
        assert await shop_b.inbox_add([NewInboxItem("e1", "c1", {})], T0) == [True]
        # and B's writes did not disturb A
        assert (await shop_a.inbox_add([NewInboxItem("e1", "c1", {})], T0)) == [False]
        assert not await shop_a.lock_acquire("lock-1", "other", 30, T0)
    finally:
        await shop_a.close()
        await shop_b.close()
        await raw.aclose()


@pytest.mark.redis
async def test_timestamps_and_json_survive_the_scripts_exactly(
    stores: tuple[RedisStore, RedisStore],
) -> None:
    # Microseconds need 16 significant digits; Lua prints numbers with 14. Data that Lua's cjson
    # would mangle (0.1 + 0.2, an empty list) must come back as written.
    store = stores[0]
    at = datetime(2026, 3, 2, 9, 0, 0, 123457, tzinfo=timezone.utc)
    berlin = timezone(timedelta(hours=1))
    data = {"x": 0.1 + 0.2, "empty": [], "nested": {"big": 2**62, "s": "ü|\n"}}
    await store.inbox_add([NewInboxItem("e1", "c|1", data)], at)
    leased = await store.inbox_claim("c|1", at, 0.000001, "w")
    assert leased is not None and leased.event == data and leased.received_at == at
    assert leased.lease_until == at + timedelta(microseconds=1)
    await store.inbox_fail("e1", "w", "later", at + timedelta(seconds=1.5))
    retrying = await store.inbox_get("e1")
    assert retrying is not None and retrying.next_attempt_at == at + timedelta(seconds=1.5)
    assert await store.inbox_due_customers(at + timedelta(seconds=1.499999)) == []
    assert await store.inbox_due_customers(at + timedelta(seconds=1.5)) == ["c|1"]

    record = await store.record_status(StatusUpdate("wamid.1", "sent", at.astimezone(berlin)))
    assert record.statuses == {"sent": at}
    await store.commit(
        Commit(
            save=[Document("cust-1", data, 0)],
            deadlines={"cust-1": at},
            outbox=[NewOutboxItem("o1", "c|1", "whatsapp", "1", data, at)],
        )
    )
    assert await store.deadlines_due(at - timedelta(microseconds=1)) == []
    assert await store.deadlines_due(at) == [("cust-1", at)]
    document = await store.document_get("cust-1")
    assert document is not None and document.data == data
    (message,) = await store.outbox_claim(at, 60, "w")
    assert (message.message, message.created_at, message.customer) == (data, at, "c|1")


@pytest.mark.redis
async def test_a_client_passed_in_is_used_as_is_and_left_open(clean_redis_url: str) -> None:
    client = Redis.from_url(clean_redis_url, decode_responses=True)  # str replies, not bytes
    store = RedisStore(client, prefix="mine:")
    await store.commit(Commit(save=[Document("cust-1", {"a": 1}, 0)], index={"k": "cust-1"}))
    assert await store.document_get("cust-1") == Document("cust-1", {"a": 1}, 1)
    assert await store.index_lookup(["k"]) == {"k": "cust-1"}
    await store.record_status(StatusUpdate("wamid.1", "read", T0, recipient="49151"))
    record = await store.message_record("wamid.1")
    assert record is not None and (record.status, record.recipient) == ("read", "49151")
    await store.close()
    assert await client.ping()  # still open: the store did not make it
    await client.aclose()


@pytest.mark.redis
async def test_open_store_chooses_redis_for_redis_urls(clean_redis_url: str) -> None:
    store = open_store(clean_redis_url)
    assert isinstance(store, RedisStore)
    assert await store.inbox_add([NewInboxItem("e1", "c1", {})], T0) == [True]
    await store.close()
    tls = open_store("rediss://127.0.0.1:6380/0")  # made, not connected
    assert isinstance(tls, RedisStore)
    await tls.close()


def test_without_the_redis_package_the_error_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)  # makes `import redis` raise ImportError
    with pytest.raises(ConfigError, match=r"pip install 'waflow\[redis\]'"):
        RedisStore("redis://127.0.0.1:6379/0")


@pytest.mark.redis
async def test_prunes_go_batch_by_batch_and_leave_no_keys_behind(
    stores: tuple[RedisStore, RedisStore], clean_redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(redis_store, "PRUNE_BATCH", 2)  # several script runs per prune
    store = stores[0]
    later = T0 + timedelta(days=100)
    await store.commit(Commit(outbox=[out(f"s{n}", f"s{n}") for n in range(5)]))
    await store.commit(Commit(outbox=[out(f"p{n}", f"p{n}") for n in range(3)]))
    await store.commit(Commit(outbox=[out("p-new", "p-new", later)]))
    for item in await store.outbox_claim(later, 60, "w", limit=100):
        if item.id.startswith("s"):
            await store.outbox_complete(item.id, "w", f"wamid.{item.id}", T0)
        else:
            await store.outbox_fail(item.id, "w", "RecipientError: 131026", None)
    for n in range(5):
        await store.record_status(StatusUpdate(f"wamid.{n}", "failed", T0, errors=[{"code": 1}]))
    await store.record_status(StatusUpdate("wamid.new", "sent", later))

    cut = T0 + timedelta(days=1)
    assert await store.outbox_prune(cut, cut) == 8
    assert await store.status_prune(cut) == 5
    assert [item.id for item in await store.outbox_list("parked")] == ["p-new"]
    assert await store.outbox_list("sent") == []
    raw = Redis.from_url(clean_redis_url, decode_responses=True)
    try:
        keys = {key async for key in raw.scan_iter("waflow:*")}
        assert {key for key in keys if ":item:" in key} == {"waflow:outbox:item:p-new"}
        assert {key for key in keys if key.startswith("waflow:status")} == {
            "waflow:status:wamid.new",
            "waflow:status-times",
        }
        assert await raw.zrange("waflow:status-times", 0, -1) == ["wamid.new"]
    finally:
        await raw.aclose()
