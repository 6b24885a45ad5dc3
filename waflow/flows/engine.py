"""The conversation engine: one customer followed across Messenger and WhatsApp, under Meta's rules.

For each event: find the customer (linking ids, merging records that turn out to be one person) ->
take the customer's lock -> load -> record the window, referral and opt-out -> run the flow's
transition (exit hooks, handler, enter hooks, new deadline) -> check every queued message against
the windows and consent -> save the customer, its index entries, deadline, handoff codes and the
outbox messages in **one** transaction, with a version check -> release the lock. A conflicting
save (another worker got there first) is retried from the start; a handler that raises changes
nothing. Every applied event is remembered on the customer, so a redelivered one changes nothing.

Deadlines are stored, never in-process timers: :meth:`Engine.tick` fires those that are due, and
:meth:`Engine.run` does so periodically, so a restart or a second worker loses none.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import logging
import uuid
from collections.abc import Callable, Collection, Sequence
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Literal

from waflow.clock import Clock, SystemClock
from waflow.errors import ConcurrentUpdateError, OutsideServiceWindowError, WaflowError
from waflow.events import Event
from waflow.flows.context import Draft, FlowContext
from waflow.flows.flow import Flow
from waflow.flows.identity import (
    ConsentRecord,
    Customer,
    LinkedId,
    find_handoff_codes,
    normalize_phone,
)
from waflow.flows.windows import (
    check_messenger_send,
    check_whatsapp_send,
    close_window,
    record_inbound,
    record_reply,
)
from waflow.messenger.events import MessengerEvent
from waflow.outbox import draft_item
from waflow.store.base import Commit, Document, NewOutboxItem, OutboxItem, Store
from waflow.whatsapp.events import WhatsAppMessage, WhatsAppStatus
from waflow.whatsapp.messages import TemplateMessage
from waflow.whatsapp.messages import from_body as whatsapp_from_body
from waflow.whatsapp.templates import TemplateRegistry

__all__ = ["DEFAULT_OPT_OUT_KEYWORDS", "SEND_GUARD_FRESHNESS_SECONDS", "Engine", "LockTimeoutError"]

logger = logging.getLogger("waflow.engine")

#: Messages that mean "stop sending me marketing": compared with the whole message, ignoring case
#: and punctuation around it, and with the text and payload of a tapped template button (Meta's
#: marketing templates offer a "Stop promotions" quick reply).
DEFAULT_OPT_OUT_KEYWORDS = (
    "STOP",
    "STOPP",
    "ARRET",
    "ARRÊT",
    "UNSUBSCRIBE",
    "ABMELDEN",
    "STOP PROMOTIONS",
)

# What may surround a keyword and still be the keyword alone ("Stop.", "STOP!", "¡stop!").
_AROUND_A_KEYWORD = " \t\r\n.,;:!?¡¿\"'()[]…-–—"

FallbackTemplate = Callable[[FlowContext[Any]], TemplateMessage | None]


#: How old a customer document read ahead for the send guard (:meth:`Engine.prefetch_for_send`)
#: may be when the guard checks its message (counted from when the read was asked for); an older
#: one is read again. The pacing wait after the check comes on top.
SEND_GUARD_FRESHNESS_SECONDS = 1.0
_READ_AHEAD_LIMIT = 10_000


class LockTimeoutError(WaflowError):
    """Another worker held a customer's lock for too long; the event will be retried."""


class Engine:
    """Runs a :class:`~waflow.flows.flow.Flow` for every customer, durably.

    ``whatsapp_number`` is the phone number id to send from on WhatsApp when the customer has not
    written there yet (a Messenger customer handed over to WhatsApp); ``whatsapp_display_number``
    the number wa.me links open. ``fallback_template(ctx)`` builds the template that replaces a
    free-form WhatsApp message when the service window is closed (without one,
    :class:`OutsideServiceWindowError` is raised). ``default_region`` reads local phone numbers.
    ``dataset_id`` enables conversion reports (``ctx.report_conversion``) to that dataset.
    ``services`` is anything the flow's handlers need besides the customer (a catalog, texts,
    clients); they find it as ``ctx.services``, so a flow class needs no globals.
    ``templates`` (the registry the WhatsApp client checks against) makes every template of the
    ``MARKETING`` category a marketing message, refused to customers who opted out, without
    ``marketing=True`` on each send.
    """

    def __init__(
        self,
        flow: type[Flow[Any]],
        *,
        store: Store,
        clock: Clock | None = None,
        whatsapp_number: str | None = None,
        whatsapp_display_number: str | None = None,
        default_region: str | None = None,
        fallback_template: FallbackTemplate | None = None,
        dataset_id: str | None = None,
        services: Any = None,
        opt_out_keywords: Sequence[str] = DEFAULT_OPT_OUT_KEYWORDS,
        handoff_lifetime: timedelta = timedelta(days=3),
        templates: TemplateRegistry | None = None,
        lock_ttl: float = 30.0,
        lock_wait: float = 10.0,
        max_conflicts: int = 8,
        owner: str | None = None,
    ) -> None:
        self.flow = flow()
        self.store = store
        self.clock: Clock = clock or SystemClock()
        self.whatsapp_number = whatsapp_number
        self.whatsapp_display_number = whatsapp_display_number
        self.default_region = default_region
        self.fallback_template = fallback_template
        self.dataset_id = dataset_id
        self.services = services
        self.opt_out_keywords = frozenset(k.strip().casefold() for k in opt_out_keywords)
        self.handoff_lifetime = handoff_lifetime
        self.templates = templates
        self.lock_ttl = lock_ttl
        self.lock_wait = lock_wait
        self.max_conflicts = max_conflicts
        self.owner = owner or f"engine-{uuid.uuid4().hex[:12]}"
        # Customer documents read ahead for the send guard: id -> (monotonic time read, document);
        # saves counted, and the count at each customer's latest save (see prefetch_for_send).
        self._read_ahead: dict[str, tuple[float, Document]] = {}
        self._saves = 0
        self._saved_at: dict[str, int] = {}
        self._saves_forgotten_at = 0

    # -- events --------------------------------------------------------------------------------

    async def handle(self, event: Event) -> bool:
        """Apply ``event`` to its customer's conversation; true if a flow transition took it."""
        if isinstance(event, WhatsAppStatus):
            await self._retrying(lambda: self._apply_status(event))
            return False
        if not event.is_from_customer or event.business_id is None:
            return False
        return bool(await self._retrying(lambda: self._apply_event(event)))

    async def customer_for(self, event: Event) -> Customer | None:
        """The customer an event belongs to, as stored (``None`` if unknown)."""
        found = await self.store.index_lookup([linked.key for linked in _event_ids(event)])
        if not found:
            return None
        document = await self.store.document_get(next(iter(found.values())))
        return None if document is None else Customer.from_document(document.data, document.version)

    async def customer(self, customer_id: str) -> Customer | None:
        """A customer by id, as stored."""
        document = await self.store.document_get(customer_id)
        return None if document is None else Customer.from_document(document.data, document.version)

    async def _retrying(self, work: Callable[[], Any]) -> Any:
        for attempt in range(1, self.max_conflicts + 1):
            try:
                return await work()
            except ConcurrentUpdateError:
                if attempt == self.max_conflicts:
                    raise
                logger.debug("concurrent update; retrying (attempt %d)", attempt + 1)
                await asyncio.sleep(0)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _apply_event(self, event: Event) -> bool:
        now = self.clock.now()
        ids = _event_ids(event)
        found = await self.store.index_lookup([linked.key for linked in ids])
        candidates = list(dict.fromkeys(found.values()))
        codes = find_handoff_codes(event.text) if isinstance(event, WhatsAppMessage) else []
        used_code = None
        issued_by = None
        for code in codes[:3]:  # a real code is rare among words; a few lookups at most
            handoff = await self.store.handoff_get(code)
            if handoff is not None and datetime.fromisoformat(handoff["expires_at"]) > now:
                used_code, issued_by = code, str(handoff["customer_id"])
                candidates.insert(0, issued_by)
                candidates = list(dict.fromkeys(candidates))
                break
        async with self._locked(candidates or []):
            customers = await self._load(candidates)
            primary = customers[0] if customers else Customer(id=uuid.uuid4().hex, created_at=now)
            merged = customers[1:]
            for other in merged:
                primary.merge(other)
                if other.id == issued_by:  # the older record stays; the coded conversation goes on
                    primary.take_conversation(other)
            new_keys = [linked for linked in ids if primary.add_id(linked)]
            if primary.was_applied(event.dedupe_key) and not merged and not new_keys:
                return primary.state is not None
            handled, ctx = await self._transition(primary, event, now)
            async with self._linked_by_handler(primary, ctx) as more:
                merged.extend(more)
                index: dict[str, str | None] = {linked.key: primary.id for linked in primary.ids}
                items = self._items(primary, ctx)
                await self._commit_event(primary, merged, index, items, ctx, used_code)
            return handled

    def _linked_by_handler(self, primary: Customer, ctx: FlowContext[Any]) -> _Merge:
        """Customers who own ids the handler just linked (a phone number): they are the same
        person as ``primary`` and are merged into it, under their own locks."""
        return _Merge(self, primary, [linked.key for linked in ctx.new_ids])

    async def _commit_event(
        self,
        primary: Customer,
        merged: list[Customer],
        index: dict[str, str | None],
        items: list[NewOutboxItem],
        ctx: FlowContext[Any],
        used_code: str | None,
    ) -> None:
        change = Commit(
            # Merged-away records are saved (version-checked) and deleted in one commit, so a
            # record that changed meanwhile makes the whole merge retry.
            save=[Document(c.id, c.to_document(), c.version) for c in (primary, *merged)],
            delete=[other.id for other in merged],
            index={**index, **{_merged_key(other.id): primary.id for other in merged}},
            outbox=items,
            handoffs=[code.model_dump(mode="json") for code in ctx.new_handoffs],
            handoffs_used=[used_code] if used_code else [],
        )
        if ctx.state_changed or merged:  # a merge may bring the other record's deadline
            change.deadlines[primary.id] = primary.deadline
        for other in merged:
            change.deadlines[other.id] = None
        await self._commit(change)

    async def _transition(
        self, customer: Customer, event: Event, now: datetime
    ) -> tuple[bool, FlowContext[Any]]:
        flow = self.flow
        business_id = event.business_id or ""
        channel: Literal["whatsapp", "messenger"] = (
            "whatsapp" if event.channel == "whatsapp" else "messenger"
        )
        if not customer.was_applied(event.dedupe_key):
            record_inbound(customer, channel, business_id, event.timestamp)
        if isinstance(event, WhatsAppMessage) and event.profile_name and not customer.name:
            customer.name = event.profile_name
        referral = getattr(event, "referral", None)
        if referral is not None and not customer.was_applied(event.dedupe_key):
            customer.referrals.append(
                {
                    **referral.model_dump(mode="json", exclude_none=True),
                    "channel": channel,
                    "business_id": business_id,
                    "waba_id": getattr(event, "waba_id", None),
                    "customer": event.sender_id,
                    "at": event.timestamp.isoformat(),
                }
            )
        said = _opt_out_words(event, self.opt_out_keywords)
        if said is not None:
            customer.record_consent(
                ConsentRecord(
                    channel=channel,
                    granted=False,
                    wording=said,
                    source="keyword",
                    at=event.timestamp,
                )
            )
        self._settle_flow(customer)
        assert customer.state is not None
        state = customer.state
        ctx: FlowContext[Any] = FlowContext(
            engine=self,
            event=event,
            customer=customer,
            data=self._data(customer),
            now=now,
            state=state,
        )
        handled = False
        if not customer.was_applied(event.dedupe_key):
            transition = flow.match(state, event, ctx)
            if transition is not None:
                handled = True
                await self._run(transition, event, ctx)
            customer.mark_applied(event.dedupe_key)
        customer.data = type(flow).dump_data(ctx.data)
        return handled, ctx

    def _settle_flow(self, customer: Customer) -> None:
        """Start the flow for a new customer, or restart it when the stored state no longer exists
        (the flow was changed since): better a fresh start than a conversation stuck for ever."""
        definition = type(self.flow)
        known = {state.name for state in definition.states()}
        if customer.flow == definition.name and customer.state in known:
            return
        if customer.state is not None:
            logger.warning(
                "customer %s was in state %r of flow %r, which no longer exists; restarting",
                customer.id,
                customer.state,
                customer.flow,
            )
        customer.flow = definition.name
        customer.state = definition.initial_state().name
        customer.deadline = None

    def _data(self, customer: Customer) -> Any:
        definition = type(self.flow)
        try:
            return definition.load_data(customer.data)
        except ValueError:
            logger.warning(
                "customer %s had flow data that no longer fits; starting afresh", customer.id
            )
            return definition.new_data()

    async def _run(self, transition: Any, event: Event | None, ctx: FlowContext[Any]) -> None:
        flow = self.flow
        customer = ctx.customer
        source = ctx.state
        target = transition.target
        # An explicit target, even the same state, is a re-entry (exit and enter hooks run, the
        # deadline is re-armed); ``to=None`` stays without either.
        moving = target is not None
        if moving:
            await flow.run_exit(source, ctx)
        await flow.run_handler(transition, event, ctx)
        if moving:
            assert target is not None
            ctx.state = target
            customer.state = target
            await flow.run_enter(target, ctx)
            customer.deadline = flow.deadline(target, ctx)
            ctx.state_changed = True

    def _items(self, customer: Customer, ctx: FlowContext[Any]) -> list[NewOutboxItem]:
        items = []
        for draft in ctx.drafts:
            if not draft.marketing and self._is_marketing_template(draft.message):
                draft = dataclasses.replace(draft, marketing=True)
            message, fallback = self._checked(customer, draft, ctx)
            if draft.channel != "conversions":
                record_reply(customer, draft.channel, draft.business_id, ctx.now)
            items.append(
                draft_item(
                    message,
                    channel=draft.channel,
                    business_id=draft.business_id,
                    customer=customer.id,
                    now=ctx.now,
                    human=draft.human,
                    marketing=draft.marketing,
                    fallback=fallback,
                )
            )
        return items

    def _is_marketing_template(self, message: Any) -> bool:
        """Whether ``message`` is a template the registry knows as ``MARKETING``."""
        if self.templates is None or not isinstance(message, TemplateMessage):
            return False
        known = self.templates.get(message.template.name, message.template.language.code)
        return known is not None and known.category == "MARKETING"

    def _checked(
        self, customer: Customer, draft: Draft, ctx: FlowContext[Any]
    ) -> tuple[Any, TemplateMessage | None]:
        """The message to queue for ``draft`` (maybe a fallback template), or raise."""
        if draft.channel == "conversions":
            return draft.message, None  # reports to Meta, not messages to the customer
        if draft.channel == "messenger":
            tag = getattr(draft.message, "tag", None)
            check_messenger_send(customer, draft.business_id, ctx.now, tag=tag, human=draft.human)
            return draft.message, None
        is_template = isinstance(draft.message, TemplateMessage)
        fallback = draft.fallback
        if fallback is None and not is_template and self.fallback_template is not None:
            fallback = self.fallback_template(ctx)
        try:
            check_whatsapp_send(
                customer,
                draft.business_id,
                ctx.now,
                is_template=is_template,
                marketing=draft.marketing,
            )
        except OutsideServiceWindowError:
            if fallback is None:
                raise
            check_whatsapp_send(customer, draft.business_id, ctx.now, is_template=True)
            logger.info("service window closed: queueing the fallback template instead")
            return fallback, None
        return draft.message, fallback

    # -- statuses ------------------------------------------------------------------------------

    async def _apply_status(self, status: WhatsAppStatus) -> None:
        if status.status != "failed" or not any(e.code == 131047 for e in status.errors):
            return
        keys = (
            [LinkedId(kind="wa_id", value=status.recipient_id).key] if status.recipient_id else []
        )
        if status.recipient_user_id:
            keys.append(LinkedId(kind="bsuid", value=status.recipient_user_id).key)
        found = await self.store.index_lookup(keys)
        if not found or status.business_id is None:
            return
        customer_id = next(iter(found.values()))
        async with self._locked([customer_id]):
            loaded = await self._load([customer_id])
            if not loaded:
                return
            customer = loaded[0]
            close_window(customer, "whatsapp", status.business_id, status.timestamp)
            logger.info("Meta reported 131047: the service window is closed")
            await self._commit(
                Commit(save=[Document(customer.id, customer.to_document(), customer.version)])
            )

    # -- deadlines -----------------------------------------------------------------------------

    async def tick(self, now: datetime | None = None) -> int:
        """Fire every deadline due at ``now`` (default: the clock's now); return how many fired."""
        moment = now or self.clock.now()
        fired = 0
        for customer_id, _at in await self.store.deadlines_due(moment):
            if await self._retrying(partial(self._fire, customer_id, moment)):
                fired += 1
        return fired

    async def run(self, interval: float = 1.0) -> None:
        """Fire due deadlines every ``interval`` seconds until cancelled."""
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("firing deadlines failed; trying again in %.1fs", interval)
            await self.clock.asleep(interval)

    async def _fire(self, customer_id: str, now: datetime) -> bool:
        async with self._locked([customer_id]):
            loaded = await self._load([customer_id])
            if not loaded:
                await self._commit(Commit(deadlines={customer_id: None}))
                return False
            customer = loaded[0]
            flow = self.flow
            if customer.deadline is None or customer.deadline > now or customer.state is None:
                # Stale index entry: the customer moved on since it was set.
                await self._commit(
                    Commit(
                        save=[Document(customer.id, customer.to_document(), customer.version)],
                        deadlines={customer.id: customer.deadline},
                    )
                )
                return False
            self._settle_flow(customer)
            assert customer.state is not None
            transition = flow.timeout_transition(customer.state)
            ctx: FlowContext[Any] = FlowContext(
                engine=self,
                event=None,
                customer=customer,
                data=self._data(customer),
                now=now,
                state=customer.state,
            )
            customer.deadline = None
            if transition is not None:
                await self._run(transition, None, ctx)
            customer.data = type(flow).dump_data(ctx.data)
            # Ids the handler linked (a phone number) are indexed, and their owners merged, as
            # for an event.
            async with self._linked_by_handler(customer, ctx) as merged:
                items = self._items(customer, ctx)
                change = Commit(
                    save=[Document(c.id, c.to_document(), c.version) for c in (customer, *merged)],
                    delete=[other.id for other in merged],
                    index={
                        **{linked.key: customer.id for linked in customer.ids},
                        **{_merged_key(other.id): customer.id for other in merged},
                    },
                    outbox=items,
                    deadlines={customer.id: customer.deadline},
                    handoffs=[code.model_dump(mode="json") for code in ctx.new_handoffs],
                )
                for other in merged:
                    change.deadlines[other.id] = None
                await self._commit(change)
            return transition is not None

    # -- the outbox's send guard -----------------------------------------------------------------

    async def prefetch_for_send(self, items: Sequence[OutboxItem]) -> None:
        """Read the customers of a claimed batch in one store call, for :meth:`send_guard`.

        The outbox calls it with every batch it claims. A document read ahead serves the guard of
        one message, and only while it is at most :data:`SEND_GUARD_FRESHNESS_SECONDS` old (and
        this engine has not saved that customer since); otherwise the guard reads it again.
        """
        # Both taken before the read: its age counts from when it was asked for, and a save that
        # ends while the answer is on its way makes the answer stale (see _commit).
        documents_get = getattr(self.store, "documents_get", None)
        if documents_get is None:
            return  # a store written before Store.documents_get: the guard reads one by one
        read_at = self.clock.monotonic()
        saves_before = self._saves
        documents = await documents_get([item.customer for item in items])
        if self._saves_forgotten_at > saves_before:
            return  # the record of which customers were saved meanwhile is gone: use nothing
        if len(self._read_ahead) > _READ_AHEAD_LIMIT:
            self._read_ahead.clear()  # only sends that never came (e.g. leases run out) stay
        saved = self._saved_at
        for customer_id, document in documents.items():
            if saved.get(customer_id, 0) <= saves_before:
                self._read_ahead[customer_id] = (read_at, document)

    async def send_guard(self, item: OutboxItem, message: Any) -> Any:
        """Check a queued message again just before it is sent (windows can close meanwhile)."""
        ahead = self._read_ahead.pop(item.customer, None)
        if ahead is not None and self.clock.monotonic() - ahead[0] <= SEND_GUARD_FRESHNESS_SECONDS:
            document: Document | None = ahead[1]
        else:
            document = await self.store.document_get(item.customer)
        if document is None:
            document = await self._merged_into(item.customer)
        customer = Customer.from_document(document.data, document.version)
        now = self.clock.now()
        record = item.message
        if item.channel == "messenger":
            tag = record["body"].get("tag")
            check_messenger_send(
                customer, item.business_id, now, tag=tag, human=bool(record.get("human"))
            )
            return message
        try:
            check_whatsapp_send(
                customer,
                item.business_id,
                now,
                is_template=isinstance(message, TemplateMessage),
                marketing=bool(record.get("marketing")),
            )
        except OutsideServiceWindowError:
            fallback = record.get("fallback")
            if fallback is None:
                raise
            check_whatsapp_send(customer, item.business_id, now, is_template=True)
            logger.info("window closed before sending %s: sending its fallback template", item.id)
            return whatsapp_from_body(fallback)
        return message

    async def _merged_into(self, customer_id: str) -> Document:
        """The record a merged-away customer lives on in (merges leave a forwarding entry).

        A message queued for a customer is checked against whoever that customer is now; one
        whose customer is gone altogether is refused (parked), never sent unchecked.
        """
        current = customer_id
        for _ in range(_MAX_MERGE_HOPS):
            key = _merged_key(current)
            survivor = (await self.store.index_lookup([key])).get(key)
            if survivor is None:
                break
            document = await self.store.document_get(survivor)
            if document is not None:
                return document
            current = survivor
        raise WaflowError(
            f"customer {customer_id} no longer exists: a message queued for them is not sent "
            "unchecked"
        )

    # -- plumbing ------------------------------------------------------------------------------

    async def _commit(self, change: Commit) -> None:
        # The send guard must see what was just saved: drop what was read ahead of the save, and
        # (after it) note the save, so a read-ahead under way meanwhile does not keep its answer.
        customer_ids = [*(saved.id for saved in change.save), *change.delete]
        for customer_id in customer_ids:
            self._read_ahead.pop(customer_id, None)
        try:
            await self.store.commit(change)
        finally:
            self._saves += 1
            if len(self._saved_at) > _READ_AHEAD_LIMIT:
                self._saved_at.clear()
                self._saves_forgotten_at = self._saves
            for customer_id in customer_ids:
                self._saved_at[customer_id] = self._saves
                self._read_ahead.pop(customer_id, None)

    async def _load(self, customer_ids: Sequence[str]) -> list[Customer]:
        loaded = []
        for customer_id in customer_ids:
            document = await self.store.document_get(customer_id)
            if document is not None:
                loaded.append(Customer.from_document(document.data, document.version))
        return sorted(loaded, key=lambda c: (c.created_at, c.id)) if len(loaded) > 1 else loaded

    def _locked(self, customer_ids: Sequence[str]) -> _Locks:
        return _Locks(self, sorted(set(customer_ids)))


class _Merge:
    """Finds, locks and loads the customers that own ``keys`` (other than ``primary``), merges
    them into ``primary`` and yields them; their locks are held until the block ends."""

    def __init__(self, engine: Engine, primary: Customer, keys: list[str]) -> None:
        self.engine = engine
        self.primary = primary
        self.keys = keys
        self.locks: _Locks | None = None

    async def __aenter__(self) -> list[Customer]:
        if not self.keys:
            return []
        owners = await self.engine.store.index_lookup(self.keys)
        others = sorted({cid for cid in owners.values() if cid != self.primary.id})
        if not others:
            return []
        self.locks = _Locks(self.engine, others)
        await self.locks.__aenter__()
        loaded = await self.engine._load(others)
        for other in loaded:
            self.primary.merge(other)
        return loaded

    async def __aexit__(self, *exc_info: object) -> None:
        if self.locks is not None:
            await self.locks.__aexit__(*exc_info)


@dataclasses.dataclass
class _LockScope:
    """The customer locks one task holds, under an owner of its own."""

    engine: Engine
    task: asyncio.Task[Any] | None
    owner: str
    held: set[str]


# Per task, not per engine: two events of one customer handled side by side in one process (two
# numbers, or Messenger and WhatsApp linked) must exclude each other as two processes do. A
# block nested in one task (the merge of customers a handler linked) re-enters what it holds.
_lock_scope: contextvars.ContextVar[_LockScope | None] = contextvars.ContextVar(
    "waflow_customer_locks", default=None
)


class _Locks:
    """Holds the locks of several customers (taken in sorted order, so two workers never deadlock)."""

    def __init__(self, engine: Engine, customer_ids: list[str]) -> None:
        self.engine = engine
        self.keys = [f"customer:{customer_id}" for customer_id in customer_ids]
        self.held: list[str] = []
        self._scope: _LockScope | None = None
        self._entered: contextvars.Token[_LockScope | None] | None = None

    async def __aenter__(self) -> _Locks:
        engine = self.engine
        scope = _lock_scope.get()
        task = asyncio.current_task()
        # A task started inside a locked block inherits the context: it holds nothing itself.
        if scope is None or scope.engine is not engine or scope.task is not task:
            scope = _LockScope(engine, task, f"{engine.owner}:{uuid.uuid4().hex[:12]}", set())
            self._entered = _lock_scope.set(scope)
        self._scope = scope
        for key in self.keys:
            if key in scope.held:
                continue  # an enclosing block of this task holds it
            waited = 0.0
            while not await engine.store.lock_acquire(
                key, scope.owner, engine.lock_ttl, engine.clock.now()
            ):
                if waited >= engine.lock_wait:
                    await self._release()
                    raise LockTimeoutError(f"{key} stayed locked for {engine.lock_wait:.0f}s")
                await asyncio.sleep(0.01)
                waited += 0.01
            scope.held.add(key)
            self.held.append(key)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._release()

    async def _release(self) -> None:
        scope = self._scope
        try:
            if scope is not None:
                for key in reversed(self.held):
                    try:
                        await self.engine.store.lock_release(key, scope.owner)
                    except Exception as exc:  # it expires on its own; go on releasing the rest
                        logger.warning("could not release the lock %s: %s", key, exc)
        finally:
            # Whatever the store said, this block holds nothing more: a later block of the same
            # task must take its locks again, not believe it holds them.
            if scope is not None:
                scope.held.difference_update(self.held)
            self.held.clear()
            if self._entered is not None:
                _lock_scope.reset(self._entered)
                self._entered = None


def _opt_out_words(event: Event, keywords: Collection[str]) -> str | None:
    """What the customer said or tapped, if it is an opt-out keyword (else ``None``)."""
    said: list[Any] = [getattr(event, "text", None)]
    button = getattr(event, "button", None)  # a template's quick-reply button
    if button is not None:
        said += [getattr(button, "text", None), getattr(button, "payload", None)]
    for words in said:
        if isinstance(words, str) and words.strip(_AROUND_A_KEYWORD).casefold() in keywords:
            return words.strip()
    return None


#: How many merges in a row the send guard follows from a queued message's customer.
_MAX_MERGE_HOPS = 8


def _merged_key(customer_id: str) -> str:
    """The index key that forwards a merged-away customer to the record it was merged into."""
    return f"merged:{customer_id}"


def _event_ids(event: Event) -> list[LinkedId]:
    """The channel ids an event tells about its sender."""
    ids: list[LinkedId] = []
    if isinstance(event, WhatsAppMessage):
        wa_id = event.wa_id or event.from_
        if wa_id:
            ids.append(LinkedId(kind="wa_id", value=wa_id))
            phone = normalize_phone(wa_id)
            if phone is not None:
                ids.append(LinkedId(kind="phone", value=phone))
        if event.user_id:
            ids.append(LinkedId(kind="bsuid", value=event.user_id))
    elif isinstance(event, MessengerEvent) and event.sender_id:
        ids.append(LinkedId(kind="psid", value=event.sender_id, scope=event.page_id))
    return ids
