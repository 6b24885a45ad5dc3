"""Durable state: the :class:`Store` protocol and its implementations, chosen by URL.

``open_store("sqlite:///waflow.db")`` (the default), ``open_store("redis://host:6379/0")`` for many
workers on many machines (``pip install 'waflow[redis]'``), ``open_store("memory://")`` for tests.
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
    OutboxCompletion,
    OutboxItem,
    StatusUpdate,
    Store,
)
from waflow.store.memory import MemoryStore
from waflow.store.redis import RedisStore
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
    "OutboxCompletion",
    "OutboxItem",
    "RedisStore",
    "SQLiteStore",
    "StatusUpdate",
    "Store",
    "open_store",
]


def open_store(url: str) -> Store:
    """The store a ``WAFLOW_STORE`` URL names.

    Raises :class:`~waflow.errors.ConfigError` for an unknown scheme, or for ``redis://`` when the
    ``redis`` extra is not installed.
    """
    if url.startswith("memory://"):
        return MemoryStore()
    if url.startswith("sqlite://"):
        return SQLiteStore.from_url(url)
    if url.startswith(("redis://", "rediss://")):
        return RedisStore.from_url(url)
    raise ConfigError(
        f"unsupported store URL {url!r}: use sqlite:///path, redis://host:port/db or memory://"
    )
