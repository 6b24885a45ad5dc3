"""Graph error responses become the right waflow exceptions, keeping everything Meta said.

The class is chosen by the Graph ``error.code`` first and by the HTTP status only when there is no
code (an HTML page from a proxy, an empty 503, a bare 429).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.graph_support import CUSTOMER, PHONE_NUMBER_ID, TRACE_ID, Flavour, Script
from waflow.errors import (
    AccessTokenExpiredError,
    APIError,
    APIStatusError,
    AuthenticationError,
    InvalidRequestError,
    OutsideServiceWindowError,
    PermissionDeniedError,
    RateLimitError,
    RecipientError,
    ServerError,
    TemplateError,
    WaflowError,
    error_from_response,
)
from waflow.graph import GraphRequest, should_retry

HTML_502 = (
    b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>"
    b"<body><h1>502 Bad Gateway</h1><p>The server returned an invalid response.</p></body></html>"
)


@dataclass(frozen=True)
class Case:
    """One error response and what waflow must make of it."""

    id: str
    status: int
    cls: type[APIStatusError]
    retryable: bool
    error: dict[str, Any] | None = None
    content: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    retry_after: float | None = None

    @property
    def body(self) -> bytes:
        return (
            json.dumps({"error": self.error}).encode() if self.error is not None else self.content
        )

    @property
    def response_headers(self) -> dict[str, str]:
        kind = "application/json" if self.error is not None else "text/html"
        return {"content-type": kind, **self.headers}

    def response(self) -> httpx.Response:
        return httpx.Response(self.status, content=self.body, headers=self.response_headers)

    @property
    def expected_trace_id(self) -> str | None:
        if self.error is not None and "fbtrace_id" in self.error:
            return str(self.error["fbtrace_id"])
        return self.headers.get("x-fb-trace-id")


def graph(code: int, message: str, **fields: Any) -> dict[str, Any]:
    return {"message": message, "type": "OAuthException", "code": code, **fields}


CASES = [
    Case(
        "4 app rate limit",
        400,
        RateLimitError,
        True,
        graph(4, "(#4) Application request limit reached", is_transient=True, fbtrace_id="T4"),
    ),
    Case(
        "10 permission",
        403,
        PermissionDeniedError,
        False,
        graph(10, "(#10) Application does not have permission for this action", fbtrace_id="T10"),
    ),
    Case(
        "100 invalid parameter",
        400,
        InvalidRequestError,
        False,
        graph(
            100,
            "(#100) Invalid parameter",
            error_subcode=2494010,
            error_data={
                "messaging_product": "whatsapp",
                "details": "Param text['body'] is required",
            },
            error_user_title="Invalid parameter",
            error_user_msg="Please check the message body.",
            fbtrace_id="T100",
        ),
    ),
    Case(
        "131000 something went wrong",
        500,
        ServerError,
        True,
        graph(
            131000,
            "Something went wrong",
            type="OAuthException",
            error_data={"messaging_product": "whatsapp", "details": "Something went wrong"},
            fbtrace_id="T131000",
        ),
    ),
    Case(
        "131008 missing parameter",
        400,
        InvalidRequestError,
        False,
        graph(131008, "(#131008) Required parameter is missing", fbtrace_id="T131008"),
    ),
    Case(
        "131026 undeliverable",
        400,
        RecipientError,
        False,
        graph(131026, "(#131026) Message undeliverable", fbtrace_id="T131026"),
    ),
    Case(
        "131047 window closed",
        400,
        OutsideServiceWindowError,
        False,
        graph(
            131047,
            "(#131047) Re-engagement message",
            error_data={
                "messaging_product": "whatsapp",
                "details": "Message failed to send because more than 24 hours have passed",
            },
            fbtrace_id="T131047",
        ),
    ),
    Case(
        "131056 pair rate",
        400,
        RateLimitError,
        True,
        graph(
            131056,
            "(#131056) (Business Account, Consumer Account) pair rate limit hit",
            fbtrace_id="T131056",
        ),
    ),
    Case(
        "130429 throughput",
        400,
        RateLimitError,
        True,
        graph(130429, "(#130429) Rate limit hit", fbtrace_id="T130429"),
    ),
    Case(
        "132000 parameter count",
        400,
        TemplateError,
        False,
        graph(
            132000,
            "(#132000) Number of parameters does not match the expected number of params",
            error_data={
                "messaging_product": "whatsapp",
                "details": "body: number of localizable_params (2) does not match the expected number of params (3)",
            },
            fbtrace_id="T132000",
        ),
    ),
    Case(
        "132001 template missing",
        404,
        TemplateError,
        False,
        graph(
            132001,
            "(#132001) Template name does not exist in the translation",
            fbtrace_id="T132001",
        ),
    ),
    Case(
        "190 invalid token",
        401,
        AuthenticationError,
        False,
        graph(190, "Invalid OAuth access token - Cannot parse access token", fbtrace_id="T190"),
    ),
    Case(
        "190/463 expired token",
        400,
        AccessTokenExpiredError,
        False,
        graph(
            190,
            "Error validating access token: Session has expired on Monday, 02-Mar-26 09:00:00 PST.",
            error_subcode=463,
            fbtrace_id="T463",
        ),
    ),
    Case(
        "368 policy block",
        403,
        PermissionDeniedError,
        False,
        graph(368, "(#368) Temporarily blocked for policies violations", fbtrace_id="T368"),
    ),
    Case(
        "80007 WABA rate limit",
        400,
        RateLimitError,
        True,
        graph(80007, "(#80007) Rate limit issues", fbtrace_id="T80007"),
    ),
    Case(
        "messenger 10/2018278 outside window",
        400,
        OutsideServiceWindowError,
        False,
        graph(
            10,
            "(#10) This message is sent outside of allowed window.",
            error_subcode=2018278,
            fbtrace_id="TM10",
        ),
    ),
    Case(
        "html 502 from a proxy",
        502,
        ServerError,
        True,
        content=HTML_502,
        headers={"x-fb-trace-id": "TRACE502"},
    ),
    Case("empty 503", 503, ServerError, True, headers={"x-fb-trace-id": "TRACE503"}),
    Case(
        "429 without body", 429, RateLimitError, True, headers={"retry-after": "7"}, retry_after=7.0
    ),
]


def _from(case: Case, **kwargs: Any) -> APIStatusError:
    return error_from_response(
        status_code=case.status, content=case.body, headers=case.response_headers, **kwargs
    )


def _assert_fields(exc: APIStatusError, case: Case) -> None:
    error = case.error or {}
    assert type(exc) is case.cls
    assert exc.status_code == case.status
    assert exc.code == error.get("code")
    assert exc.subcode == error.get("error_subcode")
    assert exc.error_type == error.get("type")
    assert exc.fbtrace_id == case.expected_trace_id
    assert exc.is_transient is bool(error.get("is_transient"))
    assert exc.error_data == error.get("error_data")
    assert exc.title == error.get("error_user_title")
    assert exc.user_message == error.get("error_user_msg")
    assert exc.retry_after == case.retry_after
    assert exc.retryable is case.retryable
    if case.error is not None:
        assert exc.body == {"error": case.error}
        assert case.error["message"] in str(exc)
    assert f"HTTP {case.status}" in str(exc)
    if exc.code is not None:
        assert f"code {exc.code}" in str(exc)
    if case.expected_trace_id:
        assert case.expected_trace_id in str(exc)
        assert case.expected_trace_id in repr(exc)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_error_response_maps_to_its_class_keeping_every_field(case: Case) -> None:
    exc = _from(case)

    _assert_fields(exc, case)
    assert isinstance(exc, APIError)
    assert isinstance(exc, WaflowError)
    assert exc.request is None
    assert exc.response is None
    assert exc.retries_taken == 0


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
@pytest.mark.parametrize("flavour", [Flavour("sync"), Flavour("async")], ids=lambda f: f.name)
def test_client_raises_the_mapped_error_with_the_real_request_and_response(
    case: Case, flavour: Flavour
) -> None:
    script = Script(case.response())
    wa = flavour.whatsapp(script, max_retries=0)

    with pytest.raises(APIStatusError) as info:
        flavour.run(wa.send_text(CUSTOMER, "Ihr Rad ist fertig!"))

    exc = info.value
    _assert_fields(exc, case)
    assert len(script.requests) == 1
    assert exc.request is script.requests[0]
    assert exc.request.method == "POST"
    assert exc.request.url.path == f"/v26.0/{PHONE_NUMBER_ID}/messages"
    assert exc.response is script.responses[0]
    assert exc.response.status_code == case.status
    assert exc.response.request is exc.request
    # A 5xx to a message send does not prove the message was not delivered.
    assert exc.maybe_sent is (case.status >= 500)


def test_messenger_window_error_keeps_code_10_and_its_subcode() -> None:
    exc = error_from_response(
        status_code=400,
        content=json.dumps(
            {"error": graph(10, "(#10) outside of allowed window", error_subcode=2018278)}
        ).encode(),
        headers={},
    )

    assert isinstance(exc, OutsideServiceWindowError)
    assert (exc.code, exc.subcode) == (10, 2018278)


def test_plain_code_10_is_a_permission_error_not_a_window_error() -> None:
    exc = error_from_response(
        status_code=400, content=json.dumps({"error": graph(10, "(#10) nope")}).encode(), headers={}
    )

    assert type(exc) is PermissionDeniedError


@pytest.mark.parametrize("subcode", [463, 467])
def test_token_expiry_subcodes_raise_access_token_expired(subcode: int) -> None:
    exc = error_from_response(
        status_code=400,
        content=json.dumps({"error": graph(190, "expired", error_subcode=subcode)}).encode(),
        headers={},
    )

    assert isinstance(exc, AccessTokenExpiredError)
    assert isinstance(exc, AuthenticationError)


def test_trace_id_comes_from_the_header_when_the_body_has_none() -> None:
    body = json.dumps({"error": graph(100, "(#100) Invalid parameter")}).encode()

    exc = error_from_response(
        status_code=400, content=body, headers=httpx.Headers({"X-FB-Trace-ID": "HeaderTrace"})
    )

    assert exc.fbtrace_id == "HeaderTrace"
    assert "HeaderTrace" in str(exc)


def test_trace_id_of_the_body_wins_over_the_header() -> None:
    body = json.dumps({"error": graph(100, "(#100) Invalid", fbtrace_id=TRACE_ID)}).encode()

    exc = error_from_response(
        status_code=400, content=body, headers={"x-fb-trace-id": "HeaderTrace"}
    )

    assert exc.fbtrace_id == TRACE_ID


def test_headers_given_as_a_plain_dict_are_read_case_insensitively() -> None:
    exc = error_from_response(
        status_code=429, content=b"", headers={"X-FB-Trace-Id": "MixedCase", "Retry-After": "12"}
    )

    assert exc.fbtrace_id == "MixedCase"
    assert exc.retry_after == 12.0


@pytest.mark.parametrize(
    ("value", "expected"),
    [("3", 3.0), ("0.5", 0.5), ("0", 0.0), ("-1", None), ("Wed, 21 Oct 2026 07:28:00 GMT", None)],
)
def test_retry_after_header_is_read_as_seconds(value: str, expected: float | None) -> None:
    exc = error_from_response(status_code=429, content=b"", headers={"retry-after": value})

    assert exc.retry_after == expected


def test_error_details_are_part_of_the_message() -> None:
    case = next(c for c in CASES if c.id == "132000 parameter count")

    exc = _from(case)

    assert "does not match the expected number of params (3)" in str(exc)


def test_html_error_page_is_summarised_in_the_message() -> None:
    exc = error_from_response(status_code=502, content=HTML_502, headers={})

    assert "502 Bad Gateway" in str(exc)
    assert "<html>" not in str(exc).lower()
    assert isinstance(exc.body, str)


def test_json_body_without_a_graph_error_is_not_called_empty() -> None:
    exc = error_from_response(
        status_code=400, content=b'{"error": "invalid_request", "detail": "boom"}', headers={}
    )

    assert type(exc) is InvalidRequestError
    assert exc.code is None
    assert exc.body == {"error": "invalid_request", "detail": "boom"}
    assert "empty body" not in str(exc)
    assert "invalid_request" in str(exc)


def test_string_codes_are_read_as_numbers() -> None:
    body = {"error": {"message": "limit", "code": "130429", "error_subcode": "2494055"}}

    exc = error_from_response(status_code=400, content=json.dumps(body).encode(), headers={})

    assert type(exc) is RateLimitError
    assert (exc.code, exc.subcode) == (130429, 2494055)


def test_pair_rate_limit_is_flagged() -> None:
    body = json.dumps({"error": graph(131056, "pair rate limit hit")}).encode()

    exc = error_from_response(status_code=400, content=body, headers={})

    assert exc.is_pair_rate_limit
    assert not error_from_response(
        status_code=400, content=json.dumps({"error": graph(130429, "x")}).encode(), headers={}
    ).is_pair_rate_limit


LOOKUP = GraphRequest("GET", "/1234567890")


@pytest.mark.parametrize(
    "exc",
    [
        *(_from(case) for case in CASES),
        # An unknown code on a 5xx: Meta's side failed; a lookup may be repeated.
        error_from_response(
            status_code=500,
            content=json.dumps({"error": graph(987654, "Unknown failure")}).encode(),
            headers={},
        ),
        # A code that only a change can fix stays permanent, whatever else the body says.
        error_from_response(
            status_code=400,
            content=json.dumps({"error": graph(100, "Invalid", is_transient=True)}).encode(),
            headers={},
        ),
        # is_transient on an otherwise unknown 4xx: Meta says try again.
        error_from_response(
            status_code=400,
            content=json.dumps({"error": graph(135000, "Generic", is_transient=True)}).encode(),
            headers={},
        ),
    ],
    ids=lambda exc: f"{exc.status_code}-{exc.code}-{exc.is_transient}",
)
def test_retryable_agrees_with_the_retry_decision_for_a_lookup(exc: APIStatusError) -> None:
    assert exc.retryable is should_retry(LOOKUP, exc)
