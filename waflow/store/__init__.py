"""Durable state: the :class:`Store` protocol and its implementations, chosen by URL.

``open_store("sqlite:///waflow.db")`` (the default), ``open_store("memory://")`` for tests; Redis
(``redis://…``) for many workers comes with the conversation engine.
"""

from __future__ import annotations

from waflow.errors import ConfigError
from waflow.store.base import (
    STATUS_RANK,
    Commit,
    Document,
    InboxItem,
    MessageRecord,
    NewInboxItem,
    NewOutboxItem,
    OutboxItem,
    StatusUpdate,
    Store,
)
from waflow.store.memory import MemoryStore
from waflow.store.sqlite import SQLiteStore

__all__ = [
    "STATUS_RANK",
    "Commit",
    "Document",
    "InboxItem",
    "MemoryStore",
    "MessageRecord",
    "NewInboxItem",
    "NewOutboxItem",
    "OutboxItem",
    "SQLiteStore",
    "StatusUpdate",
    "Store",
    "open_store",
]


def open_store(url: str) -> Store:
    """The store a ``WAFLOW_STORE`` URL names."""
    if url.startswith("memory://"):
        return MemoryStore()
    if url.startswith("sqlite://"):
        return SQLiteStore.from_url(url)
    raise ConfigError(f"unsupported store URL {url!r}: use sqlite:///path or memory://")
