"""waflow's pytest plugin, used by a user's project exactly as after ``pip install waflow[testing]``.

Each test writes a small project (a ``pyproject.toml`` with pytest-asyncio's auto mode and one test
file, no conftest, no ``pytest_plugins``) into pytester's temporary directory and runs pytest on
it. The inner run is in-process (``runpytest_inprocess``): it is fast, it loads the plugin the way
any pytest run does (through the ``pytest11`` entry point of the installed waflow), and it stays
under this session's network guard (``tests/network_guard.py`` patches the socket module for the
whole process), so the inner tests cannot reach the network either. The inner runs leave out the
cache and hypothesis's plugin: pytester forgets the modules an inner run imported, and
hypothesis's plugin would import (and assertion-rewrite) all of hypothesis again in every run.
"""

from __future__ import annotations

import socket
import textwrap
from importlib.metadata import entry_points

import pytest

import waflow.testing.plugin

# The plugin too, as in test_customer_driver.py: pyproject.toml turns off its entry point (for
# coverage), and this module must not depend on which other modules are collected.
pytest_plugins = ["pytester", "waflow.testing.plugin"]

PYPROJECT = """
[tool.pytest.ini_options]
asyncio_mode = "auto"
asyncio_default_fixture_loop_scope = "function"
"""

BOT = '''
"""A shop's tests of its bot: only waflow's fixtures, no conftest."""

from waflow import App, Router
from waflow import filters as F
from waflow.flows import Flow, State
from waflow.flows.engine import Engine
from waflow.store import MemoryStore
from waflow.whatsapp import build as wa

router = Router(name="shop")


@router.message(F.text("Hallo", ignore_case=True))
async def hello(event, ctx):
    ctx.reply(wa.buttons(event.wa_id, "Möchtest du bestellen?", {"order": "Ja", "later": "Später"}))


@router.message(F.payload("order"))
async def order(event, ctx):
    ctx.reply("Super, hier ist unser Katalog.")


class Greeting(Flow):
    name = "greeting"

    new = State(initial=True)
    greeted = State()

    @new.on(F.kind("message"), to="greeted")
    async def welcome(self, event, ctx):
        ctx.reply("Willkommen!")

    @greeted.on(F.kind("message"), to=None)
    async def again(self, event, ctx):
        ctx.reply("Schön, dich wiederzusehen.")


def make_app(fake_graph, frozen_clock):
    return App(
        app_secret=fake_graph.app_secret,
        store=MemoryStore(),
        router=router,
        clock=frozen_clock,
        whatsapp=fake_graph.async_whatsapp(),
        messenger=fake_graph.async_messenger(),
    )


async def test_hello_offers_to_order(fake_graph, frozen_clock, waflow_customer):
    customer = waflow_customer(make_app(fake_graph, frozen_clock))
    replies = await customer.whatsapp.says("Hallo")
    assert replies.last.interactive_type == "button"
    await customer.whatsapp.taps("Ja")
    assert customer.last_reply.text == "Super, hier ist unser Katalog."


async def test_the_reply_is_delivered(fake_graph, frozen_clock, waflow_customer):
    app = make_app(fake_graph, frozen_clock)
    customer = waflow_customer(app)
    await customer.whatsapp.says("Hallo")
    status = fake_graph.deliver(customer.last_reply)
    response = await app.dispatch(fake_graph.webhook_request(status))
    assert response.status == 200
    record = await app.store.message_record(customer.last_reply.message_id)
    assert record.status == "delivered"


async def test_the_flow_greets_once(frozen_clock, memory_store, waflow_app, waflow_customer):
    engine = Engine(Greeting, store=memory_store, clock=frozen_clock)
    customer = waflow_customer(waflow_app(engine=engine), name="Max Muster")
    await customer.messenger.says("Hi")
    await customer.messenger.says("Hi again")
    assert customer.replies.texts() == ["Willkommen!", "Schön, dich wiederzusehen."]


def test_every_test_gets_a_fresh_fake_on_the_frozen_clock(fake_graph, frozen_clock):
    assert fake_graph.clock is frozen_clock
    assert fake_graph.sent == []
    assert frozen_clock.now().isoformat() == "2026-03-02T09:00:00+00:00"
'''

FAILING = """
async def test_taps_a_button_the_bot_never_offered(fake_graph, frozen_clock, waflow_customer):
    customer = waflow_customer(make_app(fake_graph, frozen_clock))
    await customer.whatsapp.says("Hallo")
    await customer.whatsapp.taps("Nein")


async def test_expects_another_answer(fake_graph, frozen_clock, waflow_customer):
    customer = waflow_customer(make_app(fake_graph, frozen_clock))
    await customer.whatsapp.says("Hallo")
    await customer.whatsapp.taps("Ja")
    assert customer.last_reply.text == "Hier ist dein Warenkorb."
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    # The inner run must stay offline: it runs in this process, under the session's guard.
    assert socket.getaddrinfo.__name__ == "guarded_getaddrinfo"
    pytester.makepyprojecttoml(textwrap.dedent(PYPROJECT))
    return pytester


def run(project: pytest.Pytester, *args: str) -> pytest.RunResult:
    return project.runpytest_inprocess("-p", "no:cacheprovider", "-p", "no:hypothesispytest", *args)


def test_a_users_project_drives_its_bot_through_the_plugin(project: pytest.Pytester) -> None:
    project.makepyfile(test_bot=BOT)
    result = run(project)
    result.assert_outcomes(passed=4)


def test_a_failing_user_test_explains_itself(project: pytest.Pytester) -> None:
    project.makepyfile(test_bot=BOT + FAILING)
    result = run(project)
    result.assert_outcomes(passed=4, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*TapError: Lena Berg cannot tap 'Nein' on WhatsApp. What the bot's messages to "
            "4915112345678 offer, newest first:",
            "*- 'Ja' (reply button, payload 'order')",
            "*- 'Später' (reply button, payload 'later')",
        ]
    )
    # The report of a failed test shows each customer's conversation.
    result.stdout.fnmatch_lines(
        [
            "*waflow: conversation of Customer('Lena Berg'*",
            "09:00 Lena Berg (WhatsApp): Hallo",
            "09:00 Bot (WhatsApp): Möchtest du bestellen? [Ja | Später]",
            "09:00 Lena Berg (WhatsApp): taps 'Ja'",
            "09:00 Bot (WhatsApp): Super, hier ist unser Katalog.",
        ]
    )


def test_the_plugin_is_loaded_by_its_entry_point(project: pytest.Pytester) -> None:
    (entry,) = [ep for ep in entry_points(group="pytest11") if ep.name == "waflow"]
    assert entry.value == "waflow.testing.plugin"
    project.makepyfile(
        test_loaded="""
        import waflow.testing.plugin

        def test_loaded(request):
            plugin = request.config.pluginmanager.get_plugin("waflow")
            assert plugin is waflow.testing.plugin
        """
    )
    run(project).assert_outcomes(passed=1)


def test_the_plugin_is_loaded_in_waflows_own_session(request: pytest.FixtureRequest) -> None:
    # Through this module's pytest_plugins (pyproject.toml turns off the entry point, for
    # coverage): its fixtures and hook live alongside waflow's own conftest plugins.
    plugin = request.config.pluginmanager.get_plugin("waflow.testing.plugin")
    assert plugin is waflow.testing.plugin
    assert request.config.pluginmanager.get_plugin("tests.network_guard") is not None


def test_the_plugin_can_be_turned_off(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_off="""
        def test_no_fixture(request):
            assert request.config.pluginmanager.get_plugin("waflow") is None
            assert "fake_graph" not in request.fixturenames
        """
    )
    result = run(project, "-p", "no:waflow")
    result.assert_outcomes(passed=1)
