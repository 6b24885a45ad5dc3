"""The exception tree of waflow, and the mapping from Graph API errors to it.

Every exception waflow raises on purpose derives from :class:`WaflowError`::

    WaflowError
     ├─ APIError                              anything that went wrong talking to Meta
     │   ├─ APIConnectionError                no usable HTTP response (DNS, refused, reset)
     │   │   └─ APITimeoutError               the request timed out
     │   ├─ APIResponseValidationError        a success answer that is not what Meta documents
     │   └─ APIStatusError                    Meta answered with an error
     │       ├─ RateLimitError                throttling (4, 17, 32, 613, 80007, 130429, 131056)
     │       ├─ OutsideServiceWindowError     131047 (also raised locally, before a request)
     │       ├─ TemplateError                 132xxx (also raised locally by template checks)
     │       ├─ RecipientError                131026 and other undeliverable recipients
     │       ├─ PermissionDeniedError         10, 200-299, 368 (policy block)
     │       ├─ InvalidRequestError           100 and other malformed requests
     │       ├─ ServerError                   5xx, 1, 2, 131000, 131016
     │       └─ AuthenticationError           190 and 102
     │           └─ AccessTokenExpiredError   190 with subcode 463 / 467
     ├─ MessageValidationError                a message breaks one of Meta's limits, found locally
     ├─ RenderError                           a shop text cannot be rendered (waflow.render)
     ├─ ConsentRequiredError                  business-initiated WhatsApp message without opt-in
     ├─ WebhookVerificationError, WebhookPayloadError
     ├─ ConfigError, FlowDefinitionError, ConcurrentUpdateError

The Graph ``error.code`` decides the class first; the HTTP status only when there is no code (an HTML
502 from a proxy, an empty 503).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from waflow._http import Request, Response

__all__ = [
    "PERMANENT_CODES",
    "THROTTLING_CODES",
    "APIConnectionError",
    "APIError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AccessTokenExpiredError",
    "AuthenticationError",
    "ConcurrentUpdateError",
    "ConfigError",
    "ConsentRequiredError",
    "FlowDefinitionError",
    "InvalidRequestError",
    "MessageValidationError",
    "OutsideServiceWindowError",
    "PermissionDeniedError",
    "RateLimitError",
    "RecipientError",
    "RenderError",
    "ServerError",
    "TemplateError",
    "WaflowError",
    "WebhookPayloadError",
    "WebhookVerificationError",
    "error_from_response",
    "is_permanent_code",
]

#: Graph codes that mean "too many requests, try again later".
THROTTLING_CODES = frozenset({4, 17, 32, 613, 80007, 80014, 130429, 131056})
#: The pair rate limit: too many messages to the same customer in a short time.
PAIR_RATE_LIMIT_CODE = 131056
#: Codes Meta documents as temporary failures on its side.
TRANSIENT_CODES = frozenset({1, 2, 131000, 131016})
#: Codes that stay errors until something changes (request, recipient, window, token, policy);
#: every template code (132xxx) too.
PERMANENT_CODES = frozenset({100, 131008, 131026, 131047, 190, 368})
_AUTH_CODES = frozenset({102, 190})
_EXPIRED_TOKEN_SUBCODES = frozenset({463, 467})
#: Messenger's "outside of allowed window" comes as code 10 with this subcode.
_MESSENGER_WINDOW_SUBCODE = 2018278
_RECIPIENT_CODES = frozenset({131026, 131021, 131030, 131045})
_PERMISSION_CODES = frozenset({3, 10, 368, 131031}) | frozenset(range(200, 300))


class WaflowError(Exception):
    """Base class of every error waflow raises on purpose."""


class ConfigError(WaflowError):
    """A setting is missing or malformed; the message names the ``WAFLOW_*`` variable or argument."""


class MessageValidationError(WaflowError):
    """A message breaks one of Meta's limits; found before any request is made.

    Deliberately not a ``ValueError``: pydantic would wrap a ``ValueError`` raised in a validator,
    burying the limit it names; this error reaches the caller as it was raised.

    ``limit`` names the rule (for example ``"reply buttons <= 3"``), ``field`` the offending location.
    """

    def __init__(self, message: str, *, limit: str | None = None, field: str | None = None) -> None:
        if limit is not None and limit not in message:
            message = f"{message} (limit: {limit})"
        super().__init__(message)
        self.limit = limit
        self.field = field


class RenderError(WaflowError):
    """A shop text could not be rendered (:mod:`waflow.render`).

    Raised for a text that exists in no locale of the fallback chain, a template with a syntax
    error, a variable the template uses but was not given (templates render with jinja2's
    ``StrictUndefined``), and a value a filter cannot format. Never a bare jinja2 exception: the
    original one is the ``__cause__``.

    Attributes, each ``None`` when it does not apply: ``template`` (the name asked for, e.g.
    ``"product_card"``), ``locale`` (the locale asked for), ``path`` (the template chosen, e.g.
    ``"de/product_card.j2"``), ``filename`` and ``lineno`` (where in which file),
    ``variable`` (the undefined name, e.g. ``"product.price"``).
    """

    def __init__(
        self,
        message: str,
        *,
        template: str | None = None,
        locale: str | None = None,
        path: str | None = None,
        filename: str | None = None,
        lineno: int | None = None,
        variable: str | None = None,
    ) -> None:
        super().__init__(message)
        self.template = template
        self.locale = locale
        self.path = path
        self.filename = filename
        self.lineno = lineno
        self.variable = variable


class ConsentRequiredError(WaflowError):
    """A business-initiated WhatsApp message was about to go to a customer without a recorded opt-in."""


class WebhookVerificationError(WaflowError):
    """A webhook request failed verification (signature or verify token); answer 401/403."""


class WebhookPayloadError(WaflowError):
    """A webhook body is not a webhook of a known channel (or not JSON); answer 400."""


class FlowDefinitionError(WaflowError):
    """A conversation flow is ill-formed (unknown, unreachable or trap states)."""


class ConcurrentUpdateError(WaflowError):
    """A conversation was saved by someone else since it was loaded (optimistic version check)."""


class APIError(WaflowError):
    """Something went wrong while talking to Meta's Graph API.

    ``request`` is the request that failed (when one was built); ``retries_taken`` how many times the
    client retried before giving up.
    """

    request: Request | None
    retries_taken: int

    def __init__(self, message: str, *, request: Request | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.request = request
        self.retries_taken = 0

    @property
    def retryable(self) -> bool:
        """Whether trying the same request again later can succeed without changing anything."""
        return False


class APIConnectionError(APIError):
    """No usable HTTP response arrived (DNS failure, connection refused or reset).

    ``maybe_sent`` is true when the request may have reached Meta before the failure; a caller that
    retries such a request must accept that it could be executed twice.
    """

    def __init__(
        self,
        message: str = "Connection to the Graph API failed.",
        *,
        request: Request | None = None,
        maybe_sent: bool = False,
    ) -> None:
        super().__init__(message, request=request)
        self.maybe_sent = maybe_sent

    @property
    def retryable(self) -> bool:
        return True


class APITimeoutError(APIConnectionError):
    """The request timed out. With ``maybe_sent=True`` Meta may have acted on it anyway."""

    def __init__(
        self,
        message: str = "Request to the Graph API timed out.",
        *,
        request: Request | None = None,
        maybe_sent: bool = False,
    ) -> None:
        super().__init__(message, request=request, maybe_sent=maybe_sent)


class APIResponseValidationError(APIError):
    """Meta answered 2xx, but the body is not what its documentation promises (not JSON, no id)."""

    def __init__(
        self, message: str, *, request: Request | None = None, response: Response | None = None
    ) -> None:
        super().__init__(message, request=request)
        self.response = response


class APIStatusError(APIError):
    """Meta answered with an error status.

    Attributes keep everything Meta said: ``status_code`` (HTTP), ``code`` and ``subcode`` (Graph),
    ``error_type``, ``fbtrace_id`` (quote it to Meta's support), ``is_transient``, ``error_data``,
    ``title``, ``user_message``, the parsed ``body`` and the ``response``. ``retry_after`` holds the
    ``Retry-After`` header in seconds when Meta sent one. ``maybe_sent`` is true when a message send
    failed in a way (5xx) that does not prove the message was not delivered.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        code: int | None = None,
        subcode: int | None = None,
        error_type: str | None = None,
        fbtrace_id: str | None = None,
        is_transient: bool = False,
        error_data: Any = None,
        title: str | None = None,
        user_message: str | None = None,
        body: Any = None,
        retry_after: float | None = None,
        request: Request | None = None,
        response: Response | None = None,
        maybe_sent: bool = False,
    ) -> None:
        super().__init__(message, request=request)
        self.status_code = status_code
        self.code = code
        self.subcode = subcode
        self.error_type = error_type
        self.fbtrace_id = fbtrace_id
        self.is_transient = is_transient
        self.error_data = error_data
        self.title = title
        self.user_message = user_message
        self.body = body
        self.retry_after = retry_after
        self.response = response
        self.maybe_sent = maybe_sent

    @property
    def retryable(self) -> bool:
        # The code decides first: a permanent code stays permanent whatever else Meta says.
        if is_permanent_code(self.code):
            return False
        return (
            self.is_transient
            or self.code in THROTTLING_CODES
            or self.code in TRANSIENT_CODES
            or self.status_code >= 500
            or self.status_code == 429
        )

    @property
    def is_pair_rate_limit(self) -> bool:
        """True for 131056: too many messages to one customer; wait longer before the next."""
        return self.code == PAIR_RATE_LIMIT_CODE

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status_code={self.status_code}, code={self.code}, "
            f"subcode={self.subcode}, fbtrace_id={self.fbtrace_id!r}, message={self.message!r})"
        )


class RateLimitError(APIStatusError):
    """Throttled by Meta: 4, 17, 32, 613, 80007 (app/account), 130429 (throughput), 131056 (pair)."""


class OutsideServiceWindowError(APIStatusError):
    """A free-form message outside the 24-hour customer service window (131047).

    Raised by Meta, or locally before any request when waflow knows the window is closed; send an
    approved template instead.
    """

    def __init__(
        self, message: str, *, status_code: int = 400, code: int | None = 131047, **kw: Any
    ):
        super().__init__(message, status_code=status_code, code=code, **kw)


class TemplateError(APIStatusError):
    """A template does not exist, is not approved, or its parameters do not match (132xxx).

    Also raised locally by the template checks, with a message that names the fix.
    """

    def __init__(self, message: str, *, status_code: int = 400, code: int | None = None, **kw: Any):
        super().__init__(message, status_code=status_code, code=code, **kw)


class RecipientError(APIStatusError):
    """The recipient cannot receive the message (131026: not on WhatsApp, old app, blocked us …)."""


class PermissionDeniedError(APIStatusError):
    """The token lacks a permission, or the account is blocked for policy (368)."""


class InvalidRequestError(APIStatusError):
    """Meta rejected the request as malformed (100 and friends); fix the request, don't retry it."""


class ServerError(APIStatusError):
    """A failure on Meta's side (5xx, 1, 2, 131000, 131016); usually goes away on its own."""


class AuthenticationError(APIStatusError):
    """The access token is invalid (190, 102)."""


class AccessTokenExpiredError(AuthenticationError):
    """The access token expired or was invalidated (190 with subcode 463 or 467); issue a new one."""


def is_permanent_code(code: int | None) -> bool:
    """Whether Graph ``code`` means "this fails until the request, template, token or policy changes"."""
    return code is not None and (code in PERMANENT_CODES or 132000 <= code <= 132999)


#: Shorter strings are not credentials; replacing them would only garble messages.
_MIN_SECRET_LENGTH = 8
_REDACTED = "[redacted]"


def request_credentials(request: Request | None) -> list[str]:
    """The credentials ``request`` carries (bearer token, ``access_token`` parameter), to redact."""
    if request is None:
        return []
    found: list[str] = []
    authorization = request.headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer":
        found.append(token.strip())
    param = request.url.params.get("access_token")
    if param:
        found.append(param)
    return [secret for secret in found if len(secret) >= _MIN_SECRET_LENGTH]


def redact(value: Any, secrets: Iterable[str]) -> Any:
    """``value`` (a string, or JSON of dicts and lists) with every secret replaced.

    Meta echoes a malformed token in its error message, and transports quote illegal header values:
    neither may carry the credential into an exception text or a log line.
    """
    secrets = [secret for secret in secrets if len(secret) >= _MIN_SECRET_LENGTH]
    if not secrets:
        return value
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, _REDACTED)
        return value
    if isinstance(value, Mapping):
        return {key: redact(item, secrets) for key, item in value.items()}
    if isinstance(value, list):
        return [redact(item, secrets) for item in value]
    return value


def _class_for(code: int | None, subcode: int | None, status_code: int) -> type[APIStatusError]:
    # Graph code first: Meta answers 400 for nearly everything, so the status says little.
    if code is not None:
        if code in THROTTLING_CODES:
            return RateLimitError
        if code == 131047 or (code == 10 and subcode == _MESSENGER_WINDOW_SUBCODE):
            return OutsideServiceWindowError
        if 132000 <= code <= 132999:
            return TemplateError
        if code in _RECIPIENT_CODES:
            return RecipientError
        if code in _AUTH_CODES:
            if subcode in _EXPIRED_TOKEN_SUBCODES:
                return AccessTokenExpiredError
            return AuthenticationError
        if code in _PERMISSION_CODES:
            return PermissionDeniedError
        if code in TRANSIENT_CODES:
            return ServerError
    if status_code == 429:
        return RateLimitError
    if status_code in (401,):
        return AuthenticationError
    if status_code == 403:
        return PermissionDeniedError
    if status_code >= 500:
        return ServerError
    return InvalidRequestError


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def _retry_after(headers: Mapping[str, str]) -> float | None:
    raw = headers.get("retry-after")
    if raw is None:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        return None  # HTTP-date form: Meta doesn't send it; ignore rather than guess
    return seconds if seconds >= 0 else None


def error_from_response(
    *,
    status_code: int,
    content: bytes,
    headers: Mapping[str, str],
    request: Request | None = None,
    response: Response | None = None,
    maybe_sent: bool = False,
) -> APIStatusError:
    """Build the right :class:`APIStatusError` subclass for an error response of the Graph API.

    Works on any body: a Graph ``{"error": {...}}`` object, an HTML page from a proxy, or nothing.
    ``headers`` are read case-insensitively. The credentials of ``request`` are redacted from the
    parsed body and so from every field and message derived from it.
    """
    headers = {str(name).lower(): value for name, value in headers.items()}
    body: Any = None
    error: Mapping[str, Any] = {}
    if content:
        try:
            body = json.loads(content)
        except (ValueError, UnicodeDecodeError):
            body = content.decode("utf-8", errors="replace")[:500]
    body = redact(body, request_credentials(request))
    if isinstance(body, Mapping) and isinstance(body.get("error"), Mapping):
        error = body["error"]

    code = _as_int(error.get("code"))
    subcode = _as_int(error.get("error_subcode"))
    fbtrace_id = error.get("fbtrace_id") or headers.get("x-fb-trace-id")
    raw_message = error.get("message") if isinstance(error.get("message"), str) else None
    error_data = error.get("error_data")
    details = error_data.get("details") if isinstance(error_data, Mapping) else None

    parts = [raw_message or _fallback_message(status_code, body)]
    if isinstance(details, str) and details and details not in parts[0]:
        parts.append(details)
    tags = [f"HTTP {status_code}"]
    if code is not None:
        tags.append(f"code {code}" + (f"/{subcode}" if subcode is not None else ""))
    if fbtrace_id:
        tags.append(f"fbtrace_id {fbtrace_id}")
    message = f"{' — '.join(parts)} ({', '.join(tags)})"

    cls = _class_for(code, subcode, status_code)
    return cls(
        message,
        status_code=status_code,
        code=code,
        subcode=subcode,
        error_type=error.get("type") if isinstance(error.get("type"), str) else None,
        fbtrace_id=fbtrace_id if isinstance(fbtrace_id, str) else None,
        is_transient=error.get("is_transient") is True,
        error_data=error_data,
        title=error.get("error_user_title") or error.get("title"),
        user_message=error.get("error_user_msg"),
        body=body,
        retry_after=_retry_after(headers),
        request=request,
        response=response,
        maybe_sent=maybe_sent,
    )


_MARKUP = re.compile(r"<(script|style)\b.*?</\1\s*>|<[^>]*>", re.IGNORECASE | re.DOTALL)


def _fallback_message(status_code: int, body: Any) -> str:
    if body is None or (isinstance(body, str) and not body.strip()):
        return "Graph API answered with an empty body"
    # An HTML page from a proxy reads as its text; any other JSON as itself.
    text = _MARKUP.sub(" ", body) if isinstance(body, str) else json.dumps(body)
    snippet = " ".join(text.split())[:120]
    if not snippet:
        return "Graph API answered without a Graph error"
    return f"Graph API answered without a Graph error: {snippet}"
