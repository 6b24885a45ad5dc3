"""Shared fixtures of waflow's own test-suite."""

from __future__ import annotations

pytest_plugins = ["tests.network_guard", "tests.redis_server"]
