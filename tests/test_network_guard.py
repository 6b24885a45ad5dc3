"""The suite's no-network guard refuses non-loopback connections and allows loopback ones."""

from __future__ import annotations

import socket

import httpx
import pytest

from tests.network_guard import NetworkAccessError


def test_connecting_to_a_public_address_fails_the_test() -> None:
    with (
        socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock,
        pytest.raises(NetworkAccessError),
    ):
        sock.connect(("192.0.2.1", 443))


def test_resolving_a_public_name_fails_the_test() -> None:
    with pytest.raises(NetworkAccessError):
        socket.getaddrinfo("graph.facebook.com", 443)


def test_httpx_without_a_fake_cannot_reach_meta() -> None:
    with httpx.Client() as client, pytest.raises(NetworkAccessError, match="use the fakes"):
        client.get("https://graph.facebook.com/v26.0/me")


def test_loopback_stays_allowed() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.create_connection(server.getsockname(), timeout=2) as client:
            accepted, _ = server.accept()
            with accepted:
                client.sendall(b"ping")
                assert accepted.recv(4) == b"ping"
