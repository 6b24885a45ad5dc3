"""Meta's OpenAPI specification of the Cloud API, read at test time from ../shared.

The file is Meta's (MIT licensed) and is never copied into this repository. Where ../shared is
absent the tests that need it are skipped with the reason, except under CI=true, where its absence
is an error.
"""

from __future__ import annotations

import copy
import functools
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

_SPEC_NAME = "meta-openapi/business-messaging-api_v23.0.yaml"


def _find_spec() -> Path:
    """``$WAFLOW_SHARED_DIR``, else the nearest ``shared/`` beside the repository or above it."""
    override = os.environ.get("WAFLOW_SHARED_DIR")
    if override:
        return Path(override) / _SPEC_NAME
    for parent in Path(__file__).resolve().parents[1:]:
        candidate = parent / "shared" / _SPEC_NAME
        if candidate.exists():
            return candidate
    return Path(__file__).resolve().parents[2] / "shared" / _SPEC_NAME


SPEC_PATH = _find_spec()
SEND_PATH = "/{Version}/{Phone-Number-ID}/messages"
WEBHOOK_PATH = "/whatsapp/webhooks"
TEMPLATES_PATH = "/{Version}/{WABA-ID}/message_templates"


def _require_spec() -> Path:
    if SPEC_PATH.exists():
        return SPEC_PATH
    reason = f"Meta's OpenAPI spec not found at {SPEC_PATH} (../shared is absent)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}; CI must have it", pytrace=False)
    pytest.skip(reason)


@functools.cache
def _spec() -> dict[str, Any]:
    with _require_spec().open(encoding="utf-8") as handle:
        loaded: dict[str, Any] = yaml.safe_load(handle)
    return loaded


def request_examples(path: str, method: str = "post") -> dict[str, Any]:
    """Every request-body example of one operation, by name, as fresh copies."""
    operation = _spec()["paths"][path][method]
    content = operation["requestBody"]["content"]["application/json"]
    return {name: copy.deepcopy(ex["value"]) for name, ex in content["examples"].items()}


# Placeholders of Meta's examples and the realistic values that replace them.
_EXACT = {
    "{{Recipient-Phone-Number}}": "4915112345678",
    "{{Recipient-WA-Phone-Number}}": "4915112345678",
    "{{Flow-ID}}": "1234567890123456",
    "{{Flow-Name}}": "bike_service_booking",
    "<HEADER_TYPE>": "text",
    "language-and-locale-code": "en_US",
    "template-name": "order_update",
}
_PATTERNS = [
    (re.compile(r"^<?http\(s\)://([\w.-]+?)(-url)?>?$"), "https://cdn.example.com/{0}"),
    (re.compile(r"^<(\w+)_OBJECT_ID>$|^<MEDIA_OBJECT_ID>$"), "1276358963412345"),
    (re.compile(r"^<MSGID_OF_[A-Z_]+>$"), "wamid.HBgNNDkxNTExMjM0NTY3OBUCABIYFDNBQTI="),
]


def realistic(value: Any) -> Any:
    """``value`` with every placeholder replaced by a realistic value, recursively."""
    if isinstance(value, dict):
        return {realistic(k) if k.startswith("<") else k: realistic(v) for k, v in value.items()}
    if isinstance(value, list):
        return [realistic(item) for item in value]
    if not isinstance(value, str):
        return value
    if value in _EXACT:
        return _EXACT[value]
    for pattern, replacement in _PATTERNS:
        match = pattern.match(value)
        if match:
            return replacement.format(*(g or "" for g in match.groups()))
    if re.fullmatch(r"<[A-Z0-9_-]+>", value):
        return value.strip("<>").lower().replace("_", "-")
    return value
