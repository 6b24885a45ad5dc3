"""Shared fixtures of waflow's own test-suite."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from waflow.store import MemoryStore, RedisStore, SQLiteStore, Store

pytest_plugins = ["tests.network_guard", "tests.redis_server"]


@pytest.fixture(params=["memory", "sqlite", pytest.param("redis", marks=pytest.mark.redis)])
async def each_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """A fresh store of each kind in turn: memory, SQLite (a temporary file), Redis (flushed)."""
    made: Store
    if request.param == "memory":
        made = MemoryStore()
    elif request.param == "sqlite":
        made = SQLiteStore(tmp_path / "s.db")
    else:
        made = RedisStore(request.getfixturevalue("clean_redis_url"))
    yield made
    await made.close()
