"""Fuzzing App.dispatch: whatever arrives, it answers (never raises) and never with a 5xx.

Bodies are signed with the app secret so they reach the parser. A parser bug would still be
answered 400 by the app's safety net, so these tests also require that nothing was logged at ERROR:
every refusal must be a deliberate one.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.spec import WEBHOOK_PATH, request_examples
from waflow.app import App, WebhookRequest
from waflow.store import MemoryStore
from waflow.testing import FakeGraphAPI
from waflow.webhooks import sign

SECRET = "fuzz-secret"

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=30,
)


def _app() -> App:
    fake = FakeGraphAPI()
    app = App(
        app_secret=SECRET,
        store=MemoryStore(),
        whatsapp=fake.async_whatsapp(),
        messenger=fake.async_messenger(),
    )

    @app.on()
    async def echo(event: Any, ctx: Any) -> None:
        if event.kind == "message" and getattr(event, "text", None):
            ctx.reply("ok")

    return app


def _dispatch(app: App, body: bytes, *, sign_it: bool = True) -> int:
    headers = {"X-Hub-Signature-256": sign(body, SECRET)} if sign_it else {}
    response = asyncio.run(app.dispatch(WebhookRequest("POST", body, headers)))
    return response.status


def _check(status: int, caplog: pytest.LogCaptureFixture) -> None:
    assert status < 500
    errors = [
        r for r in caplog.records if r.levelno >= logging.ERROR and r.name.startswith("waflow")
    ]
    assert errors == [], [r.getMessage() for r in errors]


FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@FUZZ
@given(body=json_values)
def test_random_json_never_fails(body: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.clear()
    _check(_dispatch(_app(), json.dumps(body).encode()), caplog)


@FUZZ
@given(body=st.binary(max_size=2000))
def test_random_bytes_never_fail(body: bytes, caplog: pytest.LogCaptureFixture) -> None:
    caplog.clear()
    app = _app()
    _check(_dispatch(app, body), caplog)
    _check(_dispatch(app, body, sign_it=False), caplog)


def _examples() -> list[dict[str, Any]]:
    return list(request_examples(WEBHOOK_PATH).values())


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, (*prefix, index))
    return found


def _mutate(body: dict[str, Any], path: tuple[Any, ...], replacement: Any) -> dict[str, Any]:
    mutated = copy.deepcopy(body)
    if not path:
        return {"object": mutated.get("object"), "entry": replacement}
    target: Any = mutated
    for step in path[:-1]:
        target = target[step]
    if replacement == "__delete__" and isinstance(target, dict):
        del target[path[-1]]
    else:
        target[path[-1]] = replacement
    return mutated


@FUZZ
@given(data=st.data(), replacement=json_values | st.just("__delete__"))
def test_mutated_spec_examples_never_fail(
    data: st.DataObject, replacement: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.clear()
    body = data.draw(st.sampled_from(_examples()))
    path = data.draw(st.sampled_from(_paths(body)))
    _check(_dispatch(_app(), json.dumps(_mutate(body, path, replacement)).encode()), caplog)


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 50_000 + b"]" * 50_000,
        b'{"object": "page", "entry": ' + b"[" * 20_000 + b"]" * 20_000 + b"}",
        json.dumps(
            {"object": "page", "entry": [{"messaging": [{"message": {"text": "x" * 900_000}}]}]}
        ).encode(),
        json.dumps(
            {
                "object": "whatsapp_business_account",
                "entry": [
                    {
                        "changes": [
                            {
                                "field": "messages",
                                "value": {
                                    "messages": [
                                        {
                                            "from": "1",
                                            "id": f"w{i}",
                                            "timestamp": "1",
                                            "type": "text",
                                            "text": {"body": "hi"},
                                        }
                                        for i in range(2000)
                                    ]
                                },
                            }
                        ]
                    }
                ],
            }
        ).encode(),
        b"x" * (2 * 1024 * 1024),
    ],
    ids=["deep-array", "deep-entry", "huge-text", "many-items", "oversized"],
)
def test_huge_and_deep_bodies_never_fail(body: bytes, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        _check(_dispatch(_app(), body), caplog)
