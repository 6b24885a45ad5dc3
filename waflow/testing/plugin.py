"""waflow's pytest plugin: fixtures to test a bot built with waflow, on the fakes, offline.

It is registered under the ``pytest11`` entry point ``waflow``, so pytest loads it in every
project where ``waflow[testing]`` is installed; nothing to add to a conftest. Turn it off with
``pytest -p no:waflow``. Each fixture is function-scoped (every test starts afresh), and a
project's conftest can override any of them by defining a fixture of the same name (for
example a ``frozen_clock`` that starts at another date).

Fixtures:

``frozen_clock``
    A :class:`~waflow.testing.FrozenClock` at 2026-03-02 09:00 UTC. Time moves only with
    ``frozen_clock.advance(...)`` (or ``customer.waits(...)``).
``fake_graph``
    A :class:`~waflow.testing.FakeGraphAPI` on ``frozen_clock``, seeded, new for every test: the
    Graph API your app's clients talk to (``fake_graph.async_whatsapp()``,
    ``fake_graph.async_messenger()``), with ``fake_graph.sent``, ``fake_graph.inbound``,
    ``fake_graph.templates``, ``fake_graph.catalog`` and the status progressions
    (``fake_graph.deliver(...)``, ``fake_graph.read(...)``).
``memory_store``
    A :class:`~waflow.store.MemoryStore`, the in-memory store for an app or an engine.
``waflow_app``
    A factory of apps wired to the three above: ``waflow_app(router=..., engine=..., **options)``
    returns an :class:`~waflow.App` that verifies signatures with ``fake_graph.app_secret``,
    keeps its inbox in ``memory_store``, runs on ``frozen_clock`` and replies through clients of
    ``fake_graph`` on both channels; ``options`` are passed on to ``App`` and win.
``waflow_customer``
    A factory of :class:`~waflow.testing.Customer`\\ s talking to an app through ``fake_graph``:
    ``waflow_customer(app, **options)`` (``wa_id=``, ``psid=``, ``name=``, … as ``Customer``
    takes them). When a test that made customers fails, its report gets a section with each
    customer's conversation (:meth:`Customer.transcript <waflow.testing.Customer.transcript>`).

A test, with pytest-asyncio (``asyncio_mode = "auto"``)::

    from waflow import filters as F

    async def test_greets(waflow_app, waflow_customer):
        app = waflow_app()

        @app.message(F.text("Hallo"))
        async def hello(event, ctx):
            ctx.reply("Hallo! Wie kann ich helfen?")

        customer = waflow_customer(app)
        await customer.whatsapp.says("Hallo")
        assert customer.last_reply.text == "Hallo! Wie kann ich helfen?"

The module itself imports only pytest and the standard library; the fixtures import what they use
when first requested, and nothing optional (redis, uvicorn) is ever needed. (Importing it still
imports the ``waflow`` package, whose ``__init__`` loads the core.)
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any, Protocol

import pytest

if TYPE_CHECKING:
    from waflow.app import App
    from waflow.flows.engine import Engine
    from waflow.routing import Router
    from waflow.store import MemoryStore
    from waflow.testing.clock import FrozenClock
    from waflow.testing.customer import Customer
    from waflow.testing.fake_graph import FakeGraphAPI

__all__ = [
    "AppFactory",
    "CustomerFactory",
    "fake_graph",
    "frozen_clock",
    "memory_store",
    "waflow_app",
    "waflow_customer",
]


# The customers a test made, kept on its item so that a failure report can show their talk.
_CUSTOMERS = pytest.StashKey[list["Customer"]]()


class AppFactory(Protocol):
    """The type of the ``waflow_app`` fixture (for annotating a test's argument)."""

    def __call__(
        self, *, router: Router | None = None, engine: Engine | None = None, **options: Any
    ) -> App:
        """An :class:`~waflow.App` wired to ``fake_graph``, ``memory_store`` and ``frozen_clock``."""
        ...


class CustomerFactory(Protocol):
    """The type of the ``waflow_customer`` fixture (for annotating a test's argument)."""

    def __call__(self, app: App, **options: Any) -> Customer:
        """A :class:`~waflow.testing.Customer` of ``app``, talking through ``fake_graph``."""
        ...


@pytest.fixture
def frozen_clock() -> FrozenClock:
    """A :class:`~waflow.testing.FrozenClock` at 2026-03-02 09:00 UTC, new for every test."""
    from waflow.testing.clock import FrozenClock

    return FrozenClock()


@pytest.fixture
def fake_graph(frozen_clock: FrozenClock) -> FakeGraphAPI:
    """A :class:`~waflow.testing.FakeGraphAPI` on ``frozen_clock`` (seed 0), new for every test."""
    from waflow.testing.fake_graph import FakeGraphAPI

    return FakeGraphAPI(clock=frozen_clock)


@pytest.fixture
def memory_store() -> MemoryStore:
    """An empty :class:`~waflow.store.MemoryStore`."""
    from waflow.store.memory import MemoryStore

    return MemoryStore()


@pytest.fixture
def waflow_app(
    fake_graph: FakeGraphAPI, frozen_clock: FrozenClock, memory_store: MemoryStore
) -> AppFactory:
    """A factory of :class:`~waflow.App`\\ s on the fakes (see the module's documentation)."""
    from waflow.app import App

    def make(*, router: Router | None = None, engine: Engine | None = None, **options: Any) -> App:
        defaults: dict[str, Any] = {
            "app_secret": fake_graph.app_secret,
            "store": memory_store,
            "clock": frozen_clock,
            "whatsapp": fake_graph.async_whatsapp(),
            "messenger": fake_graph.async_messenger(),
        }
        return App(router=router, engine=engine, **{**defaults, **options})

    return make


@pytest.fixture
def waflow_customer(fake_graph: FakeGraphAPI, request: pytest.FixtureRequest) -> CustomerFactory:
    """A factory of :class:`~waflow.testing.Customer`\\ s: ``waflow_customer(app, **options)``."""
    from waflow.testing.customer import Customer

    customers = request.node.stash.setdefault(_CUSTOMERS, [])

    def make(app: App, **options: Any) -> Customer:
        customer = Customer(app, fake_graph, **options)
        customers.append(customer)
        return customer

    return make


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Add the conversation of every customer a failed test made to its report."""
    report = yield
    if report.when == "call" and report.failed:
        for customer in item.stash.get(_CUSTOMERS, []):
            transcript = customer.transcript()
            if transcript:
                report.sections.append((f"waflow: conversation of {customer!r}", transcript))
    return report
