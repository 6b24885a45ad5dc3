"""The WhatsApp Cloud API clients: :class:`WhatsApp` (blocking) and :class:`AsyncWhatsApp`.

Both share every request builder and response parser; only the line that performs I/O differs::

    from waflow import WhatsApp

    with WhatsApp.from_env() as wa:                 # WAFLOW_ACCESS_TOKEN, WAFLOW_PHONE_NUMBER_ID
        result = wa.send_text("4915112345678", "Ihr Rad ist fertig!")
        print(result.message_id, result.wa_id)

Sends are paced to the number's throughput (80 messages/s unless told otherwise) and retried per
the policy of :mod:`waflow.graph`.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from typing_extensions import Self

from waflow._http import DEFAULT_TIMEOUT, AsyncHTTPClient, SyncHTTPClient, TimeoutTypes
from waflow._sending import Sends
from waflow.clock import Clock
from waflow.config import Settings
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
from waflow.ratelimit import Pacer
from waflow.results import SendResult
from waflow.whatsapp import build
from waflow.whatsapp.catalog import AsyncCatalogResource, CatalogResource
from waflow.whatsapp.media import AsyncMedia, Media
from waflow.whatsapp.messages import Message, OutboundMessage, ReadReceipt, TemplateMessage
from waflow.whatsapp.templates import AsyncTemplates, TemplateRegistry, Templates

__all__ = ["AsyncWhatsApp", "WhatsApp", "parse_send", "send_request"]


def send_request(phone_number_id: str, message: OutboundMessage) -> GraphRequest:
    """``POST /{phone-number-id}/messages`` for ``message``, paced per sender and recipient.

    A read receipt is idempotent (marking twice is harmless), so it may be retried after a timeout;
    a message is not (it could arrive twice).
    """
    recipient = message.to if isinstance(message, Message) else None
    return GraphRequest(
        "POST",
        f"/{phone_number_id}/messages",
        json_bytes=message.to_json(),
        idempotent=isinstance(message, ReadReceipt),
        pace=(phone_number_id, recipient) if recipient is not None else None,
    )


def parse_send(response: GraphResponse) -> SendResult:
    """A :class:`SendResult` from Meta's answer ``{messaging_product, contacts, messages}``."""
    data = response.data if isinstance(response.data, dict) else {}
    messages = data.get("messages")
    first = messages[0] if isinstance(messages, list) and messages else None
    if not isinstance(first, dict) or not isinstance(first.get("id"), str):
        raise APIResponseValidationError("send answered without a message id")
    contacts = data.get("contacts")
    contact = contacts[0] if isinstance(contacts, list) and contacts else {}
    return SendResult(
        channel="whatsapp",
        message_id=first["id"],
        wa_id=contact.get("wa_id") if isinstance(contact, dict) else None,
        input=contact.get("input") if isinstance(contact, dict) else None,
        message_status=first.get("message_status"),
        retries_taken=response.retries_taken,
        raw=data,
    )


def _parse_success(response: GraphResponse) -> bool:
    return bool(isinstance(response.data, dict) and response.data.get("success"))


class _WhatsAppBase:
    """Options and typed helpers shared by :class:`WhatsApp` and :class:`AsyncWhatsApp`."""

    _graph: SyncGraph | AsyncGraph

    send_text = Sends(build.text)
    send_image = Sends(build.image)
    send_video = Sends(build.video)
    send_audio = Sends(build.audio)
    send_document = Sends(build.document)
    send_sticker = Sends(build.sticker)
    send_location = Sends(build.location)
    send_contacts = Sends(build.contacts)
    send_reaction = Sends(build.reaction)
    remove_reaction = Sends(build.remove_reaction)
    send_buttons = Sends(build.buttons)
    send_list = Sends(build.list_menu)
    send_cta_url = Sends(build.cta_url)
    send_product = Sends(build.product)
    send_product_list = Sends(build.product_list)
    send_catalog = Sends(build.catalog)
    send_flow = Sends(build.flow)
    send_location_request = Sends(build.location_request)
    send_order_details = Sends(build.order_details)
    send_order_status = Sends(build.order_status)
    send_template = Sends(build.template)

    def __init__(
        self,
        phone_number_id: str,
        waba_id: str | None,
        template_registry: TemplateRegistry | None = None,
    ) -> None:
        if not phone_number_id:
            raise ConfigError("phone_number_id is required (or set WAFLOW_PHONE_NUMBER_ID)")
        self.phone_number_id = phone_number_id
        self.waba_id = waba_id
        #: Checks every template message before it is sent (``templates=`` of the constructor).
        self.template_registry = template_registry

    def _check_template(self, message: OutboundMessage) -> None:
        # The one place a send meets the registry; both clients call it before any request.
        if self.template_registry is not None and isinstance(message, TemplateMessage):
            self.template_registry.check(message)

    @staticmethod
    def _settings_kwargs(env: Mapping[str, str] | None) -> dict[str, Any]:
        settings = Settings.from_env(env)
        settings.require("access_token", "phone_number_id")
        return {
            "access_token": settings.access_token,
            "phone_number_id": settings.phone_number_id,
            "waba_id": settings.waba_id,
            "catalog_id": settings.catalog_id,
            "base_url": settings.graph_url,
            "api_version": settings.api_version,
            "throughput": settings.throughput,
        }

    @staticmethod
    def _pacer(pacer: Pacer | None, throughput: float | None, clock: Clock | None) -> Pacer | None:
        if pacer is not None or throughput is None:
            return pacer
        return Pacer(throughput, clock=clock)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Self:
        """A client configured by the ``WAFLOW_*`` variables; keyword arguments override them."""
        return cls(**{**cls._settings_kwargs(env), **overrides})

    def with_options(
        self,
        *,
        timeout: TimeoutTypes | None = None,
        max_retries: int | None = None,
        access_token: str | None = None,
        api_version: str | None = None,
        base_url: str | None = None,
    ) -> Self:
        """A copy with some options changed, sharing this client's connection pool."""
        clone = copy.copy(self)
        clone._graph = self._graph.copy_with(
            timeout=timeout,
            max_retries=max_retries,
            access_token=access_token,
            api_version=api_version,
            base_url=base_url,
        )
        clone._bind()
        return clone

    def for_phone_number(self, phone_number_id: str) -> Self:
        """A copy that sends from another number of the same account, sharing the connection pool."""
        if phone_number_id == self.phone_number_id:
            return self
        clone = copy.copy(self)
        clone.phone_number_id = phone_number_id
        clone._graph = self._graph.copy_with()
        clone._bind()
        return clone

    def _bind(self) -> None:
        raise NotImplementedError

    @property
    def api_version(self) -> str:
        """The Graph API version requests go to."""
        return self._graph.api_version

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(phone_number_id={self.phone_number_id!r}, "
            f"api_version={self._graph.api_version!r})"
        )


class WhatsApp(_WhatsAppBase):
    """Blocking WhatsApp Cloud API client for one business phone number.

    ``access_token`` (a system-user token) and ``phone_number_id`` are required; ``waba_id`` is needed
    for template management and ``catalog_id`` for the Commerce catalog (``wa.catalog``).
    ``http_client`` plugs in any ``httpx.Client`` (the fakes of
    :mod:`waflow.testing` do this). ``throughput`` paces sends (messages per second; ``None`` turns
    pacing off); pass one shared ``pacer`` to several clients of the same number instead.

    Every ``send_*`` helper builds a message with :mod:`waflow.whatsapp.build` and calls
    :meth:`send`; all raise :class:`~waflow.errors.MessageValidationError` before any request when a
    limit of Meta's is broken, and :class:`~waflow.errors.APIError` subclasses when Meta refuses.

    ``templates`` takes a :class:`~waflow.whatsapp.templates.TemplateRegistry`: every template
    message is then checked against its definition before the request, and a mismatch raises
    :class:`~waflow.errors.TemplateError` naming the fix. ``wa.templates`` manages the account's
    templates (it needs ``waba_id``).
    """

    media: Media
    templates: Templates
    catalog: CatalogResource
    _graph: SyncGraph

    def __init__(
        self,
        *,
        access_token: Any,
        phone_number_id: str,
        waba_id: str | None = None,
        catalog_id: str | None = None,
        base_url: str = DEFAULT_BASE_URL,
        api_version: str = DEFAULT_API_VERSION,
        http_client: SyncHTTPClient | None = None,
        timeout: TimeoutTypes = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        throughput: float | None = 80,
        pacer: Pacer | None = None,
        clock: Clock | None = None,
        templates: TemplateRegistry | None = None,
    ) -> None:
        super().__init__(phone_number_id, waba_id, templates)
        self.catalog_id = catalog_id
        self._graph = SyncGraph(
            http_client=http_client,
            access_token=access_token,
            base_url=base_url,
            api_version=api_version,
            timeout=timeout,
            max_retries=max_retries,
            clock=clock,
            pacer=self._pacer(pacer, throughput, clock),
        )
        self._bind()

    def _bind(self) -> None:
        self.media = Media(self._graph, self.phone_number_id)
        self.templates = Templates(self._graph, self.waba_id)
        self.catalog = CatalogResource(self._graph, self.catalog_id)

    def send(self, message: OutboundMessage) -> SendResult:
        """Send any outbound message model (see :mod:`waflow.whatsapp.messages`)."""
        self._check_template(message)
        return parse_send(self._graph.request(send_request(self.phone_number_id, message)))

    def mark_read(self, message_id: str, *, typing: bool = False) -> bool:
        """Mark a customer's message read (blue ticks); ``typing=True`` also shows "typing…"."""
        message = build.read_receipt(message_id, typing=typing)
        return _parse_success(self._graph.request(send_request(self.phone_number_id, message)))

    def close(self) -> None:
        """Close the connection pool (unless it was passed in as ``http_client``)."""
        self._graph.close()

    def __enter__(self) -> WhatsApp:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncWhatsApp(_WhatsAppBase):
    """Async twin of :class:`WhatsApp`: the same arguments, helpers and errors; awaitable sends."""

    media: AsyncMedia
    templates: AsyncTemplates
    catalog: AsyncCatalogResource
    _graph: AsyncGraph

    def __init__(
        self,
        *,
        access_token: Any,
        phone_number_id: str,
        waba_id: str | None = None,
        catalog_id: str | None = None,
        base_url: str = DEFAULT_BASE_URL,
        api_version: str = DEFAULT_API_VERSION,
        http_client: AsyncHTTPClient | None = None,
        timeout: TimeoutTypes = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        throughput: float | None = 80,
        pacer: Pacer | None = None,
        clock: Clock | None = None,
        templates: TemplateRegistry | None = None,
    ) -> None:
        super().__init__(phone_number_id, waba_id, templates)
        self.catalog_id = catalog_id
        self._graph = AsyncGraph(
            http_client=http_client,
            access_token=access_token,
            base_url=base_url,
            api_version=api_version,
            timeout=timeout,
            max_retries=max_retries,
            clock=clock,
            pacer=self._pacer(pacer, throughput, clock),
        )
        self._bind()

    def _bind(self) -> None:
        self.media = AsyncMedia(self._graph, self.phone_number_id)
        self.templates = AsyncTemplates(self._graph, self.waba_id)
        self.catalog = AsyncCatalogResource(self._graph, self.catalog_id)

    async def send(self, message: OutboundMessage) -> SendResult:
        """Send any outbound message model (see :mod:`waflow.whatsapp.messages`)."""
        self._check_template(message)
        return parse_send(await self._graph.request(send_request(self.phone_number_id, message)))

    async def mark_read(self, message_id: str, *, typing: bool = False) -> bool:
        """Mark a customer's message read (blue ticks); ``typing=True`` also shows "typing…"."""
        message = build.read_receipt(message_id, typing=typing)
        return _parse_success(
            await self._graph.request(send_request(self.phone_number_id, message))
        )

    async def aclose(self) -> None:
        """Close the connection pool (unless it was passed in as ``http_client``)."""
        await self._graph.aclose()

    async def __aenter__(self) -> AsyncWhatsApp:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
