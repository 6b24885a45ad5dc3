"""What waflow adds to one text send: ``WhatsApp.send_text`` versus a bare ``httpx`` POST, and pywa.

Every contender sends the same text to the same customer through one ``httpx.MockTransport`` that
answers like Meta's ``POST /{phone-number-id}/messages``, so no network is involved and the time
measured is the client libraries' own: building and checking the message, building the request,
httpx, parsing the answer.

- *bare httpx*: ``client.post(url, json=body, headers=…)``, ``raise_for_status()`` and
  ``response.json()["messages"][0]["id"]``: the least code that sends a text and learns its id.
- *waflow*: ``WhatsApp(…, http_client=httpx.Client(transport=…), throughput=None).send_text(to,
  text)``, returning a ``SendResult``. Pacing is off: it is measured elsewhere, and at the default 80/s
  every send would wait for its slot.
- *pywa*: ``pywa.WhatsApp(phone_id=…, token=…, session=httpx.Client(transport=…)).send_message(to,
  text)``, returning a ``SentMessage``.

The async group does the same with ``httpx.AsyncClient``, ``waflow.AsyncWhatsApp`` and
``pywa_async.WhatsApp``. Before timing, the script checks that every contender produced the same
request: the same JSON body and URL for all; byte-identical body and identical headers for waflow
and bare httpx (pywa sends its own User-Agent, httpx's default ``Accept`` and its keys in
another order).

Run by ``benchmarks/run.py`` under ``.bench-venv``; alone: ``.bench-venv/bin/python
benchmarks/send_overhead.py [--quick] [--profile]``.
"""

from __future__ import annotations

import asyncio
import cProfile
import json
import pstats
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from _bench import (
    BenchResult,
    Group,
    LoadMonitor,
    Row,
    Settings,
    Timing,
    bench_arguments,
    environment,
    ratio,
    render_markdown,
    settings_from,
    time_async,
    time_sync,
    write_result,
)
from pywa.client import WhatsApp as PywaWhatsApp
from pywa_async.client import WhatsApp as PywaAsyncWhatsApp

import waflow
from waflow.graph import DEFAULT_API_VERSION, DEFAULT_BASE_URL

NAME = "send_overhead"
TITLE = "Send overhead: one text message"
TARGET = 1.15  # waflow's send may cost at most 15% more than the bare httpx POST

PHONE_NUMBER_ID = "106540352242922"
ACCESS_TOKEN = "EAAGbenchmarkTokenNotASecret"
TO = "4915112345678"
TEXT = "Hallo Anna, Ihr Rad ist fertig! Abholung ab 14 Uhr, Laden Lindenstraße 3."
WAMID = "wamid.HBgNNDkxNTExMjM0NTY3OBUCABEYEjQ3RjM2QjFBQkQ0NTc0RjBBNQA="
URL = f"{DEFAULT_BASE_URL}/{DEFAULT_API_VERSION}/{PHONE_NUMBER_ID}/messages"
# What waflow sends with every Graph request; the bare contender sends the same.
HEADERS = {
    "Authorization": f"Bearer {ACCESS_TOKEN}",
    "User-Agent": f"waflow/{waflow.__version__}",
    "Accept": "application/json",
}
EXPECTED_BODY: dict[str, Any] = {
    "messaging_product": "whatsapp",
    "recipient_type": "individual",
    "to": TO,
    "type": "text",
    "text": {"body": TEXT, "preview_url": False},
}
SEND_RESPONSE = {
    "messaging_product": "whatsapp",
    "contacts": [{"input": TO, "wa_id": TO}],
    "messages": [{"id": WAMID}],
}

BARE, WAFLOW, PYWA = "bare httpx", "waflow", "pywa"
SyncSend = Callable[[], str]
AsyncSend = Callable[[], Awaitable[str]]


class MetaSendHandler:
    """``httpx.MockTransport`` handler answering every request as Meta answers a successful send."""

    def __init__(self) -> None:
        self.recorded: list[httpx.Request] | None = None
        self._content = json.dumps(SEND_RESPONSE, separators=(",", ":")).encode()
        self._headers = {"Content-Type": "application/json; charset=UTF-8"}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.recorded is not None:
            self.recorded.append(request)
        return httpx.Response(200, content=self._content, headers=self._headers)


def text_body(to: str, text: str) -> dict[str, Any]:
    """The request body a caller of plain httpx writes for a text message."""
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": "text",
        "text": {"body": text, "preview_url": False},
    }


def message_id(response: httpx.Response) -> str:
    response.raise_for_status()
    return str(response.json()["messages"][0]["id"])


class SyncContenders:
    """The three blocking clients, each with its own ``httpx.Client`` on the shared transport."""

    def __init__(self, transport: httpx.MockTransport) -> None:
        self.http = [httpx.Client(transport=transport) for _ in range(3)]
        self.bare = self.http[0]
        self.waflow = waflow.WhatsApp(
            access_token=ACCESS_TOKEN,
            phone_number_id=PHONE_NUMBER_ID,
            http_client=self.http[1],
            throughput=None,
        )
        # pywa sets its base URL and auth headers on the session it is given.
        self.pywa = PywaWhatsApp(phone_id=PHONE_NUMBER_ID, token=ACCESS_TOKEN, session=self.http[2])

    def close(self) -> None:
        for client in self.http:
            client.close()

    def send_bare(self) -> str:
        return message_id(self.bare.post(URL, json=text_body(TO, TEXT), headers=HEADERS))

    def send_waflow(self) -> str:
        return self.waflow.send_text(TO, TEXT).message_id

    def send_pywa(self) -> str:
        return self.pywa.send_message(TO, TEXT).id

    def calls(self) -> dict[str, SyncSend]:
        return {BARE: self.send_bare, WAFLOW: self.send_waflow, PYWA: self.send_pywa}


class AsyncContenders:
    """The three async clients, each with its own ``httpx.AsyncClient`` on the shared transport."""

    def __init__(self, transport: httpx.MockTransport) -> None:
        self.http = [httpx.AsyncClient(transport=transport) for _ in range(3)]
        self.bare = self.http[0]
        self.waflow = waflow.AsyncWhatsApp(
            access_token=ACCESS_TOKEN,
            phone_number_id=PHONE_NUMBER_ID,
            http_client=self.http[1],
            throughput=None,
        )
        self.pywa = PywaAsyncWhatsApp(
            phone_id=PHONE_NUMBER_ID, token=ACCESS_TOKEN, session=self.http[2]
        )

    async def aclose(self) -> None:
        for client in self.http:
            await client.aclose()

    async def send_bare(self) -> str:
        return message_id(await self.bare.post(URL, json=text_body(TO, TEXT), headers=HEADERS))

    async def send_waflow(self) -> str:
        return (await self.waflow.send_text(TO, TEXT)).message_id

    async def send_pywa(self) -> str:
        return (await self.pywa.send_message(TO, TEXT)).id

    def calls(self) -> dict[str, AsyncSend]:
        return {BARE: self.send_bare, WAFLOW: self.send_waflow, PYWA: self.send_pywa}


def require(condition: bool, problem: str) -> None:
    """Stop the benchmark (also under ``python -O``): its contenders would not do the same job."""
    if not condition:
        raise SystemExit(f"send_overhead: contenders differ, nothing to compare: {problem}")


def check_requests(group: str, requests: dict[str, httpx.Request], ids: dict[str, str]) -> None:
    """Require that every contender sent the same request and read the message id back."""
    for name, request in requests.items():
        where = f"{group} {name}"
        require(ids[name] == WAMID, f"{where} returned {ids[name]!r}, not the message id")
        require(request.method == "POST", f"{where} sent {request.method}")
        require(str(request.url) == URL, f"{where} sent to {request.url}")
        require(json.loads(request.content) == EXPECTED_BODY, f"{where} sent {request.content!r}")
        require(
            request.headers.get("Authorization") == HEADERS["Authorization"],
            f"{where} sent another Authorization",
        )
        require(
            request.headers.get("Content-Type") == "application/json",
            f"{where} sent Content-Type {request.headers.get('Content-Type')}",
        )
    bare, ours = requests[BARE], requests[WAFLOW]
    require(ours.content == bare.content, f"{group} bodies: {ours.content!r} {bare.content!r}")
    require(
        list(ours.headers.multi_items()) == list(bare.headers.multi_items()),
        f"{group} headers: {ours.headers!r} {bare.headers!r}",
    )


def _record_one(handler: MetaSendHandler, group: str, name: str) -> httpx.Request:
    recorded, handler.recorded = handler.recorded or [], None
    require(len(recorded) == 1, f"{group} {name} made {len(recorded)} requests for one send")
    return recorded[0]


def verify_sync(handler: MetaSendHandler, contenders: SyncContenders) -> None:
    """Send once with every contender and :func:`check_requests`."""
    requests: dict[str, httpx.Request] = {}
    ids: dict[str, str] = {}
    for name, send in contenders.calls().items():
        handler.recorded = []
        ids[name] = send()
        requests[name] = _record_one(handler, "sync", name)
    check_requests("sync", requests, ids)


async def verify_async(handler: MetaSendHandler, contenders: AsyncContenders) -> None:
    """Async :func:`verify_sync`."""
    requests: dict[str, httpx.Request] = {}
    ids: dict[str, str] = {}
    for name, send in contenders.calls().items():
        handler.recorded = []
        ids[name] = await send()
        requests[name] = _record_one(handler, "async", name)
    check_requests("async", requests, ids)


async def measure_async(handler: MetaSendHandler, settings: Settings) -> dict[str, Timing]:
    contenders = AsyncContenders(httpx.MockTransport(handler))
    try:
        await verify_async(handler, contenders)
        return await time_async(dict(contenders.calls()), settings)
    finally:
        await contenders.aclose()


def measure(settings: Settings) -> BenchResult:
    monitor = LoadMonitor()
    handler = MetaSendHandler()
    sync = SyncContenders(httpx.MockTransport(handler))
    try:
        verify_sync(handler, sync)
        print("send_overhead: sync …", file=sys.stderr, flush=True)
        sync_timings = time_sync(dict(sync.calls()), settings)
    finally:
        sync.close()
    print("send_overhead: async …", file=sys.stderr, flush=True)
    async_timings = asyncio.run(measure_async(handler, settings))

    groups = [
        Group(
            "sync",
            BARE,
            [
                Row(BARE, sync_timings[BARE], "httpx.Client.post + raise_for_status + json()"),
                Row(WAFLOW, sync_timings[WAFLOW], "WhatsApp.send_text, throughput=None"),
                Row(PYWA, sync_timings[PYWA], "pywa.WhatsApp.send_message"),
            ],
        ),
        Group(
            "async",
            BARE,
            [
                Row(
                    BARE, async_timings[BARE], "httpx.AsyncClient.post + raise_for_status + json()"
                ),
                Row(WAFLOW, async_timings[WAFLOW], "AsyncWhatsApp.send_text, throughput=None"),
                Row(PYWA, async_timings[PYWA], "pywa_async.WhatsApp.send_message"),
            ],
        ),
    ]
    ratios = []
    for group in groups:
        ours = group.row(WAFLOW)
        ratios.append(ratio(f"waflow / bare httpx ({group.name})", ours, group.row(BARE), TARGET))
        ratios.append(ratio(f"waflow / pywa ({group.name})", ours, group.row(PYWA)))
    return BenchResult(
        benchmark=NAME,
        title=TITLE,
        description=(__doc__ or "").split("\n", 1)[0],
        settings=settings,
        groups=groups,
        ratios=ratios,
        notes=[
            "waflow clients built with throughput=None: pacing off (measured elsewhere).",
            "One httpx.MockTransport answers every contender like Meta's send endpoint; "
            "before timing, every request was checked to carry the same JSON body to the same "
            "URL (waflow and bare httpx: byte-identical body and identical headers).",
            f"Contenders of a group take turns every {settings.chunk} calls within each round, "
            "in an order rotated at every turn.",
        ],
        environment=environment(
            ["waflow", "pywa", "httpx", "httpcore", "pydantic", "pydantic-core", "tenacity"],
            load=monitor.result(),
        ),
    )


_PACKAGES = ("waflow", "pywa_async", "pywa", "pydantic_core", "pydantic", "tenacity", "httpx")
_Stats = dict[tuple[str, int, str], tuple[int, float]]  # function -> (calls, own seconds)


def _package_of(filename: str) -> str:
    parts = Path(filename).parts
    for package in _PACKAGES:
        if package in parts:
            return package
    if "httpcore" in parts or "anyio" in parts or "h11" in parts:
        return "httpx"
    if filename.startswith(("~", "<")):
        return "builtins"
    return "stdlib/other"


def _own_times(profiler: cProfile.Profile) -> _Stats:
    raw: dict[tuple[str, int, str], tuple[Any, ...]] = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    return {function: (row[1], row[2]) for function, row in raw.items()}


def _report_profile(group: str, base: _Stats, ours: _Stats, calls: int) -> None:
    """Own time by package for both, then the functions that cost waflow the most extra time."""
    print(f"\n== {group}: own time per send by package, {calls:,} sends each ==")
    print("   (cProfile slows every call down, small ones most: read shares, not µs)")
    for name, stats in ((BARE, base), (WAFLOW, ours)):
        by_package: dict[str, float] = {}
        for (filename, _line, _function), (_calls, seconds) in stats.items():
            package = _package_of(filename)
            by_package[package] = by_package.get(package, 0.0) + seconds
        total = sum(by_package.values())
        shares = ", ".join(
            f"{package} {seconds / total:.0%}"
            for package, seconds in sorted(by_package.items(), key=lambda item: -item[1])
        )
        print(f"  {name:11} {total / calls * 1e6:7.1f} µs/send: {shares}")
    extra = []
    for key in base.keys() | ours.keys():
        base_calls, base_seconds = base.get(key, (0, 0.0))
        our_calls, our_seconds = ours.get(key, (0, 0.0))
        extra.append(((our_seconds - base_seconds) / calls, (our_calls - base_calls) / calls, key))
    extra.sort(reverse=True)
    print(f"  functions costing {WAFLOW} the most own time over {BARE} (per send):")
    for seconds, more_calls, (filename, line, function) in extra[:25]:
        where = filename if filename.startswith(("~", "<")) else f"{_short(filename)}:{line}"
        print(f"  {seconds * 1e6:7.1f} µs {more_calls:+5.1f} calls  {where} {function}")


def _short(filename: str) -> str:
    parts = Path(filename).parts
    for anchor in ("site-packages", "main"):
        if anchor in parts:
            return "/".join(parts[len(parts) - parts[::-1].index(anchor) :])
    return filename


def profile(calls: int) -> None:
    """Where waflow's send spends more time than the bare POST (cProfile, deterministic)."""
    handler = MetaSendHandler()
    sync = SyncContenders(httpx.MockTransport(handler))
    try:
        verify_sync(handler, sync)
        sync_stats: dict[str, _Stats] = {}
        for name, send in ((BARE, sync.send_bare), (WAFLOW, sync.send_waflow)):
            for _ in range(200):
                send()
            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(calls):
                send()
            profiler.disable()
            sync_stats[name] = _own_times(profiler)
    finally:
        sync.close()
    _report_profile("sync", sync_stats[BARE], sync_stats[WAFLOW], calls)

    async def run_async() -> dict[str, _Stats]:
        contenders = AsyncContenders(httpx.MockTransport(handler))
        stats: dict[str, _Stats] = {}
        try:
            await verify_async(handler, contenders)
            for name, send in ((BARE, contenders.send_bare), (WAFLOW, contenders.send_waflow)):
                for _ in range(200):
                    await send()
                profiler = cProfile.Profile()
                profiler.enable()
                for _ in range(calls):
                    await send()
                profiler.disable()
                stats[name] = _own_times(profiler)
        finally:
            await contenders.aclose()
        return stats

    async_stats = asyncio.run(run_async())
    _report_profile("async", async_stats[BARE], async_stats[WAFLOW], calls)


def main() -> int:
    arguments = bench_arguments((__doc__ or "").split("\n", 1)[0])
    settings = settings_from(arguments)
    if arguments.profile:
        profile(settings.iterations * 2)
        return 0
    result = measure(settings)
    if arguments.output is not None:
        write_result(result, arguments.output)
    else:
        print(render_markdown(result.as_dict()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
