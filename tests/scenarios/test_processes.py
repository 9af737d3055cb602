"""Real `publisher` processes against a real SMTP server process on 127.0.0.1:
a send killed with SIGKILL and resumed, two runs racing, and `publisher schedule` under SIGTERM."""

from __future__ import annotations

import re
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


def start(config, *args: str) -> subprocess.Popen:
    return subprocess.Popen(cli(config, *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run(config, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(cli(config, *args), capture_output=True, text=True, timeout=120)


@pytest.fixture
def mailing_site(site, tmp_path):
    """A site whose baseline is a week old, with one new post owed to 40 subscribers."""

    def setup(server, **newsletter):
        site.write_config(smtp={"host": "127.0.0.1", "port": server.port, "retry_base_delay": 0},
                          newsletter=newsletter)
        site.post("old.md", "title: Old\npubDate: 2024-01-01")
        config = site.config()
        week_ago = datetime.now(timezone.utc) - timedelta(days=7, hours=1)
        pipeline.run_once(config, week_ago)  # the baseline, a week ago
        state = State(config.database_url)
        state.add_subscribers([(a, "") for a in SUBSCRIBERS])
        state.close()
        site.post("new.md", f"title: New\npubDate: {(week_ago + timedelta(hours=1)).isoformat()}")
        return config

    return setup


def copies(server) -> Counter:
    return Counter(m.rcpt for m in server.received)


def test_send_killed_with_sigkill_resumes_without_doubling(mailing_site, tmp_path):
    with SpoolServerProcess(tmp_path / "spool", delay=0.05) as server:
        config = mailing_site(server)
        proc = start(config, "send")
        wait_until(lambda: len(server.received) >= 15, what="15 messages")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        before = copies(server)
        assert 15 <= sum(before.values()) < len(SUBSCRIBERS)
        state = State(config.database_url)
        assert len(state.open_digests()) == 1
        state.close()

        resumed = run(config, "run")
        assert resumed.returncode == 0, resumed.stderr
        assert "digest #1" in resumed.stdout
        after = copies(server)
        assert set(after) == set(SUBSCRIBERS)
        duplicates = sum(n - 1 for n in after.values())
        assert duplicates <= 1  # only the message in flight at the kill (one connection)
        state = State(config.database_url)
        assert state.open_digests() == []
        assert state.delivery_counts(1) == {"sent": len(SUBSCRIBERS)}


def test_two_overlapping_runs_never_mail_anyone_twice(mailing_site, tmp_path):
    with SpoolServerProcess(tmp_path / "spool", delay=0.02) as server:
        config = mailing_site(server, schedule="* * * * *")
        first, second = start(config, "run"), start(config, "run")
        outs = [p.communicate(timeout=120) for p in (first, second)]
        assert first.returncode == 0 and second.returncode == 0, outs
        assert copies(server) == Counter({a: 1 for a in SUBSCRIBERS})
        # One of them planned the digest; the other waited for the lock, found nothing new,
        # and at most helped deliver the same digest #1. No second digest exists.
        assert sum("nothing new to mail" in out for out, _err in outs) == 1
        sent = [int(m) for out, _err in outs for m in re.findall(r"digest #1 .*?: (\d+) sent", out)]
        assert sum(sent) == len(SUBSCRIBERS)
        assert "digest #2" not in "".join(out for out, _err in outs)
        assert not any("locked" in err for _out, err in outs)


def test_schedule_service_builds_sends_and_stops_cleanly_on_sigterm(mailing_site, tmp_path):
    with SpoolServerProcess(tmp_path / "spool", delay=0.1) as server:
        config = mailing_site(server)
        proc = start(config, "schedule")
        try:
            wait_until(lambda: len(server.received) >= 5, what="the digest to start going out")
            assert (config.output_dir / "rss.xml").exists()  # it built the feeds
            proc.send_signal(signal.SIGTERM)
            _out, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 0, err
        assert "received SIGTERM" in err and "stopped after" in err
        state = State(config.database_url)
        counts = state.delivery_counts(1)
        assert "sending" not in counts  # nothing half-recorded: the message in flight finished
        assert counts.get("sent", 0) == len(server.received) < len(SUBSCRIBERS)
        state.close()

        # The next run finishes the digest: every subscriber exactly one copy.
        done = run(config, "run", "--quiet")
        assert done.returncode == 0, done.stderr
        assert done.stdout == ""  # --quiet
        assert copies(server) == Counter({a: 1 for a in SUBSCRIBERS})
