"""Webhook ingest: events/s through verify + parse + dedupe + dispatch, waflow next to pywa.

Every contender is fed the same signed webhook POSTs, built once with
``waflow.testing.FakeGraphAPI().inbound`` and ``webhook_request``: the same raw bytes and the same
``X-Hub-Signature-256`` header. Each delivery carries one event (pywa handles only the first change
of the first entry of a body), and every body is distinct (new message ids), so deduplication never
short-circuits the work, except in the ``duplicates`` group, which redelivers bodies already seen.

- *waflow*: ``App(app_secret=…, store=…)`` with one trivial ``@app.message()`` handler (and an
  ``@app.router.status()`` one in the mix) that counts its calls; each call is
  ``await app.dispatch(request)``: size and signature check, parse into typed events, record them
  in the store's inbox (dedupe by message id), answer, hand them to the handler, mark them done,
  drain the (empty) outbox. Stores: ``MemoryStore()``; ``SQLiteStore(path)`` (its default
  ``synchronous=FULL``: every commit is flushed to disk); ``SQLiteStore(path,
  synchronous="NORMAL")``. The SQLite files live in a fresh temporary directory.
- *waflow parse, no inbox*: ``verify_signature`` + ``parse`` + a set of the ids seen + the
  handler: the least any design that hands handlers waflow's typed events must do, without the
  durable inbox (what pywa skips too). Not a way to run waflow: a raising handler loses its event.
- *pywa*: ``pywa.WhatsApp(phone_id=…, token=…, server=None, verify_token=…, app_secret=…,
  waba_id=…)`` with trivial ``@wa.on_message()`` (and, in the mix, ``on_callback_button`` and
  ``on_message_status``) handlers; each call is ``wa.webhook_update_validator(body, signature)``
  then ``wa.webhook_update_handler(body)``: the documented way to feed pywa from one's own server.
  Its dedupe is an in-process LRU of body hashes.

- *floor* (a table, not a contender): the steps any design must take to hand a handler a
  pydantic-validated event, each the cheapest way at hand and timed alone (HMAC, pydantic-core's
  JSON parser, one ``WhatsAppMessage.model_validate``), and the one store call a durable inbox
  adds (``MemoryStore.inbox_add``): the most events/s such a design could reach against pywa.

Groups: ``texts`` (text messages from many customers), ``mix`` (half delivery statuses, a quarter
texts, a quarter button replies), ``duplicates`` (bodies every contender has handled before). After
timing, every contender's handlers must have run exactly once per distinct event, or the script
stops without a result.

Run by ``benchmarks/run.py`` under ``.bench-venv``; alone: ``.bench-venv/bin/python
benchmarks/webhook_ingest.py [--quick] [--profile]``.
"""

from __future__ import annotations

import asyncio
import cProfile
import hashlib
import hmac
import itertools
import json
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

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
from pydantic_core import from_json
from pywa.client import WhatsApp as PywaWhatsApp

import waflow
from waflow.app import _accepted_body as accepted_body  # the step App.dispatch takes
from waflow.store import MemoryStore, SQLiteStore, Store
from waflow.store.base import NewInboxItem
from waflow.testing import FakeGraphAPI
from waflow.webhooks import parse, verify_signature
from waflow.whatsapp.events import WhatsAppMessage

NAME = "webhook_ingest"
TITLE = "Webhook ingest: verify + parse + dedupe + dispatch"
JSON_HEADERS = {"content-type": "application/json"}
TARGET = 3.0  # waflow with the memory store handles at least 3 times pywa's events per second

PYWA = "pywa"
MEMORY = "waflow, memory"
SQLITE_FULL = "waflow, SQLite FULL"
SQLITE_NORMAL = "waflow, SQLite NORMAL"
PARSE_ONLY = "waflow parse, no inbox"
APPS = (MEMORY, SQLITE_FULL, SQLITE_NORMAL)
CONTENDERS = (PYWA, PARSE_ONLY, *APPS)

CUSTOMERS = 500
DUPLICATE_POOL = 500
VERIFY_TOKEN = "bench-verify-token"
ACCESS_TOKEN = "EAAGbenchmarkTokenNotASecret"
FIRST_NAMES = ("Anna", "Jonas", "Lena", "Mehmet", "Sofia", "Lukas", "Marie", "Paul", "Emma", "Noah")
TEXTS = (
    "Hallo, habt ihr das Stadtrad noch in 52 cm?",
    "Wann kann ich mein Rad abholen?",
    "Danke, bis morgen!",
    "Ist die Reparatur schon fertig? Die Bremse quietscht immer noch.",
    "Was kostet ein neuer Schlauch für 28 Zoll?",
)

AsyncCall = Callable[[], Awaitable[object]]


@dataclass(frozen=True)
class Delivery:
    """One webhook POST: what waflow's dispatch takes, and the same bytes and header for pywa."""

    request: waflow.WebhookRequest
    body: bytes
    signature: str
    events: int  # handler calls it must cause, on either side, the first time it is delivered


def require(condition: bool, problem: str) -> None:
    """Stop the benchmark (also under ``python -O``): the contenders did not do the same job."""
    if not condition:
        raise SystemExit(f"{NAME}: contenders differ, nothing to compare: {problem}")


class Bodies:
    """Realistic, distinct webhook bodies from many customers, signed by one fake Graph API."""

    def __init__(self) -> None:
        self.fake = FakeGraphAPI(seed=7)
        self._sequence = itertools.count()

    def _customer(self, n: int) -> tuple[str, str, str]:
        number = n % CUSTOMERS
        # Meta's 2026 webhooks name a customer by phone (wa_id) and business-scoped user id.
        return f"4915{number:09d}", f"DE.{7_000_000_000 + number:020d}", FIRST_NAMES[number % 10]

    def _deliver(self, body: dict[str, Any], events: int = 1) -> Delivery:
        request = self.fake.webhook_request(body)
        signature = request.header("X-Hub-Signature-256")
        assert signature is not None
        return Delivery(request, request.body, signature, events)

    def text(self) -> Delivery:
        n = next(self._sequence)
        wa_id, user_id, name = self._customer(n)
        body = self.fake.inbound.whatsapp_text(
            wa_id, TEXTS[n % len(TEXTS)], name=name, user_id=user_id
        )
        return self._deliver(body)

    def button_reply(self) -> Delivery:
        n = next(self._sequence)
        wa_id, user_id, name = self._customer(n)
        choice = ("ja", "Ja, gerne") if n % 2 else ("nein", "Nein, danke")
        body = self.fake.inbound.whatsapp_button_reply(wa_id, *choice, name=name, user_id=user_id)
        return self._deliver(body)

    def status(self) -> Delivery:
        n = next(self._sequence)
        wa_id, user_id, name = self._customer(n)
        status: Literal["delivered", "read"] = "delivered" if n % 2 else "read"
        body = self.fake.inbound.whatsapp_status(
            self.fake.new_wamid(), status, wa_id, user_id=user_id
        )
        # Delivered and read statuses carry the customer's contact since business-scoped user
        # ids (2026); pywa 4.5 requires it, waflow keeps it as an unknown field.
        value = body["entry"][0]["changes"][0]["value"]
        value["contacts"] = [{"profile": {"name": name}, "wa_id": wa_id, "user_id": user_id}]
        return self._deliver(body)

    def texts(self, count: int) -> list[Delivery]:
        return [self.text() for _ in range(count)]

    def mix(self, count: int) -> list[Delivery]:
        makers = (self.status, self.text, self.status, self.button_reply)
        return [makers[n % len(makers)]() for n in range(count)]


class Contenders:
    """pywa and three waflow apps (memory, SQLite FULL, SQLite NORMAL), counting handler calls."""

    def __init__(self, fake: FakeGraphAPI, directory: Path, *, statuses: bool) -> None:
        self.counts = dict.fromkeys(CONTENDERS, 0)
        self.app_secret = fake.app_secret
        self.seen_ids: set[str] = set()
        self.pywa = PywaWhatsApp(
            phone_id=fake.phone_number_id,
            token=ACCESS_TOKEN,
            server=None,
            verify_token=VERIFY_TOKEN,
            app_secret=fake.app_secret,
            waba_id=fake.waba_id,
        )
        self._register_pywa(statuses=statuses)
        stores: dict[str, Store] = {
            MEMORY: MemoryStore(),
            SQLITE_FULL: SQLiteStore(directory / "full.db"),
            SQLITE_NORMAL: SQLiteStore(directory / "normal.db", synchronous="NORMAL"),
        }
        self.stores = stores
        self.apps = {
            name: self._waflow_app(name, fake, store, statuses=statuses)
            for name, store in stores.items()
        }

    def _count(self, name: str) -> None:
        self.counts[name] += 1

    def _register_pywa(self, *, statuses: bool) -> None:
        wa = self.pywa

        @wa.on_message()  # type: ignore[misc]  # as pywa annotates its decorators
        def on_message(_client: PywaWhatsApp, _message: Any) -> None:
            self._count(PYWA)

        if statuses:

            @wa.on_callback_button()  # type: ignore[misc]
            def on_button(_client: PywaWhatsApp, _button: Any) -> None:
                self._count(PYWA)

            @wa.on_message_status()  # type: ignore[misc]
            def on_status(_client: PywaWhatsApp, _status: Any) -> None:
                self._count(PYWA)

    def _waflow_app(
        self, name: str, fake: FakeGraphAPI, store: Store, *, statuses: bool
    ) -> waflow.App:
        app = waflow.App(app_secret=fake.app_secret, verify_token=VERIFY_TOKEN, store=store)

        @app.message()
        async def on_message(_event: Any, _ctx: Any) -> None:
            self._count(name)

        if statuses:

            @app.router.status()
            async def on_status(_event: Any, _ctx: Any) -> None:
                self._count(name)

        return app

    def calls(self, deliveries: Sequence[Delivery]) -> dict[str, AsyncCall]:
        """One call per contender, each walking ``deliveries`` (cycling) on its own."""
        return {
            PYWA: self._pywa_call(itertools.cycle(deliveries)),
            PARSE_ONLY: self._parse_only_call(itertools.cycle(deliveries)),
            **{
                name: self._waflow_call(app, itertools.cycle(deliveries))
                for name, app in self.apps.items()
            },
        }

    def _pywa_call(self, deliveries: Iterator[Delivery]) -> AsyncCall:
        wa = self.pywa

        async def deliver() -> None:
            delivery = next(deliveries)
            refused = wa.webhook_update_validator(delivery.body, delivery.signature)
            require(refused is None, f"pywa refused a signed body: {refused}")
            _answer, status = wa.webhook_update_handler(delivery.body)
            require(status == 200, f"pywa answered {status}")

        return deliver

    def _parse_only_call(self, deliveries: Iterator[Delivery]) -> AsyncCall:
        # The least any design that hands out waflow's typed events must do: verify, parse,
        # skip ids seen before (in process memory, like pywa), call the handler. No inbox: a
        # handler that raises loses its event, and a restart forgets every id.
        seen = self.seen_ids  # one per contender set: kept across calls(), as pywa's LRU is
        secret = self.app_secret

        async def on_event(_event: Any) -> None:
            self._count(PARSE_ONLY)

        async def deliver() -> None:
            delivery = next(deliveries)
            verify_signature(delivery.body, delivery.signature, secret)
            for event in parse(delivery.body):
                key = event.dedupe_key
                if key not in seen:
                    seen.add(key)
                    await on_event(event)

        return deliver

    @staticmethod
    def _waflow_call(app: waflow.App, deliveries: Iterator[Delivery]) -> AsyncCall:
        async def deliver() -> None:
            response = await app.dispatch(next(deliveries).request)
            require(response.status == 200, f"waflow answered {response.status}: {response.text}")

        return deliver

    async def close(self) -> None:
        for store in self.stores.values():
            await store.close()


def check_counts(group: str, counts: dict[str, int], expected: int) -> None:
    """Require that every contender's handlers ran once per distinct event."""
    for name, count in counts.items():
        require(
            count == expected,
            f"{group}: {name}'s handlers ran {count} times for {expected} events ({counts})",
        )


async def measure_group(
    group: str,
    fake: FakeGraphAPI,
    deliveries: list[Delivery],
    settings: Settings,
    directory: Path,
    *,
    statuses: bool,
) -> dict[str, Timing]:
    """Time the contenders on ``deliveries`` (one per call, none delivered twice)."""
    calls = settings.warmup + settings.repeats * settings.iterations
    require(len(deliveries) >= calls, f"{group}: {len(deliveries)} bodies for {calls} calls")
    folder = directory / group
    folder.mkdir()
    contenders = Contenders(fake, folder, statuses=statuses)
    try:
        print(f"{NAME}: {group} …", file=sys.stderr, flush=True)
        timings = await time_async(contenders.calls(deliveries), settings)
        check_counts(group, contenders.counts, sum(d.events for d in deliveries[:calls]))
        return timings
    finally:
        await contenders.close()


async def measure_duplicates(
    fake: FakeGraphAPI, deliveries: list[Delivery], settings: Settings, directory: Path
) -> dict[str, Timing]:
    """Time redeliveries of bodies every contender has already handled once."""
    folder = directory / "duplicates"
    folder.mkdir()
    contenders = Contenders(fake, folder, statuses=False)
    try:
        for call in contenders.calls(deliveries).values():
            for _ in deliveries:
                await call()  # the first delivery of each: handled
        first = sum(d.events for d in deliveries)
        check_counts("duplicates, first delivery", contenders.counts, first)
        print(f"{NAME}: duplicates …", file=sys.stderr, flush=True)
        timings = await time_async(contenders.calls(deliveries), settings)
        check_counts("duplicates", contenders.counts, first)  # redeliveries handled by nobody
        return timings
    finally:
        await contenders.close()


#: The steps of ``App.dispatch`` for a POST, as the stage breakdown times them one by one.
WAFLOW_STAGES = (
    "verify the signature",
    "parse into typed events",
    "record in the inbox and lease (dedupe; one store call)",
    "answer (200, JSON body)",
    "handle: run the handler, mark done",
    "drain the outbox (nothing queued)",
)
PYWA_STAGES = (
    "webhook_update_validator",
    "webhook_update_handler: hash, json.loads, dedupe, build the update, run the handler",
)


async def stage_times(
    fake: FakeGraphAPI, deliveries: Sequence[Delivery], rounds: int, directory: Path
) -> dict[str, dict[str, float]]:
    """Mean µs per delivery of each step of pywa's and waflow's ingest, median over ``rounds``.

    waflow's steps are what ``App.dispatch`` does for a POST, called one by one through the
    app's public parts (``webhooks``, ``app.inbox``, ``app.outbox``), timed with the wall clock.
    """
    contenders = Contenders(fake, directory, statuses=False)
    per_round = len(deliveries) // rounds
    timed = (PYWA, *APPS)
    samples: dict[str, dict[str, list[float]]] = {name: {} for name in (*timed, FLOOR)}
    try:
        for number in range(rounds):
            chunk = deliveries[number * per_round : (number + 1) * per_round]
            for name in (*timed, FLOOR):
                if name == PYWA:
                    totals = _pywa_stages(contenders.pywa, chunk)
                elif name == FLOOR:
                    totals = await _floor_stages(fake.app_secret, chunk)
                else:
                    totals = await _waflow_stages(contenders.apps[name], fake.app_secret, chunk)
                for stage, nanoseconds in totals.items():
                    samples[name].setdefault(stage, []).append(nanoseconds / len(chunk) / 1_000)
        timed_counts = {name: contenders.counts[name] for name in timed}
        check_counts("stages", timed_counts, rounds * per_round)
    finally:
        await contenders.close()
    return {
        name: {stage: statistics.median(values) for stage, values in stages.items()}
        for name, stages in samples.items()
    }


def _pywa_stages(wa: PywaWhatsApp, deliveries: Sequence[Delivery]) -> dict[str, int]:
    totals = dict.fromkeys(PYWA_STAGES, 0)
    clock = time.perf_counter_ns
    for delivery in deliveries:
        t0 = clock()
        refused = wa.webhook_update_validator(delivery.body, delivery.signature)
        t1 = clock()
        _answer, status = wa.webhook_update_handler(delivery.body)
        t2 = clock()
        require(refused is None and status == 200, "pywa refused a delivery")
        for stage, nanoseconds in zip(PYWA_STAGES, (t1 - t0, t2 - t1), strict=True):
            totals[stage] += nanoseconds
    return totals


async def _waflow_stages(
    app: waflow.App, secret: str, deliveries: Sequence[Delivery]
) -> dict[str, int]:
    totals = dict.fromkeys(WAFLOW_STAGES, 0)
    clock = time.perf_counter_ns
    for delivery in deliveries:
        t0 = clock()
        verify_signature(delivery.body, delivery.signature, secret)
        t1 = clock()
        events = parse(delivery.body, received_at=app.clock.now())
        t2 = clock()
        receipt = await app.inbox.receive(events)
        t3 = clock()
        # What App.dispatch answers: its body encoded once per (events, new) and reused.
        waflow.WebhookResponse(200, accepted_body(len(events), len(receipt.new)), JSON_HEADERS)
        t4 = clock()
        await app.inbox.handle_new(receipt)
        t5 = clock()
        await app.outbox.drain()
        t6 = clock()
        require(all(receipt.fresh), "waflow took a new event for a duplicate")
        steps = (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5)
        for stage, nanoseconds in zip(WAFLOW_STAGES, steps, strict=True):
            totals[stage] += nanoseconds
    return totals


#: The least any design must spend per text delivery to hand a handler a pydantic-typed event
#: (each step the cheapest way at hand), and the least a durable inbox adds: one store call.
FLOOR_STAGES = (
    "HMAC-SHA256 of the body, compared with the header",
    "JSON decode (pydantic-core's parser, the fastest at hand)",
    "one pydantic validation of the message (its fields prepared untimed)",
    "one store call recording the event (MemoryStore.inbox_add)",
)
FLOOR = "floor"


async def _floor_stages(secret: str, deliveries: Sequence[Delivery]) -> dict[str, int]:
    """Time the floor's steps on ``deliveries``: each alone, with nothing around it."""
    totals = dict.fromkeys(FLOOR_STAGES, 0)
    key = secret.encode()
    store = MemoryStore()
    clock = time.perf_counter_ns
    for delivery in deliveries:
        # Untimed: the dict the validation takes, as parse builds it for a one-message body.
        body = json.loads(delivery.body)
        value = body["entry"][0]["changes"][0]["value"]
        message = value["messages"][0]
        contact = value["contacts"][0]
        fields = {
            **message,
            "phone_number_id": value["metadata"]["phone_number_id"],
            "sender_id": message["from"],
            "profile_name": contact["profile"]["name"],
            "wa_id": contact["wa_id"],
            "user_id": contact["user_id"],
            "raw": message,
        }
        t0 = clock()
        digest = hmac.new(key, delivery.body, hashlib.sha256).hexdigest()
        matches = hmac.compare_digest("sha256=" + digest, delivery.signature)
        t1 = clock()
        from_json(delivery.body, cache_strings="keys")
        t2 = clock()
        event = WhatsAppMessage.model_validate(fields)
        t3 = clock()
        item = NewInboxItem(event.dedupe_key, event.sender_id, {"object": event})
        t4 = clock()
        added = await store.inbox_add([item], event.timestamp)
        t5 = clock()
        require(matches and added == [True], "the floor's steps did not do their job")
        steps = (t1 - t0, t2 - t1, t3 - t2, t5 - t4)
        for stage, nanoseconds in zip(FLOOR_STAGES, steps, strict=True):
            totals[stage] += nanoseconds
    await store.close()
    return totals


def stage_table(stages: dict[str, dict[str, float]]) -> Table:
    """The stage breakdown as a table: one column per contender, µs per delivery."""
    waflow_names = list(APPS)
    rows = [
        [stage, f"{stages[PYWA][stage]:.1f}", *("" for _ in waflow_names)] for stage in PYWA_STAGES
    ]
    rows += [
        [stage, "", *(f"{stages[name][stage]:.1f}" for name in waflow_names)]
        for stage in WAFLOW_STAGES
    ]
    rows.append(
        [
            "**total**",
            f"**{sum(stages[PYWA].values()):.1f}**",
            *(f"**{sum(stages[name].values()):.1f}**" for name in waflow_names),
        ]
    )
    return Table(
        title="Where the time goes (texts; wall-clock µs per delivery, each step timed alone)",
        columns=["step", PYWA, *APPS],
        rows=rows,
        numeric=[False, True, *(True for _ in APPS)],
    )


def floor_table(stages: dict[str, dict[str, float]]) -> Table:
    """The floor's steps, their sums, and the best waflow ÷ pywa any design on that floor reaches."""
    floor = stages[FLOOR]
    pywa = sum(stages[PYWA].values())
    typed = sum(floor[stage] for stage in FLOOR_STAGES[:3])
    durable = typed + floor[FLOOR_STAGES[3]]
    rows = [[stage, f"{floor[stage]:.1f}", ""] for stage in FLOOR_STAGES]
    rows += [
        ["pywa's whole path (validator and handler, the table above)", f"{pywa:.1f}", "1.00"],
        [
            f"{TARGET:g} × pywa's rate: the time left per event",
            f"{pywa / TARGET:.1f}",
            f"{TARGET:.2f}",
        ],
        [
            "**typed event, nothing else** (first three steps)",
            f"**{typed:.1f}**",
            f"{pywa / typed:.2f}",
        ],
        ["**and recorded** (all four steps)", f"**{durable:.1f}**", f"{pywa / durable:.2f}"],
    ]
    return Table(
        title=(
            "The floor (texts; µs per delivery, each step timed alone): what any design spends to "
            "hand a handler a validated pydantic event, and the most events/s it could reach "
            "against pywa with no parse walk, dedupe, routing, answer or settling"
        ),
        columns=["step", "µs", "best waflow ÷ pywa"],
        rows=rows,
        numeric=[False, True, True],
    )


NOTES = {
    PYWA: "WhatsApp(server=None).webhook_update_validator + webhook_update_handler",
    PARSE_ONLY: "verify_signature + parse + a set of seen ids + the handler; no inbox",
    MEMORY: "App(store=MemoryStore()).dispatch",
    SQLITE_FULL: "App(store=SQLiteStore(path)).dispatch; synchronous=FULL (default)",
    SQLITE_NORMAL: 'App(store=SQLiteStore(path, synchronous="NORMAL")).dispatch',
}


def measure(settings: Settings) -> BenchResult:
    monitor = LoadMonitor()
    calls = settings.warmup + settings.repeats * settings.iterations
    bodies = Bodies()
    texts = bodies.texts(calls)
    mix = bodies.mix(calls)
    pool = bodies.texts(min(DUPLICATE_POOL, calls))
    stage_rounds = settings.repeats
    staged = bodies.texts(stage_rounds * min(settings.iterations, 1_000))

    async def run() -> tuple[dict[str, dict[str, Timing]], dict[str, dict[str, float]], str]:
        with tempfile.TemporaryDirectory(prefix="waflow-bench-") as folder:
            directory = Path(folder)
            fake = bodies.fake
            timings = {
                "texts": await measure_group(
                    "texts", fake, texts, settings, directory, statuses=False
                ),
                "mix": await measure_group("mix", fake, mix, settings, directory, statuses=True),
                "duplicates": await measure_duplicates(fake, pool, settings, directory),
            }
            print(f"{NAME}: stages …", file=sys.stderr, flush=True)
            staging = directory / "stages"
            staging.mkdir()
            stages = await stage_times(fake, staged, stage_rounds, staging)
            return timings, stages, filesystem_of(directory)

    timings, stages, filesystem = asyncio.run(run())
    groups = [
        Group(name, PYWA, [Row(c, timing[c], NOTES[c]) for c in CONTENDERS])
        for name, timing in timings.items()
    ]
    ratios = []
    for group in groups:
        slower = group.row(PYWA)
        for name in (PARSE_ONLY, *APPS):
            target = TARGET if (group.name, name) == ("texts", MEMORY) else None
            ratios.append(
                ratio(
                    f"{name} ÷ pywa, events/s ({group.name})",
                    slower,
                    group.row(name),
                    target,
                    at_least=True,
                )
            )
    return BenchResult(
        benchmark=NAME,
        title=TITLE,
        description=(__doc__ or "").split("\n", 1)[0],
        settings=settings,
        groups=groups,
        ratios=ratios,
        rate_unit="event",
        tables=[stage_table(stages), floor_table(stages)],
        notes=[
            "One call = one signed webhook POST holding one event, every body distinct (new "
            "message ids) except in `duplicates`, which redelivers "
            f"{len(pool)} bodies every contender has handled once. "
            f"{CUSTOMERS} customers; `mix` is half delivered/read statuses, a quarter texts, a "
            "quarter button replies.",
            "Handlers are trivial (they count); after timing, every contender's count equalled "
            "the number of distinct events (and did not move in `duplicates`).",
            "A ratio is how many times more events per second waflow handles than pywa: pywa's "
            "time per event over waflow's (above 1: waflow is faster).",
            f"SQLite files in a fresh temporary directory on {filesystem}; "
            "synchronous=FULL flushes the WAL to disk at every commit, NORMAL only at "
            "checkpoints.",
            f"Contenders take turns every {settings.chunk} calls within each round, in an order "
            "rotated at every turn.",
        ],
        environment=environment(
            ["waflow", "pywa", "pydantic", "pydantic-core", "httpx"], load=monitor.result()
        ),
    )


def profile(calls: int) -> None:
    """Where waflow's dispatch spends its time, with each store (cProfile, deterministic)."""
    bodies = Bodies()
    packages = ("waflow", "pywa", "pydantic_core", "pydantic", "sqlite3", "json", "asyncio")

    async def run() -> None:
        with tempfile.TemporaryDirectory(prefix="waflow-bench-") as folder:
            contenders = Contenders(bodies.fake, Path(folder), statuses=False)
            try:
                for name in CONTENDERS:
                    deliveries = bodies.texts(calls + 200)
                    call = contenders.calls(deliveries)[name]
                    for _ in range(200):
                        await call()
                    profiler = cProfile.Profile()
                    profiler.enable()
                    for _ in range(calls):
                        await call()
                    profiler.disable()
                    print(f"\n== {name}: {calls:,} text deliveries ==")
                    print_profile(profiler, calls, packages)
            finally:
                await contenders.close()

    asyncio.run(run())


def main() -> int:
    logging.getLogger("waflow").setLevel(logging.WARNING)
    arguments = bench_arguments((__doc__ or "").split("\n", 1)[0])
    settings = settings_from(arguments, Settings(repeats=7, iterations=1_000, warmup=200, chunk=50))
    if arguments.profile:
        profile(settings.iterations)
        return 0
    result = measure(settings)
    if arguments.output is not None:
        write_result(result, arguments.output)
    else:
        print(render_markdown(result.as_dict()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
