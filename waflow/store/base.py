"""The storage protocol behind waflow's delivery guarantees, and the records it keeps.

One protocol, three implementations (memory for tests, SQLite by default, Redis for many workers),
one contract test-suite. Everything that must survive a restart lives here, never in process
memory:

- the **inbox** of webhook events (deduplicated by message id, leased to one worker at a time,
  retried with backoff, dead-lettered after its budget);
- the delivery **status** of sent messages (pruned when no status has come for a while);
- **customers**: opaque JSON documents with an optimistic version, found through an index of their
  channel ids (the conversation engine gives them meaning);
- the **outbox** of messages to send, in order per customer, with leases, backoff and parking;
  sent and parked messages are kept for a while, then pruned;
- **deadlines** (stored, never in-process timers), **handoff codes** and **locks** with expiry.

Everything the engine changes for one event — customers, index, outbox, deadlines, codes — is
applied by :meth:`Store.commit` in one transaction, or not at all. All methods are coroutines;
implementations keep each method atomic. The store knows nothing of flows: it is a layer below.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol, runtime_checkable

__all__ = [
    "LEASE_RAN_OUT",
    "STATUS_RANK",
    "USED_HANDOFF",
    "Commit",
    "Document",
    "InboxItem",
    "InboxState",
    "MessageRecord",
    "NewInboxItem",
    "NewOutboxItem",
    "OutboxCompletion",
    "OutboxItem",
    "OutboxState",
    "StatusUpdate",
    "Store",
]

InboxState = Literal["pending", "done", "dead"]
OutboxState = Literal["pending", "sent", "parked"]

#: Delivery statuses in the order they can happen; a status never goes back to a lower rank, so
#: out-of-order webhooks (read before delivered) leave the right answer. ``failed`` is final.
STATUS_RANK = {"accepted": 0, "sent": 1, "delivered": 2, "read": 3, "played": 4, "failed": 9}


@dataclass(frozen=True)
class NewInboxItem:
    """An event to record: ``key`` deduplicates, ``customer`` orders, ``event`` is its data."""

    key: str
    customer: str
    event: dict[str, Any]


@dataclass(frozen=True)
class InboxItem:
    """A recorded event and where it stands."""

    key: str
    customer: str
    seq: int
    event: dict[str, Any]
    state: InboxState
    attempts: int
    received_at: datetime
    next_attempt_at: datetime
    last_error: str | None = None
    lease_owner: str | None = None
    lease_until: datetime | None = None


@dataclass(frozen=True)
class StatusUpdate:
    """One status webhook about a sent message."""

    message_id: str
    status: str
    at: datetime
    recipient: str | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    callback_data: str | None = None


@dataclass(frozen=True)
class MessageRecord:
    """What is known about a sent message: its current status and when each status arrived."""

    message_id: str
    status: str
    statuses: dict[str, datetime]
    recipient: str | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    callback_data: str | None = None

    def with_update(self, update: StatusUpdate) -> MessageRecord:
        """This record after ``update``: the higher-ranked status wins, every arrival is kept."""
        statuses = dict(self.statuses)
        statuses.setdefault(update.status, update.at)
        current = self.status
        if STATUS_RANK.get(update.status, 0) > STATUS_RANK.get(current, 0):
            current = update.status
        return MessageRecord(
            message_id=self.message_id,
            status=current,
            statuses=statuses,
            recipient=self.recipient or update.recipient,
            errors=[*self.errors, *update.errors],
            callback_data=self.callback_data or update.callback_data,
        )

    @classmethod
    def first(cls, update: StatusUpdate) -> MessageRecord:
        """The record a message gets from its first status."""
        return cls(
            message_id=update.message_id,
            status=update.status,
            statuses={update.status: update.at},
            recipient=update.recipient,
            errors=list(update.errors),
            callback_data=update.callback_data,
        )


@dataclass(frozen=True)
class Document:
    """A customer document: its id, JSON data, and version (1 after the first save)."""

    id: str
    data: dict[str, Any]
    version: int


@dataclass(frozen=True)
class NewOutboxItem:
    """A message to send: ``customer`` orders it, ``channel``/``business_id`` say from where."""

    id: str
    customer: str
    channel: str
    business_id: str
    message: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class OutboxItem:
    """A queued message and where it stands."""

    id: str
    customer: str
    seq: int
    channel: str
    business_id: str
    message: dict[str, Any]
    state: OutboxState
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    last_error: str | None = None
    message_id: str | None = None
    sent_at: datetime | None = None
    lease_owner: str | None = None
    lease_until: datetime | None = None


@dataclass(frozen=True)
class OutboxCompletion:
    """A leased message that went out: what :meth:`Store.outbox_complete_many` records."""

    item_id: str
    message_id: str | None
    sent_at: datetime


@dataclass
class Commit:
    """Everything one unit of work changes, applied atomically by :meth:`Store.commit`.

    ``save`` holds documents whose ``version`` is the version they were loaded at (0 for new
    ones): if any stored version differs, nothing is applied and
    :class:`~waflow.errors.ConcurrentUpdateError` is raised. Saved documents get ``version + 1``.
    ``index`` maps channel-id keys to customer ids (``None`` removes a key); ``deadlines`` sets or
    (``None``) clears a customer's deadline; ``handoffs`` stores codes (JSON with ``code``);
    ``handoffs_used`` deletes codes, which makes them single-use: if one of them is gone (another
    commit used it meanwhile) nothing is applied and :class:`~waflow.errors.
    ConcurrentUpdateError` is raised, as for a stale version.
    """

    save: list[Document] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)
    index: dict[str, str | None] = field(default_factory=dict)
    outbox: list[NewOutboxItem] = field(default_factory=list)
    deadlines: dict[str, datetime | None] = field(default_factory=dict)
    handoffs: list[dict[str, Any]] = field(default_factory=list)
    handoffs_used: list[str] = field(default_factory=list)


#: ``last_error`` of an event taken over from a lease that ran out: the worker that held it
#: stopped (a crash, a kill, a freeze) before it settled the event. Counted as an attempt.
LEASE_RAN_OUT = "its worker stopped before settling it (the lease ran out)"

#: The reason a commit fails when a handoff code it uses was used by another commit meanwhile.
USED_HANDOFF = "the handoff code was used by another event meanwhile (a code links once)"


def first_new_customer(items: Sequence[NewInboxItem], added: Sequence[bool]) -> str | None:
    """The customer of the first new item (whom ``Store.inbox_add_claim`` claims for), if any."""
    for item, new in zip(items, added, strict=True):
        if new:
            return item.customer
    return None


@runtime_checkable
class Store(Protocol):
    """Durable state of a waflow app. See :mod:`waflow.store` for the implementations."""

    async def inbox_add(self, items: Sequence[NewInboxItem], now: datetime) -> list[bool]:
        """Record events atomically; for each, true if new, false if its key was seen before."""
        ...

    async def inbox_claim(
        self, customer: str, now: datetime, lease_seconds: float, owner: str
    ) -> InboxItem | None:
        """Lease the customer's oldest pending event if it is due and not leased; else ``None``.

        A pending event that is waiting for its retry blocks the events after it, which keeps
        each customer's events in order.
        """
        ...

    async def inbox_add_claim(
        self, items: Sequence[NewInboxItem], now: datetime, lease_seconds: float, owner: str
    ) -> tuple[list[bool], InboxItem | None]:
        """:meth:`inbox_add`, then :meth:`inbox_claim` for the customer of the first new item, in
        one transaction: the flags of :meth:`inbox_add` and the item leased to ``owner``, if any.

        A webhook's events are recorded and the first one leased for handling in one round trip
        (one commit on SQLite) instead of two. Only the first: a lease runs from this call, and
        the events after it are claimed when their turn comes, each with a full lease. Optional:
        the inbox falls back to the two calls for a store without it.
        """
        ...

    async def inbox_complete(self, key: str, owner: str) -> bool | None:
        """Mark a leased event handled (a no-op unless ``owner`` holds its lease).

        Returns whether the event's customer has more pending events (false: the inbox need not
        look for more; ``None``, as stores written before this returned: it looks).
        """
        ...

    async def inbox_fail(self, key: str, owner: str, error: str, retry_at: datetime | None) -> None:
        """Record a failed attempt: retry at ``retry_at``, or dead-letter it when ``None``."""
        ...

    async def inbox_renew(self, key: str, owner: str, until: datetime) -> bool:
        """Move the end of ``owner``'s lease on a pending event to ``until``; false (and nothing
        changed) if ``owner`` no longer holds it.

        The inbox renews the lease of an event whose handler runs long, so that no other worker
        takes the event meanwhile. Optional: without it a handler that outlives its lease may
        run twice.
        """
        ...

    async def inbox_due_customers(self, now: datetime, limit: int = 100) -> list[str]:
        """Customers whose next pending event is due: the longest due first (then by arrival)."""
        ...

    async def inbox_get(self, key: str) -> InboxItem | None:
        """One recorded event by key."""
        ...

    async def inbox_dead(self, limit: int = 100) -> list[InboxItem]:
        """Dead-lettered events, oldest first."""
        ...

    async def inbox_replay(self, key: str, now: datetime) -> bool:
        """Put a dead-lettered event back in line (attempts reset); false if it is not dead."""
        ...

    async def inbox_prune(self, before: datetime) -> int:
        """Forget handled events received before ``before``; return how many."""
        ...

    async def record_status(self, update: StatusUpdate) -> MessageRecord:
        """Apply a status webhook to the record of the sent message."""
        ...

    async def message_record(self, message_id: str) -> MessageRecord | None:
        """The delivery record of a sent message."""
        ...

    async def status_prune(self, before: datetime) -> int:
        """Forget delivery records whose latest status is dated before ``before``; return how many.

        A status that arrives later for a forgotten message starts a new record.
        """
        ...

    # -- customers, index, handoff codes, deadlines: read side ----------------------------------

    async def document_get(self, customer_id: str) -> Document | None:
        """A customer document by id."""
        ...

    async def documents_get(self, customer_ids: Sequence[str]) -> dict[str, Document]:
        """The documents of those ``customer_ids`` that exist, by id, read in one go."""
        ...

    async def index_lookup(self, keys: Sequence[str]) -> dict[str, str]:
        """The customer ids of those channel-id ``keys`` that are known."""
        ...

    async def handoff_get(self, code: str) -> dict[str, Any] | None:
        """A handoff code's record, or ``None``."""
        ...

    async def deadlines_due(self, now: datetime, limit: int = 100) -> list[tuple[str, datetime]]:
        """``(customer_id, deadline)`` pairs due at ``now``, earliest first."""
        ...

    async def commit(self, change: Commit) -> None:
        """Apply a unit of work atomically (see :class:`Commit`)."""
        ...

    # -- locks ---------------------------------------------------------------------------------

    async def lock_acquire(self, key: str, owner: str, ttl_seconds: float, now: datetime) -> bool:
        """Take the lock ``key`` for ``owner`` until ``now + ttl`` unless someone else holds it."""
        ...

    async def lock_release(self, key: str, owner: str) -> None:
        """Release a lock held by ``owner`` (a no-op otherwise)."""
        ...

    # -- outbox --------------------------------------------------------------------------------

    async def outbox_claim(
        self, now: datetime, lease_seconds: float, owner: str, limit: int = 50
    ) -> list[OutboxItem]:
        """Lease the oldest pending message of up to ``limit`` customers whose head is due.

        Only a customer's head message is ever handed out, so each customer's messages go out in
        order; a head waiting for its retry holds back that customer's later messages. When more
        heads are due than ``limit``, those due longest go first (ties in arrival order).
        """
        ...

    async def outbox_complete(
        self, item_id: str, owner: str, message_id: str | None, now: datetime
    ) -> None:
        """Mark a leased message sent (with Meta's message id); a no-op unless ``owner`` holds it."""
        ...

    async def outbox_complete_many(
        self, completions: Sequence[OutboxCompletion], owner: str
    ) -> int:
        """Mark leased messages sent, all in one transaction; return how many ``owner`` still held.

        A message whose lease ``owner`` no longer holds (it ran out and another worker took the
        message over) is left alone, as :meth:`outbox_complete` leaves it.
        """
        ...

    async def outbox_renew(self, item_ids: Sequence[str], owner: str, until: datetime) -> list[str]:
        """Move the end of ``owner``'s leases on these pending messages to ``until``; return the
        ids renewed (the others ``owner`` no longer holds).

        The outbox renews the leases of messages whose sends take long (pacing, throttling),
        so that no other worker sends them meanwhile. Optional: without it a send that outlasts
        its lease may go out twice.
        """
        ...

    async def outbox_fail(
        self, item_id: str, owner: str, error: str, retry_at: datetime | None
    ) -> None:
        """Record a failed send: retry at ``retry_at``, or park it (``None``) with the reason."""
        ...

    async def outbox_get(self, item_id: str) -> OutboxItem | None:
        """One outbox message by id."""
        ...

    async def outbox_list(self, state: OutboxState, limit: int = 100) -> list[OutboxItem]:
        """Messages in ``state``, oldest first: sent ones by when they were sent, the others by
        arrival."""
        ...

    async def outbox_retry(self, item_id: str, now: datetime) -> bool:
        """Put a parked message back in line; false if it is not parked."""
        ...

    async def outbox_prune(self, sent_before: datetime, parked_before: datetime) -> int:
        """Forget messages sent before ``sent_before``, and parked messages created before
        ``parked_before``; return how many. Pending messages are never pruned.

        A parked message is dated by its creation: it is parked at most the outbox's
        ``give_up_after`` (a day) after it, unless someone put it back in line by hand.
        """
        ...

    async def close(self) -> None:
        """Release connections."""
        ...
