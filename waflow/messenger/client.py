"""The Messenger Send API clients: :class:`Messenger` (blocking) and :class:`AsyncMessenger`.

Both share every request builder and response parser; only the line that performs I/O differs::

    from waflow import Messenger

    with Messenger.from_env() as ms:                # WAFLOW_PAGE_ACCESS_TOKEN, WAFLOW_PAGE_ID
        ms.sender_action(psid, "typing_on")
        result = ms.send_text(psid, "Dein Rad ist fertig!")
        print(result.message_id, result.recipient_id)

Requests are retried per the policy of :mod:`waflow.graph`. Messenger has no per-sender throughput
pacing like WhatsApp's, so nothing is paced. Sending outside the 24-hour window without a fitting
tag fails with :class:`~waflow.errors.OutsideServiceWindowError` (Graph code 10, subcode 2018278).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr
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
from waflow.messenger import build
from waflow.messenger.messages import Message, OutboundMessage, SenderAction, SenderActionType
from waflow.results import SendResult

__all__ = ["AsyncMessenger", "Messenger", "UserProfile", "parse_send", "send_request"]

# Named so a missing token reads "page_access_token is required (or set WAFLOW_PAGE_ACCESS_TOKEN)".
_TOKEN_NAME = "page_access_token"  # noqa: S105 - a setting's name, not a secret


def send_request(page_id: str, message: OutboundMessage) -> GraphRequest:
    """``POST /{page-id}/messages`` for ``message``.

    A sender action is idempotent (showing "typing…" twice is harmless), so it may be retried after
    a timeout; a message is not (it could arrive twice).
    """
    return GraphRequest(
        "POST",
        f"/{page_id}/messages",
        json_bytes=message.to_json(),
        idempotent=isinstance(message, SenderAction),
    )


def parse_send(response: GraphResponse) -> SendResult:
    """A :class:`SendResult` from Meta's answer ``{recipient_id, message_id}``.

    ``recipient_id`` is absent when the message went to a ``user_ref``.
    """
    data = response.data if isinstance(response.data, dict) else {}
    message_id = data.get("message_id")
    if not isinstance(message_id, str) or not message_id:
        raise APIResponseValidationError("send answered without a message_id")
    recipient_id = data.get("recipient_id")
    return SendResult(
        channel="messenger",
        message_id=message_id,
        recipient_id=recipient_id if isinstance(recipient_id, str) else None,
        retries_taken=response.retries_taken,
        raw=data,
    )


@dataclass(frozen=True)
class UserProfile:
    """What the User Profile API tells about a customer (fields the Page may read)."""

    id: str
    first_name: str | None = None
    last_name: str | None = None
    profile_pic: str | None = None
    locale: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)


#: Profile fields asked for unless told otherwise (the ones every Page may read).
DEFAULT_PROFILE_FIELDS = ("first_name", "last_name", "profile_pic")


def profile_request(psid: str, fields: Sequence[str]) -> GraphRequest:
    """``GET /{psid}?fields=…`` (the User Profile API)."""
    return GraphRequest("GET", f"/{psid}", params={"fields": ",".join(fields)})


def parse_profile(psid: str, response: GraphResponse) -> UserProfile:
    """A :class:`UserProfile` from the answer (absent fields stay ``None``)."""
    data = response.data if isinstance(response.data, dict) else {}

    def text(name: str) -> str | None:
        value = data.get(name)
        return value if isinstance(value, str) and value else None

    return UserProfile(
        id=str(data.get("id") or psid),
        first_name=text("first_name"),
        last_name=text("last_name"),
        profile_pic=text("profile_pic"),
        locale=text("locale"),
        raw=data,
    )


class _MessengerBase:
    """Options and typed helpers shared by :class:`Messenger` and :class:`AsyncMessenger`."""

    _graph: SyncGraph | AsyncGraph

    send_text = Sends(build.text)
    send_attachment = Sends(build.attachment)
    send_quick_replies = Sends(build.quick_replies)
    send_button_template = Sends(build.button_template)
    send_generic_template = Sends(build.generic_template)

    def __init__(self, page_id: str) -> None:
        if not page_id:
            raise ConfigError("page_id is required (or set WAFLOW_PAGE_ID)")
        self.page_id = page_id

    @staticmethod
    def _settings_kwargs(env: Mapping[str, str] | None) -> dict[str, Any]:
        settings = Settings.from_env(env)
        settings.require("page_access_token", "page_id")
        return {
            "access_token": settings.page_access_token,
            "page_id": settings.page_id,
            "base_url": settings.graph_url,
            "api_version": settings.api_version,
        }

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Self:
        """A client configured by ``WAFLOW_PAGE_ACCESS_TOKEN``, ``WAFLOW_PAGE_ID``,
        ``WAFLOW_GRAPH_URL`` and ``WAFLOW_API_VERSION`` (from ``env``, default ``os.environ``);
        keyword arguments override them. Raises :class:`ConfigError` naming a missing variable.
        """
        return cls(**{**cls._settings_kwargs(env), **overrides})

    def with_options(
        self,
        *,
        timeout: TimeoutTypes | None = None,
        max_retries: int | None = None,
        access_token: str | SecretStr | None = None,
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
        return clone

    @property
    def api_version(self) -> str:
        """The Graph API version requests go to."""
        return self._graph.api_version

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(page_id={self.page_id!r}, "
            f"api_version={self._graph.api_version!r})"
        )


class Messenger(_MessengerBase):
    """Blocking Messenger Send API client for one Facebook Page.

    ``access_token`` (the Page access token) and ``page_id`` are required (``page_id="me"`` also
    works: Meta resolves it from the token). ``http_client`` plugs in any ``httpx.Client`` (the
    fakes of :mod:`waflow.testing` do this).

    Every ``send_*`` helper builds a message with :mod:`waflow.messenger.build` and calls
    :meth:`send`; all raise :class:`~waflow.errors.MessageValidationError` before any request when a
    limit of Meta's is broken, and :class:`~waflow.errors.APIError` subclasses when Meta refuses.
    """

    _graph: SyncGraph

    def __init__(
        self,
        *,
        access_token: str | SecretStr,
        page_id: str,
        base_url: str = DEFAULT_BASE_URL,
        api_version: str = DEFAULT_API_VERSION,
        http_client: SyncHTTPClient | None = None,
        timeout: TimeoutTypes = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(page_id)
        self._graph = SyncGraph(
            http_client=http_client,
            access_token=access_token,
            base_url=base_url,
            api_version=api_version,
            timeout=timeout,
            max_retries=max_retries,
            clock=clock,
            token_name=_TOKEN_NAME,
        )

    def send(self, message: Message) -> SendResult:
        """Send any message model (see :mod:`waflow.messenger.messages`)."""
        return parse_send(self._graph.request(send_request(self.page_id, message)))

    def sender_action(self, to: str, action: SenderActionType) -> None:
        """Mark the conversation with PSID ``to`` seen, or turn the typing indicator on or off."""
        self._graph.request(send_request(self.page_id, build.sender_action(to, action)))

    def user_profile(
        self, psid: str, fields: Sequence[str] = DEFAULT_PROFILE_FIELDS
    ) -> UserProfile:
        """The customer's name and picture, as the Page may see them (User Profile API)."""
        return parse_profile(psid, self._graph.request(profile_request(psid, fields)))

    def close(self) -> None:
        """Close the connection pool (unless it was passed in as ``http_client``)."""
        self._graph.close()

    def __enter__(self) -> Messenger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncMessenger(_MessengerBase):
    """Async twin of :class:`Messenger`: the same arguments, helpers and errors; awaitable sends."""

    _graph: AsyncGraph

    def __init__(
        self,
        *,
        access_token: str | SecretStr,
        page_id: str,
        base_url: str = DEFAULT_BASE_URL,
        api_version: str = DEFAULT_API_VERSION,
        http_client: AsyncHTTPClient | None = None,
        timeout: TimeoutTypes = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(page_id)
        self._graph = AsyncGraph(
            http_client=http_client,
            access_token=access_token,
            base_url=base_url,
            api_version=api_version,
            timeout=timeout,
            max_retries=max_retries,
            clock=clock,
            token_name=_TOKEN_NAME,
        )

    async def send(self, message: Message) -> SendResult:
        """Send any message model (see :mod:`waflow.messenger.messages`)."""
        return parse_send(await self._graph.request(send_request(self.page_id, message)))

    async def sender_action(self, to: str, action: SenderActionType) -> None:
        """Mark the conversation with PSID ``to`` seen, or turn the typing indicator on or off."""
        await self._graph.request(send_request(self.page_id, build.sender_action(to, action)))

    async def user_profile(
        self, psid: str, fields: Sequence[str] = DEFAULT_PROFILE_FIELDS
    ) -> UserProfile:
        """The customer's name and picture, as the Page may see them (User Profile API)."""
        return parse_profile(psid, await self._graph.request(profile_request(psid, fields)))

    async def aclose(self) -> None:
        """Close the connection pool (unless it was passed in as ``http_client``)."""
        await self._graph.aclose()

    async def __aenter__(self) -> AsyncMessenger:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
