"""What the clients return for a sent message, on either channel."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["SendResult"]


@dataclass(frozen=True, init=False)
class SendResult:
    """Meta accepted a message.

    ``message_id`` is the WhatsApp ``wamid`` or the Messenger ``mid``. On WhatsApp, ``wa_id`` is the
    customer's WhatsApp id as Meta resolved it (it may differ from what was sent) and
    ``message_status`` appears for templates (``accepted``, ``held_for_quality_assessment``,
    ``paused``); on Messenger, ``recipient_id`` is the customer's page-scoped id. ``retries_taken``
    counts the client's retries; ``raw`` is Meta's answer as received.

    A plain frozen dataclass, not a validated model: it is built from an answer waflow has already
    checked, on every send, where validation would only cost time.
    """

    channel: Literal["whatsapp", "messenger"]
    message_id: str
    wa_id: str | None = None
    input: str | None = None
    recipient_id: str | None = None
    message_status: str | None = None
    retries_taken: int = 0
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    def __init__(
        self,
        channel: Literal["whatsapp", "messenger"],
        message_id: str,
        wa_id: str | None = None,
        input: str | None = None,
        recipient_id: str | None = None,
        message_status: str | None = None,
        retries_taken: int = 0,
        raw: dict[str, Any] | None = None,
    ) -> None:
        # Built on every send: one update of the instance dict costs about half of what the
        # generated frozen __init__ does (object.__setattr__ once per field).
        self.__dict__.update(
            channel=channel,
            message_id=message_id,
            wa_id=wa_id,
            input=input,
            recipient_id=recipient_id,
            message_status=message_status,
            retries_taken=retries_taken,
            raw={} if raw is None else raw,
        )
