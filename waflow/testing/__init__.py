"""Fakes of Meta's Graph API and a frozen clock, for waflow's tests and for yours.

``FakeGraphAPI`` plugs into any waflow client as its HTTP transport; ``FrozenClock`` makes time
(retries, pacing, 24-hour windows) move only when a test says so.
"""

from waflow.testing.clock import FrozenClock
from waflow.testing.fake_graph import (
    FakeGraphAPI,
    RecordedRequest,
    RecordedSenderAction,
    SentLog,
    SentMessage,
)

__all__ = [
    "FakeGraphAPI",
    "FrozenClock",
    "RecordedRequest",
    "RecordedSenderAction",
    "SentLog",
    "SentMessage",
]
