"""The durable engine: events/s through inbox -> flow -> outbox, and the outbox's drain rate.

**Events/s.** A small flow (one state that answers every message with its text, like the
``EchoFlow`` of the tests) runs in an ``Engine`` behind an ``App``, on each store. One call is one
signed webhook POST with one text message, every body distinct, from 500 customers who each
wrote once before the timing (so the engine finds, locks, loads and saves a known customer):
``await app.dispatch(request, process=False)`` (verify, parse, record in the inbox, answer) then
``await app.inbox.process([customer])`` (claim the event, find and lock the customer, run the
flow, commit the customer, its index and the reply to the outbox in one transaction, unlock, mark
the event done). The outbox is *not* drained: an event counts once its reply is committed. Stores:
``SQLiteStore`` (default ``synchronous=FULL``; and ``NORMAL``), ``RedisStore`` on a private
``redis-server`` (append-only file, ``appendfsync everysec``), ``MemoryStore`` as the floor (the
engine's own work). After timing, every store must hold exactly one pending reply per event.

**Drain rate.** The outbox is filled through the same engine (``4 × tier`` replies, two per
customer; ``--quick``: ``1 × tier``), then ``Outbox.drain()`` sends them all with an
``AsyncWhatsApp`` paced at ``tier`` (80 and 1000 messages/s; ``pacer=Pacer(tier)``, which is
what ``throughput=tier`` builds, subclassed to record the slot it books for each send) over
``httpx.AsyncClient(transport=httpx.MockTransport(…))`` answering like Meta's send endpoint, on
the real clock, with the engine's send guard (it re-checks the service window of every
message). The transport stamps each request; reported are the achieved rate (sends after the first
over the time from first to last send), its share of the tier, the most sends seen in any
one-second window, which must never exceed the tier, the shortest gap between two sends, and how
late after its booked slot the latest send went. Each (tier, store) runs 3 times, stores
taking turns in rotated order.

Needs ``redis-server`` on ``PATH`` for the Redis rows (skipped with a printed reason otherwise).
Run by ``benchmarks/run.py`` under ``.bench-venv``; alone: ``.bench-venv/bin/python
benchmarks/engine.py [--quick] [--profile]``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import cProfile
import itertools
import json
import logging
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from _bench import (
    BenchResult,
    Group,
    LoadMonitor,
    Row,
    Settings,
    Table,
    Timing,
    bench_arguments,
    environment,
    filesystem_of,
    print_profile,
    ratio,
    render_markdown,
    settings_from,
    time_async,
    write_result,
)

import waflow
from waflow import filters as F
from waflow.flows import Flow, State
from waflow.flows.context import FlowContext
from waflow.flows.engine import Engine
from waflow.flows.flow import NoData
from waflow.inbox import customer_key
from waflow.outbox import DrainReport, Outbox
from waflow.ratelimit import Pacer
from waflow.store import MemoryStore, RedisStore, SQLiteStore, Store
from waflow.testing import FakeGraphAPI
from waflow.webhooks import parse

NAME = "engine"
TITLE = "Engine: inbox -> flow -> outbox, and the outbox's drain rate"
TIERS = (80, 1000)
DRAIN_TARGET = 0.95  # of the tier, and never above it
SECONDS_AT_TIER = 4  # N = 4 × tier messages: a drain at full speed lasts 4 s
PER_CUSTOMER = 2  # replies queued per customer before a drain
CUSTOMERS = 500  # for the events/s measurement; each writes once before the timing starts

MEMORY = "memory"
SQLITE_FULL = "SQLite FULL"
SQLITE_NORMAL = "SQLite NORMAL"
REDIS = "Redis"
ACCESS_TOKEN = "EAAGbenchmarkTokenNotASecret"

#: Replies committed by each engine's flow, keyed by ``id(engine)``: the handler ran.
HANDLED: collections.Counter[int] = collections.Counter()


class EchoFlow(Flow[NoData]):
    """One state that answers every message with its text: the smallest durable bot."""

    name = "echo"
    chatting = State(initial=True)

    @chatting.on(F.kind("message"), to=None)
    async def echo(self, event: Any, ctx: FlowContext[NoData]) -> None:
        HANDLED[id(ctx.engine)] += 1
        ctx.reply(f"echo: {event.text}")


def require(condition: bool, problem: str) -> None:
    """Stop the benchmark (also under ``python -O``): a store did not do the whole job."""
    if not condition:
        raise SystemExit(f"{NAME}: {problem}")


# -- redis-server --------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
            conn.sendall(b"*1\r\n$4\r\nPING\r\n")
            return conn.recv(64).startswith(b"+PONG")
    except OSError:
        return False


#: How the benchmark's redis-server keeps data: an append-only file flushed once a second, the
#: usual production setting (a power cut may lose the last second; a crash of the server, not).
REDIS_PERSISTENCE = ("--save", "", "--appendonly", "yes", "--appendfsync", "everysec")


@contextlib.contextmanager
def redis_server(directory: Path) -> Iterator[tuple[str | None, str]]:
    """``(url, description)`` of a private ``redis-server``, or ``(None, why not)``."""
    executable = shutil.which("redis-server")
    if executable is None:
        yield None, "redis-server is not on PATH (install it, e.g. apt-get install redis-server)"
        return
    version = subprocess.run(
        [executable, "--version"], capture_output=True, text=True, check=False
    ).stdout.split()
    described = next((word for word in version if word.startswith("v=")), "v=?")[2:]
    port = _free_port()
    log = directory / "redis.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                executable,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(directory),
                *REDIS_PERSISTENCE,
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 10
        while not _ping(port):
            if process.poll() is not None or time.monotonic() > deadline:
                yield None, f"redis-server did not start: {log.read_text(errors='replace')[-500:]}"
                return
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0", f"redis-server {described}"
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# -- stores and apps -----------------------------------------------------------------------------


@dataclass
class Stores:
    """Makes fresh stores of each kind: SQLite files in ``directory``, Redis under a new prefix."""

    directory: Path
    redis_url: str | None
    _serial: Iterator[int] = field(default_factory=itertools.count)

    def names(self) -> list[str]:
        return [MEMORY, SQLITE_FULL, SQLITE_NORMAL, *([REDIS] if self.redis_url else [])]

    def path(self, label: str) -> Path:
        return self.directory / f"{label}-{next(self._serial)}.db"

    def make(self, name: str, path: Path | None = None) -> Store:
        if name == MEMORY:
            return MemoryStore()
        if name == SQLITE_FULL:
            return SQLiteStore(path or self.path("full"))
        if name == SQLITE_NORMAL:
            return SQLiteStore(path or self.path("normal"), synchronous="NORMAL")
        assert self.redis_url is not None
        return RedisStore(self.redis_url, prefix=f"bench{next(self._serial)}:")


def make_app(fake: FakeGraphAPI, store: Store, whatsapp: Any = None) -> waflow.App:
    engine = Engine(EchoFlow, store=store, whatsapp_number=fake.phone_number_id)
    return waflow.App(app_secret=fake.app_secret, store=store, whatsapp=whatsapp, engine=engine)


@dataclass(frozen=True)
class Delivery:
    """A signed webhook POST of one text message, and the inbox queue its event goes to."""

    request: waflow.WebhookRequest
    customers: list[str]


def deliveries(fake: FakeGraphAPI, count: int, customers: int) -> list[Delivery]:
    """``count`` distinct text messages, round-robin over ``customers`` customers."""
    made = []
    for n in range(count):
        customer = n % customers
        body = fake.inbound.whatsapp_text(
            f"4917{customer:09d}",
            f"{customer}:{n // customers}",
            name=f"Kundin {customer}",
            user_id=f"DE.{8_000_000_000 + customer:020d}",
        )
        request = fake.webhook_request(body)
        keys = [customer_key(event) for event in parse(request.body)]
        made.append(Delivery(request, keys))
    return made


async def handle(app: waflow.App, delivery: Delivery) -> None:
    """One event through inbox -> flow -> outbox, without draining the outbox."""
    response = await app.dispatch(delivery.request, process=False)
    require(response.status == 200, f"dispatch answered {response.status}: {response.text}")
    handled = await app.inbox.process(delivery.customers)
    require(handled == len(delivery.customers), f"{handled} of {len(delivery.customers)} handled")


async def pending_replies(store: Store, at_most: int) -> int:
    return len(await store.outbox_list("pending", at_most + 1))


# -- events/s ------------------------------------------------------------------------------------

AsyncCall = Callable[[], Awaitable[object]]


async def returning_customers(
    fake: FakeGraphAPI, stores: Stores, names: Sequence[str], count: int
) -> tuple[dict[str, waflow.App], list[Delivery]]:
    """An app per store whose ``CUSTOMERS`` customers have each written once (untimed), and
    ``count`` further messages of theirs: the usual case of a conversation under way (the engine
    finds, locks, loads and saves the customer)."""
    bodies = deliveries(fake, CUSTOMERS + count, CUSTOMERS)
    apps = {name: make_app(fake, stores.make(name)) for name in names}
    for app in apps.values():
        for delivery in bodies[:CUSTOMERS]:
            await handle(app, delivery)
    return apps, bodies[CUSTOMERS:]


async def measure_events(
    fake: FakeGraphAPI, stores: Stores, settings: Settings
) -> dict[str, Timing]:
    calls = settings.warmup + settings.repeats * settings.iterations
    apps, bodies = await returning_customers(fake, stores, stores.names(), calls)

    def caller(app: waflow.App) -> AsyncCall:
        walk = iter(bodies)

        async def deliver() -> None:
            await handle(app, next(walk))

        return deliver

    try:
        print(f"{NAME}: events/s …", file=sys.stderr, flush=True)
        timings = await time_async({name: caller(app) for name, app in apps.items()}, settings)
        for name, app in apps.items():
            assert app.engine is not None
            expected = CUSTOMERS + calls
            handled = HANDLED[id(app.engine)]
            replies = await pending_replies(app.store, expected)
            require(
                handled == expected and replies == expected,
                f"{name}: {expected} events, the flow ran {handled} times, "
                f"{replies} replies queued",
            )
        return timings
    finally:
        for app in apps.values():
            await app.store.close()


# -- drain rate ----------------------------------------------------------------------------------


class MetaSend:
    """``httpx.MockTransport`` handler answering like Meta's send endpoint; stamps every request."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.bodies: list[bytes] = []
        self._ids = itertools.count()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.times.append(time.monotonic())  # the pacer's clock
        self.bodies.append(request.content)
        to = json.loads(request.content)["to"]
        answer = {
            "messaging_product": "whatsapp",
            "contacts": [{"input": to, "wa_id": to}],
            "messages": [{"id": f"wamid.bench{next(self._ids):012d}"}],
        }
        return httpx.Response(200, json=answer)


class RecordingPacer(Pacer):
    """waflow's pacer, remembering the slot it booked for each send (``time.monotonic``)."""

    def __init__(self, throughput: float) -> None:
        super().__init__(throughput)
        self.slots: list[float] = []

    def reserve(self, sender: str, recipient: str | None = None) -> float:
        now = time.monotonic()
        delay = super().reserve(sender, recipient)
        self.slots.append(now + delay)
        return delay


def latest(slots: Sequence[float], times: Sequence[float]) -> float:
    """How long after its slot the latest send went (slots and sends taken in time order)."""
    return max(sent - slot for slot, sent in zip(sorted(slots), sorted(times), strict=True))


def busiest_second(times: Sequence[float]) -> int:
    """The most stamps in any half-open window ``[t, t + 1 s)``."""
    ordered = sorted(times)
    most, start = 0, 0
    for end, stamp in enumerate(ordered):
        while ordered[start] <= stamp - 1.0:
            start += 1
        most = max(most, end - start + 1)
    return most


@dataclass(frozen=True)
class Drain:
    """One drain: how many, how long, how fast, the busiest second, the shortest gap."""

    messages: int
    seconds: float  # the whole drain() call
    rate: float  # sends after the first / (last - first)
    busiest: int
    shortest_gap: float  # seconds between the two closest sends (pacing spaces them 1 / tier)
    latest: float  # seconds the latest send went after the slot the pacer had booked for it


async def prefill(
    fake: FakeGraphAPI, stores: Stores, name: str, messages: int
) -> tuple[Store, int]:  # the store, and how many customers the messages go to
    """A fresh store of kind ``name`` with ``messages`` replies queued by the engine."""
    customers = messages // PER_CUSTOMER
    bodies = deliveries(fake, messages, customers)
    if name in (SQLITE_FULL, SQLITE_NORMAL):
        # Filled with synchronous=OFF (fast), then reopened as measured: same file, same rows.
        path = stores.path("drain")
        filling: Store = SQLiteStore(path, synchronous="OFF")
        app = make_app(fake, filling)
        for delivery in bodies:
            await handle(app, delivery)
        await filling.close()
        store = stores.make(name, path)
    else:
        store = stores.make(name)
        app = make_app(fake, store)
        for delivery in bodies:
            await handle(app, delivery)
    require(await pending_replies(store, messages) == messages, f"{name}: prefill incomplete")
    return store, customers


async def drain_once(
    fake: FakeGraphAPI,
    stores: Stores,
    name: str,
    tier: int,
    seconds_at_tier: int,
    pacer_type: type[RecordingPacer] | None = None,
) -> Drain:
    messages = seconds_at_tier * tier
    store, customers = await prefill(fake, stores, name, messages)
    meta = MetaSend()
    http = httpx.AsyncClient(transport=httpx.MockTransport(meta))
    # What throughput=tier builds, plus a record of its slots (--profile: another pacer).
    pacer = (pacer_type or RecordingPacer)(tier)
    client = waflow.AsyncWhatsApp(
        access_token=ACCESS_TOKEN,
        phone_number_id=fake.phone_number_id,
        http_client=http,
        pacer=pacer,
    )
    engine = Engine(EchoFlow, store=store, whatsapp_number=fake.phone_number_id)
    outbox = Outbox(
        store, whatsapp=client, guard=engine.send_guard, prefetch=engine.prefetch_for_send
    )
    try:
        started = time.perf_counter()
        report = await outbox.drain()
        seconds = time.perf_counter() - started
        require(len(pacer.slots) == messages, f"{name}: {len(pacer.slots)} slots booked")
        check_drain(name, report, meta, messages, customers)
        require(await pending_replies(store, messages) == 0, f"{name}: replies left unsent")
    finally:
        await http.aclose()
        await store.close()
    times = meta.times
    gap = min(later - earlier for earlier, later in itertools.pairwise(times))
    rate = (messages - 1) / (times[-1] - times[0])
    return Drain(messages, seconds, rate, busiest_second(times), gap, latest(pacer.slots, times))


def check_drain(
    name: str, report: DrainReport, meta: MetaSend, messages: int, customers: int
) -> None:
    """Every reply sent once, in order per customer, tagged with its outbox id."""
    require(report == DrainReport(sent=messages), f"{name}: drain reported {report}")
    require(len(meta.bodies) == messages, f"{name}: {len(meta.bodies)} sends for {messages}")
    sent = [json.loads(body) for body in meta.bodies]
    tags = {body["biz_opaque_callback_data"] for body in sent}
    require(len(tags) == messages, f"{name}: {len(tags)} distinct outbox ids for {messages}")
    by_customer: dict[str, list[int]] = collections.defaultdict(list)
    for body in sent:
        customer, number = body["text"]["body"].removeprefix("echo: ").split(":")
        by_customer[customer].append(int(number))
    require(len(by_customer) == customers, f"{name}: sent to {len(by_customer)} customers")
    require(
        all(numbers == sorted(numbers) for numbers in by_customer.values()),
        f"{name}: a customer's replies went out of order",
    )


async def measure_drains(
    fake: FakeGraphAPI, stores: Stores, repeats: int, seconds_at_tier: int
) -> dict[tuple[int, str], list[Drain]]:
    names = [name for name in stores.names() if name != MEMORY]
    results: dict[tuple[int, str], list[Drain]] = collections.defaultdict(list)
    for tier in TIERS:
        for round_number in range(repeats):
            shift = round_number % len(names)
            for name in [*names[shift:], *names[:shift]]:
                print(
                    f"{NAME}: drain at {tier}/s on {name}, round {round_number + 1} …",
                    file=sys.stderr,
                    flush=True,
                )
                drain = await drain_once(fake, stores, name, tier, seconds_at_tier)
                results[tier, name].append(drain)
    return results


def drain_table(results: dict[tuple[int, str], list[Drain]]) -> Table:
    rows = []
    for (tier, name), drains in results.items():
        rates = [drain.rate for drain in drains]
        rate = statistics.median(rates)
        busiest = max(drain.busiest for drain in drains)
        met = rate >= DRAIN_TARGET * tier and busiest <= tier
        late = max(drain.latest for drain in drains)
        rows.append(
            [
                f"{tier}/s",
                name,
                f"{drains[0].messages:,}",
                f"{statistics.median(d.seconds for d in drains):.2f}",
                f"{rate:,.1f}",
                f"{min(rates):,.1f}–{max(rates):,.1f}",
                f"{rate / tier:.1%}",
                " / ".join(f"{drain.busiest:,}" for drain in drains),
                f"{min(d.shortest_gap for d in drains) * 1000:.1f} ({1000 / tier:g})",
                f"{late * 1000:.1f}",
                "met" if met else "**missed**",
            ]
        )
    return Table(
        title=(
            f"Outbox drain rate (median of {len(next(iter(results.values())))} drains per row; "
            "real clock)"
        ),
        columns=[
            "tier",
            "store",
            "messages",
            "drain s",
            "msg/s",
            "min–max msg/s",
            "of tier",
            "most in any 1 s (each drain)",
            "shortest gap ms (paced)",
            "latest send after its slot, ms",
            f"≥ {DRAIN_TARGET:.0%}, never above",
        ],
        rows=rows,
        numeric=[False, False, True, True, True, True, True, True, True, True, False],
    )


# -- the result ----------------------------------------------------------------------------------

NOTES = {
    MEMORY: "MemoryStore: the engine's own work, nothing durable",
    SQLITE_FULL: "SQLiteStore(path): synchronous=FULL, the default",
    SQLITE_NORMAL: 'SQLiteStore(path, synchronous="NORMAL")',
    REDIS: "RedisStore on a local redis-server, AOF everysec",
}


def measure(settings: Settings, drain_repeats: int, seconds_at_tier: int) -> BenchResult:
    monitor = LoadMonitor()
    fake = FakeGraphAPI(seed=11)

    async def run() -> tuple[dict[str, Timing], dict[tuple[int, str], list[Drain]], str, str]:
        with tempfile.TemporaryDirectory(prefix="waflow-bench-") as folder:
            directory = Path(folder)
            with redis_server(directory) as (url, redis_about):
                if url is None:
                    print(f"{NAME}: skipping the Redis rows: {redis_about}", file=sys.stderr)
                stores = Stores(directory, url)
                timings = await measure_events(fake, stores, settings)
                drains = await measure_drains(fake, stores, drain_repeats, seconds_at_tier)
                return timings, drains, redis_about, filesystem_of(directory)

    timings, drains, redis_about, filesystem = asyncio.run(run())
    rows = [Row(name, timing, NOTES[name]) for name, timing in timings.items()]
    group = Group("events", MEMORY, rows)
    ratios = []
    if REDIS in timings:
        ratios.append(
            ratio(
                "Redis ÷ SQLite FULL, events/s",
                group.row(SQLITE_FULL),
                group.row(REDIS),
                at_least=True,
            )
        )
    ratios.append(
        ratio(
            "SQLite NORMAL ÷ SQLite FULL, events/s",
            group.row(SQLITE_FULL),
            group.row(SQLITE_NORMAL),
            at_least=True,
        )
    )
    return BenchResult(
        benchmark=NAME,
        title=TITLE,
        description=(__doc__ or "").split("\n", 1)[0],
        settings=settings,
        groups=[group],
        ratios=ratios,
        rate_unit="event",
        tables=[drain_table(drains)],
        notes=[
            "events: one call = one webhook POST with one text message: dispatch (verify, parse, "
            "record) + inbox.process (claim, lock, load, flow, one commit of customer, index "
            f"and reply, unlock, done). {CUSTOMERS:,} customers, each of whom wrote once before "
            "the timing (so every timed event is a returning customer's); the outbox is not "
            "drained. After timing, each store held exactly one pending reply per event.",
            f"drain: N = {seconds_at_tier} × tier replies, {PER_CUSTOMER} per customer, "
            "queued by the same engine; one "
            "Outbox.drain() with AsyncWhatsApp(pacer=Pacer(tier)) (what throughput=tier builds, "
            "its booked slots recorded) over httpx.MockTransport and the engine's send guard. msg/s = (N - 1) / (last send - first send); the busiest "
            "second counts sends in any window [t, t + 1 s); a send's slot is the time waflow's "
            "pacer booked for it, and a send after its slot means the event loop was busy "
            "elsewhere when the slot came. Checked: every reply sent once, "
            "with its own outbox id, in order per customer.",
            f"SQLite files on {filesystem}; Redis: "
            + (
                f"{redis_about} on loopback, {shlex.join(REDIS_PERSISTENCE)}"
                if REDIS in timings
                else f"skipped ({redis_about})"
            )
            + ".",
            f"Contenders take turns every {settings.chunk} calls within each round, in an order "
            "rotated at every turn; drains of one tier alternate stores in rotated order.",
        ],
        environment=environment(
            ["waflow", "pydantic", "pydantic-core", "httpx", "redis"], load=monitor.result()
        ),
    )


# -- profile -------------------------------------------------------------------------------------


class TimedStore:
    """Wraps a store: counts each method's calls and the wall time spent in them.

    Times are meaningful for calls that do not overlap (events are handled one at a time; SQLite
    blocks the event loop anyway); concurrent Redis calls during a drain overlap, so there only
    the counts are.
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self.calls: collections.Counter[str] = collections.Counter()
        self.seconds: collections.defaultdict[str, float] = collections.defaultdict(float)

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._store, name)
        if not callable(method):
            return method

        async def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await method(*args, **kwargs)
            finally:
                self.calls[name] += 1
                self.seconds[name] += time.perf_counter() - started

        return timed


def print_store_calls(timed: TimedStore, units: int, unit: str, wall: float, cpu: float) -> None:
    inside = sum(timed.seconds.values())
    print(
        f"  {wall / units * 1e6:,.0f} µs wall and {cpu / units * 1e6:,.0f} µs CPU of this "
        f"process per {unit} ({units / wall:,.0f} {unit}s/s); store calls: "
        f"{sum(timed.calls.values()) / units:.2f} per {unit}, {inside / wall:.0%} of the wall time"
    )
    for name, spent in sorted(timed.seconds.items(), key=lambda item: -item[1]):
        print(
            f"  {timed.calls[name] / units:6.2f} per {unit}  "
            f"{spent / timed.calls[name] * 1e6:8.1f} µs/call  {spent / wall:6.1%}  {name}"
        )


async def profile_events(fake: FakeGraphAPI, stores: Stores, name: str, events: int) -> None:
    """Store calls and CPU per event through inbox -> flow -> outbox, one event at a time."""
    apps, bodies = await returning_customers(fake, stores, [name], events)
    store = apps[name].store
    timed = TimedStore(store)
    app = make_app(fake, timed)
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        for delivery in bodies:
            await handle(app, delivery)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        await store.close()
    print(f"\n== {name}: {events:,} events through inbox -> flow -> outbox ==")
    print_store_calls(timed, events, "event", wall, cpu)


async def profile_drain(
    fake: FakeGraphAPI, stores: Stores, name: str, tier: int, *, profiled: bool
) -> None:
    """Store calls and CPU per message of one drain at ``tier``; or cProfile's view of it."""
    store, _customers = await prefill(fake, stores, name, SECONDS_AT_TIER * tier)
    timed = TimedStore(store)
    http = httpx.AsyncClient(transport=httpx.MockTransport(MetaSend()))
    client = waflow.AsyncWhatsApp(
        access_token=ACCESS_TOKEN,
        phone_number_id=fake.phone_number_id,
        http_client=http,
        throughput=tier,
    )
    engine = Engine(EchoFlow, store=timed, whatsapp_number=fake.phone_number_id)
    guard = engine.send_guard
    outbox = Outbox(timed, whatsapp=client, guard=guard, prefetch=engine.prefetch_for_send)
    profiler = cProfile.Profile()
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        if profiled:
            profiler.enable()
        report = await outbox.drain()
        if profiled:
            profiler.disable()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        await http.aclose()
        await store.close()
    packages = ("waflow", "pydantic_core", "pydantic", "httpx", "httpcore", "redis", "asyncio")
    if profiled:
        print(f"\n== {name}, drain at {tier}/s: cProfile ==")
        print_profile(profiler, report.sent, packages)
    else:
        print(f"\n== {name}, drain at {tier}/s: {report.sent:,} messages ==")
        print_store_calls(timed, report.sent, "message", wall, cpu)


async def _stall_monitor(stalls: list[tuple[float, float]], tick: float = 0.001) -> None:
    """Record ``(when, how late)`` whenever a ``tick`` sleep wakes more than 5 ms late."""
    while True:
        started = time.monotonic()  # the clock of MetaSend's stamps
        await asyncio.sleep(tick)
        late = time.monotonic() - started - tick
        if late > 0.005:
            stalls.append((started, late))


async def profile_pacing(fake: FakeGraphAPI, stores: Stores, name: str, tier: int) -> None:
    """Sends closer than the pacing interval, and the event-loop stalls around them."""
    store, _customers = await prefill(fake, stores, name, SECONDS_AT_TIER * tier)
    meta = MetaSend()
    http = httpx.AsyncClient(transport=httpx.MockTransport(meta))
    client = waflow.AsyncWhatsApp(
        access_token=ACCESS_TOKEN,
        phone_number_id=fake.phone_number_id,
        http_client=http,
        throughput=tier,
    )
    engine = Engine(EchoFlow, store=store, whatsapp_number=fake.phone_number_id)
    outbox = Outbox(
        store, whatsapp=client, guard=engine.send_guard, prefetch=engine.prefetch_for_send
    )
    stalls: list[tuple[float, float]] = []
    monitor = asyncio.create_task(_stall_monitor(stalls))
    try:
        await outbox.drain()
    finally:
        monitor.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await monitor
        await http.aclose()
        await store.close()
    times = meta.times
    interval = 1 / tier
    short = [
        (earlier - times[0], later - earlier)
        for earlier, later in itertools.pairwise(times)
        if later - earlier < 0.8 * interval
    ]
    print(f"\n== {name}, drain at {tier}/s: pacing (with a 1 ms stall monitor running) ==")
    print(
        f"  busiest second {busiest_second(times)}; {len(short)} gaps under 80% of "
        f"{interval * 1000:g} ms, the shortest {min(gap for _at, gap in short) * 1000:.2f} ms"
        if short
        else f"  busiest second {busiest_second(times)}; no gap under 80% of {interval * 1000:g} ms"
    )
    print(
        "  event-loop stalls over 5 ms (ms into the drain: ms late): "
        + ", ".join(f"{(at - times[0]) * 1000:.0f}: {late * 1000:.1f}" for at, late in stalls[:12])
    )
    print(
        "  short gaps (ms into the drain: gap ms): "
        + ", ".join(f"{at * 1000:.0f}: {gap * 1000:.2f}" for at, gap in short[:12])
    )


class SlotsOnly(RecordingPacer):
    """The pacer without its departure check: sends leave at their booked slots (as before
    ``Pacer.depart``); only for telling the pacer's share of a drain's rate from the outbox's."""

    def depart(self, sender: str) -> float:
        return 0.0


async def profile_drain_at_slots(fake: FakeGraphAPI, stores: Stores) -> None:
    """One drain per tier and store through :class:`SlotsOnly`: what the outbox reaches when
    the pacer's departure check does not hold it back (the busiest second may then exceed the
    tier, which is why waflow's pacer has the check)."""
    print("\n== drains through the pacer without its departure check ==")
    for tier in TIERS:
        for name in stores.names():
            if name != MEMORY:
                drain = await drain_once(fake, stores, name, tier, SECONDS_AT_TIER, SlotsOnly)
                print(
                    f"  {tier}/s {name}: {drain.rate / tier:.1%} of the tier, busiest second "
                    f"{drain.busiest}, latest send {drain.latest * 1000:.1f} ms after its slot"
                )


async def pace_alone(pacer: Pacer, messages: int, tasks: int) -> list[float]:
    """The times ``messages`` sends would leave through ``pacer`` from ``tasks`` tasks, when a
    send is nothing but its turn (no outbox, no store, no HTTP)."""
    times: list[float] = []
    left = iter(range(messages))

    async def sender() -> None:
        for _ in left:
            await pacer.await_turn("bench")
            times.append(time.monotonic())

    await asyncio.gather(*(sender() for _ in range(tasks)))
    return sorted(times)


async def profile_pacer_alone() -> None:
    """The rate and busiest second the pacer alone allows, with and without its departure
    check: the ceiling of any drain through it."""
    print("\n== the pacer alone: 4 × tier sends, nothing else ==")
    for tier in TIERS:
        for tasks in (1, 50, 100):
            cells = []
            for label, pacer in (("Pacer", Pacer(tier)), ("slots only", SlotsOnly(tier))):
                times = await pace_alone(pacer, SECONDS_AT_TIER * tier, tasks)
                rate = (len(times) - 1) / (times[-1] - times[0])
                cells.append(f"{label} {rate / tier:6.1%}, busiest second {busiest_second(times)}")
            print(f"  {tier}/s from {tasks:3d} tasks: " + "; ".join(cells))


def profile(tier: int, events: int) -> None:
    """Where the time goes: what the pacer alone allows; per event (store calls, CPU), then per
    message of a drain at ``tier``; how evenly a drain at the lowest tier spaces its sends; and
    what drains reach without the pacer's departure check."""
    fake = FakeGraphAPI(seed=11)

    async def run() -> None:
        await profile_pacer_alone()
        with tempfile.TemporaryDirectory(prefix="waflow-bench-") as folder:
            directory = Path(folder)
            with redis_server(directory) as (url, about):
                if url is None:
                    print(f"(no Redis rows: {about})")
                stores = Stores(directory, url)
                for name in stores.names():
                    await profile_events(fake, stores, name, events)
                for name in stores.names():
                    if name != MEMORY:
                        await profile_drain(fake, stores, name, tier, profiled=False)
                for name in stores.names():
                    if name != MEMORY:
                        await profile_drain(fake, stores, name, tier, profiled=True)
                for name in stores.names():
                    if name != MEMORY:
                        await profile_pacing(fake, stores, name, TIERS[0])
                await profile_drain_at_slots(fake, stores)

    asyncio.run(run())


def main() -> int:
    logging.getLogger("waflow").setLevel(logging.WARNING)
    arguments = bench_arguments((__doc__ or "").split("\n", 1)[0])
    settings = settings_from(arguments, Settings(repeats=7, iterations=500, warmup=100, chunk=50))
    if arguments.profile:
        profile(TIERS[-1], settings.iterations * 2)
        return 0
    if arguments.quick:
        result = measure(settings, drain_repeats=1, seconds_at_tier=1)
    else:
        result = measure(settings, drain_repeats=3, seconds_at_tier=SECONDS_AT_TIER)
    if arguments.output is not None:
        write_result(result, arguments.output)
    else:
        print(render_markdown(result.as_dict()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
