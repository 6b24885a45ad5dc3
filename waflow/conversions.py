"""The Conversions API for Business Messaging: report what ad-started chats led to.

A customer who came from a click-to-WhatsApp ad (its ``ctwa_clid``) or a click-to-Messenger ad (the
Page and the customer's page-scoped id) and then bought or left their details is reported back to
Meta as an event — ``Purchase``, ``LeadSubmitted``, … — so the ad is credited::

    event = purchase_event(
        channel="whatsapp", ctwa_clid=ctwa_clid, waba_id="102290129340398",
        value=899.0, currency="EUR", event_id="order-wamid.HBgL…", at=now,
    )
    Conversions(access_token=..., dataset_id="123").send([event])

``event_id`` lets Meta drop duplicates; waflow derives it from the order so a redelivered order
webhook reports nothing twice. Engines send these through the outbox (``POST /{dataset-id}/events``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import model_validator

from waflow._http import DEFAULT_TIMEOUT, AsyncHTTPClient, SyncHTTPClient, TimeoutTypes
from waflow._models import OutboundModel, check_count, violation
from waflow.clock import Clock
from waflow.errors import APIResponseValidationError, ConfigError
from waflow.graph import (
    DEFAULT_API_VERSION,
    DEFAULT_BASE_URL,
    DEFAULT_MAX_RETRIES,
    AsyncGraph,
    GraphRequest,
    GraphResponse,
    SyncGraph,
)

__all__ = [
    "EVENT_NAMES",
    "AsyncConversions",
    "ConversionBatch",
    "ConversionEvent",
    "Conversions",
    "ConversionsResult",
    "CustomData",
    "MessagingUserData",
    "conversion_event",
    "purchase_event",
]

#: Events Meta accepts with ``action_source = business_messaging``.
EVENT_NAMES = ("Purchase", "LeadSubmitted", "AddToCart", "InitiateCheckout", "ViewContent")
EventName = Literal["Purchase", "LeadSubmitted", "AddToCart", "InitiateCheckout", "ViewContent"]
_BATCH_MAX = 1000


class MessagingUserData(OutboundModel):
    """Who converted: on WhatsApp the ad click (``ctwa_clid``) and the business account; on
    Messenger the Page and the customer's page-scoped id."""

    whatsapp_business_account_id: str | None = None
    ctwa_clid: str | None = None
    page_id: str | None = None
    page_scoped_user_id: str | None = None


class CustomData(OutboundModel):
    """What the conversion was worth, and what it was about."""

    currency: str | None = None
    value: float | None = None
    content_ids: list[str] | None = None
    content_type: str | None = None
    order_id: str | None = None

    @model_validator(mode="after")
    def _value_needs_currency(self) -> CustomData:
        if self.value is not None and not self.currency:
            raise violation("a conversion value needs its currency (ISO 4217, e.g. EUR)")
        if self.currency is not None and (len(self.currency) != 3 or not self.currency.isupper()):
            raise violation(f"currency must be an ISO 4217 code such as EUR, got {self.currency!r}")
        return self


class ConversionEvent(OutboundModel):
    """One event of the Conversions API for Business Messaging."""

    event_name: EventName
    event_time: int
    action_source: Literal["business_messaging"] = "business_messaging"
    messaging_channel: Literal["whatsapp", "messenger"]
    user_data: MessagingUserData
    custom_data: CustomData | None = None
    event_id: str | None = None

    @model_validator(mode="after")
    def _identified(self) -> ConversionEvent:
        data = self.user_data
        if self.messaging_channel == "whatsapp" and not (
            data.ctwa_clid and data.whatsapp_business_account_id
        ):
            raise violation(
                "a WhatsApp conversion needs the ad's ctwa_clid and the whatsapp_business_account_id"
            )
        if self.messaging_channel == "messenger" and not (
            data.page_id and data.page_scoped_user_id
        ):
            raise violation("a Messenger conversion needs page_id and page_scoped_user_id")
        if self.event_name == "Purchase" and (
            self.custom_data is None or self.custom_data.value is None
        ):
            raise violation("a Purchase needs custom_data with its value and currency")
        return self


class ConversionBatch(OutboundModel):
    """The body of ``POST /{dataset-id}/events`` (up to 1000 events)."""

    data: list[ConversionEvent]
    partner_agent: str | None = None
    test_event_code: str | None = None

    @model_validator(mode="after")
    def _size(self) -> ConversionBatch:
        check_count(self.data, _BATCH_MAX, "conversion events per request", minimum=1)
        return self

    def to_body(self) -> dict[str, Any]:
        """The JSON body Meta expects."""
        return self.dump()


def conversion_event(
    event_name: EventName,
    *,
    channel: Literal["whatsapp", "messenger"],
    at: datetime,
    ctwa_clid: str | None = None,
    waba_id: str | None = None,
    page_id: str | None = None,
    psid: str | None = None,
    value: float | None = None,
    currency: str | None = None,
    content_ids: Sequence[str] | None = None,
    event_id: str | None = None,
) -> ConversionEvent:
    """An event for a customer who came from an ad on ``channel``."""
    custom = None
    if value is not None or currency is not None or content_ids:
        custom = CustomData(
            value=value,
            currency=currency,
            content_ids=list(content_ids) if content_ids else None,
            content_type="product" if content_ids else None,
        )
    return ConversionEvent(
        event_name=event_name,
        event_time=int(at.timestamp()),
        messaging_channel=channel,
        user_data=MessagingUserData(
            whatsapp_business_account_id=waba_id if channel == "whatsapp" else None,
            ctwa_clid=ctwa_clid if channel == "whatsapp" else None,
            page_id=page_id if channel == "messenger" else None,
            page_scoped_user_id=psid if channel == "messenger" else None,
        ),
        custom_data=custom,
        event_id=event_id,
    )


def purchase_event(
    *,
    channel: Literal["whatsapp", "messenger"],
    at: datetime,
    value: float,
    currency: str,
    event_id: str,
    ctwa_clid: str | None = None,
    waba_id: str | None = None,
    page_id: str | None = None,
    psid: str | None = None,
    content_ids: Sequence[str] | None = None,
) -> ConversionEvent:
    """A ``Purchase`` worth ``value`` ``currency`` (``event_id`` deduplicates at Meta)."""
    return conversion_event(
        "Purchase",
        channel=channel,
        at=at,
        ctwa_clid=ctwa_clid,
        waba_id=waba_id,
        page_id=page_id,
        psid=psid,
        value=value,
        currency=currency,
        content_ids=content_ids,
        event_id=event_id,
    )


@dataclass(frozen=True)
class ConversionsResult:
    """Meta accepted ``events_received`` events (``message_id`` is the trace id, for the outbox)."""

    events_received: int
    fbtrace_id: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def message_id(self) -> str | None:
        """The request's trace id (what the outbox records as the "message id")."""
        return self.fbtrace_id


def events_request(dataset_id: str, batch: ConversionBatch) -> GraphRequest:
    """``POST /{dataset-id}/events``. Not idempotent at the HTTP level: event_id dedupes at Meta."""
    return GraphRequest("POST", f"/{dataset_id}/events", json=batch.to_body())


def parse_events(response: GraphResponse) -> ConversionsResult:
    """The answer ``{"events_received": n, "fbtrace_id": …}``."""
    data = response.data if isinstance(response.data, dict) else {}
    received = data.get("events_received")
    if not isinstance(received, int):
        raise APIResponseValidationError("conversions answered without events_received")
    trace = data.get("fbtrace_id")
    return ConversionsResult(received, trace if isinstance(trace, str) else None, data)


def _batch(
    events: ConversionBatch | ConversionEvent | Sequence[ConversionEvent],
) -> ConversionBatch:
    if isinstance(events, ConversionBatch):
        return events
    if isinstance(events, ConversionEvent):
        return ConversionBatch(data=[events])
    return ConversionBatch(data=list(events))


class _ConversionsBase:
    dataset_id: str

    def __init__(self, dataset_id: str) -> None:
        if not dataset_id:
            raise ConfigError("dataset_id is required (or set WAFLOW_DATASET_ID)")
        self.dataset_id = dataset_id

    def __repr__(self) -> str:
        return f"{type(self).__name__}(dataset_id={self.dataset_id!r})"


class Conversions(_ConversionsBase):
    """Blocking client of the Conversions API for one dataset."""

    def __init__(
        self,
        *,
        access_token: Any,
        dataset_id: str,
        base_url: str = DEFAULT_BASE_URL,
        api_version: str = DEFAULT_API_VERSION,
        http_client: SyncHTTPClient | None = None,
        timeout: TimeoutTypes = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(dataset_id)
        self._graph = SyncGraph(
            http_client=http_client,
            access_token=access_token,
            base_url=base_url,
            api_version=api_version,
            timeout=timeout,
            max_retries=max_retries,
            clock=clock,
        )

    def send(
        self, events: ConversionBatch | ConversionEvent | Sequence[ConversionEvent]
    ) -> ConversionsResult:
        """Report one event, several, or a ready batch."""
        return parse_events(self._graph.request(events_request(self.dataset_id, _batch(events))))

    def close(self) -> None:
        """Close the connection pool (unless it was passed in)."""
        self._graph.close()


class AsyncConversions(_ConversionsBase):
    """Async twin of :class:`Conversions`."""

    def __init__(
        self,
        *,
        access_token: Any,
        dataset_id: str,
        base_url: str = DEFAULT_BASE_URL,
        api_version: str = DEFAULT_API_VERSION,
        http_client: AsyncHTTPClient | None = None,
        timeout: TimeoutTypes = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(dataset_id)
        self._graph = AsyncGraph(
            http_client=http_client,
            access_token=access_token,
            base_url=base_url,
            api_version=api_version,
            timeout=timeout,
            max_retries=max_retries,
            clock=clock,
        )

    async def send(
        self, events: ConversionBatch | ConversionEvent | Sequence[ConversionEvent]
    ) -> ConversionsResult:
        """Report one event, several, or a ready batch."""
        batch = _batch(events)
        return parse_events(await self._graph.request(events_request(self.dataset_id, batch)))

    async def aclose(self) -> None:
        """Close the connection pool (unless it was passed in)."""
        await self._graph.aclose()
