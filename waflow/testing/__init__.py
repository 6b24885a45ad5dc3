"""Fakes of Meta's Graph API and a frozen clock, for waflow's tests and for yours.

``FakeGraphAPI`` plugs into any waflow client as its HTTP transport; ``FrozenClock`` makes time
(retries, pacing, 24-hour windows) move only when a test says so; ``Inbound`` (``fake.inbound``)
builds the webhooks Meta would send, of both channels, signed with the fake's app secret;
``FakeCatalog`` (``fake.catalog``) is the fake's Commerce catalog; ``FakeTemplates``
(``fake.templates``) holds its message templates and checks template sends against them.
"""

from waflow.testing.clock import FrozenClock
from waflow.testing.fake_catalog import FakeCatalog
from waflow.testing.fake_graph import (
    FakeGraphAPI,
    RecordedRequest,
    RecordedSenderAction,
    SentLog,
    SentMessage,
)
from waflow.testing.fake_templates import FakeTemplates
from waflow.testing.inbound import Inbound

__all__ = [
    "FakeCatalog",
    "FakeGraphAPI",
    "FakeTemplates",
    "FrozenClock",
    "Inbound",
    "RecordedRequest",
    "RecordedSenderAction",
    "SentLog",
    "SentMessage",
]
