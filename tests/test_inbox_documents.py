"""Every kind of event survives the inbox's stored form (what SQLite and Redis keep).

The memory store keeps the event objects themselves, so tests on it never rebuild an event from
its JSON; this suite does, for every webhook example of Meta's spec and the Messenger corpus.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.spec import WEBHOOK_PATH, request_examples
from waflow.events import Event
from waflow.inbox import _deserialize, _serialize
from waflow.testing import FakeGraphAPI
from waflow.webhooks import parse

CORPUS = Path(__file__).parent / "webhook_corpus" / "messenger"


def _round_trip(event: Event) -> Event:
    stored = json.loads(json.dumps(_serialize(event)))  # exactly what a durable store keeps
    return _deserialize(stored)


def _bodies() -> dict[str, dict[str, Any]]:
    bodies = {f"spec:{name}": body for name, body in request_examples(WEBHOOK_PATH).items()}
    for path in sorted(CORPUS.glob("*.json")):
        bodies[f"messenger:{path.stem}"] = json.loads(path.read_text(encoding="utf-8"))
    # statuses, which the spec's examples lack, from the inbound factories
    inbound = FakeGraphAPI(seed=3).inbound
    wamid = "wamid.HBgLNDkxNTExMjM0NTY3OBUCABEYEjQ2"
    bodies["factory:delivered"] = inbound.whatsapp_status(wamid, "delivered", "4915112345678")
    bodies["factory:failed"] = inbound.whatsapp_status(wamid, "failed", "4915112345678")
    return bodies


def test_every_event_of_every_example_comes_back_equal() -> None:
    bodies = _bodies()
    assert len(bodies) >= 16 + 10
    kinds = set()
    for name, body in bodies.items():
        for event in parse(body):
            back = _round_trip(event)
            assert type(back) is type(event), name
            assert back == event, name
            assert back.dedupe_key == event.dedupe_key and back.raw == event.raw, name
            kinds.add(type(event).__name__)
    # both channels' main kinds were among them
    assert {"WhatsAppMessage", "WhatsAppStatus", "MessengerMessage", "MessengerPostback"} <= kinds


@pytest.mark.parametrize("text", ["plain", "ünïcödé 🚲", ""])
def test_texts_come_back_as_written(text: str) -> None:
    fake = FakeGraphAPI(seed=3)
    [event] = parse(fake.inbound.whatsapp_text("4915112345678", text or "x"))
    assert _round_trip(event) == event
