"""One SMTP session: connect, pipeline, read replies. The only smtplib user.

`Session` is one connection to the configured server, reopened as needed: smtplib opens it
(connect, EHLO, STARTTLS, AUTH) and `Session.transmit` then carries one message (MAIL, RCPT,
DATA) straight over its socket. Where the server offers PIPELINING (RFC 2920), MAIL, RCPT
and DATA go out in one write and their replies are read in order, each checked as without it.

Failures come out as two exceptions that say what the caller should do: `Retry` (this
attempt failed for a reason that may go away: a 4xx, a dropped connection, a timeout) and
`Fatal` (a configuration problem that would repeat for every message: a refused sender or
login, relaying denied, an untrusted certificate). Which 5xx about a recipient is a bounce
and which is not, when to retry and how many connections to keep, is delivery.py's: this
module only says at which stage (RCPT or DATA) a message was refused.

The wire rules every message is made to meet (CRLF line ends, at most MAX_LINE bytes a
line: `wire_ready`) live here too: message.py builds to them, delivery.py checks them.
"""

from __future__ import annotations

import logging
import re
import smtplib
import socket
import ssl
import struct
from pathlib import Path
from typing import Any, Callable, Iterator

from ..config import PASSWORD_ENV, Config
from ..errors import ConfigError, DeliveryError

log = logging.getLogger(__name__)

MAX_LINE = 998  # RFC 5322 2.1.1, without the CRLF
_REPLY_LINE_MAX = smtplib._MAXLINE  # the longest reply line smtplib accepts (8,192 bytes)
_READ_SIZE = 8192
REPLY_MAX = 300  # characters of a server reply kept in an Outcome

# A 5xx to RCPT TO with one of these in its text refuses *us*, not the recipient: treating
# it as a bounce would mark every subscriber bounced for good.
_NOT_THE_RECIPIENT = re.compile(r"relay|authenticat", re.IGNORECASE)


def may_have_long_line(data: bytes) -> bool:
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
    every message is made to meet before it is handed over (delivery._Run._prepare)."""
    if data.count(b"\n") != data.count(b"\r\n"):
        return False
    return not may_have_long_line(data) or max(map(len, data.split(b"\r\n"))) <= MAX_LINE


# --- small helpers ------------------------------------------------------------------------

def one_line(text: Any) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    text = " ".join(str(text).split())
    return text if len(text) <= REPLY_MAX else text[: REPLY_MAX - 1] + "…"


def _error_text(e: BaseException) -> str:
    if isinstance(e, smtplib.SMTPResponseException):
        return one_line(f"{e.smtp_code} {one_line(e.smtp_error)}")
    return one_line(str(e) or type(e).__name__)


def describe(code: int | None, reply: str) -> str:
    return f"{code} {reply}" if code else reply


def _code(code: int) -> int | None:
    return code if code > 0 else None  # smtplib says -1 for a reply it could not parse


def server_address(config: Config) -> str:
    return f"{config.smtp.host}:{config.smtp.port}"


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
            server_address(config),
            extra={"loud": True},  # shown even under --quiet: cron mail must carry it
        )


def check_smtp_settings(config: Config) -> None:
    """Raise ConfigError for SMTP settings that would fail a send (password, CA file),
    without touching the network: sending.check_send_settings calls it before a digest is
    recorded."""
    checked_tls_context(config)


def checked_tls_context(config: Config) -> ssl.SSLContext | None:
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


END_OF_DATA = b".\r\n"  # after the message's last CRLF: the end of DATA (RFC 5321 4.1.1.4)


def stuffed_lines(data: bytes) -> bytes:
    """`data`, which starts at the start of a line, with a second "." before every line that
    starts with one (RFC 5321 4.5.2). Pieces that each start a line can be stuffed one by
    one and joined: message.py stuffs a compiled message's fixed pieces once this way
    (CompiledMessage.wire_for), not every copy whole."""
    data = data.replace(b"\n.", b"\n..")  # = re.sub(rb"(?m)^\.", ...), at C speed
    return b"." + data if data.startswith(b".") else data


def _dot_stuffed(data: bytes) -> bytes:
    """A message as DATA carries it, as smtplib's data() sends it: a line starting with "."
    gets a second one, and the end marker follows."""
    data = stuffed_lines(data)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + END_OF_DATA


class Retry(Exception):
    """This attempt failed for a reason that may go away: try again later."""

    def __init__(self, code: int | None, reply: str, *, unreachable: bool = False,
                 stale: bool = False):
        super().__init__(reply)
        self.code = code
        self.reply = reply
        self.unreachable = unreachable  # could not even open a connection
        self.stale = stale  # failed at the first command on a reused connection


class Fatal(Exception):
    """A configuration problem: no message can be sent; stop the run."""

    def __init__(self, error: DeliveryError, code: int | None = None, reply: str = ""):
        super().__init__(error.message)
        self.error = error
        self.code = code
        self.reply = reply or error.message


class Session:
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
        # The reply awaited did not come within smtp.timeout (delivery._Run._answered).
        self.late = False
        self.reused = False  # has completed a transaction since it was opened

    def open(self) -> bool:
        """Connect (+EHLO, +TLS, +login) unless already connected. True if it connected.

        Raises Retry(unreachable=True) for failures that may be transient and Fatal for
        configuration problems."""
        if self.smtp is not None:
            return False
        cfg, where = self.config.smtp, server_address(self.config)
        try:
            if cfg.security == "ssl":
                smtp = smtplib.SMTP_SSL(cfg.host, cfg.port, timeout=cfg.timeout,
                                        context=self.context)
            else:
                smtp = smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout)
        except ssl.SSLCertVerificationError as e:
            raise self._untrusted(e) from e
        except smtplib.SMTPConnectError as e:  # a greeting other than 220, e.g. 421 busy
            raise Retry(_code(e.smtp_code), one_line(e.smtp_error), unreachable=True) from e
        except (OSError, ssl.SSLError) as e:
            raise Retry(None, _error_text(e), unreachable=True) from e
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

    def _untrusted(self, e: ssl.SSLCertVerificationError) -> Fatal:
        return Fatal(DeliveryError(
            f"SMTP server {server_address(self.config)}: TLS certificate not trusted: "
            f"{e.verify_message or e.reason or e} (set smtp.ca_file to the CA that "
            "signed it; smtp.verify_tls: false turns the check off)"
        ))

    def _handshake(self, smtp: smtplib.SMTP) -> None:
        cfg, where = self.config.smtp, server_address(self.config)
        try:
            smtp.ehlo_or_helo_if_needed()
            if cfg.security == "starttls":
                if not smtp.has_extn("starttls"):
                    raise Fatal(DeliveryError(
                        f"SMTP server {where} does not offer STARTTLS (smtp.security is "
                        "starttls; use ssl for an implicit-TLS port such as 465)"
                    ))
                smtp.starttls(context=self.context)
                smtp.ehlo()
            if cfg.username:
                self._login(smtp)
        except Fatal:
            raise
        except ssl.SSLCertVerificationError as e:
            raise self._untrusted(e) from e
        except smtplib.SMTPResponseException as e:
            if 500 <= e.smtp_code < 600:
                raise Fatal(DeliveryError(
                    f"SMTP server {where} refused the session: {_error_text(e)}"
                ), e.smtp_code, one_line(e.smtp_error)) from e
            raise Retry(_code(e.smtp_code), one_line(e.smtp_error), unreachable=True) from e
        except (OSError, ssl.SSLError) as e:
            raise Retry(None, _error_text(e), unreachable=True) from e

    def _login(self, smtp: smtplib.SMTP) -> None:
        cfg, where = self.config.smtp, server_address(self.config)
        try:
            smtp.login(cfg.username, self.config.smtp_password)
        except smtplib.SMTPAuthenticationError as e:
            if 400 <= e.smtp_code < 500:  # 454: temporary authentication failure
                raise Retry(e.smtp_code, one_line(e.smtp_error), unreachable=True) from e
            raise Fatal(DeliveryError(
                f"SMTP server {where} rejected the login of {cfg.username!r}: "
                f"{_error_text(e)} (check smtp.username and {PASSWORD_ENV})"
            ), e.smtp_code, one_line(e.smtp_error)) from e
        except smtplib.SMTPNotSupportedError as e:
            raise Fatal(DeliveryError(
                f"SMTP server {where} does not offer AUTH, but smtp.username is set"
                + (" (many servers offer it only after TLS: set smtp.security)"
                   if cfg.security == "none" else "")
            )) from e
        except (smtplib.SMTPResponseException, smtplib.SMTPServerDisconnected):
            raise  # classified by _handshake
        except smtplib.SMTPException as e:  # no mechanism in common
            raise Fatal(DeliveryError(
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
                 durable: Callable[[], None] = lambda: None,
                 stuffed: bool = False) -> Iterator[None]:
        """One attempt: MAIL, RCPT, DATA. A generator (see delivery._Run._drive): it yields once
        each command is written, before reading the reply, so that the thread can serve another
        connection while this server answers; it returns (result, code, reply): result is
        "sent", "bounced" (the address cannot be carried: no SMTPUTF8), or the stage, "RCPT"
        or "DATA", whose 5xx refused the message (delivery.refusal_status says what that
        means for the recipient).

        When the server offers PIPELINING (RFC 2920), MAIL, RCPT and DATA go out in one
        write and their replies are read in order, each checked as without it: two round
        trips per message instead of four, which on a fast server is a third of the time.

        intent() runs once the first write (MAIL, or MAIL to DATA pipelined) is out, while
        the server answers it: before any of the message's content can reach the server.
        durable() runs once DATA is written (pipelined: right after intent()), while the
        server answers it, and before the content goes out: the intent is made durable then.
        meanwhile(), if given, runs once the content is written, while the server takes it
        in. Each runs at most once here; an exception from intent() or durable() comes out
        as CallbackFailed. `stuffed`: `data` is the DATA payload already (dot-stuffed, ending
        in the end marker: message.py's CompiledMessage.wire_for), sent as it is.

        Raises Retry or Fatal; the connection is then in an unknown state and the caller
        closes it."""
        smtp = self.smtp
        assert smtp is not None
        where = server_address(self.config)
        stage = "MAIL"
        try:
            options = self._options(sender, recipient, data)
            if options is None:
                self._rset()
                return ("bounced", None,
                        f"{where} does not offer SMTPUTF8, needed for this address")
            pipelined = smtp.has_extn("pipelining")
            self._send(_commands(sender, options, recipient if pipelined else None))
            # The intent is recorded while the server answers: no content has gone out yet.
            self._callback(intent)
            if pipelined:
                self._callback(durable)
            yield
            self._check_mail_reply(sender)
            # (Pipelined, a refused MAIL leaves the RCPT and DATA replies unread: the caller
            # closes the connection.)
            stage = "RCPT"
            if not pipelined:  # as smtp.rcpt(recipient) does, without its address parser
                self._send(_commands(None, options, recipient))
                yield
            code, text = self._reply()
            reply = one_line(text)
            if 500 <= code < 600:
                if code == 530 or _NOT_THE_RECIPIENT.search(reply):
                    raise Fatal(DeliveryError(
                        f"SMTP server {where} refuses to relay for us: {code} {reply} "
                        "(check smtp.username and the server's relay settings)"
                    ), code, reply)
                if not pipelined or self._skip_data():
                    self._rset()
                return ("RCPT", code, reply)
            if not 200 <= code < 300:
                if pipelined:
                    self._skip_data()
                raise Retry(_code(code), reply)
            stage = "DATA"
            if not pipelined:
                self._send(b"DATA\r\n")
                self._callback(durable)
                yield
            code, text = self._reply()
            if code == 354:  # else the DATA command itself was refused
                self._send(data if stuffed else _dot_stuffed(data))
                if meanwhile is not None:
                    meanwhile()
                yield
                code, text = self._reply()
            reply = one_line(text)
            if 200 <= code < 300:
                self.reused = True
                return ("sent", code, reply)
            if 500 <= code < 600:
                self._rset()
                return ("DATA", code, reply)
            raise Retry(_code(code), reply)
        except (Retry, Fatal, CallbackFailed):
            raise
        except (OSError, ssl.SSLError) as e:  # includes SMTPServerDisconnected, timeouts
            raise Retry(None, _error_text(e), stale=self.reused and stage == "MAIL") from e

    def _options(self, sender: str, recipient: str, data: bytes) -> list[str] | None:
        """The MAIL options this message needs; None if the server cannot carry its
        addresses (they need SMTPUTF8, which it does not offer)."""
        smtp = self.smtp
        options = []
        if not data.isascii() and smtp.has_extn("8bitmime"):
            options.append("BODY=8BITMIME")
        if not (sender.isascii() and recipient.isascii()):
            if not smtp.has_extn("smtputf8"):
                return None
            options.append("SMTPUTF8")  # for RCPT too (_commands), as smtplib's mail() does
        return options

    def _check_mail_reply(self, sender: str) -> None:
        """Read the reply to MAIL FROM: a 5xx refuses the sender, for every message (Fatal);
        a 4xx is a Retry."""
        code, text = self._reply()
        if 200 <= code < 300:
            return
        reply = one_line(text)
        if 500 <= code < 600:
            raise Fatal(DeliveryError(
                f"SMTP server {server_address(self.config)} refused the sender <{sender}>: "
                f"{code} {reply} (check newsletter.from, smtp.username and the server's "
                "relay settings)"
            ), code, reply)
        raise Retry(_code(code), reply, stale=self.reused and code == 421)

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
            raise CallbackFailed(e) from e

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


class CallbackFailed(Exception):
    """A callback run in the middle of an SMTP exchange raised `error`: not a failure of the
    connection, so it is not retried; the run stops with `error` itself."""

    def __init__(self, error: BaseException):
        super().__init__(str(error))
        self.error = error
