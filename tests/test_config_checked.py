"""cache.check_config_once: `publisher build` loads the config without its slow checks (the
cron schedule's, which imports APScheduler) and completes them once per config, recorded in
the state; a changed value is checked again. Real files, real processes."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from sites import write_config, write_post



def probe(config_path, command: str, *extra: str) -> subprocess.CompletedProcess:
    """`publisher COMMAND` in a fresh process that says on stderr whether it imported APScheduler."""
    code = ("import sys; from publisher.cli import main\n"
            "try:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n"
            "    print('apscheduler imported:', 'apscheduler' in sys.modules, file=sys.stderr)\n"
            "    raise\n")
    return subprocess.run([sys.executable, "-c", code, "--config", str(config_path), command, *extra],
                          capture_output=True, text=True, timeout=120)


def build(config_path, *extra: str) -> subprocess.CompletedProcess:
    return probe(config_path, "build", *extra)


def test_a_build_checks_the_schedule_once_and_again_when_it_changes(tmp_path):
    # The record lives in a SQLite state database (on PostgreSQL every build checks).
    path = write_config(tmp_path, newsletter={"schedule": "0 9 * * 1"}, state={"database": "state.db"})
    write_post(tmp_path, "a.md", {"title": "A", "pubDate": "2025-01-02"})
    first = build(path)
    assert first.returncode == 0, first.stderr
    assert "apscheduler imported: True" in first.stderr  # checked, and recorded
    second = build(path)
    assert second.returncode == 0, second.stderr
    assert "apscheduler imported: False" in second.stderr  # the record vouches for it
    # A schedule of the right shape that APScheduler refuses: the build says which key.
    path.write_text(path.read_text().replace("0 9 * * 1", "0 25 * * 1"))
    bad = build(path)
    assert bad.returncode == 2, bad.stderr
    assert "newsletter.schedule: expected a 5-field cron string such as '0 9 * * 1'" in bad.stderr
    assert "apscheduler imported: True" in bad.stderr
    path.write_text(path.read_text().replace("0 25 * * 1", "30 8 * * 2"))
    fixed = build(path)
    assert fixed.returncode == 0 and "apscheduler imported: True" in fixed.stderr, fixed.stderr
    again = build(path)
    assert again.returncode == 0 and "apscheduler imported: False" in again.stderr, again.stderr


def test_a_bad_schedule_fails_a_first_build_before_anything_is_written(tmp_path):
    path = write_config(tmp_path, newsletter={"schedule": "61 9 * * 1"})
    write_post(tmp_path, "a.md", {"title": "A", "pubDate": "2025-01-02"})
    result = build(path)
    assert result.returncode == 2, result.stderr
    assert f"{path}: newsletter.schedule: expected a 5-field cron string" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml", "content"]  # no state, no feeds


def test_a_bad_schedule_fails_a_first_build_of_a_big_site_while_its_worker_parses(tmp_path):
    # From content/parallel.py's MIN_ITEMS files (400) a cold build checks the config while a
    # forked worker already parses: the error still comes first, and nothing is written.
    # (420 files, not MIN_ITEMS + n: PUBLISHER_TEST_PARALLEL lowers it in this process only.)
    path = write_config(tmp_path, newsletter={"schedule": "0 9 * * 8"}, state={"database": "state.db"})
    for n in range(420):
        write_post(tmp_path, f"p{n:04d}.md", {"title": f"Post {n}", "pubDate": "2025-01-02"})
    result = build(path, "--verbose")
    assert result.returncode == 2, result.stderr
    assert f"{path}: newsletter.schedule: expected a 5-field cron string" in result.stderr
    assert re.search(r"parallel: worker \d+ started for 420 items", result.stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml", "content"]  # no state, no feeds


def test_the_sender_address_is_checked_once_too_and_a_bad_one_still_stops_the_build(tmp_path):
    # newsletter.from needs the email package's parser (~7 ms of every start): checked once
    # per value like the schedule, never skipped.
    path = write_config(tmp_path, newsletter={"from": "Blog <news@blog.example.org>"},
                        state={"database": "state.db"})
    write_post(tmp_path, "a.md", {"title": "A", "pubDate": "2025-01-02"})
    probe = ("import sys; from publisher.cli import main\n"
             "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n"
             "    print('email.utils imported:', 'email.utils' in sys.modules, file=sys.stderr)\n"
             "    raise\n")

    def build_probed() -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", probe, "--config", str(path), "build"],
                              capture_output=True, text=True, timeout=120)

    first = build_probed()
    assert first.returncode == 0 and "email.utils imported: True" in first.stderr, first.stderr
    second = build_probed()
    assert second.returncode == 0 and "email.utils imported: False" in second.stderr, second.stderr
    path.write_text(path.read_text().replace("Blog <news@blog.example.org>", "Blog <no address here>"))
    bad = build_probed()
    assert bad.returncode == 2, bad.stderr
    assert "newsletter.from: expected an address such as 'Blog <news@blog.example.org>'" in bad.stderr


@pytest.mark.parametrize("first", ["build", "run"])
def test_a_send_trusts_the_record_of_a_checked_schedule_and_checks_a_changed_one(tmp_path, first):
    path = write_config(tmp_path, newsletter={"schedule": "0 9 * * 1"}, state={"database": "state.db"})
    write_post(tmp_path, "a.md", {"title": "A", "pubDate": "2025-01-02"})
    ran = probe(path, first)
    assert ran.returncode == 0, ran.stderr  # checked and recorded
    ok = probe(path, "send", "--dry-run")
    assert ok.returncode == 0, ok.stderr
    assert "apscheduler imported: False" in ok.stderr
    path.write_text(path.read_text().replace("0 9 * * 1", "0 9 * * 9"))
    bad = probe(path, "send")
    assert bad.returncode == 2, bad.stderr
    assert f"{path}: newsletter.schedule: expected a 5-field cron string" in bad.stderr
    assert "apscheduler imported: True" in bad.stderr
