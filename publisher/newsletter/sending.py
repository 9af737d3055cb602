"""Every send goes through here: the ledger loop for digests and alerts, and `send_one` for
confirmation mails and test copies.

For each subscriber still owed a digest: record the intent, hand the message (bytes from
message.py) to delivery.py, record the result. Nothing here speaks SMTP or SQL itself, nor
builds a header; it joins the state's ledger (publisher/state/ledger.py) to message.py's
builder and delivery.py's sender, so a send killed at any instant resumes where it stopped.
The dry run writes the very bytes a send would hand to the server.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Callable, Iterator

from ..config import Config
from ..errors import StateError
from ..state import ACTIVE, DigestRow, State, utcnow
from ..state.ledger import LeaseLost
from ..state.outbox import Claim
from .archive import fill_view_url

log = logging.getLogger(__name__)

# A sender holds the rows it claims under a lease (state: sender_leases) that it renews every
# LEASE_RENEW seconds on a thread of its own, whatever its messages are doing (a retry's
# backoff, a slow server). A lease not renewed for LEASE means its sender is gone (killed, its
# machine down or cut off from the database): any sender, on any machine, then takes its rows
# over. 45 s: a dead sender's rows come free within a minute, and a live one would have to
# miss nine renewals in a row to lose them.
LEASE = timedelta(seconds=45)
LEASE_RENEW = 5.0
# A sender not heard from for this long (two renewals missed) has stopped answering: the rows
# it holds are reported as owed by it (exit status 1), with the time they come free.
SILENT_AFTER = timedelta(seconds=12)
# A sender whose last successful renewal began this long ago sends nothing more (Lease.held):
# its lease may run out, and its rows be taken over, while its next message is on the wire.
# The 15 s left of the lease cover that message and the database clock's drift.
LEASE_TRUSTED = LEASE - timedelta(seconds=15)
# Claims without a lease (an older publisher's, before state schema v8) are presumed dead once
# their holder showed no sign of life (a recorded attempt or result) for this long; such a
# holder refreshes them with an intent every CLAIM_REFRESH, and so does this one, for it.
CLAIM_TIMEOUT = timedelta(minutes=15)
CLAIM_REFRESH = timedelta(minutes=1)
# A sender claims about this many seconds of work at a time, at the pace it has measured:
# each claim scans the digest's owed rows, and 20 at a time made 250 claims of a send to
# 5,000 subscribers, while a batch far larger than the pace would sit claimed, untouched,
# for minutes. Batches stay between the minimum and CLAIM_BATCH_MAX.
CLAIM_BATCH_SECONDS = 5.0
CLAIM_BATCH_MAX = 500


@dataclass
class SendReport:
    digest_id: int
    kind: str
    subject: str
    sent: int = 0
    bounced: int = 0
    deferred: int = 0
    retried: int = 0
    elsewhere: int = 0  # owed rows another live sender is working on
    silent: int = 0  # owed rows held by senders that stopped answering (silent_claims)
    silent_claims: tuple[Claim, ...] = ()
    stopped: int = 0  # owed rows not started because this send was asked to stop (or lost its lease)
    lease_lost: str = ""  # why this sender stopped early: its lease no longer held
    refused: int = 0  # refused by the server, not for the address: still owed
    finished: bool = False

    @property
    def failed(self) -> bool:
        """Some mail is still owed because of failures, a stop, or a sender that stopped
        answering (not merely being sent elsewhere)."""
        return self.deferred > 0 or self.stopped > 0 or self.silent > 0

    def summary(self) -> str:
        what = "featured alert" if self.kind == "alert" else "digest"
        line = (f"{what} #{self.digest_id} {self.subject!r}: {self.sent} sent, "
                f"{self.retried} retried, {self.bounced} bounced")
        if self.deferred:
            line += f", {self.deferred} still pending (retried on the next run)"
        if self.stopped and self.lease_lost:
            line += f", {self.stopped} not sent by this sender: {self.lease_lost}"
        elif self.stopped:
            line += f", {self.stopped} not sent yet (stopped; the next run sends them)"
        if self.elsewhere:
            line += f", {self.elsewhere} being sent by another sender"
        if self.silent:
            line += ", " + silent_summary(self.silent, self.silent_claims)
        return line


def silent_summary(owed: int, claims: tuple[Claim, ...]) -> str:
    """'56 owed by a sender that stopped answering (...): any sender takes them over from
    ...': who, since when, and the moment their rows come free (rounded up to the second, so
    a send started then finds them free)."""
    def at(moment: datetime) -> str:
        return f"{moment:%Y-%m-%d %H:%M:%S} UTC"

    who = "; ".join(f"{c.sender}, last heard {at(c.renewed_at)}" for c in claims
                    if c.renewed_at is not None)
    free = max(max(c.expires_at for c in claims if c.expires_at is not None), claims[0].clock)
    if free.microsecond:
        free = free.replace(microsecond=0) + timedelta(seconds=1)
    senders = "a sender" if len(claims) == 1 else f"{len(claims)} senders"
    return (f"{owed} owed by {senders} that stopped answering ({who}): any sender takes them "
            f"over from {at(free)} (`publisher send`, or the next run)")


def check_send_settings(config: Config, *, need_from: bool = True) -> None:
    """Raise ConfigError for anything in the config that would fail every message of a send
    (newsletter.from, the DKIM key, the SMTP password and CA file), touching no network: the
    pipeline calls it before recording a digest, and `check` (need_from=False: a site
    without a newsletter has no newsletter.from)."""
    # lazy: smtp.py (smtplib, ssl: ~20 ms) and message.py (the email package, ~10 ms);
    # a run with nothing to send needs neither
    from . import message, smtp

    message.check_from_and_dkim(config, need_from=need_from)
    smtp.check_smtp_settings(config)


def send_one(config: Config, address: str, data: bytes, *, key: object = "one",
             stop: threading.Event | None = None):
    """Hand one message (message.py's bytes) to the server: a test copy or a confirmation.
    Returns delivery's Outcome, or None if `stop` was set before it started; raises
    DeliveryError when the server refuses us rather than the address."""
    # lazy: delivery.py and message.py (~30 ms), as above
    from .delivery import Job, deliver
    from .message import from_address

    outcomes = []
    deliver([Job(key=key, recipient=address, build=lambda: data)], config,
            mail_from=from_address(config).address, on_attempt=lambda job: None,
            on_result=lambda job, outcome: outcomes.append(outcome), stop=stop)
    return outcomes[0] if outcomes else None


def message_key(config: Config, digest: DigestRow) -> str:
    """Stable per digest: a resent in-flight message keeps its Message-ID."""
    return f"{config.site.url}|{digest.kind}|{digest.id}|{digest.created_at.isoformat()}"


def as_rendered(digest: DigestRow, config: Config, variant=None):
    """The recorded digest's own body, or one of its variants (newsletter/topics.py), ready
    to compile: the issue's number is known now, so its page's link goes in, once per body."""
    # lazy: digest.py (~10 ms), only when there is a digest to send
    from .digest import RenderedDigest

    body = variant or digest
    return RenderedDigest(kind=digest.kind, subject=body.subject,
                          html=fill_view_url(body.html, config, digest.id),
                          text=fill_view_url(body.text, config, digest.id),
                          post_ids=body.post_ids, warnings=())


def send_digest(config: Config, state: State, digest: DigestRow, *, now: datetime,
                progress: Callable[[int, int], None] | None = None,
                stop: threading.Event | None = None) -> SendReport:
    """Mail `digest` to every active subscriber still owed it; record each result."""
    # lazy: delivery.py, digest.py and message.py (~40 ms), only when there is a digest to send
    from .delivery import deliver, most_connections
    from .message import from_address

    mail_from = from_address(config).address
    report = SendReport(digest.id, digest.kind, digest.subject)
    total = state.count_owed(digest.id)
    done = 0
    claimant = sender_id()  # this process, as it claims owed rows
    lease = Lease(state, digest.id, claimant)
    rows = _owed_rows(state, digest.id, claimant, lease, max(20, 10 * most_connections(config)), stop)

    def on_attempt(job) -> None:
        # Held, and written by before_content before the message's content goes out: the
        # intents of several connections' messages then share one transaction.
        ledger.sending(job.key[1], hold=True)

    tally: dict[str, int] = {}  # outcomes, for a send cut short by a lost lease

    def on_result(job, outcome) -> None:
        nonlocal done
        done += 1
        tally[outcome.status] = tally.get(outcome.status, 0) + 1
        # Held back to share one transaction with the next message's intent (delivery says
        # when a connection goes idle instead: on_idle writes it then).
        # A refusal that is not about the recipient (delivery.refusal_status) leaves the
        # message owed, like a deferral: the subscriber is not bounced.
        status = "deferred" if outcome.status == "refused" else outcome.status
        ledger.result(job.key[1], status=status, code=outcome.code,
                      reply=outcome.reply, attempts=outcome.attempts, hold=True)
        _log_outcome(job, outcome)
        if progress:
            progress(done, total)

    try:
        with lease:
            try:
                # Writes any held result on the way out, and renews this sender's claims as
                # it goes. One result held per connection: each connection's last message
                # (accepted) is written with the next intent; a crash loses at most those,
                # mailed again.
                with state.ledger(digest.id, claimant, refresh_every=CLAIM_REFRESH,
                                  hold_results=most_connections(config),
                                  lease_held=lease.held) as ledger:
                    stats = deliver(_jobs(config, state, digest, rows, now), config, mail_from=mail_from,
                                    on_attempt=on_attempt,
                                    on_result=on_result, on_idle=ledger.flush,
                                    before_content=ledger.flush, stop=stop, owed=total)
                report.sent, report.bounced, report.retried = stats.sent, stats.bounced, stats.retried
                report.refused = stats.refused
            except LeaseLost as e:
                report.lease_lost = str(e) if lease.held() else lease.why_lost()
                log.warning("%s", report.lease_lost)
                report.sent, report.bounced = tally.get("sent", 0), tally.get("bounced", 0)
                report.refused = tally.get("refused", 0)
            if not report.lease_lost and not lease.held():
                report.lease_lost = lease.why_lost()
    finally:
        # Whatever this sender claimed but did not finish goes back to the pool at once.
        state.release_claims(digest.id, claimant)
    settle(state, report, stopped=stop is not None and stop.is_set())
    return report


def _owed_rows(state: State, digest_id: int, claimant: str, lease: Lease, least: int,
               stop: threading.Event | None) -> Iterator:
    """Claim owed rows a batch at a time, lazily: delivery pulls them as it needs them, and
    other senders (processes or machines) claim the rest in parallel. A batch is sized to
    what this sender sends in CLAIM_BATCH_SECONDS (at least `least`). Nothing more once this
    sender's lease no longer holds: its rows may be another's by now."""
    size = least
    # Dead senders' rows are looked for when free rows may have run out (the first claim,
    # and after one that came back short): listing the holders of owed rows scans them all,
    # which per claim made a send to 100,000 quadratic. A dead sender's rows wait at most
    # until the free ones are sent, and the last claim of a send always looks for them.
    short = True
    while not (stop is not None and stop.is_set()) and lease.held():
        clock = utcnow()
        batch = state.claim_batch(digest_id, claimant, limit=size, now=clock,
                                  stale_before=clock - CLAIM_TIMEOUT,
                                  dead_senders=dead_senders(state.claimants(digest_id))
                                  if short else ())
        if not batch and not short:
            short = True  # nothing free: look for dead senders' rows before stopping
            continue
        if not batch:
            return
        short = len(batch) < size
        started = time.monotonic()
        for owed in batch:  # delivery pulls a row when a connection is ready for it
            if not lease.held():
                return
            yield owed
        pace = len(batch) / max(time.monotonic() - started, 1e-3)
        size = min(CLAIM_BATCH_MAX, max(least, int(pace * CLAIM_BATCH_SECONDS)))


def _jobs(config: Config, state: State, digest: DigestRow, rows: Iterator, now: datetime) -> Iterator:
    """delivery.Job for each owed row, built when delivery asks for it."""
    # lazy: delivery.py, digest.py, message.py and bounces.py (~60 ms), as in send_digest
    from .bounces import verp_sender
    from .delivery import Job
    from .digest import Recipient
    from .message import compile_message

    key = message_key(config, digest)
    # VERP (newsletter.bounce_address): each copy's envelope sender names its digest and
    # subscriber, so a late bounce finds them even when the report is mangled (bounces.py).
    verp_secret = state.bounce_secret() if config.newsletter.bounce_address else ""
    # The digest's other bodies (newsletter/topics.py), as planned: variant 0 is its own.
    variants = state.digest_variants(digest.id)
    compiled_by_variant: dict[int, object] = {}
    for owed in rows:
        compiled = compiled_by_variant.get(owed.variant)
        if compiled is None:
            # Once per body (and only if anyone is owed it): each copy is then a substitution
            # into pre-encoded bytes, not a message built from scratch.
            body = as_rendered(digest, config, variants[owed.variant] if owed.variant else None)
            compiled = compiled_by_variant[owed.variant] = compile_message(
                body, config, message_key=key, date=now)
        recipient = Recipient(email=owed.email, name=owed.name, token=owed.token)
        # The copy as DATA carries it (dot-stuffed, its end marker) where the message allows
        # (not DKIM-signed): stuffing each ~14 KB copy whole was 8% of a send's CPU time.
        build = compiled.wire_for if compiled.wire_ready else compiled.bytes_for
        yield Job(key=(digest.id, owed.subscriber_id), recipient=owed.email,
                  build=lambda recipient=recipient, build=build: build(recipient),
                  sender=verp_sender(config, verp_secret, digest.id, owed.subscriber_id),
                  wire_ready=compiled.wire_ready, stuffed=compiled.wire_ready)


def _log_outcome(job, outcome) -> None:
    if outcome.status == "bounced":
        log.warning("%s bounced: %s", job.recipient, outcome.reply)
    elif outcome.status == "refused":
        log.warning("%s: refused by the server, not for this address (still owed): %s %s",
                    job.recipient, outcome.code, outcome.reply)
    elif outcome.status == "deferred":
        log.warning("%s deferred after %d attempts: %s", job.recipient, outcome.attempts, outcome.reply)


def settle(state: State, report: SendReport, *, stopped: bool) -> None:
    """After this sender's part: close the digest if nobody is owed it any more, else count
    what is still owed, and by whom: deferred, not sent because this sender stopped, being
    sent by live senders, or held by senders that stopped answering."""
    report.finished = state.finish_digest_if_done(report.digest_id)
    if report.finished:
        return
    report.deferred = state.count_status(report.digest_id, "deferred")
    rest = state.count_owed(report.digest_id) - report.deferred
    if stopped or report.lease_lost:
        report.stopped = rest
        return
    silent = tuple(c for c in state.claims(report.digest_id) if stopped_answering(c))
    report.silent = min(sum(c.owed for c in silent), rest)
    report.silent_claims = silent
    report.elsewhere = rest - report.silent


def stopped_answering(claim: Claim) -> bool:
    """A holder of owed rows that has not renewed its lease for SILENT_AFTER (a claim
    without a lease, an older publisher's, is judged by claimed_at: claim_batch)."""
    return claim.renewed_at is not None and claim.clock - claim.renewed_at > SILENT_AFTER


def _lease_time() -> float:
    """Seconds on a clock that also runs while the machine sleeps (a suspended VM or laptop):
    the lease runs out in the database meanwhile, and the sender must know it on waking."""
    return time.clock_gettime(_BOOTTIME) if _BOOTTIME is not None else time.monotonic()


_BOOTTIME = getattr(time, "CLOCK_BOOTTIME", None)  # Linux; elsewhere the monotonic clock


class Lease:
    """This sender's lease on the rows it claims (State.take_lease), renewed every
    LEASE_RENEW seconds on a thread of its own for as long as the send runs: `with lease:`.

    `held()` turns False, for good, once the database says the lease ran out (other senders
    may have its rows), or when no renewal has succeeded for LEASE_TRUSTED (the database
    unreachable, the process frozen): the sender must then claim and send nothing more."""

    def __init__(self, state: State, digest_id: int, sender: str):
        self.state, self.digest_id, self.sender = state, digest_id, sender
        self._trusted_until = 0.0  # _lease_time(): when a renewal began, + LEASE_TRUSTED
        self._ran_out = False
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Lease:
        began = _lease_time()
        self.state.take_lease(self.digest_id, self.sender, lease=LEASE)
        self._trusted_until = began + LEASE_TRUSTED.total_seconds()
        self._thread = threading.Thread(target=self._renew, name="publisher-lease", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._halt.set()
        if self._thread is not None:
            # Not forever: a renewal stuck on a database that stopped answering must not hold
            # the send's end (the thread is a daemon; its lease just runs out).
            self._thread.join(LEASE_RENEW * 2)

    def held(self) -> bool:
        return not self._ran_out and _lease_time() < self._trusted_until

    def why_lost(self) -> str:
        if self._ran_out:
            why = f"this sender's lease on digest #{self.digest_id} had run out when it renewed it"
        else:
            why = (f"this sender could not renew its lease on digest #{self.digest_id} for "
                   f"{LEASE_TRUSTED.total_seconds():g} s (is the state database reachable?)")
        return why + ": it stopped; the other senders or the next run send the rest"

    def _renew(self) -> None:
        while not self._halt.wait(LEASE_RENEW):
            began = _lease_time()
            try:
                renewed = self.state.renew_lease(self.sender, lease=LEASE)
            except StateError as e:
                log.warning("could not renew this sender's lease (%s); trying again in %g s",
                            e, LEASE_RENEW)
                continue
            if not renewed:
                self._ran_out = True
                log.warning("this sender's lease on digest #%d had run out: stopping",
                            self.digest_id)
                return
            self._trusted_until = began + LEASE_TRUSTED.total_seconds()


def sender_id() -> str:
    """Who holds a claim: host and pid (so a dead local sender is spotted at once), plus a
    random part so two sends in one process never look like the same sender."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"[:120]


def dead_senders(claimants: list[str]) -> list[str]:
    """Claimants on this host whose process is gone (killed, crashed). Senders on other
    machines are only presumed dead once their claims go stale (CLAIM_TIMEOUT)."""
    host = socket.gethostname()
    dead = []
    for claimant in claimants:
        parts = claimant.rsplit(":", 2)
        if len(parts) != 3 or parts[0] != host or not parts[1].isdigit():
            continue
        pid = int(parts[1])
        if pid == os.getpid():
            continue  # this process: its own earlier sends released their claims in `finally`
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            dead.append(claimant)
        except PermissionError:
            pass  # alive, someone else's
    return dead


def write_dry_run(config: Config, state: State, rendered, out_dir: Path, *, now: datetime,
                  plan=None) -> list[Path]:
    """`send --dry-run`: one .eml file per subscriber a send would mail (every active one, or
    those `plan` names, with their own bodies: newsletter/topics.py), the bytes a send would
    hand to the server (DKIM-signed when DKIM is on); records nothing."""
    # lazy: digest.py and message.py (~20 ms), for a dry run alone
    from .digest import Recipient, RenderedDigest
    from .message import compile_message, from_address

    from_address(config)
    out_dir.mkdir(parents=True, exist_ok=True)
    key = f"{config.site.url}|dry-run|{now.isoformat()}"
    written = []
    bodies = [rendered] + [RenderedDigest(kind=rendered.kind, subject=v.subject, html=v.html, text=v.text,
                                          post_ids=v.post_ids, warnings=())
                           for v in (plan.variants if plan is not None else ())]
    compiled: dict[int, object] = {}  # once per body, as for a real send
    subscribers = [s for s in state.list_subscribers(ACTIVE) if plan is None or s.id in plan.recipients]
    for i, sub in enumerate(subscribers, 1):
        variant = plan.recipients[sub.id] if plan is not None else 0
        if variant not in compiled:
            compiled[variant] = compile_message(bodies[variant], config, message_key=key, date=now)
        path = out_dir / f"{i:06d}-{_safe_name(sub.email)}.eml"
        path.write_bytes(compiled[variant].bytes_for(Recipient(sub.email, sub.name, sub.token)))
        written.append(path)
    return written


def _safe_name(address: str) -> str:
    return "".join(c if c.isalnum() or c in "@.-_+" else "_" for c in address)[:100]
