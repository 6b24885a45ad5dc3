"""The Graph API core shared by every waflow client: URLs, auth, JSON, retries, pacing.

A client describes each call as a :class:`GraphRequest` (built by a shared builder) and turns the
:class:`GraphResponse` into a result (by a shared parser). :class:`SyncGraph` and :class:`AsyncGraph`
perform the I/O; the only difference between them is ``await``.

Retry policy (tenacity): connection failures before anything was sent, Meta's throttling codes (4, 17,
32, 613, 80007, 130429, 131056 with its own longer backoff), ``is_transient`` errors, and 5xx or
timeouts of idempotent requests. A message send that timed out or got a 5xx may have reached Meta: it
is raised at once with ``maybe_sent=True`` (the outbox decides what to do). Codes that only a change
can fix (100, 131008, 131026, 131047, 132xxx, 190, 368) are never retried. ``Retry-After`` is
honoured up to ``max_retry_after`` seconds; otherwise the wait is ``min(0.5 * 2**n, 8)`` seconds
minus up to 25% jitter.
"""

from __future__ import annotations

import copy
import logging
import random
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

from pydantic import SecretStr
from tenacity import AsyncRetrying, RetryCallState, Retrying, retry_if_exception, stop_after_attempt
from tenacity.wait import wait_base

from waflow._http import (
    DEFAULT_TIMEOUT,
    URL,
    AsyncHTTPClient,
    Headers,
    Request,
    Response,
    SyncHTTPClient,
    TimeoutTypes,
    build_request,
    new_async_client,
    new_sync_client,
    parse_url,
    prepare_headers,
    request_extensions,
    send_async,
    send_sync,
    stream_async,
    stream_sync,
)
from waflow._version import __version__
from waflow.clock import Clock, SystemClock
from waflow.errors import (
    PERMANENT_CODES,
    THROTTLING_CODES,
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APIStatusError,
    ConfigError,
    error_from_response,
)
from waflow.ratelimit import Pacer

__all__ = [
    "DEFAULT_API_VERSION",
    "DEFAULT_BASE_URL",
    "DEFAULT_MAX_RETRIES",
    "NEVER_RETRY_CODES",
    "AsyncGraph",
    "GraphRequest",
    "GraphResponse",
    "SyncGraph",
    "next_cursor",
    "should_retry",
]

DEFAULT_BASE_URL = "https://graph.facebook.com"
DEFAULT_API_VERSION = "v26.0"
DEFAULT_MAX_RETRIES = 2
DEFAULT_MAX_RETRY_AFTER = 60.0
#: Errors that stay errors until something changes (request, template, token, policy); the
#: template codes 132xxx are never retried either.
NEVER_RETRY_CODES = PERMANENT_CODES
_BACKOFF_INITIAL = 0.5
_BACKOFF_MAX = 8.0
_PAIR_BACKOFF_BASE = 4.0
_PAIR_BACKOFF_MAX = 64.0
_USER_AGENT = f"waflow/{__version__}"
# Parsed URLs a Graph core keeps; the few of a client's sends are all it needs (clear when full).
_PARSED_URLS_MAX = 64

logger = logging.getLogger("waflow.graph")
_Self = TypeVar("_Self", bound="_GraphCore")


# GraphRequest, GraphResponse (and SendResult) are frozen dataclasses built on every send. Their
# __init__ is written out: one update of the instance dict costs about half of what the generated
# frozen __init__ does, which calls object.__setattr__ once per field.


@dataclass(frozen=True, init=False)
class GraphRequest:
    """One Graph API call, independent of sync or async I/O.

    ``path`` is relative to the versioned base URL (``/123/messages``) or an absolute URL (media
    downloads). The body is ``json`` (encoded by httpx), ``json_bytes`` (JSON already encoded, as
    a message's :meth:`~waflow.whatsapp.messages.OutboundMessage.to_json` gives it), ``files`` or
    ``data``. ``idempotent`` defaults to true for GET and DELETE: only idempotent requests are
    retried after a timeout or 5xx. ``pace`` is ``(sender, recipient)`` for the throughput pacer.
    """

    method: str
    path: str
    json: Any = None
    params: Mapping[str, Any] | None = None
    files: Mapping[str, Any] | None = None
    data: Mapping[str, Any] | None = None
    idempotent: bool | None = None
    pace: tuple[str, str | None] | None = None
    versioned: bool = True
    json_bytes: bytes | None = None

    def __init__(
        self,
        method: str,
        path: str,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        files: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
        idempotent: bool | None = None,
        pace: tuple[str, str | None] | None = None,
        versioned: bool = True,
        json_bytes: bytes | None = None,
    ) -> None:
        self.__dict__.update(
            method=method,
            path=path,
            json=json,
            params=params,
            files=files,
            data=data,
            idempotent=idempotent,
            pace=pace,
            versioned=versioned,
            json_bytes=json_bytes,
        )

    @property
    def is_idempotent(self) -> bool:
        """Whether repeating this request cannot do anything twice."""
        if self.idempotent is not None:
            return self.idempotent
        return self.method.upper() in ("GET", "HEAD", "DELETE")


@dataclass(frozen=True, init=False)
class GraphResponse:
    """A successful Graph answer: the parsed JSON ``data`` and how many retries it took."""

    data: Any
    status_code: int
    headers: Mapping[str, str] = field(repr=False)
    retries_taken: int = 0

    def __init__(
        self, data: Any, status_code: int, headers: Mapping[str, str], retries_taken: int = 0
    ) -> None:
        self.__dict__.update(
            data=data, status_code=status_code, headers=headers, retries_taken=retries_taken
        )


def next_cursor(data: Any) -> str | None:
    """The ``after`` cursor of the page after this answer of a Graph list, or ``None`` at the end.

    Meta marks the last page by leaving out ``paging.next`` (the cursors may still be there, so
    following ``after`` alone would loop over the last page). A page may be empty and still have a
    next one. Where ``cursors.after`` is missing, the cursor is read from the ``next`` URL.
    """
    paging = data.get("paging") if isinstance(data, dict) else None
    if not isinstance(paging, dict):
        return None
    next_url = paging.get("next")
    if not isinstance(next_url, str) or not next_url:
        return None
    cursors = paging.get("cursors")
    cursor = cursors.get("after") if isinstance(cursors, dict) else None
    if not isinstance(cursor, str) or not cursor:
        cursor = next(iter(parse_qs(urlsplit(next_url).query).get("after", [])), None)
    return cursor or None


def should_retry(request: GraphRequest, exc: BaseException) -> bool:
    """The retry decision for one failed attempt (see the module docstring)."""
    if isinstance(exc, APIConnectionError):
        return not exc.maybe_sent or request.is_idempotent
    if not isinstance(exc, APIStatusError) or not exc.retryable:
        return False
    if exc.code in THROTTLING_CODES:
        return True  # Meta refused the request, so nothing happened: safe to repeat
    if exc.status_code >= 500:
        return request.is_idempotent
    return True


def _check_max_retries(max_retries: int) -> None:
    if max_retries < 0:
        raise ConfigError(f"max_retries must be >= 0, got {max_retries}")


class _Backoff(wait_base):
    """Retry-After first, then the pair-rate backoff, then capped exponential backoff with jitter."""

    def __init__(self, rng: random.Random, max_retry_after: float, offset: int = 0) -> None:
        self.rng = rng
        self.max_retry_after = max_retry_after
        self.offset = offset  # failed attempts made before tenacity took over

    def __call__(self, retry_state: RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        return self.delay(retry_state.attempt_number + self.offset, exc)

    def delay(self, retries: int, exc: BaseException | None) -> float:
        """The wait after the ``retries``-th failed attempt (>= 1) that raised ``exc``."""
        if isinstance(exc, APIStatusError):
            if exc.retry_after is not None:
                return min(exc.retry_after, self.max_retry_after)
            if exc.is_pair_rate_limit:
                return float(min(_PAIR_BACKOFF_BASE**retries, _PAIR_BACKOFF_MAX))
        delay: float = min(_BACKOFF_INITIAL * 2.0 ** (retries - 1), _BACKOFF_MAX)
        return delay * (1.0 - 0.25 * self.rng.random())


class _GraphCore:
    """Options, URL and request building, response parsing: everything but the I/O."""

    def __init__(
        self,
        *,
        access_token: str | SecretStr | None,
        base_url: str = DEFAULT_BASE_URL,
        api_version: str = DEFAULT_API_VERSION,
        timeout: TimeoutTypes = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        max_retry_after: float = DEFAULT_MAX_RETRY_AFTER,
        clock: Clock | None = None,
        pacer: Pacer | None = None,
        rng: random.Random | None = None,
        token_name: str = "access_token",  # noqa: S107 - a setting's name, not a secret
    ) -> None:
        if access_token is None or not str(
            access_token.get_secret_value() if isinstance(access_token, SecretStr) else access_token
        ):
            raise ConfigError(f"{token_name} is required (or set WAFLOW_{token_name.upper()})")
        raw_token = (
            access_token.get_secret_value() if isinstance(access_token, SecretStr) else access_token
        )
        if not raw_token.isascii() or any(ch.isspace() for ch in raw_token):
            # It would fail later inside httpx with an error that quotes the header (the token).
            raise ConfigError(
                f"{token_name} must be printable ASCII without spaces: check for a copy-paste "
                "placeholder (…) or a trailing newline"
            )
        _check_max_retries(max_retries)
        self.access_token = (
            access_token if isinstance(access_token, SecretStr) else SecretStr(access_token)
        )
        self.base_url = base_url.rstrip("/")
        self.api_version = api_version
        self.timeout = timeout
        self.max_retries = max_retries
        self.max_retry_after = max_retry_after
        self.clock: Clock = clock or SystemClock()
        self.pacer = pacer
        self.rng = rng or random.Random()
        self._owns_http = True
        # Keyed by the whole URL, so copies that change base_url or api_version may share it.
        self._parsed_urls: dict[str, URL] = {}

    def url(self, path: str, *, versioned: bool = True) -> str:
        """The absolute URL of ``path`` (already-absolute URLs pass through)."""
        if path.startswith(("http://", "https://")):
            return path
        if not versioned:
            return f"{self.base_url}{path}"
        return f"{self.base_url}/{self.api_version}{path}"

    def copy_with(self: _Self, **changes: Any) -> _Self:
        """A shallow copy with some options changed; it shares (and never closes) the HTTP client."""
        clone = copy.copy(self)
        for name, value in changes.items():
            if value is None:
                continue
            if name == "access_token":
                value = value if isinstance(value, SecretStr) else SecretStr(value)
            if name == "base_url":
                value = value.rstrip("/")
            if name == "max_retries":
                _check_max_retries(value)
            if not hasattr(clone, name):
                raise TypeError(f"unknown option {name!r}")
            setattr(clone, name, value)
        clone._owns_http = False
        return clone

    def _headers(self) -> Headers:
        # Cached per token object: rebuilt only after with_options(access_token=...).
        cached = self.__dict__.get("_header_cache")
        if cached is None or cached[0] is not self.access_token:
            headers = prepare_headers(
                {
                    "Authorization": f"Bearer {self.access_token.get_secret_value()}",
                    "User-Agent": _USER_AGENT,
                    "Accept": "application/json",
                }
            )
            cached = (self.access_token, headers)
            self.__dict__["_header_cache"] = cached
        return cached[1]

    def _extensions(self) -> dict[str, Any]:
        # Cached per timeout object, like the headers: one dict serves every request.
        cached = self.__dict__.get("_extensions_cache")
        if cached is None or cached[0] is not self.timeout:
            cached = (self.timeout, request_extensions(self.timeout))
            self.__dict__["_extensions_cache"] = cached
        return cached[1]

    def _parsed_url(self, req: GraphRequest) -> URL | str:
        """The URL of ``req``, parsed once per Graph path (absolute URLs are one-off: parsed by httpx)."""
        url = self.url(req.path, versioned=req.versioned)
        if url is req.path:
            return url
        parsed = self._parsed_urls.get(url)
        if parsed is None:
            if len(self._parsed_urls) >= _PARSED_URLS_MAX:
                self._parsed_urls.clear()
            parsed = self._parsed_urls[url] = parse_url(url)
        return parsed

    def _build(self, http: SyncHTTPClient | AsyncHTTPClient, req: GraphRequest) -> Request:
        return build_request(
            http,
            req.method,
            self._parsed_url(req),
            headers=self._headers(),
            params=req.params,
            json=req.json,
            json_bytes=req.json_bytes,
            files=req.files,
            data=req.data,
            extensions=self._extensions(),
        )

    def _first_retry_wait(self, req: GraphRequest, exc: APIError) -> float | None:
        """The wait before the first retry, or ``None`` when ``exc`` must not be retried.

        The first attempt runs outside tenacity, which only takes over after a retryable failure:
        the common, successful send pays nothing for the retry machinery.
        """
        if self.max_retries == 0 or not should_retry(req, exc):
            return None
        wait = _Backoff(self.rng, self.max_retry_after).delay(1, exc)
        logger.info("retrying Graph request in %.2fs after: %s", wait, exc)
        return wait

    def retry_wait(self, req: GraphRequest, exc: BaseException, retries: int) -> float | None:
        """For requests sent once (streams): the wait before trying ``req`` again after ``exc``,
        its ``retries``-th retry so far, or ``None`` when the retry policy says not to."""
        if retries >= self.max_retries or not should_retry(req, exc):
            return None
        return _Backoff(self.rng, self.max_retry_after).delay(retries + 1, exc)

    def _retrying_options(self, req: GraphRequest) -> dict[str, Any]:
        return {
            "stop": stop_after_attempt(self.max_retries),
            "wait": _Backoff(self.rng, self.max_retry_after, offset=1),
            "retry": retry_if_exception(lambda exc: should_retry(req, exc)),
            "before_sleep": _log_retry,
            "reraise": True,
        }

    def _finish(
        self, req: GraphRequest, request: Request, response: Response, retries: int
    ) -> GraphResponse:
        status = response.status_code
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("%s %s -> %s", req.method, request.url.path, status)
        if status >= 400:
            raise error_from_response(
                status_code=status,
                content=response.content,
                headers=response.headers,
                request=request,
                response=response,
                maybe_sent=status >= 500 and not req.is_idempotent,
            )
        if not response.content:
            return GraphResponse({}, status, response.headers, retries)
        try:
            data = response.json()
        except ValueError:
            raise APIResponseValidationError(
                f"Graph API answered HTTP {status} to {req.method} {request.url.path} with a body "
                "that is not JSON",
                request=request,
                response=response,
            ) from None
        return GraphResponse(data, status, response.headers, retries)


def _log_retry(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    wait = state.next_action.sleep if state.next_action else 0.0
    logger.info("retrying Graph request in %.2fs after: %s", wait, exc)


class SyncGraph(_GraphCore):
    """Blocking Graph client core; owns an ``httpx.Client`` unless one is given."""

    def __init__(self, *, http_client: SyncHTTPClient | None = None, **options: Any) -> None:
        super().__init__(**options)
        self._owns_http = http_client is None
        self.http: SyncHTTPClient = http_client or new_sync_client(self.timeout)

    def request(self, req: GraphRequest) -> GraphResponse:
        """Perform ``req`` with pacing and retries; raise an :class:`APIError` subclass on failure."""
        try:
            return self._attempt(req, 0)
        except APIError as exc:
            wait = self._first_retry_wait(req, exc)
            if wait is None:
                raise
        self.clock.sleep(wait)
        retrying = Retrying(sleep=self.clock.sleep, **self._retrying_options(req))
        for attempt in retrying:
            with attempt:
                return self._attempt(req, attempt.retry_state.attempt_number)
        raise AssertionError(
            "unreachable: tenacity either returns or re-raises"
        )  # pragma: no cover

    def _attempt(self, req: GraphRequest, retries: int) -> GraphResponse:
        # Built before pacing: the less work between the pacer's check and the transport, the
        # closer the moment it counted is to the moment the request leaves.
        request = self._build(self.http, req)
        if req.pace is not None and self.pacer is not None:
            self.pacer.wait(*req.pace)
        try:
            return self._finish(req, request, send_sync(self.http, request), retries)
        except APIError as exc:
            exc.retries_taken = retries
            raise

    @contextmanager
    def stream(self, req: GraphRequest) -> Iterator[Response]:
        """Send ``req`` once (no retries) and yield the response with its body unread."""
        request = self._build(self.http, req)
        with stream_sync(self.http, request) as response:
            if response.status_code >= 400:
                response.read()
                self._finish(req, request, response, 0)
            yield response

    def close(self) -> None:
        """Close the HTTP client if this object created it."""
        if self._owns_http:
            self.http.close()


class AsyncGraph(_GraphCore):
    """Async twin of :class:`SyncGraph`; owns an ``httpx.AsyncClient`` unless one is given."""

    def __init__(self, *, http_client: AsyncHTTPClient | None = None, **options: Any) -> None:
        super().__init__(**options)
        self._owns_http = http_client is None
        self.http: AsyncHTTPClient = http_client or new_async_client(self.timeout)

    async def request(self, req: GraphRequest) -> GraphResponse:
        """Perform ``req`` with pacing and retries; raise an :class:`APIError` subclass on failure."""
        try:
            return await self._attempt(req, 0)
        except APIError as exc:
            wait = self._first_retry_wait(req, exc)
            if wait is None:
                raise
        await self.clock.asleep(wait)
        retrying = AsyncRetrying(sleep=self.clock.asleep, **self._retrying_options(req))
        async for attempt in retrying:
            with attempt:
                return await self._attempt(req, attempt.retry_state.attempt_number)
        raise AssertionError(
            "unreachable: tenacity either returns or re-raises"
        )  # pragma: no cover

    async def _attempt(self, req: GraphRequest, retries: int) -> GraphResponse:
        request = self._build(self.http, req)  # before pacing, as in SyncGraph._attempt
        if req.pace is not None and self.pacer is not None:
            await self.pacer.await_turn(*req.pace)
        try:
            return self._finish(req, request, await send_async(self.http, request), retries)
        except APIError as exc:
            exc.retries_taken = retries
            raise

    @asynccontextmanager
    async def stream(self, req: GraphRequest) -> AsyncIterator[Response]:
        """Send ``req`` once (no retries) and yield the response with its body unread."""
        request = self._build(self.http, req)
        async with stream_async(self.http, request) as response:
            if response.status_code >= 400:
                await response.aread()
                self._finish(req, request, response, 0)
            yield response

    async def aclose(self) -> None:
        """Close the HTTP client if this object created it."""
        if self._owns_http:
            await self.http.aclose()
