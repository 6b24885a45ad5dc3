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
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
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
)
from waflow.messenger.messages import from_body as messenger_from_body
from waflow.store.base import MessageRecord, NewOutboxItem, OutboxItem, Store
from waflow.whatsapp.messages import TemplateMessage
from waflow.whatsapp.messages import from_body as whatsapp_from_body

__all__ = [
    "CALLBACK_PREFIX",
    "DrainReport",
    "Outbox",
    "SendGuard",
    "draft_item",
    "outbox_id_from_callback",
]

#: Called just before a send with the item and its message; returns the message to send (the same,
#: or a replacement such as a fallback template) or raises to refuse it.
SendGuard = Callable[[OutboxItem, Any], Awaitable[Any]]

logger = logging.getLogger("waflow.outbox")

#: Prefix of the outbox id in ``biz_opaque_callback_data`` / Messenger ``metadata``.
CALLBACK_PREFIX = "wf:"
#: Waits between attempts of a send that failed for a reason that goes away (outage, throttling).
DEFAULT_RETRY_DELAYS: tuple[float, ...] = (1, 2, 4, 8, 15, 30, 60, 120, 300)
#: After this long of transient failures a message is parked instead of retried for ever.
DEFAULT_GIVE_UP_AFTER = timedelta(hours=24)


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
) -> NewOutboxItem:
    """The outbox record of ``message``; commit it with the state change that produced it.

    The record's id goes into the message (``biz_opaque_callback_data`` / Messenger ``metadata``)
    so status webhooks can be matched to it. ``human`` marks a person's reply (Messenger
    HUMAN_AGENT), ``marketing`` a marketing message (refused after an opt-out), ``fallback`` the
    template to send instead if the service window has closed by send time. ``checked=False``
    skips the send guard (for customers the engine does not know).
    """
    # Conversions carry their own event_id: the same event always gets the same outbox id, so a
    # handler that runs twice cannot report it twice.
    event_ids = [e.event_id for e in getattr(message, "data", []) if getattr(e, "event_id", None)]
    if channel == "conversions" and event_ids:
        item_id = uuid.uuid5(uuid.NAMESPACE_URL, "waflow:conversion:" + "|".join(event_ids)).hex
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
    ``guard`` checks each message just before it is sent (see :data:`SendGuard`).
    ``lease_seconds`` is how long a claimed message is held by its worker: if the worker dies
    mid-send, the message goes out again (at least once) after at most that long.
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
        owner: str | None = None,
        guard: SendGuard | None = None,
        conversions: Any = None,
    ) -> None:
        self.store = store
        self.guard = guard
        self.clock: Clock = clock or SystemClock()
        self.retry_delays = tuple(retry_delays)
        self.give_up_after = give_up_after
        self.lease_seconds = lease_seconds
        self.batch_size = batch_size
        self.owner = owner or f"outbox-{uuid.uuid4().hex[:12]}"
        self._whatsapp = _by_business(whatsapp, "phone_number_id")
        self._messenger = _by_business(messenger, "page_id")
        self._conversions = _by_business(conversions, "dataset_id")

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
        )

    # -- sending -------------------------------------------------------------------------------

    async def drain(self, *, max_rounds: int | None = None) -> DrainReport:
        """Send every message that is due now, in batches; return what happened."""
        report = DrainReport()
        rounds = 0
        while max_rounds is None or rounds < max_rounds:
            rounds += 1
            now = self.clock.now()
            batch = await self.store.outbox_claim(
                now, self.lease_seconds, self.owner, self.batch_size
            )
            if not batch:
                break
            # One message per customer per batch: sending them concurrently keeps each order.
            results = await asyncio.gather(*(self._send(item) for item in batch))
            for result in results:
                report = report + result
        return report

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
        try:
            message = await self._checked_message(item)
            client = self._client(item.channel, item.business_id)
            result = client.send(message)
            if inspect.isawaitable(result):
                result = await result
        except (OutsideServiceWindowError, ConsentRequiredError) as exc:
            if isinstance(exc, APIStatusError) and exc.status_code >= 500:
                return await self._retry_later(item, exc)
            return await self._park(item, exc)
        except APIError as exc:
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
        await self.store.outbox_complete(item.id, self.owner, message_id, self.clock.now())
        return DrainReport(sent=1)

    async def _checked_message(self, item: OutboxItem) -> Any:
        record = item.message
        message: Any
        if item.channel == "conversions":
            return ConversionBatch.model_validate(record["body"])
        if item.channel == "messenger":
            message = messenger_from_body(record["body"], human_agent=bool(record.get("human")))
        else:
            message = whatsapp_from_body(record["body"])
        if self.guard is None or not record.get("checked", True):
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


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:2000]


def _by_business(clients: Any, attribute: str) -> dict[str, Any]:
    if clients is None:
        return {}
    if isinstance(clients, Mapping):
        return dict(clients)
    if not isinstance(clients, (list, tuple)):
        clients = [clients]
    return {str(getattr(client, attribute)): client for client in clients}
