"""Many SMTP sessions: scheduling, rate, retries, backoff and refusal classification.

`deliver` hands a stream of messages (bytes, built and signed by message.py) to the SMTP
server and reports, per message, one final outcome. The caller (sending.py) owns the ledger;
smtp.py owns the wire (one session: connect, pipeline, read replies); this module decides
what a reply means for the message and the run.

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
import ssl
import threading
import time
from dataclasses import dataclass
from email.utils import parseaddr
from typing import Any, Callable, Iterable, Iterator

from ..config import Config
from ..errors import ConfigError, DeliveryError, RecipientError
from .smtp import (MAX_LINE, CallbackFailed, Fatal, Retry, Session,
                   may_have_long_line, checked_tls_context, describe, one_line,
                   server_address)

log = logging.getLogger(__name__)

MAX_BACKOFF = 300.0  # seconds; a longer wait would outlast a cron interval for no gain
_SLACK = 0.01  # seconds a reply may be waited for past smtp.timeout (_Run._answered)

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
    # build() returns the DATA payload itself: wire_ready, dot-stuffed and ending in the end
    # marker (message.py's CompiledMessage.wire_for, whose fixed pieces were stuffed once):
    # handed to the server as it is, with no pass over it here or in smtp.py.
    stuffed: bool = False


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


def _classified(result: str, code: int | None, reply: str) -> tuple[str, int | None, str]:
    """Session.transmit's result as an outcome's status: a 5xx at RCPT or DATA becomes
    "bounced" or "refused" (refusal_status)."""
    if result in ("RCPT", "DATA"):
        return (refusal_status(result, code, reply), code, reply)
    return (result, code, reply)


def _refusal_key(outcome: Outcome) -> tuple:
    """Two refusals are "the same way" if their code and text agree once addresses are
    taken out (servers quote the recipient)."""
    text = re.sub(r"<[^<>]*>|[^\s<>]+@[^\s<>]+", "<>", outcome.reply).lower()
    return (outcome.code, text)


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

    def execute(self, first: Job, rest: Iterator[Job], sessions: list[Session]) -> DeliveryStats:
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

    def _drive(self, loops: list[tuple[Session, Iterator[Any]]]) -> None:
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
        waiting: list[tuple[float, tuple[Session, Iterator[Any]]]] = []
        paused: list[tuple[float, int, tuple[Session, Iterator[Any]]]] = []  # (due, order, loop)
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

    def _answered(self, waiting: list[tuple[float, tuple[Session, Iterator[Any]]]],
                  paused: list[tuple[float, int, Any]]) -> list[tuple[Session, Iterator[Any]]]:
        """Take out of `waiting` and return the loops whose server has answered, or whose
        smtp.timeout ran out (their read then fails at once: `Session.late`), waiting for one
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

    def _serve(self, session: Session, first: Job | None, rest: Iterator[Job], *,
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
        if job.wire_ready or job.stuffed:
            # Made sure of where it was built: the scans below are two passes over every
            # message (~20 us for a 14 KB digest, 0.1 s of a send to 5,000).
            return data
        # SMTP needs CRLF line ends; a bare "\n" is rejected or mangled by some servers.
        if data.count(b"\n") != data.count(b"\r\n"):
            data = re.sub(rb"\r?\n", b"\r\n", data)
        # A scan in C first: splitting every message into lines in Python was a tenth of a
        # large send's CPU time. Only a suspect message is measured line by line.
        if may_have_long_line(data):
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

    def _deliver_one(self, session: Session, job: Job,
                     prepared: tuple[bytes | None, BaseException | None] | None = None,
                     meanwhile: Callable[[], None] | None = None) -> Iterator[Any]:
        """Send one job and report it (a generator, as _serve). `prepared` is what _build
        returned, if it already ran; `meanwhile` runs once the message is handed over, while
        the server takes it in."""
        if not _valid_recipient(job.recipient):
            self._attempted(job)
            self._report(job, Outcome("bounced", None,
                                      one_line(f"invalid address {job.recipient!r}"), 0))
            return
        data, error = prepared if prepared is not None else self._build(job)
        if isinstance(error, RecipientError):  # this address cannot be written into a message
            self._attempted(job)
            self._report(job, Outcome("bounced", None, one_line(str(error)), 0))
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
                         attempts, describe(code, reply), delay)
                yield _Pause(delay)
                if self.halted():
                    break
                self.limiter.acquire()
                self.stats.retried += 1
            attempts += 1
            try:
                status, code, reply = yield from self._attempt(
                    session, job.recipient, data, intent, meanwhile, sender=job.sender,
                    stuffed=job.stuffed)
                outcome = Outcome(status, code, reply, attempts)
            except Retry as e:
                session.close(polite=e.code is not None and e.code != 421)
                code, reply = e.code, e.reply
                unreachable = unreachable + 1 if e.unreachable else 0
                # The server is down only if it refused the last two connections (or the only
                # one): one busy greeting after a server that answered the previous attempt
                # defers this message, it does not end the run for every message after it.
                if (e.unreachable and attempts >= self.config.smtp.max_attempts
                        and unreachable >= min(2, self.config.smtp.max_attempts)):
                    fatal = DeliveryError(
                        f"cannot reach SMTP server {server_address(self.config)}: "
                        f"{describe(e.code, e.reply)}")
            except Fatal as e:
                session.close(polite=False)
                code, reply, fatal = e.code, e.reply, e.error
                break
            except CallbackFailed as e:
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

    def _attempt(self, session: Session, recipient: str, data: bytes, intent: Callable[[], None],
                 meanwhile: Callable[[], None] | None,
                 sender: str | None = None, stuffed: bool = False) -> Iterator[Any]:
        sender = sender or self.sender
        fresh = session.open()
        try:
            result = yield from session.transmit(sender, recipient, data, intent, meanwhile,
                                                 self._durable, stuffed)
            return _classified(*result)
        except Retry as e:
            if fresh or not e.stale:
                raise
            # The server dropped an idle connection (or said 421 to its first command):
            # that is about the connection, not this message; reconnect once at no cost.
            log.debug("connection to %s went stale; reconnecting", server_address(self.config))
            session.close(polite=False)
        session.open()
        result = yield from session.transmit(sender, recipient, data, intent, meanwhile,
                                             self._durable, stuffed)
        return _classified(*result)

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
                f"SMTP server {server_address(self.config)} refused {len(held)} recipients in a "
                f"row the same way: {describe(outcome.code, outcome.reply)}; that is the "
                "server refusing this mail, not bad addresses: nobody was marked bounced, "
                "and they are still owed (sent by the next run once the server accepts)")
        self._end_streak()
        self._emit(job, outcome)
        if outcome.status == "deferred":
            self.deferring += 1
            if self.deferring >= DEFER_STREAK:
                raise DeliveryError(
                    f"SMTP server {server_address(self.config)} deferred {self.deferring} messages "
                    f"in a row and accepted none: "
                    f"{describe(outcome.code, outcome.reply)}; stopped early, and "
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
                   owed: int | None = None) -> list[Session]:
    """Open up to `count` connections; "auto": as many as connection_count says once the
    first has shown what the server offers. The first must work; later ones may fail (a
    server that limits connections per client) and the run continues with fewer."""
    sessions: list[Session] = []
    total = count if count != "auto" else 1
    while len(sessions) < total:
        session = Session(config, context)
        try:
            session.open()
        except (Retry, Fatal) as e:
            if sessions:
                why = describe(e.code, e.reply) if isinstance(e, Retry) else e
                log.warning("SMTP connection %d of %d to %s failed (%s); continuing with %d",
                            len(sessions) + 1, total, server_address(config), why, len(sessions))
                break
            if isinstance(e, Fatal):
                raise e.error from e
            raise DeliveryError(
                f"cannot reach SMTP server {server_address(config)}: {describe(e.code, e.reply)}"
            ) from e
        sessions.append(session)
        if count == "auto" and len(sessions) == 1:
            pipelining = session.pipelining()
            total = connection_count(config, pipelining, owed)
            log.info("smtp.connections auto: %d connection(s) to %s (%s PIPELINING, %s "
                     "messages owed)", total, server_address(config),
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
    context = checked_tls_context(config)
    if stop.is_set():
        return DeliveryStats()
    rest = iter(jobs)
    first = next(rest, _END)
    if first is _END:
        return DeliveryStats()  # nothing to send: do not even connect
    sessions = _open_sessions(config, config.smtp.connections, context, owed)
    log.info("sending through %s (%s, %d connection(s))", server_address(config),
             config.smtp.security, len(sessions))
    run = _Run(config, sender, on_attempt, on_result, stop, sleep, on_idle, before_content)
    stats = run.execute(first, rest, sessions)
    log.info("delivery: %d sent, %d bounced, %d deferred, %d retries", stats.sent,
             stats.bounced, stats.deferred, stats.retried)
    return stats


def check_connection(config: Config) -> None:
    """Connect, EHLO, STARTTLS/TLS and log in as configured, then QUIT.

    Raises ConfigError or DeliveryError saying what failed; sends nothing."""
    context = checked_tls_context(config)
    session = _open_sessions(config, 1, context)[0]
    session.close()
