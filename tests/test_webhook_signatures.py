"""Signature vectors: X-Hub-Signature-256 is an HMAC-SHA256 of the raw body bytes."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from waflow.errors import WebhookVerificationError
from waflow.webhooks import sign, unwrap, verify_signature, verify_subscription

SECRET = "a3f9c0ffee5ecret"
# Meta escapes non-ASCII as \uXXXX in some fields and sends raw UTF-8 in others; sign the bytes.
BODY = (
    b'{"object":"page","entry":[{"id":"1","time":1750263775000,"messaging":[{"sender":{"id":"7"},'
    b'"recipient":{"id":"1"},"timestamp":1750263775000,"message":{"mid":"m_1",'
    b'"text":"Gr\\u00fc\\u00dfe aus K\\u00f6ln \xf0\x9f\x9a\xb2"}}]}]}'
)


def _hmac(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_valid_signature_over_non_ascii_bytes() -> None:
    verify_signature(BODY, _hmac(BODY), SECRET)
    assert sign(BODY, SECRET) == _hmac(BODY)
    (event,) = unwrap(BODY, {"X-Hub-Signature-256": _hmac(BODY)}, app_secret=SECRET)
    assert getattr(event, "text", None) == "Grüße aus Köln 🚲"


def test_uppercase_hex_digest_is_accepted() -> None:
    upper = _hmac(BODY).upper().replace("SHA256=", "sha256=")
    assert upper != _hmac(BODY)
    assert verify_signature(BODY, upper, SECRET) is None
    with pytest.raises(WebhookVerificationError):  # but still compared: one digit off fails
        verify_signature(BODY, upper[:-1] + ("0" if upper[-1] != "0" else "1"), SECRET)


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "missing"),
        ("", "missing"),
        ("sha256=" + "0" * 64, "does not match"),
        (_hmac(BODY, "another-secret"), "does not match"),
        (_hmac(BODY)[:-2], "64 hex characters"),
        ("sha256=" + "z" * 64, "64 hex characters"),
        ("md5=abc", "malformed"),
        ("sha256", "malformed"),
        ("sha1=" + hmac.new(SECRET.encode(), BODY, hashlib.sha1).hexdigest(), "sha1 signatures"),
    ],
)
def test_bad_signatures_are_refused(header: str | None, reason: str) -> None:
    with pytest.raises(WebhookVerificationError) as info:
        verify_signature(BODY, header, SECRET)
    assert reason in str(info.value)


def test_a_body_reserialized_after_signing_fails() -> None:
    signature = _hmac(BODY)
    reserialized = json.dumps(json.loads(BODY)).encode()
    assert reserialized != BODY
    with pytest.raises(WebhookVerificationError, match="does not match"):
        verify_signature(reserialized, signature, SECRET)


def test_unwrap_finds_the_header_case_insensitively_and_refuses_sha1_only() -> None:
    assert unwrap(BODY, {"x-hub-signature-256": _hmac(BODY)}, app_secret=SECRET)
    sha1 = "sha1=" + hmac.new(SECRET.encode(), BODY, hashlib.sha1).hexdigest()
    with pytest.raises(WebhookVerificationError, match="only a sha1"):
        unwrap(BODY, {"X-Hub-Signature": sha1}, app_secret=SECRET)


def test_an_empty_secret_cannot_verify_anything() -> None:
    with pytest.raises(WebhookVerificationError, match="no app secret"):
        verify_signature(BODY, _hmac(BODY), "")


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"hub.mode": "unsubscribe", "hub.verify_token": "vt", "hub.challenge": "1"}, "hub.mode"),
        (
            {"hub.mode": "subscribe", "hub.verify_token": "nope", "hub.challenge": "1"},
            "does not match",
        ),
        ({"hub.mode": "subscribe", "hub.challenge": "1"}, "does not match"),
        ({"hub.mode": "subscribe", "hub.verify_token": "vt"}, "challenge is missing"),
    ],
)
def test_handshake_refusals(params: dict[str, str], reason: str) -> None:
    with pytest.raises(WebhookVerificationError) as info:
        verify_subscription(params, "vt")
    assert reason in str(info.value)


def test_handshake_returns_the_challenge() -> None:
    params = {"hub.mode": "subscribe", "hub.verify_token": "vt", "hub.challenge": "1158201444"}
    assert verify_subscription(params, "vt") == "1158201444"
