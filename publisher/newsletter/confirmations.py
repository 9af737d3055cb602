"""Confirmation mails of the double opt-in, sent by `publisher serve` in the background.

The visitor's page never waits on SMTP, and a confirmation owed past
newsletter.confirm_per_hour goes out later, as the hour's count allows (ConfirmationMailer's
owed loop). The web endpoint (web.py) hands requests over; this module renders and sends.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Callable

from ..config import Config
from ..errors import PublisherError
from ..state import PENDING, State, Subscriber
from ..templating import CONFIRM_TTL, page_context
from .sending import send_one

log = logging.getLogger(__name__)

MAIL_WORKERS = 2  # background threads sending confirmation mails
MAIL_BACKLOG = 200  # confirmations queued at most; past it, new requests are not mailed
# How often a server process sends the confirmations owed past newsletter.confirm_per_hour
# (they are stored, and go out as the hour's count allows).
QUEUE_INTERVAL = 60.0  # seconds


def confirm_url(config: Config, confirm_token: str) -> str:
    return f"{config.web_url}/confirm/{confirm_token}"


def render_confirmation(env, config: Config, sub: Subscriber) -> tuple[str, str, str]:
    """(subject, html, text) of the double opt-in mail to `sub`.

    Deliberately without the name typed into the form: anyone can submit any address, and
    the mail must not carry a stranger's words into that inbox."""
    context = {**page_context(config), "email": sub.email, "confirm_url": confirm_url(config, sub.confirm_token)}
    subject = f"Confirm your subscription to {config.site.title}"
    html = env.get_template("confirm.html").render({**context, "subject": subject})
    text = env.get_template("confirm.txt").render({**context, "subject": subject})
    return subject, html, text


def mailbox_key(address: str) -> str:
    """The mailbox an address delivers to, for rate limits: case folded, and a sub-address
    ("+tag") taken off, so victim+1@ ... victim+30@ count as one mailbox."""
    local, _, domain = address.rpartition("@")
    return f"{local.split('+', 1)[0]}@{domain}".casefold()


# --- sending confirmations in the background ------------------------------------------------

class ConfirmationMailer:
    """Sends confirmation mails on a few background threads.

    The visitor's page never waits on SMTP (a 4xx retry with backoff can take minutes), and
    the response time does not reveal whether a mail was sent. A mail that could not be
    handed over releases its reservation, so the person can ask again without the hour's wait."""

    def __init__(self, config: Config, env, state: Callable[[], State], clock: Callable[[], datetime],
                 workers: int = MAIL_WORKERS):
        self.config = config
        self.env = env
        self.state = state
        self.clock = clock
        self.stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="publisher-confirm")
        self._idle = threading.Condition()
        self._queued = 0
        self._owed: threading.Thread | None = None

    def start(self, interval: float | None = None) -> None:
        """Send the owed confirmations every `interval` seconds (QUEUE_INTERVAL) until close()."""
        interval = interval or QUEUE_INTERVAL

        def loop() -> None:
            while not self.stop.wait(interval):
                try:
                    self.send_owed()
                except Exception:  # a database gone for a while: try again next time
                    log.exception("cannot send the queued confirmations")

        self._owed = threading.Thread(target=loop, name="publisher-confirm-queue", daemon=True)
        self._owed.start()

    def send_owed(self) -> int:
        """Queue for sending the confirmations the subscribe form stored without one (past
        newsletter.confirm_per_hour) or whose mail could not be sent, as many as this hour's
        count allows; how many."""
        with self._idle:
            room = MAIL_BACKLOG - self._queued
        if room <= 0 or self.stop.is_set():
            return 0
        now = self.clock()
        owed = self.state().queued_confirmations(now=now, limit=self.config.newsletter.confirm_per_hour,
                                                 batch=room, valid_after=now - CONFIRM_TTL)
        for sub in owed:
            self.submit(sub, None)
        if owed:
            log.info("%d queued confirmation(s) going out", len(owed))
        return len(owed)

    def submit(self, sub: Subscriber, previous: datetime | None) -> None:
        with self._idle:
            if self._queued >= MAIL_BACKLOG:
                log.warning("confirmation for %s not sent: %d confirmations already queued",
                            sub.email, self._queued)
                full = True
            else:
                self._queued += 1
                full = False
        if full:
            self._release(sub, previous)
            return
        try:
            self._pool.submit(self._run, sub, previous)
        except RuntimeError:  # closed: the server is shutting down
            log.warning("confirmation for %s not sent: the server is shutting down", sub.email)
            self._done()
            self._release(sub, previous)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every queued confirmation has been handled; False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._queued == 0, timeout)

    def close(self, timeout: float | None = None) -> None:
        """Give the queued confirmations up to `timeout` seconds to go out; then stop: a mail
        still waiting to be retried is given up and released (the person may ask again)."""
        self.wait(timeout)
        self.stop.set()
        if self._owed is not None:
            self._owed.join()
        self._pool.shutdown(wait=True)

    def _run(self, sub: Subscriber, previous: datetime | None) -> None:
        try:
            # Stopping: given up at once and released (owed: the next server sends it), not
            # built first, so a long queue does not hold up the stop.
            if self.stop.is_set() or not self.send(sub):
                self._release(sub, previous)
        except Exception:  # a bug: keep the traceback in the log, keep the worker alive
            log.exception("confirmation for %s failed", sub.email)
            self._release(sub, previous)
        finally:
            self._done()

    def _done(self) -> None:
        with self._idle:
            self._queued -= 1
            self._idle.notify_all()

    def rehearse(self, email: str) -> None:
        """For a request that gets no mail (the address is on the list, or a limit is
        reached): build a confirmation for it in the background and throw it away, so the
        server is as busy after that answer as after one that mails (issue 15, item 6)."""
        try:
            self._pool.submit(self._rehearse, email)
        except RuntimeError:  # closed: the server is shutting down
            pass

    def _rehearse(self, email: str) -> None:
        if self.stop.is_set():
            return
        try:
            now = self.clock()
            stand_in = "0" * 43
            self._message(Subscriber(id=0, email=email, name="", status=PENDING, token=stand_in,
                                     created_at=now, confirm_token=stand_in, confirm_sent_at=now))
        except Exception:  # a bug: keep the traceback in the log, keep the worker alive
            log.exception("rehearsing a confirmation for %s failed", email)

    def _message(self, sub: Subscriber) -> bytes:
        # lazy: message.py (the email package, ~10 ms); the archive and `check` import web.py without mailing
        from .message import build_simple_message

        subject, html, text = render_confirmation(self.env, self.config, sub)
        return build_simple_message(
            self.config, to=sub.email, subject=subject, html=html, text=text,
            message_key=f"{self.config.site.url}|confirm|{sub.id}|{sub.confirm_sent_at.isoformat()}",
            date=self.clock(),
        )

    def send(self, sub: Subscriber) -> bool:
        """Mail the confirmation; True once the server accepted it (or refused the address
        for good: asking again within the hour would not help)."""

        data = self._message(sub)
        try:
            outcome = send_one(self.config, sub.email, data, key=sub.id, stop=self.stop)
        except PublisherError as e:  # DeliveryError: the server refused us, not the address
            log.error("confirmation for %s not sent: %s", sub.email, e)
            return False
        if outcome is None:  # stopped before it started
            log.warning("confirmation for %s not sent: the server is shutting down", sub.email)
            return False
        if outcome.status == "sent":
            log.info("confirmation sent to %s", sub.email)
            return True
        if outcome.status == "bounced":
            log.warning("confirmation for %s bounced: %s", sub.email, _reply(outcome))
            return True
        log.warning("confirmation for %s not sent after %d attempts: %s", sub.email,
                    outcome.attempts, _reply(outcome))
        return False

    def _release(self, sub: Subscriber, previous: datetime | None) -> None:
        try:
            self.state().release_confirmation(sub.id, reserved_at=sub.confirm_sent_at, previous=previous,
                                              limit_key="mailbox:" + mailbox_key(sub.email))
        except Exception:
            log.exception("cannot release the confirmation reservation of %s", sub.email)


def _reply(outcome) -> str:
    return f"{outcome.code} {outcome.reply}" if outcome.code else outcome.reply

