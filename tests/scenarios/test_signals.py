"""`publisher send` and `publisher run` under SIGTERM and Ctrl-C, and what --quiet still says
(issue 15, item 9). Real processes, real signals, a real SMTP server process."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
from reliability_helpers import wait_until
from smtp_helpers import SpoolServerProcess

from publisher import pipeline
from publisher.state import State

SUBSCRIBERS = [f"reader{i:03d}@example.org" for i in range(40)]


def cli(config, *args: str) -> list[str]:
    return [sys.executable, "-m", "publisher.cli", "--config", str(config.path), *args]


def owed_site(site, port: int, **smtp):
    site.write_config(smtp={"host": "127.0.0.1", "port": port, "retry_base_delay": 0, **smtp})
    site.post("old.md", "title: Old\npubDate: 2024-01-01")
    config = site.config()
    week_ago = datetime.now(timezone.utc) - timedelta(days=7, hours=1)
    pipeline.run_once(config, week_ago)
    state = State(config.database_url)
    state.add_subscribers([(a, "") for a in SUBSCRIBERS])
    state.close()
    site.post("new.md", f"title: New\npubDate: {(week_ago + timedelta(hours=1)).isoformat()}")
    return config


@pytest.mark.parametrize("command", ["send", "run"])
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_finishes_the_message_in_flight_and_reports_what_is_owed(site, tmp_path,
                                                                          command, signum):
    with SpoolServerProcess(tmp_path / "spool", delay=0.05) as server:
        config = owed_site(site, server.port)
        if command == "run":
            site.write_config(smtp={"host": "127.0.0.1", "port": server.port},
                              newsletter={"schedule": "* * * * *"})
        proc = subprocess.Popen(cli(config, command, "--quiet"), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        wait_until(lambda: len(server.received) >= 5, what="5 messages")
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=30)

        assert proc.returncode == 1
        assert out == ""  # --quiet: everything that explains the status is on stderr
        lines = err.splitlines()
        assert lines[0] == (f"publisher: stopped by {signum.name}: the message in flight was "
                            "finished and recorded; what is still owed is sent by the next run")
        assert "Aborted!" not in err and "Traceback" not in err
        received = len(server.received)
        assert f"digest #1 'Test Blog: New': {received} sent, 0 retried, 0 bounced, " \
               f"{len(SUBSCRIBERS) - received} not sent yet (stopped; the next run sends them)" \
               in lines
        state = State(config.database_url)
        counts = state.delivery_counts(1)
        state.close()
        assert counts == {"sent": received, "pending": len(SUBSCRIBERS) - received}

        done = subprocess.run(cli(config, "send", "--quiet"), capture_output=True, text=True,
                              timeout=60)
        assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
        assert Counter(m.rcpt for m in server.received) == Counter({a: 1 for a in SUBSCRIBERS})


def test_quiet_with_mail_still_owed_says_why_it_exits_1(site, server):
    config = owed_site(site, server.port)
    server.add_fault("rcpt", "452 4.2.2 Mailbox full", recipient=SUBSCRIBERS[7])
    proc = subprocess.run(cli(config, "send", "--quiet"), capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 1 and proc.stdout == ""
    assert f"{SUBSCRIBERS[7]} deferred after 5 attempts" not in proc.stderr  # a warning: quiet
    assert proc.stderr.splitlines() == [
        f"digest #1 'Test Blog: New': {len(SUBSCRIBERS) - 1} sent, 4 retried, 0 bounced, "
        "1 still pending (retried on the next run)"]


def test_verbose_works_after_the_command_name(site):
    site.post("a.md", "title: A\npubDate: 2024-01-01")
    before = subprocess.run(cli(site.config(), "-v", "build"), capture_output=True, text=True)
    after = subprocess.run(cli(site.config(), "build", "-v"), capture_output=True, text=True)
    assert after.returncode == 0 and before.returncode == 0
    assert "publisher: DEBUG:" in after.stderr and "publisher: DEBUG:" in before.stderr


def test_usage_errors_are_not_config_errors(site):
    proc = subprocess.run(cli(site.config(), "send", "--to", "a@example.org", "--dry-run"),
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr == "publisher: usage error: use either --to or --dry-run, not both\n"
    proc = subprocess.run(cli(site.config(), "subscribers", "add", "not-an-address"),
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.startswith("publisher: usage error: 'not-an-address': not a valid address")


def test_one_subscriber_is_singular(site):
    subprocess.run(cli(site.config(), "subscribers", "add", "a@example.org"), check=True,
                   capture_output=True)
    proc = subprocess.run(cli(site.config(), "subscribers", "list"), capture_output=True,
                          text=True)
    assert proc.stderr == "1 subscriber\n"


@pytest.mark.timeout(180)
def test_sigterm_during_a_websub_ping_stops_run_at_once_and_the_next_run_pings(site, server):
    """Issue #25, point 10: `publisher run` pings its hub after the mail, and a SIGTERM while a
    hub trickles its answer a byte a second ends the ping at once (the ping is kept), and the
    process exits as a stopped run does, its lock released. Before: the run went on waiting on
    the hub for minutes, and the runs after it found the lock taken."""
    from test_websub import MAIN_FEEDS, Hub, pending_pings

    hub = Hub()
    try:
        config = owed_site(site, server.port)
        site.write_config(smtp={"host": "127.0.0.1", "port": server.port, "retry_base_delay": 0},
                          newsletter={"schedule": "* * * * *"}, feeds={"websub_hub": hub.url})
        hub.take()
        hub.trickle.set()
        proc = subprocess.Popen(cli(config, "run", "--quiet"), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        wait_until(lambda: hub.pings, timeout=60, what="the first ping")
        assert len(server.received) == len(SUBSCRIBERS)  # the mail went out before any ping
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)

        assert proc.returncode == 1, err
        assert err.splitlines()[0].startswith("publisher: stopped by SIGTERM")
        assert "Traceback" not in err
        owed = pending_pings(config)
        assert owed["last_error"] == "stopped"  # the signal ended it, not the ping's deadline
        assert sorted(url for _hub, url in owed["pings"]) == sorted(MAIN_FEEDS)

        hub.trickle.clear()
        hub.take()
        done = subprocess.run(cli(config, "run"), capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert "another publisher run is in progress" not in done.stdout
        assert "websub: 3 pings sent" in done.stdout.splitlines()
        assert sorted(hub.take()) == sorted(MAIN_FEEDS)
        assert pending_pings(config) == {}
        assert len(server.received) == len(SUBSCRIBERS)  # nobody mailed twice
    finally:
        hub.stop()
