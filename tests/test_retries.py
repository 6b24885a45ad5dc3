"""The retry policy of the Graph core, on virtual time (FrozenClock: nothing really sleeps).

Throttling and transient failures are retried with backoff until they succeed; failures that only a
change can fix are raised at once; a message send that may have reached Meta is never repeated.
"""

from __future__ import annotations

import random
from typing import Any

import httpx
import pytest

from tests.graph_support import (
    CUSTOMER,
    FLAVOURS,
    TOKEN,
    Flavour,
    Script,
    graph_error,
    media_info,
    sent,
)
from waflow import AsyncWhatsApp, WhatsApp
from waflow.errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    ConfigError,
    RateLimitError,
    ServerError,
)
from waflow.graph import AsyncGraph, GraphRequest, GraphResponse, SyncGraph
from waflow.testing import FakeGraphAPI, FrozenClock

THROTTLING = [4, 17, 32, 613, 80007, 130429]
PERMANENT = [100, 131008, 131026, 131047, 132000, 132001, 190, 368]


@pytest.fixture(params=FLAVOURS, ids=lambda f: f.name)
def flavour(request: pytest.FixtureRequest) -> Flavour:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


def send(flavour: Flavour, wa: WhatsApp | AsyncWhatsApp) -> Any:
    return flavour.run(wa.send_text(CUSTOMER, "Ihr Rad ist fertig!"))


def backoff_bounds(retry: int) -> tuple[float, float]:
    """The documented wait before retry ``retry`` (0-based): min(0.5·2^n, 8), minus up to 25%."""
    full = min(0.5 * 2**retry, 8.0)
    return 0.75 * full, full


# -- throttling is retried until it succeeds -------------------------------------------------------


@pytest.mark.parametrize("code", THROTTLING)
def test_throttled_send_is_retried_until_it_succeeds(
    code: int, flavour: Flavour, clock: FrozenClock
) -> None:
    failures = 3
    script = Script(*[graph_error(400, code)] * failures, sent())
    wa = flavour.whatsapp(script, clock=clock, max_retries=5)

    result = send(flavour, wa)

    assert result.message_id.startswith("wamid.")
    assert result.retries_taken == failures
    assert len(script.requests) == failures + 1
    assert len(clock.sleeps) == failures
    for retry, slept in enumerate(clock.sleeps):
        low, high = backoff_bounds(retry)
        assert low <= slept <= high


@pytest.mark.parametrize("failures", [1, 2, 6])
def test_retries_taken_counts_the_failed_attempts(failures: int, clock: FrozenClock) -> None:
    fake = FakeGraphAPI(clock=clock)
    wa = fake.whatsapp(max_retries=failures)
    fake.fail_next(130429, times=failures)

    result = wa.send_text(CUSTOMER, "Hallo!")

    assert result.retries_taken == failures
    assert len(fake.requests) == failures + 1
    assert [r.status_code for r in fake.requests] == [400] * failures + [200]
    assert len(fake.sent) == 1


def test_pair_rate_limit_backs_off_longer(flavour: Flavour, clock: FrozenClock) -> None:
    script = Script(*[graph_error(400, 131056)] * 4, sent())
    wa = flavour.whatsapp(script, clock=clock, max_retries=4)

    result = send(flavour, wa)

    assert result.retries_taken == 4
    assert clock.sleeps == [4.0, 16.0, 64.0, 64.0]


def test_retry_after_is_honoured(flavour: Flavour, clock: FrozenClock) -> None:
    script = Script(graph_error(400, 130429, headers={"Retry-After": "7"}), sent())
    wa = flavour.whatsapp(script, clock=clock)

    result = send(flavour, wa)

    assert result.retries_taken == 1
    assert clock.sleeps == [7.0]


def test_retry_after_wins_over_the_pair_rate_backoff(clock: FrozenClock) -> None:
    script = Script(graph_error(400, 131056, headers={"Retry-After": "2"}), sent())
    wa = Flavour("sync").whatsapp(script, clock=clock)

    wa.send_text(CUSTOMER, "Hallo!")

    assert clock.sleeps == [2.0]


def lookup_through_graph(flavour: Flavour, script: Script, **options: Any) -> GraphResponse:
    """``GET /{media-id}`` through the bare Graph core of ``flavour``, to reach its options."""
    transport = httpx.MockTransport(script)
    lookup = GraphRequest("GET", "/1234567890")
    if flavour.is_async:
        graph = AsyncGraph(http_client=httpx.AsyncClient(transport=transport), **options)
        return flavour.run(graph.request(lookup))  # type: ignore[no-any-return]
    sync = SyncGraph(http_client=httpx.Client(transport=transport), **options)
    return sync.request(lookup)


def test_retry_after_is_capped_at_max_retry_after(flavour: Flavour, clock: FrozenClock) -> None:
    script = Script(httpx.Response(429, headers={"Retry-After": "3600"}), media_info())

    response = lookup_through_graph(
        flavour, script, access_token=TOKEN, clock=clock, max_retry_after=30.0
    )

    assert response.retries_taken == 1
    assert clock.sleeps == [30.0]


def test_retry_after_is_capped_at_sixty_seconds_by_default(
    flavour: Flavour, clock: FrozenClock
) -> None:
    script = Script(graph_error(400, 4, headers={"Retry-After": "86400"}), sent())
    wa = flavour.whatsapp(script, clock=clock)

    send(flavour, wa)

    assert clock.sleeps == [60.0]


def test_backoff_doubles_to_eight_seconds_with_at_most_a_quarter_of_jitter_downwards(
    flavour: Flavour, clock: FrozenClock
) -> None:
    retries = 7
    script = Script(*[httpx.Response(503)] * retries, media_info())

    response = lookup_through_graph(
        flavour,
        script,
        access_token=TOKEN,
        clock=clock,
        max_retries=retries,
        rng=random.Random(2026),
    )

    expected_rng = random.Random(2026)
    expected = [min(0.5 * 2**n, 8.0) * (1 - 0.25 * expected_rng.random()) for n in range(retries)]
    assert response.retries_taken == retries
    assert clock.sleeps == pytest.approx(expected, rel=1e-12)
    for retry, slept in enumerate(clock.sleeps):
        low, high = backoff_bounds(retry)
        assert low <= slept <= high
    assert clock.sleeps[-1] <= 8.0


def test_backoff_without_jitter_source_stays_within_bounds(clock: FrozenClock) -> None:
    script = Script(*[graph_error(400, 130429)] * 6, sent())
    wa = Flavour("sync").whatsapp(script, clock=clock, max_retries=6)

    wa.send_text(CUSTOMER, "Hallo!")

    assert len(clock.sleeps) == 6
    for retry, slept in enumerate(clock.sleeps):
        low, high = backoff_bounds(retry)
        assert low <= slept <= high


# -- what is not retried --------------------------------------------------------------------------


@pytest.mark.parametrize("code", PERMANENT)
def test_permanent_error_is_raised_at_once(code: int, flavour: Flavour, clock: FrozenClock) -> None:
    script = Script(graph_error(400, code), sent())
    wa = flavour.whatsapp(script, clock=clock, max_retries=5)

    with pytest.raises(APIStatusError) as info:
        send(flavour, wa)

    assert info.value.code == code
    assert not info.value.retryable
    assert info.value.retries_taken == 0
    assert len(script.requests) == 1
    assert clock.sleeps == []


@pytest.mark.parametrize("code", [100, 131026])
def test_permanent_code_is_not_retried_even_when_marked_transient(
    code: int, clock: FrozenClock
) -> None:
    script = Script(graph_error(400, code, is_transient=True), sent())
    wa = Flavour("sync").whatsapp(script, clock=clock, max_retries=5)

    with pytest.raises(APIStatusError):
        wa.send_text(CUSTOMER, "Hallo!")

    assert len(script.requests) == 1


def test_transient_flag_on_a_client_error_is_retried(flavour: Flavour, clock: FrozenClock) -> None:
    script = Script(graph_error(400, 135000, is_transient=True), sent())
    wa = flavour.whatsapp(script, clock=clock)

    result = send(flavour, wa)

    assert result.retries_taken == 1
    assert len(script.requests) == 2


def test_unknown_client_error_without_transient_flag_is_not_retried(clock: FrozenClock) -> None:
    script = Script(graph_error(400, 135000), sent())
    wa = Flavour("sync").whatsapp(script, clock=clock)

    with pytest.raises(APIStatusError):
        wa.send_text(CUSTOMER, "Hallo!")

    assert len(script.requests) == 1


@pytest.mark.parametrize(
    "failure",
    [
        httpx.Response(500),
        httpx.Response(502, content=b"<html><title>502 Bad Gateway</title></html>"),
        httpx.Response(503),
        graph_error(500, 131000),
        graph_error(500, 1, is_transient=True),
    ],
    ids=["empty-500", "html-502", "empty-503", "131000", "code-1"],
)
def test_server_error_on_a_message_send_is_raised_at_once_as_maybe_sent(
    failure: httpx.Response, flavour: Flavour, clock: FrozenClock
) -> None:
    script = Script(failure, sent())
    wa = flavour.whatsapp(script, clock=clock, max_retries=5)

    with pytest.raises(ServerError) as info:
        send(flavour, wa)

    assert info.value.maybe_sent is True
    assert info.value.retryable  # in itself; only the send's non-idempotence stops the retry
    assert info.value.retries_taken == 0
    assert len(script.requests) == 1
    assert clock.sleeps == []


def test_server_error_on_a_media_lookup_is_retried(flavour: Flavour, clock: FrozenClock) -> None:
    script = Script(httpx.Response(502), httpx.Response(503), graph_error(500, 2), media_info())
    wa = flavour.whatsapp(script, clock=clock, max_retries=3)

    info = flavour.run(wa.media.get("1234567890"))

    assert info.id == "1234567890"
    assert len(script.requests) == 4
    assert {r.method for r in script.requests} == {"GET"}
    assert len(clock.sleeps) == 3


def test_media_lookup_rides_out_an_outage_of_the_fake(clock: FrozenClock) -> None:
    fake = FakeGraphAPI(clock=clock)
    media_id = fake.add_media(b"\xff\xd8 a photo", "image/jpeg", "bike.jpg")
    wa = fake.whatsapp(max_retries=6)
    fake.outage(2.0)

    info = wa.media.get(media_id)

    assert info.mime_type == "image/jpeg"
    statuses = [r.status_code for r in fake.requests]
    assert statuses[-1] == 200
    assert set(statuses[:-1]) == {503}
    assert clock.monotonic() >= 2.0


async def test_async_media_lookup_is_retried_on_the_fake(clock: FrozenClock) -> None:
    fake = FakeGraphAPI(clock=clock)
    media_id = fake.add_media(b"\xff\xd8 a photo", "image/jpeg", "bike.jpg")
    wa = fake.async_whatsapp(max_retries=3)
    fake.fail_next(status=502, body=b"<html>Bad Gateway</html>", times=2)

    info = await wa.media.get(media_id)

    assert info.id == media_id
    assert [r.status_code for r in fake.requests] == [502, 502, 200]
    await wa.aclose()


def test_server_error_on_a_message_send_through_the_fake_is_raised_once(
    clock: FrozenClock,
) -> None:
    fake = FakeGraphAPI(clock=clock)
    wa = fake.whatsapp(max_retries=5)
    fake.outage(60.0)

    with pytest.raises(ServerError) as info:
        wa.send_text(CUSTOMER, "Hallo!")

    assert info.value.status_code == 503
    assert info.value.maybe_sent is True
    assert len(fake.requests) == 1


# -- timeouts and connection failures -------------------------------------------------------------


def test_read_timeout_of_a_message_send_is_raised_at_once_as_maybe_sent(
    clock: FrozenClock,
) -> None:
    fake = FakeGraphAPI(clock=clock)
    wa = fake.whatsapp(max_retries=5)
    fake.timeout_next(after_send=True)

    with pytest.raises(APITimeoutError) as info:
        wa.send_text(CUSTOMER, "Hallo!")

    assert info.value.maybe_sent is True
    assert info.value.retries_taken == 0
    assert len(fake.requests) == 1
    assert len(fake.sent) == 1  # it did reach Meta: repeating it would send it twice
    assert clock.sleeps == []


async def test_async_read_timeout_of_a_message_send_is_raised_at_once(
    clock: FrozenClock,
) -> None:
    fake = FakeGraphAPI(clock=clock)
    wa = fake.async_whatsapp(max_retries=5)
    fake.timeout_next(after_send=True)

    with pytest.raises(APITimeoutError) as info:
        await wa.send_text(CUSTOMER, "Hallo!")

    assert info.value.maybe_sent is True
    assert len(fake.requests) == 1
    await wa.aclose()


@pytest.mark.parametrize(
    "timeout", [httpx.ReadTimeout("read timed out"), httpx.WriteTimeout("write timed out")]
)
def test_timeout_after_connecting_on_a_send_is_not_retried(
    timeout: httpx.TimeoutException, flavour: Flavour, clock: FrozenClock
) -> None:
    script = Script(timeout, sent())
    wa = flavour.whatsapp(script, clock=clock, max_retries=5)

    with pytest.raises(APITimeoutError) as info:
        send(flavour, wa)

    assert info.value.maybe_sent is True
    assert len(script.requests) == 1


def test_read_timeout_on_a_lookup_is_retried(flavour: Flavour, clock: FrozenClock) -> None:
    script = Script(httpx.ReadTimeout("read timed out"), media_info())
    wa = flavour.whatsapp(script, clock=clock)

    info = flavour.run(wa.media.get("1234567890"))

    assert info.id == "1234567890"
    assert len(script.requests) == 2


@pytest.mark.parametrize(
    "failure",
    [httpx.ConnectError("connection refused"), httpx.ConnectTimeout("connect timed out")],
    ids=["connect-error", "connect-timeout"],
)
def test_connect_failure_on_a_send_is_retried(
    failure: httpx.TransportError, flavour: Flavour, clock: FrozenClock
) -> None:
    script = Script(failure, failure, sent())
    wa = flavour.whatsapp(script, clock=clock, max_retries=3)

    result = send(flavour, wa)

    assert result.retries_taken == 2
    assert len(script.requests) == 3
    assert len(clock.sleeps) == 2


def test_connect_failure_that_persists_raises_not_sent(
    flavour: Flavour, clock: FrozenClock
) -> None:
    script = Script(httpx.ConnectError("connection refused"))
    wa = flavour.whatsapp(script, clock=clock, max_retries=3)

    with pytest.raises(APIConnectionError) as info:
        send(flavour, wa)

    assert type(info.value) is APIConnectionError
    assert info.value.maybe_sent is False
    assert info.value.retryable
    assert info.value.retries_taken == 3
    assert info.value.request is script.requests[-1]
    assert len(script.requests) == 4


def test_connection_lost_mid_request_on_a_send_is_not_retried(clock: FrozenClock) -> None:
    script = Script(httpx.RemoteProtocolError("peer closed connection"), sent())
    wa = Flavour("sync").whatsapp(script, clock=clock, max_retries=3)

    with pytest.raises(APIConnectionError) as info:
        wa.send_text(CUSTOMER, "Hallo!")

    assert info.value.maybe_sent is True
    assert len(script.requests) == 1


# -- counting and options -------------------------------------------------------------------------


def test_exhausted_retries_raise_the_last_error_with_retries_taken(
    flavour: Flavour, clock: FrozenClock
) -> None:
    script = Script(graph_error(400, 130429))
    wa = flavour.whatsapp(script, clock=clock, max_retries=3)

    with pytest.raises(RateLimitError) as info:
        send(flavour, wa)

    assert info.value.retries_taken == 3
    assert info.value.request is script.requests[-1]
    assert len(script.requests) == 4
    assert len(clock.sleeps) == 3


def test_default_is_two_retries(clock: FrozenClock) -> None:
    script = Script(graph_error(400, 130429))
    wa = Flavour("sync").whatsapp(script, clock=clock)

    with pytest.raises(RateLimitError) as info:
        wa.send_text(CUSTOMER, "Hallo!")

    assert info.value.retries_taken == 2
    assert len(script.requests) == 3


def test_zero_max_retries_means_one_attempt(flavour: Flavour, clock: FrozenClock) -> None:
    script = Script(graph_error(400, 130429), sent())
    wa = flavour.whatsapp(script, clock=clock, max_retries=0)

    with pytest.raises(RateLimitError) as info:
        send(flavour, wa)

    assert info.value.retries_taken == 0
    assert len(script.requests) == 1
    assert clock.sleeps == []


def test_with_options_changes_max_retries_and_shares_the_http_client(
    flavour: Flavour, clock: FrozenClock
) -> None:
    script = Script(*[graph_error(400, 130429)] * 3, sent(), graph_error(400, 130429))
    wa = flavour.whatsapp(script, clock=clock, max_retries=0)

    patient = wa.with_options(max_retries=5)
    result = send(flavour, patient)

    assert result.retries_taken == 3
    assert patient._graph.http is wa._graph.http
    assert patient._graph.max_retries == 5
    # The original keeps its own options.
    with pytest.raises(RateLimitError):
        send(flavour, wa)
    assert len(script.requests) == 5


def test_negative_max_retries_is_refused() -> None:
    with pytest.raises(ConfigError, match="max_retries"):
        Flavour("sync").whatsapp(Script(sent()), max_retries=-1)
    wa = Flavour("sync").whatsapp(Script(sent()))
    with pytest.raises(ConfigError, match="max_retries"):
        wa.with_options(max_retries=-1)


def test_retries_are_logged_without_sleeping_for_real(
    caplog: pytest.LogCaptureFixture, clock: FrozenClock
) -> None:
    script = Script(graph_error(400, 130429), sent())
    wa = Flavour("sync").whatsapp(script, clock=clock)

    with caplog.at_level("INFO", logger="waflow"):
        wa.send_text(CUSTOMER, "Hallo!")

    retries = [r for r in caplog.records if r.name == "waflow.graph" and "retrying" in r.message]
    assert len(retries) == 1
    assert "130429" in retries[0].getMessage()
