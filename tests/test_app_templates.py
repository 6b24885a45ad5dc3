"""The app keeps its clients' template registries current from template webhooks."""

from __future__ import annotations

import pytest

from waflow import App
from waflow.errors import TemplateError
from waflow.store import MemoryStore
from waflow.testing import FakeGraphAPI
from waflow.whatsapp import build
from waflow.whatsapp.templates import TemplateDefinition, TemplateRegistry

SIMPLE = {
    "name": "order_ready",
    "language": "de",
    "category": "UTILITY",
    "components": [
        {
            "type": "BODY",
            "text": "Hallo {{1}}, dein Rad ist fertig.",
            "example": {"body_text": [["Lena"]]},
        }
    ],
}


async def test_a_paused_template_is_refused_locally_after_the_webhook() -> None:
    fake = FakeGraphAPI()
    fake.templates.add(SIMPLE)
    registry = TemplateRegistry()
    registry.add(TemplateDefinition.from_body(SIMPLE))
    wa = fake.async_whatsapp(templates=registry)
    app = App(app_secret=fake.app_secret, store=MemoryStore(), whatsapp=wa)
    message = build.template("4915112345678", "order_ready", "de", body=["Lena"])

    await wa.send(message)  # approved: goes out
    assert fake.sent.last.type == "template"

    webhook = fake.templates.set_status("order_ready", "de", "PAUSED")
    assert (await app.dispatch(fake.webhook_request(webhook))).status == 200
    requests = len(fake.requests)
    with pytest.raises(TemplateError, match="PAUSED"):
        await wa.send(message)
    assert len(fake.requests) == requests  # refused before any request
