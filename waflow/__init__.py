"""waflow: customer support on WhatsApp and Messenger for small shops.

Typed clients of the WhatsApp Cloud API and the Messenger Send API, typed webhooks of both channels,
a durable conversation engine that follows a customer across them, and fakes of Meta's Graph API for
your tests (:mod:`waflow.testing`).
"""

from waflow import filters
from waflow._version import __version__
from waflow.app import App, WebhookRequest, WebhookResponse
from waflow.errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    MessageValidationError,
    WaflowError,
)
from waflow.messenger import AsyncMessenger, Messenger
from waflow.results import SendResult
from waflow.routing import HandlerContext, Router
from waflow.whatsapp import AsyncWhatsApp, WhatsApp

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "App",
    "AsyncMessenger",
    "AsyncWhatsApp",
    "HandlerContext",
    "MessageValidationError",
    "Messenger",
    "Router",
    "SendResult",
    "WaflowError",
    "WebhookRequest",
    "WebhookResponse",
    "WhatsApp",
    "__version__",
    "filters",
]
