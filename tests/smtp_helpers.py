"""Real SMTP servers on 127.0.0.1 for tests, with fault injection (aiosmtpd).

Everything listens on 127.0.0.1 only, on a free port the OS picks.

    from smtp_helpers import SmtpServer

    with SmtpServer() as server:                        # plain SMTP
        config = server.config(tmp_path)                # a real Config pointing at it
        ...send...
        assert [m.rcpt for m in server.received] == ["a@example.org"]
        assert server.connections == 1                  # TCP connections that said EHLO/HELO

Variants (combine freely):
    SmtpServer(tls="starttls", cert=make_cert(dir))     # STARTTLS required before MAIL
    SmtpServer(tls="ssl", cert=make_cert(dir))          # implicit TLS (port 465 style)
    SmtpServer(auth={"user": "secret"})                 # AUTH PLAIN/LOGIN; MAIL without it -> 530
    SmtpServer(delay=0.05)                              # sleep before answering each DATA
    SmtpServer(spool=dir)                               # also write each message to dir (read_spool)
server.config(tmp_path, **smtp_keys) writes tmp_path/config.yaml with the right host, port,
security and smtp.ca_file (the cert trusts itself), plus any smtp.* keys you pass;
server.smtp_settings() is that smtp: mapping alone, to merge into a config.yaml of your own.
Logins need PUBLISHER_SMTP_PASSWORD set (monkeypatch.setenv) to the password in `auth`.

Faults: server.add_fault(stage, reply=None, *, recipient=None, drop=False, times=None).
A rule fires the first `times` times (None: always) its stage is reached for `recipient`
(None: any), so "per attempt" means per time the server sees that recipient. Stages:
    "connect"  instead of the 220 greeting            add_fault("connect", "421 4.7.0 Busy", times=1)
    "mail"     reply to MAIL FROM                     add_fault("mail", "553 5.7.1 Sender denied")
    "rcpt"     reply to RCPT TO                       add_fault("rcpt", "451 4.3.0 Later", recipient=a, times=1)
                                                      add_fault("rcpt", "550 5.1.1 No such user", recipient=b)
    "data"     reply to the DATA command; with drop=True the server answers 354, reads one line
               of the message and closes the connection (a drop mid-DATA; nothing recorded)
                                                      add_fault("data", drop=True, recipient=c, times=1)
    "end"      reply after the final "."; the message is not recorded. With drop=True and no
               reply the message IS recorded and the connection closed before the 250: the
               server has it, the client cannot know (models a lost reply; expect a duplicate)
drop=True with a reply sends the reply, then closes.
server.attempts(address) counts RCPT TO commands the server saw for address.

Other tests and crash tests:
    make_cert(dir) -> CertFiles(cert, key): a self-signed cert for 127.0.0.1/localhost (openssl CLI)
    make_dkim_key(dir) -> DkimKey(key_file, public_b64, dnsfunc): for dkim.verify(..., dnsfunc=)
    unused_port() -> a port on 127.0.0.1 where nothing listens (for "unreachable" tests)
    SpoolServerProcess(spool_dir, faults=[...], delay=0.0, tls=None, cert=None): the same
        server in a child process (`python tests/smtp_helpers.py --spool DIR ...`); it writes
        every accepted message to DIR before answering 250, so it survives killing the client.
        .port, .config(dir), .received (read_spool), .stop(). A context manager.
    read_spool(dir) -> list[Received]
Fixtures (import them into a test module: `from smtp_helpers import smtp_server, smtp_cert`):
    smtp_server  a started plain SmtpServer, stopped after the test
    smtp_cert    a session-wide CertFiles
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import email
import email.policy
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

HOST = "127.0.0.1"
STAGES = ("connect", "mail", "rcpt", "data", "end")


# --- files: certificates, DKIM keys ------------------------------------------------------

@dataclass(frozen=True)
class CertFiles:
    cert: Path  # PEM certificate; also the CA bundle that trusts it (it is self-signed)
    key: Path


def make_cert(directory: Path, common_name: str = "localhost") -> CertFiles:
    """A fresh self-signed certificate valid for 127.0.0.1 and localhost (EC P-256: fast)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "3",
         "-subj", f"/CN={common_name}",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True,
    )
    return CertFiles(cert, key)


@dataclass(frozen=True)
class DkimKey:
    key_file: Path  # PEM RSA private key (PKCS#8), for smtp.dkim.key_file
    public_b64: str  # base64 DER SubjectPublicKeyInfo: the p= of the DNS record

    def txt_record(self) -> bytes:
        return b"v=DKIM1; k=rsa; p=" + self.public_b64.encode("ascii")

    def dnsfunc(self, selector: str, domain: str):
        """A stand-in for DNS, for dkim.verify(message, dnsfunc=...)."""
        name = f"{selector}._domainkey.{domain}."

        def lookup(qname, timeout=5):
            qname = qname.decode() if isinstance(qname, bytes) else qname
            return self.txt_record() if qname.rstrip(".") == name.rstrip(".") else None

        return lookup


def make_dkim_key(directory: Path, bits: int = 1024) -> DkimKey:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    key = directory / "dkim.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                    f"rsa_keygen_bits:{bits}", "-out", str(key)], check=True, capture_output=True)
    der = subprocess.run(["openssl", "pkey", "-in", str(key), "-pubout", "-outform", "DER"],
                         check=True, capture_output=True).stdout
    return DkimKey(key, base64.b64encode(der).decode("ascii"))


def unused_port() -> int:
    """A port on 127.0.0.1 with nothing listening (free right now)."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


# --- what the server received ------------------------------------------------------------

@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes  # exactly the message bytes, after SMTP dot-unstuffing
    connection: int  # 1-based number of the TCP connection that carried it
    tls: bool = False
    login: str | None = None  # the AUTH login, when there was one

    @property
    def rcpt(self) -> str:
        assert len(self.rcpt_tos) == 1, self.rcpt_tos
        return self.rcpt_tos[0]

    @property
    def message(self) -> EmailMessage:
        return email.message_from_bytes(self.data, policy=email.policy.default)


@dataclass
class Fault:
    stage: str
    reply: str | None = None
    recipient: str | None = None
    drop: bool = False
    times: int | None = None
    fired: int = 0

    def __post_init__(self):
        if self.stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {self.stage!r}")
        if self.reply is None and not self.drop:
            raise ValueError("a fault needs a reply, drop=True, or both")


# --- the server ---------------------------------------------------------------------------

class _FaultySMTP(SMTP):
    """aiosmtpd's SMTP with connection numbering and the faults aiosmtpd has no hook for."""

    def __init__(self, owner: SmtpServer, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.owner = owner
        self.number = 0

    def connection_made(self, transport):
        first = self.transport is None  # the second call is the STARTTLS upgrade
        super().connection_made(transport)
        if first:
            self.number = self.owner._connection_opened()

    async def _handle_client(self):
        fault = self.owner._take("connect", None)
        if fault is not None:
            await _hang_up(self, fault.reply)
        await super()._handle_client()

    async def smtp_DATA(self, arg):
        envelope = self.envelope
        fault = None
        if envelope is not None and envelope.rcpt_tos and not arg:
            fault = self.owner._take("data", envelope.rcpt_tos)
        if fault is None:
            return await super().smtp_DATA(arg)
        if not fault.drop:
            await self.push(fault.reply)
            return
        await self.push(fault.reply or "354 End data with <CR><LF>.<CR><LF>")
        await self._reader.readline()  # the client has started sending the message
        await _hang_up(self)


async def _hang_up(server: SMTP, reply: str | None = None):
    """Close the connection (after `reply`, if any) and end this session's task at once,
    so aiosmtpd neither reads the client's buffered lines as commands nor writes a reply."""
    if reply:
        await server.push(reply)
    server.transport.close()
    raise asyncio.CancelledError


class _Handler:
    def __init__(self, owner: SmtpServer):
        self.owner = owner

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if self.owner.auth is not None and not session.authenticated:
            return "530 5.7.0 Authentication required"
        fault = self.owner._take("mail", None)
        if fault is not None:
            return await self.owner._apply(server, fault)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        self.owner._rcpt_seen(address)
        fault = self.owner._take("rcpt", [address])
        if fault is not None:
            return await self.owner._apply(server, fault)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        delay = max([self.owner.delays.get(r, 0.0) for r in envelope.rcpt_tos] + [self.owner.delay])
        if delay:
            await asyncio.sleep(delay)
        fault = self.owner._take("end", envelope.rcpt_tos)
        if fault is not None and fault.reply:
            return await self.owner._apply(server, fault)
        self.owner._record(Received(
            mail_from=envelope.mail_from,
            rcpt_tos=list(envelope.rcpt_tos),
            data=bytes(envelope.original_content),
            connection=server.number,
            tls=server.transport.get_extra_info("ssl_object") is not None,
            login=(session.auth_data.login.decode()
                   if isinstance(session.auth_data, LoginPassword) else None),
        ))
        if fault is not None:  # drop without a reply: recorded, but the 250 is lost
            await _hang_up(server)
        return "250 2.0.0 OK queued"


class _Controller(Controller):
    def __init__(self, owner: SmtpServer, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.owner = owner

    def factory(self):
        return _FaultySMTP(self.owner, self.handler, **self.SMTP_kwargs)

    def _trigger_server(self):
        # port=0 lets the OS pick a free port; learn it before aiosmtpd's self-test connects
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class _ConfigFor:
    """What a site needs to send to a server on `port` (with `tls`, `cert`, `auth`)."""

    def smtp_settings(self) -> dict[str, Any]:
        settings: dict[str, Any] = {"host": HOST, "port": self.port,
                                    "security": self.tls or "none"}
        if self.tls:
            settings["ca_file"] = str(self.cert.cert)
        if self.auth:
            settings["username"] = next(iter(self.auth))
        return settings

    def config(self, directory: Path, **smtp: Any):
        """sites.make_config(directory) with this server's smtp: settings plus `smtp`."""
        from sites import make_config  # lazy: the spool server process (this file run) needs no yaml

        return make_config(directory, smtp={**self.smtp_settings(), **smtp})


class SmtpServer(_ConfigFor):
    """An aiosmtpd server on 127.0.0.1 in a background thread; a context manager."""

    def __init__(self, *, tls: str | None = None, cert: CertFiles | None = None,
                 auth: dict[str, str] | None = None, delay: float = 0.0,
                 spool: Path | None = None, faults: list[Fault | dict] = ()):
        if tls not in (None, "starttls", "ssl"):
            raise ValueError("tls must be None, 'starttls' or 'ssl'")
        if tls and cert is None:
            raise ValueError("a TLS server needs cert=make_cert(directory)")
        self.tls = tls
        self.cert = cert
        self.auth = auth
        self.delay = delay
        self.delays: dict[str, float] = {}  # per recipient, instead of `delay`, at the end of DATA
        self.spool = Path(spool) if spool else None
        self.port = 0
        self._lock = threading.Condition()
        self._received: list[Received] = []
        self._faults: list[Fault] = [f if isinstance(f, Fault) else Fault(**f) for f in faults]
        self._connections = 0
        self._rcpts: list[str] = []
        self._controller: _Controller | None = None

    # -- lifecycle
    def start(self) -> SmtpServer:
        kwargs: dict[str, Any] = {"hostname": HOST, "port": 0, "server_hostname": "localhost",
                                  "ready_timeout": 10}
        if self.tls:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(str(self.cert.cert), str(self.cert.key))
            if self.tls == "ssl":
                kwargs["ssl_context"] = context
            else:
                kwargs.update(tls_context=context, require_starttls=True)
        if self.auth is not None:
            kwargs.update(authenticator=self._authenticate,
                          auth_require_tls=self.tls is not None)
        self._controller = _Controller(self, _Handler(self), **kwargs)
        self._controller.start()
        self.port = self._controller.port
        with self._lock:  # forget aiosmtpd's own start-up probe
            self._connections = 0
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> SmtpServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- what the tests use
    @property
    def host(self) -> str:
        return HOST

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    @property
    def connections(self) -> int:
        with self._lock:
            return self._connections

    def attempts(self, address: str) -> int:
        with self._lock:
            return self._rcpts.count(address)

    def add_fault(self, stage: str, reply: str | None = None, *, recipient: str | None = None,
                  drop: bool = False, times: int | None = None) -> Fault:
        fault = Fault(stage, reply, recipient, drop, times)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Block until at least `count` messages arrived (for servers fed from elsewhere)."""
        with self._lock:
            self._lock.wait_for(lambda: len(self._received) >= count, timeout)
            return list(self._received)

    # -- called from the server thread
    def _connection_opened(self) -> int:
        with self._lock:
            self._connections += 1
            return self._connections

    def _rcpt_seen(self, address: str) -> None:
        with self._lock:
            self._rcpts.append(address)

    def _take(self, stage: str, recipients: list[str] | None) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.stage != stage:
                    continue
                if fault.recipient is not None and fault.recipient not in (recipients or ()):
                    continue
                if fault.times is not None and fault.fired >= fault.times:
                    continue
                fault.fired += 1
                return fault
        return None

    @staticmethod
    async def _apply(server: _FaultySMTP, fault: Fault) -> str:
        if fault.drop:
            await _hang_up(server, fault.reply)
        return fault.reply

    def _record(self, received: Received) -> None:
        if self.spool is not None:
            _spool_write(self.spool, received)
        with self._lock:
            self._received.append(received)
            self._lock.notify_all()

    def _authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        ok = (isinstance(auth_data, LoginPassword)
              and self.auth.get(auth_data.login.decode(errors="replace"))
              == auth_data.password.decode(errors="replace"))
        return AuthResult(success=ok, auth_data=auth_data if ok else None, handled=False)


# --- spool: messages as files, for servers in another process -----------------------------

def _spool_write(spool: Path, received: Received) -> None:
    spool.mkdir(parents=True, exist_ok=True)
    # Name by time and a random suffix: unique across threads and restarts, and sortable.
    stem = f"{time.time_ns():020d}-{os.urandom(4).hex()}"
    meta = {k: v for k, v in asdict(received).items() if k != "data"}
    for suffix, payload in ((".eml", received.data), (".json", json.dumps(meta).encode())):
        fd, tmp = tempfile.mkstemp(dir=spool, prefix=".tmp-")
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, spool / (stem + suffix))


def read_spool(spool: Path) -> list[Received]:
    """Every message a spooling server accepted, oldest first."""
    spool = Path(spool)
    out = []
    for meta_path in sorted(spool.glob("*.json")):
        eml = meta_path.with_suffix(".eml")
        if not eml.exists():
            continue
        meta = json.loads(meta_path.read_text())
        out.append(Received(data=eml.read_bytes(), **meta))
    return out


class SpoolServerProcess(_ConfigFor):
    """The SMTP server in a child process, writing accepted messages to `spool`."""

    def __init__(self, spool: Path, *, faults: list[dict] = (), delay: float = 0.0,
                 tls: str | None = None, cert: CertFiles | None = None,
                 auth: dict[str, str] | None = None):
        self.spool = Path(spool)
        self.tls, self.cert, self.auth = tls, cert, auth
        self.spool.mkdir(parents=True, exist_ok=True)
        self.port_file = self.spool / ".port"
        spec = {"faults": list(faults), "delay": delay, "tls": tls, "auth": auth,
                "cert": [str(cert.cert), str(cert.key)] if cert else None}
        self._args = [sys.executable, str(Path(__file__).resolve()), "--spool", str(self.spool),
                      "--spec", json.dumps(spec)]
        self.proc: subprocess.Popen | None = None
        self.port = 0

    def start(self, timeout: float = 20.0) -> SpoolServerProcess:
        self.port_file.unlink(missing_ok=True)
        self.proc = subprocess.Popen(self._args, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while not self.port_file.exists():
            if self.proc.poll() is not None:
                raise RuntimeError("SMTP server process died: "
                                   + self.proc.stderr.read().decode(errors="replace"))
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError("SMTP server process did not start")
            time.sleep(0.02)
        self.port = int(self.port_file.read_text())
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None and self.proc.stderr:
            self.proc.stderr.close()
        self.proc = None

    def __enter__(self) -> SpoolServerProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def received(self) -> list[Received]:
        return read_spool(self.spool)



def _main(argv: list[str] | None = None, server_class: type | None = None) -> None:
    """The spooling server process (SpoolServerProcess runs this file); `server_class`: an
    SmtpServer subclass to run instead (send_helpers runs a pipelining one)."""
    parser = argparse.ArgumentParser(description="an SMTP test server that spools to a folder")
    parser.add_argument("--spool", required=True, type=Path)
    parser.add_argument("--spec", default="{}", help="JSON: faults, delay, tls, cert, auth")
    args = parser.parse_args(argv)
    spec = json.loads(args.spec)
    cert = CertFiles(*map(Path, spec["cert"])) if spec.get("cert") else None
    server = (server_class or SmtpServer)(tls=spec.get("tls"), cert=cert, auth=spec.get("auth"),
                                          delay=spec.get("delay", 0.0), spool=args.spool,
                                          faults=spec.get("faults", []))
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    with server:
        port_file = args.spool / ".port"
        tmp = port_file.with_suffix(".tmp")
        tmp.write_text(str(server.port))
        os.replace(tmp, port_file)  # readers never see a half-written port
        done.wait()


# --- pytest fixtures (import them into a test module to use them) -------------------------

try:
    import pytest
except ImportError:  # pragma: no cover - the subprocess server needs no pytest
    pytest = None

if pytest is not None:
    @pytest.fixture
    def smtp_server():
        with SmtpServer() as server:
            yield server

    @pytest.fixture(scope="session")
    def smtp_cert(tmp_path_factory) -> CertFiles:
        return make_cert(tmp_path_factory.mktemp("smtp-cert"))


if __name__ == "__main__":
    _main()
