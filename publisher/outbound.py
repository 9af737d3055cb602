"""A total deadline for each outbound exchange: a WebSub ping, an IMAP command.

A socket timeout bounds each read, not the exchange: a peer that sends one byte every few
seconds never trips it, and held `publisher build` and `run` (with its run lock) for minutes
(issue #25). Here a watchdog thread shuts the connection down once the exchange has had its
time, or as soon as `stop` is set (SIGTERM or Ctrl-C in `publisher run`): whichever read or
write is blocked returns at once, however the peer trickles, and the caller gets TimeoutError
(InterruptedError for a stop); both are OSErrors, which callers already treat as "cannot reach".
Name resolution runs in a thread of its own, so a resolver that hangs is bounded too.

    with Watchdog(stop) as watchdog, watchdog.deadline(5.0, "hub https://hub.example"):
        ... connect through watchdog.connect((host, port)) or watch the socket, talk ...
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from dataclasses import dataclass
from typing import Iterator

POLL = 0.1  # seconds between looks at `stop` while an exchange is under way
# A socket's own timeouts are left this much longer than the deadline, so that the watchdog,
# not a read that happened to time out at the same moment, ends an exchange and says why.
GRACE = 1.0


class Watchdog:
    """Shuts the watched connections down when the current deadline passes, or when `stop`
    is set. One per connection (or per request); arm it with deadline() for each exchange."""

    def __init__(self, stop: threading.Event | None = None):
        self.stop = stop
        self._cond = threading.Condition()
        self._due: float | None = None  # time.monotonic() the armed exchange must end by
        self._fired: str | None = None  # "timeout" or "stop", once it has shut things down
        # Duplicates of the watched sockets' descriptors: shutting one down ends the connection
        # for every descriptor, including a TLS wrapper's that took the original over.
        self._socks: list[socket.socket] = []
        self._thread: threading.Thread | None = None
        self._closed = False

    def __enter__(self) -> Watchdog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Stop the thread and let go of the duplicates (the connection's owner closes it)."""
        with self._cond:
            self._closed = True
            self._due = None
            self._cond.notify_all()
            socks, self._socks = self._socks, []
        for sock in socks:
            sock.close()

    def watch(self, sock: socket.socket) -> None:
        """Shut `sock`'s connection down if the armed deadline passes."""
        with self._cond:
            self._socks.append(sock.dup())
            if self._fired:  # the deadline passed while it was connecting
                self._shutdown()

    def remaining(self) -> float:
        """Seconds left to the armed deadline (never below a millisecond: 0 means no timeout)."""
        with self._cond:
            due, fired = self._due, self._fired
        if fired:
            return 0.001
        return 3600.0 if due is None else max(0.001, due - time.monotonic())

    @contextlib.contextmanager
    def deadline(self, seconds: float, what: str) -> Iterator[Watchdog]:
        """Arm the watchdog for one exchange of at most `seconds` in all. An exchange it cut
        short raises TimeoutError (InterruptedError when `stop` was set), naming `what`."""
        if self.stop is not None and self.stop.is_set():
            raise InterruptedError(f"{what}: stopped before it started")
        with self._cond:
            self._due = time.monotonic() + seconds
            self._fired = None
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="publisher-watchdog", daemon=True)
                self._thread.start()
            self._cond.notify_all()
        try:
            yield self
        except Exception as e:
            self._raise_if_fired(what, seconds, e)
            raise
        finally:
            with self._cond:
                self._due = None
                self._cond.notify_all()
        # A shut-down connection can look like a short but complete answer (http.client takes
        # the end of the stream for the end of the headers): it is no answer.
        self._raise_if_fired(what, seconds, None)

    def _raise_if_fired(self, what: str, seconds: float, cause: Exception | None) -> None:
        if self._fired == "stop":
            raise InterruptedError(f"{what}: stopped") from cause
        if self._fired == "timeout":
            raise TimeoutError(f"{what}: timed out (no complete answer within {seconds:g} s)") from cause

    def connect(self, address: tuple[str | None, int], timeout: float | None = None,
                source_address: tuple[str, int] | None = None) -> socket.socket:
        """socket.create_connection within the armed deadline: resolution in a thread of its
        own (getaddrinfo cannot be interrupted), each attempt watched and given what is left
        (a shut-down socket does not end a connect() under way: its timeout does)."""
        host, port = address
        error: OSError | None = None
        for family, kind, proto, _name, sockaddr in self._resolve(host, port):
            sock = socket.socket(family, kind, proto)
            try:
                self.watch(sock)
                sock.settimeout(self.remaining() + GRACE)
                if source_address:
                    sock.bind(source_address)
                sock.connect(sockaddr)
                sock.settimeout(timeout)  # each read's own bound, as the caller asked
                return sock
            except OSError as e:
                sock.close()
                error = e
        raise error or OSError(f"cannot resolve {host}")

    def _resolve(self, host: str | None, port: int) -> list:
        found: dict[str, object] = {}

        def resolve() -> None:
            try:
                found["infos"] = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
            except OSError as e:
                found["error"] = e

        worker = threading.Thread(target=resolve, name="publisher-resolve", daemon=True)
        worker.start()
        while worker.is_alive():
            worker.join(min(POLL, self.remaining()))
            with self._cond:
                if self._fired or (self._due is not None and time.monotonic() >= self._due):
                    # An abandoned lookup ends with the resolver's own timeout, harmlessly.
                    raise TimeoutError(f"cannot resolve {host}: no answer in time")
        if "error" in found:
            raise found["error"]  # type: ignore[misc]
        return found["infos"]  # type: ignore[return-value]

    def _run(self) -> None:
        with self._cond:
            while not self._closed:
                if self._due is None or self._fired:  # disarmed, or done until re-armed
                    self._cond.wait()
                    continue
                now = time.monotonic()
                if self.stop is not None and self.stop.is_set():
                    self._fired = "stop"
                elif now >= self._due:
                    self._fired = "timeout"
                else:
                    left = self._due - now
                    self._cond.wait(left if self.stop is None else min(left, POLL))
                    continue
                self._shutdown()

    def _shutdown(self) -> None:
        for sock in self._socks:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # not connected yet, or already closed by its peer


@dataclass
class Answer:
    status: int
    reason: str
    body: bytes  # at most fetch()'s max_bytes


def fetch(request, *, seconds: float, what: str, stop: threading.Event | None = None,
          handlers: tuple = (), max_bytes: int = 64 * 1024) -> Answer:
    """One HTTP(S) exchange through urllib (its proxy settings included), `seconds` in all:
    resolve, connect, send, and read the answer's status, headers and up to `max_bytes` of its
    body. Any status is an Answer; raises OSError (TimeoutError or InterruptedError when the
    watchdog ended it, urllib's URLError when it cannot connect) or http.client's
    HTTPException for a garbled answer. `handlers` are urllib handlers to add."""
    # lazy: urllib.request (~20 ms) is for the WebSub ping; the IMAP reader needs the Watchdog only
    import urllib.error
    import urllib.request

    with Watchdog(stop) as watchdog, watchdog.deadline(seconds, what):
        opener = urllib.request.build_opener(*_watched_handlers(watchdog), *handlers)
        try:
            response = opener.open(request, timeout=seconds + GRACE)
        except urllib.error.HTTPError as e:  # an answer all the same: urllib raises it for non-2xx
            with contextlib.closing(e):
                return Answer(e.code, str(e.reason or ""), e.read(max_bytes) if e.fp else b"")
        with response:
            return Answer(response.status, response.reason or "", response.read(max_bytes))


def _watched_handlers(watchdog: Watchdog) -> tuple:
    """urllib's HTTP and HTTPS handlers, their connections made through `watchdog`."""
    import urllib.request

    def watched(connection_class):
        class Watched(connection_class):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                self._create_connection = watchdog.connect  # http.client's hook for connect()

        return Watched

    class HTTP(urllib.request.HTTPHandler):
        def do_open(self, http_class, req, **kwargs):
            return super().do_open(watched(http_class), req, **kwargs)

    class HTTPS(urllib.request.HTTPSHandler):
        def do_open(self, http_class, req, **kwargs):
            return super().do_open(watched(http_class), req, **kwargs)

    return HTTP(), HTTPS()
