"""The only smtplib user: connections, retries, backoff and bounce classification.

`deliver` hands a stream of messages (bytes, built and signed by message.py) to the SMTP
server and reports, per message, one final outcome. The caller (sending.py) owns the ledger;
this module owns the wire.

How a reply is classified, per message (each message has exactly one RCPT TO):

    2xx at the end of DATA                       -> "sent"
    5xx about the mailbox (RFC 3463 enhanced
    status 5.1.x or 5.2.x; or a bare 5xx to
    RCPT TO)                                     -> "bounced" (never retried)
    5xx about anything else (5.7.x policy,
    5.3.x/5.4.x system, 5.5.x protocol, 5.6.x
    content; or a bare 5xx to DATA or at the end
    of DATA)                                     -> "refused": not the recipient's fault, so
                                                    not a bounce; still owed, tried again on
                                                    the next run
    4xx anywhere, a dropped or reset connection,
    a timeout, a TLS error mid-session           -> retried on a fresh connection after
                                                    retry_base_delay * 2**n seconds (capped at
                                                    MAX_BACKOFF), up to max_attempts attempts
                                                    in all; then "deferred" (still owed)

Two circuit breakers keep a server that refuses or defers *everything* from costing the list:
- REFUSAL_STREAK recipients in a row refused with the same reply (addresses aside) is the
  server refusing us, whatever code it uses: none of them is marked bounced (their results
  are held back until the streak is broken), they stay owed, and the run stops with a
  DeliveryError quoting the reply.
- Once a message has been deferred after all its attempts and nothing was accepted since,
  the next messages get one attempt each, without backoff (the server is deferring
  everything; waiting per message would hold the run for hours); DEFER_STREAK such messages
  in a row stop the run with a DeliveryError. What was not sent stays owed for the next run.

Some failures are not about one recipient but about the configuration, and would repeat for
every message: a 5xx to MAIL FROM (the sender is not allowed), a failed login, a 5xx to
RCPT TO that says relaying is denied or authentication is required, a server certificate
that does not verify, a server that cannot be reached at all. Carrying on would either
waste hours of backoff or, worse, mark the whole list as bounced. So these raise
DeliveryError instead: the message being sent when it happened is reported "deferred" (the
server did not take it, so it is still owed), messages already in flight on other
connections are finished and reported, and every job not yet started gets no callback at
all, so the next run picks them up untouched.

Delivery is at-least-once: if the connection drops after the final "." but before the
server's reply, the server may have queued the message, and the retry sends it again. SMTP
offers no way to tell; losing a message silently would be worse.

How many connections: `smtp.connections`, a number, or `auto` (the default): one connection
to a server that offers PIPELINING (a message is then two round trips, and one connection
keeps up), two to one that does not when the send owes at least AUTO_SECOND_FROM messages
(four round trips a message, one at a time: a second connection fills the waits, as Postfix
delivers in parallel per destination and listmonk keeps a pool of 10). A test copy or a small
list never opens two. A server that refuses a later connection gets the send over fewer.

One thread serves every connection (the calling thread; `_Run._drive`): each connection's
loop is a generator that yields once it has written a command, and the thread serves the
others until that server has answered. Each connection is reused for many messages,
reads the next job itself, lazily, and builds its message while the server takes in the
current one. The caller's iterable and every callback run on the calling thread, one at a
time. What does not yield, opening a connection (connect, greeting, TLS, login) and the
ledger's writes, holds up the others meanwhile; a reply that arrived during it is read even
if that is past smtp.timeout (the server accepted: better than sending again).

Where the server offers PIPELINING (RFC 2920), MAIL, RCPT and DATA go out in one write,
and the intent (on_attempt) is recorded while the server answers them: still before the
message's content is handed over, which is what makes a crash resumable.
"""

from __future__ import annotations

import logging
import re
import select
import smtplib
import socket
import ssl
import struct
import threading
import time
from dataclasses import dataclass
from email.utils import parseaddr
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from ..config import PASSWORD_ENV, Config
from ..errors import ConfigError, DeliveryError, RecipientError

log = logging.getLogger(__name__)

MAX_BACKOFF = 300.0  # seconds; a longer wait would outlast a cron interval for no gain
MAX_LINE = 998  # RFC 5322 2.1.1, without the CRLF
_REPLY_LINE_MAX = smtplib._MAXLINE  # the longest reply line smtplib accepts (8,192 bytes)
_READ_SIZE = 8192
_SLACK = 0.01  # seconds a reply may be waited for past smtp.timeout (_Run._answered)


def _may_have_long_line(data: bytes) -> bool:
    """False only if every line of `data` (CRLF-terminated, the last maybe not) is at most
    MAX_LINE bytes long; True means: measure.

    A line longer than MAX_LINE covers one of the offsets 0, MAX_LINE, 2 * MAX_LINE, ...:
    only the lines at those offsets are measured, each with two searches in C (a regex
    over the whole message cost four times as much)."""
    size = len(data)
    for offset in range(0, size, MAX_LINE):
        start = data.rfind(b"\n", 0, offset) + 1
        end = data.find(b"\n", offset)
        if (end if end >= 0 else size) - start > MAX_LINE:  # (the line and its CR)
            return True
    return False


def wire_ready(data: bytes) -> bool:
    """Do all of `data`'s lines end in CRLF, and are they at most MAX_LINE bytes long? What
    every message is made to meet before it is handed over (_Run._prepare)."""
    if data.count(b"\n") != data.count(b"\r\n"):
        return False
    return not _may_have_long_line(data) or max(map(len, data.split(b"\r\n"))) <= MAX_LINE


REPLY_MAX = 300  # characters of a server reply kept in an Outcome

# RFC 3463 enhanced status code at the start of a reply's text: class.subject.detail
_ENHANCED = re.compile(r"([245])\.(\d{1,3})\.(\d{1,3})(?!\S)")
# Recipients in a row refused the same way before the run stops (see the module docstring).
REFUSAL_STREAK = 10
# smtp.connections: auto (module docstring): the connections it opens to a server without
# PIPELINING, and the messages a send must owe before it opens more than one.
AUTO_CONNECTIONS = 2
AUTO_SECOND_FROM = 100
# Messages in a row deferred, with nothing accepted in between, before the run stops.
DEFER_STREAK = 5

# A 5xx to RCPT TO with one of these in its text refuses *us*, not the recipient: treating
# it as a bounce would mark every subscriber bounced for good.
_NOT_THE_RECIPIENT = re.compile(r"relay|authenticat", re.IGNORECASE)

_clock = time.monotonic  # the rate limiter's clock; a module attribute so tests can replace it
_END = object()


@dataclass
class Job:
    key: Any  # opaque to delivery (the pipeline uses (digest_id, subscriber_id))
    recipient: str  # envelope RCPT TO address
    build: Callable[[], bytes]  # the full message bytes; called once, in the worker
    sender: str | None = None  # this message's envelope sender (VERP); None: the run's
    # build() returns bytes that pass wire_ready(), made sure of where they are built
    # (message.py's CompiledMessage.wire_ready): not scanned again here.
    wire_ready: bool = False


@dataclass
class Outcome:
    status: str  # "sent" | "bounced" | "deferred"
    code: int | None  # last SMTP reply code; None for a dropped connection
    reply: str  # last SMTP reply text (or the exception text), one line, <= REPLY_MAX chars
    attempts: int


@dataclass
class DeliveryStats:
    sent: int = 0
    bounced: int = 0
    deferred: int = 0
    retried: int = 0  # extra attempts made, over all messages
    refused: int = 0  # 5xx replies that are not about the recipient: still owed


def refusal_status(stage: str, code: int, reply: str) -> str:
    """"bounced" if a 5xx reply at `stage` ("RCPT" or "DATA", which covers the end of DATA)
    is about the recipient's mailbox, else "refused" (see the module docstring).

    RFC 3463: X.1.x are addressing (5.1.7 and 5.1.8 are the *sender's* address), X.2.x the
    mailbox; X.3.x mail system, X.4.x network, X.5.x protocol, X.6.x content, X.7.x policy
    are not the recipient's. Without an enhanced code (or with X.0.x, "other"), a refusal
    of RCPT TO is taken as the mailbox's (RFC 5321's 550 "mailbox unavailable"), and one of
    the message (DATA, end of DATA) as the message's."""
    match = _ENHANCED.match(reply)
    if match and match.group(1) == "5":
        subject, detail = int(match.group(2)), int(match.group(3))
        if subject == 2 or (subject == 1 and detail not in (7, 8)):
            return "bounced"
        if subject != 0:
            return "refused"
    return "bounced" if stage == "RCPT" else "refused"


def _refusal_key(outcome: Outcome) -> tuple:
    """Two refusals are "the same way" if their code and text agree once addresses are
    taken out (servers quote the recipient)."""
    text = re.sub(r"<[^<>]*>|[^\s<>]+@[^\s<>]+", "<>", outcome.reply).lower()
    return (outcome.code, text)


# --- small helpers ------------------------------------------------------------------------

def _one_line(text: Any) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    text = " ".join(str(text).split())
    return text if len(text) <= REPLY_MAX else text[: REPLY_MAX - 1] + "…"


def _error_text(e: BaseException) -> str:
    if isinstance(e, smtplib.SMTPResponseException):
        return _one_line(f"{e.smtp_code} {_one_line(e.smtp_error)}")
    return _one_line(str(e) or type(e).__name__)


def _describe(code: int | None, reply: str) -> str:
    return f"{code} {reply}" if code else reply


def _code(code: int) -> int | None:
    return code if code > 0 else None  # smtplib says -1 for a reply it could not parse


def _where(config: Config) -> str:
    return f"{config.smtp.host}:{config.smtp.port}"


def _bare_address(value: str, config: Config) -> str:
    """The envelope sender: accept 'Blog <news@x>' as well as 'news@x'."""
    addr = parseaddr(value or "")[1]
    if "@" not in addr:
        raise ConfigError(
            f"{config.path}: newsletter.from: expected an address such as "
            f"'Blog <news@blog.example.org>' to send mail, got {value!r}"
        )
    return addr


def _valid_recipient(addr: str) -> bool:
    # No whitespace, controls or brackets: smtplib would refuse them with a ValueError,
    # and they cannot name a mailbox anyway.
    return "@" in addr and not re.search(r"[\s<>\x00-\x1f\x7f]", addr)


def _resolve(config: Config, value: str) -> Path:
    return config.root / Path(value).expanduser()  # an absolute value replaces the root


def _tls_context(config: Config) -> ssl.SSLContext:
    smtp = config.smtp
    context = ssl.create_default_context()
    if smtp.ca_file:
        path = _resolve(config, smtp.ca_file)
        try:
            # Added to the system's CAs, not instead of them (create_default_context's
            # cafile= would replace them).
            context.load_verify_locations(cafile=str(path))
        except (OSError, ssl.SSLError) as e:
            raise ConfigError(
                f"{config.path}: smtp.ca_file: expected a PEM file of CA certificates, "
                f"got {str(path)!r} ({getattr(e, 'strerror', None) or e})"
            ) from e
    if not smtp.verify_tls:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _warn_if_unverified(config: Config) -> None:
    if config.smtp.security != "none" and not config.smtp.verify_tls:
        log.warning(
            "smtp.verify_tls is false: the certificate of %s is NOT checked, so anyone on "
            "the network path can read the mail and the SMTP password; set smtp.ca_file "
            "instead",
            _where(config),
            extra={"loud": True},  # shown even under --quiet: cron mail must carry it
        )


def check_settings(config: Config) -> None:
    """Raise ConfigError for SMTP settings that would fail a send (password, CA file),
    without touching the network: sending.check_settings calls it before a digest is recorded."""
    _check_settings(config)


def _check_settings(config: Config) -> ssl.SSLContext | None:
    """Find the config problems that show before touching the network (ConfigError);
    return the TLS context to use, if any."""
    if config.smtp.username and not config.smtp_password:
        raise ConfigError(
            f"{config.path}: smtp.username is {config.smtp.username!r}, so the password is "
            f"expected in the environment variable {PASSWORD_ENV}, but it is not set"
        )
    _warn_if_unverified(config)
    return _tls_context(config) if config.smtp.security != "none" else None


# --- one connection -----------------------------------------------------------------------

# An address smtplib.quoteaddr returns as "<address>" without needing its parser (a tenth of
# a pipelined exchange's CPU time): dot-atoms of letters, digits, "_", "+" and "-".
_PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\Z")


def _quoted(address: str) -> str:
    """smtplib.quoteaddr(address), faster for a plain address."""
    return f"<{address}>" if _PLAIN_ADDRESS.match(address) else smtplib.quoteaddr(address)


def _commands(sender: str | None, options: list[str], recipient: str | None = None) -> bytes:
    """MAIL, spelled as smtplib's mail() spells it; with a recipient, followed by RCPT and
    DATA, for one write (RFC 2920: DATA may only end a group). Without a sender: RCPT alone,
    as smtplib's rcpt() spells it."""
    lines = [] if sender is None else [
        f"MAIL FROM:{_quoted(sender)}{''.join(' ' + o for o in options)}"]
    if recipient is not None:
        lines.append(f"RCPT TO:{_quoted(recipient)}")
        if sender is not None:
            lines.append("DATA")
    if any("\r" in line or "\n" in line for line in lines):
        raise ValueError(f"SMTP command arguments contain a line break: {sender!r}, {recipient!r}")
    return "".join(line + "\r\n" for line in lines).encode(
        "utf-8" if "SMTPUTF8" in options else "ascii")


def _kernel_timeouts(sock: Any, seconds: float) -> bool:
    """Make a plain socket blocking, with `seconds` as its read and write timeouts in the
    kernel (SO_RCVTIMEO, SO_SNDTIMEO): a read or write then costs one system call, not a
    poll() and the call. False, and the socket left as it was, for a TLS socket (its reads
    may need writes, and it takes no flags) or where the options cannot be set."""
    if isinstance(sock, ssl.SSLSocket) or not hasattr(socket, "SO_RCVTIMEO"):
        return False
    whole = int(seconds)
    micro = max(int((seconds - whole) * 1_000_000), 0 if whole else 1)  # (0 would be none)
    timeval = struct.pack("@ll", whole, micro)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)
    except (OSError, struct.error):
        return False
    sock.settimeout(None)
    return True


def _dot_stuffed(data: bytes) -> bytes:
    """A message as DATA carries it, as smtplib's data() sends it: a line starting with "."
    gets a second one, and the end marker follows."""
    data = data.replace(b"\n.", b"\n..")  # = re.sub(rb"(?m)^\.", ...), at C speed
    if data.startswith(b"."):
        data = b"." + data
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


class _Retry(Exception):
    """This attempt failed for a reason that may go away: try again later."""

    def __init__(self, code: int | None, reply: str, *, unreachable: bool = False,
                 stale: bool = False):
        super().__init__(reply)
        self.code = code
        self.reply = reply
        self.unreachable = unreachable  # could not even open a connection
        self.stale = stale  # failed at the first command on a reused connection


class _Fatal(Exception):
    """A configuration problem: no message can be sent; stop the run."""

    def __init__(self, error: DeliveryError, code: int | None = None, reply: str = ""):
        super().__init__(error.message)
        self.error = error
        self.code = code
        self.reply = reply or error.message


class _Session:
    """One SMTP connection, reopened as needed.

    smtplib opens it (connect, EHLO, STARTTLS, AUTH); the transactions then write to its
    socket and read the replies from it directly (`_reply`): smtplib's file object, its
    line-by-line reads in Python and its audit hook cost more per message than the rest of
    the exchange, four times a message.

    A plain connection then also leaves smtp.timeout to the kernel (SO_RCVTIMEO and
    SO_SNDTIMEO on a blocking socket, `direct`): Python enforces a socket's timeout with a
    poll() before every read and write, a system call more each time, eight a message."""

    def __init__(self, config: Config, context: ssl.SSLContext | None):
        self.config = config
        self.context = context
        self.smtp: smtplib.SMTP | None = None
        self.sock: Any = None  # smtp.sock once the session is set up (TLS: the TLS socket)
        self.direct = False  # self.sock blocks, its timeouts set in the kernel (_kernel_timeouts)
        self.unread = b""  # bytes received after the last reply read
        self.late = False  # the reply awaited did not come within smtp.timeout (_Run._answered)
        self.reused = False  # has completed a transaction since it was opened

    def open(self) -> bool:
        """Connect (+EHLO, +TLS, +login) unless already connected. True if it connected.

        Raises _Retry(unreachable=True) for failures that may be transient and _Fatal for
        configuration problems."""
        if self.smtp is not None:
            return False
        cfg, where = self.config.smtp, _where(self.config)
        try:
            if cfg.security == "ssl":
                smtp = smtplib.SMTP_SSL(cfg.host, cfg.port, timeout=cfg.timeout,
                                        context=self.context)
            else:
                smtp = smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout)
        except ssl.SSLCertVerificationError as e:
            raise self._untrusted(e) from e
        except smtplib.SMTPConnectError as e:  # a greeting other than 220, e.g. 421 busy
            raise _Retry(_code(e.smtp_code), _one_line(e.smtp_error), unreachable=True) from e
        except (OSError, ssl.SSLError) as e:
            raise _Retry(None, _error_text(e), unreachable=True) from e
        try:
            self._handshake(smtp)
        except BaseException:
            smtp.close()
            raise
        self.smtp = smtp
        self.sock, self.unread = smtp.sock, b""
        self.direct = _kernel_timeouts(smtp.sock, cfg.timeout)
        self.reused = False
        log.debug("connected to %s", where)
        return True

    def _untrusted(self, e: ssl.SSLCertVerificationError) -> _Fatal:
        return _Fatal(DeliveryError(
            f"SMTP server {_where(self.config)}: TLS certificate not trusted: "
            f"{e.verify_message or e.reason or e} (set smtp.ca_file to the CA that "
            "signed it; smtp.verify_tls: false turns the check off)"
        ))

    def _handshake(self, smtp: smtplib.SMTP) -> None:
        cfg, where = self.config.smtp, _where(self.config)
        try:
            smtp.ehlo_or_helo_if_needed()
            if cfg.security == "starttls":
                if not smtp.has_extn("starttls"):
                    raise _Fatal(DeliveryError(
                        f"SMTP server {where} does not offer STARTTLS (smtp.security is "
                        "starttls; use ssl for an implicit-TLS port such as 465)"
                    ))
                smtp.starttls(context=self.context)
                smtp.ehlo()
            if cfg.username:
                self._login(smtp)
        except _Fatal:
            raise
        except ssl.SSLCertVerificationError as e:
            raise self._untrusted(e) from e
        except smtplib.SMTPResponseException as e:
            if 500 <= e.smtp_code < 600:
                raise _Fatal(DeliveryError(
                    f"SMTP server {where} refused the session: {_error_text(e)}"
                ), e.smtp_code, _one_line(e.smtp_error)) from e
            raise _Retry(_code(e.smtp_code), _one_line(e.smtp_error), unreachable=True) from e
        except (OSError, ssl.SSLError) as e:
            raise _Retry(None, _error_text(e), unreachable=True) from e

    def _login(self, smtp: smtplib.SMTP) -> None:
        cfg, where = self.config.smtp, _where(self.config)
        try:
            smtp.login(cfg.username, self.config.smtp_password)
        except smtplib.SMTPAuthenticationError as e:
            if 400 <= e.smtp_code < 500:  # 454: temporary authentication failure
                raise _Retry(e.smtp_code, _one_line(e.smtp_error), unreachable=True) from e
            raise _Fatal(DeliveryError(
                f"SMTP server {where} rejected the login of {cfg.username!r}: "
                f"{_error_text(e)} (check smtp.username and {PASSWORD_ENV})"
            ), e.smtp_code, _one_line(e.smtp_error)) from e
        except smtplib.SMTPNotSupportedError as e:
            raise _Fatal(DeliveryError(
                f"SMTP server {where} does not offer AUTH, but smtp.username is set"
                + (" (many servers offer it only after TLS: set smtp.security)"
                   if cfg.security == "none" else "")
            )) from e
        except (smtplib.SMTPResponseException, smtplib.SMTPServerDisconnected):
            raise  # classified by _handshake
        except smtplib.SMTPException as e:  # no mechanism in common
            raise _Fatal(DeliveryError(
                f"SMTP server {where}: cannot log in as {cfg.username!r}: {e}"
            )) from e

    def pipelining(self) -> bool:
        """Does the server (as connected) offer PIPELINING (RFC 2920)?"""
        return self.smtp is not None and self.smtp.has_extn("pipelining")

    def close(self, polite: bool = True) -> None:
        smtp, self.smtp, sock, self.sock = self.smtp, None, self.sock, None
        if smtp is None:
            return
        if self.direct:
            self.direct = False
            try:
                sock.settimeout(self.config.smtp.timeout)  # smtplib's QUIT: as smtplib set it
            except OSError:
                pass
        try:
            if polite:
                smtp.quit()
            else:
                smtp.close()
        except (OSError, ssl.SSLError):
            smtp.close()

    def transmit(self, sender: str, recipient: str, data: bytes,
                 intent: Callable[[], None] = lambda: None,
                 meanwhile: Callable[[], None] | None = None,
                 durable: Callable[[], None] = lambda: None) -> Iterator[None]:
        """One attempt: MAIL, RCPT, DATA. A generator (see _Run._drive): it yields once each
        command is written, before reading the reply, so that the thread can serve another
        connection while this server answers; it returns ("sent" | "bounced" | "refused",
        code, reply).

        When the server offers PIPELINING (RFC 2920), MAIL, RCPT and DATA go out in one
        write and their replies are read in order, each checked as without it: two round
        trips per message instead of four, which on a fast server is a third of the time.

        intent() runs once the first write (MAIL, or MAIL to DATA pipelined) is out, while
        the server answers it: before any of the message's content can reach the server.
        durable() runs once DATA is written (pipelined: right after intent()), while the
        server answers it, and before the content goes out: the intent is made durable then.
        meanwhile(), if given, runs once the content is written, while the server takes it
        in. Each runs at most once here; an exception from intent() or durable() comes out
        as _CallbackFailed.

        Raises _Retry or _Fatal; the connection is then in an unknown state and the caller
        closes it."""
        smtp = self.smtp
        assert smtp is not None
        where = _where(self.config)
        stage = "MAIL"
        try:
            options = []
            if not data.isascii() and smtp.has_extn("8bitmime"):
                options.append("BODY=8BITMIME")
            if not (sender.isascii() and recipient.isascii()):
                if not smtp.has_extn("smtputf8"):
                    self._rset()
                    return ("bounced", None,
                            f"{where} does not offer SMTPUTF8, needed for this address")
                options.append("SMTPUTF8")  # for RCPT too (_commands), as smtplib's mail() does
            pipelined = smtp.has_extn("pipelining")
            self._send(_commands(sender, options, recipient if pipelined else None))
            # The intent is recorded while the server answers: no content has gone out yet.
            self._callback(intent)
            if pipelined:
                self._callback(durable)
            yield
            code, text = self._reply()
            reply = _one_line(text)
            if not 200 <= code < 300:
                if 500 <= code < 600:
                    raise _Fatal(DeliveryError(
                        f"SMTP server {where} refused the sender <{sender}>: {code} {reply} "
                        "(check newsletter.from, smtp.username and the server's relay "
                        "settings)"
                    ), code, reply)
                raise _Retry(_code(code), reply, stale=self.reused and code == 421)
            # (Pipelined, a refused MAIL leaves the RCPT and DATA replies unread: the caller
            # closes the connection.)
            stage = "RCPT"
            if not pipelined:  # as smtp.rcpt(recipient) does, without its address parser
                self._send(_commands(None, options, recipient))
                yield
            code, text = self._reply()
            reply = _one_line(text)
            if 500 <= code < 600:
                if code == 530 or _NOT_THE_RECIPIENT.search(reply):
                    raise _Fatal(DeliveryError(
                        f"SMTP server {where} refuses to relay for us: {code} {reply} "
                        "(check smtp.username and the server's relay settings)"
                    ), code, reply)
                if not pipelined or self._skip_data():
                    self._rset()
                return (refusal_status("RCPT", code, reply), code, reply)
            if not 200 <= code < 300:
                if pipelined:
                    self._skip_data()
                raise _Retry(_code(code), reply)
            stage = "DATA"
            if not pipelined:
                self._send(b"DATA\r\n")
                self._callback(durable)
                yield
            code, text = self._reply()
            if code == 354:  # else the DATA command itself was refused
                self._send(_dot_stuffed(data))
                if meanwhile is not None:
                    meanwhile()
                yield
                code, text = self._reply()
            reply = _one_line(text)
            if 200 <= code < 300:
                self.reused = True
                return ("sent", code, reply)
            if 500 <= code < 600:
                self._rset()
                return (refusal_status("DATA", code, reply), code, reply)
            raise _Retry(_code(code), reply)
        except (_Retry, _Fatal, _CallbackFailed):
            raise
        except (OSError, ssl.SSLError) as e:  # includes SMTPServerDisconnected, timeouts
            raise _Retry(None, _error_text(e), stale=self.reused and stage == "MAIL") from e

    def _send(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except BlockingIOError as e:  # direct: SO_SNDTIMEO ran out
            raise TimeoutError("timed out") from e

    def answered(self) -> bool | None:
        """Has the server's reply arrived? Never waits. True: there is something to read (a
        reply, an error, the end of the connection); False: not yet; None: a TLS socket, that
        cannot tell without a poll (unless TLS holds decrypted bytes already)."""
        if b"\n" in self.unread:
            return True  # read with an earlier reply (pipelined)
        if not self.direct:
            return True if isinstance(self.sock, ssl.SSLSocket) and self.sock.pending() else None
        try:
            more = self.sock.recv(_READ_SIZE, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return False
        except OSError:
            return True  # _reply reads again, and reports the connection's end
        self.unread += more
        return True

    def _reply(self) -> tuple[int, bytes]:
        """The server's next reply, read as smtplib's getreply() reads it: the code (-1 if a
        line has none), and the text of its lines joined by "\n". Raises OSError as it does:
        SMTPServerDisconnected when the connection ends or fails, SMTPResponseException for
        a line longer than smtplib accepts."""
        if self.late:
            self.late = False
            raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed: timed out")
        unread, text = self.unread, []
        while True:
            end = unread.find(b"\n")
            while end < 0:
                if len(unread) > _REPLY_LINE_MAX:
                    raise smtplib.SMTPResponseException(500, "Line too long.")
                try:
                    more = self.sock.recv(_READ_SIZE)
                except BlockingIOError as e:  # direct: SO_RCVTIMEO ran out
                    raise smtplib.SMTPServerDisconnected(
                        "Connection unexpectedly closed: timed out") from e
                except OSError as e:
                    raise smtplib.SMTPServerDisconnected(
                        f"Connection unexpectedly closed: {e}") from e
                if not more:
                    raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")
                start = len(unread)
                unread += more
                end = unread.find(b"\n", start)
            if end > _REPLY_LINE_MAX:
                raise smtplib.SMTPResponseException(500, "Line too long.")
            line, unread = unread[:end + 1], unread[end + 1:]
            text.append(line[4:].strip(b" \t\r\n"))
            try:
                code = int(line[:3])
            except ValueError:
                code = -1
                break
            if line[3:4] != b"-":
                break
        self.unread = unread
        return code, b"\n".join(text)

    @staticmethod
    def _callback(callback: Callable[[], None]) -> None:
        try:
            callback()
        except BaseException as e:  # not the connection's fault: keep it from being retried
            raise _CallbackFailed(e) from e

    def _skip_data(self) -> bool:
        """After a refused RCPT, read the pipelined DATA's reply: a server refuses DATA
        without a valid recipient (503/554). One that waits for a message instead (354) gets
        none: the connection is dropped. True if the connection is still usable."""
        try:
            code, _text = self._reply()
        except (OSError, ssl.SSLError):
            code = 0
        if 400 <= code < 600:
            return True
        self.close(polite=False)
        return False

    def _rset(self) -> None:
        """Clear the transaction so the connection can carry the next message."""
        self.reused = True
        try:
            self._send(b"RSET\r\n")
            code, _text = self._reply()
        except (OSError, ssl.SSLError):
            code = 0
        if not 200 <= code < 300:
            self.close(polite=False)


# --- pacing -------------------------------------------------------------------------------

class RateLimiter:
    """At most `rate` acquisitions per second over all threads (0 = unlimited).

    A token bucket holding one token: every acquisition is spaced 1/rate after the
    previous one, so a provider's per-second limit is never exceeded, even in a burst."""

    def __init__(self, rate: float, sleep: Callable[[float], Any],
                 clock: Callable[[], float] = time.monotonic):
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.sleep = sleep
        self.clock = clock
        self._next = None
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Wait for the next slot; return how long that took (for logs and tests)."""
        if not self.interval:
            return 0.0
        with self._lock:
            now = self.clock()
            slot = now if self._next is None or self._next < now else self._next
            self._next = slot + self.interval
        wait = slot - now
        if wait > 0:
            self.sleep(wait)
        return max(wait, 0.0)


# --- the run ------------------------------------------------------------------------------

def backoff_delay(config: Config, failed_attempts: int) -> float:
    """Seconds to wait after the `failed_attempts`-th failed attempt (1-based)."""
    return min(config.smtp.retry_base_delay * 2 ** (failed_attempts - 1), MAX_BACKOFF)


class _Once:
    """A callback that runs at most once, however often it is called."""

    def __init__(self, callback: Callable[[], None]):
        self.callback = callback
        self.done = False

    def __call__(self) -> None:
        if not self.done:
            self.done = True
            self.callback()


class _CallbackFailed(Exception):
    """A callback run in the middle of an SMTP exchange raised `error`: not a failure of the
    connection, so it is not retried; the run stops with `error` itself."""

    def __init__(self, error: BaseException):
        super().__init__(str(error))
        self.error = error


_NOT_YET = object()


@dataclass(frozen=True)
class _Pause:
    """Yielded by a connection's loop: resume me after `seconds` (a retry's backoff); the
    thread serves the other connections meanwhile."""

    seconds: float


class _Run:
    def __init__(self, config: Config, sender: str, on_attempt: Callable[[Job], None],
                 on_result: Callable[[Job, Outcome], None], stop: threading.Event,
                 sleep: Callable[[float], Any], on_idle: Callable[[], None] | None = None,
                 before_content: Callable[[], None] | None = None):
        self.config = config
        self.sender = sender
        self.on_attempt = on_attempt
        self.on_result = on_result
        self.on_idle = on_idle
        self.before_content = before_content
        self.undurable = False  # on_attempt ran since before_content last ran
        self.stop = stop
        # The real sleep would hold a stopping run for up to MAX_BACKOFF; waiting on the
        # stop event instead wakes up at once. An injected sleep (tests) is used as given.
        self.wait = stop.wait if sleep is time.sleep else sleep
        self.limiter = RateLimiter(config.smtp.rate_limit, self.wait, _clock)
        self.abort = threading.Event()  # a connection failed: take no new jobs
        self.failure: BaseException | None = None
        self.stats = DeliveryStats()
        # The refusal breaker: results held back while recipients are refused the same way.
        self.streak: list[tuple[Job, Outcome]] = []
        self.streak_key: tuple | None = None
        # The deferral breaker: messages deferred in a row with nothing accepted since.
        self.deferring = 0

    def halted(self) -> bool:
        return self.stop.is_set() or self.abort.is_set()

    def execute(self, first: Job, rest: Iterator[Job], sessions: list[_Session]) -> DeliveryStats:
        """Deliver `first` and then `rest` over `sessions`, every connection taking the next
        job itself when it is ready for one, all on the calling thread (_drive)."""
        alone = len(sessions) == 1
        loops = [(session, self._serve(session, first if i == 0 else None, rest, alone=alone))
                 for i, session in enumerate(sessions)]
        try:
            self._drive(loops)
        finally:
            self._finish_streak()
            self._idle()
        if self.failure is not None:
            raise self.failure
        return self.stats

    def _drive(self, loops: list[tuple[_Session, Iterator[Any]]]) -> None:
        """Run the connections' loops (generators) on this thread. Each yields once it has
        written a command, and is resumed to read the reply once its server has answered
        (`_answered`): while one server answers, this thread works for another connection,
        and a server slow to answer one message holds up only its own connection. A loop
        may also yield a _Pause (a retry's backoff): the others go on meanwhile.

        One thread rather than one per connection: a connection's work is mostly waiting for
        the next reply, and threads would pay for handing the GIL back and forth (a sixth
        more CPU time for two connections to a fast server) for waits that one thread can
        fill as well. A loop that raises stops the run (`_failed`): the others finish the
        message in flight, take no new job, and the exception is raised at the end."""
        runnable = list(loops)  # to be resumed now
        # A command written, its reply not read: (when smtp.timeout runs out for it, loop).
        waiting: list[tuple[float, tuple[_Session, Iterator[Any]]]] = []
        paused: list[tuple[float, int, tuple[_Session, Iterator[Any]]]] = []  # (due, order, loop)
        order = 0
        try:
            while runnable or waiting or paused:
                if paused:
                    now = _clock()
                    for entry in sorted((e for e in paused if e[0] <= now), key=lambda e: e[:2]):
                        paused.remove(entry)
                        runnable.append(entry[2])
                if not runnable:
                    if waiting:
                        runnable = self._answered(waiting, paused)
                    else:  # every loop waits out a backoff: sleep until the first is due
                        entry = min(paused, key=lambda e: e[:2])
                        self.wait(max(entry[0] - _clock(), 0.0))
                        paused.remove(entry)  # (due, or the run is stopping: either way, on)
                        runnable.append(entry[2])
                    continue
                loop = runnable.pop(0)
                try:
                    step = next(loop[1])
                except StopIteration:
                    continue
                except BaseException as e:
                    self._failed(e)
                    continue
                if step is None:
                    waiting.append((time.monotonic() + self.config.smtp.timeout, loop))
                elif not (runnable or waiting or paused):
                    self.wait(step.seconds)  # alone: just wait, as asked
                    runnable.append(loop)
                else:
                    order += 1
                    paused.append((_clock() + step.seconds, order, loop))
        finally:
            for session, serving in runnable + [e[1] for e in waiting] + [e[2] for e in paused]:
                session.close(polite=False)  # stopped mid-exchange (Ctrl-C): no QUIT
                serving.close()

    def _answered(self, waiting: list[tuple[float, tuple[_Session, Iterator[Any]]]],
                  paused: list[tuple[float, int, Any]]) -> list[tuple[_Session, Iterator[Any]]]:
        """Take out of `waiting` and return the loops whose server has answered, or whose
        smtp.timeout ran out (their read then fails at once: `_Session.late`), waiting for one
        at most until the first backoff is due.

        A loop on its own that has just written is returned at once: its read waits for the
        reply itself. Otherwise each is asked in the order they wrote (`answered`: on a plain
        connection that is the read the reply needs anyway, made without waiting), and only
        if none has answered (or TLS cannot tell) are they polled."""
        if len(waiting) == 1 and not paused and (
                waiting[0][0] - time.monotonic() > self.config.smtp.timeout - _SLACK):
            return [waiting.pop(0)[1]]  # just written: its read's own timeout is as good
        now = time.monotonic()
        for i, (due, (session, _serving)) in enumerate(waiting):
            answered = session.answered()
            if answered or (answered is False and due <= now):
                session.late = not answered
                return [waiting.pop(i)[1]]
        timeout = max(min(due for due, _loop in waiting) - now, 0.0)
        if paused:
            timeout = min(timeout, max(min(e[0] for e in paused) - _clock(), 0.0))
        poller = select.poll()
        for _due, (session, _serving) in waiting:
            poller.register(session.sock, select.POLLIN)
        polled = {fd for fd, _event in poller.poll(timeout * 1000)}  # errors, hang-ups too
        now = time.monotonic()
        ready = []
        for entry in waiting:
            due, (session, _serving) = entry
            if session.sock.fileno() in polled:
                ready.append(entry)
            elif due <= now:
                session.late = True  # no reply within smtp.timeout
                ready.append(entry)
        if not ready and not paused:  # (a poll cut short of its timeout)
            entry = min(waiting, key=lambda entry: entry[0])
            entry[1][0].late = True
            ready.append(entry)
        for entry in ready:
            waiting.remove(entry)
        return [loop for _due, loop in ready]

    def _serve(self, session: _Session, first: Job | None, rest: Iterator[Job], *,
               alone: bool) -> Iterator[Any]:
        """One connection's loop (a generator: _drive): while the server takes in a message,
        the next job is read and its message built (`meanwhile`), in the time the client
        would otherwise spend waiting for the reply."""
        upcoming: Any = (first, *self._build(first)) if first is not None else self._take(rest)
        try:
            while upcoming is not None and not self.halted():
                job, data, error = upcoming
                if job is None:
                    raise error  # reading the jobs failed
                upcoming = _NOT_YET

                def meanwhile() -> None:
                    nonlocal upcoming
                    if upcoming is _NOT_YET:
                        upcoming = self._take(rest)

                yield from self._deliver_one(session, job, (data, error), meanwhile)
                if upcoming is _NOT_YET:  # no message went through: nothing was read ahead
                    if self.halted() or not self._idle():
                        break
                    upcoming = self._take(rest)
        finally:
            if not alone:  # (alone, execute() does it once the run is over)
                self._idle()  # done while others go on: nothing may stay held back meanwhile
            session.close()

    def _take(self, rest: Iterator[Job]) -> tuple | None:
        """The next job, its message and what building it raised; None after the last job.
        Never raises: a failure to read a job comes back as (None, None, error), to be raised
        when its turn comes rather than in the middle of another message's exchange."""
        try:
            job = next(rest, _END)
        except BaseException as e:
            return (None, None, e)
        if job is _END:
            return None
        return (job, *self._build(job))

    def _failed(self, e: BaseException) -> None:
        if self.failure is None:
            self.failure = e
        else:
            log.debug("another failure after the first: %s", e)
        self.abort.set()

    def _build(self, job: Job) -> tuple[bytes | None, BaseException | None]:
        """The job's message ready for the wire, or what preparing it raised (None, None for
        an address that is refused before any message is built)."""
        if not _valid_recipient(job.recipient):
            return None, None
        try:
            return self._prepare(job), None
        except BaseException as e:
            return None, e

    def _prepare(self, job: Job) -> bytes:
        data = job.build()
        if not isinstance(data, bytes):
            raise TypeError(f"Job.build() must return bytes, got {type(data).__name__}")
        if job.wire_ready:
            # Made sure of where it was built: the scans below are two passes over every
            # message (~20 us for a 14 KB digest, 0.1 s of a send to 5,000).
            return data
        # SMTP needs CRLF line ends; a bare "\n" is rejected or mangled by some servers.
        if data.count(b"\n") != data.count(b"\r\n"):
            data = re.sub(rb"\r?\n", b"\r\n", data)
        # A scan in C first: splitting every message into lines in Python was a tenth of a
        # large send's CPU time. Only a suspect message is measured line by line.
        if _may_have_long_line(data):
            longest = max(len(line) for line in data.split(b"\r\n"))
        else:
            longest = 0
        if longest > MAX_LINE:
            # A bug upstream, not the recipient's fault: refusing here keeps the server's
            # "500 line too long" from being mistaken for a bounce of every subscriber.
            raise DeliveryError(
                f"message for {job.recipient} has a line of {longest} bytes; SMTP allows "
                f"at most {MAX_LINE} (the message must be encoded with line wrapping)"
            )
        return data

    def _deliver_one(self, session: _Session, job: Job,
                     prepared: tuple[bytes | None, BaseException | None] | None = None,
                     meanwhile: Callable[[], None] | None = None) -> Iterator[Any]:
        """Send one job and report it (a generator, as _serve). `prepared` is what _build
        returned, if it already ran; `meanwhile` runs once the message is handed over, while
        the server takes it in."""
        if not _valid_recipient(job.recipient):
            self._attempted(job)
            self._report(job, Outcome("bounced", None,
                                      _one_line(f"invalid address {job.recipient!r}"), 0))
            return
        data, error = prepared if prepared is not None else self._build(job)
        if isinstance(error, RecipientError):  # this address cannot be written into a message
            self._attempted(job)
            self._report(job, Outcome("bounced", None, _one_line(str(error)), 0))
            return
        if error is not None:
            raise error
        if self.limiter.interval and not self._idle():  # the limiter may make us wait
            return  # not started: no callbacks
        self.limiter.acquire()
        if self.stop.is_set():
            return  # not started: no callbacks
        # Recorded before the message's content is handed over (transmit says when).
        intent = _Once(lambda: self._attempted(job))
        attempts, code, reply = 0, None, ""
        unreachable = 0  # attempts in a row that could not even open a connection
        fatal: DeliveryError | None = None
        outcome: Outcome | None = None
        while outcome is None:
            if attempts:
                # A stopping or failed run does not hold a message for minutes of backoff:
                # it is reported deferred, which is true (it is still owed).
                # Nor when the server deferred the last message too, and took nothing since:
                # it defers everything, and a backoff per message would hold the run for hours.
                if (attempts >= self.config.smtp.max_attempts or self.halted()
                        or self.deferring):
                    break
                delay = backoff_delay(self.config, attempts)
                log.info("%s: attempt %d failed (%s); retrying in %gs", job.recipient,
                         attempts, _describe(code, reply), delay)
                yield _Pause(delay)
                if self.halted():
                    break
                self.limiter.acquire()
                self.stats.retried += 1
            attempts += 1
            try:
                status, code, reply = yield from self._attempt(
                    session, job.recipient, data, intent, meanwhile, sender=job.sender)
                outcome = Outcome(status, code, reply, attempts)
            except _Retry as e:
                session.close(polite=e.code is not None and e.code != 421)
                code, reply = e.code, e.reply
                unreachable = unreachable + 1 if e.unreachable else 0
                # The server is down only if it refused the last two connections (or the only
                # one): one busy greeting after a server that answered the previous attempt
                # defers this message, it does not end the run for every message after it.
                if (e.unreachable and attempts >= self.config.smtp.max_attempts
                        and unreachable >= min(2, self.config.smtp.max_attempts)):
                    fatal = DeliveryError(
                        f"cannot reach SMTP server {_where(self.config)}: "
                        f"{_describe(e.code, e.reply)}")
            except _Fatal as e:
                session.close(polite=False)
                code, reply, fatal = e.code, e.reply, e.error
                break
            except _CallbackFailed as e:
                session.close(polite=False)  # mid-transaction: no QUIT
                raise e.error
        if outcome is None:
            outcome = Outcome("deferred", code, reply, attempts)
        intent()  # (if no attempt got as far as recording it: a result follows an intent)
        log.debug("%s: %s after %d attempt(s): %s %s", job.recipient, outcome.status,
                  outcome.attempts, outcome.code, outcome.reply)
        self._report(job, outcome)
        if fatal is not None:
            raise fatal

    def _attempt(self, session: _Session, recipient: str, data: bytes, intent: Callable[[], None],
                 meanwhile: Callable[[], None] | None,
                 sender: str | None = None) -> Iterator[Any]:
        sender = sender or self.sender
        fresh = session.open()
        try:
            return (yield from session.transmit(sender, recipient, data, intent, meanwhile,
                                                    self._durable))
        except _Retry as e:
            if fresh or not e.stale:
                raise
            # The server dropped an idle connection (or said 421 to its first command):
            # that is about the connection, not this message; reconnect once at no cost.
            log.debug("connection to %s went stale; reconnecting", _where(self.config))
            session.close(polite=False)
        session.open()
        return (yield from session.transmit(sender, recipient, data, intent, meanwhile,
                                                    self._durable))

    def _attempted(self, job: Job) -> None:
        self.on_attempt(job)
        self.undurable = True

    def _durable(self) -> None:
        """Before a message's content goes out: the intents recorded since the last time
        (this connection's and any other's) are made durable, in one go."""
        if self.undurable and self.before_content is not None:
            self.undurable = False
            self.before_content()

    def _idle(self) -> bool:
        """Run on_idle; False if it failed (the failure is reported like a callback's)."""
        if self.on_idle is None:
            return True
        try:
            self.on_idle()
        except BaseException as e:
            self._failed(e)
            return False
        return True

    def _report(self, job: Job, outcome: Outcome) -> None:
        """Report an outcome, through the circuit breakers (module docstring); raise
        DeliveryError when one trips."""
        if outcome.status in ("bounced", "refused") and outcome.code is not None:
            key = _refusal_key(outcome)
            if key != self.streak_key:
                self._end_streak()
                self.streak_key = key
            self.streak.append((job, outcome))
            if len(self.streak) < REFUSAL_STREAK:
                return  # held back until the streak is broken (or trips)
            held, self.streak, self.streak_key = self.streak, [], None
            for held_job, held_outcome in held:  # nobody bounced: all still owed
                self._emit(held_job, Outcome("refused", held_outcome.code,
                                             held_outcome.reply, held_outcome.attempts))
            raise DeliveryError(
                f"SMTP server {_where(self.config)} refused {len(held)} recipients in a "
                f"row the same way: {_describe(outcome.code, outcome.reply)}; that is the "
                "server refusing this mail, not bad addresses: nobody was marked bounced, "
                "and they are still owed (sent by the next run once the server accepts)")
        self._end_streak()
        self._emit(job, outcome)
        if outcome.status == "deferred":
            self.deferring += 1
            if self.deferring >= DEFER_STREAK:
                raise DeliveryError(
                    f"SMTP server {_where(self.config)} deferred {self.deferring} messages "
                    f"in a row and accepted none: "
                    f"{_describe(outcome.code, outcome.reply)}; stopped early, and "
                    "what was not sent is still owed (the next run resumes)")
        else:
            self.deferring = 0

    def _end_streak(self) -> None:
        """The held refusals were not a server-wide refusal: report them as they came."""
        held, self.streak, self.streak_key = self.streak, [], None
        for job, outcome in held:
            self._emit(job, outcome)

    def _emit(self, job: Job, outcome: Outcome) -> None:
        setattr(self.stats, outcome.status, getattr(self.stats, outcome.status) + 1)
        self.on_result(job, outcome)

    def _finish_streak(self) -> None:
        """At the end of a run: the refusals still held back are reported as they came."""
        try:
            self._end_streak()
        except BaseException as e:
            self._failed(e)


def most_connections(config: Config) -> int:
    """The most connections a send opens (sending.py sizes its claims by it)."""
    wanted = config.smtp.connections
    return AUTO_CONNECTIONS if wanted == "auto" else wanted


def connection_count(config: Config, pipelining: bool, owed: int | None) -> int:
    """How many connections a send of `owed` messages (None: not known, taken as few) opens
    to a server that does or does not offer PIPELINING (module docstring)."""
    wanted = config.smtp.connections
    if wanted != "auto":
        return wanted
    if pipelining or owed is None or owed < AUTO_SECOND_FROM:
        return 1
    return AUTO_CONNECTIONS


def _open_sessions(config: Config, count: int | str, context: ssl.SSLContext | None,
                   owed: int | None = None) -> list[_Session]:
    """Open up to `count` connections; "auto": as many as connection_count says once the
    first has shown what the server offers. The first must work; later ones may fail (a
    server that limits connections per client) and the run continues with fewer."""
    sessions: list[_Session] = []
    total = count if count != "auto" else 1
    while len(sessions) < total:
        session = _Session(config, context)
        try:
            session.open()
        except (_Retry, _Fatal) as e:
            if sessions:
                why = _describe(e.code, e.reply) if isinstance(e, _Retry) else e
                log.warning("SMTP connection %d of %d to %s failed (%s); continuing with %d",
                            len(sessions) + 1, total, _where(config), why, len(sessions))
                break
            if isinstance(e, _Fatal):
                raise e.error from e
            raise DeliveryError(
                f"cannot reach SMTP server {_where(config)}: {_describe(e.code, e.reply)}"
            ) from e
        sessions.append(session)
        if count == "auto" and len(sessions) == 1:
            pipelining = session.pipelining()
            total = connection_count(config, pipelining, owed)
            log.info("smtp.connections auto: %d connection(s) to %s (%s PIPELINING, %s "
                     "messages owed)", total, _where(config),
                     "offers" if pipelining else "no", "unknown" if owed is None else owed)
    return sessions


def deliver(jobs: Iterable[Job], config: Config, *, mail_from: str,
            on_attempt: Callable[[Job], None], on_result: Callable[[Job, Outcome], None],
            stop: threading.Event | None = None,
            sleep: Callable[[float], None] = time.sleep,
            on_idle: Callable[[], None] | None = None,
            before_content: Callable[[], None] | None = None,
            owed: int | None = None) -> DeliveryStats:
    """Send every job; report each through the callbacks; return the totals.

    on_attempt(job) runs once per message, before its content is first handed to the server
    (record the intent), on_result(job, outcome) once its outcome is final (record the
    result); a job that gets on_result got on_attempt first. on_idle(), if given, runs
    whenever a connection has nothing in flight and nothing read ahead (after a message
    that did not go through, before the rate limiter makes it wait, when it is done): a
    caller that holds a result back, to record it together with the next intent, writes it
    then. before_content(), if given, runs before a message's content goes out whenever
    on_attempt ran since it last ran (while the server answers DATA): a caller whose
    on_attempt holds the intent back makes it durable then, together with the intents of
    the other connections' messages recorded meanwhile (one write for several). Callbacks
    run on the calling thread, one at a time. If `stop` is set, the messages in flight are
    finished and no new job is started. Jobs are read lazily, at most one ahead per
    connection. Raises ConfigError for settings that are wrong before anything is
    sent, and DeliveryError when the server refuses us rather than a recipient (see the
    module docstring); the jobs not yet started then have had no callbacks. An exception
    from a callback ends the run with that exception (the message it was about is not
    retried).

    `owed`: how many messages the send owes, if known: with smtp.connections auto, a large
    send to a server without PIPELINING gets a second connection (module docstring).

    Each job's bytes go out as built (message.py signs them): only line ends are made CRLF."""
    stop = stop if stop is not None else threading.Event()
    sender = _bare_address(mail_from, config)
    context = _check_settings(config)
    if stop.is_set():
        return DeliveryStats()
    rest = iter(jobs)
    first = next(rest, _END)
    if first is _END:
        return DeliveryStats()  # nothing to send: do not even connect
    sessions = _open_sessions(config, config.smtp.connections, context, owed)
    log.info("sending through %s (%s, %d connection(s))", _where(config),
             config.smtp.security, len(sessions))
    run = _Run(config, sender, on_attempt, on_result, stop, sleep, on_idle, before_content)
    stats = run.execute(first, rest, sessions)
    log.info("delivery: %d sent, %d bounced, %d deferred, %d retries", stats.sent,
             stats.bounced, stats.deferred, stats.retried)
    return stats


def check_connection(config: Config) -> None:
    """Connect, EHLO, STARTTLS/TLS and log in as configured, then QUIT.

    Raises ConfigError or DeliveryError saying what failed; sends nothing."""
    context = _check_settings(config)
    session = _open_sessions(config, 1, context)[0]
    session.close()
