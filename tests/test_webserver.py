"""webserver.py: waitress with our limits, on a real socket on 127.0.0.1, its loop on a
thread of the test (the whole `publisher serve` process is tests/scenarios/test_web_load.py)."""

from __future__ import annotations

import http.client
import socket
import threading
import time

import pytest

from publisher.webserver import connection_limit, listen, make_server


def _app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [environ.get("HTTP_X_FORWARDED_FOR", "-").encode("ascii")]


@pytest.fixture
def server():
    made = make_server(_app, listen("127.0.0.1", 0), threads=2, request_timeout=1.0,
                       idle_timeout=2.0, check_every=0.1)
    loop = threading.Thread(target=made.run)
    loop.start()
    yield made
    made.stop()
    loop.join(10)
    assert not loop.is_alive()
    made.close()


def _closed_within(sock: socket.socket, seconds: float, trickle: bytes = b"") -> float | None:
    """Seconds until the server closed `sock` (sending `trickle` every 0.2 s meanwhile), or
    None if it was still open after `seconds`."""
    sock.settimeout(0.2)
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        try:
            if trickle:
                sock.sendall(trickle)
            if sock.recv(1024) == b"":
                return time.monotonic() - started
        except TimeoutError:
            continue
        except OSError:  # reset: closed as well
            return time.monotonic() - started
    return None


def test_a_request_trickling_in_is_cut_off_after_the_request_timeout(server):
    """Slowloris: a header byte now and then keeps a connection "active" for waitress's
    own idle timeout; the request timeout counts from the request's first byte."""
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        took = _closed_within(sock, 6, trickle=b"X")
    assert took is not None and took < 3


def test_a_silent_connection_is_closed_after_the_idle_timeout(server):
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        took = _closed_within(sock, 6)
    assert took is not None and 1.5 < took < 4


def test_a_request_is_answered_and_x_forwarded_for_reaches_the_app(server):
    """web.client_address decides whom to believe: waitress must not drop the header."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        connection.request("GET", "/", headers={"X-Forwarded-For": "203.0.113.7"})
        response = connection.getresponse()
        assert (response.status, response.read()) == (200, b"203.0.113.7")
    finally:
        connection.close()


def test_the_connection_limit_leaves_descriptors_for_the_rest(monkeypatch):
    import resource

    monkeypatch.setattr(resource, "getrlimit", lambda _which: (256, 4096))
    assert connection_limit(1000) == 156
    monkeypatch.setattr(resource, "getrlimit", lambda _which: (65536, 65536))
    assert connection_limit(1000) == 1000
