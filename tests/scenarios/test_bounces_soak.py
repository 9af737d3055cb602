"""A soak of bounce handling: 1,000 subscribers on a real SMTP server, 5% hard bounces and 0.5%
complaints coming back asynchronously (a thread drops the reports into the bounce Maildir, as
the local MTA would, while digests go out and `publisher bounces` reads) over three digests.
The third digest reaches none of them, and everyone else."""

from __future__ import annotations

import mailbox
import random
import threading
import time
from collections import Counter
from datetime import datetime, timedelta, timezone

from bounce_helpers import sample
from click.testing import CliRunner

from publisher import pipeline
from publisher.cli import main
from publisher.state import State

N = 1000


def test_three_digests_with_bounces_and_complaints_arriving_meanwhile(site, server, tmp_path):
    rng = random.Random(17)
    people = [f"reader{i:04d}@example.net" for i in range(N)]
    shuffled = people[:]
    rng.shuffle(shuffled)
    hard_1, hard_2 = shuffled[:30], shuffled[30:50]  # 5%: bounced digest 1, or only digest 2
    complain_1, complain_2 = shuffled[50:53], shuffled[53:55]  # 0.5%
    soft = shuffled[55:75]  # one soft bounce each (digest 1), ten of them again (digest 2): under the limit
    suppressed = set(hard_1 + hard_2 + complain_1 + complain_2)

    site.write_config(smtp={"host": "127.0.0.1", "port": server.port, "retry_base_delay": 0},
                      newsletter={"schedule": "* * * * *", "bounce_address": "bounces+{token}@blog.test.example",
                                  "bounce_mailbox": "maildir:bounces"})
    box_path = tmp_path / "site" / "bounces"
    mailbox.Maildir(box_path, create=True).close()
    site.post("old.md", "title: Old\npubDate: 2024-01-01")
    config = site.config()
    start = datetime.now(timezone.utc) - timedelta(hours=3)
    pipeline.run_once(config, start)  # the baseline
    state = State(config.database_url)
    state.add_subscribers([(a, "") for a in people])
    state.close()

    def digest(n: int) -> dict[str, str]:
        """Send digest n now; {recipient: envelope sender} of its copies."""
        before = len(server.received)
        site.post(f"post{n}.md", f"title: Post {n}\npubDate: {(start + timedelta(minutes=n)).isoformat()}")
        report = pipeline.send_now(config, start + timedelta(hours=n - 1, minutes=30))
        assert not report.problems
        return {m.rcpt_tos[0]: m.mail_from for m in server.received[before:]}

    def reports(items: list[tuple[str, str, str]], done: threading.Event) -> threading.Thread:
        """Deliver (fixture, recipient, envelope sender) reports one by one, at random moments."""
        def run():
            box = mailbox.Maildir(box_path, create=False)
            for i, (name, rcpt, to) in enumerate(items):
                box.add(sample(name, rcpt=rcpt, to=to, unique=f"{rcpt}.{to}.{i}"))
                time.sleep(rng.random() * 0.01)
            done.set()

        thread = threading.Thread(target=run)
        thread.start()
        return thread

    def read_bounces():
        result = CliRunner().invoke(main, ["--config", str(config.path), "bounces"])
        assert result.exit_code == 0, result.output
        assert "left in the mailbox" not in result.stdout  # every report was recognised
        return result

    first = digest(1)
    assert len(first) == N
    wave_1 = ([("postfix-hard.eml", a, first[a]) for a in hard_1[:15]]
              + [("exim.eml", a, first[a]) for a in hard_1[15:]]
              + [("arf-abuse.eml", a, first[a]) for a in complain_1]
              + [("postfix-soft.eml", a, first[a]) for a in soft]
              + [("autoreply.eml", a, first[a]) for a in soft[:5]])
    rng.shuffle(wave_1)
    done_1 = threading.Event()
    thread_1 = reports(wave_1, done_1)
    while not done_1.is_set():  # the bounce reader runs while reports keep arriving
        read_bounces()
    second = digest(2)  # some of wave 1 may still be unread: they are mailed digest 2 too
    thread_1.join()
    assert set(second) >= set(people) - set(hard_1) - set(complain_1)
    wave_2 = ([("qmail.eml", a, second[a]) for a in hard_2]
              + [("arf-abuse.eml", a, second[a]) for a in complain_2]
              + [("postfix-soft.eml", a, second[a]) for a in soft[:10]])
    rng.shuffle(wave_2)
    done_2 = threading.Event()
    reports(wave_2, done_2).join()

    before = len(server.received)
    site.post("post3.md", f"title: Post 3\npubDate: {(start + timedelta(minutes=3)).isoformat()}")
    report = pipeline.run_once(config)  # bounces first, then the due digest
    assert report.lines[0].startswith("bounces: "), report.lines
    third = Counter(m.rcpt_tos[0] for m in server.received[before:])
    assert set(third) == set(people) - suppressed
    assert set(third.values()) == {1}

    state = State(config.database_url)
    try:
        status = {s.email: s.status for s in state.list_subscribers()}
    finally:
        state.close()
    assert Counter(status.values()) == Counter({"active": N - 55, "bounced": 50, "unsubscribed": 5})
    assert {a for a, s in status.items() if s == "bounced"} == set(hard_1 + hard_2)
    assert {a for a, s in status.items() if s == "unsubscribed"} == set(complain_1 + complain_2)
    assert len(mailbox.Maildir(box_path, create=False)) == 0  # everything was handled and moved

    rates = CliRunner().invoke(main, ["--config", str(config.path), "report", "--last", "3"])
    lines = rates.stdout.splitlines()
    assert lines[0].startswith("#3 ") and f"{N - 55} sent, 0 bounced (0.00%), 0 complaints (0.00%)" in lines[0]
    assert "1000 sent, 50 bounced (5.00%), 3 complaints (0.30%)" in lines[2]  # 30 hard + 20 soft
    assert "digest #1: complaint rate 0.30% is over 0.1%" in rates.stderr
