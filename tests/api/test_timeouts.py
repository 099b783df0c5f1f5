"""Slow clients: a connection that stops sending is closed after
APP__CONNECTION_TIMEOUT_SECONDS, and it never holds up other clients."""

import socket
import time

import httpx

from harness import LOOPBACK


def fresh_get(inst, path):
    """A request on a new connection: with a 1 s idle timeout a pooled keep-alive
    connection of the test client may be closed by the server as it is reused."""
    return httpx.get(inst.base_url + path, headers={"Connection": "close"}, timeout=10)


def _closed_within(sock: socket.socket, seconds: float) -> float | None:
    """Seconds until the peer closed the connection, or None if it stayed open."""
    start = time.monotonic()
    sock.settimeout(0.2)
    while time.monotonic() - start < seconds:
        try:
            data = sock.recv(4096)
        except socket.timeout:
            continue
        except ConnectionResetError:
            return time.monotonic() - start
        if data == b"":
            return time.monotonic() - start
        # an error response before the close is fine; keep reading to the close
    return None


def test_slowloris_partial_headers_are_cut_off(authd):
    inst = authd({"APP__CONNECTION_TIMEOUT_SECONDS": "1"})
    sock = socket.create_connection((LOOPBACK, inst.port), timeout=5)
    try:
        sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        # Meanwhile other clients are served.
        assert fresh_get(inst, "/health/live").status_code == 200
        closed = _closed_within(sock, 6)
        assert closed is not None, "a stalled client kept its connection open"
        assert closed >= 0.5
    finally:
        sock.close()
    assert fresh_get(inst, "/health/live").status_code == 200


def test_slow_body_is_cut_off(authd):
    inst = authd({"APP__CONNECTION_TIMEOUT_SECONDS": "1"})
    sock = socket.create_connection((LOOPBACK, inst.port), timeout=5)
    try:
        sock.sendall(b"POST /_test/echo HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"a\":")
        assert _closed_within(sock, 6) is not None, "a stalled body kept its connection open"
    finally:
        sock.close()
    assert fresh_get(inst, "/health/live").status_code == 200


def test_idle_keepalive_connection_is_closed(authd):
    inst = authd({"APP__CONNECTION_TIMEOUT_SECONDS": "1"})
    sock = socket.create_connection((LOOPBACK, inst.port), timeout=5)
    try:
        sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        first = sock.recv(4096)
        assert first.startswith(b"HTTP/1.1 200"), first
        assert _closed_within(sock, 6) is not None, "an idle keep-alive connection stayed open"
    finally:
        sock.close()
