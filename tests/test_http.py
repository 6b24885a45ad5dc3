"""The HTTP seam: timeouts, the injected or owned httpx client, headers, URLs, response parsing."""

from __future__ import annotations

import gzip
from typing import Any

import httpx
import pytest

from tests.graph_support import (
    CUSTOMER,
    FLAVOURS,
    PHONE_NUMBER_ID,
    TOKEN,
    Flavour,
    Script,
    media_info,
    sent,
)
from waflow import AsyncWhatsApp, WhatsApp, __version__
from waflow._http import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_TIMEOUT,
    build_request,
    make_timeout,
    prepare_headers,
)
from waflow.errors import APIConnectionError, APIResponseValidationError
from waflow.graph import _PARSED_URLS_MAX, DEFAULT_API_VERSION, DEFAULT_BASE_URL
from waflow.testing import FrozenClock

DEFAULT_TIMEOUTS = {"connect": 5.0, "read": 15.0, "write": 15.0, "pool": 15.0}


@pytest.fixture(params=FLAVOURS, ids=lambda f: f.name)
def flavour(request: pytest.FixtureRequest) -> Flavour:
    return request.param  # type: ignore[no-any-return]


def send(flavour: Flavour, wa: WhatsApp | AsyncWhatsApp) -> Any:
    return flavour.run(wa.send_text(CUSTOMER, "Hallo!"))


# -- timeouts -------------------------------------------------------------------------------------


def test_default_timeout_is_15_seconds_with_5_to_connect() -> None:
    assert (DEFAULT_TIMEOUT, DEFAULT_CONNECT_TIMEOUT) == (15.0, 5.0)
    assert make_timeout().as_dict() == DEFAULT_TIMEOUTS


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (30.0, {"connect": 5.0, "read": 30.0, "write": 30.0, "pool": 30.0}),
        (2.0, {"connect": 2.0, "read": 2.0, "write": 2.0, "pool": 2.0}),
        (None, {"connect": None, "read": None, "write": None, "pool": None}),
        (httpx.Timeout(9.0, connect=1.0), {"connect": 1.0, "read": 9.0, "write": 9.0, "pool": 9.0}),
    ],
)
def test_timeout_applies_per_phase_with_connect_capped_at_5_seconds(
    given: float | httpx.Timeout | None, expected: dict[str, float | None]
) -> None:
    assert make_timeout(given).as_dict() == expected


def test_requests_carry_the_default_timeouts(flavour: Flavour) -> None:
    script = Script(sent())
    wa = flavour.whatsapp(script)

    send(flavour, wa)

    assert script.requests[0].extensions["timeout"] == DEFAULT_TIMEOUTS


def test_timeout_option_applies_to_each_request(flavour: Flavour) -> None:
    script = Script(sent())
    wa = flavour.whatsapp(script, timeout=30.0)

    send(flavour, wa)

    assert script.requests[0].extensions["timeout"] == {
        "connect": 5.0,
        "read": 30.0,
        "write": 30.0,
        "pool": 30.0,
    }


def test_with_options_changes_the_timeout_of_the_copy_only(flavour: Flavour) -> None:
    script = Script(sent())
    wa = flavour.whatsapp(script)

    send(flavour, wa.with_options(timeout=3.0))
    send(flavour, wa)

    quick, normal = (r.extensions["timeout"] for r in script.requests)
    assert quick == {"connect": 3.0, "read": 3.0, "write": 3.0, "pool": 3.0}
    assert normal == DEFAULT_TIMEOUTS


def test_owned_client_has_the_default_timeouts() -> None:
    wa = WhatsApp(access_token=TOKEN, phone_number_id=PHONE_NUMBER_ID)

    assert wa._graph.http.timeout.as_dict() == DEFAULT_TIMEOUTS
    wa.close()


# -- the httpx client: injected or owned ----------------------------------------------------------


def test_injected_http_client_is_used_and_left_open() -> None:
    script = Script(sent())
    http = httpx.Client(transport=httpx.MockTransport(script))

    with WhatsApp(access_token=TOKEN, phone_number_id=PHONE_NUMBER_ID, http_client=http) as wa:
        wa.send_text(CUSTOMER, "Hallo!")
    wa.close()

    assert len(script.requests) == 1
    assert not http.is_closed
    http.close()


async def test_injected_async_http_client_is_used_and_left_open() -> None:
    script = Script(sent())
    http = httpx.AsyncClient(transport=httpx.MockTransport(script))

    async with AsyncWhatsApp(
        access_token=TOKEN, phone_number_id=PHONE_NUMBER_ID, http_client=http
    ) as wa:
        await wa.send_text(CUSTOMER, "Hallo!")
    await wa.aclose()

    assert len(script.requests) == 1
    assert not http.is_closed
    await http.aclose()


def test_owned_http_client_is_closed_by_close() -> None:
    wa = WhatsApp(access_token=TOKEN, phone_number_id=PHONE_NUMBER_ID)
    http = wa._graph.http

    wa.close()

    assert http.is_closed


def test_owned_http_client_is_closed_by_the_with_block() -> None:
    with WhatsApp(access_token=TOKEN, phone_number_id=PHONE_NUMBER_ID) as wa:
        http = wa._graph.http
        assert not http.is_closed

    assert http.is_closed


async def test_owned_async_http_client_is_closed_by_aclose() -> None:
    async with AsyncWhatsApp(access_token=TOKEN, phone_number_id=PHONE_NUMBER_ID) as wa:
        http = wa._graph.http

    assert http.is_closed


def test_copy_from_with_options_shares_the_pool_and_never_closes_it() -> None:
    wa = WhatsApp(access_token=TOKEN, phone_number_id=PHONE_NUMBER_ID)
    copy = wa.with_options(max_retries=5, timeout=3.0)

    assert copy._graph.http is wa._graph.http
    copy.close()
    assert not wa._graph.http.is_closed
    wa.close()
    assert copy._graph.http.is_closed


def test_injected_http_client_is_shared_by_with_options(flavour: Flavour) -> None:
    script = Script(sent())
    wa = flavour.whatsapp(script)

    send(flavour, wa.with_options(max_retries=0))
    send(flavour, wa)

    assert len(script.requests) == 2


def test_constructing_a_client_makes_no_request() -> None:
    script = Script(sent())

    WhatsApp(
        access_token=TOKEN,
        phone_number_id=PHONE_NUMBER_ID,
        http_client=httpx.Client(transport=httpx.MockTransport(script)),
    )

    assert script.requests == []


# -- headers --------------------------------------------------------------------------------------


def test_bearer_token_and_user_agent_are_sent(flavour: Flavour) -> None:
    script = Script(sent())
    wa = flavour.whatsapp(script)

    send(flavour, wa)

    [request] = script.requests
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["user-agent"] == f"waflow/{__version__}"
    assert request.headers["accept"] == "application/json"
    assert request.headers["content-type"] == "application/json"


def test_a_send_goes_out_exactly_as_httpx_json_would_send_it(flavour: Flavour) -> None:
    # waflow posts JSON it encoded itself; the request must not differ from httpx's json=.
    script = Script(sent())
    wa = flavour.whatsapp(script)

    send(flavour, wa)

    [request] = script.requests
    body = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": CUSTOMER,
        "type": "text",
        "text": {"body": "Hallo!", "preview_url": False},
    }
    reference = httpx.Client().build_request(
        "POST",
        str(request.url),
        json=body,
        headers={
            "Authorization": f"Bearer {TOKEN}",
            "User-Agent": f"waflow/{__version__}",
            "Accept": "application/json",
        },
    )
    assert request.content == reference.content
    assert list(request.headers.multi_items()) == list(reference.headers.multi_items())


def test_a_content_type_of_the_injected_client_is_kept_as_json_would_keep_it() -> None:
    script = Script(sent())
    http = httpx.Client(
        transport=httpx.MockTransport(script), headers={"Content-Type": "application/json; x=1"}
    )
    wa = WhatsApp(access_token=TOKEN, phone_number_id=PHONE_NUMBER_ID, http_client=http)

    wa.send_text(CUSTOMER, "Hallo!")

    assert script.requests[0].headers.get_list("content-type") == ["application/json; x=1"]


@pytest.mark.parametrize(
    "headers",
    [{"content-type": "application/json; x=1"}, {"Content-Type": "application/json; x=1"}],
)
def test_pre_encoded_json_keeps_a_content_type_the_caller_sets(headers: dict[str, str]) -> None:
    client = httpx.Client()
    for given in (headers, prepare_headers(headers)):
        request = build_request(
            client, "POST", "https://x.example/", headers=given, json_bytes=b"{}"
        )
        assert request.headers.get_list("content-type") == ["application/json; x=1"]
    request = build_request(client, "POST", "https://x.example/", json_bytes=b"{}")
    assert request.headers.get_list("content-type") == ["application/json"]


def test_with_options_can_swap_the_token(flavour: Flavour) -> None:
    script = Script(sent())
    wa = flavour.whatsapp(script)

    send(flavour, wa.with_options(access_token="EAAGrotated0token0value"))
    send(flavour, wa)

    assert [r.headers["authorization"] for r in script.requests] == [
        "Bearer EAAGrotated0token0value",
        f"Bearer {TOKEN}",
    ]


def test_token_is_not_put_in_the_url(flavour: Flavour) -> None:
    script = Script(media_info())
    wa = flavour.whatsapp(script)

    flavour.run(wa.media.get("1234567890"))

    assert TOKEN not in str(script.requests[0].url)


# -- URLs -----------------------------------------------------------------------------------------


def test_default_url_is_graph_facebook_com_with_the_default_version(flavour: Flavour) -> None:
    script = Script(sent())
    wa = flavour.whatsapp(script)

    send(flavour, wa)

    assert (DEFAULT_BASE_URL, DEFAULT_API_VERSION) == ("https://graph.facebook.com", "v26.0")
    assert str(script.requests[0].url) == (
        f"https://graph.facebook.com/v26.0/{PHONE_NUMBER_ID}/messages"
    )
    assert script.requests[0].method == "POST"


def test_base_url_and_api_version_overrides_are_honoured(flavour: Flavour) -> None:
    script = Script(sent())
    wa = flavour.whatsapp(script, base_url="http://127.0.0.1:8080/graph/", api_version="v23.0")

    send(flavour, wa)

    assert str(script.requests[0].url) == (
        f"http://127.0.0.1:8080/graph/v23.0/{PHONE_NUMBER_ID}/messages"
    )


def test_with_options_overrides_url_and_version_of_the_copy_only(flavour: Flavour) -> None:
    script = Script(sent())
    wa = flavour.whatsapp(script)

    send(flavour, wa.with_options(api_version="v24.0", base_url="http://localhost:9000"))
    send(flavour, wa)

    assert [str(r.url) for r in script.requests] == [
        f"http://localhost:9000/v24.0/{PHONE_NUMBER_ID}/messages",
        f"https://graph.facebook.com/v26.0/{PHONE_NUMBER_ID}/messages",
    ]
    assert wa.api_version == "v26.0"


def test_parsed_urls_are_reused_but_never_pile_up(flavour: Flavour) -> None:
    script = Script(media_info())
    wa = flavour.whatsapp(script)

    for media_id in range(500):
        flavour.run(wa.media.get(str(1_000_000 + media_id)))

    assert [r.url.path for r in script.requests[-2:]] == ["/v26.0/1000498", "/v26.0/1000499"]
    assert len(wa._graph._parsed_urls) <= _PARSED_URLS_MAX


def test_media_lookup_url_is_versioned_and_scoped_to_the_number(flavour: Flavour) -> None:
    script = Script(media_info())
    wa = flavour.whatsapp(script, api_version="v25.0")

    flavour.run(wa.media.get("1234567890"))

    [request] = script.requests
    assert request.method == "GET"
    assert request.url.path == "/v25.0/1234567890"
    assert request.url.params["phone_number_id"] == PHONE_NUMBER_ID


# -- responses ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body", [b"<html><body>OK</body></html>", b"not json", b'{"messages": [', b"\xff\xfe"]
)
def test_success_with_a_body_that_is_not_json_raises_response_validation_error(
    body: bytes, flavour: Flavour
) -> None:
    script = Script(httpx.Response(200, content=body, headers={"content-type": "text/html"}))
    clock = FrozenClock()
    wa = flavour.whatsapp(script, clock=clock, max_retries=3)

    with pytest.raises(APIResponseValidationError) as info:
        send(flavour, wa)

    assert info.value.request is script.requests[0]
    assert info.value.response is script.responses[0]
    assert "not JSON" in str(info.value)
    assert len(script.requests) == 1  # Meta said 200: the message is out, never send it again
    assert clock.sleeps == []


def test_response_body_that_cannot_be_decoded_raises_a_waflow_error(flavour: Flavour) -> None:
    script = Script(
        lambda request: httpx.Response(
            200,
            content=b"this is not gzip",
            headers={"content-type": "application/json", "content-encoding": "gzip"},
        )
    )
    wa = flavour.whatsapp(script, max_retries=3)

    with pytest.raises(APIConnectionError) as info:
        send(flavour, wa)

    assert info.value.maybe_sent is True
    assert len(script.requests) == 1


def test_compressed_response_is_read(flavour: Flavour) -> None:
    plain = sent().content
    script = Script(
        lambda request: httpx.Response(
            200,
            content=gzip.compress(plain),
            headers={"content-type": "application/json", "content-encoding": "gzip"},
        )
    )
    wa = flavour.whatsapp(script)

    result = send(flavour, wa)

    assert result.wa_id == CUSTOMER


@pytest.mark.parametrize("token", ["EAAG…", "EAAGabc\n", "EAAG abc"])
def test_a_malformed_token_is_refused_at_construction_without_echoing_it(token: str) -> None:
    from waflow import WhatsApp
    from waflow.errors import ConfigError

    with pytest.raises(ConfigError, match="printable ASCII") as info:
        WhatsApp(access_token=token, phone_number_id="1")
    assert token.strip() not in str(info.value)
