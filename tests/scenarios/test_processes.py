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


# --- `publisher bounces` killed with SIGKILL while it reads an mbox (issue #25, point 11) -----

# `publisher bounces` in a real process that SIGKILLs itself at a chosen point: deterministic
# kill points inside the reading, the appending to the folder, and between the folder's sync
# and the rewrite of the mbox.
_KILLED_BOUNCES = """
import mailbox, os, signal, sys
from publisher.cli import main
from publisher.newsletter import bounces

config, point, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
count = [0]

def counted(real, before=False):
    def wrapper(*args, **kwargs):
        count[0] += 1
        if before and count[0] == n:
            os.kill(os.getpid(), signal.SIGKILL)
        result = real(*args, **kwargs)
        if count[0] == n:
            os.kill(os.getpid(), signal.SIGKILL)
        return result
    return wrapper

if point == "reading":  # after n messages recorded in the state
    bounces.process_message = counted(bounces.process_message)
elif point == "appending":  # after n copies written to the folder, before they are synced
    mailbox.mbox.add = counted(mailbox.mbox.add)
elif point == "rewriting":  # as the n-th flush starts: 2 = the mbox's, after the folder's
    mailbox.mbox.flush = counted(mailbox.mbox.flush, before=True)
main(["--config", config, "bounces"])
"""


def killed_bounces(config, point: str, n: int) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _KILLED_BOUNCES, str(config.path), point, str(n)],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.timeout(600)
def test_bounces_killed_mid_mbox_leave_no_lock_for_good_and_no_second_copy(site, tmp_path):
    """3,000 recognised reports (and 2 personal mails) in an mbox; `publisher bounces` is
    killed with SIGKILL while reading (twice), while appending to box.mbox.Processed, after
    appending and before rewriting the mbox, and, with 1,000 more reports, after a short delay.
    Each next run breaks the lock the dead one left (and says so), and in the end Processed
    holds each report exactly once, the mbox only the personal mails. Before: every later `bounces` and `run` exited 1
    "locked by another program"; with the lock removed by hand, each kill copied again (852
    copies of 431 messages after four kills)."""
    import mailbox

    from bounce_helpers import sample, write_mbox

    site.write_config(newsletter={"bounce_mailbox": "mbox:box.mbox", "from": "news@blog.test.example"})
    site.post("old.md", "title: Old\npubDate: 2024-01-01")
    config = site.config()
    box = site.root / "box.mbox"
    reports = [sample("autoreply.eml", rcpt=f"r{i}@example.net", unique=f"r{i:04d}") for i in range(3000)]
    personal = [sample("personal.eml", rcpt=f"p{i}@example.net", unique=f"p{i}") for i in range(2)]
    write_mbox(box, reports[:1500] + personal[:1] + reports[1500:] + personal[1:])
    lock = site.root / "box.mbox.lock"

    stale_lines = []
    for point, n in [("reading", 1000), ("appending", 1700), ("reading", 2500), ("rewriting", 2)]:
        killed = killed_bounces(config, point, n)
        assert killed.returncode == -signal.SIGKILL, (point, killed.stderr)
        assert lock.exists(), point  # left behind by the dead process
        stale_lines += [line for line in killed.stderr.splitlines() if "removed the stale lock" in line]
    # Each killed run after the first found its predecessor's lock, and broke it; the one
    # killed while appending also left the lock of Processed.
    assert [line.split("removed the stale lock ")[1].split(" ")[0] for line in stale_lines] == [
        f"{lock}", f"{lock}", f"{site.root / 'box.mbox.Processed.lock'}", f"{lock}"]
    assert all(re.search(r"\(left by process \d+, which is no longer running\)$", line)
               for line in stale_lines), stale_lines

    # More reports arrive (the dead run had appended its 3,000 to Processed, and the next run
    # removes them from the mbox without a second copy); then a kill after a short delay.
    later = [sample("autoreply.eml", rcpt=f"l{i}@example.net", unique=f"l{i:04d}") for i in range(1000)]
    with_more = mailbox.mbox(box)  # unlocked: no process runs now, and the dead one's lock is there
    for data in later:
        with_more.add(data)
    with_more.close()
    proc = start(config, "bounces")
    time.sleep(1.0)
    proc.kill()
    proc.communicate(timeout=30)

    done = run(config, "run")  # `run` reads the bounces first: the lock no longer stops it
    assert done.returncode == 0, done.stderr
    assert "locked by another program" not in done.stdout + done.stderr
    done = run(config, "bounces")
    assert done.returncode == 0, done.stderr
    assert not lock.exists()

    moved = Counter(m["Message-ID"] for m in mailbox.mbox(site.root / "box.mbox.Processed"))
    assert len(moved) == 4000 and set(moved.values()) == {1}, moved.most_common(3)
    assert sorted(m["Message-ID"] for m in mailbox.mbox(box)) == ["<p0.personal-1@example.net>",
                                                                 "<p1.personal-1@example.net>"]
