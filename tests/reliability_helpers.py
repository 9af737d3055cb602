"""Helpers for the reliability and security tests (issue 7): real sites on disk, real
`publisher` processes, feed checks, and a chaos SMTP server on 127.0.0.1.

    (sites on disk: sites.make_config / sites.write_post)
    cli(config_path, *args) -> argv               `python -m publisher.cli --config PATH ...`
    run_cli(config_path, *args) -> CompletedProcess
    feed_problems(output_dir) -> list[str]        parse every feed: XML well-formed, feedparser
                                                  bozo 0, JSON Feed 1.1 valid; one line per problem
    snapshot(folder) -> {rel: bytes}              every file under a folder
    BuildForks(config_path)                       forks warm `publisher build` processes, one
                                                  per .start(), for kill-point tests
    ChaosSmtpServer(seed, ...)                    aiosmtpd with random faults, see its docstring
    spool_count(dir)                              messages a SpoolServerProcess has accepted

Everything listens on, and connects to, 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import signal
import ssl
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import syntax

from smtp_helpers import HOST, Received, SmtpServer, _Controller, _FaultySMTP, _hang_up

FEED_NAMES = ("rss.xml", "atom.xml", "feed.json")


def cli(config_path: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "publisher.cli", "--config", str(config_path), *args]


def run_cli(config_path: Path, *args: str, timeout: float = 120, env: dict | None = None,
            **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cli(config_path, *args), capture_output=True, text=True,
                          timeout=timeout, env=env, **kwargs)


def start_cli(config_path: Path, *args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(cli(config_path, *args), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def wait_until(predicate, timeout: float = 30.0, what: str = "condition", poll: float = 0.01):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(poll)


def snapshot(folder: Path) -> dict[str, bytes]:
    folder = Path(folder)
    if not folder.exists():
        return {}
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# --- feeds ---------------------------------------------------------------------------------

def feed_problem(name: str, data: bytes) -> str:
    """'' if `data` is a clean feed of the kind its file name says, else why not."""
    if name == "feed.json":
        try:
            doc = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            return f"not valid JSON: {e}"
        if doc.get("version") != "https://jsonfeed.org/version/1.1":
            return f"wrong JSON Feed version {doc.get('version')!r}"
        for item in doc.get("items", ()):
            for key in ("id", "url", "title", "content_html", "date_published"):
                if not isinstance(item.get(key), str):
                    return f"item without a string {key!r}: {str(item)[:200]}"
        return ""
    import feedparser
    from lxml import etree

    try:
        etree.fromstring(data, etree.XMLParser(resolve_entities=False, no_network=True))
    except etree.XMLSyntaxError as e:
        return f"not well-formed XML: {e}"
    result = feedparser.parse(data, resolve_relative_uris=False, sanitize_html=False)
    if result.bozo:
        return f"feedparser bozo: {result.get('bozo_exception')!r}"
    expected = "rss20" if name == "rss.xml" else "atom10"
    if result.version != expected:
        return f"feedparser says {result.version!r}, expected {expected!r}"
    return ""


def feed_problems(output_dir: Path) -> list[str]:
    out = []
    for path in sorted(Path(output_dir).rglob("*")):
        if path.name in FEED_NAMES and path.is_file():
            problem = feed_problem(path.name, path.read_bytes())
            if problem:
                out.append(f"{path.relative_to(output_dir)}: {problem}")
    return out


# --- `publisher build` processes, started warm, killed at a chosen moment --------------------

class BuildForks:
    """A helper process that has imported publisher and forks one child per .start(); each
    child runs `publisher --config CONFIG --quiet build` and is a real process to SIGKILL.

    Imports take most of a cold start; forking from an imported parent puts the random kill
    points of a crash test inside the build itself rather than inside Python's start-up."""

    def __init__(self, config_path: Path):
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--build-forks", str(config_path)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self._buffer = b""
        assert self._line(60) == "ready", self.proc.stderr.read()
        self.pid = 0
        self.started = 0.0

    def _line(self, timeout: float) -> str | None:
        import select

        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buffer:
            left = max(0.0, deadline - time.monotonic())
            if not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 4096)
            if not chunk:
                raise RuntimeError("build helper died: " + self.proc.stderr.read().decode(errors="replace"))
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode()

    def start(self) -> None:
        self.proc.stdin.write(b"go\n")
        self.proc.stdin.flush()
        self.started = time.monotonic()
        line = self._line(30)
        assert line and line.startswith("pid "), line
        self.pid = int(line.split()[1])

    def wait(self, timeout: float | None = None) -> int | None:
        """The child's exit status (negative: killed by that signal), or None on timeout."""
        line = self._line(3600 if timeout is None else timeout)
        if line is None:
            return None
        kind, pid, status = line.split()
        assert kind == "exit" and int(pid) == self.pid, line
        return int(status)

    def kill(self) -> int:
        """SIGKILL the child; its exit status (0 if it had just finished on its own)."""
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # finished and reaped a moment ago
        return self.wait(60)

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(30)
        self.proc.stdout.close()
        self.proc.stderr.close()


def _build_forks(config_path: str) -> None:
    from publisher import cli, content, feeds, pipeline, state  # noqa: F401  (warm up)
    from publisher.newsletter import owed  # noqa: F401  (warm up)

    out = sys.stdout.buffer
    out.write(b"ready\n")
    out.flush()
    for line in sys.stdin:
        if line.strip() != "go":
            break
        pid = os.fork()
        if pid == 0:  # the child: one build, then gone
            code = 0
            try:
                cli.main(["--config", config_path, "--quiet", "build"])
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else 1
            except BaseException:
                import traceback

                traceback.print_exc()
                code = 1
            finally:
                sys.stderr.flush()
                os._exit(code)
        out.write(f"pid {pid}\n".encode())
        out.flush()
        _pid, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        out.write(f"exit {pid} {code}\n".encode())
        out.flush()


# --- the spool of a SpoolServerProcess -----------------------------------------------------

def spool_count(spool: Path) -> int:
    """Messages accepted so far (each has a .json written after its .eml)."""
    try:
        return sum(1 for name in os.listdir(spool) if name.endswith(".json"))
    except FileNotFoundError:
        return 0


def message_ids(received: list[Received]) -> dict[str, set[str]]:
    """{recipient: set of Message-IDs it received}."""
    import email

    out: dict[str, set[str]] = {}
    for m in received:
        headers = email.message_from_bytes(m.data.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n")
        out.setdefault(m.rcpt, set()).add(headers["Message-ID"])
    return out


# --- a chaos SMTP server ----------------------------------------------------------------------

@dataclass
class ChaosRates:
    """Probability of each fault, per time the server reaches its stage (an "event")."""

    connect_421: float = 0.03  # "421 busy" instead of the greeting
    connect_slow: float = 0.01  # greeting later than the client's timeout
    starttls_454: float = 0.02  # "454 TLS not available" to STARTTLS
    starttls_broken: float = 0.02  # "220 go ahead", then garbage instead of a TLS handshake
    mail_4xx: float = 0.01  # 421/451 to MAIL FROM
    mail_drop: float = 0.005  # hang up instead of answering MAIL FROM
    rcpt_4xx: float = 0.05  # 450/451/452 to RCPT TO
    rcpt_421: float = 0.01  # 421 to RCPT TO, then hang up
    rcpt_drop: float = 0.01  # hang up instead of answering RCPT TO (before DATA)
    rcpt_slow: float = 0.003  # answer RCPT TO later than the client's timeout
    data_451: float = 0.01  # 451 to the DATA command
    data_drop: float = 0.02  # 354, read a line of the message, hang up (mid-DATA)
    end_4xx: float = 0.03  # 451/452 after the final dot: not queued
    end_lost: float = 0.01  # queued, then hang up before the 250 (the reply is lost)
    end_slow: float = 0.003  # queued, 250 sent later than the client's timeout


class _ChaosSMTP(_FaultySMTP):
    async def _handle_client(self):
        owner: ChaosSmtpServer = self.owner
        kind = owner.decide("connect", None, ("connect_421", "connect_slow"))
        if kind == "connect_421":
            await _hang_up(self, "421 4.3.2 Service not available, closing channel")
        elif kind == "connect_slow":
            await owner.slow(self)
        await _aiosmtpd_handle_client(self)

    @syntax("STARTTLS", when="tls_context")
    async def smtp_STARTTLS(self, arg):
        owner: ChaosSmtpServer = self.owner
        kind = owner.decide("starttls", None, ("starttls_454", "starttls_broken"))
        if kind == "starttls_454":
            await self.push("454 4.7.0 TLS not available due to temporary reason")
            return
        if kind == "starttls_broken":
            await self.push("220 Ready to start TLS")
            self.transport.write(b"this is not a TLS handshake\r\n" * 4)
            await _hang_up(self)
        return await super().smtp_STARTTLS(arg)

    # A late 250 (end_slow) counts as lost only if the client never read it. A client that
    # was busy when its timeout ran out (one thread serves several connections) may still
    # read it: its next command on this connection shows it did, and it will not resend.
    late_reply: str | None = None

    def _late_reply_read(self) -> None:
        if self.late_reply is not None:
            with self.owner._lock:
                self.owner.lost[self.late_reply] -= 1
            self.late_reply = None

    @syntax("MAIL FROM: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_MAIL(self, arg):
        self._late_reply_read()
        return await super().smtp_MAIL(arg)

    @syntax("RSET")
    async def smtp_RSET(self, arg):
        self._late_reply_read()
        return await super().smtp_RSET(arg)

    @syntax("QUIT")
    async def smtp_QUIT(self, arg):
        self._late_reply_read()
        return await super().smtp_QUIT(arg)

    async def smtp_DATA(self, arg):
        owner: ChaosSmtpServer = self.owner
        envelope = self.envelope
        if envelope is not None and envelope.rcpt_tos and not arg:
            kind = owner.decide("data", envelope.rcpt_tos[0], ("data_451", "data_drop"))
            if kind == "data_451":
                await self.push("451 4.3.0 Try the DATA command again later")
                return
            if kind == "data_drop":
                await self.push("354 End data with <CR><LF>.<CR><LF>")
                await self._reader.readline()
                await _hang_up(self)
        return await super(_FaultySMTP, self).smtp_DATA(arg)


async def _aiosmtpd_handle_client(session: _FaultySMTP):
    # _FaultySMTP._handle_client would consult the plain fault list; go straight to aiosmtpd's.
    from aiosmtpd.smtp import SMTP

    await SMTP._handle_client(session)


class _ChaosHandler:
    def __init__(self, owner: ChaosSmtpServer):
        self.owner = owner

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        if self.owner.pipelining:  # aiosmtpd reads pipelined commands a line at a time
            return responses[:-1] + ["250-PIPELINING", responses[-1]]
        return responses

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        kind = self.owner.decide("mail", None, ("mail_4xx", "mail_drop"))
        if kind == "mail_4xx":
            return self.owner.pick(["421 4.3.2 Shutting down", "451 4.3.0 Temporary failure"])
        if kind == "mail_drop":
            await _hang_up(server)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        owner = self.owner
        owner._rcpt_seen(address)
        bounce = owner.bounces.get(address)
        if bounce and bounce.startswith("rcpt "):
            owner.count("bounce_" + bounce[5:8])
            return bounce[5:]
        kind = owner.decide("rcpt", address, ("rcpt_4xx", "rcpt_421", "rcpt_drop", "rcpt_slow"))
        if kind == "rcpt_4xx":
            return owner.pick(["450 4.2.1 Mailbox busy", "451 4.3.0 Local error",
                               "452 4.2.2 Mailbox full"])
        if kind == "rcpt_421":
            await _hang_up(server, "421 4.7.0 Too many errors, closing")
        if kind == "rcpt_drop":
            await _hang_up(server)
        if kind == "rcpt_slow":
            await owner.slow(server)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        owner = self.owner
        rcpt = envelope.rcpt_tos[0]
        bounce = owner.bounces.get(rcpt)
        if bounce and bounce.startswith("end "):
            owner.count("bounce_end_" + bounce[4:7])
            return bounce[4:]
        kind = owner.decide("end", rcpt, ("end_4xx", "end_lost", "end_slow"))
        if kind == "end_4xx":
            return owner.pick(["451 4.3.0 Queue write error", "452 4.3.1 Insufficient storage"])
        received = Received(mail_from=envelope.mail_from, rcpt_tos=list(envelope.rcpt_tos),
                            data=bytes(envelope.original_content), connection=server.number,
                            tls=server.transport.get_extra_info("ssl_object") is not None)
        owner._record(received)
        if kind in ("end_lost", "end_slow"):
            # Queued, but the client never sees the 250 (hung up, or past its timeout): it
            # sends again, and SMTP gives it no way to know.
            with owner._lock:
                owner.lost[rcpt] += 1
        if kind == "end_lost":
            await _hang_up(server)
        if kind == "end_slow":
            await owner.slow(server)
            server.late_reply = rcpt  # (not reached if the client hung up meanwhile)
        return "250 2.0.0 OK queued"


class _ChaosController(_Controller):
    def factory(self):
        return _ChaosSMTP(self.owner, self.handler, **self.SMTP_kwargs)


class ChaosSmtpServer(SmtpServer):
    """An aiosmtpd server on 127.0.0.1 that injects faults at random (see ChaosRates): 4xx
    replies at every stage, dropped connections before and after DATA, replies slower than
    the client's timeout, broken STARTTLS, and, for the addresses in `bounces`, a permanent
    5xx ("rcpt 550 ..." / "rcpt 553 ..." at RCPT TO, "end 550 ..." after the final dot).

    Decisions are reproducible: each is drawn from random.Random(seed, stage, key, n), where
    key is the recipient (or the connection number) and n counts that key's events, so thread
    timing does not change which recipient meets which fault.

    `.lost[rcpt]` counts the injected faults after which the server holds a copy the client
    cannot know about (the 250 lost, or sent past the timeout and not read: the client sent
    nothing more on that connection): each is an expected duplicate.
    `.faults` counts every injected fault by kind. `.settle()` waits for late replies."""

    def __init__(self, seed: int, *, rates: ChaosRates | None = None,
                 bounces: dict[str, str] | None = None, slow_seconds: float = 2.0,
                 pipelining: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.pipelining = pipelining  # announce PIPELINING (RFC 2920) in the EHLO reply
        self.seed = seed
        self.rates = rates or ChaosRates()
        self.bounces = dict(bounces or {})
        self.slow_seconds = slow_seconds
        self.faults: Counter = Counter()
        self.lost: Counter = Counter()
        self.events: Counter = Counter()
        self._pending_slow = 0
        self._conn_events: Counter = Counter()
        self._pick_rng = random.Random(seed)

    def start(self) -> ChaosSmtpServer:
        kwargs: dict[str, Any] = {"hostname": HOST, "port": 0, "server_hostname": "localhost",
                                  "ready_timeout": 10}
        if self.tls:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(str(self.cert.cert), str(self.cert.key))
            if self.tls == "ssl":
                kwargs["ssl_context"] = context
            else:
                kwargs.update(tls_context=context, require_starttls=True)
        self.paused = True  # no faults for aiosmtpd's own start-up probe
        self._controller = _ChaosController(self, _ChaosHandler(self), **kwargs)
        self._controller.start()
        self.port = self._controller.port
        with self._lock:
            self._connections = 0
        self.paused = False
        return self

    # -- decisions
    def decide(self, stage: str, key: str | None, kinds: tuple[str, ...]) -> str | None:
        with self._lock:
            if self.paused:
                return None
            if key is None:
                # Numbered per stage: the n-th STARTTLS draws the same whatever MAIL commands
                # of other connections came in between (the client's interleaving varies).
                self._conn_events[stage] += 1
                key = f"#{self._conn_events[stage]}"
            self.events[(stage, key)] += 1
            n = self.events[(stage, key)]
        digest = hashlib.sha256(f"{self.seed}|{stage}|{key}|{n}".encode()).digest()
        draw = int.from_bytes(digest[:8], "big") / 2**64
        for kind in kinds:
            rate = getattr(self.rates, kind)
            if draw < rate:
                self.count(kind)
                return kind
            draw -= rate
        return None

    def pick(self, replies: list[str]) -> str:
        with self._lock:
            return self._pick_rng.choice(replies)

    def count(self, kind: str) -> None:
        with self._lock:
            self.faults[kind] += 1

    async def slow(self, server) -> None:
        """Sleep past the client's timeout (the client hangs up, which cancels this)."""
        with self._lock:
            self._pending_slow += 1
        try:
            await asyncio.sleep(self.slow_seconds)
        finally:
            with self._lock:
                self._pending_slow -= 1
                self._lock.notify_all()

    def settle(self, timeout: float = 30) -> None:
        """Wait until every late reply has been given (and its message recorded)."""
        with self._lock:
            if not self._lock.wait_for(lambda: self._pending_slow == 0, timeout):
                raise AssertionError("the chaos server still has late replies pending")

    def copies(self) -> Counter:
        return Counter(m.rcpt for m in self.received)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--build-forks":
        _build_forks(sys.argv[2])
    else:
        sys.exit("usage: reliability_helpers.py --build-forks CONFIG")


def sent_in_ledger(config) -> int:
    """Deliveries the ledger records as sent, over the first three digests."""
    from publisher.state import State  # lazy: SQLAlchemy, only for the tests that read the ledger

    with State(config.database_url) as state:  # opening it also proves the file is not corrupt
        return sum(state.delivery_counts(d).get("sent", 0) for d in (1, 2, 3))


def settled_count(spool) -> int:
    """The spool's message count once it has not changed for 0.1 s."""
    count, stable_since = spool_count(spool), time.monotonic()
    while time.monotonic() - stable_since < 0.1:
        time.sleep(0.01)
        now = spool_count(spool)
        if now != count:
            count, stable_since = now, time.monotonic()
    return count


# --- bounded processes -------------------------------------------------------------------

def run_limited(argv: list[str], *, memory_mb: int = 1024, timeout: float = 60,
                **kwargs) -> subprocess.CompletedProcess:
    """Run argv with its address space capped at `memory_mb` (RLIMIT_AS) and a wall-clock
    timeout: a blow-up (a YAML alias bomb, quadratic work) fails the test as a MemoryError or a
    timeout, instead of taking the shared machine's memory or hours of its CPU."""
    import resource  # lazy: POSIX only, for the tests that bound a process

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory_mb << 20, memory_mb << 20))

    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                          preexec_fn=limit, **kwargs)


def billion_laughs(levels: int = 9, width: int = 9) -> str:
    """YAML lines `a0: &a0 {...}`, `a1: &a1 {k0: *a0, ...}`...: under 1 KB of text that expands
    to width**levels values (9**9: 387 million)."""
    lines = ["a0: &a0 {" + ", ".join(f"k{j}: lol" for j in range(width)) + "}"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} {{" + ", ".join(f"k{j}: *a{i - 1}" for j in range(width)) + "}")
    return "\n".join(lines) + "\n"
