"""Composable filters that decide which handler gets an event.

>>> from waflow import filters as F
>>> @router.on(F.channel("whatsapp") & F.text("hallo", ignore_case=True))
... async def greet(event, ctx): ...

Filters combine with ``&``, ``|`` and ``~``. A filter is a function of the event and the handler
context returning ``bool``; :func:`regex` also leaves its match in ``ctx.match``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from waflow.events import Event

__all__ = [
    "Filter",
    "HandlerContext",
    "business",
    "channel",
    "kind",
    "message_type",
    "payload",
    "payload_of",
    "referral",
    "regex",
    "state",
    "text",
    "when",
]


class HandlerContext(Protocol):
    """What filters need of a handler context: a place for a regex match (routers and flows)."""

    match: re.Match[str] | None


Predicate = Callable[[Event, HandlerContext], bool]


class Filter:
    """A named predicate over (event, context), combinable with ``&``, ``|`` and ``~``."""

    def __init__(self, predicate: Predicate, description: str) -> None:
        self.predicate = predicate
        self.description = description

    def __call__(self, event: Event, ctx: HandlerContext) -> bool:
        return self.predicate(event, ctx)

    def __and__(self, other: Filter) -> Filter:
        return Filter(
            lambda e, c: self(e, c) and other(e, c), f"({self.description} & {other.description})"
        )

    def __or__(self, other: Filter) -> Filter:
        return Filter(
            lambda e, c: self(e, c) or other(e, c), f"({self.description} | {other.description})"
        )

    def __invert__(self) -> Filter:
        return Filter(lambda e, c: not self(e, c), f"~{self.description}")

    def __repr__(self) -> str:
        return f"Filter({self.description})"


def when(predicate: Callable[[Event], bool], description: str = "custom") -> Filter:
    """A filter from any function of the event."""
    return Filter(lambda e, _c: predicate(e), description)


def _one_of(values: Iterable[str]) -> frozenset[str]:
    return frozenset(values)


def channel(*names: str) -> Filter:
    """Events of the given channel(s): ``"whatsapp"``, ``"messenger"``."""
    wanted = _one_of(names)
    return Filter(lambda e, _c: e.channel in wanted, f"channel in {sorted(wanted)}")


def kind(*kinds: str) -> Filter:
    """Events of the given kind(s): ``"message"``, ``"status"``, ``"postback"``, ``"referral"``, …"""
    wanted = _one_of(kinds)
    return Filter(lambda e, _c: e.kind in wanted, f"kind in {sorted(wanted)}")


def message_type(*types: str) -> Filter:
    """WhatsApp messages of the given type(s): ``"text"``, ``"interactive"``, ``"order"``, …"""
    wanted = _one_of(types)
    return Filter(
        lambda e, _c: e.kind == "message" and getattr(e, "type", None) in wanted,
        f"message type in {sorted(wanted)}",
    )


def _text_of(event: Event) -> str | None:
    value = getattr(event, "text", None)
    return value if isinstance(value, str) and event.kind == "message" else None


def text(*values: str, ignore_case: bool = False) -> Filter:
    """Messages whose text equals one of ``values`` (surrounding whitespace ignored)."""
    wanted = {v.strip().casefold() if ignore_case else v.strip() for v in values}

    def matches(event: Event, _ctx: HandlerContext) -> bool:
        body = _text_of(event)
        if body is None:
            return False
        body = body.strip()
        return (body.casefold() if ignore_case else body) in wanted

    return Filter(matches, f"text in {sorted(wanted)}")


def regex(pattern: str | re.Pattern[str], flags: int = 0) -> Filter:
    """Messages whose text matches ``pattern`` (``re.search``); the match goes to ``ctx.match``."""
    compiled = re.compile(pattern, flags) if isinstance(pattern, str) else pattern

    def matches(event: Event, ctx: HandlerContext) -> bool:
        body = _text_of(event)
        found = compiled.search(body) if body is not None else None
        if found is not None:
            ctx.match = found
        return found is not None

    return Filter(matches, f"text ~ /{compiled.pattern}/")


def payload_of(event: Event) -> str | None:
    """What a customer tapped: a reply button or list row id, a template button payload, a
    Messenger postback or quick-reply payload."""
    for name in ("reply_id", "payload"):
        value: Any = getattr(event, name, None)
        if isinstance(value, str):
            return value
    return None


def payload(*values: str, prefix: str | None = None) -> Filter:
    """Taps whose payload equals one of ``values``, or starts with ``prefix``."""
    wanted = _one_of(values)

    def matches(event: Event, _ctx: HandlerContext) -> bool:
        tapped = payload_of(event)
        if tapped is None:
            return False
        return tapped in wanted or (prefix is not None and tapped.startswith(prefix))

    described = f"payload in {sorted(wanted)}" + (f" or {prefix}*" if prefix else "")
    return Filter(matches, described)


def referral() -> Filter:
    """Events that came through an ad or an m.me / wa.me referral."""
    return Filter(lambda e, _c: getattr(e, "referral", None) is not None, "has referral")


def state(*names: str) -> Filter:
    """Events of customers whose conversation is in one of the flow states ``names``.

    Works in routers of an app with an :class:`~waflow.flows.engine.Engine` (the handler context
    carries the customer's state) and in flows themselves.
    """
    wanted = _one_of(names)
    return Filter(
        lambda _e, c: getattr(c, "customer_state", None) in wanted, f"state in {sorted(wanted)}"
    )


def business(*ids: str) -> Filter:
    """Events received by the given phone number id(s) or page id(s)."""
    wanted = _one_of(ids)
    return Filter(lambda e, _c: e.business_id in wanted, f"business in {sorted(wanted)}")
