"""The Store contract: one suite, every implementation."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from waflow.errors import ConcurrentUpdateError
from waflow.store import (
    Commit,
    Document,
    NewInboxItem,
    NewOutboxItem,
    OutboxCompletion,
    SQLiteStore,
    StatusUpdate,
    Store,
)
from waflow.store.base import LEASE_RAN_OUT
from waflow.store.sqlite import MIGRATIONS

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)


@pytest.fixture
def store(each_store: Store) -> Store:
    return each_store


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


async def test_taking_over_a_lease_that_ran_out_counts_an_attempt(store: Store) -> None:
    await store.inbox_add([item("a"), item("b")], T0)
    assert (await store.inbox_claim("c1", T0, 60, "w1")) is not None
    # w1 stopped (crash, kill) without settling: w2 takes the event over after the lease.
    taken = await store.inbox_claim("c1", T0 + timedelta(seconds=61), 60, "w2")
    assert taken is not None and taken.key == "a"
    assert (taken.attempts, taken.last_error) == (1, LEASE_RAN_OUT)
    stored = await store.inbox_get("a")
    assert stored is not None and (stored.attempts, stored.last_error) == (1, LEASE_RAN_OUT)
    # A claim after a settled attempt (a failure with a retry) counts nothing more.
    await store.inbox_fail("a", "w2", "ValueError: boom", T0 + timedelta(seconds=70))
    again = await store.inbox_claim("c1", T0 + timedelta(seconds=70), 60, "w3")
    assert again is not None and (again.attempts, again.last_error) == (2, "ValueError: boom")
    await store.inbox_complete("a", "w3")
    fresh = await store.inbox_claim("c1", T0 + timedelta(seconds=70), 60, "w3")
    assert fresh is not None and fresh.key == "b" and fresh.attempts == 0


async def test_add_claim_records_and_leases_the_first_new_customers_head_in_one_call(
    store: Store,
) -> None:
    added, leased = await store.inbox_add_claim(
        [item("a", "c2"), item("b", "c1"), item("c", "c2")], T0, 60, "w1"
    )
    assert added == [True, True, True]
    # only the first new event's customer is leased: the others get full leases in their turn
    assert leased is not None and (leased.key, leased.customer, leased.lease_owner) == (
        "a",
        "c2",
        "w1",
    )
    assert leased.event == {"key": "a"} and leased.lease_until == T0 + timedelta(seconds=60)
    assert await store.inbox_claim("c2", T0, 60, "w2") is None  # leased: nobody else takes it
    free = await store.inbox_claim("c1", T0, 60, "w2")
    assert free is not None and free.key == "b"


async def test_add_claim_leases_an_older_head_never_past_it(store: Store) -> None:
    await store.inbox_add([item("old", "c3")], T0)
    added, leased = await store.inbox_add_claim([item("seen", "c1"), item("d", "c3")], T0, 60, "w")
    assert added == [True, True]
    # "seen" (c1) is new too and comes first: c1 is the customer leased
    assert leased is not None and leased.key == "seen"
    added, leased = await store.inbox_add_claim([item("e", "c3")], T0, 60, "w")
    assert added == [True] and leased is not None and leased.key == "old"


async def test_add_claim_of_duplicates_or_behind_a_lease_leases_nothing(store: Store) -> None:
    await store.inbox_add_claim([item("a")], T0, 60, "w1")
    assert await store.inbox_add_claim([item("a")], T0, 60, "w2") == ([False], None)
    assert await store.inbox_add_claim([item("b")], T0, 60, "w2") == ([True], None)
    assert await store.inbox_add_claim([], T0, 60, "w2") == ([], None)


async def test_complete_tells_whether_the_customer_has_more_pending(store: Store) -> None:
    await store.inbox_add([item("a"), item("b"), item("x", "c2")], T0)
    await store.inbox_claim("c1", T0, 60, "w")
    assert await store.inbox_complete("a", "w") is True  # b still waits
    await store.inbox_claim("c1", T0, 60, "w")
    assert await store.inbox_complete("b", "w") is False
    await store.inbox_claim("c2", T0, 60, "w")
    # only the lease owner settles; a stranger's call changes nothing and promises nothing
    assert await store.inbox_complete("x", "stranger") is None
    assert await store.inbox_complete("x", "w") is False


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


async def test_renew_moves_the_end_of_the_owners_lease(store: Store) -> None:
    await store.inbox_add([item("a"), item("b", "c2")], T0)
    await store.inbox_claim("c1", T0, 60, "w1")
    assert await store.inbox_renew("a", "w1", T0 + timedelta(seconds=120)) is True
    # the renewed lease holds past the first one's end, for claims and for the due list
    assert await store.inbox_claim("c1", T0 + timedelta(seconds=90), 60, "w2") is None
    assert await store.inbox_due_customers(T0 + timedelta(seconds=90)) == ["c2"]
    current = await store.inbox_get("a")
    assert current is not None and current.lease_until == T0 + timedelta(seconds=120)
    taken = await store.inbox_claim("c1", T0 + timedelta(seconds=121), 60, "w2")
    assert taken is not None and taken.lease_owner == "w2"
    # a lease lost (taken over, settled, or never held) is not renewed
    assert await store.inbox_renew("a", "w1", T0 + timedelta(seconds=300)) is False
    assert await store.inbox_renew("b", "w1", T0 + timedelta(seconds=300)) is False
    await store.inbox_complete("a", "w2")
    assert await store.inbox_renew("a", "w2", T0 + timedelta(seconds=300)) is False


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
    assert second.schema_version == len(MIGRATIONS)
    assert await second.inbox_add([item("a")], T0) == [False]
    claimed = await second.inbox_claim("c1", T0, 60, "w")
    assert claimed is not None and claimed.key == "a"
    assert (await second.message_record("wamid.1")) is not None
    await second.close()


async def test_sqlite_migrates_an_older_database_forward(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "v1.db"
    with sqlite3.connect(path) as db:  # a database written by the first schema only
        db.executescript(MIGRATIONS[0])
        db.execute("PRAGMA user_version = 1")
        db.execute(
            "INSERT INTO inbox (key, seq, customer, event, state, received_at, next_attempt_at)"
            " VALUES ('old', 1, 'c1', '{}', 'pending', 0, 0)"
        )
    store = SQLiteStore(path)
    assert store.schema_version == len(MIGRATIONS)
    assert await store.inbox_add([item("old")], T0) == [False]  # kept its data
    await store.commit(Commit(outbox=[out("o1")]))  # and has the new tables
    assert await store.outbox_get("o1") is not None
    await store.close()


def test_sqlite_refuses_a_newer_schema(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "future.db"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 99")
    with pytest.raises(RuntimeError, match="newer than this waflow"):
        SQLiteStore(path)


# -- customers, commit, locks, outbox, deadlines ---------------------------------------------


def out(item_id: str, customer: str = "cust-1", at: datetime = T0) -> NewOutboxItem:
    return NewOutboxItem(item_id, customer, "whatsapp", "106540352242922", {"n": item_id}, at)


async def test_commit_saves_documents_with_optimistic_versions(store: Store) -> None:
    await store.commit(Commit(save=[Document("cust-1", {"name": "Lena"}, 0)]))
    saved = await store.document_get("cust-1")
    assert saved == Document("cust-1", {"name": "Lena"}, 1)
    await store.commit(Commit(save=[Document("cust-1", {"name": "Lena K."}, 1)]))
    with pytest.raises(ConcurrentUpdateError, match="version 2, not 1"):
        await store.commit(Commit(save=[Document("cust-1", {"name": "stale"}, 1)]))
    with pytest.raises(ConcurrentUpdateError):
        await store.commit(Commit(save=[Document("cust-1", {"name": "new?"}, 0)]))
    current = await store.document_get("cust-1")
    assert current is not None and current.data == {"name": "Lena K."} and current.version == 2


async def test_documents_get_reads_many_at_once(store: Store) -> None:
    await store.commit(Commit(save=[Document("a", {"n": 1}, 0), Document("b", {"n": 2}, 0)]))
    await store.commit(Commit(save=[Document("b", {"n": 3}, 1)]))

    found = await store.documents_get(["b", "missing", "a", "b"])

    assert found == {"a": Document("a", {"n": 1}, 1), "b": Document("b", {"n": 3}, 2)}
    assert await store.documents_get([]) == {}


async def test_a_failed_commit_applies_nothing(store: Store) -> None:
    await store.commit(Commit(save=[Document("a", {}, 0)]))
    change = Commit(
        save=[Document("b", {}, 0), Document("a", {}, 0)],  # "a" is stale
        index={"wa_id:4915": "b"},
        outbox=[out("o1", "b")],
        deadlines={"b": T0},
        handoffs=[{"code": "K7Q2-M9XP", "customer_id": "b"}],
    )
    with pytest.raises(ConcurrentUpdateError):
        await store.commit(change)
    assert await store.document_get("b") is None
    assert await store.index_lookup(["wa_id:4915"]) == {}
    assert await store.outbox_get("o1") is None
    assert await store.deadlines_due(T0) == []
    assert await store.handoff_get("K7Q2-M9XP") is None


async def test_index_handoffs_deadlines_and_deletes(store: Store) -> None:
    await store.commit(
        Commit(
            save=[Document("a", {}, 0), Document("b", {}, 0)],
            index={"psid:page:1": "a", "wa_id:4915": "b"},
            deadlines={"a": T0 + timedelta(hours=1), "b": T0 + timedelta(minutes=5)},
            handoffs=[{"code": "K7Q2-M9XP", "customer_id": "a"}],
        )
    )
    assert await store.index_lookup(["psid:page:1", "wa_id:4915", "nope"]) == {
        "psid:page:1": "a",
        "wa_id:4915": "b",
    }
    assert await store.handoff_get("K7Q2-M9XP") == {"code": "K7Q2-M9XP", "customer_id": "a"}
    assert await store.deadlines_due(T0) == []
    assert await store.deadlines_due(T0 + timedelta(hours=2)) == [
        ("b", T0 + timedelta(minutes=5)),
        ("a", T0 + timedelta(hours=1)),
    ]
    # merge b into a: move the index key, drop b and its deadline, use the code once
    await store.commit(
        Commit(
            save=[Document("a", {"merged": True}, 1)],
            delete=["b"],
            index={"wa_id:4915": "a"},
            deadlines={"a": None},
            handoffs_used=["K7Q2-M9XP"],
        )
    )
    assert await store.document_get("b") is None
    assert await store.index_lookup(["wa_id:4915"]) == {"wa_id:4915": "a"}
    assert await store.deadlines_due(T0 + timedelta(days=1)) == []
    assert await store.handoff_get("K7Q2-M9XP") is None


async def test_a_handoff_code_is_used_once_and_a_second_use_applies_nothing(store: Store) -> None:
    await store.commit(Commit(handoffs=[{"code": "K7Q2-M9XP", "customer_id": "a"}]))
    await store.commit(Commit(index={"wa_id:1": "a"}, handoffs_used=["K7Q2-M9XP"]))
    # Another event read the code before it was used: its commit must fail as a whole.
    with pytest.raises(ConcurrentUpdateError, match="handoff code"):
        await store.commit(
            Commit(
                save=[Document("x", {"linked": True}, 0)],
                index={"wa_id:2": "a"},
                handoffs_used=["K7Q2-M9XP"],
            )
        )
    assert await store.index_lookup(["wa_id:2"]) == {}
    assert await store.document_get("x") is None
    # A code stored and used by the same commit is there to be used.
    await store.commit(
        Commit(handoffs=[{"code": "A1B2-C3D4", "customer_id": "a"}], handoffs_used=["A1B2-C3D4"])
    )
    assert await store.handoff_get("A1B2-C3D4") is None


async def test_due_customers_come_the_longest_due_first(store: Store) -> None:
    # c1's event arrived first but was leased (its worker stopped) until T0+40s; c2's has been
    # due since T0+10s: c2 has waited longer. The same order on every store, as outbox_claim.
    seconds = timedelta(seconds=1)
    items = [NewInboxItem("a", "c1", {}), NewInboxItem("b", "c2", {})]
    await store.inbox_add_claim(items, T0 + 10 * seconds, 30, "w")
    assert await store.inbox_due_customers(T0 + 60 * seconds) == ["c2", "c1"]
    assert await store.inbox_due_customers(T0 + 60 * seconds, limit=1) == ["c2"]
    assert await store.inbox_due_customers(T0 + 20 * seconds) == ["c2"]  # c1 still leased


async def test_deadlines_due_at_the_same_moment_come_by_customer_id(store: Store) -> None:
    # Ties are broken the same way on every store (a limit then picks the same customers).
    for customer in ("d3", "d1", "d2"):
        await store.commit(Commit(deadlines={customer: T0}))
    assert [c for c, _ in await store.deadlines_due(T0)] == ["d1", "d2", "d3"]
    assert [c for c, _ in await store.deadlines_due(T0, limit=1)] == ["d1"]


async def test_locks_are_exclusive_until_they_expire(store: Store) -> None:
    assert await store.lock_acquire("cust-1", "w1", 30, T0)
    assert not await store.lock_acquire("cust-1", "w2", 30, T0 + timedelta(seconds=10))
    assert await store.lock_acquire("cust-1", "w1", 30, T0 + timedelta(seconds=10))  # re-entrant
    assert await store.lock_acquire("cust-1", "w2", 30, T0 + timedelta(seconds=41))  # expired
    await store.lock_release("cust-1", "w1")  # not the holder: no effect
    assert not await store.lock_acquire("cust-1", "w3", 30, T0 + timedelta(seconds=42))
    await store.lock_release("cust-1", "w2")
    assert await store.lock_acquire("cust-1", "w3", 30, T0 + timedelta(seconds=42))


async def test_outbox_renew_moves_the_end_of_the_owners_leases(store: Store) -> None:
    await store.commit(Commit(outbox=[out("a1", "a"), out("b1", "b"), out("c1", "c")]))
    claimed = await store.outbox_claim(T0, 60, "w1", limit=2)
    assert [item.id for item in claimed] == ["a1", "b1"]
    renewed = await store.outbox_renew(
        ["a1", "b1", "c1", "nope"], "w1", T0 + timedelta(seconds=120)
    )
    assert sorted(renewed) == ["a1", "b1"]  # c1 was never leased to w1, "nope" does not exist
    # past the first lease's end, the renewed heads are still held: only c1 is handed out
    later = await store.outbox_claim(T0 + timedelta(seconds=90), 60, "w2")
    assert [item.id for item in later] == ["c1"]
    current = await store.outbox_get("a1")
    assert current is not None and current.lease_until == T0 + timedelta(seconds=120)
    taken = await store.outbox_claim(T0 + timedelta(seconds=121), 60, "w2")
    assert sorted(item.id for item in taken) == ["a1", "b1"]
    # a lease taken over is no longer w1's to renew
    assert await store.outbox_renew(["a1"], "w1", T0 + timedelta(seconds=300)) == []
    assert await store.outbox_renew([], "w2", T0) == []


async def test_outbox_renew_of_two_messages_of_one_customer(store: Store) -> None:
    # A parked message put back in line while the customer's next one is leased: both are held
    # by the same worker at once, and renewing both must work.
    await store.commit(Commit(outbox=[out("a1", "a"), out("a2", "a")]))
    await store.outbox_claim(T0, 60, "w")
    await store.outbox_fail("a1", "w", "boom", None)  # parked
    [second] = await store.outbox_claim(T0, 60, "w")
    assert second.id == "a2"
    assert await store.outbox_retry("a1", T0)
    [first] = await store.outbox_claim(T0, 60, "w")
    assert first.id == "a1"
    renewed = await store.outbox_renew(["a1", "a2"], "w", T0 + timedelta(seconds=120))
    assert sorted(renewed) == ["a1", "a2"]
    assert await store.outbox_claim(T0 + timedelta(seconds=90), 60, "w2") == []


async def test_outbox_hands_out_only_each_customers_head(store: Store) -> None:
    await store.commit(Commit(outbox=[out("a1", "a"), out("b1", "b"), out("a2", "a")]))
    claimed = await store.outbox_claim(T0, 60, "w1")
    assert [item.id for item in claimed] == ["a1", "b1"]
    assert claimed[0].message == {"n": "a1"} and claimed[0].business_id == "106540352242922"
    assert await store.outbox_claim(T0, 60, "w2") == []  # heads leased, a2 waits behind a1
    await store.outbox_complete("a1", "w1", "wamid.1", T0)
    (next_item,) = await store.outbox_claim(T0, 60, "w2")
    assert next_item.id == "a2"
    sent = await store.outbox_get("a1")
    assert sent is not None and (sent.state, sent.message_id, sent.attempts) == (
        "sent",
        "wamid.1",
        1,
    )


async def test_outbox_retry_backoff_holds_back_and_parking_does_not(store: Store) -> None:
    await store.commit(Commit(outbox=[out("a1", "a"), out("a2", "a")]))
    await store.outbox_claim(T0, 60, "w")
    await store.outbox_fail("a1", "w", "ServerError: 503", T0 + timedelta(seconds=8))
    assert await store.outbox_claim(T0 + timedelta(seconds=5), 60, "w") == []
    (retried,) = await store.outbox_claim(T0 + timedelta(seconds=8), 60, "w")
    assert (retried.id, retried.attempts, retried.last_error) == ("a1", 1, "ServerError: 503")
    await store.outbox_fail("a1", "w", "RecipientError: 131026", None)
    (parked,) = await store.outbox_list("parked")
    assert (parked.id, parked.state, parked.last_error) == (
        "a1",
        "parked",
        "RecipientError: 131026",
    )
    (after,) = await store.outbox_claim(T0 + timedelta(seconds=8), 60, "w")
    assert after.id == "a2"
    await store.outbox_complete("a2", "w", "wamid.2", T0)
    assert await store.outbox_retry("a1", T0 + timedelta(minutes=1)) is True
    assert await store.outbox_retry("a1", T0) is False
    (again,) = await store.outbox_claim(T0 + timedelta(minutes=1), 60, "w")
    assert again.id == "a1"


async def test_outbox_leases_expire_and_only_the_holder_settles(store: Store) -> None:
    await store.commit(Commit(outbox=[out("a1", "a")]))
    await store.outbox_claim(T0, 30, "crashed")
    assert await store.outbox_claim(T0 + timedelta(seconds=29), 30, "w") == []
    (taken,) = await store.outbox_claim(T0 + timedelta(seconds=31), 30, "w")
    await store.outbox_complete("a1", "crashed", "wamid.zombie", T0)
    current = await store.outbox_get("a1")
    assert current is not None and current.state == "pending"
    await store.outbox_complete(taken.id, "w", "wamid.ok", T0)
    done = await store.outbox_get("a1")
    assert done is not None and done.message_id == "wamid.ok"


async def test_outbox_ids_are_idempotent_and_respect_the_claim_limit(store: Store) -> None:
    await store.commit(Commit(outbox=[out(f"m{i}", f"c{i}") for i in range(5)]))
    await store.commit(Commit(outbox=[out("m0", "c0")]))  # the same id again: ignored
    assert len(await store.outbox_list("pending")) == 5
    assert len(await store.outbox_claim(T0, 60, "w", limit=3)) == 3
    assert not await store.outbox_claim(T0 - timedelta(seconds=1), 60, "x")  # not yet due


async def test_outbox_complete_many_records_several_sends_at_once(store: Store) -> None:
    await store.commit(Commit(outbox=[out("a1", "a"), out("b1", "b"), out("a2", "a")]))
    await store.outbox_claim(T0, 60, "w")
    sent = [
        OutboxCompletion("a1", "wamid.a1", T0 + timedelta(seconds=1)),
        OutboxCompletion("b1", None, T0 + timedelta(seconds=2)),
    ]
    assert await store.outbox_complete_many(sent, "w") == 2
    a1, b1 = await store.outbox_get("a1"), await store.outbox_get("b1")
    assert a1 is not None and (a1.state, a1.message_id, a1.attempts) == ("sent", "wamid.a1", 1)
    assert a1.sent_at == T0 + timedelta(seconds=1) and a1.lease_owner is None
    assert b1 is not None and (b1.state, b1.message_id) == ("sent", None)
    (freed,) = await store.outbox_claim(T0, 60, "w")  # a's next message is its head now
    assert freed.id == "a2"
    assert await store.outbox_complete_many([], "w") == 0


async def test_outbox_complete_many_leaves_messages_another_worker_holds(store: Store) -> None:
    await store.commit(Commit(outbox=[out("a1", "a"), out("b1", "b")]))
    await store.outbox_claim(T0, 30, "slow")
    await store.outbox_claim(T0 + timedelta(seconds=31), 30, "w2")  # both leases ran out
    late = [OutboxCompletion("a1", "wamid.x", T0), OutboxCompletion("b1", "wamid.y", T0)]
    assert await store.outbox_complete_many(late, "slow") == 0
    assert await store.outbox_complete_many([OutboxCompletion("b1", "wamid.b", T0)], "w2") == 1
    a1, b1 = await store.outbox_get("a1"), await store.outbox_get("b1")
    assert a1 is not None and (a1.state, a1.lease_owner) == ("pending", "w2")
    assert b1 is not None and (b1.state, b1.message_id) == ("sent", "wamid.b")


async def test_outbox_claim_hands_out_the_heads_due_longest_first(store: Store) -> None:
    await store.commit(Commit(outbox=[out("a1", "a", T0)]))
    await store.commit(Commit(outbox=[out("b1", "b", T0 + timedelta(seconds=1))]))
    await store.commit(Commit(outbox=[out("c1", "c", T0 + timedelta(seconds=3))]))
    (first,) = await store.outbox_claim(T0, 60, "w", limit=1)
    await store.outbox_fail(first.id, "w", "ServerError: 503", T0 + timedelta(seconds=5))
    # due at 5 s (its retry), 1 s and 3 s (arrival): the longest-waiting go first
    claimed = await store.outbox_claim(T0 + timedelta(seconds=10), 60, "w", limit=2)
    assert [item.id for item in claimed] == ["b1", "c1"]
    (last,) = await store.outbox_claim(T0 + timedelta(seconds=10), 60, "w")
    assert last.id == "a1"


async def test_outbox_claim_returns_each_message_exactly_as_queued(store: Store) -> None:
    message = {
        "body": {"text": {"body": 'Grüße "aus" Köln \\ / 🚲\n'}, "to": "4915"},
        "price": 0.1 + 0.2,
        "big": 2**62,
        "empty": [],
        "none": {},
        "flag": False,
    }
    at = datetime(2026, 3, 2, 9, 0, 0, 123457, tzinfo=timezone.utc)
    await store.commit(Commit(outbox=[NewOutboxItem("o1", "c|1", "whatsapp", "1", message, at)]))
    (claimed,) = await store.outbox_claim(at, 60, "w")
    assert (claimed.message, claimed.created_at, claimed.customer) == (message, at, "c|1")
    assert claimed.lease_until == at + timedelta(seconds=60) and claimed.lease_owner == "w"


async def test_sent_messages_are_listed_in_the_order_they_went_out(store: Store) -> None:
    await store.commit(Commit(outbox=[out("a1", "a"), out("b1", "b"), out("c1", "c")]))
    await store.outbox_claim(T0, 60, "w")
    for item_id, second in (("b1", 1), ("c1", 2), ("a1", 3)):
        await store.outbox_complete(
            item_id, "w", f"wamid.{item_id}", T0 + timedelta(seconds=second)
        )
    assert [item.id for item in await store.outbox_list("sent")] == ["b1", "c1", "a1"]


async def test_outbox_prune_forgets_old_sent_and_parked_messages_only(store: Store) -> None:
    old, recent = T0, T0 + timedelta(days=50)
    await store.commit(
        Commit(
            outbox=[
                out("sent-old", "a", old),
                out("parked-old", "b", old),
                out("pending-old", "c", old),
                out("queued-behind", "c", old),
            ]
        )
    )
    await store.outbox_claim(old, 60, "w")
    await store.outbox_complete("sent-old", "w", "wamid.1", old)
    await store.outbox_fail("parked-old", "w", "RecipientError: 131026", None)
    await store.outbox_fail("pending-old", "w", "ServerError: 503", recent + timedelta(days=1))
    await store.commit(
        Commit(outbox=[out("sent-new", "d", recent), out("parked-new", "e", recent)])
    )
    await store.outbox_claim(recent, 60, "w")
    await store.outbox_complete("sent-new", "w", "wamid.2", recent)
    await store.outbox_fail("parked-new", "w", "RecipientError: 131026", None)

    assert await store.outbox_prune(old + timedelta(days=40), old + timedelta(days=40)) == 2
    assert await store.outbox_get("sent-old") is None
    assert await store.outbox_get("parked-old") is None
    for kept in ("pending-old", "queued-behind", "sent-new", "parked-new"):
        assert await store.outbox_get(kept) is not None, kept
    assert [item.id for item in await store.outbox_list("sent")] == ["sent-new"]
    assert [item.id for item in await store.outbox_list("parked")] == ["parked-new"]
    # parked messages can be kept longer than sent ones
    assert await store.outbox_prune(recent + timedelta(seconds=1), recent) == 1
    assert [item.id for item in await store.outbox_list("parked")] == ["parked-new"]
    # the pending queue is untouched
    (retried,) = await store.outbox_claim(recent + timedelta(days=1), 60, "w")
    assert retried.id == "pending-old"


async def test_outbox_prune_goes_by_creation_not_by_arrival(store: Store) -> None:
    # A worker whose clock is ahead (or whose commit came first) queued the younger message
    # before the older one: pruning must still find the old one behind it.
    await store.commit(Commit(outbox=[out("young", "c1", T0 + timedelta(days=1))]))
    await store.commit(Commit(outbox=[out("old", "c2", T0)]))
    now = T0 + timedelta(days=1, seconds=1)
    for item in await store.outbox_claim(now, 30, "w"):
        await store.outbox_fail(item.id, "w", "RecipientError: 131026", None)  # parked
    assert await store.outbox_prune(T0 - timedelta(days=1), T0 + timedelta(hours=12)) == 1
    assert [item.id for item in await store.outbox_list("parked")] == ["young"]


async def test_status_prune_forgets_records_whose_last_status_is_old(store: Store) -> None:
    await store.record_status(StatusUpdate("wamid.old", "sent", T0))
    await store.record_status(StatusUpdate("wamid.old", "delivered", T0 + timedelta(days=1)))
    await store.record_status(StatusUpdate("wamid.read-late", "sent", T0))
    await store.record_status(StatusUpdate("wamid.read-late", "read", T0 + timedelta(days=45)))
    assert await store.status_prune(T0 + timedelta(days=40)) == 1
    assert await store.message_record("wamid.old") is None
    kept = await store.message_record("wamid.read-late")
    assert kept is not None and kept.status == "read"
    # a status arriving after its record was forgotten starts a new one
    await store.record_status(StatusUpdate("wamid.old", "read", T0 + timedelta(days=60)))
    again = await store.message_record("wamid.old")
    assert again is not None and set(again.statuses) == {"read"}
    assert await store.status_prune(T0 + timedelta(days=40)) == 0


async def test_sqlite_migrates_a_version_2_outbox_and_statuses(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "v2.db"
    with sqlite3.connect(path) as db:  # queued messages and a status written by schema 2
        for script in MIGRATIONS[:2]:
            db.executescript(script)
        db.execute("PRAGMA user_version = 2")
        rows = [("a1", 1, "a", 0.0), ("b1", 2, "b", 0.0), ("a2", 3, "a", 0.0)]
        db.executemany(
            "INSERT INTO outbox (id, seq, customer, channel, business_id, message, state,"
            " created_at, next_attempt_at) VALUES (?, ?, ?, 'whatsapp', '1', '{}', 'pending', ?, ?)",
            [(i, seq, c, at, at) for i, seq, c, at in rows],
        )
        db.execute(
            "INSERT INTO message_status VALUES ('wamid.1', ?)",
            (
                '{"message_id": "wamid.1", "status": "sent", "statuses": {"sent": 0},'
                ' "recipient": null, "errors": [], "callback_data": null}',
            ),
        )
    store = SQLiteStore(path)
    assert store.schema_version == len(MIGRATIONS)
    assert [item.id for item in await store.outbox_claim(T0, 60, "w")] == ["a1", "b1"]
    await store.outbox_complete("a1", "w", "wamid.a1", T0)
    assert [item.id for item in await store.outbox_claim(T0, 60, "w")] == ["a2"]
    assert await store.message_record("wamid.1") is not None
    assert await store.status_prune(T0) == 0  # dated by the upgrade, not forgotten at once
    await store.close()


async def test_sqlite_reads_do_not_wait_for_a_write_in_progress(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "busy.db"
    store = SQLiteStore(path, busy_timeout_ms=50)
    await store.commit(Commit(save=[Document("cust-1", {"name": "Lena"}, 0)]))
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process is writing (and has not committed)
        other.execute("UPDATE documents SET data = '{}' WHERE id = 'cust-1'")
        document = await store.document_get("cust-1")
        assert document is not None and document.data == {"name": "Lena"}
        assert await store.outbox_list("pending") == []
    finally:
        other.execute("ROLLBACK")
        other.close()
        await store.close()


def test_a_sqlite_file_opens_while_another_connection_writes_to_it(tmp_path: Path) -> None:
    # Workers started together race to switch a new file to WAL and create the schema; SQLite
    # refuses the switch at once (no busy wait) while another connection holds a write lock.
    path = tmp_path / "new.db"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("CREATE TABLE elsewhere (x)")
    other.execute("BEGIN IMMEDIATE")
    released = threading.Timer(0.3, lambda: other.execute("COMMIT"))
    released.start()
    try:
        store = SQLiteStore(path, busy_timeout_ms=5_000)
        assert store.schema_version == len(MIGRATIONS)
        asyncio.run(store.close())
    finally:
        released.join()
        other.close()
