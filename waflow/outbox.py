"""The durable outbox: the only way the engine sends.

Messages are written to the store in the same transaction as the state change that produced them
(:meth:`Outbox.draft` makes the records; :class:`~waflow.store.Commit` carries them). A worker
(:meth:`Outbox.drain`, :meth:`Outbox.run`) sends them:

- **in order per customer** — the store only ever hands out a customer's oldest pending message;
- **paced** — through the clients' pacers (80 messages/s per number unless configured);
- **through outages** — 5xx, timeouts, connection failures and throttling (130429) are retried with
  backoff (honouring ``Retry-After``) until Meta is back, surviving process restarts;
- **at least once** — a send that may or may not have reached Meta is retried; each WhatsApp message
  carries its outbox id in ``biz_opaque_callback_data`` (Messenger: ``metadata``), so status webhooks
  tell which sends belong to which outbox message;
- **never against Meta's rules** — just before sending, a *send guard* (the conversation engine
  installs one) checks the customer's service window and consent again, since a queue can outlive
  a window: a free-form message whose window closed is replaced by its fallback template, or parked;
- **permanent errors parked** with the reason (list them with :meth:`parked`, retry with
  :meth:`retry`).

A drain keeps the pipe full: ``concurrency`` senders each check and send one claimed message
after another, the next batch is claimed before the last one has gone out, and sends are recorded
``batch_size`` at a time in one store transaction. A message sent but not yet recorded when its
worker dies goes out again after its lease — the same *at least once* as a crash mid-send.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from waflow.clock import Clock, SystemClock
from waflow.conversions import ConversionBatch
from waflow.errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    ConsentRequiredError,
    OutsideServiceWindowError,
    WaflowError,
    is_permanent_code,
)
from waflow.messenger.messages import from_body as messenger_from_body
from waflow.store.base import (
    MessageRecord,
    NewOutboxItem,
    OutboxCompletion,
    OutboxItem,
    Store,
)
from waflow.whatsapp.messages import TemplateMessage
from waflow.whatsapp.messages import from_body as whatsapp_from_body

__all__ = [
    "CALLBACK_PREFIX",
    "DrainReport",
    "GuardPrefetch",
    "Outbox",
    "SendGuard",
    "draft_item",
    "outbox_id_from_callback",
]

#: Called just before a send with the item and its message; returns the message to send (the same,
#: or a replacement such as a fallback template) or raises to refuse it.
SendGuard = Callable[[OutboxItem, Any], Awaitable[Any]]
#: Called with every claimed batch before its sends, so a guard can read what it needs in one go.
GuardPrefetch = Callable[[Sequence[OutboxItem]], Awaitable[None]]

logger = logging.getLogger("waflow.outbox")

#: Prefix of the outbox id in ``biz_opaque_callback_data`` / Messenger ``metadata``.
CALLBACK_PREFIX = "wf:"
#: Waits between attempts of a send that failed for a reason that goes away (outage, throttling).
DEFAULT_RETRY_DELAYS: tuple[float, ...] = (1, 2, 4, 8, 15, 30, 60, 120, 300)
#: After this long of transient failures a message is parked instead of retried for ever.
DEFAULT_GIVE_UP_AFTER = timedelta(hours=24)
#: Sends are recorded at the latest this many seconds after they went out (sooner in batches of
#: ``batch_size``): until then the customer's next message waits, and a crash would repeat them.
RECORD_WITHIN_SECONDS = 0.1


def outbox_id_from_callback(value: str | None) -> str | None:
    """The outbox id in a status webhook's ``biz_opaque_callback_data``, if waflow put one there."""
    if not value or not value.startswith(CALLBACK_PREFIX):
        return None
    return value[len(CALLBACK_PREFIX) :].split("|", 1)[0]


def _tag(existing: str | None, item_id: str) -> str:
    tag = f"{CALLBACK_PREFIX}{item_id}"
    return tag if not existing else f"{tag}|{existing}"


def draft_item(
    message: Any,
    *,
    channel: str,
    business_id: str,
    customer: str,
    now: datetime,
    human: bool = False,
    marketing: bool = False,
    fallback: TemplateMessage | None = None,
    checked: bool = True,
    key: str | None = None,
) -> NewOutboxItem:
    """The outbox record of ``message``; commit it with the state change that produced it.

    The record's id goes into the message (``biz_opaque_callback_data`` / Messenger ``metadata``)
    so status webhooks can be matched to it. ``human`` marks a person's reply (Messenger
    HUMAN_AGENT), ``marketing`` a marketing message (refused after an opt-out), ``fallback`` the
    template to send instead if the service window has closed by send time. ``checked=False``
    skips the send guard (for customers the engine does not know). ``key`` names the message
    for good (say, the event that caused it and its place among the replies): its outbox id is
    derived from it, so queueing it again — a handler run again after a crash — adds nothing.
    """
    # A Messenger model built with human_agent=True says so itself; the record must keep it,
    # since the flag is never part of the body it is rebuilt from at send time.
    human = human or getattr(message, "human_agent", False) is True
    # Conversions carry their own event_id: the same event always gets the same outbox id, so a
    # handler that runs twice cannot report it twice.
    event_ids = [e.event_id for e in getattr(message, "data", []) if getattr(e, "event_id", None)]
    if channel == "conversions" and event_ids:
        item_id = uuid.uuid5(uuid.NAMESPACE_URL, "waflow:conversion:" + "|".join(event_ids)).hex
    elif key is not None:
        item_id = uuid.uuid5(uuid.NAMESPACE_URL, "waflow:reply:" + key).hex
    else:
        item_id = uuid.uuid4().hex
    body = message.to_body()
    if channel == "whatsapp" and "to" in body:
        body["biz_opaque_callback_data"] = _tag(body.get("biz_opaque_callback_data"), item_id)
    elif channel == "messenger" and isinstance(body.get("message"), dict):
        body["message"]["metadata"] = _tag(body["message"].get("metadata"), item_id)
    record: dict[str, Any] = {
        "body": body,
        "human": human,
        "marketing": marketing,
        "checked": checked,
    }
    if fallback is not None:
        fallback_body = fallback.to_body()
        fallback_body["biz_opaque_callback_data"] = _tag(
            fallback_body.get("biz_opaque_callback_data"), item_id
        )
        record["fallback"] = fallback_body
    return NewOutboxItem(
        id=item_id,
        customer=customer,
        channel=channel,
        business_id=business_id,
        message=record,
        created_at=now,
    )


@dataclass(frozen=True)
class DrainReport:
    """What one :meth:`Outbox.drain` did."""

    sent: int = 0
    retried: int = 0
    parked: int = 0

    def __add__(self, other: DrainReport) -> DrainReport:
        return DrainReport(
            self.sent + other.sent, self.retried + other.retried, self.parked + other.parked
        )


class Outbox:
    """Queues messages durably and sends them with the clients, per the rules above.

    ``whatsapp`` / ``messenger`` are the clients (one, or one per number or Page); a WhatsApp
    message from a number without its own client goes through the first client, re-targeted.
    ``guard`` checks each message just before it is sent (see :data:`SendGuard`); ``prefetch``
    is called with every claimed batch first (see :data:`GuardPrefetch`; the engine's reads the
    batch's customers in one store call instead of one per send).
    ``lease_seconds`` is how long a claimed message is held by its worker: if the worker dies
    mid-send, the message goes out again (at least once) after at most that long.
    ``batch_size`` messages are claimed (and sends recorded) per store transaction;
    ``concurrency`` sends are under way at once, each waiting for its pacing slot or for Meta's
    answer, so throughput is at most ``concurrency`` / the time one send takes. A claimed message
    waits for at most ``concurrency + batch_size`` sends before its own: keep that many sends well
    within ``lease_seconds`` at the slowest pace (150 at 20 messages/s take 7.5 s of the 30). A
    message whose lease has run out before its turn is left for the next claim, never sent.
    """

    def __init__(
        self,
        store: Store,
        *,
        whatsapp: Any = None,
        messenger: Any = None,
        clock: Clock | None = None,
        retry_delays: Sequence[float] = DEFAULT_RETRY_DELAYS,
        give_up_after: timedelta = DEFAULT_GIVE_UP_AFTER,
        lease_seconds: float = 30.0,
        batch_size: int = 50,
        concurrency: int = 100,
        owner: str | None = None,
        guard: SendGuard | None = None,
        prefetch: GuardPrefetch | None = None,
        conversions: Any = None,
    ) -> None:
        self.store = store
        self.guard = guard
        self.prefetch = prefetch
        self.clock: Clock = clock or SystemClock()
        self.retry_delays = tuple(retry_delays)
        self.give_up_after = give_up_after
        self.lease_seconds = lease_seconds
        if batch_size < 1 or concurrency < 1:
            raise ValueError(
                f"batch_size and concurrency must be at least 1, got {batch_size} and {concurrency}"
            )
        self.batch_size = batch_size
        self.concurrency = concurrency
        self.owner = owner or f"outbox-{uuid.uuid4().hex[:12]}"
        # Sends not yet recorded in the store; kept across drains, so a drain that failed to
        # record them (the store was briefly away) leaves them to the next one.
        self._unrecorded: list[OutboxCompletion] = []
        self._whatsapp = clients_by_business(whatsapp, "phone_number_id")
        self._messenger = clients_by_business(messenger, "page_id")
        self._conversions = clients_by_business(conversions, "dataset_id")

    # -- queueing ------------------------------------------------------------------------------

    def draft(
        self,
        message: Any,
        *,
        channel: str,
        business_id: str,
        customer: str,
        human: bool = False,
        marketing: bool = False,
        fallback: TemplateMessage | None = None,
        checked: bool = True,
        key: str | None = None,
    ) -> NewOutboxItem:
        """The outbox record of ``message`` (see :func:`draft_item`), stamped with this clock."""
        return draft_item(
            message,
            channel=channel,
            business_id=business_id,
            customer=customer,
            now=self.clock.now(),
            human=human,
            marketing=marketing,
            fallback=fallback,
            checked=checked,
            key=key,
        )

    # -- sending -------------------------------------------------------------------------------

    async def drain(self, *, max_rounds: int | None = None) -> DrainReport:
        """Send every message that is due now; return what happened.

        Returns once nothing more is due and every send is recorded. ``max_rounds`` bounds how
        many batches are claimed. Raises what the store raises (the messages then go out later).
        """
        if self._unrecorded or max_rounds == 0:
            return await _Drain(self, max_rounds).run()
        # Most drains find nothing (one runs after every webhook): one claim tells, before any
        # of a drain's machinery is set up.
        first = await self.store.outbox_claim(
            self.clock.now(), self.lease_seconds, self.owner, self.batch_size
        )
        if not first:
            return DrainReport()
        return await _Drain(self, max_rounds, first).run()

    async def _record_sent(self) -> int:
        """Record the sends not yet recorded, in one store transaction; return how many."""
        unrecorded, self._unrecorded = self._unrecorded, []
        if not unrecorded:
            return 0
        try:
            recorded = await self.store.outbox_complete_many(unrecorded, self.owner)
        except Exception:
            self._unrecorded[:0] = unrecorded  # the store failed: for the next attempt, in order
            raise
        if recorded < len(unrecorded):
            logger.warning(
                "%d sent outbox messages were no longer leased to %s (their lease ran out before "
                "they were recorded) and may go out twice; lower concurrency or raise lease_seconds",
                len(unrecorded) - recorded,
                self.owner,
            )
        return recorded

    async def run(self, interval: float = 0.5) -> None:
        """Drain every ``interval`` seconds until cancelled."""
        while True:
            try:
                await self.drain()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("outbox drain failed; trying again in %.1fs", interval)
            await self.clock.asleep(interval)

    async def parked(self, limit: int = 100) -> list[OutboxItem]:
        """Messages parked for a permanent error, oldest first."""
        return await self.store.outbox_list("parked", limit)

    async def delivery(self, item_id: str) -> MessageRecord | None:
        """What Meta's status webhooks said about an outbox message (sent, delivered, read, …)."""
        item = await self.store.outbox_get(item_id)
        if item is None or item.message_id is None:
            return None
        return await self.store.message_record(item.message_id)

    async def retry(self, item_id: str) -> bool:
        """Put a parked message back in line; false if it is not parked."""
        return await self.store.outbox_retry(item_id, self.clock.now())

    async def _send(self, item: OutboxItem) -> DrainReport:
        """Check and send one leased message; a sent one joins the sends to record."""
        try:
            message = await self._checked_message(item)
            client = self._client(item.channel, item.business_id)
            result = client.send(message)
            if inspect.isawaitable(result):
                result = await result
        except (OutsideServiceWindowError, ConsentRequiredError) as exc:
            return await self._park(item, exc)  # until the customer writes or opts in
        except APIError as exc:
            if isinstance(exc, APIStatusError) and is_permanent_code(exc.code):
                # Meta's code, not the HTTP status, says whether a retry can help: a 5xx that
                # carries 131026 or 190 will carry it again (and was not delivered).
                return await self._park(item, exc)
            transient = isinstance(exc, APIConnectionError) or exc.retryable
            if isinstance(exc, APIStatusError) and exc.maybe_sent:
                transient = True  # at least once: a 5xx may hide a delivery, but retrying is safe
            if transient:
                return await self._retry_later(item, exc)
            return await self._park(item, exc)
        except WaflowError as exc:
            return await self._park(item, exc)
        except Exception as exc:  # a bug must park one message, not stop the worker
            logger.exception("sending outbox message %s failed unexpectedly", item.id)
            return await self._park(item, exc)
        message_id = getattr(result, "message_id", None)
        self._unrecorded.append(OutboxCompletion(item.id, message_id, self.clock.now()))
        return _SENT

    async def _checked_message(self, item: OutboxItem) -> Any:
        record = item.message
        message: Any
        if item.channel == "conversions":
            return ConversionBatch.model_validate(record["body"])
        if item.channel == "messenger":
            message = messenger_from_body(record["body"], human_agent=bool(record.get("human")))
        else:
            message = whatsapp_from_body(record["body"])
        if self.guard is None or not _guarded(item):
            return message
        return await self.guard(item, message)

    def _client(self, channel: str, business_id: str) -> Any:
        clients = {
            "whatsapp": self._whatsapp,
            "messenger": self._messenger,
            "conversions": self._conversions,
        }.get(channel, {})
        if business_id in clients:
            return clients[business_id]
        if channel == "whatsapp" and clients:
            client = next(iter(clients.values())).for_phone_number(business_id)
            clients[business_id] = client
            return client
        if channel == "messenger" and "me" in clients:
            return clients["me"]  # a Page token's client (page_id="me") sends as its Page
        raise WaflowError(f"no {channel} client for {business_id}: pass {channel}= to the App")

    async def _retry_later(self, item: OutboxItem, exc: BaseException) -> DrainReport:
        now = self.clock.now()
        if now - item.created_at >= self.give_up_after:
            return await self._park(item, exc, reason="gave up after repeated transient failures")
        delay = self.retry_delays[min(item.attempts, len(self.retry_delays) - 1)]
        retry_after = getattr(exc, "retry_after", None)
        if isinstance(retry_after, (int, float)) and retry_after > delay:
            delay = float(retry_after)
        await self.store.outbox_fail(
            item.id, self.owner, _describe(exc), now + timedelta(seconds=delay)
        )
        logger.info("outbox message %s: %s; retry in %.0fs", item.id, type(exc).__name__, delay)
        return DrainReport(retried=1)

    async def _park(
        self, item: OutboxItem, exc: BaseException, *, reason: str | None = None
    ) -> DrainReport:
        error = _describe(exc) if reason is None else f"{reason}: {_describe(exc)}"
        await self.store.outbox_fail(item.id, self.owner, error, None)
        logger.warning("outbox message %s parked: %s", item.id, error)
        return DrainReport(parked=1)


_SENT = DrainReport(sent=1)
_SKIPPED = DrainReport()


class _Drain:
    """One :meth:`Outbox.drain`: a coordinator claims batches and records sends; up to
    ``concurrency`` senders take the claimed messages one after another.

    The next batch is claimed when half a batch is left, so the senders never run dry at a batch
    boundary, and each sender checks its next message (the send guard) just after its previous
    send, so checks are spread between the sends instead of bunched at a boundary. Sends are
    recorded a batch at a time, or :data:`RECORD_WITHIN_SECONDS` after the first of them, and
    always before a claim: a customer's next message becomes due only once the last is recorded.
    """

    def __init__(
        self, outbox: Outbox, max_rounds: int | None, first: list[OutboxItem] | None = None
    ) -> None:
        self.outbox = outbox
        self.claims_left = max_rounds
        self.first = first  # a batch already claimed, to start with
        self.queue: deque[str] = deque()  # ids of claimed messages waiting for a sender, in order
        self.waiting: dict[str, OutboxItem] = {}  # those messages by id
        self.sending: set[str] = set()  # ids of messages a sender has taken
        self.senders: set[asyncio.Task[None]] = set()
        self.report = DrainReport()
        self.full = True  # the last claim got all it asked for: more may be due
        self.done_since_claim = 0  # finished sends since the last claim (each may free a head)
        self.changed = asyncio.Event()
        self.record_timer: asyncio.TimerHandle | None = None
        self.error: Exception | None = None
        # Leases of messages being sent are renewed every third of the lease, so that a send
        # held up by pacing or throttling is not taken and sent by another worker meanwhile.
        self.renew = getattr(outbox.store, "outbox_renew", None)
        self.renew_timer: asyncio.TimerHandle | None = None
        self.renewals: set[asyncio.Task[None]] = set()

    async def run(self) -> DrainReport:
        try:
            if self.first is not None:
                await self._accept(self.first, self.outbox.batch_size)
            await self._coordinate()
        except BaseException as exc:
            await self._stop(cancel=isinstance(exc, asyncio.CancelledError))
            try:
                await self._record()
            except Exception:
                logger.exception("recording sent outbox messages failed; they may go out again")
            raise
        finally:
            if self.renew_timer is not None:
                self.renew_timer.cancel()
                self.renew_timer = None
        await self._record()
        return self.report

    async def _coordinate(self) -> None:
        batch_size = self.outbox.batch_size
        while True:
            if self.error is not None:
                raise self.error
            if self._claim_due():
                await self._record()  # first, so the messages it frees are due for the claim
                await self._claim()
            elif len(self.outbox._unrecorded) >= batch_size or self._record_overdue():
                await self._record()
            elif not self.queue and not self.senders:
                return  # nothing queued, nobody sending, and a claim would find nothing new
            else:
                self.changed.clear()
                await self.changed.wait()

    def _claim_due(self) -> bool:
        if self.claims_left == 0 or len(self.queue) > self.outbox.batch_size // 2:
            return False
        if self.full:
            return True
        # The last claim found fewer than it asked for: claim again once enough sends finished to
        # have freed customers' next messages, or when the last one finished.
        return self.done_since_claim >= max(1, self.outbox.batch_size // 2) or (
            self.done_since_claim > 0 and not self.senders and not self.queue
        )

    async def _claim(self) -> None:
        outbox = self.outbox
        limit = outbox.batch_size - len(self.queue)  # at most a batch waits for a sender
        batch = await outbox.store.outbox_claim(
            outbox.clock.now(), outbox.lease_seconds, outbox.owner, limit
        )
        await self._accept(batch, limit)

    async def _accept(self, batch: list[OutboxItem], limit: int) -> None:
        """Queue a claimed batch (of at most ``limit``) and start senders for it."""
        outbox = self.outbox
        if self.claims_left is not None:
            self.claims_left -= 1
        self.full = len(batch) >= limit
        self.done_since_claim = 0
        guarded = [item for item in batch if _guarded(item)] if outbox.guard is not None else []
        if guarded and outbox.prefetch is not None:
            try:
                await outbox.prefetch(guarded)
            except Exception as exc:  # only a shortcut: each guard then reads for itself
                # Without the traceback: a kept log record must not keep the store's state alive.
                logger.warning("reading ahead for the send guard failed: %s", _describe(exc))
        for item in batch:
            # A message of ours comes back if its lease ran out meanwhile: one still waiting
            # takes the new lease, one being sent is not sent again.
            if item.id not in self.waiting and item.id not in self.sending:
                self.queue.append(item.id)
            if item.id not in self.sending:
                self.waiting[item.id] = item
        # A sender that has returned but whose done-callback has not run yet is still in
        # `senders`: counting it would start none here, and nothing would send what was queued.
        live = sum(1 for sender in self.senders if not sender.done())
        for _ in range(min(len(self.queue), outbox.concurrency - live)):
            sender = asyncio.create_task(self._sender())
            self.senders.add(sender)
            sender.add_done_callback(self._sender_done)
        if self.senders and self.renew is not None and self.renew_timer is None:
            self.renew_timer = asyncio.get_running_loop().call_later(
                self._renew_interval(), self._renew_tick
            )

    def _renew_interval(self) -> float:
        return max(self.outbox.lease_seconds / 3, 0.01)  # a zero lease must not spin the loop

    def _renew_tick(self) -> None:
        self.renew_timer = None
        loop = asyncio.get_running_loop()
        # Every message this drain holds and has not settled: being sent, waiting in the queue
        # (it may be popped with little lease left, then held up by pacing), and sent but not
        # yet recorded (until recorded, an expired lease would hand it to another worker).
        held = [*self.sending, *self.waiting]
        held += [done.item_id for done in self.outbox._unrecorded]
        if held:
            renewal = loop.create_task(self._renew_held(held))
            self.renewals.add(renewal)  # held until done: the loop keeps only weak references
            renewal.add_done_callback(self.renewals.discard)
        if self.senders:
            self.renew_timer = loop.call_later(self._renew_interval(), self._renew_tick)

    async def _renew_held(self, item_ids: list[str]) -> None:
        outbox = self.outbox
        assert self.renew is not None
        until = outbox.clock.now() + timedelta(seconds=outbox.lease_seconds)
        try:
            renewed = set(await self.renew(item_ids, outbox.owner, until))
        except Exception as exc:  # the store is away: try again at the next tick
            logger.warning("could not renew the leases of messages being sent: %s", exc)
            return
        for item_id in renewed:
            waiting = self.waiting.get(item_id)
            if waiting is not None:  # its turn checks the lease it holds: the renewed one
                self.waiting[item_id] = replace(waiting, lease_until=until)
        lost = [i for i in item_ids if i not in renewed and i in self.sending]
        if lost:
            logger.warning(
                "lost the lease of %d outbox message(s) while sending them (%s); another worker "
                "may send them too",
                len(lost),
                ", ".join(lost[:5]),
            )

    async def _sender(self) -> None:
        outbox = self.outbox
        while self.queue and self.error is None:
            item = self.waiting.pop(self.queue.popleft())
            self.sending.add(item.id)
            if self._claim_due():
                self.changed.set()  # half a batch left: claim the next while this one goes out
            try:
                result = await self._send(item)
            except Exception as exc:  # the store failed to record a retry or a parking
                self.error = exc
                return
            finally:
                self.sending.discard(item.id)
                self.done_since_claim += 1
            self.report = self.report + result
            if result is _SENT and self.record_timer is None:
                self.record_timer = asyncio.get_running_loop().call_later(
                    RECORD_WITHIN_SECONDS, self.changed.set
                )
            if self._claim_due() or len(outbox._unrecorded) >= outbox.batch_size:
                self.changed.set()  # work for the coordinator (else it sleeps on: one wake less)

    async def _send(self, item: OutboxItem) -> DrainReport:
        outbox = self.outbox
        if item.lease_until is not None and outbox.clock.now() >= item.lease_until:
            # No longer ours: another worker may have taken it. It goes out after the next claim.
            logger.warning("outbox message %s: its lease ran out before its turn", item.id)
            return _SKIPPED
        return await outbox._send(item)

    def _sender_done(self, sender: asyncio.Task[None]) -> None:
        self.senders.discard(sender)
        self.changed.set()

    def _record_overdue(self) -> bool:
        timer = self.record_timer
        return timer is not None and timer.when() <= asyncio.get_running_loop().time()

    async def _record(self) -> None:
        if self.record_timer is not None:
            self.record_timer.cancel()
            self.record_timer = None
        await self.outbox._record_sent()

    async def _stop(self, *, cancel: bool) -> None:
        """Hand out nothing more (claimed messages go out after their lease); end the senders."""
        self.queue.clear()
        self.waiting.clear()
        if cancel:
            for sender in self.senders:
                sender.cancel()
        await asyncio.gather(*self.senders, return_exceptions=True)


def _guarded(item: OutboxItem) -> bool:
    """Whether the send guard checks this message (conversion reports and unchecked drafts not)."""
    return item.channel != "conversions" and bool(item.message.get("checked", True))


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:2000]


def clients_by_business(clients: Any, attribute: str) -> dict[str, Any]:
    """Clients keyed by the number or Page they send from: one client, a list, or a mapping."""
    if clients is None:
        return {}
    if isinstance(clients, Mapping):
        return dict(clients)
    if not isinstance(clients, (list, tuple)):
        clients = [clients]
    return {str(getattr(client, attribute)): client for client in clients}
