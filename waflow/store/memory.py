"""An in-memory :class:`~waflow.store.base.Store` for tests and benchmarks (nothing survives exit)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from waflow.errors import ConcurrentUpdateError
from waflow.store.base import (
    LEASE_RAN_OUT,
    USED_HANDOFF,
    Commit,
    Document,
    InboxItem,
    MessageRecord,
    NewInboxItem,
    OutboxCompletion,
    OutboxItem,
    OutboxState,
    StatusUpdate,
    first_new_customer,
)

__all__ = ["MemoryStore"]


_R = TypeVar("_R")


def _evolve(record: _R, **changes: Any) -> _R:
    """A copy of a frozen record with ``changes``: :func:`dataclasses.replace` without re-running
    ``__init__``, whose per-field ``object.__setattr__`` dominated this store's cost per event.
    Only for the plain (no ``__post_init__``, no slots) frozen dataclasses of :mod:`~waflow.store.base`.
    """
    copy = object.__new__(type(record))
    fields = copy.__dict__
    fields.update(record.__dict__)
    fields.update(changes)
    return copy


def _record(cls: type[_R], **fields: Any) -> _R:
    """A new frozen record from *all* its fields, the way :func:`_evolve` copies one."""
    record = object.__new__(cls)
    record.__dict__.update(fields)
    return record


class MemoryStore:
    """Keeps everything in dictionaries, behind one lock; same semantics as the durable stores.

    Inbox documents are kept as given, by reference (``keeps_objects``): the inbox hands this
    store the parsed event objects themselves instead of their JSON form.
    """

    #: Read by :class:`~waflow.inbox.Inbox`: documents stay in this process, so they need not be
    #: JSON; a store that writes them anywhere must not set it.
    keeps_objects = True

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, InboxItem] = {}
        self._pending: dict[str, list[str]] = {}  # customer -> keys of pending items, in order
        self._seq = 0
        self._messages: dict[str, MessageRecord] = {}
        self._documents: dict[str, Document] = {}
        self._index: dict[str, str] = {}
        self._handoffs: dict[str, dict[str, Any]] = {}
        self._deadlines: dict[str, datetime] = {}
        self._locks: dict[str, tuple[str, datetime]] = {}
        self._outbox: dict[str, OutboxItem] = {}
        self._outbox_queues: dict[str, list[str]] = {}  # customer -> pending ids, in order
        self._outbox_seq = 0

    async def inbox_add(self, items: Sequence[NewInboxItem], now: datetime) -> list[bool]:
        with self._lock:
            return self._add(items, now)

    def _add(self, items: Sequence[NewInboxItem], now: datetime) -> list[bool]:
        added = []
        for item in items:
            if item.key in self._items:
                added.append(False)
                continue
            self._seq += 1
            self._items[item.key] = _record(
                InboxItem,
                key=item.key,
                customer=item.customer,
                seq=self._seq,
                event=item.event,
                state="pending",
                attempts=0,
                received_at=now,
                next_attempt_at=now,
                last_error=None,
                lease_owner=None,
                lease_until=None,
            )
            self._pending.setdefault(item.customer, []).append(item.key)
            added.append(True)
        return added

    async def inbox_claim(
        self, customer: str, now: datetime, lease_seconds: float, owner: str
    ) -> InboxItem | None:
        with self._lock:
            return self._claim(customer, now, now + timedelta(seconds=lease_seconds), owner)

    async def inbox_add_claim(
        self, items: Sequence[NewInboxItem], now: datetime, lease_seconds: float, owner: str
    ) -> tuple[list[bool], InboxItem | None]:
        with self._lock:
            added = self._add(items, now)
            customer = first_new_customer(items, added)
            if customer is None:
                return added, None
            return added, self._claim(customer, now, now + timedelta(seconds=lease_seconds), owner)

    def _claim(self, customer: str, now: datetime, until: datetime, owner: str) -> InboxItem | None:
        queue = self._pending.get(customer)
        if not queue:
            return None
        head = self._items[queue[0]]
        if head.next_attempt_at > now:
            return None
        if head.lease_until is not None and head.lease_until > now:
            return None
        if head.lease_owner is not None:  # its holder stopped before settling it: an attempt
            leased = _evolve(
                head,
                lease_owner=owner,
                lease_until=until,
                attempts=head.attempts + 1,
                last_error=LEASE_RAN_OUT,
            )
        else:
            leased = _evolve(head, lease_owner=owner, lease_until=until)
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

    async def inbox_complete(self, key: str, owner: str) -> bool | None:
        with self._lock:
            item = self._leased(key, owner)
            if item is None:
                return None
            self._items[key] = _evolve(
                item, state="done", attempts=item.attempts + 1, lease_owner=None, lease_until=None
            )
            self._dequeue(item)
            return item.customer in self._pending

    async def inbox_fail(self, key: str, owner: str, error: str, retry_at: datetime | None) -> None:
        with self._lock:
            item = self._leased(key, owner)
            if item is None:
                return
            updated = _evolve(
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

    async def inbox_renew(self, key: str, owner: str, until: datetime) -> bool:
        with self._lock:
            item = self._leased(key, owner)
            if item is None:
                return False
            self._items[key] = _evolve(item, lease_until=until)
            return True

    async def inbox_due_customers(self, now: datetime, limit: int = 100) -> list[str]:
        with self._lock:
            heads = []
            for customer, queue in self._pending.items():
                head = self._items[queue[0]]
                due = max(head.next_attempt_at, head.lease_until or head.next_attempt_at)
                if due <= now:  # due longest first, then by arrival (as outbox_claim)
                    heads.append((due, head.seq, customer))
            return [customer for _, _, customer in sorted(heads)[:limit]]

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
            self._items[key] = _evolve(item, state="pending", attempts=0, next_attempt_at=now)
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

    async def status_prune(self, before: datetime) -> int:
        with self._lock:
            old = [
                message_id
                for message_id, record in self._messages.items()
                if max(record.statuses.values()) < before
            ]
            for message_id in old:
                del self._messages[message_id]
            return len(old)

    # -- customers ---------------------------------------------------------------------------

    async def document_get(self, customer_id: str) -> Document | None:
        with self._lock:
            return self._documents.get(customer_id)

    async def documents_get(self, customer_ids: Sequence[str]) -> dict[str, Document]:
        with self._lock:
            documents = self._documents
            return {cid: documents[cid] for cid in customer_ids if cid in documents}

    async def index_lookup(self, keys: Sequence[str]) -> dict[str, str]:
        with self._lock:
            return {key: self._index[key] for key in keys if key in self._index}

    async def handoff_get(self, code: str) -> dict[str, Any] | None:
        with self._lock:
            return self._handoffs.get(code)

    async def deadlines_due(self, now: datetime, limit: int = 100) -> list[tuple[str, datetime]]:
        with self._lock:
            due = sorted((at, cid) for cid, at in self._deadlines.items() if at <= now)
            return [(cid, at) for at, cid in due[:limit]]

    async def commit(self, change: Commit) -> None:
        with self._lock:
            for document in change.save:
                current = self._documents.get(document.id)
                stored = 0 if current is None else current.version
                if stored != document.version:
                    raise ConcurrentUpdateError(
                        f"customer {document.id} is at version {stored}, not {document.version}"
                    )
            stored_now = {str(record["code"]) for record in change.handoffs}
            for code in change.handoffs_used:
                if code not in self._handoffs and code not in stored_now:
                    raise ConcurrentUpdateError(USED_HANDOFF)
            for document in change.save:
                self._documents[document.id] = Document(
                    document.id, document.data, document.version + 1
                )
            for customer_id in change.delete:
                self._documents.pop(customer_id, None)
                self._deadlines.pop(customer_id, None)
            for key, owner in change.index.items():
                if owner is None:
                    self._index.pop(key, None)
                else:
                    self._index[key] = owner
            for deadline_owner, at in change.deadlines.items():
                if at is None:
                    self._deadlines.pop(deadline_owner, None)
                else:
                    self._deadlines[deadline_owner] = at
            for record in change.handoffs:
                self._handoffs[str(record["code"])] = record
            for code in change.handoffs_used:
                self._handoffs.pop(code, None)
            for new in change.outbox:
                if new.id in self._outbox:
                    continue
                self._outbox_seq += 1
                self._outbox[new.id] = OutboxItem(
                    id=new.id,
                    customer=new.customer,
                    seq=self._outbox_seq,
                    channel=new.channel,
                    business_id=new.business_id,
                    message=new.message,
                    state="pending",
                    attempts=0,
                    created_at=new.created_at,
                    next_attempt_at=new.created_at,
                )
                self._outbox_queues.setdefault(new.customer, []).append(new.id)

    # -- locks ---------------------------------------------------------------------------------

    async def lock_acquire(self, key: str, owner: str, ttl_seconds: float, now: datetime) -> bool:
        with self._lock:
            held = self._locks.get(key)
            if held is not None and held[0] != owner and held[1] > now:
                return False
            self._locks[key] = (owner, now + timedelta(seconds=ttl_seconds))
            return True

    async def lock_release(self, key: str, owner: str) -> None:
        with self._lock:
            held = self._locks.get(key)
            if held is not None and held[0] == owner:
                del self._locks[key]

    # -- outbox --------------------------------------------------------------------------------

    async def outbox_claim(
        self, now: datetime, lease_seconds: float, owner: str, limit: int = 50
    ) -> list[OutboxItem]:
        with self._lock:
            if not self._outbox_queues:
                return []  # the drain after every webhook, mostly
            heads = []
            for queue in self._outbox_queues.values():
                head = self._outbox[queue[0]]
                ready_at = head.next_attempt_at
                if head.lease_until is not None and head.lease_until > ready_at:
                    ready_at = head.lease_until
                if ready_at <= now:
                    heads.append((ready_at, head.seq, head))
            heads.sort(key=lambda entry: entry[:2])  # due longest first, then by arrival
            claimed = []
            until = now + timedelta(seconds=lease_seconds)
            for _ready_at, _seq, head in heads[:limit]:
                leased_item = _evolve(head, lease_owner=owner, lease_until=until)
                self._outbox[head.id] = leased_item
                claimed.append(leased_item)
            return claimed

    def _leased_outbox(self, item_id: str, owner: str) -> OutboxItem | None:
        item = self._outbox.get(item_id)
        if item is None or item.state != "pending" or item.lease_owner != owner:
            return None
        return item

    def _outbox_dequeue(self, item: OutboxItem) -> None:
        queue = self._outbox_queues.get(item.customer, [])
        if item.id in queue:
            queue.remove(item.id)
        if not queue:
            self._outbox_queues.pop(item.customer, None)

    async def outbox_complete(
        self, item_id: str, owner: str, message_id: str | None, now: datetime
    ) -> None:
        with self._lock:
            self._complete(OutboxCompletion(item_id, message_id, now), owner)

    async def outbox_complete_many(
        self, completions: Sequence[OutboxCompletion], owner: str
    ) -> int:
        with self._lock:
            return sum(self._complete(completion, owner) for completion in completions)

    def _complete(self, completion: OutboxCompletion, owner: str) -> bool:
        item = self._leased_outbox(completion.item_id, owner)
        if item is None:
            return False
        self._outbox[item.id] = _evolve(
            item,
            state="sent",
            attempts=item.attempts + 1,
            message_id=completion.message_id,
            sent_at=completion.sent_at,
            lease_owner=None,
            lease_until=None,
        )
        self._outbox_dequeue(item)
        return True

    async def outbox_renew(self, item_ids: Sequence[str], owner: str, until: datetime) -> list[str]:
        with self._lock:
            renewed = []
            for item_id in item_ids:
                item = self._leased_outbox(item_id, owner)
                if item is not None:
                    self._outbox[item_id] = _evolve(item, lease_until=until)
                    renewed.append(item_id)
            return renewed

    async def outbox_fail(
        self, item_id: str, owner: str, error: str, retry_at: datetime | None
    ) -> None:
        with self._lock:
            item = self._leased_outbox(item_id, owner)
            if item is None:
                return
            self._outbox[item_id] = _evolve(
                item,
                state="pending" if retry_at is not None else "parked",
                attempts=item.attempts + 1,
                last_error=error,
                next_attempt_at=retry_at or item.next_attempt_at,
                lease_owner=None,
                lease_until=None,
            )
            if retry_at is None:
                self._outbox_dequeue(item)

    async def outbox_get(self, item_id: str) -> OutboxItem | None:
        with self._lock:
            return self._outbox.get(item_id)

    async def outbox_list(self, state: OutboxState, limit: int = 100) -> list[OutboxItem]:
        with self._lock:
            items = [item for item in self._outbox.values() if item.state == state]
            if state == "sent":
                return sorted(items, key=lambda item: (item.sent_at, item.seq))[:limit]
            return sorted(items, key=lambda item: item.seq)[:limit]

    async def outbox_retry(self, item_id: str, now: datetime) -> bool:
        with self._lock:
            item = self._outbox.get(item_id)
            if item is None or item.state != "parked":
                return False
            self._outbox[item_id] = _evolve(
                item, state="pending", next_attempt_at=now, last_error=item.last_error
            )
            queue = self._outbox_queues.setdefault(item.customer, [])
            queue.append(item_id)
            queue.sort(key=lambda key: self._outbox[key].seq)
            return True

    async def outbox_prune(self, sent_before: datetime, parked_before: datetime) -> int:
        with self._lock:
            old = [
                item.id
                for item in self._outbox.values()
                if (
                    item.state == "sent" and item.sent_at is not None and item.sent_at < sent_before
                )
                or (item.state == "parked" and item.created_at < parked_before)
            ]
            for item_id in old:
                del self._outbox[item_id]
            return len(old)

    async def close(self) -> None:
        return None
