"""The one module that imports httpx: client construction, timeouts, sending, error translation.

Everything above this layer talks in terms of the aliases below and of waflow's own errors, so the
transport stays a single seam: pass ``http_client=`` (with any httpx transport, e.g. the fakes of
:mod:`waflow.testing`) to any waflow client.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import httpx

from waflow.errors import APIConnectionError, APITimeoutError, redact, request_credentials

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_TIMEOUT",
    "URL",
    "AsyncHTTPClient",
    "AsyncTransport",
    "Headers",
    "Request",
    "Response",
    "SyncHTTPClient",
    "SyncTransport",
    "Timeout",
    "TimeoutTypes",
    "build_request",
    "make_timeout",
    "new_async_client",
    "new_sync_client",
    "parse_url",
    "prepare_headers",
    "request_extensions",
    "send_async",
    "send_sync",
    "stream_async",
    "stream_sync",
]

Request = httpx.Request
Response = httpx.Response
SyncHTTPClient = httpx.Client
AsyncHTTPClient = httpx.AsyncClient
SyncTransport = httpx.BaseTransport
AsyncTransport = httpx.AsyncBaseTransport
Timeout = httpx.Timeout
Headers = httpx.Headers
URL = httpx.URL
TimeoutTypes = float | httpx.Timeout | None

#: Seconds for a whole request (read, write, pool) and for connecting.
DEFAULT_TIMEOUT = 15.0
DEFAULT_CONNECT_TIMEOUT = 5.0


def make_timeout(timeout: TimeoutTypes = DEFAULT_TIMEOUT) -> httpx.Timeout:
    """A timeout of ``timeout`` seconds per phase, but at most 5 s to connect."""
    if isinstance(timeout, httpx.Timeout):
        return timeout
    if timeout is None:
        return httpx.Timeout(None)
    return httpx.Timeout(timeout, connect=min(timeout, DEFAULT_CONNECT_TIMEOUT))


def request_extensions(timeout: TimeoutTypes) -> dict[str, Any]:
    """The per-request extensions (the ``timeout`` one) for :func:`make_timeout`'s rules.

    httpx copies a request's extensions, so one such dict may serve every request.
    """
    return {"timeout": make_timeout(timeout).as_dict()}


def new_sync_client(timeout: TimeoutTypes = DEFAULT_TIMEOUT) -> httpx.Client:
    """A fresh synchronous httpx client owned by a waflow client."""
    return httpx.Client(timeout=make_timeout(timeout), follow_redirects=True)


def new_async_client(timeout: TimeoutTypes = DEFAULT_TIMEOUT) -> httpx.AsyncClient:
    """A fresh asynchronous httpx client owned by a waflow client."""
    return httpx.AsyncClient(timeout=make_timeout(timeout), follow_redirects=True)


def build_request(
    client: httpx.Client | httpx.AsyncClient,
    method: str,
    url: str | httpx.URL,
    *,
    headers: Mapping[str, str] | None = None,
    params: Mapping[str, Any] | None = None,
    json: Any = None,
    json_bytes: bytes | None = None,
    content: bytes | None = None,
    files: Mapping[str, Any] | None = None,
    data: Mapping[str, Any] | None = None,
    timeout: TimeoutTypes | None = None,
    extensions: Mapping[str, Any] | None = None,
) -> httpx.Request:
    """Build a request with the client's defaults (no timeout keeps the client's timeout).

    ``url`` may be a :func:`parse_url` result and ``headers`` a :func:`prepare_headers` one, which
    spares httpx parsing them again. ``json_bytes``
    is a JSON body already encoded: it goes out exactly as ``json=`` would send it, with
    ``Content-Type: application/json`` after ``Content-Length``. ``extensions`` are precomputed
    :func:`request_extensions` (cheaper per request than ``timeout``).
    """
    if extensions is None and timeout is not None:
        extensions = request_extensions(timeout)
    request = client.build_request(
        method,
        url,
        headers=headers,
        params=params,
        json=json,
        content=json_bytes if json_bytes is not None else content,
        files=files,
        data=data,
        extensions=extensions,
    )
    if json_bytes is not None and not _sets_content_type(client, headers):
        # What httpx's json= adds, after Content-Length; a Content-Type set by the caller or the
        # client wins, as with json=. Asked of them rather than of the request's fresh headers,
        # which would first have to work out their encoding: the cheaper question, on every send.
        request.headers["Content-Type"] = "application/json"
    return request


def _sets_content_type(
    client: httpx.Client | httpx.AsyncClient, headers: Mapping[str, str] | None
) -> bool:
    if "Content-Type" in client.headers:
        return True
    if isinstance(headers, httpx.Headers):  # a prepare_headers() result: knows its encoding
        return "Content-Type" in headers
    return headers is not None and any(name.lower() == "content-type" for name in headers)


def prepare_headers(headers: Mapping[str, str]) -> httpx.Headers:
    """``headers`` normalised once, to be handed to :func:`build_request` again and again.

    httpx normalises a mapping of headers on every request; an ``httpx.Headers`` it just copies.
    """
    return httpx.Headers(headers)


def parse_url(url: str) -> httpx.URL:
    """``url`` parsed once, to be handed to :func:`build_request` again and again.

    httpx parses a string URL on every request, twice, which costs more than anything else in
    building a small request; an ``httpx.URL`` is immutable, so one parse can serve every request.
    """
    return httpx.URL(url)


def _translate(exc: httpx.RequestError, request: httpx.Request) -> APIConnectionError:
    # Connect-phase failures prove nothing was sent; anything later might have reached Meta.
    kind = type(exc).__name__
    # A transport may quote what it could not send, such as an illegal Authorization header.
    detail = redact(str(exc), request_credentials(request))
    if isinstance(exc, (httpx.ConnectTimeout, httpx.PoolTimeout)):
        return APITimeoutError(f"Timed out connecting to the Graph API ({kind}).", request=request)
    if isinstance(exc, httpx.TimeoutException):
        return APITimeoutError(
            f"The Graph API did not answer in time ({kind}); the request may have been executed.",
            request=request,
            maybe_sent=True,
        )
    if isinstance(exc, httpx.ConnectError):
        return APIConnectionError(f"Could not connect to the Graph API: {detail}", request=request)
    return APIConnectionError(
        f"Connection to the Graph API failed mid-request ({kind}): {detail}",
        request=request,
        maybe_sent=True,
    )


def _cause(exc: httpx.RequestError, request: httpx.Request) -> httpx.RequestError | None:
    # Chain the httpx error for its traceback, unless its text quotes a credential.
    text = str(exc)
    return exc if redact(text, request_credentials(request)) == text else None


def send_sync(client: httpx.Client, request: httpx.Request) -> httpx.Response:
    """Send and read the whole response.

    Any httpx failure (transport, undecodable body) becomes an :class:`APIConnectionError`, with
    the request's credentials redacted from its text.
    """
    try:
        return client.send(request)
    except httpx.RequestError as exc:
        raise _translate(exc, request) from _cause(exc, request)


async def send_async(client: httpx.AsyncClient, request: httpx.Request) -> httpx.Response:
    """Async twin of :func:`send_sync`; the only difference is the await."""
    try:
        return await client.send(request)
    except httpx.RequestError as exc:
        raise _translate(exc, request) from _cause(exc, request)


@contextmanager
def stream_sync(client: httpx.Client, request: httpx.Request) -> Iterator[httpx.Response]:
    """Send with a streamed body; the caller reads ``iter_bytes()`` inside the block."""
    try:
        response = client.send(request, stream=True)
    except httpx.RequestError as exc:
        raise _translate(exc, request) from _cause(exc, request)
    try:
        yield response
    except httpx.RequestError as exc:
        raise _translate(exc, request) from _cause(exc, request)
    finally:
        response.close()


@asynccontextmanager
async def stream_async(
    client: httpx.AsyncClient, request: httpx.Request
) -> AsyncIterator[httpx.Response]:
    """Async twin of :func:`stream_sync`."""
    try:
        response = await client.send(request, stream=True)
    except httpx.RequestError as exc:
        raise _translate(exc, request) from _cause(exc, request)
    try:
        yield response
    except httpx.RequestError as exc:
        raise _translate(exc, request) from _cause(exc, request)
    finally:
        await response.aclose()
