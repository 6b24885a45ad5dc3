"""An in-memory :class:`~waflow.store.base.Store` for tests and benchmarks (nothing survives exit)."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Sequence
from datetime import datetime, timedelta

from waflow.store.base import InboxItem, MessageRecord, NewInboxItem, StatusUpdate

__all__ = ["MemoryStore"]


class MemoryStore:
    """Keeps everything in dictionaries, behind one lock; same semantics as the durable stores."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, InboxItem] = {}
        self._pending: dict[str, list[str]] = {}  # customer -> keys of pending items, in order
        self._seq = 0
        self._messages: dict[str, MessageRecord] = {}

    async def inbox_add(self, items: Sequence[NewInboxItem], now: datetime) -> list[bool]:
        with self._lock:
            added = []
            for item in items:
                if item.key in self._items:
                    added.append(False)
                    continue
                self._seq += 1
                self._items[item.key] = InboxItem(
                    key=item.key,
                    customer=item.customer,
                    seq=self._seq,
                    event=item.event,
                    state="pending",
                    attempts=0,
                    received_at=now,
                    next_attempt_at=now,
                )
                self._pending.setdefault(item.customer, []).append(item.key)
                added.append(True)
            return added

    async def inbox_claim(
        self, customer: str, now: datetime, lease_seconds: float, owner: str
    ) -> InboxItem | None:
        with self._lock:
            queue = self._pending.get(customer)
            if not queue:
                return None
            head = self._items[queue[0]]
            if head.next_attempt_at > now:
                return None
            if head.lease_until is not None and head.lease_until > now:
                return None
            leased = dataclasses.replace(
                head, lease_owner=owner, lease_until=now + timedelta(seconds=lease_seconds)
            )
            self._items[head.key] = leased
            return leased

    def _leased(self, key: str, owner: str) -> InboxItem | None:
        item = self._items.get(key)
        if item is None or item.state != "pending" or item.lease_owner != owner:
            return None
        return item

    def _dequeue(self, item: InboxItem) -> None:
        queue = self._pending.get(item.customer, [])
        if item.key in queue:
            queue.remove(item.key)
        if not queue:
            self._pending.pop(item.customer, None)

    async def inbox_complete(self, key: str, owner: str) -> None:
        with self._lock:
            item = self._leased(key, owner)
            if item is None:
                return
            self._items[key] = dataclasses.replace(
                item, state="done", attempts=item.attempts + 1, lease_owner=None, lease_until=None
            )
            self._dequeue(item)

    async def inbox_fail(self, key: str, owner: str, error: str, retry_at: datetime | None) -> None:
        with self._lock:
            item = self._leased(key, owner)
            if item is None:
                return
            updated = dataclasses.replace(
                item,
                state="pending" if retry_at is not None else "dead",
                attempts=item.attempts + 1,
                last_error=error,
                next_attempt_at=retry_at or item.next_attempt_at,
                lease_owner=None,
                lease_until=None,
            )
            self._items[key] = updated
            if retry_at is None:
                self._dequeue(item)

    async def inbox_due_customers(self, now: datetime, limit: int = 100) -> list[str]:
        with self._lock:
            heads = []
            for customer, queue in self._pending.items():
                head = self._items[queue[0]]
                leased = head.lease_until is not None and head.lease_until > now
                if head.next_attempt_at <= now and not leased:
                    heads.append((head.seq, customer))
            return [customer for _, customer in sorted(heads)[:limit]]

    async def inbox_get(self, key: str) -> InboxItem | None:
        with self._lock:
            return self._items.get(key)

    async def inbox_dead(self, limit: int = 100) -> list[InboxItem]:
        with self._lock:
            dead = [item for item in self._items.values() if item.state == "dead"]
            return sorted(dead, key=lambda item: item.seq)[:limit]

    async def inbox_replay(self, key: str, now: datetime) -> bool:
        with self._lock:
            item = self._items.get(key)
            if item is None or item.state != "dead":
                return False
            self._items[key] = dataclasses.replace(
                item, state="pending", attempts=0, next_attempt_at=now
            )
            queue = self._pending.setdefault(item.customer, [])
            queue.append(key)
            queue.sort(key=lambda k: self._items[k].seq)
            return True

    async def inbox_prune(self, before: datetime) -> int:
        with self._lock:
            old = [
                key
                for key, item in self._items.items()
                if item.state == "done" and item.received_at < before
            ]
            for key in old:
                del self._items[key]
            return len(old)

    async def record_status(self, update: StatusUpdate) -> MessageRecord:
        with self._lock:
            current = self._messages.get(update.message_id)
            record = MessageRecord.first(update) if current is None else current.with_update(update)
            self._messages[update.message_id] = record
            return record

    async def message_record(self, message_id: str) -> MessageRecord | None:
        with self._lock:
            return self._messages.get(message_id)

    async def close(self) -> None:
        return None
