"""Serve a :class:`~waflow.testing.FakeGraphAPI` over real HTTP, on loopback.

In-process tests plug the fake in as a transport (``http_client=fake.client()``). A bot that runs
as its own process — under uvicorn, in a container, in another language — cannot take a transport;
it takes a URL. :func:`serve_fake` gives it one: the same fake, the same state, answering real
HTTP on ``127.0.0.1``, while the test keeps the fake object to seed it, break it and inspect it.

Testing over real HTTP
----------------------

::

    from waflow.testing import FakeGraphAPI, serve_fake

    fake = FakeGraphAPI()
    with serve_fake(fake) as graph_url:          # http://127.0.0.1:<free port>
        # Start the bot with WAFLOW_GRAPH_URL=graph_url, WAFLOW_ACCESS_TOKEN=fake.access_token,
        # WAFLOW_APP_SECRET=fake.app_secret, WAFLOW_PHONE_NUMBER_ID=fake.phone_number_id, …
        raw, headers = fake.sign(fake.inbound.whatsapp_text("4915112345678", "Hallo"))
        httpx.post(f"{bot_url}/webhook", content=raw, headers=headers)   # the bytes as signed
        ...                                      # poll fake.sent: the bot replies after its 200
        with fake.outage():                      # every request answers 503 until the block ends
            ...

``async with serve_fake_async(fake) as graph_url:`` does the same without blocking an event loop,
and :class:`FakeGraphServer` is the object behind both (``start()`` / ``stop()``, for fixtures).

How it behaves:

- **One implementation.** :class:`FakeGraphASGI` turns each HTTP request into an
  :class:`httpx.Request` and hands it to the fake's own transport, so routing, validation, error
  simulation and recording (``fake.sent``, ``fake.requests``, ``fake.unmatched``) are exactly those
  of in-process tests. Requests are presented to the fake as addressed to ``fake.base_url`` (by
  default ``https://graph.facebook.com``), whatever host and port they arrived on.
- **The test's clock.** The fake keeps its clock: outages of ``fake.outage(60)`` and media URL
  expiry run on it. A bot in another process has its own clock, so over HTTP a fake on the
  default :class:`~waflow.clock.SystemClock` is the natural choice; a
  :class:`~waflow.testing.FrozenClock` moves only the fake's time.
- **Media.** While served, ``fake.media_base_url`` points at the server (``{url}/lookaside.fbsbx.com``)
  so the download URLs of ``GET /{media-id}`` lead back to it, and a client downloading media over
  HTTP gets the fake's bytes. It is restored on stop; in-process clients of a fake that is being
  served get those HTTP URLs too.
- **Timeouts.** ``fake.timeout_next()`` cannot raise inside another process: the server holds the
  response until the client gives up (its read timeout fires, as with a real timeout), at most
  ``timeout_hold`` seconds, then answers 504. With ``after_send=True`` the message is recorded
  first, as in process.
- **Loopback by default.** The server listens on ``127.0.0.1`` on a free port; it accepts the
  fake's token only, as in process. uvicorn is needed (``pip install 'waflow[server]'``); any other
  ASGI server can run :class:`FakeGraphASGI` too.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, MutableMapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import httpx

from waflow.testing.fake_graph import MEDIA_HOST, FakeGraphAPI

if TYPE_CHECKING:
    import uvicorn

__all__ = ["FakeGraphASGI", "FakeGraphServer", "serve_fake", "serve_fake_async"]

logger = logging.getLogger("waflow.testing.http_fake")

ASGIScope = MutableMapping[str, Any]
ASGIReceive = Callable[[], Awaitable[MutableMapping[str, Any]]]
ASGISend = Callable[[MutableMapping[str, Any]], Awaitable[None]]

#: Paths under this prefix are requests to Meta's media host (downloads of media URLs).
MEDIA_PREFIX = f"/{MEDIA_HOST}"
#: Seconds a simulated timeout holds its response at most before answering 504.
DEFAULT_TIMEOUT_HOLD = 30.0
#: Seconds to wait for the server thread to start or to stop.
_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 10.0
# Hop-by-hop and framing headers: the server and httpx each set their own.
_SKIPPED_HEADERS = frozenset(
    {b"host", b"content-length", b"transfer-encoding", b"connection", b"keep-alive"}
)


class FakeGraphASGI:
    """An ASGI application that answers every HTTP request with ``fake``'s own transport.

    Nothing is routed here: the request goes to ``fake.async_transport`` as an
    :class:`httpx.Request` addressed to ``fake.base_url`` (or, for paths under
    ``/lookaside.fbsbx.com/``, to Meta's media host), and the fake's answer goes back as it is.
    A simulated timeout holds the response until the client disconnects, at most
    ``timeout_hold`` seconds, then answers 504.
    """

    def __init__(self, fake: FakeGraphAPI, *, timeout_hold: float = DEFAULT_TIMEOUT_HOLD) -> None:
        self.fake = fake
        self.timeout_hold = timeout_hold

    async def __call__(self, scope: ASGIScope, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return  # websockets: nothing to serve; the server closes the connection
        body = await _read_body(receive)
        request = httpx.Request(
            scope.get("method", "GET"),
            self.target_url(scope),
            headers=[
                (name, value)
                for name, value in scope.get("headers", [])
                if name.lower() not in _SKIPPED_HEADERS
            ],
            content=body,
        )
        try:
            response = await self.fake.async_transport.handle_async_request(request)
        except httpx.TimeoutException:
            await self._hold(receive, send)
            return
        content = await response.aread()
        headers = [
            (name.encode("latin-1"), value.encode("latin-1"))
            for name, value in response.headers.multi_items()
            if name.lower().encode("latin-1") not in _SKIPPED_HEADERS
        ]
        headers.append((b"content-length", str(len(content)).encode()))
        await send(
            {"type": "http.response.start", "status": response.status_code, "headers": headers}
        )
        await send({"type": "http.response.body", "body": content})

    def target_url(self, scope: ASGIScope) -> str:
        """The URL the fake sees for a request that arrived with ``scope``."""
        raw_path = scope.get("raw_path")
        path = raw_path.decode("latin-1") if raw_path else quote(scope.get("path", "/"))
        if path == MEDIA_PREFIX or path.startswith(MEDIA_PREFIX + "/"):
            origin, path = f"https://{MEDIA_HOST}", path[len(MEDIA_PREFIX) :] or "/"
        else:
            base = urlsplit(self.fake.base_url)
            origin = f"{base.scheme}://{base.netloc}"
        query = scope.get("query_string", b"").decode("latin-1")
        return f"{origin}{path}?{query}" if query else f"{origin}{path}"

    async def _hold(self, receive: ASGIReceive, send: ASGISend) -> None:
        # A real timeout is an answer that never comes: wait for the client to give up.
        try:
            await asyncio.wait_for(_disconnected(receive), self.timeout_hold)
            return
        except asyncio.TimeoutError:
            pass
        message = b"simulated timeout: the client waited longer than timeout_hold"
        headers = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(message))]
        await send({"type": "http.response.start", "status": 504, "headers": headers})
        await send({"type": "http.response.body", "body": message})


class FakeGraphServer:
    """``fake`` served over HTTP by uvicorn in a background thread (see :func:`serve_fake`).

    ``host`` defaults to loopback and ``port`` to a free one; :attr:`url` is the base URL to give
    the bot (``WAFLOW_GRAPH_URL``) once :meth:`start` has returned. Usable as a context manager,
    sync or async, and restartable after :meth:`stop` (on a new port unless ``port`` was given).
    """

    def __init__(
        self,
        fake: FakeGraphAPI,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        log_level: str = "warning",
        timeout_hold: float = DEFAULT_TIMEOUT_HOLD,
    ) -> None:
        self.fake = fake
        self.host = host
        self.port = port
        self.log_level = log_level
        self.app = FakeGraphASGI(fake, timeout_hold=timeout_hold)
        self._url: str | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self._previous_media_base_url: str | None = None

    @property
    def url(self) -> str:
        """The base URL of the running server, such as ``http://127.0.0.1:54321``."""
        if self._url is None:
            raise RuntimeError("the fake's HTTP server is not running; call start() first")
        return self._url

    @property
    def running(self) -> bool:
        """Whether the server thread is serving."""
        return self._url is not None

    def start(self) -> str:
        """Bind, start serving in a background thread, and return :attr:`url`."""
        if self._url is not None:
            raise RuntimeError(f"the fake's HTTP server is already running at {self._url}")
        try:
            import uvicorn
        except ImportError:
            raise ImportError(
                "serving FakeGraphAPI over HTTP needs uvicorn: pip install 'waflow[server]'"
            ) from None
        # Our own bound socket, handed to uvicorn: the port is known before the thread starts,
        # and no other process can take it between choosing a free port and binding it.
        family = socket.AF_INET6 if _is_ipv6(self.host) else socket.AF_INET
        sock = socket.create_server((self.host, self.port), family=family)
        port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            log_level=self.log_level,
            log_config=None,  # leave the test process's logging alone
            access_log=False,
            lifespan="on",
            # A held timeout or an idle keep-alive connection must not make stop() hang.
            timeout_graceful_shutdown=1,
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run,
            kwargs={"sockets": [sock]},
            name=f"waflow-fake-graph:{port}",
            daemon=True,  # a test that forgets stop() must not keep the interpreter alive
        )
        thread.start()
        # Real time on purpose: the fake's clock may be frozen, the server's start is not.
        deadline = time.monotonic() + _START_TIMEOUT
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                server.should_exit = True
                thread.join(_STOP_TIMEOUT)
                sock.close()
                raise RuntimeError(
                    f"the fake's HTTP server did not start on {self.host}:{port} "
                    "(see the uvicorn log)"
                )
            time.sleep(0.005)
        self._server, self._thread, self._socket = server, thread, sock
        self._url = f"http://{_url_host(self.host)}:{port}"
        self._previous_media_base_url = self.fake.media_base_url
        self.fake.media_base_url = f"{self._url}{MEDIA_PREFIX}"
        logger.debug("FakeGraphAPI served at %s", self._url)
        return self._url

    def stop(self) -> None:
        """Stop serving and wait for the thread; idempotent."""
        server, thread, sock = self._server, self._thread, self._socket
        if server is None or thread is None:
            return
        server.should_exit = True
        thread.join(_STOP_TIMEOUT)
        if sock is not None:
            sock.close()
        if self._previous_media_base_url is not None:
            self.fake.media_base_url = self._previous_media_base_url
        self._server = self._thread = self._socket = None
        self._url = self._previous_media_base_url = None
        if thread.is_alive():
            logger.warning("the fake's HTTP server thread did not stop within %ss", _STOP_TIMEOUT)

    def __enter__(self) -> FakeGraphServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    async def __aenter__(self) -> FakeGraphServer:
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await asyncio.to_thread(self.stop)


@contextlib.contextmanager
def serve_fake(fake: FakeGraphAPI, **options: Any) -> Iterator[str]:
    """Serve ``fake`` over HTTP on loopback for the ``with`` block; yields the base URL.

    ``options`` go to :class:`FakeGraphServer` (``host``, ``port``, ``log_level``,
    ``timeout_hold``). Raises :class:`ImportError` when uvicorn is not installed.
    """
    with FakeGraphServer(fake, **options) as server:
        yield server.url


@contextlib.asynccontextmanager
async def serve_fake_async(fake: FakeGraphAPI, **options: Any) -> AsyncIterator[str]:
    """:func:`serve_fake` for async tests: starting and stopping never block the event loop."""
    async with FakeGraphServer(fake, **options) as server:
        yield server.url


async def _lifespan(receive: ASGIReceive, send: ASGISend) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _disconnected(receive: ASGIReceive) -> None:
    # The body has been read: the next message the server has for this request is the disconnect.
    while (await receive())["type"] != "http.disconnect":
        pass


async def _read_body(receive: ASGIReceive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _is_ipv6(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).version == 6
    except ValueError:
        return False


def _url_host(host: str) -> str:
    # A wildcard address is where the server listens, not where a client can connect.
    if host in ("", "0.0.0.0"):  # noqa: S104 - comparing, not binding
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if _is_ipv6(host) else host
