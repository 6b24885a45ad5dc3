"""Messenger Platform: outbound Send API models and builders, and the clients."""

from waflow.messenger.client import AsyncMessenger, Messenger

__all__ = ["AsyncMessenger", "Messenger"]
