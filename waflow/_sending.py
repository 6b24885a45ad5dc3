"""One definition of every typed send helper, for sync and async clients alike.

``send_text = Sends(build.text)`` on a client base class gives ``client.send_text(...)`` with exactly
the builder's signature, returning whatever that client's ``send`` returns: a ``SendResult`` on a
sync client, an awaitable of it on an async one. No helper is written twice.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Concatenate, Generic, ParamSpec, Protocol, TypeVar, overload

__all__ = ["RecipientSender", "Sender", "Sends", "SendsTo"]

P = ParamSpec("P")
M = TypeVar("M", contravariant=True)
R = TypeVar("R", covariant=True)
Built = TypeVar("Built")


class Sender(Protocol[M, R]):
    """Anything with a ``send(message)``; ``R`` is what sending returns."""

    def send(self, message: M, /) -> R: ...


class Sends(Generic[P, Built]):
    """A helper method that builds a message with ``builder`` and passes it to ``self.send``."""

    def __init__(self, builder: Callable[P, Built]) -> None:
        self.builder = builder
        self.__doc__ = builder.__doc__
        self.__wrapped__ = builder

    def __set_name__(self, owner: type[Any], name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> Sends[P, Built]: ...

    @overload
    def __get__(self, obj: Sender[Built, R], owner: type[Any]) -> Callable[P, R]: ...

    def __get__(
        self, obj: Sender[Built, R] | None, owner: type[Any]
    ) -> Sends[P, Built] | Callable[P, R]:
        if obj is None:
            return self
        builder = self.builder

        # Built on every attribute access, so kept cheap: no functools.wraps.
        def send_built(*args: P.args, **kwargs: P.kwargs) -> R:
            return obj.send(builder(*args, **kwargs))

        send_built.__doc__ = builder.__doc__
        send_built.__name__ = builder.__name__
        return send_built


class RecipientSender(Protocol[M, R]):
    """A sender bound to one recipient: ``recipient`` fills the builders' ``to``."""

    @property
    def recipient(self) -> str: ...

    def send(self, message: M, /) -> R: ...


class SendsTo(Generic[P, Built]):
    """Like :class:`Sends`, for senders bound to one recipient: the builder's first argument
    (``to``) is filled in, so ``ctx.whatsapp.send_text("Hallo")`` needs no recipient."""

    def __init__(self, builder: Callable[Concatenate[str, P], Built]) -> None:
        self.builder = builder
        self.__doc__ = builder.__doc__
        self.__wrapped__ = builder

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> SendsTo[P, Built]: ...

    @overload
    def __get__(self, obj: RecipientSender[Built, R], owner: type[Any]) -> Callable[P, R]: ...

    def __get__(
        self, obj: RecipientSender[Built, R] | None, owner: type[Any]
    ) -> SendsTo[P, Built] | Callable[P, R]:
        if obj is None:
            return self
        builder = self.builder

        def send_built(*args: P.args, **kwargs: P.kwargs) -> R:
            return obj.send(builder(obj.recipient, *args, **kwargs))

        send_built.__doc__ = builder.__doc__
        send_built.__name__ = builder.__name__
        return send_built
