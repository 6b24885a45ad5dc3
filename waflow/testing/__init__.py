"""Fakes of Meta's Graph API and a frozen clock, for waflow's tests and for yours.

``FakeGraphAPI`` plugs into any waflow client as its HTTP transport; ``FrozenClock`` makes time
(retries, pacing, 24-hour windows) move only when a test says so; ``Inbound`` (``fake.inbound``)
builds the webhooks Meta would send, of both channels, signed with the fake's app secret;
``FakeCatalog`` (``fake.catalog``) is the fake's Commerce catalog; ``FakeTemplates``
(``fake.templates``) holds its message templates and checks template sends against them.
``Customer`` is a scripted customer who talks to an :class:`~waflow.App` on both channels and
reads what the bot answered. The pytest plugin (:mod:`waflow.testing.plugin`, loaded by pytest
through its entry point) provides the fixtures ``frozen_clock``, ``fake_graph``,
``memory_store``, ``waflow_app`` and ``waflow_customer``.
``serve_fake(fake)`` serves a ``FakeGraphAPI`` over real HTTP on loopback, for a bot that runs
as its own process (``WAFLOW_GRAPH_URL``); see :mod:`waflow.testing.http_fake`.
"""

from waflow.testing.clock import FrozenClock
from waflow.testing.customer import Customer, TapError, Tappable
from waflow.testing.fake_catalog import FakeCatalog
from waflow.testing.fake_graph import (
    FakeGraphAPI,
    RecordedRequest,
    RecordedSenderAction,
    SentLog,
    SentMessage,
)
from waflow.testing.fake_templates import FakeTemplates
from waflow.testing.http_fake import FakeGraphServer, serve_fake, serve_fake_async
from waflow.testing.inbound import Inbound

__all__ = [
    "Customer",
    "FakeCatalog",
    "FakeGraphAPI",
    "FakeGraphServer",
    "FakeTemplates",
    "FrozenClock",
    "Inbound",
    "RecordedRequest",
    "RecordedSenderAction",
    "SentLog",
    "SentMessage",
    "TapError",
    "Tappable",
    "serve_fake",
    "serve_fake_async",
]
