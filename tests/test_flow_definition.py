"""Flow declarations: checked when the class is created, matched for the engine, drawn as Mermaid."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import BaseModel

from waflow import filters as F
from waflow.errors import FlowDefinitionError
from waflow.events import Event
from waflow.flows import Flow, State, Transition
from waflow.flows.flow import NoData
from waflow.testing import FakeGraphAPI, FrozenClock
from waflow.webhooks import parse

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=timezone.utc)
CUSTOMER = "4915112345678"


@dataclass
class Ctx:
    """Stands in for the engine's context: flows pass it along untouched and read ``now``."""

    now: datetime = NOW
    window_closes: datetime = NOW + timedelta(hours=24)
    log: list[str] = field(default_factory=list)
    threads: list[int] = field(default_factory=list)
    match: re.Match[str] | None = None


class ShopData(BaseModel):
    product: str | None = None
    phone: str | None = None


def before_window_closes(ctx: Any) -> datetime:
    deadline: datetime = ctx.window_closes - timedelta(hours=1)
    return deadline


class ShopFlow(Flow[ShopData]):
    """A shop's conversation: catalog, product, phone number, handoff to WhatsApp."""

    name = "shop"

    start = State(initial=True)
    browsing = State(description="the catalog is shown")
    awaiting_phone = State(timeout=timedelta(hours=23))
    confirming = State(timeout=before_window_closes)
    done = State(final=True)

    @start.on(F.kind("message", "postback"), to="browsing")
    async def welcome(self, event: Event, ctx: Ctx) -> None:
        ctx.log.append("welcome")

    @browsing.on(
        F.payload(prefix="product:"),
        to="awaiting_phone",
        guard=lambda event, ctx: not str(getattr(event, "payload", "")).endswith(":sold-out"),
    )
    def choose(self, event: Event, ctx: Ctx) -> None:
        ctx.threads.append(threading.get_ident())
        ctx.log.append("choose")

    @browsing.on(F.payload(prefix="product:"), to=None)
    async def sold_out(self, event: Event, ctx: Ctx) -> None:
        ctx.log.append("sold_out")

    browsing.to("done", F.text("bye", ignore_case=True))

    @awaiting_phone.on(F.regex(r"^\+?\d{6,15}$"), to=confirming)
    async def got_phone(self, event: Event, ctx: Ctx) -> None:
        ctx.log.append("got_phone")

    @awaiting_phone.on_timeout(to="browsing")
    async def remind(self, ctx: Ctx) -> None:
        ctx.log.append("remind")

    @confirming.on(F.text("yes", ignore_case=True), to="done")
    async def confirm(self, event: Event, ctx: Ctx) -> None:
        ctx.log.append("confirm")

    @confirming.on_timeout(to=None)
    def last_call(self, ctx: Ctx) -> None:
        ctx.threads.append(threading.get_ident())
        ctx.log.append("last_call")

    @browsing.enter
    async def show_catalog(self, ctx: Ctx) -> None:
        ctx.log.append("show_catalog")

    @browsing.enter
    def count_visit(self, ctx: Ctx) -> None:
        ctx.threads.append(threading.get_ident())
        ctx.log.append("count_visit")

    @browsing.exit
    def leave(self, ctx: Ctx) -> None:
        ctx.log.append("leave")

    @Flow.anywhere(F.text("STOP", ignore_case=True), to="done")
    async def stop(self, event: Event, ctx: Ctx) -> None:
        ctx.log.append("stop")

    @Flow.anywhere(F.text("help", ignore_case=True), to=None)
    async def help(self, event: Event, ctx: Ctx) -> None:
        ctx.log.append("help")


@pytest.fixture
def fake() -> FakeGraphAPI:
    return FakeGraphAPI(clock=FrozenClock())


@pytest.fixture
def text(fake: FakeGraphAPI) -> Callable[[str], Event]:
    def make(body: str) -> Event:
        return parse(fake.inbound.whatsapp_text(CUSTOMER, body))[0]

    return make


@pytest.fixture
def tap(fake: FakeGraphAPI) -> Callable[[str], Event]:
    def make(payload: str) -> Event:
        return parse(fake.inbound.messenger_postback("7000000000000001", payload, "Tap"))[0]

    return make


# -- a realistic flow ----------------------------------------------------------------------------


def test_shop_flow_defines_cleanly_with_states_in_declaration_order() -> None:
    assert ShopFlow.name == "shop"
    assert ShopFlow.data_model is ShopData  # taken from Flow[ShopData]
    assert [s.name for s in ShopFlow.states()] == [
        "start",
        "browsing",
        "awaiting_phone",
        "confirming",
        "done",
    ]
    assert ShopFlow.initial_state() is ShopFlow.start
    assert ShopFlow.state("awaiting_phone") is ShopFlow.awaiting_phone
    assert ShopFlow.state("browsing").description == "the catalog is shown"


def test_transitions_list_each_state_then_the_anywhere_ones() -> None:
    summary = [
        (t.source, t.target, t.kind, t.handler_name, t.label) for t in ShopFlow.transitions()
    ]
    assert summary == [
        ("start", "browsing", "event", "welcome", "welcome"),
        ("browsing", "awaiting_phone", "event", "choose", "choose"),
        ("browsing", None, "event", "sold_out", "sold_out"),
        ("browsing", "done", "event", None, "text in ['bye']"),
        ("awaiting_phone", "confirming", "event", "got_phone", "got_phone"),
        ("awaiting_phone", "browsing", "timeout", "remind", "timeout (23h)"),
        ("confirming", "done", "event", "confirm", "confirm"),
        ("confirming", None, "timeout", "last_call", "timeout (before_window_closes)"),
        (None, "done", "event", "stop", "stop"),
        (None, None, "event", "help", "help"),
    ]
    timeout = ShopFlow().timeout_transition("awaiting_phone")
    assert timeout is not None and timeout.filters == () and timeout.guard is None


def test_transitions_are_frozen_values() -> None:
    transition = ShopFlow.transitions()[0]
    assert isinstance(transition, Transition)
    with pytest.raises(AttributeError):
        transition.target = "done"  # type: ignore[misc]


def test_default_name_is_the_class_name_in_snake_case_and_data_defaults_to_empty() -> None:
    class HTTPSupportFlow(Flow):  # type: ignore[type-arg]
        start = State(initial=True)
        closed = State(final=True)
        start.to("closed")

    assert HTTPSupportFlow.name == "http_support_flow"
    assert HTTPSupportFlow.data_model is NoData
    assert HTTPSupportFlow.new_data() == NoData()


def test_a_handler_may_serve_several_states_and_targets_may_be_states() -> None:
    class Survey(Flow):  # type: ignore[type-arg]
        ask = State(initial=True)
        again = State()
        thanks = State(final=True)

        @ask.on(F.text("yes"), to=thanks)
        @again.on(F.text("yes"), to=thanks)
        async def answered(self, event: Event, ctx: Any) -> None: ...

        ask.to(again, F.text("no"))
        again.to(None, F.text("no"))

    assert [(t.source, t.target, t.handler_name) for t in Survey.transitions()] == [
        ("ask", "thanks", "answered"),
        ("ask", "again", None),
        ("again", "thanks", "answered"),
        ("again", None, None),
    ]


# -- definition errors ---------------------------------------------------------------------------


def outside_handler(self: Any, event: Event, ctx: Any) -> None: ...


class OtherData(BaseModel):
    note: str = ""


class NeedsInput(BaseModel):
    order_id: str


def no_states() -> None:
    class Empty(Flow):  # type: ignore[type-arg]
        pass


def no_initial() -> None:
    class NoStart(Flow):  # type: ignore[type-arg]
        a = State()
        b = State(final=True)
        a.to("b")


def two_initial() -> None:
    class TwoStarts(Flow):  # type: ignore[type-arg]
        a = State(initial=True)
        b = State(initial=True)
        done = State(final=True)
        a.to("done")
        b.to("done")


def initial_and_final() -> None:
    class OverAtOnce(Flow):  # type: ignore[type-arg]
        start = State(initial=True, final=True)


def unknown_target() -> None:
    class Typo(Flow):  # type: ignore[type-arg]
        start = State(initial=True)
        done = State(final=True)

        @start.on(F.text("bye"), to="dnoe")
        async def leave(self, event: Event, ctx: Any) -> None: ...


def foreign_state_target() -> None:
    class Foreign(Flow):  # type: ignore[type-arg]
        start = State(initial=True)
        done = State(final=True)
        start.to("done", F.text("bye"))
        start.to(ShopFlow.done, F.text("shop"))


def unknown_anywhere_target() -> None:
    class NowhereToGo(Flow):  # type: ignore[type-arg]
        start = State(initial=True)
        done = State(final=True)
        start.to("done", F.text("bye"))

        @Flow.anywhere(F.text("stop"), to="ended")
        async def stop(self, event: Event, ctx: Any) -> None: ...


def unreachable() -> None:
    class Island(Flow):  # type: ignore[type-arg]
        start = State(initial=True)
        limbo = State()
        done = State(final=True)
        start.to("done", F.text("bye"))
        limbo.to("done", F.text("bye"))


def trap() -> None:
    class Stuck(Flow):  # type: ignore[type-arg]
        start = State(initial=True)
        waiting = State()
        done = State(final=True)
        start.to("waiting", F.text("wait"))
        start.to("done", F.text("bye"))


def test_a_state_that_only_stays_is_alive_not_a_trap() -> None:
    class Loop(Flow):  # type: ignore[type-arg]
        start = State(initial=True)
        waiting = State()
        done = State(final=True)
        start.to("waiting", F.text("wait"))
        start.to("done", F.text("bye"))
        waiting.to(None, F.text("help"))
        waiting.to("waiting", F.text("again"))

    assert [state.name for state in Loop.states()] == ["start", "waiting", "done"]


def final_with_transition() -> None:
    class Restart(Flow):  # type: ignore[type-arg]
        start = State(initial=True)
        done = State(final=True)
        start.to("done", F.text("bye"))
        done.to("start", F.text("again"))


def final_with_timeout() -> None:
    class LateEnd(Flow):  # type: ignore[type-arg]
        start = State(initial=True)
        done = State(final=True, timeout=timedelta(hours=1))
        start.to("done", F.text("bye"))


def timeout_without_handler() -> None:
    class Forgetful(Flow):  # type: ignore[type-arg]
        start = State(initial=True)
        waiting = State(timeout=timedelta(hours=1))
        done = State(final=True)
        start.to("waiting", F.text("wait"))
        waiting.to("done", F.text("bye"))


def handler_without_timeout() -> None:
    class NoClock(Flow):  # type: ignore[type-arg]
        start = State(initial=True)
        waiting = State()
        done = State(final=True)
        start.to("waiting", F.text("wait"))
        waiting.to("done", F.text("bye"))

        @waiting.on_timeout(to="done")
        async def remind(self, ctx: Any) -> None: ...


def two_timeout_handlers() -> None:
    class Twice(Flow):  # type: ignore[type-arg]
        start = State(initial=True)
        waiting = State(timeout=timedelta(hours=1))
        done = State(final=True)
        start.to("waiting", F.text("wait"))

        @waiting.on_timeout(to="done")
        async def remind(self, ctx: Any) -> None: ...

        @waiting.on_timeout(to="start")
        async def restart(self, ctx: Any) -> None: ...


def zero_timeout() -> None:
    class Instant(Flow):  # type: ignore[type-arg]
        start = State(initial=True)
        waiting = State(timeout=timedelta(0))
        done = State(final=True)
        start.to("waiting", F.text("wait"))

        @waiting.on_timeout(to="done")
        async def remind(self, ctx: Any) -> None: ...


def duplicate_state_name() -> None:
    class Redeclared(Flow):  # type: ignore[type-arg]
        start = State(initial=True)
        done = State(final=True)
        start.to("done", F.text("bye"))
        start = State(initial=True)  # noqa: PIE794


def duplicate_handler_name() -> None:
    class CopyPaste(Flow):  # type: ignore[type-arg]
        start = State(initial=True)
        done = State(final=True)

        @start.on(F.text("hi"), to="done")
        async def welcome(self, event: Event, ctx: Any) -> None: ...

        @start.on(F.text("bye"), to="done")  # type: ignore[no-redef]
        async def welcome(self, event: Event, ctx: Any) -> None: ...  # noqa: F811


def same_state_twice() -> None:
    class Alias(Flow):  # type: ignore[type-arg]
        start = State(initial=True)
        done = State(final=True)
        finished = done
        start.to("done", F.text("bye"))


def state_shadowing_the_api() -> None:
    class Shadow(Flow):  # type: ignore[type-arg]
        start = State(initial=True)
        match = State(final=True)  # type: ignore[assignment]
        start.to("match", F.text("bye"))


def handler_shadowing_the_api() -> None:
    class ShadowHandler(Flow):  # type: ignore[type-arg]
        start = State(initial=True)
        done = State(final=True)

        @start.on(F.text("bye"), to="done")
        def deadline(self, event: Event, ctx: Any) -> None: ...  # type: ignore[override]


def handler_outside_the_class() -> None:
    class Borrowed(Flow):  # type: ignore[type-arg]
        start = State(initial=True)
        done = State(final=True)
        start.on(F.text("bye"), to="done")(outside_handler)


def target_given_as_filter() -> None:
    class Confused(Flow):  # type: ignore[type-arg]
        start = State(initial=True)
        done = State(final=True)
        start.to("done", "bye")  # type: ignore[arg-type]


def guard_not_callable() -> None:
    class BadGuard(Flow):  # type: ignore[type-arg]
        start = State(initial=True)
        done = State(final=True)
        start.to("done", F.text("bye"), guard=True)  # type: ignore[arg-type]


def data_model_not_pydantic() -> None:
    class DictData(Flow):  # type: ignore[type-arg]
        data_model = dict  # type: ignore[assignment]
        start = State(initial=True)
        done = State(final=True)
        start.to("done")


def data_model_with_required_field() -> None:
    class Required(Flow[NeedsInput]):
        start = State(initial=True)
        done = State(final=True)
        start.to("done")


def data_model_contradicts_type_argument() -> None:
    class Mixed(Flow[ShopData]):
        data_model = OtherData
        start = State(initial=True)
        done = State(final=True)
        start.to("done")


def inherited_state_replaced() -> None:
    class Base(Flow[Any], abstract=True):
        start = State(initial=True)
        done = State(final=True)
        start.to("done")

    class Child(Base):
        def done(self) -> None: ...  # type: ignore[override]


DEFINITION_ERRORS = [
    (no_states, "Empty", "declares no states"),
    (no_initial, "NoStart", "has no initial state; mark the state conversations start in"),
    (two_initial, "TwoStarts", "has 2 initial states ('a', 'b'); mark exactly one"),
    (initial_and_final, "OverAtOnce", "state 'start' is both initial and final"),
    (unknown_target, "Typo", "from state 'start' (leave) goes to unknown state 'dnoe'; did you mean 'done'?"),
    (foreign_state_target, "Foreign", "goes to State('done', final=True), which is not a state of this flow"),
    (unknown_anywhere_target, "NowhereToGo", "an anywhere-transition (stop) goes to unknown state 'ended'"),
    (unreachable, "Island", "state 'limbo' cannot be reached from the initial state 'start'"),
    (trap, "Stuck", "state 'waiting' is a trap: no transition, timeout or Flow.anywhere"),
    (final_with_transition, "Restart", "final state 'done' has outgoing transitions or a timeout"),
    (final_with_timeout, "LateEnd", "final state 'done' has outgoing transitions or a timeout"),
    (timeout_without_handler, "Forgetful", "state 'waiting' has a timeout but no transition for it; add @waiting.on_timeout(to=...)"),
    (handler_without_timeout, "NoClock", "state 'waiting' has an on_timeout transition but no timeout"),
    (two_timeout_handlers, "Twice", "state 'waiting' has 2 on_timeout handlers; keep one"),
    (zero_timeout, "Instant", "use a positive timedelta"),
    (duplicate_state_name, "Redeclared", "'start' is declared twice"),
    (duplicate_handler_name, "CopyPaste", "'welcome' is declared twice"),
    (same_state_twice, "Alias", "the same State() is declared as Alias.done and Alias.finished"),
    (state_shadowing_the_api, "Shadow", "state 'match' would shadow Flow.match; rename the state"),
    (handler_shadowing_the_api, "ShadowHandler", "handler 'deadline' would shadow Flow.deadline"),
    (handler_outside_the_class, "Borrowed", "'outside_handler' is not a method of Borrowed"),
    (target_given_as_filter, "Confused", "has the filter 'bye', which is not a waflow.filters.Filter; the target state goes in to="),
    (guard_not_callable, "BadGuard", "has guard=True; a guard is callable(event, ctx) -> bool"),
    (data_model_not_pydantic, "DictData", "data_model must be a pydantic BaseModel subclass"),
    (data_model_with_required_field, "Required", "field 'order_id' of data_model NeedsInput has no default"),
    (data_model_contradicts_type_argument, "Mixed", "data_model OtherData is not the ShopData declared by Flow[ShopData]"),
    (inherited_state_replaced, "Child", "'done' replaces the inherited state 'done'"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("define", "flow", "message"),
    DEFINITION_ERRORS,
    ids=[define.__name__ for define, _, _ in DEFINITION_ERRORS],
)
def test_an_ill_formed_flow_fails_when_defined(
    define: Callable[[], None], flow: str, message: str
) -> None:
    with pytest.raises(FlowDefinitionError, match=rf"^flow {flow}: .*{re.escape(message)}"):
        define()


def test_transitions_cannot_be_added_once_the_flow_is_defined() -> None:
    with pytest.raises(FlowDefinitionError, match="flow ShopFlow: state 'browsing' is already"):
        ShopFlow.browsing.to("done", F.text("later"))


def test_only_functions_can_be_handlers() -> None:
    with pytest.raises(FlowDefinitionError, match="take functions defined in the flow's class"):
        State().enter(print)


# -- matching ------------------------------------------------------------------------------------


def test_the_first_own_transition_whose_filters_pass_is_taken(
    tap: Callable[[str], Event], text: Callable[[str], Event]
) -> None:
    flow = ShopFlow()
    ctx = Ctx()
    chosen = flow.match("browsing", tap("product:42"), ctx)
    assert chosen is not None and chosen.handler_name == "choose"
    assert flow.match("browsing", text("product:42"), ctx) is None  # a text is not a tap
    bye = flow.match("browsing", text(" BYE "), ctx)
    assert bye is not None and (bye.target, bye.handler_name) == ("done", None)


def test_a_false_guard_passes_the_event_to_the_next_transition(
    tap: Callable[[str], Event],
) -> None:
    chosen = ShopFlow().match("browsing", tap("product:42:sold-out"), Ctx())
    assert chosen is not None and (chosen.handler_name, chosen.target) == ("sold_out", None)


def test_anywhere_transitions_apply_after_the_states_own(text: Callable[[str], Event]) -> None:
    flow = ShopFlow()
    for state in ("browsing", "awaiting_phone", "confirming"):
        chosen = flow.match(state, text("help"), Ctx())
        assert chosen is not None and (chosen.source, chosen.handler_name) == (None, "help")
    # In `start` any message welcomes: the state's own transition wins over help and STOP.
    for body in ("help", "stop"):
        start = flow.match("start", text(body), Ctx())
        assert start is not None and start.handler_name == "welcome"
    stop = flow.match("confirming", text("stop"), Ctx())
    assert stop is not None and (stop.handler_name, stop.target) == ("stop", "done")


def test_a_final_state_never_matches(text: Callable[[str], Event]) -> None:
    assert ShopFlow().match("done", text("STOP"), Ctx()) is None
    assert ShopFlow().match("done", text("help"), Ctx()) is None


def test_no_transition_matches_an_unexpected_event(text: Callable[[str], Event]) -> None:
    assert ShopFlow().match("awaiting_phone", text("tomorrow maybe"), Ctx()) is None


def test_filters_see_the_context_and_leave_their_match_in_it(
    text: Callable[[str], Event],
) -> None:
    ctx = Ctx()
    chosen = ShopFlow().match("awaiting_phone", text("+4915112345678"), ctx)
    assert chosen is not None and chosen.target == "confirming"
    assert ctx.match is not None and ctx.match.group(0) == "+4915112345678"


def test_unknown_states_raise_key_error(text: Callable[[str], Event]) -> None:
    flow = ShopFlow()
    with pytest.raises(KeyError, match="no state 'checkout'"):
        flow.match("checkout", text("hi"), Ctx())
    with pytest.raises(KeyError, match="no state 'checkout'"):
        flow.deadline("checkout", Ctx())
    with pytest.raises(KeyError, match="no state 'checkout'"):
        ShopFlow.state("checkout")


def test_timeout_transitions_exist_only_for_states_with_a_timeout() -> None:
    flow = ShopFlow()
    remind = flow.timeout_transition("awaiting_phone")
    assert remind is not None and (remind.kind, remind.target) == ("timeout", "browsing")
    assert flow.timeout_transition("browsing") is None
    assert flow.timeout_transition("done") is None


# -- deadlines -----------------------------------------------------------------------------------


def test_deadlines_come_from_the_contexts_now_or_the_states_callable() -> None:
    flow = ShopFlow()
    ctx = Ctx(now=NOW, window_closes=NOW + timedelta(hours=20))
    assert flow.deadline("awaiting_phone", ctx) == NOW + timedelta(hours=23)
    assert flow.deadline("confirming", ctx) == NOW + timedelta(hours=19)
    assert flow.deadline("browsing", ctx) is None
    assert flow.deadline("done", ctx) is None


def test_a_naive_deadline_is_refused() -> None:
    naive = Ctx(now=datetime(2026, 3, 2, 9, 30))
    with pytest.raises(ValueError, match="state 'awaiting_phone' must be a timezone-aware"):
        ShopFlow().deadline("awaiting_phone", naive)


# -- handlers and hooks --------------------------------------------------------------------------


async def test_async_and_sync_handlers_run_sync_ones_off_the_event_loop(
    tap: Callable[[str], Event], text: Callable[[str], Event]
) -> None:
    flow = ShopFlow()
    ctx = Ctx()
    for event, state in ((text("hi"), "start"), (tap("product:42"), "browsing")):
        transition = flow.match(state, event, ctx)
        assert transition is not None
        await flow.run_handler(transition, event, ctx)
    assert ctx.log == ["welcome", "choose"]
    assert ctx.threads and ctx.threads[0] != threading.get_ident()


async def test_timeout_handlers_run_without_an_event() -> None:
    flow = ShopFlow()
    ctx = Ctx()
    for state in ("awaiting_phone", "confirming"):
        transition = flow.timeout_transition(state)
        assert transition is not None
        await flow.run_handler(transition, None, ctx)
    assert ctx.log == ["remind", "last_call"]


async def test_handler_less_transitions_run_nothing(text: Callable[[str], Event]) -> None:
    ctx = Ctx()
    event = text("bye")
    transition = ShopFlow().match("browsing", event, ctx)
    assert transition is not None
    await ShopFlow().run_handler(transition, event, ctx)
    assert ctx.log == []


async def test_a_handler_gets_an_event_exactly_when_it_is_an_event_handler(
    text: Callable[[str], Event],
) -> None:
    flow = ShopFlow()
    event_transition = flow.match("start", text("hi"), Ctx())
    timeout = flow.timeout_transition("awaiting_phone")
    assert event_transition is not None and timeout is not None
    with pytest.raises(ValueError, match="an event transition runs with the event"):
        await flow.run_handler(event_transition, None, Ctx())
    with pytest.raises(ValueError, match="a timeout transition runs without an event"):
        await flow.run_handler(timeout, text("hi"), Ctx())


async def test_enter_and_exit_hooks_run_in_declaration_order() -> None:
    flow = ShopFlow()
    ctx = Ctx()
    await flow.run_exit("browsing", ctx)
    await flow.run_enter("browsing", ctx)
    await flow.run_enter("start", ctx)  # no hooks
    assert ctx.log == ["leave", "show_catalog", "count_visit"]
    assert ctx.threads and ctx.threads[0] != threading.get_ident()


async def test_a_subclass_overrides_handlers_and_inherits_anywhere_transitions(
    text: Callable[[str], Event],
) -> None:
    class Polite(Flow[Any], abstract=True):
        @Flow.anywhere(F.text("stop"), to="done")
        async def stop(self, event: Event, ctx: Ctx) -> None:
            ctx.log.append("base stop")

    class Support(Polite):
        start = State(initial=True)
        done = State(final=True)

        @start.on(F.text("hi"), to="done")
        async def hello(self, event: Event, ctx: Ctx) -> None:
            ctx.log.append("hello")

    class FriendlierSupport(Support):
        async def stop(self, event: Event, ctx: Ctx) -> None:
            ctx.log.append("friendlier stop")

    ctx = Ctx()
    event = text("stop")
    for flow in (Support(), FriendlierSupport()):
        transition = flow.match("start", event, ctx)
        assert transition is not None
        await flow.run_handler(transition, event, ctx)
    assert ctx.log == ["base stop", "friendlier stop"]
    with pytest.raises(TypeError, match="Polite is an abstract flow"):
        Polite()


# -- typed data ----------------------------------------------------------------------------------


def test_data_starts_empty_and_round_trips_through_its_stored_form() -> None:
    data = ShopFlow.new_data()
    assert data == ShopData()
    data.product = "42"
    stored = ShopFlow.dump_data(data)
    assert stored == {"product": "42", "phone": None}
    assert ShopFlow.load_data(stored) == data


def test_stored_data_that_does_not_fit_the_model_raises_value_error() -> None:
    with pytest.raises(ValueError, match="stored data of flow 'shop' does not fit ShopData"):
        ShopFlow.load_data({"product": ["not", "a", "string"]})


def test_dumping_data_of_another_model_is_refused() -> None:
    with pytest.raises(TypeError, match="flow 'shop' stores ShopData, got OtherData"):
        ShopFlow.dump_data(OtherData())  # type: ignore[arg-type]


# -- Mermaid -------------------------------------------------------------------------------------


class CheckoutFlow(Flow):  # type: ignore[type-arg]
    name = "checkout"

    cart = State(initial=True, description="items: picked")
    paying = State(timeout=timedelta(hours=1, minutes=30))
    paid = State(final=True)

    @cart.on(F.payload("checkout"), to="paying")
    async def ask_payment(self, event: Event, ctx: Any) -> None: ...

    cart.to(None, F.text("help"))

    @paying.on(F.message_type("order"), to="paid")
    async def thank(self, event: Event, ctx: Any) -> None: ...

    @paying.on_timeout(to="cart")
    async def nudge(self, ctx: Any) -> None: ...

    @Flow.anywhere(F.text("STOP"), to="paid")
    async def stop(self, event: Event, ctx: Any) -> None: ...


def test_mermaid_draws_every_state_and_transition() -> None:
    assert CheckoutFlow.mermaid() == (
        "stateDiagram-v2\n"
        "    cart : items#58; picked\n"
        "    [*] --> cart\n"
        "    cart --> paying : ask_payment\n"
        "    cart --> cart : text in ['help']\n"
        "    cart --> paid : stop\n"
        "    paying --> paid : thank\n"
        "    paying --> cart : timeout (1h30m)\n"
        "    paying --> paid : stop\n"
        "    paid --> [*]\n"
    )


def test_mermaid_of_the_shop_flow_names_every_state() -> None:
    diagram = ShopFlow.mermaid()
    assert diagram.startswith("stateDiagram-v2\n")
    for state in ShopFlow.states():
        assert re.search(rf"^    {state.name} ", diagram, re.MULTILINE), state.name
    assert "    awaiting_phone --> browsing : timeout (23h)\n" in diagram
    assert "    confirming --> confirming : timeout (before_window_closes)\n" in diagram
    # product:* contains a colon, which would end a Mermaid label early.
    assert ":" not in diagram.replace(" : ", "")


def test_mermaid_gives_awkward_state_names_an_id_and_a_label() -> None:
    class Awkward(Flow):  # type: ignore[type-arg]
        note = State(initial=True)
        größe = State()
        s1 = State()
        change_direction = State(final=True)

        note.to("größe", F.text("a;b"))
        größe.to("s1", F.text('say "hi"'))
        s1.to("change_direction", F.when(lambda e: True, "<direction>"))

    assert Awkward.mermaid() == (
        "stateDiagram-v2\n"
        '    state "note" as s0\n'
        '    state "größe" as s1_\n'
        '    state "change_directio#110;" as s3\n'
        "    [*] --> s0\n"
        "    s0 --> s1_ : text in ['a#59;b']\n"
        "    s1_ --> s1 : text in ['say #quot;hi#quot;']\n"
        "    s1 --> s3 : #lt;directio#110;#gt;\n"
        "    s3 --> [*]\n"
    )


def test_durations_in_timeout_labels_are_compact() -> None:
    def flow_with(timeout: timedelta) -> str:
        class Timed(Flow):  # type: ignore[type-arg]
            start = State(initial=True)
            waiting = State(timeout=timeout)
            done = State(final=True)
            start.to("waiting")
            waiting.to("done", F.text("ok"))

            @waiting.on_timeout(to="done")
            async def expire(self, ctx: Any) -> None: ...

        return Timed.transitions()[-1].label

    assert flow_with(timedelta(days=1, hours=2)) == "timeout (1d2h)"
    assert flow_with(timedelta(seconds=90)) == "timeout (1m30s)"
    assert flow_with(timedelta(milliseconds=500)) == "timeout (0.5s)"


def test_anywhere_first_wins_over_the_states_own_transitions() -> None:
    class Commands(Flow):  # type: ignore[type-arg]
        waiting = State(initial=True)
        stopped = State(final=True)
        helped = State(final=True)

        waiting.to(None, F.kind("message"))

        @Flow.anywhere(F.text("STOP"), to="stopped", first=True)
        def stop(self, event: Any, ctx: Any) -> None: ...

        @Flow.anywhere(F.text("HELP"), to="helped")
        def help(self, event: Any, ctx: Any) -> None: ...

    flow = Commands()
    ctx = SimpleNamespace(match=None)
    stop = flow.match("waiting", _text_event("STOP"), ctx)
    assert stop is not None and stop.target == "stopped" and stop.first
    other = flow.match("waiting", _text_event("HELP"), ctx)  # the state's own transition wins
    assert other is not None and other.target is None


def _text_event(text: str) -> Any:
    return parse(FakeGraphAPI().inbound.whatsapp_text("4915112345678", text))[0]
