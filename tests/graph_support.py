"""Helpers for the Graph core tests: scripted transports and sync/async clients on a FrozenClock.

``Script`` answers requests from a list of canned responses (or raises canned transport errors) and
records every request it saw, so a test can assert on the exact requests and on how many were made.
``Flavour`` builds a sync or async WhatsApp client on it, so a test can run through both.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from waflow import AsyncWhatsApp, WhatsApp
from waflow.testing import FrozenClock

TOKEN = "EAAGtest0SECRET0token0b8f3c2d1e"
PHONE_NUMBER_ID = "106540352242922"
CUSTOMER = "4915112345678"
TRACE_ID = "AbCdEfGhIjKlMnOp"

Answer = httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]


def graph_error(
    status: int,
    code: int,
    *,
    subcode: int | None = None,
    message: str | None = None,
    error_type: str = "OAuthException",
    is_transient: bool | None = None,
    fbtrace_id: str | None = TRACE_ID,
    error_data: Any = None,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """An error response shaped like Meta's ``{"error": {...}}``."""
    error: dict[str, Any] = {
        "message": message or f"(#{code}) Simulated error",
        "type": error_type,
        "code": code,
    }
    if subcode is not None:
        error["error_subcode"] = subcode
    if is_transient is not None:
        error["is_transient"] = is_transient
    if error_data is not None:
        error["error_data"] = error_data
    if fbtrace_id is not None:
        error["fbtrace_id"] = fbtrace_id
    error.update(extra or {})
    return httpx.Response(status, json={"error": error}, headers=headers)


def sent(message_id: str = "wamid.HBgLOTE1MTEyMzQ1Njc4FQIAERgSQTE=") -> httpx.Response:
    """Meta's answer to an accepted message."""
    return httpx.Response(
        200,
        json={
            "messaging_product": "whatsapp",
            "contacts": [{"input": CUSTOMER, "wa_id": CUSTOMER}],
            "messages": [{"id": message_id}],
        },
    )


def media_info(media_id: str = "1234567890") -> httpx.Response:
    """Meta's answer to ``GET /{media-id}``."""
    return httpx.Response(
        200,
        json={
            "messaging_product": "whatsapp",
            "url": f"https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid={media_id}",
            "mime_type": "image/jpeg",
            "sha256": "0" * 64,
            "file_size": "10",
            "id": media_id,
        },
    )


class Script:
    """A transport handler that plays ``answers`` in order (the last one repeats) and records requests.

    An answer is a response, an exception to raise (``httpx.ConnectError``, ``httpx.ReadTimeout``…),
    or a function of the request.
    """

    def __init__(self, *answers: Answer) -> None:
        if not answers:
            raise ValueError("a script needs at least one answer")
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []
        self.responses: list[httpx.Response] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        index = min(len(self.requests), len(self.answers)) - 1
        answer = self.answers[index]
        if isinstance(answer, Exception):
            # A fresh exception each time, as a real transport would raise.
            raise type(answer)(str(answer))
        if isinstance(answer, httpx.Response):
            # A fresh copy per request: an httpx.Response can be read only once.
            response = httpx.Response(
                answer.status_code, headers=answer.headers, content=answer.content
            )
        else:
            response = answer(request)
        self.responses.append(response)
        return response

    @property
    def bodies(self) -> list[Any]:
        """The JSON bodies of the recorded requests (None for bodiless ones)."""
        return [json.loads(r.content) if r.content else None for r in self.requests]


@dataclass(frozen=True)
class Flavour:
    """Sync or async: builds the matching client and resolves what its calls return."""

    name: str

    @property
    def is_async(self) -> bool:
        return self.name == "async"

    def whatsapp(
        self, handler: Callable[[httpx.Request], httpx.Response], **options: Any
    ) -> WhatsApp | AsyncWhatsApp:
        """A client on a MockTransport running ``handler``, pacing off, on a FrozenClock."""
        settings: dict[str, Any] = {
            "access_token": TOKEN,
            "phone_number_id": PHONE_NUMBER_ID,
            "clock": FrozenClock(),
            "throughput": None,
        }
        settings.update(options)
        transport = httpx.MockTransport(handler)
        if self.is_async:
            return AsyncWhatsApp(http_client=httpx.AsyncClient(transport=transport), **settings)
        return WhatsApp(http_client=httpx.Client(transport=transport), **settings)

    @staticmethod
    def run(value: Any) -> Any:
        """The value itself (sync client) or the awaited coroutine's result (async client)."""
        if inspect.iscoroutine(value):
            return asyncio.run(value)
        return value


FLAVOURS = [Flavour("sync"), Flavour("async")]
