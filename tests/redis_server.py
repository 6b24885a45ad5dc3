"""A pytest plugin that runs a real ``redis-server`` for the tests marked ``redis``.

``redis_url`` (session-scoped) starts ``redis-server`` on a free loopback port, with no persistence
and its files in a temp dir, waits until it answers ``PING`` and stops it after the session.
``clean_redis_url`` is the same URL with the database flushed before each test. When
``redis-server`` is not on ``PATH`` the tests that need it are skipped — unless
``WAFLOW_REQUIRE_REDIS=1`` (CI sets it), which turns the skip into a failure, so CI can never pass
by skipping them.

The plugin speaks just enough RESP over a plain socket to ping and flush, so it needs no client.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

#: How long ``redis-server`` gets to answer its first ``PING``.
STARTUP_TIMEOUT = 10.0
_ATTEMPTS = 3  # fresh ports to try if another process grabs ours between probe and start


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _command(port: int, *words: str, timeout: float = 1.0) -> bytes:
    """Send one command and return the first line of the reply (``+PONG``, ``+OK``, ``-ERR …``)."""
    request = f"*{len(words)}\r\n".encode() + b"".join(
        f"${len(word.encode())}\r\n{word}\r\n".encode() for word in words
    )
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        conn.sendall(request)
        reply = b""
        while not reply.endswith(b"\r\n"):
            chunk = conn.recv(1024)
            if not chunk:
                break
            reply += chunk
    return reply.strip()


def _start(executable: str, directory: Path) -> tuple[subprocess.Popen[bytes], int, Path]:
    port = _free_port()
    # The server's output, not --logfile: config errors go to stderr before any log file opens.
    log = directory / f"redis-{port}.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                executable,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(directory),
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    return process, port, log


def _wait_until_ready(process: subprocess.Popen[bytes], port: int) -> bool:
    """True once the server answers PING; false if it exits first or the timeout passes."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            if _command(port, "PING") == b"+PONG":
                return True
        except OSError:
            pass  # not listening yet
        time.sleep(0.05)
    return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``redis://127.0.0.1:{port}/0`` of a ``redis-server`` that lives for the test session."""
    executable = shutil.which("redis-server")
    if executable is None:
        reason = "redis-server is not on PATH (install it, e.g. apt-get install redis-server)"
        if os.environ.get("WAFLOW_REQUIRE_REDIS") == "1":
            pytest.fail(f"WAFLOW_REQUIRE_REDIS=1 but {reason}", pytrace=False)
        pytest.skip(reason)
    directory = tmp_path_factory.mktemp("redis")
    failures: list[str] = []
    for _ in range(_ATTEMPTS):
        process, port, log = _start(executable, directory)
        if _wait_until_ready(process, port):
            try:
                yield f"redis://127.0.0.1:{port}/0"
            finally:
                _stop(process)
            return
        exit_code = process.poll()  # before _stop, which would make it -SIGTERM
        _stop(process)
        what = (
            f"did not answer PING within {STARTUP_TIMEOUT:g}s"
            if exit_code is None
            else f"exited with code {exit_code}"
        )
        output = log.read_text(errors="replace").strip()
        failures.append(f"port {port}: {what}; output:\n{output or '(none)'}")
    pytest.fail(f"could not start {executable}:\n" + "\n".join(failures), pytrace=False)


@pytest.fixture
def clean_redis_url(redis_url: str) -> str:
    """``redis_url`` with its database emptied (``FLUSHDB``) before the test."""
    port = urlsplit(redis_url).port
    assert port is not None
    reply = _command(port, "FLUSHDB")
    assert reply == b"+OK", f"FLUSHDB answered {reply!r}"
    return redis_url
