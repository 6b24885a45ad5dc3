"""Webhooks of both channels: signature check, subscription handshake, and parsing into events.

>>> events = parse(body)                       # every item of every entry and change, in order
>>> verify_signature(raw_bytes, request.headers.get("X-Hub-Signature-256"), app_secret)
>>> events = unwrap(raw_bytes, request.headers, app_secret=app_secret)   # both at once

:func:`parse` never drops an item: kinds waflow does not model become :class:`~waflow.events.
Unsupported` events, and only a body that is not a webhook at all raises
:class:`~waflow.errors.WebhookPayloadError`. :func:`verify_signature` checks Meta's
``X-Hub-Signature-256`` (HMAC-SHA256 of the *raw* body with the app secret) in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timezone
from typing import Any

from pydantic import SecretStr, ValidationError
from pydantic_core import from_json

from waflow.errors import WebhookPayloadError, WebhookVerificationError
from waflow.events import Event, Unsupported, utc_from_unix
from waflow.messenger.events import (
    MessengerDelivery,
    MessengerEcho,
    MessengerMessage,
    MessengerOptin,
    MessengerPostback,
    MessengerReaction,
    MessengerRead,
    MessengerReferral,
)
from waflow.whatsapp.events import (
    ErrorDetail,
    TemplateCategoryUpdate,
    TemplateQualityUpdate,
    TemplateStatusUpdate,
    WhatsAppError,
    WhatsAppMessage,
    WhatsAppStatus,
)

__all__ = [
    "SIGNATURE_HEADER",
    "parse",
    "sign",
    "unwrap",
    "verify_signature",
    "verify_subscription",
]

SIGNATURE_HEADER = "X-Hub-Signature-256"
_SHA1_HEADER = "x-hub-signature"
_WHATSAPP_OBJECT = "whatsapp_business_account"
_MESSENGER_OBJECT = "page"
_TEMPLATE_EVENTS: dict[str, Callable[..., Event]] = {
    "message_template_status_update": TemplateStatusUpdate.model_validate,
    "message_template_quality_update": TemplateQualityUpdate.model_validate,
    "template_category_update": TemplateCategoryUpdate.model_validate,
}


def _secret(app_secret: str | SecretStr) -> bytes:
    value = app_secret.get_secret_value() if isinstance(app_secret, SecretStr) else app_secret
    if not value:
        raise WebhookVerificationError("no app secret configured: cannot verify webhook signatures")
    return value.encode()


def sign(body: bytes, app_secret: str | SecretStr) -> str:
    """The ``X-Hub-Signature-256`` value Meta would send for ``body`` (``sha256=<hex>``)."""
    return "sha256=" + hmac.new(_secret(app_secret), body, hashlib.sha256).hexdigest()


def verify_signature(
    body: bytes, signature_header: str | None, app_secret: str | bytes | SecretStr
) -> None:
    """Check ``X-Hub-Signature-256`` against the raw ``body``; raise if it does not match.

    Raises :class:`WebhookVerificationError` for a missing, malformed, sha1-only or wrong signature.
    Verify the bytes as received: a body that was parsed and serialized again no longer matches.
    """
    secret = app_secret if isinstance(app_secret, bytes) else _secret(app_secret)
    if not secret:
        raise WebhookVerificationError("no app secret configured: cannot verify webhook signatures")
    if not signature_header:
        raise WebhookVerificationError(f"missing {SIGNATURE_HEADER} header")
    expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    # Meta sends exactly `sha256=<lowercase hex>`: compare that first, in constant time, and
    # look at the header's shape only to explain a mismatch.
    if hmac.compare_digest(expected, signature_header):
        return
    scheme, separator, digest = signature_header.strip().partition("=")
    scheme = scheme.strip().lower()
    if scheme == "sha1":
        raise WebhookVerificationError(
            f"sha1 signatures are not accepted: verify {SIGNATURE_HEADER} (sha256=…)"
        )
    if scheme != "sha256" or not separator:
        raise WebhookVerificationError(
            f"malformed {SIGNATURE_HEADER}: expected sha256=<hex digest>"
        )
    digest = digest.strip().lower()
    try:
        valid_hex = len(digest) == 64 and len(bytes.fromhex(digest)) == 32
    except ValueError:
        valid_hex = False
    if not valid_hex:
        raise WebhookVerificationError(
            f"malformed {SIGNATURE_HEADER}: the digest must be 64 hex characters"
        )
    if not hmac.compare_digest(expected[7:], digest):
        raise WebhookVerificationError(f"{SIGNATURE_HEADER} does not match the body")


def _header(headers: Mapping[str, str], name: str) -> str | None:
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    return None


def unwrap(body: bytes, headers: Mapping[str, str], *, app_secret: str | SecretStr) -> list[Event]:
    """Verify the signature of a webhook POST, then parse it: ``verify_signature`` + ``parse``."""
    signature = _header(headers, SIGNATURE_HEADER)
    if signature is None and _header(headers, _SHA1_HEADER) is not None:
        raise WebhookVerificationError(
            f"only a sha1 X-Hub-Signature was sent; waflow verifies {SIGNATURE_HEADER}"
        )
    verify_signature(body, signature, app_secret)
    return parse(body)


def verify_subscription(params: Mapping[str, str], verify_token: str | SecretStr) -> str:
    """Answer Meta's subscription handshake: return ``hub.challenge`` to echo as plain text.

    Raises :class:`WebhookVerificationError` unless ``hub.mode == "subscribe"`` and
    ``hub.verify_token`` equals ``verify_token`` (compared in constant time).
    """
    expected = (
        verify_token.get_secret_value() if isinstance(verify_token, SecretStr) else verify_token
    )
    if not expected:
        raise WebhookVerificationError("no verify token configured")
    if params.get("hub.mode") != "subscribe":
        raise WebhookVerificationError("hub.mode must be 'subscribe'")
    given = params.get("hub.verify_token") or ""
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise WebhookVerificationError("hub.verify_token does not match")
    challenge = params.get("hub.challenge")
    if not challenge:
        raise WebhookVerificationError("hub.challenge is missing")
    return challenge


def _load(body: bytes | bytearray | memoryview | str | Mapping[str, Any]) -> Mapping[str, Any]:
    # Concrete types first: bytes is what a server hands over, and an ABC check is slower.
    if not isinstance(body, (bytes, bytearray, memoryview, str)):
        if isinstance(body, Mapping):
            return body
        raise WebhookPayloadError(f"body must be bytes, str or a dict, not {type(body).__name__}")
    if isinstance(body, memoryview):  # the one of the four that pydantic-core does not take
        body = body.tobytes()
    try:
        # pydantic-core's parser reads the bytes in one pass, about twice as fast as
        # decode + json.loads on Meta's bodies. It is stricter (lone surrogate escapes, nesting
        # over 200, a str holding a lone surrogate, which it reports as a TypeError): whatever it
        # refuses goes through the standard library, whose answer (a value, or the reason it is
        # not JSON) is the one given.
        loaded = from_json(body, cache_strings="keys")
    except (ValueError, TypeError):
        loaded = _load_stdlib(body)
    if not isinstance(loaded, dict):  # both parsers make dicts of objects
        raise WebhookPayloadError(f"body must be a JSON object, got {type(loaded).__name__}")
    return loaded


def _load_stdlib(body: bytes | bytearray | memoryview | str) -> Any:
    if isinstance(body, str):
        text = body
    else:
        try:
            text = bytes(body).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise WebhookPayloadError(f"body is not UTF-8: {exc.reason}") from None
    try:
        return json.loads(text)
    except RecursionError:
        raise WebhookPayloadError("body is not valid JSON: nested too deeply") from None
    except ValueError as exc:
        raise WebhookPayloadError(f"body is not valid JSON: {exc}") from None


def parse(
    body: bytes | str | Mapping[str, Any], *, received_at: datetime | None = None
) -> list[Event]:
    """Every event of a webhook body of either channel, in order (entry x change x item).

    ``received_at`` stamps events whose payload carries no time of its own (default: now).
    Raises :class:`WebhookPayloadError` with the reason when the body is not a webhook.
    """
    data = _load(body)
    obj = data.get("object")
    entries = data.get("entry")
    if not isinstance(obj, str):
        raise WebhookPayloadError("not a webhook: `object` is missing")
    if not isinstance(entries, list):
        raise WebhookPayloadError("not a webhook: `entry` must be a list")
    now = received_at or datetime.now(timezone.utc)
    try:
        if obj == _WHATSAPP_OBJECT:
            return _whatsapp_events(entries, now)
        if obj == _MESSENGER_OBJECT:
            return list(_messenger_events(entries, now))
        return [_unsupported(entry, "whatsapp", obj, now) for entry in _dicts(entries, "entry")]
    except ValidationError as exc:
        raise WebhookPayloadError(f"malformed {obj} webhook: {_first_error(exc)}") from None
    except RecursionError:
        raise WebhookPayloadError("malformed webhook: nested too deeply") from None


def _first_error(exc: ValidationError) -> str:
    error = exc.errors(include_url=False, include_input=False)[0]
    location = ".".join(str(part) for part in error["loc"]) or exc.title
    return f"{location}: {error['msg']}"


def _dicts(value: Any, what: str) -> list[dict[str, Any]]:
    if value is None:
        return []
    if isinstance(value, list):
        for item in value:
            if not isinstance(item, dict):
                break
        else:
            return value
    raise WebhookPayloadError(f"malformed webhook: `{what}` must be a list of objects")


def _digest(item: Any) -> str:
    encoded = json.dumps(item, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(encoded).hexdigest()[:32]


def _unsupported(
    item: Mapping[str, Any], channel: str, field: str, now: datetime, **extra: Any
) -> Unsupported:
    sender = item.get("from") or item.get("sender", {}) or extra.get("business_account_id") or ""
    if isinstance(sender, dict):
        sender = sender.get("id", "")
    stamp = item.get("timestamp")
    return Unsupported.model_validate(
        {
            "channel": channel,
            "id": str(item.get("id") or item.get("mid") or f"{field}:{_digest(item)}"),
            "sender_id": str(sender),
            "timestamp": utc_from_unix(stamp, milliseconds=channel == "messenger")
            if stamp
            else now,
            "field": field,
            "raw": dict(item),
            **extra,
        }
    )


# -- WhatsApp ----------------------------------------------------------------------------------


def _whatsapp_events(entries: list[Any], now: datetime) -> list[Event]:
    # Plain loops appending to one list, not nested generators: this runs for every POST.
    events: list[Event] = []
    for entry in _dicts(entries, "entry"):
        waba_id = str(entry.get("id") or "")
        entry_time = entry.get("time") or now
        for change in _dicts(entry.get("changes"), "changes"):
            field = change.get("field")
            value = change.get("value")
            if not isinstance(field, str) or not isinstance(value, dict):
                raise WebhookPayloadError(
                    "malformed WhatsApp webhook: a change needs field and value"
                )
            if field == "messages":
                _whatsapp_message_change(events, value, waba_id, entry_time, now)
            elif field in _TEMPLATE_EVENTS:
                events.append(_template_event(field, value, waba_id, entry_time))
            else:
                events.extend(_whatsapp_unknown(field, value, waba_id, now))
    return events


def _envelope(value: Mapping[str, Any], waba_id: str) -> dict[str, Any]:
    metadata = value.get("metadata")
    if not isinstance(metadata, dict):
        metadata = {}
    return {
        "phone_number_id": metadata.get("phone_number_id"),
        "display_phone_number": metadata.get("display_phone_number"),
        "waba_id": waba_id,
    }


def _contact_for(item: Mapping[str, Any], contacts: list[dict[str, Any]]) -> dict[str, Any]:
    sender = item.get("from")
    if sender:
        for contact in contacts:
            if contact.get("wa_id") == sender:
                return contact
    user_id = item.get("from_user_id")
    if user_id:
        for contact in contacts:
            if contact.get("user_id") == user_id:
                return contact
    return contacts[0] if len(contacts) == 1 else {}


def _whatsapp_message_change(
    events: list[Event], value: dict[str, Any], waba_id: str, entry_time: Any, now: datetime
) -> None:
    envelope = _envelope(value, waba_id)
    contacts = _dicts(value.get("contacts"), "contacts")
    messages = _dicts(value.get("messages"), "messages")
    statuses = _dicts(value.get("statuses"), "statuses")
    errors = _dicts(value.get("errors"), "errors")
    for item in messages:
        contact = _contact_for(item, contacts) if contacts else {}
        profile = contact.get("profile")
        if not isinstance(profile, dict):
            profile = {}
        user_id = contact.get("user_id") or item.get("from_user_id")
        wa_id = contact.get("wa_id")
        events.append(
            WhatsAppMessage.model_validate(
                {
                    **item,
                    **envelope,
                    "sender_id": item.get("from") or user_id or wa_id or "",
                    "profile_name": profile.get("name"),
                    "wa_id": wa_id,
                    "user_id": user_id,
                    "username": profile.get("username") or contact.get("username"),
                    "raw": item,
                }
            )
        )
    for item in statuses:
        events.append(
            WhatsAppStatus.model_validate(
                {
                    **item,
                    **envelope,
                    "sender_id": item.get("recipient_id") or item.get("recipient_user_id") or "",
                    "raw": item,
                }
            )
        )
    for item in errors:
        events.append(
            WhatsAppError.model_validate(
                {
                    **envelope,
                    "id": envelope["phone_number_id"] or waba_id,
                    "sender_id": waba_id,
                    "timestamp": entry_time,
                    "error": ErrorDetail.from_raw(item),
                    "raw": item,
                }
            )
        )
    if not (messages or statuses or errors):
        events.append(_unsupported(value, "whatsapp", "messages", now, business_account_id=waba_id))


def _template_event(field: str, value: dict[str, Any], waba_id: str, entry_time: Any) -> Event:
    template_id = value.get("message_template_id") or value.get("message_template_name") or ""
    return _TEMPLATE_EVENTS[field](
        {
            **value,
            "id": str(template_id),
            "sender_id": waba_id,
            "waba_id": waba_id,
            "timestamp": entry_time,
            "raw": value,
        }
    )


def _whatsapp_unknown(
    field: str, value: dict[str, Any], waba_id: str, now: datetime
) -> Iterator[Event]:
    # One event per item of the change's list of objects (e.g. `groups`), else one for the change.
    lists = [
        items
        for key, items in value.items()
        if key not in ("contacts", "metadata")
        and isinstance(items, list)
        and items
        and all(isinstance(item, dict) for item in items)
    ]
    extra = {"business_account_id": waba_id, **_envelope(value, waba_id)}
    if not lists:
        yield _unsupported(value, "whatsapp", field, now, **extra)
        return
    for items in lists:
        for item in items:
            yield _unsupported(item, "whatsapp", field, now, **extra)


# -- Messenger ---------------------------------------------------------------------------------


def _messenger_events(entries: list[Any], now: datetime) -> Iterator[Event]:
    for entry in _dicts(entries, "entry"):
        page_id = str(entry.get("id") or "")
        # Some items carry no timestamp of their own (Meta's message_deliveries example has
        # none): the entry's `time` (milliseconds, like the items') is the next best time.
        entry_time = utc_from_unix(entry.get("time"), milliseconds=True)
        if not isinstance(entry_time, datetime):
            entry_time = now
        for item in _dicts(entry.get("messaging"), "messaging"):
            yield _messenger_event(item, page_id, entry_time)
        for item in _dicts(entry.get("standby"), "standby"):
            # Another app owns the thread (conversation routing): visible, but not for replies.
            yield _unsupported(item, "messenger", "standby", entry_time, page_id=page_id)
        for change in _dicts(entry.get("changes"), "changes"):
            yield _unsupported(change, "messenger", str(change.get("field", "changes")), entry_time)


def _party(item: Mapping[str, Any], key: str) -> str:
    party = item.get(key)
    if not isinstance(party, dict):
        return ""
    return str(party.get("id") or party.get("user_ref") or "")


def _messenger_event(item: dict[str, Any], page_id: str, default_time: datetime) -> Event:
    sender = _party(item, "sender")
    recipient = _party(item, "recipient")
    optin = item.get("optin")
    if not sender and isinstance(optin, dict) and optin.get("user_ref"):
        # Opt-ins from the checkbox plugin come without `sender`: the person is known only by
        # the plugin's user_ref, which is also what the Page must message them with.
        sender = str(optin["user_ref"])
    base: dict[str, Any] = {
        "sender_id": sender,
        "page_id": recipient or page_id,
        "timestamp": item.get("timestamp") or default_time,
        "raw": item,
    }
    stamp = item.get("timestamp")
    message = item.get("message")
    if isinstance(message, dict):
        if message.get("is_echo"):
            return MessengerEcho.model_validate(
                {
                    **message,
                    **base,
                    "id": message.get("mid") or f"echo:{_digest(item)}",
                    "page_id": sender or page_id,
                    "recipient_id": recipient,
                }
            )
        return MessengerMessage.model_validate(
            {
                **message,
                **base,
                "id": message.get("mid") or f"message:{_digest(item)}",
                "referral": message.get("referral") or item.get("referral"),
            }
        )
    postback = item.get("postback")
    if isinstance(postback, dict):
        return MessengerPostback.model_validate(
            {
                **postback,
                **base,
                "id": postback.get("mid") or f"postback:{sender}:{stamp}:{postback.get('payload')}",
            }
        )
    referral = item.get("referral")
    if isinstance(referral, dict):
        ref = referral.get("ref") or referral.get("ad_id")
        return MessengerReferral.model_validate(
            {**base, "id": f"referral:{sender}:{stamp}:{ref}", "referral": referral}
        )
    if isinstance(optin, dict):
        return MessengerOptin.model_validate(
            {**optin, **base, "id": f"optin:{sender}:{stamp}:{optin.get('type')}"}
        )
    read = item.get("read")
    if isinstance(read, dict):
        return MessengerRead.model_validate(
            {**read, **base, "id": f"read:{sender}:{read.get('watermark')}"}
        )
    delivery = item.get("delivery")
    if isinstance(delivery, dict):
        mids = ",".join(str(mid) for mid in delivery.get("mids") or [])
        return MessengerDelivery.model_validate(
            {**delivery, **base, "id": f"delivery:{sender}:{delivery.get('watermark')}:{mids}"}
        )
    reaction = item.get("reaction")
    if isinstance(reaction, dict):
        return MessengerReaction.model_validate(
            {
                **reaction,
                **base,
                "id": f"reaction:{reaction.get('mid')}:{reaction.get('action')}:{stamp}",
            }
        )
    field = next(
        (key for key in item if key not in ("sender", "recipient", "timestamp")), "unknown"
    )
    return _unsupported(item, "messenger", field, default_time, page_id=recipient or page_id)
