"""Conversation flows, declared on a class: states, transitions, hooks, timeouts and typed data.

::

    class ShopData(BaseModel):
        product: str | None = None

    class ShopFlow(Flow[ShopData]):
        name = "shop"                                   # default: the class name in snake_case

        start = State(initial=True)
        browsing = State()
        awaiting_phone = State(timeout=timedelta(hours=23))
        done = State(final=True)

        @start.on(F.kind("message", "postback"), to="browsing")
        async def welcome(self, event, ctx): ...

        @browsing.on(F.payload(prefix="product:"), to="awaiting_phone")
        def choose(self, event, ctx): ...               # sync handlers run in a thread

        browsing.to("done", F.text("bye"))               # a transition without a handler

        @awaiting_phone.on_timeout(to="browsing")
        async def remind(self, ctx): ...                # timeout handlers get no event

        @Flow.anywhere(F.text("STOP", ignore_case=True), to="done")
        async def stop(self, event, ctx): ...

The class is checked when it is created: exactly one initial state, known targets, every state
reachable from the initial one, no trap states, final states without ways out, a timeout exactly
where there is an ``on_timeout``. A mistake raises :class:`~waflow.errors.FlowDefinitionError`
naming the flow, the state and the fix. :meth:`Flow.mermaid` draws the flow.

This module only declares and matches: it does no I/O and reads no clock. The engine keeps each
customer's state, data and deadline in the store, asks :meth:`Flow.match` which transition an event
takes, runs the handler and the hooks, and fires stored deadlines. What it can rely on:

- **Order.** The current state's own transitions in the order they were declared, then the
  :meth:`Flow.anywhere` transitions in the order they were declared; the first whose filters all
  pass and whose guard returns true is taken.
- **Staying.** ``to=None`` stays in the state: no exit or enter hooks run and the stored deadline
  is kept (so a "help" answer does not postpone a reminder). A timeout with ``to=None`` stays with
  its deadline spent, not re-armed. ``to=`` the state itself is a re-entry: exit hooks, enter
  hooks, a new deadline.
- **The context.** ``ctx`` is whatever the engine hands in; filters, guards, handlers and hooks get
  it unchanged, and :meth:`Flow.deadline` reads ``ctx.now``.
"""

from __future__ import annotations

import asyncio
import difflib
import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import (
    Any,
    ClassVar,
    Generic,
    Literal,
    TypeAlias,
    TypeVar,
    cast,
    get_args,
    get_origin,
)

from pydantic import BaseModel, ValidationError

from waflow.errors import FlowDefinitionError
from waflow.events import Event
from waflow.filters import Filter

__all__ = ["Flow", "Guard", "NoData", "State", "Timeout", "Transition"]

D = TypeVar("D", bound=BaseModel)
Fn = TypeVar("Fn", bound=Callable[..., Any])

#: Decides whether a transition whose filters passed may be taken: ``guard(event, ctx) -> bool``.
Guard: TypeAlias = Callable[[Event, Any], bool]
#: How long a state waits: a delay from entering it, or ``callable(ctx) -> datetime`` for a
#: deadline of its own (e.g. one hour before the customer service window closes).
Timeout: TypeAlias = timedelta | Callable[[Any], datetime]

# The attribute that marks a function registered by a flow decorator. Its value is the list of
# the function's anywhere-transitions (empty for handlers of a state's own transitions).
_MARK = "__waflow_flow__"


class NoData(BaseModel):
    """The data of a flow that keeps none: the default ``data_model``."""


@dataclass(frozen=True)
class Transition:
    """A way from one state to another, as the engine sees it.

    ``source`` is ``None`` for an anywhere-transition (it applies in every non-final state);
    ``target`` is ``None`` for "stay in the current state" (no hooks run). ``kind`` is ``"event"``
    for transitions taken by an event, ``"timeout"`` for the one taken when a state's deadline
    passes (no filters, no guard). ``handler_name`` names the flow's method to run, if any;
    ``label`` is what diagrams print.
    """

    source: str | None
    target: str | None
    filters: tuple[Filter, ...]
    guard: Guard | None
    handler_name: str | None
    kind: Literal["event", "timeout"]
    label: str
    first: bool = False


@dataclass(frozen=True)
class _Pending:
    # A transition as registered in the class body, checked and resolved when the class exists
    # (where an error can name the flow and the state).
    filters: tuple[object, ...]
    to: object
    guard: object
    handler: Callable[..., Any] | None
    first: bool = False


class State:
    """A state of a :class:`Flow`, declared as a class attribute; its ``name`` is the attribute's.

    ``initial`` marks where every conversation starts (exactly one per flow), ``final`` where it
    ends (no way out). ``timeout`` (a :class:`~datetime.timedelta` or ``callable(ctx) ->
    datetime``) gives the state a deadline, which needs an :meth:`on_timeout` transition.
    ``description`` is shown in diagrams. Transitions and hooks are registered in the class body,
    with the decorators of the state; registering once the class exists raises
    :class:`~waflow.errors.FlowDefinitionError`.
    """

    def __init__(
        self,
        *,
        initial: bool = False,
        final: bool = False,
        timeout: Timeout | None = None,
        description: str | None = None,
    ) -> None:
        self.initial = initial
        self.final = final
        self.timeout = timeout
        self.description = description
        self.name = ""
        # Every (class, attribute) this object was declared as; more than one is an error.
        self._declared: list[tuple[type, str]] = []
        self._events: list[_Pending] = []
        self._timeouts: list[_Pending] = []
        self._enter: list[Callable[..., Any]] = []
        self._exit: list[Callable[..., Any]] = []

    def __set_name__(self, owner: type, name: str) -> None:
        # Raising here would surface as a RuntimeError on Python < 3.12; the flow reports it.
        self._declared.append((owner, name))
        self.name = self.name or name

    def __repr__(self) -> str:
        flags = [f for f in ("initial", "final") if getattr(self, f)]
        return f"State({self.name or '?'!r}{''.join(f', {f}=True' for f in flags)})"

    def on(
        self, *filters: Filter, to: str | State | None, guard: Guard | None = None
    ) -> Callable[[Fn], Fn]:
        """Decorate ``handler(self, event, ctx)``: taken by events that pass every filter and the
        guard, it leads to ``to`` (a state or its name; ``None`` stays)."""
        self._check_open()

        def register(handler: Fn) -> Fn:
            _mark(handler)
            self._events.append(_Pending(filters, to, guard, handler))
            return handler

        return register

    def to(self, target: str | State | None, *filters: Filter, guard: Guard | None = None) -> None:
        """Register a transition without a handler to ``target``, for events passing ``filters``."""
        self._check_open()
        self._events.append(_Pending(filters, target, guard, None))

    def on_timeout(self, *, to: str | State | None) -> Callable[[Fn], Fn]:
        """Decorate ``handler(self, ctx)``, run when the state's deadline passes, leading to ``to``.

        The state must have a ``timeout``; a state has at most one timeout transition.
        """
        self._check_open()

        def register(handler: Fn) -> Fn:
            _mark(handler)
            self._timeouts.append(_Pending((), to, None, handler))
            return handler

        return register

    def enter(self, hook: Fn) -> Fn:
        """Decorate ``hook(self, ctx)``, run whenever the state is entered (in declaration order)."""
        self._check_open()
        self._enter.append(_mark(hook))
        return hook

    def exit(self, hook: Fn) -> Fn:
        """Decorate ``hook(self, ctx)``, run whenever the state is left (in declaration order)."""
        self._check_open()
        self._exit.append(_mark(hook))
        return hook

    def _check_open(self) -> None:
        if self._declared:
            owner = self._declared[0][0].__name__
            raise FlowDefinitionError(
                f"flow {owner}: state {self.name!r} is already defined; register its transitions "
                f"and hooks in the body of {owner}"
            )


def _mark(handler: Fn) -> Fn:
    if not inspect.isfunction(handler):
        raise FlowDefinitionError(
            f"flow decorators take functions defined in the flow's class body, got {handler!r}"
        )
    handler.__dict__.setdefault(_MARK, [])
    return handler


def _is_declaration(value: object) -> bool:
    return isinstance(value, State) or (inspect.isfunction(value) and _MARK in value.__dict__)


class _Namespace(dict[str, Any]):
    # A class body is executed into this mapping, so a state or handler declared twice fails at
    # the second declaration, instead of silently dropping the first with its transitions.
    def __init__(self, class_name: str) -> None:
        super().__init__()
        self._class_name = class_name

    def __setitem__(self, key: str, value: Any) -> None:
        if key in self and (_is_declaration(self[key]) or _is_declaration(value)):
            raise FlowDefinitionError(
                f"flow {self._class_name}: {key!r} is declared twice; the second declaration "
                "would replace the first and its transitions: give each state and handler its "
                "own name"
            )
        super().__setitem__(key, value)


class _FlowMeta(type):
    @classmethod
    def __prepare__(mcs, name: str, bases: tuple[type, ...], /, **kwargs: Any) -> _Namespace:
        return _Namespace(name)


@dataclass(frozen=True)
class _Definition:
    # The checked flow: what the engine-facing methods read.
    states: Mapping[str, State]
    initial: str
    events: Mapping[str, tuple[Transition, ...]]
    timeouts: Mapping[str, Transition]
    anywhere: tuple[Transition, ...]
    enter: Mapping[str, tuple[str, ...]]
    exit: Mapping[str, tuple[str, ...]]

    def state(self, name: str) -> State:
        try:
            return self.states[name]
        except KeyError:
            raise KeyError(f"no state {name!r}; states: {', '.join(self.states)}") from None


class Flow(Generic[D], metaclass=_FlowMeta):
    """A conversation flow: subclass it, declare :class:`State` attributes and transitions.

    ``name`` (default: the class name in snake_case) identifies the flow in the store.
    ``data_model`` is the pydantic model of each customer's data in the flow (default: the model
    given as ``Flow[Model]``, else :class:`NoData`); every field needs a default, because a
    conversation starts from ``data_model()``. A base class meant to be subclassed is declared
    with ``class Base(Flow[D], abstract=True)``: it is not checked and cannot run.

    Instances hold no state (the store does); the engine creates them with ``MyFlow()``.

    Raises:
        FlowDefinitionError: when the class is created, if the flow is ill-formed.
    """

    name: ClassVar[str] = "flow"
    data_model: ClassVar[type[BaseModel]] = NoData
    _definition: ClassVar[_Definition | None] = None

    def __init_subclass__(cls, *, abstract: bool = False, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__:
            cls.name = _snake_case(cls.__name__)
        declared = _type_argument(cls)
        if "data_model" not in cls.__dict__ and declared is not None:
            cls.data_model = declared
        cls._definition = None if abstract else _Checker(cls, declared).check()

    def __init__(self) -> None:
        type(self)._spec()  # an abstract flow cannot run

    @classmethod
    def _spec(cls) -> _Definition:
        if cls._definition is None:
            raise TypeError(f"{cls.__name__} is an abstract flow; subclass it and declare states")
        return cls._definition

    # -- declaration ----------------------------------------------------------------------------

    @staticmethod
    def anywhere(
        *filters: Filter, to: str | State | None, guard: Guard | None = None, first: bool = False
    ) -> Callable[[Fn], Fn]:
        """Decorate ``handler(self, event, ctx)`` for events passing the filters and the guard in
        every non-final state, after the state's own transitions — or, with ``first=True``, before
        them (for commands such as STOP that must win over whatever the state would do)."""

        def register(handler: Fn) -> Fn:
            _mark(handler).__dict__[_MARK].append(_Pending(filters, to, guard, handler, first))
            return handler

        return register

    # -- introspection --------------------------------------------------------------------------

    @classmethod
    def states(cls) -> tuple[State, ...]:
        """The states, in declaration order (a base class's first)."""
        return tuple(cls._spec().states.values())

    @classmethod
    def state(cls, name: str) -> State:
        """The state called ``name``; raises :class:`KeyError` if there is none."""
        return cls._spec().state(name)

    @classmethod
    def initial_state(cls) -> State:
        """The state every conversation of this flow starts in."""
        spec = cls._spec()
        return spec.states[spec.initial]

    @classmethod
    def transitions(cls) -> tuple[Transition, ...]:
        """Every transition: per state its event transitions and its timeout, then the anywhere
        transitions (``source=None``), each in declaration order."""
        spec = cls._spec()
        own = [t for name in spec.states for t in (*spec.events[name], *_timeout_of(spec, name))]
        return (*own, *spec.anywhere)

    # -- typed data -----------------------------------------------------------------------------

    @classmethod
    def new_data(cls) -> D:
        """The data a new conversation starts with: ``data_model()``."""
        return cast(D, cls.data_model())

    @classmethod
    def load_data(cls, stored: Mapping[str, Any]) -> D:
        """The data from its stored (JSON) form.

        Raises:
            ValueError: if ``stored`` does not fit ``data_model`` (stored by an older version of
                the model, or corrupt); the pydantic error is its ``__cause__``.
        """
        try:
            return cast(D, cls.data_model.model_validate(stored))
        except ValidationError as exc:
            raise ValueError(
                f"stored data of flow {cls.name!r} does not fit {cls.data_model.__name__}: "
                f"{exc.error_count()} error(s), first: {exc.errors()[0]['msg']}"
            ) from exc

    @classmethod
    def dump_data(cls, data: D) -> dict[str, Any]:
        """The data in its stored form: JSON-compatible (``model_dump(mode="json")``).

        Raises:
            TypeError: if ``data`` is not a ``data_model``.
        """
        if not isinstance(data, cls.data_model):
            raise TypeError(
                f"flow {cls.name!r} stores {cls.data_model.__name__}, got {type(data).__name__}"
            )
        return data.model_dump(mode="json")

    # -- matching, for the engine ---------------------------------------------------------------

    def match(self, state_name: str, event: Event, ctx: Any) -> Transition | None:
        """The transition ``event`` takes from ``state_name``, or ``None``.

        Anywhere transitions declared ``first=True``, then the state's own event transitions, then
        the other anywhere transitions, each in declaration order: the first whose filters all
        pass and whose guard (if any) returns true. A final state matches nothing. Raises
        :class:`KeyError` for an unknown state.
        """
        spec = self._spec()
        if spec.state(state_name).final:
            return None
        early = tuple(t for t in spec.anywhere if t.first)
        late = tuple(t for t in spec.anywhere if not t.first)
        for transition in (*early, *spec.events[state_name], *late):
            if all(f(event, ctx) for f in transition.filters) and (
                transition.guard is None or transition.guard(event, ctx)
            ):
                return transition
        return None

    def timeout_transition(self, state_name: str) -> Transition | None:
        """The transition taken when the deadline of ``state_name`` passes, if it has a timeout."""
        spec = self._spec()
        spec.state(state_name)
        return spec.timeouts.get(state_name)

    def deadline(self, state_name: str, ctx: Any) -> datetime | None:
        """When the timeout of ``state_name`` fires if the state is entered now: ``ctx.now +
        timeout`` or ``timeout(ctx)``; ``None`` for a state without timeout.

        Raises:
            ValueError: if the deadline is not a timezone-aware datetime.
        """
        timeout = self._spec().state(state_name).timeout
        if timeout is None:
            return None
        at = ctx.now + timeout if isinstance(timeout, timedelta) else timeout(ctx)
        if not isinstance(at, datetime) or at.tzinfo is None:
            raise ValueError(
                f"flow {self.name!r}: the deadline of state {state_name!r} must be a "
                f"timezone-aware datetime, got {at!r}"
            )
        return at

    async def run_handler(self, transition: Transition, event: Event | None, ctx: Any) -> None:
        """Run the handler of ``transition`` (if any): ``handler(event, ctx)`` for an event
        transition, ``handler(ctx)`` for a timeout. Sync handlers run in a worker thread.

        Raises:
            ValueError: if an event transition gets no event, or a timeout transition gets one.
        """
        if transition.kind == "timeout" and event is not None:
            raise ValueError("a timeout transition runs without an event; pass event=None")
        if transition.kind == "event" and event is None:
            raise ValueError("an event transition runs with the event that matched it, not None")
        if transition.handler_name is None:
            return
        handler = getattr(self, transition.handler_name)
        await (_invoke(handler, ctx) if event is None else _invoke(handler, event, ctx))

    async def run_enter(self, state_name: str, ctx: Any) -> None:
        """Run the enter hooks of ``state_name``, in declaration order."""
        spec = self._spec()
        spec.state(state_name)
        for hook in spec.enter[state_name]:
            await _invoke(getattr(self, hook), ctx)

    async def run_exit(self, state_name: str, ctx: Any) -> None:
        """Run the exit hooks of ``state_name``, in declaration order."""
        spec = self._spec()
        spec.state(state_name)
        for hook in spec.exit[state_name]:
            await _invoke(getattr(self, hook), ctx)

    # -- diagram --------------------------------------------------------------------------------

    @classmethod
    def mermaid(cls) -> str:
        """The flow as a Mermaid ``stateDiagram-v2``.

        ``[*]`` points at the initial state, every final state points at ``[*]``, and every
        transition is an arrow labelled with its handler's name (else its filters; timeouts as
        ``timeout (23h)``). Anywhere-transitions are drawn from every non-final state; staying
        (``to=None``) is drawn as an arrow back to the state.
        """
        spec = cls._spec()
        ids = _mermaid_ids(list(spec.states))
        lines = ["stateDiagram-v2"]
        for name, state in spec.states.items():
            if ids[name] != name:
                lines.append(f'    state "{_mermaid_text(name)}" as {ids[name]}')
            if state.description:
                lines.append(f"    {ids[name]} : {_mermaid_text(state.description)}")
        lines.append(f"    [*] --> {ids[spec.initial]}")
        for name in spec.states:
            for t in _outgoing(spec, name):
                target = ids[t.target or name]
                lines.append(f"    {ids[name]} --> {target} : {_mermaid_text(t.label)}")
        lines.extend(f"    {ids[name]} --> [*]" for name, s in spec.states.items() if s.final)
        return "\n".join(lines) + "\n"


# Names a state or handler must not take: they would shadow what the engine calls.
_RESERVED = frozenset(dir(Flow))


class _Checker:
    # Builds the definition of one flow class, raising on the first problem it finds.

    def __init__(self, cls: type[Flow[Any]], declared: type[BaseModel] | None) -> None:
        self.cls = cls
        self.declared = declared
        self.states: dict[str, State] = {}

    def error(self, problem: str) -> FlowDefinitionError:
        return FlowDefinitionError(f"flow {self.cls.__name__}: {problem}")

    def check(self) -> _Definition:
        self.states = states = self.collect_states()
        self.check_data()
        initial = self.check_initial()
        for name, state in states.items():
            self.check_state(name, state)
        spec = _Definition(
            states=states,
            initial=initial,
            events={
                name: tuple(self.transition(name, p, _home(s)) for p in s._events)
                for name, s in states.items()
            },
            timeouts={
                name: self.transition(name, s._timeouts[0], _home(s), timeout=s.timeout)
                for name, s in states.items()
                if s._timeouts
            },
            anywhere=self.anywhere_transitions(),
            enter={name: self.hooks(name, s, s._enter, "enter") for name, s in states.items()},
            exit={name: self.hooks(name, s, s._exit, "exit") for name, s in states.items()},
        )
        self.check_graph(spec)
        return spec

    def flow_classes(self) -> list[type]:
        # Base classes first, so inherited states and anywhere-transitions come first.
        return [k for k in reversed(self.cls.__mro__) if issubclass(k, Flow) and k is not Flow]

    def collect_states(self) -> dict[str, State]:
        states: dict[str, State] = {}
        for klass in self.flow_classes():
            for key, value in vars(klass).items():
                if isinstance(value, State):
                    states[key] = value
                elif key in states:
                    raise self.error(
                        f"{key!r} replaces the inherited state {key!r}; rename one of them"
                    )
        if not states:
            raise self.error(
                "declares no states; declare State(initial=True) and the states it leads to "
                "(a base class without states is declared Flow[D], abstract=True)"
            )
        for key, state in states.items():
            if len(state._declared) > 1:
                names = " and ".join(f"{k.__name__}.{n}" for k, n in state._declared)
                raise self.error(
                    f"the same State() is declared as {names}; give each its own State()"
                )
            if key in _RESERVED:
                raise self.error(f"state {key!r} would shadow Flow.{key}; rename the state")
        return states

    def check_data(self) -> None:
        name: object = self.cls.name
        if not isinstance(name, str) or not name:
            raise self.error(f"name must be a non-empty string, got {name!r}")
        model: object = self.cls.data_model
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise self.error(f"data_model must be a pydantic BaseModel subclass, got {model!r}")
        if self.declared is not None and not issubclass(model, self.declared):
            raise self.error(
                f"data_model {model.__name__} is not the {self.declared.__name__} declared by "
                f"Flow[{self.declared.__name__}]"
            )
        for field_name, field in model.model_fields.items():
            if field.is_required():
                raise self.error(
                    f"field {field_name!r} of data_model {model.__name__} has no default; a "
                    f"conversation starts from {model.__name__}(), so give every field a default"
                )

    def check_initial(self) -> str:
        initial = [name for name, state in self.states.items() if state.initial]
        if not initial:
            raise self.error(
                "has no initial state; mark the state conversations start in initial=True"
            )
        if len(initial) > 1:
            raise self.error(
                f"has {len(initial)} initial states ({', '.join(map(repr, initial))}); mark "
                "exactly one State(initial=True)"
            )
        if self.states[initial[0]].final:
            raise self.error(
                f"state {initial[0]!r} is both initial and final, so every conversation would "
                "end before it starts; give the flow a separate final state"
            )
        return initial[0]

    def check_state(self, name: str, state: State) -> None:
        timeout = state.timeout
        if state.final and (state._events or state._timeouts or timeout is not None):
            raise self.error(
                f"final state {name!r} has outgoing transitions or a timeout, but a final state "
                "ends the conversation; remove them, or make the state non-final"
            )
        if len(state._timeouts) > 1:
            raise self.error(
                f"state {name!r} has {len(state._timeouts)} on_timeout handlers; keep one"
            )
        if timeout is not None and not state._timeouts:
            raise self.error(
                f"state {name!r} has a timeout but no transition for it; add "
                f"@{name}.on_timeout(to=...)"
            )
        if state._timeouts and timeout is None:
            raise self.error(
                f"state {name!r} has an on_timeout transition but no timeout; declare "
                "State(timeout=timedelta(...)) or State(timeout=callable)"
            )
        valid = timeout > timedelta(0) if isinstance(timeout, timedelta) else callable(timeout)
        if timeout is not None and not valid:
            raise self.error(
                f"state {name!r} has timeout={timeout!r}; use a positive timedelta or "
                "callable(ctx) -> datetime"
            )

    def anywhere_transitions(self) -> tuple[Transition, ...]:
        found: list[Transition] = []
        for klass in self.flow_classes():
            for value in vars(klass).values():
                if inspect.isfunction(value):
                    for pending in value.__dict__.get(_MARK, ()):
                        found.append(self.transition(None, pending, klass))
        return tuple(found)

    def transition(
        self, source: str | None, pending: _Pending, home: type, timeout: Timeout | None = None
    ) -> Transition:
        if timeout is not None:
            where = f"the timeout transition of state {source!r}"
        elif source is not None:
            where = f"a transition from state {source!r}"
        else:
            where = "an anywhere-transition"
        filters = self.filters(pending.filters, where)
        guard = pending.guard
        if guard is not None and not callable(guard):
            raise self.error(
                f"{where} has guard={guard!r}; a guard is callable(event, ctx) -> bool"
            )
        handler = None if pending.handler is None else self.method(pending.handler, home, where)
        if timeout is not None:
            label = f"timeout ({_describe_timeout(timeout)})"
        else:
            label = handler or " & ".join(f.description for f in filters) or "any event"
        return Transition(
            source=source,
            target=self.target(pending.to, f"{where} ({label})"),
            filters=filters,
            guard=cast("Guard | None", guard),
            handler_name=handler,
            kind="event" if timeout is None else "timeout",
            label=label,
            first=pending.first,
        )

    def filters(self, items: tuple[object, ...], where: str) -> tuple[Filter, ...]:
        checked: list[Filter] = []
        for item in items:
            if not isinstance(item, Filter):
                hint = "; the target state goes in to=" if isinstance(item, (str, State)) else ""
                raise self.error(
                    f"{where} has the filter {item!r}, which is not a waflow.filters.Filter{hint}"
                )
            checked.append(item)
        return tuple(checked)

    def target(self, to: object, where: str) -> str | None:
        if to is None:
            return None
        if isinstance(to, State):
            for name, state in self.states.items():
                if state is to:
                    return name
            raise self.error(f"{where} goes to {to!r}, which is not a state of this flow")
        if isinstance(to, str) and to in self.states:
            return to
        close = difflib.get_close_matches(str(to), list(self.states), n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"states: {', '.join(self.states)}"
        raise self.error(f"{where} goes to unknown state {to!r}; {hint}")

    def method(self, function: Callable[..., Any], home: type, where: str) -> str:
        # The engine calls handlers as methods, by name, so that a subclass can override them.
        name: str = function.__name__
        found = vars(home).get(name)
        if found is None or inspect.unwrap(found) is not inspect.unwrap(function):
            raise self.error(
                f"{where}: {name!r} is not a method of {home.__name__}; define handlers and "
                "hooks in the flow's class body, under their own names"
            )
        if name in _RESERVED:
            raise self.error(f"{where}: handler {name!r} would shadow Flow.{name}; rename it")
        return name

    def hooks(
        self, name: str, state: State, hooks: list[Callable[..., Any]], kind: str
    ) -> tuple[str, ...]:
        where = f"an {kind} hook of state {name!r}"
        return tuple(self.method(hook, _home(state), where) for hook in hooks)

    def check_graph(self, spec: _Definition) -> None:
        ways = {
            name: {t.target for t in _outgoing(spec, name) if t.target is not None}
            for name in spec.states
        }
        reached, todo = {spec.initial}, [spec.initial]
        while todo:
            for target in ways[todo.pop()] - reached:
                reached.add(target)
                todo.append(target)
        lost = [name for name in spec.states if name not in reached]
        if lost:
            raise self.error(
                f"{_states(lost)} cannot be reached from the initial state {spec.initial!r}; "
                "add a transition to it, or remove it"
            )
        for name, state in spec.states.items():
            # A state that still answers (even only by staying) is alive: a one-state bot is
            # legitimate. A trap is a non-final state no event or timeout can touch at all.
            if not state.final and not _outgoing(spec, name):
                raise self.error(
                    f"state {name!r} is a trap: no transition, timeout or Flow.anywhere applies "
                    "to it; add one, or make it final=True"
                )


def _home(state: State) -> type:
    # The class whose body declared the state, and so its handlers and hooks.
    return state._declared[0][0]


def _outgoing(spec: _Definition, name: str) -> tuple[Transition, ...]:
    anywhere = () if spec.states[name].final else spec.anywhere
    return (*spec.events[name], *_timeout_of(spec, name), *anywhere)


def _timeout_of(spec: _Definition, name: str) -> tuple[Transition, ...]:
    found = spec.timeouts.get(name)
    return () if found is None else (found,)


def _states(names: list[str]) -> str:
    return ("state " if len(names) == 1 else "states ") + ", ".join(map(repr, names))


async def _invoke(method: Callable[..., Any], *args: Any) -> None:
    if inspect.iscoroutinefunction(method):
        await method(*args)
        return
    # A sync handler may block (a sync client, a database): keep it off the event loop.
    result = await asyncio.to_thread(method, *args)
    if inspect.isawaitable(result):
        await result


def _snake_case(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def _type_argument(cls: type) -> type[BaseModel] | None:
    # The model of `class ShopFlow(Flow[ShopData])`, which then needs no `data_model = ShopData`.
    for base in cls.__dict__.get("__orig_bases__", ()):
        origin = get_origin(base)
        if isinstance(origin, type) and issubclass(origin, Flow):
            for arg in get_args(base):
                if isinstance(arg, type) and issubclass(arg, BaseModel):
                    return arg
    return None


def _describe_timeout(timeout: Timeout) -> str:
    if isinstance(timeout, timedelta):
        return _duration(timeout)
    name = getattr(timeout, "__name__", "")
    return name if name and name != "<lambda>" else "computed"


def _duration(delay: timedelta) -> str:
    seconds, micro = divmod(delay // timedelta(microseconds=1), 1_000_000)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    if seconds or micro or not parts:
        parts.append(f"{seconds + micro / 1_000_000:g}s")
    return "".join(parts)


# Mermaid's state-diagram lexer takes these words for keywords (`note x`, `state x`, `Default`,
# `accTitle :` …) and swallows a line ending in `direction` when the next one starts with `tb`,
# `lr` …: a name that starts with one of them, or holds `direction`, gets an id.
_MERMAID_WORDS = ("default", "state", "note", "class", "scale", "acctitle", "accdescr")
_MERMAID_ID = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
# Mermaid's entity codes: labels end at `:` `;` and newlines, `#` starts a comment, `"` ends a
# quoted name, and `<` `>` would be read as HTML.
_MERMAID_ESCAPES = str.maketrans(
    {
        "#": "#35;",
        ":": "#58;",
        ";": "#59;",
        '"': "#quot;",
        "<": "#lt;",
        ">": "#gt;",
        "\n": " ",
        "\r": " ",
    }
)
_MERMAID_DIRECTION = re.compile("(directio)(n)", re.IGNORECASE)


def _mermaid_ids(names: list[str]) -> dict[str, str]:
    plain = {
        name
        for name in names
        if _MERMAID_ID.fullmatch(name)
        and not name.lower().startswith(_MERMAID_WORDS)
        and "direction" not in name.lower()
    }
    ids: dict[str, str] = {}
    for index, name in enumerate(names):
        ids[name] = name
        if name not in plain:
            ids[name] = f"s{index}"
            while ids[name] in plain:
                ids[name] += "_"
    return ids


def _mermaid_text(text: str) -> str:
    text = text.translate(_MERMAID_ESCAPES)
    return _MERMAID_DIRECTION.sub(lambda m: f"{m[1]}#{ord(m[2])};", text)
