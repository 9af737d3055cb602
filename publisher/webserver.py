"""`publisher serve`: the subscribers' endpoint (web.py) on waitress, a production WSGI server.

Werkzeug's development server, used before, started a thread for every connection, with no
timeout and no limit: 1,500 half-open connections held 1,502 threads, and at the descriptor
limit it ignored SIGTERM (issue 25, item 9). Waitress reads and buffers each request on one
thread (poll()), and hands it to one of SERVER_THREADS only once it has arrived whole, so a
slow or silent client holds a descriptor and a few bytes, never a thread. On top of that:

    connections   at most CONNECTION_LIMIT open at once (fewer if the descriptor limit is
                  low); past it new ones wait in the listen backlog (BACKLOG)
    timeouts      a request must arrive whole within REQUEST_TIMEOUT of its first byte (a
                  client sending a header byte now and then, "slowloris", is active enough
                  for waitress's own idle timeout); a connection with nothing to do is
                  closed after IDLE_TIMEOUT
    stopping      SIGTERM or Ctrl-C: stop accepting, let the answers in progress finish (up
                  to STOP_GRACE seconds), close every other connection, give the queued
                  confirmation mails up to 30 s, exit 0

The same app runs under any WSGI server through web.create_app_from_env().
"""

from __future__ import annotations

import logging
import resource
import signal
import socket
import sys
import threading
import time
from datetime import datetime, timezone
from typing import Any, Callable, Iterable

from .config import Config
from .errors import ServeError
from .web import SERVER_THREADS, Endpoint, create_app

log = logging.getLogger(__name__)
access_log = logging.getLogger("publisher.access")

CONNECTION_LIMIT = 1000  # connections open at once
BACKLOG = 1024  # connections the kernel holds for us past the limit (capped by net.core.somaxconn)
REQUEST_TIMEOUT = 20.0  # seconds from a request's first byte until it must have arrived whole
IDLE_TIMEOUT = 30.0  # seconds a connection may sit with no request (keep-alive, or nothing sent)
CHECK_EVERY = 1.0  # seconds between looks for connections past their time
STOP_GRACE = 5.0  # seconds the answers in progress get to finish on SIGTERM
RESERVED_FILES = 100  # descriptors kept for the database, SMTP, templates and logs


def serve(config: Config, *, host: str, port: int, access: bool = True,
          on_ready: Callable[[str], None] | None = None, **limits: Any) -> None:
    """Run the endpoint until SIGTERM or Ctrl-C; then finish the confirmation mails already
    queued. `limits` overrides the module's figures (request_timeout=..., for tests)."""
    app = create_app(config, threads=SERVER_THREADS)
    endpoint: Endpoint = app.extensions["publisher"]
    access_log.setLevel(logging.INFO if access else logging.WARNING)
    # waitress warns "Task queue depth is N" for every request that waits for a thread: a
    # line per request in any burst, which is the queue doing its job. Written to a stderr
    # nobody drains fast enough, those lines stopped the whole server (its one I/O thread
    # blocked in write()) under 2,000 concurrent visitors.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    if not access_log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        access_log.addHandler(handler)
        access_log.propagate = False
    try:
        listening = listen(host, port)
    except OSError as e:
        endpoint.close(0)
        raise ServeError(f"cannot listen on {host}:{port}: {e.strerror or e}") from e
    server = make_server(with_access_log(app), listening, **limits)

    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        # The handler only raises a flag (and wakes the loop): it allocates nothing, so it
        # works at the descriptor or thread limit, where the old server's did not.
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, lambda *_: server.stop())
    try:
        if on_ready:
            on_ready(f"http://{_url_host(host)}:{server.port}/")
        server.run()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        server.close()
        endpoint.close(timeout=30)


def listen(host: str, port: int) -> socket.socket:
    """A listening socket. Bound here rather than by the server, so that a port in use is
    one error message and our exit status."""
    info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, _, _, _, address = info[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(BACKLOG)
    except BaseException:
        sock.close()
        raise
    return sock


def connection_limit(wanted: int = CONNECTION_LIMIT) -> int:
    """The connections we may hold open: `wanted`, or fewer when the process may open fewer
    descriptors (ulimit -n), so that a flood of connections never takes the last descriptor
    the database, SMTP or a log file needs."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(10, min(wanted, soft - RESERVED_FILES))


def make_server(app, sock: socket.socket, *, threads: int = SERVER_THREADS,
                connections: int | None = None, request_timeout: float = REQUEST_TIMEOUT,
                idle_timeout: float = IDLE_TIMEOUT, check_every: float = CHECK_EVERY) -> "Server":
    """Waitress on the listening socket `sock`, with our limits; run() it, stop() it."""
    # lazy: waitress (~30 ms) is for `serve` alone; the archive and `check` import web.py
    from waitress.adjustments import Adjustments
    from waitress.channel import HTTPChannel
    from waitress.server import TcpWSGIServer
    from waitress.task import ThreadedTaskDispatcher

    class Channel(HTTPChannel):
        """A connection that knows when its request in progress began."""

        started = 0.0  # time.time() of the first byte of the request in progress

        def received(self, data: bytes) -> bool:
            if self.request is None:
                self.started = time.time()
            return super().received(data)

    class _Server(Server, TcpWSGIServer):
        channel_class = Channel

        def maintenance(self, now: float) -> None:
            # waitress's own: connections idle past channel_timeout are closed
            super().maintenance(now)
            late = now - request_timeout
            for channel in list(self.active_channels.values()):
                if channel.request is not None and not channel.requests and channel.started < late:
                    # A request still arriving after request_timeout: slowloris, or a client
                    # gone without closing. Nothing is answered: it never asked in full.
                    channel.will_close = True

    adj = Adjustments(
        sockets=[sock], threads=threads, connection_limit=connections or connection_limit(),
        backlog=BACKLOG, channel_timeout=idle_timeout, cleanup_interval=check_every,
        asyncore_use_poll=True,  # select() cannot watch a descriptor past 1023
        asyncore_loop_timeout=check_every, ident="publisher",
        # web.client_address decides whom to believe in X-Forwarded-For: waitress must not
        # strip the header first (its default without a trusted_proxy).
        clear_untrusted_proxy_headers=False,
        expose_tracebacks=False, log_socket_errors=False,
    )
    dispatcher = ThreadedTaskDispatcher()
    dispatcher.set_thread_count(threads)
    return _Server(app, map={}, _sock=sock, dispatcher=dispatcher, adj=adj, bind_socket=False,
                   sockinfo=(sock.family, sock.type, sock.proto, sock.getsockname()))


class Server:
    """What serve() needs of the waitress server above, beyond waitress's own: a loop that
    can be stopped from a signal handler, and a stop that lets answers in progress finish."""

    _stopping = False

    @property
    def port(self) -> int:
        return self.socket.getsockname()[1]

    def stop(self) -> None:
        """Ask run() to return (safe in a signal handler: a flag, and a byte down a pipe)."""
        self._stopping = True
        try:
            self.pull_trigger()
        except OSError:  # closed already
            pass

    def run(self) -> None:
        # lazy: waitress (~30 ms), as in make_server
        from waitress import wasyncore

        use_poll, timeout = self.adj.asyncore_use_poll, self.adj.asyncore_loop_timeout
        while not self._stopping:
            wasyncore.loop(timeout=timeout, map=self._map, use_poll=use_poll, count=1)
        # Stop accepting; close every connection that is not being answered; give the
        # answers in progress STOP_GRACE seconds to be written; then close the rest.
        self.accepting = False
        self.del_channel()
        self.socket.close()
        deadline = time.monotonic() + STOP_GRACE
        while time.monotonic() < deadline:
            busy = False
            for channel in list(self.active_channels.values()):
                if channel.requests or channel.total_outbufs_len:
                    busy = True
                else:
                    channel.will_close = True
            if not busy:
                break
            wasyncore.loop(timeout=0.05, map=self._map, use_poll=use_poll, count=1)
        self.task_dispatcher.shutdown(cancel_pending=True, timeout=1)
        wasyncore.close_all(self._map)


def with_access_log(app):
    """The WSGI app, logging one line per answer as werkzeug did:
    `127.0.0.1 - - [07/Dec/2026 21:00:00] "GET /subscribe HTTP/1.1" 200 -`."""

    def logged(environ: dict, start_response: Callable) -> Iterable[bytes]:
        def start(status: str, headers: list, *exc_info: Any):
            if access_log.isEnabledFor(logging.INFO):
                request = f'{environ.get("REQUEST_METHOD")} {environ.get("PATH_INFO")} {environ.get("SERVER_PROTOCOL")}'
                when = datetime.now(timezone.utc).strftime("%d/%b/%Y %H:%M:%S")
                access_log.info('%s - - [%s] "%s" %s -', environ.get("REMOTE_ADDR", "-"), when,
                                request, status.split(" ", 1)[0])
            return start_response(status, headers, *exc_info)

        return app(environ, start)

    return logged


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
