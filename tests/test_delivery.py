"""delivery.py against real aiosmtpd servers on 127.0.0.1 (see smtp_helpers.py)."""

from __future__ import annotations

import email.policy
import logging
import re
import threading
import time
import zlib
from email.message import EmailMessage
from pathlib import Path

import pytest

from publisher.newsletter import delivery, smtp
from publisher.newsletter.delivery import (MAX_BACKOFF, DeliveryStats, Job, Outcome,
                                RateLimiter, backoff_delay, check_connection, deliver)
from publisher.errors import ConfigError, DeliveryError
from sites import make_config
from smtp_helpers import (Fault, SmtpServer, SpoolServerProcess, make_dkim_key, smtp_cert,  # noqa: F401
                          smtp_server, unused_port)

PASSWORD = "s3cret-Pa55-phrase"
FROM = "Test Blog <news@blog.test.example>"


def message(to: str, body: str = "Hello there.\n", **headers: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = FROM
    msg["To"] = to
    msg["Subject"] = f"Digest for {to}"
    msg["Date"] = "Mon, 06 May 2024 09:00:00 +0000"
    token = zlib.crc32(to.encode())  # stable across processes, unlike hash()
    msg["Message-ID"] = f"<{token}@blog.test.example>"
    msg["List-Id"] = "Test Blog <blog.test.example>"
    msg["List-Unsubscribe"] = f"<https://blog.test.example/unsubscribe/{token}>"
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(body)
    return msg.as_bytes(policy=email.policy.SMTP)


def jobs_for(*recipients: str) -> list[Job]:
    return [Job(key=r, recipient=r, build=lambda r=r: message(r)) for r in recipients]


def addresses(n: int, prefix: str = "reader") -> list[str]:
    return [f"{prefix}{i}@example.org" for i in range(n)]


class Recorder:
    """The callbacks; notices overlapping calls and keeps the order of events."""

    def __init__(self, hold: float = 0.0):
        self.events: list[tuple[str, object]] = []
        self.outcomes: dict[object, Outcome] = {}
        self.overlapped = False
        self.hold = hold
        self._busy = threading.Lock()

    def _enter(self):
        if not self._busy.acquire(blocking=False):
            self.overlapped = True
            self._busy.acquire()
        if self.hold:
            time.sleep(self.hold)  # widen the window in which an overlap would show

    def on_attempt(self, job: Job) -> None:
        self._enter()
        try:
            self.events.append(("attempt", job.key))
        finally:
            self._busy.release()

    def on_result(self, job: Job, outcome: Outcome) -> None:
        self._enter()
        try:
            self.events.append(("result", job.key))
            self.outcomes[job.key] = outcome
        finally:
            self._busy.release()

    @property
    def attempted(self) -> list:
        return [key for kind, key in self.events if kind == "attempt"]


def run(jobs, config, recorder: Recorder | None = None, **kwargs) -> tuple[DeliveryStats, Recorder]:
    recorder = recorder or Recorder()
    kwargs.setdefault("sleep", lambda seconds: None)
    stats = deliver(jobs, config, mail_from=FROM, on_attempt=recorder.on_attempt,
                    on_result=recorder.on_result, **kwargs)
    return stats, recorder


def cfg(server, tmp_path: Path, **smtp):
    smtp.setdefault("timeout", 5)
    return server.config(tmp_path, **smtp)


# --- the plain path ------------------------------------------------------------------------

def test_many_messages_over_one_connection(smtp_server, tmp_path):
    to = addresses(5)
    stats, rec = run(jobs_for(*to), cfg(smtp_server, tmp_path))

    assert stats == DeliveryStats(sent=5, bounced=0, deferred=0, retried=0)
    assert smtp_server.connections == 1
    assert [m.rcpt for m in smtp_server.received] == to
    assert [m.mail_from for m in smtp_server.received] == ["news@blog.test.example"] * 5
    assert all(m.data == message(m.rcpt) for m in smtp_server.received)
    assert rec.outcomes[to[0]] == Outcome("sent", 250, "2.0.0 OK queued", 1)
    assert rec.events == [e for r in to for e in (("attempt", r), ("result", r))]


def test_message_bytes_are_sent_as_is(smtp_server, tmp_path):
    # 8-bit UTF-8, a line of exactly 998 bytes, and lines starting with dots
    body = "Grüße, ça va? 日本語\n" + "x" * 998 + "\n.leading dot\n..two\n.\n"
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = FROM, "a@example.org", "bytes"
    msg.set_content(body, cte="8bit")
    data = msg.as_bytes(policy=email.policy.SMTP.clone(max_line_length=None))
    assert b"x" * 998 + b"\r\n" in data and not data.isascii()

    run([Job("a", "a@example.org", lambda: data)], cfg(smtp_server, tmp_path))

    assert smtp_server.received[0].data == data


def test_bare_newlines_become_crlf(smtp_server, tmp_path):
    data = b"From: news@blog.test.example\nTo: a@example.org\nSubject: lf\n\nline one\nline two\n"
    run([Job("a", "a@example.org", lambda: data)], cfg(smtp_server, tmp_path))

    assert smtp_server.received[0].data == data.replace(b"\n", b"\r\n")


def test_line_over_998_bytes_is_refused_before_sending(smtp_server, tmp_path):
    data = b"From: news@blog.test.example\r\nTo: a@example.org\r\n\r\n" + b"y" * 999 + b"\r\n"
    rec = Recorder()
    with pytest.raises(DeliveryError, match=r"a@example.org has a line of 999 bytes; SMTP allows at most 998"):
        run([Job("a", "a@example.org", lambda: data)], cfg(smtp_server, tmp_path), rec)

    assert rec.events == [] and smtp_server.received == []


def test_a_wire_ready_message_goes_out_as_built_and_any_other_is_made_so(smtp_server, tmp_path):
    """Job.wire_ready: the builder (message.py) has made sure of CRLF line ends and line
    lengths, so delivery does not scan the message again; without it, delivery does."""
    bare = message("a@example.org").replace(b"\r\n", b"\n")
    assert not smtp.wire_ready(bare) and smtp.wire_ready(message("a@example.org"))
    jobs = [Job("scanned", "a@example.org", lambda: bare),
            Job("trusted", "b@example.org", lambda: bare, wire_ready=True)]
    stats, _ = run(jobs, cfg(smtp_server, tmp_path))

    assert stats.sent == 2
    scanned, trusted = smtp_server.received
    assert scanned.data == message("a@example.org")  # made CRLF by delivery
    # Handed over as built, not scanned (DATA's own end marker adds the last CRLF).
    assert trusted.data == bare + b"\r\n"


def test_parallel_connections_deliver_each_message_exactly_once(tmp_path):
    to = addresses(15)
    # A little server latency so that every worker gets work while the others wait.
    with SmtpServer(delay=0.02) as server:
        stats, rec = run(jobs_for(*to), cfg(server, tmp_path, connections=3))
        received = server.received

    assert stats.sent == 15
    assert server.connections == 3
    assert sorted(m.rcpt for m in received) == sorted(to)  # each exactly once
    assert {m.connection for m in received} == {1, 2, 3}
    assert sorted(rec.attempted) == sorted(to)


# --- smtp.connections: auto ----------------------------------------------------------------

class OneConnectionServer(SmtpServer):
    """Refuses every connection after the first with a 421 greeting, as a server that limits
    connections per client does."""

    refused = 0

    def _take(self, stage, recipients):
        if stage == "connect":
            with self._lock:
                opened = self._connections
            if opened > 1:
                self.refused += 1
                return Fault("connect", "421 4.7.0 Too many connections from your address")
        return super()._take(stage, recipients)


def test_auto_opens_a_second_connection_for_a_large_send_without_pipelining(tmp_path, caplog):
    to = addresses(delivery.AUTO_SECOND_FROM)
    caplog.set_level(logging.INFO, logger="publisher.newsletter.delivery")
    with SmtpServer() as server:  # no PIPELINING
        stats, rec = run(jobs_for(*to), cfg(server, tmp_path), owed=len(to))
        received = server.received

    assert stats.sent == len(to)
    assert server.connections == 2
    assert sorted(m.rcpt for m in received) == sorted(to)  # each exactly once
    assert {m.connection for m in received} == {1, 2}
    assert sorted(rec.attempted) == sorted(to)
    assert ("smtp.connections auto: 2 connection(s) to 127.0.0.1:%d (no PIPELINING, %d messages "
            "owed)" % (server.port, len(to))) in caplog.messages


def test_auto_keeps_one_connection_for_a_small_send_without_pipelining(tmp_path, caplog):
    to = addresses(delivery.AUTO_SECOND_FROM - 1)
    caplog.set_level(logging.INFO, logger="publisher.newsletter.delivery")
    with SmtpServer() as server:
        stats, _ = run(jobs_for(*to), cfg(server, tmp_path), owed=len(to))
        assert server.connections == 1 and len(server.received) == len(to)
    assert stats.sent == len(to)
    assert ("smtp.connections auto: 1 connection(s) to 127.0.0.1:%d (no PIPELINING, %d messages "
            "owed)" % (server.port, len(to))) in caplog.messages


def test_auto_keeps_one_connection_when_the_size_of_the_send_is_not_known(smtp_server, tmp_path):
    to = addresses(delivery.AUTO_SECOND_FROM + 10)
    stats, _ = run(jobs_for(*to), cfg(smtp_server, tmp_path))  # no owed=: a test copy, a confirmation
    assert stats.sent == len(to) and smtp_server.connections == 1


def test_auto_keeps_one_connection_to_a_server_with_pipelining(pipelining_server, tmp_path):
    to = addresses(delivery.AUTO_SECOND_FROM + 10)
    stats, _ = run(jobs_for(*to), cfg(pipelining_server, tmp_path), owed=len(to))
    assert stats.sent == len(to) and pipelining_server.connections == 1


def test_an_explicit_connections_1_stays_one_for_a_large_send(smtp_server, tmp_path):
    to = addresses(delivery.AUTO_SECOND_FROM + 10)
    stats, _ = run(jobs_for(*to), cfg(smtp_server, tmp_path, connections=1), owed=len(to))
    assert stats.sent == len(to) and smtp_server.connections == 1


def test_auto_against_a_server_that_refuses_the_second_connection_sends_everything_once(
        tmp_path, caplog):
    to = addresses(delivery.AUTO_SECOND_FROM + 20)
    with OneConnectionServer() as server:
        stats, rec = run(jobs_for(*to), cfg(server, tmp_path), owed=len(to))
        received = server.received
        assert server.refused == 1 and server.connections == 2

    assert stats == DeliveryStats(sent=len(to))
    assert sorted(m.rcpt for m in received) == sorted(to)  # each exactly once
    assert {m.connection for m in received} == {1}
    assert sorted(rec.attempted) == sorted(to)
    assert ("SMTP connection 2 of 2 to 127.0.0.1:%d failed (421 4.7.0 Too many connections from "
            "your address); continuing with 1" % server.port) in caplog.messages


def test_no_jobs_means_no_connection(smtp_server, tmp_path):
    stats, rec = run(iter([]), cfg(smtp_server, tmp_path))

    assert stats == DeliveryStats() and rec.events == []
    assert smtp_server.connections == 0


# --- retries, bounces, deferrals ------------------------------------------------------------

def test_451_once_then_accepted(smtp_server, tmp_path):
    smtp_server.add_fault("rcpt", "451 4.3.0 Try again later", recipient="b@example.org", times=1)
    sleeps: list[float] = []
    stats, rec = run(jobs_for("a@example.org", "b@example.org", "c@example.org"),
                     cfg(smtp_server, tmp_path, retry_base_delay=7), sleep=sleeps.append)

    assert rec.outcomes["b@example.org"] == Outcome("sent", 250, "2.0.0 OK queued", 2)
    assert sleeps == [7.0]
    assert stats == DeliveryStats(sent=3, bounced=0, deferred=0, retried=1)
    assert smtp_server.attempts("b@example.org") == 2
    assert [m.rcpt for m in smtp_server.received] == ["a@example.org", "b@example.org", "c@example.org"]
    assert smtp_server.connections == 2  # the retry went out on a fresh connection


def test_550_bounces_without_retry_and_the_connection_carries_on(smtp_server, tmp_path):
    smtp_server.add_fault("rcpt", "550 5.1.1 <b@example.org>: no such user", recipient="b@example.org")
    sleeps: list[float] = []
    stats, rec = run(jobs_for("a@example.org", "b@example.org", "c@example.org"),
                     cfg(smtp_server, tmp_path), sleep=sleeps.append)

    assert rec.outcomes["b@example.org"] == Outcome(
        "bounced", 550, "5.1.1 <b@example.org>: no such user", 1)
    assert stats == DeliveryStats(sent=2, bounced=1, deferred=0, retried=0)
    assert sleeps == [] and smtp_server.attempts("b@example.org") == 1
    assert [m.rcpt for m in smtp_server.received] == ["a@example.org", "c@example.org"]
    assert smtp_server.connections == 1


def test_5xx_about_the_mailbox_at_end_of_data_is_a_bounce(smtp_server, tmp_path):
    smtp_server.add_fault("end", "550 5.2.1 Mailbox disabled", recipient="a@example.org")
    stats, rec = run(jobs_for("a@example.org"), cfg(smtp_server, tmp_path))

    assert rec.outcomes["a@example.org"] == Outcome("bounced", 550, "5.2.1 Mailbox disabled", 1)
    assert smtp_server.received == []


def test_a_content_refusal_at_end_of_data_is_not_a_bounce(smtp_server, tmp_path):
    smtp_server.add_fault("end", "554 5.7.1 Message rejected", recipient="a@example.org")
    stats, rec = run(jobs_for("a@example.org", "b@example.org"), cfg(smtp_server, tmp_path))

    assert rec.outcomes["a@example.org"] == Outcome("refused", 554, "5.7.1 Message rejected", 1)
    assert stats == DeliveryStats(sent=1, refused=1)
    assert [m.rcpt for m in smtp_server.received] == ["b@example.org"]


def test_drop_mid_data_is_retried_and_delivered_once(smtp_server, tmp_path):
    smtp_server.add_fault("data", drop=True, recipient="a@example.org", times=1)
    stats, rec = run(jobs_for("a@example.org"), cfg(smtp_server, tmp_path))

    outcome = rec.outcomes["a@example.org"]
    assert (outcome.status, outcome.code, outcome.attempts) == ("sent", 250, 2)
    assert [m.rcpt for m in smtp_server.received] == ["a@example.org"]
    assert stats.retried == 1 and smtp_server.connections == 2


def test_lost_reply_after_the_final_dot_sends_twice(smtp_server, tmp_path):
    # At-least-once: the server queued it, the client never heard; SMTP cannot tell.
    smtp_server.add_fault("end", drop=True, recipient="a@example.org", times=1)
    _stats, rec = run(jobs_for("a@example.org"), cfg(smtp_server, tmp_path))

    assert rec.outcomes["a@example.org"].attempts == 2
    assert [m.rcpt for m in smtp_server.received] == ["a@example.org"] * 2


def test_always_451_is_deferred_after_max_attempts_with_exponential_backoff(smtp_server, tmp_path):
    smtp_server.add_fault("rcpt", "451 4.7.1 Greylisted", recipient="a@example.org")
    sleeps: list[float] = []
    stats, rec = run(jobs_for("a@example.org", "b@example.org"),
                     cfg(smtp_server, tmp_path, max_attempts=4, retry_base_delay=1.5),
                     sleep=sleeps.append)

    assert rec.outcomes["a@example.org"] == Outcome("deferred", 451, "4.7.1 Greylisted", 4)
    assert sleeps == [1.5, 3.0, 6.0]
    assert stats == DeliveryStats(sent=1, bounced=0, deferred=1, retried=3)
    assert smtp_server.attempts("a@example.org") == 4
    assert [m.rcpt for m in smtp_server.received] == ["b@example.org"]


def test_backoff_is_capped(smtp_server, tmp_path):
    smtp_server.add_fault("rcpt", "452 4.2.2 Mailbox full", recipient="a@example.org")
    sleeps: list[float] = []
    config = cfg(smtp_server, tmp_path, max_attempts=5, retry_base_delay=100)
    run(jobs_for("a@example.org"), config, sleep=sleeps.append)

    assert sleeps == [100.0, 200.0, MAX_BACKOFF, MAX_BACKOFF]
    assert [backoff_delay(config, n) for n in (1, 2, 3, 9)] == [100, 200, 300, 300]


def test_stale_reused_connection_is_reopened_without_a_retry(smtp_server, tmp_path):
    # A server that timed out an idle connection: the next MAIL finds it closed.
    sleeps: list[float] = []
    recorder = Recorder()

    def arm_fault(job, outcome):  # after a@ went through, before b@'s MAIL
        recorder.on_result(job, outcome)
        if job.key == "a@example.org":
            smtp_server.add_fault("mail", "421 4.4.2 Idle timeout", drop=True, times=1)

    stats = deliver(jobs_for("a@example.org", "b@example.org"), cfg(smtp_server, tmp_path),
                    mail_from=FROM, on_attempt=recorder.on_attempt, on_result=arm_fault,
                    sleep=sleeps.append)

    assert recorder.outcomes["b@example.org"] == Outcome("sent", 250, "2.0.0 OK queued", 1)
    assert sleeps == [] and stats.retried == 0
    assert smtp_server.connections == 2


def test_invalid_recipient_is_bounced_without_sending(smtp_server, tmp_path):
    _stats, rec = run(jobs_for("bad address@example.org", "ok@example.org"), cfg(smtp_server, tmp_path))

    assert rec.outcomes["bad address@example.org"].status == "bounced"
    assert rec.outcomes["bad address@example.org"].code is None
    assert [m.rcpt for m in smtp_server.received] == ["ok@example.org"]


def test_reply_text_is_one_line_and_bounded(smtp_server, tmp_path):
    smtp_server.add_fault("rcpt", "550 5.1.1 " + "z" * 600, recipient="a@example.org")
    _stats, rec = run(jobs_for("a@example.org"), cfg(smtp_server, tmp_path))

    reply = rec.outcomes["a@example.org"].reply
    assert len(reply) == 300 and "\n" not in reply and reply.startswith("5.1.1 zzz")


def test_a_connection_waiting_out_its_backoff_does_not_hold_up_the_other(smtp_server, tmp_path):
    """One thread serves both connections: a retry's backoff on one (a _Pause) lets the
    other carry on with the next messages meanwhile, as a thread per connection did."""
    to = addresses(10)
    smtp_server.add_fault("rcpt", "451 4.3.0 try again later", recipient=to[0], times=1)
    stats, rec = run(jobs_for(*to), cfg(smtp_server, tmp_path, connections=2,
                                        retry_base_delay=2), sleep=time.sleep)
    assert stats.sent == 10 and stats.retried == 1
    received = [m.rcpt for m in smtp_server.received]
    assert sorted(received) == to and received[-1] == to[0]  # the others went first
    assert smtp_server.attempts(to[0]) == 2
    assert all(rec.events.count(("attempt", r)) == 1 for r in to)


def test_a_server_slow_to_accept_one_message_holds_up_only_that_connection(smtp_server, tmp_path):
    """Content filters make some messages slow to accept at the end of DATA: the thread
    goes on with the other connection meanwhile, not in turns with the slow one."""
    to = addresses(12)
    smtp_server.delays[to[0]] = 1.5
    stats, _ = run(jobs_for(*to), cfg(smtp_server, tmp_path, connections=2))
    assert stats.sent == 12
    received = smtp_server.received
    assert sorted(m.rcpt for m in received) == sorted(to)
    # While connection 1 waited, connection 2 sent every message but the one connection 1
    # had read ahead, which followed the slow one.
    assert {m.connection for m in received[:-2]} == {2}
    assert received[-2].rcpt == to[0] and received[-2].connection == received[-1].connection == 1


@pytest.mark.parametrize("security, connections", [("none", 1), ("none", 2), ("starttls", 1),
                                                   ("starttls", 2)])
def test_a_server_that_stops_answering_times_out_and_the_message_is_still_owed(
        smtp_cert, tmp_path, security, connections):
    """smtp.timeout holds however the connection is read: by the kernel on a plain one
    (SO_RCVTIMEO), by Python on a TLS one, by a poll while several connections wait."""
    to = addresses(4)
    with SmtpServer(tls=None if security == "none" else "starttls", cert=smtp_cert) as server:
        server.delays[to[1]] = 4.0  # past the end of its DATA: longer than smtp.timeout
        config = cfg(server, tmp_path, timeout=1, max_attempts=1, connections=connections)
        stats, rec = run(jobs_for(*to), config)
        assert (stats.sent, stats.deferred) == (3, 1)
        late = rec.outcomes[to[1]]
        assert late.status == "deferred" and "timed out" in late.reply, late
        assert {m.rcpt for m in server.received} >= set(to) - {to[1]}
        assert all(m.tls == (security != "none") for m in server.received)


def test_when_every_connection_waits_the_earliest_backoff_is_slept(smtp_server, tmp_path):
    to = addresses(4)
    for r in to[:2]:  # the first message of each connection
        smtp_server.add_fault("rcpt", "451 4.3.0 try again later", recipient=r, times=1)
    sleeps = []
    stats, rec = run(jobs_for(*to), cfg(smtp_server, tmp_path, connections=2,
                                        retry_base_delay=30), sleep=sleeps.append)
    assert stats.sent == 4 and stats.retried == 2
    assert sorted(m.rcpt for m in smtp_server.received) == to
    # Both paused: the run sleeps for the first one due (what is left of its 30 s), never
    # longer; the injected sleep returns at once and the earliest goes on regardless.
    assert sleeps and all(0 < s <= 30 for s in sleeps), sleeps
    assert [key for kind, key in rec.events if kind == "result"].count(to[0]) == 1


@pytest.mark.parametrize("connections", [1, 2])
def test_ctrl_c_in_a_callback_ends_the_run_with_every_delivered_message_reported(
        smtp_server, tmp_path, connections):
    to = addresses(12)
    rec = Recorder()

    def on_attempt(job):
        if job.key == to[5]:
            raise KeyboardInterrupt
        rec.on_attempt(job)

    with pytest.raises(KeyboardInterrupt):
        deliver(jobs_for(*to), cfg(smtp_server, tmp_path, connections=connections),
                mail_from=FROM, on_attempt=on_attempt, on_result=rec.on_result)
    delivered = {m.rcpt for m in smtp_server.received}
    sent = {key for key, outcome in rec.outcomes.items() if outcome.status == "sent"}
    assert delivered == sent and to[5] not in delivered
    assert set(rec.attempted) <= set(to[:5 + connections])  # no new job after the interrupt
    assert set(to[:5]) <= sent  # those before it, in flight or done, were finished


# --- configuration problems stop the run -----------------------------------------------------

def test_sender_refused_raises_after_deferring_the_current_message(smtp_server, tmp_path):
    smtp_server.add_fault("mail", "553 5.7.1 Sender address rejected: not owned by user")
    rec = Recorder()
    with pytest.raises(DeliveryError) as err:
        run(jobs_for(*addresses(5)), cfg(smtp_server, tmp_path), rec)

    assert str(err.value) == (
        f"SMTP server 127.0.0.1:{smtp_server.port} refused the sender "
        "<news@blog.test.example>: 553 5.7.1 Sender address rejected: not owned by user "
        "(check newsletter.from, smtp.username and the server's relay settings)")
    first = "reader0@example.org"
    assert rec.events == [("attempt", first), ("result", first)]
    assert rec.outcomes[first] == Outcome(
        "deferred", 553, "5.7.1 Sender address rejected: not owned by user", 1)


def test_relay_denied_is_not_mistaken_for_a_bounce(smtp_server, tmp_path):
    smtp_server.add_fault("rcpt", "554 5.7.1 <a@example.org>: Relay access denied")
    rec = Recorder()
    with pytest.raises(DeliveryError, match="refuses to relay for us: 554"):
        run(jobs_for("a@example.org", "b@example.org"), cfg(smtp_server, tmp_path), rec)

    assert rec.outcomes["a@example.org"].status == "deferred"
    assert "b@example.org" not in rec.attempted


def test_unreachable_server_names_host_and_port_and_reads_one_job(tmp_path):
    port = unused_port()
    config = make_config(tmp_path, smtp={"host": "127.0.0.1", "port": port, "timeout": 5})
    consumed = []

    def jobs():
        for job in jobs_for(*addresses(50)):
            consumed.append(job.key)
            yield job

    rec = Recorder()
    with pytest.raises(DeliveryError, match=rf"^cannot reach SMTP server 127\.0\.0\.1:{port}: "):
        run(jobs(), config, rec)
    assert len(consumed) == 1 and rec.events == []


def test_busy_greeting_at_start_is_an_error(smtp_server, tmp_path):
    smtp_server.add_fault("connect", "421 4.7.0 Too many connections", times=1)
    with pytest.raises(DeliveryError, match=r"cannot reach SMTP server .*421 4\.7\.0 Too many"):
        run(jobs_for("a@example.org"), cfg(smtp_server, tmp_path))


def test_server_gone_mid_run_defers_the_message_and_stops(smtp_server, tmp_path):
    recorder = Recorder()

    def on_attempt(job):
        recorder.on_attempt(job)
        if job.key == "b@example.org":  # from now on the server refuses every connection
            smtp_server.add_fault("rcpt", drop=True, reply="421 4.3.2 Shutting down", times=1)
            smtp_server.add_fault("connect", "421 4.3.2 Shutting down")

    with pytest.raises(DeliveryError, match=rf"cannot reach SMTP server 127.0.0.1:{smtp_server.port}"):
        deliver(jobs_for("a@example.org", "b@example.org", "c@example.org"),
                cfg(smtp_server, tmp_path, max_attempts=3), mail_from=FROM,
                on_attempt=on_attempt, on_result=recorder.on_result, sleep=lambda s: None)

    assert recorder.outcomes["a@example.org"].status == "sent"
    assert recorder.outcomes["b@example.org"] == Outcome("deferred", 421, "4.3.2 Shutting down", 3)
    assert recorder.attempted == ["a@example.org", "b@example.org"]


def test_build_failure_propagates_and_skips_callbacks(smtp_server, tmp_path):
    def broken():
        raise RuntimeError("template exploded")

    rec = Recorder()
    jobs = jobs_for("a@example.org") + [Job("b", "b@example.org", broken)] + jobs_for("c@example.org")
    with pytest.raises(RuntimeError, match="template exploded"):
        run(jobs, cfg(smtp_server, tmp_path), rec)
    assert rec.attempted == ["a@example.org"]
    assert [m.rcpt for m in smtp_server.received] == ["a@example.org"]


def test_callback_failure_stops_the_run(smtp_server, tmp_path):
    seen = []

    def on_result(job, outcome):
        seen.append(job.key)
        raise OSError("ledger is read-only")

    with pytest.raises(OSError, match="ledger is read-only"):
        deliver(jobs_for(*addresses(4)), cfg(smtp_server, tmp_path), mail_from=FROM,
                on_attempt=lambda job: None, on_result=on_result)
    assert seen == ["reader0@example.org"]
    assert len(smtp_server.received) == 1


# --- TLS and authentication --------------------------------------------------------------------

def test_starttls_with_a_self_signed_cert_trusted_via_ca_file(smtp_cert, tmp_path):
    with SmtpServer(tls="starttls", cert=smtp_cert) as server:
        config = cfg(server, tmp_path)
        assert config.smtp.security == "starttls" and config.smtp.ca_file
        stats, _rec = run(jobs_for("a@example.org"), config)
        assert stats.sent == 1
        assert [(m.rcpt, m.tls) for m in server.received] == [("a@example.org", True)]


def test_starttls_with_an_untrusted_cert_fails_clearly_and_sends_nothing(smtp_cert, tmp_path):
    with SmtpServer(tls="starttls", cert=smtp_cert) as server:
        config = cfg(server, tmp_path, ca_file="")
        rec = Recorder()
        with pytest.raises(DeliveryError) as err:
            run(jobs_for("a@example.org"), config, rec)
        assert server.received == [] and rec.events == []
    assert str(err.value).startswith(
        f"SMTP server 127.0.0.1:{server.port}: TLS certificate not trusted: self-signed certificate")
    assert "smtp.ca_file" in str(err.value)


def test_verify_tls_false_sends_but_warns_every_run(smtp_cert, tmp_path, caplog):
    with SmtpServer(tls="starttls", cert=smtp_cert) as server:
        config = cfg(server, tmp_path, ca_file="", verify_tls=False)
        with caplog.at_level(logging.WARNING, logger="publisher.newsletter.smtp"):
            run(jobs_for("a@example.org"), config)
            run(jobs_for("b@example.org"), config)
        assert len(server.received) == 2
    warnings = [r for r in caplog.records if r.name == "publisher.newsletter.smtp" and r.levelno == logging.WARNING]
    assert len(warnings) == 2 and "smtp.verify_tls is false" in warnings[0].getMessage()


def test_implicit_tls_port(smtp_cert, tmp_path):
    with SmtpServer(tls="ssl", cert=smtp_cert) as server:
        stats, _rec = run(jobs_for("a@example.org", "b@example.org"), cfg(server, tmp_path))
        assert stats.sent == 2 and server.connections == 1
        assert all(m.tls for m in server.received)


def test_bad_ca_file_is_a_config_error(smtp_cert, tmp_path):
    with SmtpServer(tls="ssl", cert=smtp_cert) as server:
        config = cfg(server, tmp_path, ca_file="missing-ca.pem")
        with pytest.raises(ConfigError, match=r"smtp\.ca_file: expected a PEM file of CA certificates"):
            run(jobs_for("a@example.org"), config)
        assert server.connections == 0


def test_login_with_password_from_environment_never_logged(smtp_cert, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("PUBLISHER_SMTP_PASSWORD", PASSWORD)
    with SmtpServer(tls="starttls", cert=smtp_cert, auth={"mailer": PASSWORD}) as server:
        with caplog.at_level(logging.DEBUG):
            stats, _rec = run(jobs_for("a@example.org"), cfg(server, tmp_path))
        assert stats.sent == 1
        assert [(m.rcpt, m.login) for m in server.received] == [("a@example.org", "mailer")]
    assert caplog.records and PASSWORD not in caplog.text


def test_login_over_plain_connection(tmp_path, monkeypatch):
    monkeypatch.setenv("PUBLISHER_SMTP_PASSWORD", PASSWORD)
    with SmtpServer(auth={"mailer": PASSWORD}) as server:
        stats, _rec = run(jobs_for("a@example.org"), cfg(server, tmp_path))
        assert stats.sent == 1 and server.received[0].login == "mailer"


def test_wrong_password_is_an_error_that_does_not_echo_it(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("PUBLISHER_SMTP_PASSWORD", "wrong-" + PASSWORD)
    with SmtpServer(auth={"mailer": PASSWORD}) as server:
        rec = Recorder()
        with caplog.at_level(logging.DEBUG), pytest.raises(DeliveryError) as err:
            run(jobs_for("a@example.org"), cfg(server, tmp_path), rec)
        assert server.received == [] and rec.events == []
    assert str(err.value) == (
        f"SMTP server 127.0.0.1:{server.port} rejected the login of 'mailer': "
        "535 5.7.8 Authentication credentials invalid "
        "(check smtp.username and PUBLISHER_SMTP_PASSWORD)")
    assert PASSWORD not in caplog.text


def test_username_without_password_is_a_config_error(smtp_server, tmp_path, monkeypatch):
    monkeypatch.delenv("PUBLISHER_SMTP_PASSWORD", raising=False)
    with pytest.raises(ConfigError, match="PUBLISHER_SMTP_PASSWORD, but it is not set"):
        run(jobs_for("a@example.org"), cfg(smtp_server, tmp_path, username="mailer"))
    assert smtp_server.connections == 0


def test_check_connection(smtp_cert, tmp_path, monkeypatch):
    monkeypatch.setenv("PUBLISHER_SMTP_PASSWORD", PASSWORD)
    with SmtpServer(tls="starttls", cert=smtp_cert, auth={"mailer": PASSWORD}) as server:
        check_connection(cfg(server, tmp_path))
        assert server.connections == 1 and server.received == []
    port = unused_port()
    with pytest.raises(DeliveryError, match=rf"cannot reach SMTP server 127\.0\.0\.1:{port}"):
        check_connection(make_config(tmp_path, smtp={"port": port}))


# --- stopping, pacing, callbacks, laziness ------------------------------------------------------

def test_stop_finishes_the_message_in_flight_then_returns(smtp_server, tmp_path):
    stop = threading.Event()
    recorder = Recorder()
    to = addresses(10)

    def on_attempt(job):
        recorder.on_attempt(job)
        if job.key == to[2]:
            stop.set()  # e.g. SIGTERM while the third message is being sent

    stats = deliver(jobs_for(*to), cfg(smtp_server, tmp_path), mail_from=FROM,
                    on_attempt=on_attempt, on_result=recorder.on_result, stop=stop)

    assert stats.sent == 3
    assert recorder.attempted == to[:3] and list(recorder.outcomes) == to[:3]
    assert [m.rcpt for m in smtp_server.received] == to[:3]


def test_stop_during_backoff_defers_instead_of_waiting(smtp_server, tmp_path):
    smtp_server.add_fault("rcpt", "451 4.3.0 Later", recipient="a@example.org")
    stop = threading.Event()
    sleeps: list[float] = []

    def sleep(seconds):
        sleeps.append(seconds)
        stop.set()

    stats, rec = run(jobs_for("a@example.org", "b@example.org"), cfg(smtp_server, tmp_path),
                     stop=stop, sleep=sleep)

    assert rec.outcomes["a@example.org"] == Outcome("deferred", 451, "4.3.0 Later", 1)
    assert sleeps == [2.0] and stats == DeliveryStats(deferred=1)
    assert rec.attempted == ["a@example.org"]


def test_stop_while_waiting_for_the_rate_limit_starts_nothing_more(smtp_server, tmp_path):
    stop = threading.Event()

    def sleep(seconds):  # the pacing wait before the second message; SIGTERM arrives
        stop.set()

    stats, rec = run(jobs_for(*addresses(3)), cfg(smtp_server, tmp_path, rate_limit=1),
                     stop=stop, sleep=sleep)

    assert stats == DeliveryStats(sent=1)
    assert rec.attempted == ["reader0@example.org"]
    assert [m.rcpt for m in smtp_server.received] == ["reader0@example.org"]


def test_real_sleep_is_interrupted_by_stop(smtp_server, tmp_path):
    # With the default sleep, a stop during a 300 s backoff must not hold the run.
    smtp_server.add_fault("rcpt", "451 4.3.0 Later", recipient="a@example.org")
    stop = threading.Event()
    recorder = Recorder()

    def on_attempt(job):
        recorder.on_attempt(job)
        threading.Timer(0.05, stop.set).start()

    result = {}
    worker = threading.Thread(target=lambda: result.update(stats=deliver(
        jobs_for("a@example.org"), cfg(smtp_server, tmp_path, retry_base_delay=300),
        mail_from=FROM, on_attempt=on_attempt, on_result=recorder.on_result, stop=stop)))
    worker.start()
    worker.join(timeout=30)
    assert not worker.is_alive()
    assert recorder.outcomes["a@example.org"].status == "deferred"


def test_rate_limiter_with_a_fake_clock():
    now = [100.0]
    waits: list[float] = []

    def sleep(seconds):
        waits.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(4, sleep, clock=lambda: now[0])
    for _ in range(5):
        limiter.acquire()
    assert waits == [0.25, 0.25, 0.25, 0.25]  # the first goes at once
    now[0] += 10  # idle: no debt is carried over, and no burst is saved up either
    limiter.acquire()
    limiter.acquire()
    assert waits[4:] == [0.25]
    assert RateLimiter(0, sleep).acquire() == 0.0


def test_rate_limit_paces_delivery(smtp_server, tmp_path, monkeypatch):
    now = [0.0]
    sleeps: list[float] = []

    def sleep(seconds):
        sleeps.append(seconds)
        now[0] += seconds

    monkeypatch.setattr(delivery, "_clock", lambda: now[0])
    stats, _rec = run(jobs_for(*addresses(4)), cfg(smtp_server, tmp_path, rate_limit=5),
                      sleep=sleep)

    assert stats.sent == 4
    assert sleeps == pytest.approx([0.2, 0.2, 0.2])
    assert now[0] == pytest.approx(0.6)


def test_callbacks_are_ordered_and_never_overlap(tmp_path):
    to = addresses(24)
    recorder = Recorder(hold=0.002)
    with SmtpServer(delay=0.005) as server:
        server.add_fault("rcpt", "451 4.3.0 Later", recipient=to[5], times=1)
        server.add_fault("rcpt", "550 5.1.1 Unknown", recipient=to[9])
        stats, _ = run(jobs_for(*to), cfg(server, tmp_path, connections=3), recorder)

    assert not recorder.overlapped
    assert stats == DeliveryStats(sent=23, bounced=1, deferred=0, retried=1)
    for key in to:
        kinds = [(i, kind) for i, (kind, k) in enumerate(recorder.events) if k == key]
        assert [kind for _i, kind in kinds] == ["attempt", "result"], key


def test_jobs_are_read_lazily(smtp_server, tmp_path):
    produced = []
    lead = []
    recorder = Recorder()
    connections = 2

    def jobs():
        for i in range(10_000):
            key = f"r{i}@example.org"
            produced.append(key)
            yield Job(key, key, lambda key=key: message(key))

    stop = threading.Event()

    def on_attempt(job):
        recorder.on_attempt(job)
        lead.append(len(produced) - len(recorder.attempted))
        if len(recorder.attempted) == 20:
            stop.set()

    with SmtpServer() as server:
        deliver(jobs(), cfg(server, tmp_path, connections=connections), mail_from=FROM,
                on_attempt=on_attempt, on_result=recorder.on_result, stop=stop)

    bound = 2 * connections  # each connection: the message in flight and one read ahead
    assert max(lead) <= bound
    assert len(recorder.attempted) <= 20 + connections - 1
    assert len(produced) <= len(recorder.attempted) + bound


def test_spooling_server_in_another_process(tmp_path):
    spool = tmp_path / "spool"
    with SpoolServerProcess(spool, faults=[{"stage": "rcpt", "reply": "451 4.3.0 Later",
                                            "recipient": "b@example.org", "times": 1}]) as server:
        stats, _rec = run(jobs_for("a@example.org", "b@example.org"), cfg(server, tmp_path))
        received = server.received
    assert stats == DeliveryStats(sent=2, retried=1)
    assert [m.rcpt for m in received] == ["a@example.org", "b@example.org"]
    assert received[0].data == message("a@example.org")


# --- DKIM is message.py's: delivery sends the bytes it is given ------------------------------

def test_delivery_never_signs_nor_changes_a_message(smtp_server, tmp_path):
    """With smtp.dkim set, the bytes still go out as the job built them: message.py signs
    each message exactly once (tests/test_message.py), so a second signer here would sign
    twice."""
    key_file = make_dkim_key(tmp_path / "dkim").key_file
    config = cfg(smtp_server, tmp_path, dkim={"key_file": str(key_file), "selector": "mail"})
    run(jobs_for("a@example.org"), config)
    [received] = smtp_server.received
    assert received.data == message("a@example.org")
    assert b"DKIM-Signature" not in received.data


# --- PIPELINING (RFC 2920), reading ahead, on_idle -------------------------------------------

@pytest.fixture
def pipelining_server():
    from send_helpers import PipeliningServer

    with PipeliningServer() as server:
        yield server


@pytest.fixture
def writes(monkeypatch):
    """Every write the client makes to an SMTP socket, in order: smtplib's (EHLO, QUIT) and
    delivery's own (the transactions). (The test server's asyncio transports use send().)"""
    import socket

    seen: list[bytes] = []
    original = socket.socket.sendall

    def sendall(self, data, *args):
        seen.append(bytes(data))
        return original(self, data, *args)

    monkeypatch.setattr(socket.socket, "sendall", sendall)
    return seen


def test_pipelining_sends_mail_rcpt_and_data_in_one_write(pipelining_server, tmp_path, writes):
    body = "Grüße\n" + "x" * 998 + "\n.leading dot\n..two\n.\n"
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = FROM, "b@example.org", "dots"
    msg.set_content(body, cte="8bit")
    dotted = msg.as_bytes(policy=email.policy.SMTP.clone(max_line_length=None))
    jobs = jobs_for("a@example.org") + [Job("b@example.org", "b@example.org", lambda: dotted)]
    stats, rec = run(jobs + jobs_for("c@example.org"), cfg(pipelining_server, tmp_path))

    assert stats == DeliveryStats(sent=3)
    received = pipelining_server.received
    assert [m.rcpt for m in received] == ["a@example.org", "b@example.org", "c@example.org"]
    assert received[0].data == message("a@example.org") and received[1].data == dotted
    assert pipelining_server.connections == 1
    assert rec.outcomes["b@example.org"] == Outcome("sent", 250, "2.0.0 OK queued", 1)
    groups = [w for w in writes if w.startswith(b"MAIL FROM:")]
    assert groups[1] == (b"MAIL FROM:<news@blog.test.example> BODY=8BITMIME\r\n"
                         b"RCPT TO:<b@example.org>\r\nDATA\r\n")
    assert len(groups) == 3
    assert writes[writes.index(groups[1]) + 1].endswith(b"\r\n..leading dot\r\n...two\r\n..\r\n.\r\n")


def test_pipelined_bounce_at_rcpt_skips_the_data_and_the_connection_carries_on(
        pipelining_server, tmp_path):
    pipelining_server.add_fault("rcpt", "550 5.1.1 no such user", recipient="b@example.org")
    stats, rec = run(jobs_for("a@example.org", "b@example.org", "c@example.org"),
                     cfg(pipelining_server, tmp_path))

    assert rec.outcomes["b@example.org"] == Outcome("bounced", 550, "5.1.1 no such user", 1)
    assert stats == DeliveryStats(sent=2, bounced=1)
    assert [m.rcpt for m in pipelining_server.received] == ["a@example.org", "c@example.org"]
    assert pipelining_server.connections == 1


def test_pipelined_451_at_rcpt_is_retried(pipelining_server, tmp_path):
    pipelining_server.add_fault("rcpt", "451 4.3.0 Later", recipient="a@example.org", times=1)
    sleeps: list[float] = []
    stats, rec = run(jobs_for("a@example.org", "b@example.org"),
                     cfg(pipelining_server, tmp_path, retry_base_delay=3), sleep=sleeps.append)

    assert rec.outcomes["a@example.org"] == Outcome("sent", 250, "2.0.0 OK queued", 2)
    assert sleeps == [3.0] and stats == DeliveryStats(sent=2, retried=1)
    assert [m.rcpt for m in pipelining_server.received] == ["a@example.org", "b@example.org"]


def test_pipelined_refused_sender_stops_the_run(pipelining_server, tmp_path):
    pipelining_server.add_fault("mail", "553 5.7.1 Sender address rejected")
    rec = Recorder()
    with pytest.raises(DeliveryError, match="refused the sender <news@blog.test.example>: 553"):
        run(jobs_for(*addresses(3)), cfg(pipelining_server, tmp_path), rec)

    assert rec.events == [("attempt", "reader0@example.org"), ("result", "reader0@example.org")]
    assert rec.outcomes["reader0@example.org"].status == "deferred"
    assert pipelining_server.received == []


@pytest.mark.parametrize("pipelining", [False, True])
def test_the_intent_is_recorded_before_the_content_reaches_the_server(tmp_path, pipelining):
    from send_helpers import PipeliningServer

    to = addresses(3)
    delivered_at_intent = []
    recorder = Recorder()
    with (PipeliningServer() if pipelining else SmtpServer()) as server:
        def on_attempt(job):
            recorder.on_attempt(job)
            time.sleep(0.05)  # content sent early would reach the server meanwhile
            delivered_at_intent.append([m.rcpt for m in server.received])

        deliver(jobs_for(*to), cfg(server, tmp_path), mail_from=FROM, on_attempt=on_attempt,
                on_result=recorder.on_result)
        assert [m.rcpt for m in server.received] == to
    assert delivered_at_intent == [[], to[:1], to[:2]]


@pytest.mark.parametrize("pipelining, connections", [(False, 1), (True, 1), (False, 2)])
def test_before_content_runs_before_the_content_of_every_message_attempted_since(
        tmp_path, pipelining, connections):
    """A caller that holds its intents makes them durable in before_content: no message's
    content may reach the server before a before_content call that came after its intent.
    Each call waits a moment, in which content sent too early would arrive."""
    from send_helpers import PipeliningServer

    to = addresses(6)
    attempted, covered, calls = [], set(), []
    with (PipeliningServer() if pipelining else SmtpServer()) as server:
        def before_content():
            time.sleep(0.05)
            early = {m.rcpt for m in server.received} - covered
            calls.append((list(attempted), early))
            covered.update(attempted)

        deliver(jobs_for(*to), cfg(server, tmp_path, connections=connections), mail_from=FROM,
                on_attempt=lambda job: attempted.append(job.key),
                on_result=lambda job, outcome: None, before_content=before_content)
        assert sorted(m.rcpt for m in server.received) == to
    assert [early for _, early in calls] == [set()] * len(calls)
    assert covered == set(to)
    if connections == 2:  # the two connections' intents share a call
        assert len(calls) <= len(to) // 2 + 1, calls
    else:
        assert len(calls) == len(to)


@pytest.mark.parametrize("pipelining", [False, True])
def test_a_failing_intent_callback_sends_nothing_and_is_not_retried(tmp_path, pipelining):
    from send_helpers import PipeliningServer

    def on_attempt(job):
        if job.key == "b@example.org":
            raise OSError("ledger disk full")  # an OSError, yet not the connection's

    results = []
    with (PipeliningServer() if pipelining else SmtpServer()) as server:
        with pytest.raises(OSError, match="ledger disk full"):
            deliver(jobs_for("a@example.org", "b@example.org", "c@example.org"),
                    cfg(server, tmp_path), mail_from=FROM, on_attempt=on_attempt,
                    on_result=lambda job, outcome: results.append(job.key))
        assert [m.rcpt for m in server.received] == ["a@example.org"]
        # Without PIPELINING the intent comes first: the server sees nothing of b. With it,
        # b's MAIL/RCPT/DATA are already on the wire when the intent fails, and whether the
        # server reads b's RCPT before the connection closes is a race: no count to assert;
        # that no content of b arrived is asserted above.
        if not pipelining:
            assert server.attempts("b@example.org") == 0
        assert server.attempts("c@example.org") == 0
    assert results == ["a@example.org"]


def test_a_failure_reading_the_next_job_comes_after_the_current_result(smtp_server, tmp_path):
    def jobs():
        yield from jobs_for("a@example.org")
        raise RuntimeError("claiming failed")  # read while the server takes in a@

    rec = Recorder()
    with pytest.raises(RuntimeError, match="claiming failed"):
        run(jobs(), cfg(smtp_server, tmp_path), rec)
    assert rec.events == [("attempt", "a@example.org"), ("result", "a@example.org")]
    assert [m.rcpt for m in smtp_server.received] == ["a@example.org"]


def test_one_connection_reads_at_most_one_job_ahead(smtp_server, tmp_path):
    produced = []
    stop = threading.Event()
    recorder = Recorder()

    def jobs():
        for job in jobs_for(*addresses(100)):
            produced.append(job.key)
            yield job

    def on_attempt(job):
        recorder.on_attempt(job)
        assert len(produced) <= len(recorder.attempted) + 1
        if len(recorder.attempted) == 5:
            stop.set()

    deliver(jobs(), cfg(smtp_server, tmp_path), mail_from=FROM, on_attempt=on_attempt,
            on_result=recorder.on_result, stop=stop)
    assert len(recorder.attempted) == 5 and len(produced) == 6


@pytest.mark.parametrize("pipelining", [False, True])
def test_on_idle_runs_before_waiting_and_at_the_end(tmp_path, pipelining):
    from send_helpers import PipeliningServer

    events = []
    with (PipeliningServer() if pipelining else SmtpServer()) as server:
        server.add_fault("rcpt", "550 5.1.1 no such user", recipient="b@example.org")
        deliver(jobs_for("a@example.org", "b@example.org", "c@example.org"), cfg(server, tmp_path),
                mail_from=FROM, on_attempt=lambda job: events.append(("attempt", job.key)),
                on_result=lambda job, out: events.append(("result", job.key)),
                on_idle=lambda: events.append(("idle", None)))
    # Back to back, a result is followed by the next intent; after a bounce nothing was
    # read ahead, so the connection waits for the next job (idle), and once at the end.
    # A bounce's result is held back until the next outcome shows the server is not
    # refusing everyone (the refusal breaker): b's comes with c's.
    assert events == [("attempt", "a@example.org"), ("result", "a@example.org"),
                      ("attempt", "b@example.org"), ("idle", None),
                      ("attempt", "c@example.org"), ("result", "b@example.org"),
                      ("result", "c@example.org"), ("idle", None)]


def test_on_idle_runs_before_a_rate_limit_wait(smtp_server, tmp_path, monkeypatch):
    events = []
    now = [0.0]

    def sleep(seconds):
        events.append(("sleep", seconds))
        now[0] += seconds

    monkeypatch.setattr(delivery, "_clock", lambda: now[0])
    deliver(jobs_for("a@example.org", "b@example.org"), cfg(smtp_server, tmp_path, rate_limit=2),
            mail_from=FROM, on_attempt=lambda job: events.append(("attempt", job.key)),
            on_result=lambda job, out: events.append(("result", job.key)),
            on_idle=lambda: events.append(("idle", None)), sleep=sleep)
    assert events == [("idle", None), ("attempt", "a@example.org"), ("result", "a@example.org"),
                      ("idle", None), ("sleep", 0.5), ("attempt", "b@example.org"),
                      ("result", "b@example.org"), ("idle", None)]


@pytest.mark.parametrize("connections", [1, 2])
def test_a_failing_on_idle_stops_the_run(smtp_server, tmp_path, connections):
    def on_idle():
        raise OSError("ledger is read-only")

    with pytest.raises(OSError, match="ledger is read-only"):
        deliver(jobs_for(*addresses(3)), cfg(smtp_server, tmp_path, connections=connections),
                mail_from=FROM, on_attempt=lambda job: None, on_result=lambda job, out: None,
                on_idle=on_idle)
