"""What publisher says is what happened (issue 15, item 10): a digest recorded by a run whose
connection failed is announced when a later run sends it; stand-in posts are called so;
`schedule` log lines carry a time stamp; the next digest's date is given."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import pytest
from smtp_helpers import unused_port

from publisher import pipeline
from publisher.errors import DeliveryError
from publisher.state import State

SUN = datetime(2025, 1, 5, 9, 0, tzinfo=timezone.utc)


@pytest.fixture
def news(site, server):
    site.write_config(smtp={**server.smtp_settings(), "retry_base_delay": 0, "max_attempts": 2})
    site.post("old.md", "title: Old\npubDate: 2024-12-01")
    pipeline.run_once(site.config(), SUN)
    state = State(site.config().database_url)
    state.add_subscribers([("ann@example.org", ""), ("bob@example.org", "")])
    state.close()
    return site


def test_a_digest_left_by_a_failed_connection_is_announced_when_sent(news, server):
    news.post("new.md", "title: New\npubDate: 2025-01-05T12:00:00Z")
    news.write_config(smtp={"host": "127.0.0.1", "port": unused_port(), "retry_base_delay": 0,
                            "max_attempts": 2})
    with pytest.raises(DeliveryError, match="cannot reach SMTP server"):
        pipeline.send_now(news.config(), SUN + timedelta(hours=4))

    news.write_config(smtp={**server.smtp_settings(), "retry_base_delay": 0})
    report = pipeline.send_now(news.config(), SUN + timedelta(hours=5))
    assert report.lines == [
        "no new post to mail",
        "resuming digest #1 'Test Blog: New', recorded 2025-01-05 13:00 UTC and not finished then",
        "digest #1 'Test Blog: New': 2 sent, 0 retried, 0 bounced",
    ]
    assert not any("every published post has been sent" in line for line in report.lines)
    assert len(server.received) == 2


def test_preview_says_when_it_shows_stand_ins(news, tmp_path):
    report, _paths = pipeline.preview(news.config(), tmp_path / "preview", SUN + timedelta(hours=1))
    assert report.lines == ["nothing new to mail: the newest post stands in, to show what a "
                            "digest looks like (no subscriber gets them)"]
    news.post("new.md", "title: New\npubDate: 2025-01-05T12:00:00Z")
    report = pipeline.dry_run(news.config(), tmp_path / "out", SUN + timedelta(hours=4))
    assert report.lines == [f"dry run: 2 messages written to {tmp_path / 'out'} (1 post); "
                            "nothing sent"]


def test_schedule_log_lines_carry_a_time_stamp(news):
    proc = subprocess.Popen([sys.executable, "-m", "publisher.cli", "--config",
                             str(news.root / "config.yaml"), "schedule"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(3)
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    lines = err.splitlines()
    assert any("scheduling: run every" in line for line in lines), err
    stamp = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[+-]\d{4} publisher: [A-Z]+: ")
    assert [line for line in lines if not stamp.match(line)] == []
