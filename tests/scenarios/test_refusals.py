"""A server that refuses or defers everything never costs a subscriber, and never holds a run
for hours (issue 15, items 1 and 2). Real `publisher send` processes against the real
aiosmtpd server of conftest's `server` fixture, refusing at RCPT, DATA and end of data."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest

from publisher import pipeline
from publisher.newsletter.delivery import DEFER_STREAK, REFUSAL_STREAK
from publisher.state import State

SUN = datetime(2025, 1, 5, 9, 0, tzinfo=timezone.utc)
SUBSCRIBERS = [f"reader{i:03d}@example.org" for i in range(30)]


def cli(config, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "publisher.cli", "--config", str(config.path),
                           *args], capture_output=True, text=True, timeout=120)


@pytest.fixture
def owed_digest(site, server):
    """A site whose next `publisher send` mails one new post to 30 subscribers."""
    site.write_config(smtp={**server.smtp_settings(), "retry_base_delay": 0.01})
    config = site.config()
    site.post("old.md", "title: Old\npubDate: 2024-12-01")
    pipeline.run_once(config, SUN)  # the baseline
    state = State(config.database_url)
    state.add_subscribers([(a, "") for a in SUBSCRIBERS])
    state.close()
    site.post("new.md", "title: New\npubDate: 2025-01-05T12:00:00Z")
    return config


@pytest.mark.parametrize("stage, reply", [
    ("rcpt", "550 5.7.1 Service unavailable; client host blocked"),   # policy at RCPT
    ("rcpt", "550 5.1.1 Error: command failed"),                      # smtp-sink -f rcpt style
    ("rcpt", "554 Transaction failed"),                               # no enhanced code
    ("data", "554 5.7.1 Sender reputation too low"),                  # refusal of DATA
    ("end", "554 5.6.0 Message content rejected"),                    # refusal at end of data
])
def test_a_server_wide_refusal_bounces_nobody_and_keeps_everyone_owed(owed_digest, server,
                                                                       stage, reply):
    server.add_fault(stage, reply)
    proc = cli(owed_digest, "send", "--quiet")

    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"publisher: error: SMTP server 127.0.0.1:{server.port} refused "
                               f"{REFUSAL_STREAK} recipients in a row the same way: {reply}")
    assert "nobody was marked bounced" in lines[0]
    # The run stopped at the breaker: the rest of the list was not even tried.
    assert sum(server.attempts(a) for a in SUBSCRIBERS) == REFUSAL_STREAK
    state = State(owed_digest.database_url)
    assert state.count_subscribers("active") == len(SUBSCRIBERS)
    assert state.list_subscribers("bounced") == []
    assert state.count_owed(1) == len(SUBSCRIBERS)
    state.close()

    # The server is fixed: the next run mails everyone, once.
    server.clear_faults()
    proc = cli(owed_digest, "send", "--quiet")
    assert (proc.returncode, proc.stderr) == (0, "")
    assert sorted(m.rcpt for m in server.received) == SUBSCRIBERS


def test_a_policy_refusal_of_one_recipient_is_not_a_bounce(owed_digest, server):
    server.add_fault("end", "554 5.7.1 Rejected by the recipient's content filter",
                     recipient=SUBSCRIBERS[3])
    report = pipeline.send_now(owed_digest)

    assert report.exit_status == 1
    state = State(owed_digest.database_url)
    assert state.list_subscribers("bounced") == []
    assert state.count_owed(1) == 1  # still owed: tried again by the next run
    state.close()
    assert len(server.received) == len(SUBSCRIBERS) - 1


def test_real_bounces_under_the_streak_are_still_bounces(owed_digest, server):
    for address in SUBSCRIBERS[:REFUSAL_STREAK - 1]:
        server.add_fault("rcpt", f"550 5.1.1 <{address}>: Recipient address rejected: "
                                 "User unknown", recipient=address)
    report = pipeline.send_now(owed_digest)

    state = State(owed_digest.database_url)
    assert sorted(s.email for s in state.list_subscribers("bounced")) == \
        SUBSCRIBERS[:REFUSAL_STREAK - 1]
    state.close()
    assert f"{REFUSAL_STREAK - 1} bounced" in report.lines[-1]


def test_a_server_that_defers_everything_is_left_early_and_resumed(owed_digest, server):
    server.add_fault("rcpt", "451 4.3.0 Temporary local problem, try again later")
    proc = cli(owed_digest, "send", "--quiet")

    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(
        f"publisher: error: SMTP server 127.0.0.1:{server.port} deferred {DEFER_STREAK} "
        "messages in a row and accepted none: 451 4.3.0 Temporary local problem")
    # The first message got its retries (max_attempts, 5); each later one a single try, and
    # the run stopped after DEFER_STREAK of them, instead of 5 tries with backoff for all 30.
    assert sum(server.attempts(a) for a in SUBSCRIBERS) == 5 + (DEFER_STREAK - 1)
    state = State(owed_digest.database_url)
    assert state.count_owed(1) == len(SUBSCRIBERS)
    assert state.list_subscribers("bounced") == []
    state.close()

    server.clear_faults()
    proc = cli(owed_digest, "send", "--quiet")
    assert (proc.returncode, proc.stderr) == (0, "")
    assert sorted(m.rcpt for m in server.received) == SUBSCRIBERS
