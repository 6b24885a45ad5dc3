"""The durable inbox: every webhook event recorded before it is acknowledged, handled once, in
order per customer, retried with backoff when its handler fails, and dead-lettered — never dropped —
when its retry budget is spent.

Deduplication is by the event's own id (the ``wamid`` or ``mid``, and for statuses the id plus the
status), kept in the store, so it survives restarts and works across workers. A customer's events
form a queue: while the oldest waits for a retry, the ones after it wait too.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from waflow.clock import Clock, SystemClock
from waflow.events import Event, Unsupported
from waflow.messenger import events as messenger_events
from waflow.store.base import InboxItem, NewInboxItem, Store
from waflow.whatsapp import events as whatsapp_events

__all__ = ["DEFAULT_RETRY_DELAYS", "DeadLetter", "Inbox", "Receipt", "customer_key", "mask"]

logger = logging.getLogger("waflow.inbox")

#: Seconds to wait before the 2nd, 3rd, … attempt of a failed handler; its length + 1 is the budget.
DEFAULT_RETRY_DELAYS: tuple[float, ...] = (5.0, 30.0, 120.0, 600.0)

_EVENT_TYPES: dict[str, type[Event]] = {
    cls.__name__: cls
    for module in (whatsapp_events, messenger_events)
    for cls in vars(module).values()
    if isinstance(cls, type) and issubclass(cls, Event)
}
_EVENT_TYPES[Unsupported.__name__] = Unsupported


def mask(identifier: str | None) -> str:
    """A phone number or user id shortened for logs: ``4915…678``."""
    if not identifier:
        return "-"
    return identifier if len(identifier) <= 6 else f"{identifier[:4]}…{identifier[-3:]}"


def customer_key(event: Event) -> str:
    """The queue an event belongs to: channel, receiving number or Page, and customer."""
    who = event.customer_id or f"account:{event.sender_id}"
    return f"{event.channel}:{event.business_id or '-'}:{who}"


def _serialize(event: Event) -> dict[str, Any]:
    return {"type": type(event).__name__, "data": event.model_dump(mode="json", by_alias=True)}


def _held(event: Event) -> dict[str, Any]:
    # For a store that keeps its records in this process (``keeps_objects``): the event itself.
    # Events are frozen, so holding one by reference is as safe as holding its JSON.
    return {"type": type(event).__name__, "object": event}


def _deserialize(stored: dict[str, Any]) -> Event:
    held = stored.get("object")
    if isinstance(held, Event):
        return held
    cls = _EVENT_TYPES.get(stored.get("type", ""), Unsupported)
    return cls.model_validate(stored["data"])


class _LoopLeases:
    """What one event loop's handlers hold: their keys, the loop's timer, renewals under way."""

    __slots__ = ("loop", "renewals", "running", "timer")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.running: set[str] = set()
        self.timer: asyncio.TimerHandle | None = None
        self.renewals: set[asyncio.Task[None]] = set()


class _LeaseKeeper:
    """Renews the leases of the events whose handlers are running, every third of the lease.

    One timer per event loop for all its handlers, not one per event: it is set when a handler
    starts and none is pending, and it keeps ticking while any handler of that loop runs; each
    tick renews every running event, so the first renewal comes at most a third of the lease
    after a handler starts (a handler starts with at least half its lease left). Timed by the
    event loop, not the app's clock: a handler is slow in real time, and a frozen test clock
    must not move on its own.

    One inbox can serve several loops at once (``App.dispatch_sync`` runs each request in a loop
    of its own, on the web server's threads): each loop's handlers are renewed by that loop's
    timer, and no loop is ever touched from another's callback.
    """

    def __init__(self, inbox: Inbox, renew: Callable[[str, str, datetime], Awaitable[bool]]):
        self._inbox = inbox
        self._renew = renew
        self._loops: dict[asyncio.AbstractEventLoop, _LoopLeases] = {}

    @property
    def _interval(self) -> float:
        return max(self._inbox.lease_seconds / 3, 0.01)  # a zero lease must not spin the loop

    def hold(self, key: str) -> None:
        """A handler of ``key`` starts on the running loop: keep its lease until :meth:`release`."""
        loop = asyncio.get_running_loop()
        leases = self._loops.get(loop)
        if leases is None:
            # A loop seen for the first time (another thread, or the next request's loop of
            # dispatch_sync): forget the loops closed since, whose timers will never fire.
            for closed in [other for other in self._loops if other.is_closed()]:
                del self._loops[closed]
            leases = self._loops[loop] = _LoopLeases(loop)
        leases.running.add(key)
        if leases.timer is None:
            leases.timer = loop.call_later(self._interval, self._tick, leases)

    def release(self, key: str) -> None:
        """The handler of ``key`` returned or raised: renew its lease no more."""
        leases = self._loops.get(asyncio.get_running_loop())
        if leases is not None:
            leases.running.discard(key)

    def _tick(self, leases: _LoopLeases) -> None:
        leases.timer = None
        if not leases.running:
            # Nothing runs on this loop: forget it (its next handler starts afresh), so a loop
            # that was closed after its request is not kept.
            if self._loops.get(leases.loop) is leases:
                del self._loops[leases.loop]
            return
        renewal = leases.loop.create_task(self._renew_all(leases, list(leases.running)))
        leases.renewals.add(renewal)  # held until done: the loop keeps only weak references
        renewal.add_done_callback(leases.renewals.discard)
        leases.timer = leases.loop.call_later(self._interval, self._tick, leases)

    async def _renew_all(self, leases: _LoopLeases, keys: list[str]) -> None:
        inbox = self._inbox
        running = leases.running
        for key in keys:
            if key not in running:
                continue
            until = inbox.clock.now() + timedelta(seconds=inbox.lease_seconds)
            try:
                renewed = await self._renew(key, inbox.owner, until)
            except Exception as exc:  # the store is away: try again at the next tick
                logger.warning("could not renew the lease of a handled event: %s", exc)
                continue
            if renewed or key not in running:  # renewed, or settled meanwhile
                continue
            running.discard(key)
            logger.warning(
                "lost the lease of a %s event while its handler ran (longer than %.0f s?); "
                "another worker may handle it too",
                key.split(":", 2)[1],
                inbox.lease_seconds,
            )


@dataclass(frozen=True)
class DeadLetter:
    """An event whose handler kept failing: the event, the last error, how often it was tried."""

    key: str
    event: Event
    attempts: int
    last_error: str | None


@dataclass(slots=True)  # made for every webhook POST: a plain slotted record is cheapest
class Receipt:
    """What :meth:`Inbox.receive` recorded, and what :meth:`Inbox.handle_new` handles next.

    ``fresh`` says for each event whether it is new (false: a redelivery); ``new`` holds the new
    events in order, ``customers`` the customer key of each, ``known`` the new events by dedupe
    key; ``leased`` is the event the inbox leased while recording (with ``claim=True``): the
    head of the first new event's customer, usually that event itself.
    """

    fresh: list[bool]
    new: list[Event]
    customers: list[str]
    known: dict[str, Event]
    leased: InboxItem | None = None


class Inbox:
    """Records events in a :class:`~waflow.store.Store` and feeds them to ``handle``.

    ``retry_delays`` are the waits between attempts (the budget is one more than their number);
    ``lease_seconds`` bounds how long a worker that died mid-handling (SIGKILL, OOM) delays that
    customer's events: 30 s by default. While a handler runs, its event's lease is renewed every
    third of that (``Store.inbox_renew``), so a slow handler keeps its event.
    """

    def __init__(
        self,
        store: Store,
        handle: Callable[[Event], Awaitable[None]],
        *,
        clock: Clock | None = None,
        retry_delays: Sequence[float] = DEFAULT_RETRY_DELAYS,
        lease_seconds: float = 30.0,
        owner: str | None = None,
    ) -> None:
        self.store = store
        self.handle = handle
        self.clock: Clock = clock or SystemClock()
        self.retry_delays = tuple(retry_delays)
        self.lease_seconds = lease_seconds
        self.owner = owner or f"worker-{uuid.uuid4().hex[:12]}"
        renew = getattr(store, "inbox_renew", None)
        self._renew = renew
        self._keeper = _LeaseKeeper(self, renew) if renew is not None else None
        # A store that lives in this process keeps the event objects; the others get JSON.
        self._document = _held if getattr(store, "keeps_objects", False) is True else _serialize

    @property
    def max_attempts(self) -> int:
        """How many times a handler is tried before its event is dead-lettered."""
        return len(self.retry_delays) + 1

    async def record(self, events: Sequence[Event]) -> list[bool]:
        """Durably record ``events``; for each, whether it is new (false: a duplicate)."""
        document = self._document
        items = [NewInboxItem(e.dedupe_key, customer_key(e), document(e)) for e in events]
        return await self.store.inbox_add(items, self.clock.now())

    async def receive(self, events: Sequence[Event], *, claim: bool = False) -> Receipt:
        """Durably record ``events``; with ``claim``, also lease the first new one for handling.

        Recording and leasing are one store call (``Store.inbox_add_claim``; two calls for a
        store without it), which is how :class:`~waflow.App` saves a round trip per webhook.
        With ``claim``, hand the receipt to :meth:`handle_new` right away: a leased event that
        is not handled waits for its lease to run out (``lease_seconds``) before any worker
        takes it.
        """
        document = self._document
        items = [NewInboxItem(e.dedupe_key, customer_key(e), document(e)) for e in events]
        now = self.clock.now()
        add_claim = getattr(self.store, "inbox_add_claim", None) if claim else None
        leased: InboxItem | None = None
        if add_claim is None:
            fresh = await self.store.inbox_add(items, now)
        else:
            fresh, leased = await add_claim(items, now, self.lease_seconds, self.owner)
        new: list[Event] = []
        customers: list[str] = []
        known: dict[str, Event] = {}
        for event, item, is_new in zip(events, items, fresh, strict=True):
            if is_new:
                new.append(event)
                customers.append(item.customer)
                known[item.key] = event
        return Receipt(fresh, new, customers, known, leased)

    async def handle_new(self, receipt: Receipt) -> int:
        """Handle the new events of ``receipt`` (and what else is due for their customers)."""
        leased = receipt.leased
        claimed = {leased.customer: leased} if leased is not None else None
        return await self.process(receipt.customers, known=receipt.known, claimed=claimed)

    async def process(
        self,
        customers: Iterable[str] | None = None,
        *,
        known: Mapping[str, Event] | None = None,
        claimed: Mapping[str, InboxItem] | None = None,
    ) -> int:
        """Handle due events; return how many were handled.

        ``customers`` lists customer keys in arrival order, one per new event (as
        :meth:`App.dispatch` passes them), so a batch is handled in the order Meta sent it, across
        customers; without it, every customer with a due event is served, oldest first.
        ``known`` maps dedupe keys to events already in memory (just parsed), which are used as
        they are instead of being rebuilt from the store. ``claimed`` maps customer keys to
        events already leased to this inbox (by :meth:`receive`), handled before claiming more.
        """
        if customers is None:
            customers = await self.store.inbox_due_customers(self.clock.now())
        order = list(customers)
        cache = dict(known or {})  # per call: concurrent calls must not share it
        leased = dict(claimed or {})
        stopped: set[str] = set()
        settled: set[str] = set()  # customers the store said have nothing more pending
        handled = 0
        for customer in order:  # one step per event: keeps the batch's order
            if customer in stopped:
                continue
            outcome = await self._step(customer, cache, settled, leased)
            if outcome:
                handled += 1
            else:
                stopped.add(customer)
        for customer in dict.fromkeys(order):  # then whatever else is due for them
            if customer not in stopped and customer not in settled:
                handled += await self._drain(customer, cache)
        return handled

    async def _step(
        self,
        customer: str,
        cache: dict[str, Event],
        settled: set[str],
        leased: dict[str, InboxItem] | None = None,
    ) -> bool:
        """Handle the customer's next due event; false if there was none or it failed."""
        item = leased.pop(customer, None) if leased else None
        if item is not None and not self._fresh(item):
            # Most of its lease is gone (the 200 took long to send): another worker may take it
            # soon, so it is not handled on what is left. Renewed, it is still this worker's;
            # without renewal (or if another worker took it) it is claimed again below, which
            # finds nothing while the lease lasts: the event waits for its end.
            item = await self._renewed(item)
        if item is None:
            now = self.clock.now()
            item = await self.store.inbox_claim(customer, now, self.lease_seconds, self.owner)
        return item is not None and await self._attempt(item, cache, settled)

    async def _renewed(self, item: InboxItem) -> InboxItem | None:
        """``item`` with a full lease again, or ``None`` if it cannot be renewed."""
        if self._renew is None:
            return None
        until = self.clock.now() + timedelta(seconds=self.lease_seconds)
        try:
            renewed = await self._renew(item.key, self.owner, until)
        except Exception as exc:  # the store is away: treat it as not renewed
            logger.warning("could not renew the lease of an event before handling it: %s", exc)
            return None
        return dataclasses.replace(item, lease_until=until) if renewed else None

    def _fresh(self, item: InboxItem) -> bool:
        """Whether at least half of ``item``'s lease is left."""
        if item.lease_until is None:
            return False
        left = (item.lease_until - self.clock.now()).total_seconds()
        return left >= self.lease_seconds / 2

    async def _drain(self, customer: str, cache: dict[str, Event]) -> int:
        handled = 0
        settled: set[str] = set()
        while customer not in settled and await self._step(customer, cache, settled):
            handled += 1
        return handled

    async def _attempt(self, item: InboxItem, cache: dict[str, Event], settled: set[str]) -> bool:
        if item.attempts >= self.max_attempts:
            # Every attempt ended with its worker stopping (the store counts a lease that ran
            # out as one): the event may be what kills it. Park it rather than block its
            # customer's later events for ever.
            error = f"{item.last_error or 'attempts used up'} ({item.attempts} times)"
            await self.store.inbox_fail(item.key, self.owner, error, None)
            logger.error(
                "a %s event was taken over %d times from workers that stopped while handling it; "
                "dead-lettered without running its handler again",
                item.key.split(":", 2)[1],
                item.attempts,
            )
            cache.pop(item.key, None)
            return False
        keeper = self._keeper
        if keeper is not None:
            keeper.hold(item.key)
        try:
            try:
                # Events that were just parsed need not be rebuilt from their stored form.
                known = cache.pop(item.key, None)
                event = known if known is not None else _deserialize(item.event)
                await self.handle(event)
            finally:
                if keeper is not None:
                    keeper.release(item.key)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            attempt = item.attempts + 1
            retry_at = None
            if attempt < self.max_attempts:
                retry_at = self.clock.now() + timedelta(seconds=self.retry_delays[attempt - 1])
            error = f"{type(exc).__name__}: {exc}"
            await self.store.inbox_fail(item.key, self.owner, error[:2000], retry_at)
            if retry_at is None:
                logger.error(
                    "handler failed %d times for %s; dead-lettered: %s",
                    attempt,
                    item.key.split(":", 2)[1],
                    type(exc).__name__,
                )
            else:
                logger.warning(
                    "handler failed (attempt %d of %d) for a %s event; retry at %s: %s",
                    attempt,
                    self.max_attempts,
                    item.key.split(":", 2)[1],
                    retry_at.isoformat(),
                    type(exc).__name__,
                )
            return False
        more = await self.store.inbox_complete(item.key, self.owner)
        if more is False:  # None (a store that does not say) means: look
            settled.add(item.customer)
        else:
            settled.discard(item.customer)
        return True

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """Events whose handlers kept failing, oldest first."""
        return [
            DeadLetter(item.key, _deserialize(item.event), item.attempts, item.last_error)
            for item in await self.store.inbox_dead(limit)
        ]

    async def replay(self, key: str) -> bool:
        """Put a dead-lettered event back in line and handle it now; false if it was not dead."""
        if not await self.store.inbox_replay(key, self.clock.now()):
            return False
        item = await self.store.inbox_get(key)
        if item is not None:
            await self.process([item.customer])
        return True

    async def run(self, interval: float = 1.0) -> None:
        """Handle due events (retries, leftovers of a crashed worker) every ``interval`` seconds."""
        while True:
            try:
                await self.process()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("inbox processing failed; trying again in %.1fs", interval)
            await self.clock.asleep(interval)
