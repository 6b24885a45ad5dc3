"""No access token, app secret or verify token ever shows in a repr, a log line or an error text."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.graph_support import CUSTOMER, TOKEN, Flavour, Script, graph_error, sent
from waflow import WhatsApp
from waflow.config import Settings
from waflow.errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    ConfigError,
    MessageValidationError,
    WaflowError,
)
from waflow.testing import FrozenClock

APP_SECRET = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
VERIFY_TOKEN = "verify-me-0123456789"
PAGE_TOKEN = "EAAGpage0SECRET0token0f00ba4"
SECRETS = (TOKEN, APP_SECRET, VERIFY_TOKEN, PAGE_TOKEN)
ENV = {
    "WAFLOW_ACCESS_TOKEN": TOKEN,
    "WAFLOW_PAGE_ACCESS_TOKEN": PAGE_TOKEN,
    "WAFLOW_APP_SECRET": APP_SECRET,
    "WAFLOW_VERIFY_TOKEN": VERIFY_TOKEN,
    "WAFLOW_PHONE_NUMBER_ID": "106540352242922",
}


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


def exception_texts(exc: BaseException) -> Iterator[str]:
    """What a user or a log handler would print of ``exc``: str, repr and the full traceback."""
    yield str(exc)
    yield repr(exc)
    yield "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    if isinstance(exc, APIStatusError):
        yield repr(exc.body)
        yield repr(exc.error_data)
        yield repr((exc.title, exc.user_message))
    if isinstance(exc, APIError):
        yield repr(exc.request)


@pytest.fixture
def captured(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every log record at DEBUG, of waflow and of everything else."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="waflow")
    return caplog


def assert_logs_clean(caplog: pytest.LogCaptureFixture) -> None:
    assert caplog.records, "the scenario should have logged something"
    for record in caplog.records:
        assert_no_secret(record.getMessage())
    assert_no_secret(caplog.text)


# -- reprs ----------------------------------------------------------------------------------------


def test_settings_repr_hides_every_secret() -> None:
    settings = Settings.from_env(ENV)

    for text in (repr(settings), str(settings), settings.model_dump_json(), repr(vars(settings))):
        assert_no_secret(text)
    assert settings.access_token is not None
    assert settings.access_token.get_secret_value() == TOKEN


def test_client_repr_hides_the_token() -> None:
    wa = WhatsApp.from_env(
        ENV, http_client=httpx.Client(transport=httpx.MockTransport(Script(sent())))
    )

    for text in (repr(wa), str(wa), repr(wa.with_options(max_retries=1)), repr(wa.media)):
        assert_no_secret(text)


# -- logs through sends, retries and failures -----------------------------------------------------


FAILURES: dict[str, Callable[[], Script]] = {
    "token echoed by Meta": lambda: Script(
        graph_error(401, 190, message=f"Malformed access token {TOKEN}")
    ),
    "token echoed in user message": lambda: Script(
        graph_error(
            400,
            100,
            message="(#100) Invalid parameter",
            extra={"error_user_msg": f"token {TOKEN} is not valid here"},
            error_data={"details": f"access_token={TOKEN}"},
        )
    ),
    "server error": lambda: Script(httpx.Response(503)),
    "read timeout": lambda: Script(httpx.ReadTimeout("timed out")),
    "connection refused": lambda: Script(httpx.ConnectError("connection refused")),
    "illegal header": lambda: Script(
        httpx.LocalProtocolError(f"Illegal header value b'Bearer {TOKEN}\\n'")
    ),
    "connect error quoting the header": lambda: Script(
        httpx.ConnectError(f"proxy refused Authorization: Bearer {TOKEN}")
    ),
    "throttled to the end": lambda: Script(graph_error(400, 130429)),
}


@pytest.mark.parametrize("flavour", [Flavour("sync"), Flavour("async")], ids=lambda f: f.name)
@pytest.mark.parametrize("failure", list(FAILURES), ids=str)
def test_failures_keep_secrets_out_of_errors_and_logs(
    failure: str, flavour: Flavour, captured: pytest.LogCaptureFixture
) -> None:
    script = FAILURES[failure]()
    wa = flavour.whatsapp(script, max_retries=2)

    with pytest.raises(APIError) as info:
        flavour.run(wa.send_text(CUSTOMER, "Ihr Rad ist fertig!"))
    logging.getLogger("waflow.test").exception("send failed")

    for text in exception_texts(info.value):
        assert_no_secret(text)
    assert_logs_clean(captured)


def test_token_echoed_by_meta_is_redacted_but_the_error_stays_useful() -> None:
    script = Script(graph_error(401, 190, message=f"Malformed access token {TOKEN}"))
    wa = Flavour("sync").whatsapp(script, max_retries=0)

    with pytest.raises(AuthenticationError) as info:
        wa.send_text(CUSTOMER, "Hallo!")

    assert "Malformed access token [redacted]" in str(info.value)
    assert info.value.code == 190


def test_sends_and_retries_log_without_secrets(captured: pytest.LogCaptureFixture) -> None:
    clock = FrozenClock()
    Settings.from_env({**ENV, "WAFLOW_ACESS_TOKEN": TOKEN, "WAFLOW_APP_SECRT": APP_SECRET})
    script = Script(
        graph_error(400, 130429),
        httpx.ConnectError("connection refused"),
        sent(),
        sent(),
        httpx.Response(200, json={"success": True}),
    )
    wa = WhatsApp.from_env(
        ENV,
        http_client=httpx.Client(transport=httpx.MockTransport(script)),
        clock=clock,
        max_retries=3,
    )

    wa.send_text(CUSTOMER, "Hallo!")
    wa.send_text(CUSTOMER, "Noch da?")
    wa.mark_read("wamid.HBgLNDkxNTExMjM0NTY3OBUCABIYFDNBMDNBRjY0")

    assert len(script.requests) == 5
    assert any("retrying" in r.getMessage() for r in captured.records)
    assert any("not a waflow setting" in r.getMessage() for r in captured.records)
    assert_logs_clean(captured)


# -- other exceptions ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "env",
    [
        {"WAFLOW_PHONE_NUMBER_ID": TOKEN},
        {"WAFLOW_API_VERSION": TOKEN},
        {"WAFLOW_THROUGHPUT": APP_SECRET},
        {"WAFLOW_LOG_LEVEL": VERIFY_TOKEN},
        {"WAFLOW_GRAPH_URL": f"graph.facebook.com/?access_token={TOKEN}"},
        {"WAFLOW_STORE": f"postgres://shop:{APP_SECRET}@db/shop"},
    ],
    ids=lambda env: next(iter(env)),
)
def test_config_error_of_a_misplaced_secret_does_not_quote_it(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env(env)

    assert next(iter(env)) in str(info.value)
    for text in exception_texts(info.value):
        assert_no_secret(text)


def test_config_error_of_an_empty_token_is_clean() -> None:
    with pytest.raises(ConfigError) as info:
        WhatsApp(access_token="", phone_number_id="106540352242922")

    assert "access_token" in str(info.value)
    for text in exception_texts(info.value):
        assert_no_secret(text)


def test_message_validation_error_does_not_quote_the_token() -> None:
    wa = Flavour("sync").whatsapp(Script(sent()))

    with pytest.raises(MessageValidationError) as info:
        wa.send_buttons(
            CUSTOMER, "Welche Farbe?", {"a": "Rot", "b": "Blau", "c": "Grün", "d": TOKEN}
        )

    for text in exception_texts(info.value):
        assert_no_secret(text)


def test_timeout_error_text_is_clean() -> None:
    wa = Flavour("sync").whatsapp(Script(httpx.ReadTimeout(f"timed out, Bearer {TOKEN}")))

    with pytest.raises(APITimeoutError) as info:
        wa.send_text(CUSTOMER, "Hallo!")

    for text in exception_texts(info.value):
        assert_no_secret(text)


@pytest.mark.parametrize("exc_type", [APIConnectionError, APIStatusError, ConfigError])
def test_every_error_is_a_waflow_error(exc_type: type[Any]) -> None:
    assert issubclass(exc_type, WaflowError)


# -- the webhook app ------------------------------------------------------------------------------


async def test_the_webhook_app_keeps_its_secrets_out_of_reprs_answers_and_logs(
    captured: pytest.LogCaptureFixture,
) -> None:
    from waflow import App, WebhookRequest
    from waflow.store import MemoryStore
    from waflow.testing import FakeGraphAPI
    from waflow.webhooks import sign

    fake = FakeGraphAPI(app_secret=APP_SECRET)
    app = App(app_secret=APP_SECRET, verify_token=VERIFY_TOKEN, store=MemoryStore())

    @app.message()
    async def broken(_event: Any, _ctx: Any) -> None:
        raise RuntimeError("the handler failed")  # logged with its traceback

    def handshake(token: str) -> WebhookRequest:
        query = {"hub.mode": "subscribe", "hub.verify_token": token, "hub.challenge": "4242"}
        return WebhookRequest("GET", query=query)

    body = fake.inbound.whatsapp_text("4915112345678", "Hallo")
    raw, headers = fake.sign(body)
    good = headers["X-Hub-Signature-256"]
    requests = [
        handshake("wrong-token"),
        handshake(VERIFY_TOKEN),
        WebhookRequest("GET", query={"hub.mode": "unsubscribe"}),
        WebhookRequest("POST", raw, {"X-Hub-Signature-256": sign(raw, "another-secret")}),
        WebhookRequest("POST", raw, {"X-Hub-Signature-256": good[:40]}),
        WebhookRequest("POST", raw, {"X-Hub-Signature": "sha1=" + "0" * 40}),
        WebhookRequest("POST", raw, {}),
        WebhookRequest("POST", raw, headers),
    ]
    answers = [await app.dispatch(request) for request in requests]

    assert [answer.status for answer in answers] == [403, 200, 403, 403, 403, 403, 401, 200]
    assert answers[1].text == "4242"
    for answer in answers:
        assert_no_secret(answer.text)
        assert_no_secret(repr(answer))
    for shown in (repr(app), repr(app.router), repr(app.inbox), repr(vars(app))):
        assert_no_secret(shown)
    assert any("handler failed" in record.getMessage() for record in captured.records)
    assert_logs_clean(captured)
