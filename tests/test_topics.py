"""newsletter/topics.py: who gets which posts, through real sends to a real aiosmtpd server on
127.0.0.1, a real state database, and the CLI. The preference page is in test_web_topics.py."""

from __future__ import annotations

import re
import threading
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from reliability_helpers import (message_ids, run_cli, sent_in_ledger, settled_count, spool_count,
                                 start_cli, wait_until)
from sites import make_config, write_post
from smtp_helpers import SmtpServer, SpoolServerProcess

from publisher import pipeline
from publisher import state as state_mod
from publisher.config import load_config
from publisher.errors import ConfigError
from publisher.newsletter import topics
from publisher.state import State

# A Monday after the schedule's 09:00: a run then plans no digest until the next Monday.
MONDAY = datetime(2026, 11, 2, 10, 0, tzinfo=timezone.utc)
TOPICS = ["Python", "Rust", "Go", "Haskell"]


def site(root, server, **newsletter):
    config = make_config(root, smtp={**server.smtp_settings(), "retry_base_delay": 0, "timeout": 10},
                        newsletter={"topics": TOPICS, **newsletter})
    write_post(config.root, "old.md", {"title": "Old", "pubDate": "2024-01-01", "tags": ["python"]})
    pipeline.run_once(config, MONDAY)  # baseline: the old post is never mailed
    return config


def post(config, slug, title, at, tags=(), **front):
    write_post(config.root, f"{slug}.md", {"title": title, "pubDate": at.isoformat(), "tags": list(tags),
                                            **front})


def subscribe(config, **people):
    """people: address local part -> topic slugs ('' = everything). Returns {local: address}."""
    state = State(config.database_url)
    try:
        state.add_subscribers([(f"{who}@example.org", who.title(), tuple(slugs))
                               for who, slugs in people.items()])
    finally:
        state.close()
    return {who: f"{who}@example.org" for who in people}


def subscriber_token(config, address: str) -> str:
    with State(config.database_url) as state:
        return next(s.token for s in state.list_subscribers() if s.email == address)


def titles(message) -> list[str]:
    """The post titles a digest's text part carries in full, in order ('* Title' lines)."""
    text = message.get_body(("plain",)).get_content().replace("\r\n", "\n")
    body = text.split("Already sent to you:")[0]
    return [t.removesuffix(" [featured]") for t in re.findall(r"^\* (.+)$", body, re.M)]


def already_listed(message) -> list[str]:
    text = message.get_body(("plain",)).get_content().replace("\r\n", "\n")
    if "Already sent to you:" not in text:
        return []
    return re.findall(r"^\* (.+)$", text.split("Already sent to you:")[1], re.M)


def by_rcpt(server) -> dict[str, list]:
    out: dict[str, list] = {}
    for m in server.received:
        out.setdefault(m.rcpt, []).append(m.message)
    return out


# --- who gets what ------------------------------------------------------------------------------

def test_three_subscribers_with_different_topics_get_exactly_their_posts(tmp_path):
    with SmtpServer() as server:
        config = site(tmp_path / "site", server)
        who = subscribe(config, ada=["python"], bob=["rust", "go"], cy=[], dee=["haskell"])
        post(config, "py", "Py tips", MONDAY + timedelta(hours=1), ["Python"])
        post(config, "rs", "Rust notes", MONDAY + timedelta(hours=2), ["rust"])
        post(config, "both", "Go and Python", MONDAY + timedelta(hours=3), ["go", "python"])
        post(config, "star", "Featured Rust", MONDAY + timedelta(minutes=30), ["Rust"], featured=True)
        report = pipeline.run_once(config, MONDAY + timedelta(days=7))
        assert report.exit_status == 0, report.lines
        got = by_rcpt(server)

    # Featured first, then newest first; each reader only their topics; dee: nothing at all.
    assert {a: [titles(m) for m in ms] for a, ms in got.items()} == {
        who["ada"]: [["Go and Python", "Py tips"]],
        who["bob"]: [["Featured Rust", "Go and Python", "Rust notes"]],
        who["cy"]: [["Featured Rust", "Go and Python", "Rust notes", "Py tips"]],
    }
    assert got[who["ada"]][0]["Subject"] == "Test Blog: Go and Python and 1 more"
    # Every mail links to its reader's preference page (topics are offered on this site).
    state = State(config.database_url)
    for address, [message] in got.items():
        token = state.subscriber_by_email(address).token
        assert f"https://blog.test.example/newsletter/preferences/{token}" in message.get_body(("plain",)).get_content()
    # One body per distinct post list: three variants for three readers... the digest's own
    # (cy's, every post) and two others; dee has no row, so is owed nothing.
    d = state_mod.deliveries
    with state.read() as conn:
        rows = dict(conn.execute(sa.select(d.c.subscriber_id, d.c.variant).where(d.c.digest_id == 1)).all())
    ids = {a: state.subscriber_by_email(a).id for a in who.values()}
    assert rows == {ids[who["cy"]]: 0, ids[who["ada"]]: 1, ids[who["bob"]]: 2}
    assert len(state.digest_variants(1)) == 2
    assert state.unannounced_post_ids() == []  # dee's posts count as mailed for dee
    state.close()


def test_a_subscriber_with_nothing_new_is_not_owed_those_posts_later(tmp_path):
    with SmtpServer() as server:
        config = site(tmp_path / "site", server)
        who = subscribe(config, ada=["python"], dee=["haskell"])
        post(config, "py", "Py tips", MONDAY + timedelta(hours=1), ["python"])
        pipeline.run_once(config, MONDAY + timedelta(days=7))
        first = by_rcpt(server)
        post(config, "hs", "Monads", MONDAY + timedelta(days=8), ["Haskell"])
        post(config, "py2", "More Python", MONDAY + timedelta(days=8, hours=1), ["python"])
        pipeline.run_once(config, MONDAY + timedelta(days=14))
        second = by_rcpt(server)

    assert {a: [titles(m) for m in ms] for a, ms in first.items()} == {who["ada"]: [["Py tips"]]}
    # dee's next digest holds the Haskell post only: the Python one was never owed to them.
    assert [titles(m) for m in second[who["dee"]]] == [["Monads"]]
    assert [titles(m) for m in second[who["ada"]]] == [["Py tips"], ["More Python"]]


def test_no_topics_configured_means_one_body_for_everyone_as_before(tmp_path):
    with SmtpServer() as server:
        config = make_config(tmp_path / "site", smtp={**server.smtp_settings(), "retry_base_delay": 0})
        write_post(config.root, "old.md", {"title": "Old", "pubDate": "2024-01-01"})
        pipeline.run_once(config, MONDAY)
        # A stored choice is ignored while the site offers no topics.
        who = subscribe(config, ada=["python"], bob=[])
        post(config, "rs", "Rust notes", MONDAY + timedelta(hours=1), ["rust"])
        pipeline.run_once(config, MONDAY + timedelta(days=7))
        got = by_rcpt(server)
    assert {a: [titles(m) for m in ms] for a, ms in got.items()} == {
        who["ada"]: [["Rust notes"]], who["bob"]: [["Rust notes"]]}
    text = got[who["ada"]][0].get_body(("plain",)).get_content()
    # The preference page is linked all the same, for a pause or to unsubscribe; no topics.
    token = subscriber_token(config, who["ada"])
    assert f"Pause your emails or unsubscribe: {config.web_url}/preferences/{token}" in text
    assert "topics" not in text.lower()
    state = State(config.database_url)
    assert state.digest_variants(1) == {}
    state.close()


def test_a_paused_subscriber_gets_nothing_and_is_not_flooded_afterwards(tmp_path):
    with SmtpServer() as server:
        config = site(tmp_path / "site", server)
        who = subscribe(config, ada=[], bob=[])
        state = State(config.database_url)
        token = state.subscriber_by_email(who["bob"]).token
        state.set_preferences(token, paused_until=MONDAY + timedelta(days=10), now=MONDAY)
        state.close()
        post(config, "one", "During the pause", MONDAY + timedelta(hours=1), ["go"])
        pipeline.run_once(config, MONDAY + timedelta(days=7))
        during = by_rcpt(server)
        post(config, "two", "After the pause", MONDAY + timedelta(days=11), ["go"])
        pipeline.run_once(config, MONDAY + timedelta(days=14))
        after = by_rcpt(server)
    assert list(during) == [who["ada"]]
    assert [titles(m) for m in after[who["bob"]]] == [["After the pause"]]


# --- the ledger stays exact -------------------------------------------------------------------

def test_a_topic_change_during_a_send_applies_from_the_next_digest(tmp_path):
    with SmtpServer() as server:
        config = site(tmp_path / "site", server)
        who = subscribe(config, ada=["python"], bob=["rust"])
        post(config, "py", "Py tips", MONDAY + timedelta(hours=1), ["python"])
        post(config, "rs", "Rust notes", MONDAY + timedelta(hours=2), ["rust"])
        stop = threading.Event()
        stop.set()  # planned and recorded, then stopped before the first message
        report = pipeline.send_now(config, MONDAY + timedelta(days=1), stop=stop)
        assert any("stopped" in line for line in report.lines), report.lines
        assert server.received == []
        state = State(config.database_url)
        for address in who.values():  # both switch topics while the digest is being sent
            state.set_preferences(state.subscriber_by_email(address).token,
                                  topics=["go"], now=MONDAY + timedelta(days=1))
        state.close()
        pipeline.run_once(config, MONDAY + timedelta(days=1, minutes=5))  # resumes the send
        planned = by_rcpt(server)
        post(config, "go", "Go news", MONDAY + timedelta(days=2), ["go"])
        post(config, "py2", "More Python", MONDAY + timedelta(days=2), ["python"])
        pipeline.run_once(config, MONDAY + timedelta(days=7))
        later = by_rcpt(server)

    assert {a: [titles(m) for m in ms] for a, ms in planned.items()} == {
        who["ada"]: [["Py tips"]], who["bob"]: [["Rust notes"]]}
    assert {a: [titles(m) for m in ms][1:] for a, ms in later.items()} == {
        who["ada"]: [["Go news"]], who["bob"]: [["Go news"]]}


def test_crash_and_resume_with_topics_loses_nothing(tmp_path):
    """`publisher send` to 240 subscribers over three topic sets, killed at 6 points: every
    subscriber gets their own body once (plus at most the messages in flight at a kill)."""
    sets = {"py": ["python"], "rs": ["rust"], "all": []}
    expected = {"py": ["Py tips"], "rs": ["Rust notes"], "all": ["Rust notes", "Py tips"]}
    people = {f"r{i:04d}": (list(sets)[i % 3]) for i in range(240)}
    spool = tmp_path / "spool"
    connections = 2
    with SpoolServerProcess(spool, delay=0.005) as server:
        config = make_config(tmp_path / "site", newsletter={"topics": TOPICS}, smtp={
            **server.smtp_settings(), "connections": connections, "retry_base_delay": 0, "timeout": 10})
        write_post(config.root, "old.md", {"title": "Old", "pubDate": "2024-01-01"})
        pipeline.run_once(config, MONDAY)
        state = State(config.database_url)
        state.add_subscribers([(f"{who}@example.org", "", sets[kind]) for who, kind in people.items()])
        state.close()
        post(config, "py", "Py tips", MONDAY + timedelta(hours=1), ["python"])
        post(config, "rs", "Rust notes", MONDAY + timedelta(hours=2), ["rust"])

        unrecorded, received_before, sent_before = [], 0, 0
        for threshold in (10, 50, 90, 130, 170, 210):
            proc = start_cli(config.path, "send", "--quiet")
            wait_until(lambda: spool_count(spool) >= threshold or proc.poll() is not None,
                       timeout=60, what=f"{threshold} messages", poll=0.003)
            assert proc.poll() is None, proc.communicate()
            proc.kill()
            proc.communicate()
            received = settled_count(spool) - received_before
            recorded = sent_in_ledger(config) - sent_before
            received_before, sent_before = received_before + received, sent_before + recorded
            assert 0 <= received - recorded <= connections
            unrecorded.append(received - recorded)
        final = run_cli(config.path, "run")
        assert final.returncode == 0, final.stderr
        copies = Counter(m.rcpt for m in server.received)
        bodies = {m.rcpt: titles(m.message) for m in server.received}
        ids = message_ids(server.received)

    assert set(copies) == {f"{who}@example.org" for who in people}  # 0 lost
    assert sum(n - 1 for n in copies.values()) == sum(unrecorded)  # only in-flight duplicates
    assert all(len(v) == 1 for v in ids.values())
    assert {kind: bodies[f"{who}@example.org"] for who, kind in people.items()} == expected
    assert all(bodies[f"{who}@example.org"] == expected[kind] for who, kind in people.items())
    state = State(config.database_url)
    assert state.open_digests() == [] and state.delivery_counts(1) == {"sent": 240}
    state.close()


# --- featured alerts and the digest after them ----------------------------------------------------

def test_an_alerted_post_is_not_repeated_in_the_next_digest(tmp_path):
    with SmtpServer() as server:
        config = site(tmp_path / "site", server, featured_alert=True)
        who = subscribe(config, ada=["rust"], bob=["python"], cy=["rust", "go"])
        post(config, "star", "Big Rust news", MONDAY + timedelta(minutes=30), ["rust"], featured=True)
        pipeline.run_once(config, MONDAY + timedelta(hours=1))  # the alert, no digest yet
        alerts = by_rcpt(server)
        late = subscribe(config, dan=[])  # joins after the alert
        post(config, "go", "Go news", MONDAY + timedelta(days=1, hours=1), ["go"])
        post(config, "py", "Py tips", MONDAY + timedelta(days=1), ["python"])
        pipeline.run_once(config, MONDAY + timedelta(days=7))
        after = by_rcpt(server)

    # The alert follows topics: bob (python only) does not get it.
    assert {a: [m["Subject"] for m in ms] for a, ms in alerts.items()} == {
        who["ada"]: ["Big Rust news"], who["cy"]: ["Big Rust news"]}
    digests = {a: ms[len(alerts.get(a, [])):] for a, ms in after.items()}
    # ada had only the featured post in her topics, and the alert brought it: no digest.
    assert digests[who["ada"]] == []
    assert [titles(m) for m in digests[who["cy"]]] == [["Go news"]]
    assert [already_listed(m) for m in digests[who["cy"]]] == [["Big Rust news"]]
    assert [titles(m) for m in digests[who["bob"]]] == [["Py tips"]]
    # dan never got the alert: the featured post is in his digest, in full and first.
    assert [titles(m) for m in digests[late["dan"]]] == [["Big Rust news", "Go news", "Py tips"]]
    assert [already_listed(m) for m in digests[late["dan"]]] == [[]]
    html = digests[who["cy"]][0].get_body(("html",)).get_content()
    assert "Already sent to you" in html and "https://blog.test.example/blog/star/" in html


# --- config and CLI -------------------------------------------------------------------------------

@pytest.mark.parametrize("value, message", [
    ("some", "newsletter.topics: expected a list of tag or category names, or the word all, got 'some'"),
    (["Python", "python"], "newsletter.topics: expected each topic once, but 'Python' and 'python' are the same topic"),
    ([1], "newsletter.topics: expected a list of tag or category names, or the word all"),
])
def test_a_bad_topics_key_is_named(tmp_path, value, message):
    with pytest.raises(ConfigError) as e:
        make_config(tmp_path, newsletter={"topics": value})
    assert message in str(e.value)


def test_topics_all_offers_the_tags_with_enough_posts(tmp_path):
    config = make_config(tmp_path, newsletter={"topics": "all", "topics_min_posts": 2})
    for i, tags in enumerate([["Python", "go"], ["python"], ["Rust"], ["go"]]):
        write_post(config.root, f"p{i}.md", {"title": f"P{i}", "pubDate": "2024-01-0%d" % (i + 1), "tags": tags})
    pipeline.build(config, MONDAY)
    state = State(config.database_url)
    assert topics.offered(config, state) == [topics.Topic("go", "go"), topics.Topic("python", "Python")]
    state.close()


def test_cli_import_takes_a_topics_column_and_list_shows_it(tmp_path):
    config = make_config(tmp_path, newsletter={"topics": TOPICS})
    csv_path = tmp_path / "people.csv"
    csv_path.write_text("email,name,topics\nada@example.org,Ada,Python;rust\nbob@example.org,Bob,\n"
                        "cy@example.org,Cy,Python;Cobol\n", encoding="utf-8")
    result = run_cli(config.path, "subscribers", "import", str(csv_path))
    assert result.returncode == 1
    assert (f"{csv_path}: line 4: cy@example.org: unknown topic 'Cobol'; the topics offered are: "
            "Python, Rust, Go, Haskell") in result.stderr
    listed = run_cli(config.path, "subscribers", "list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines() == ["ada@example.org\tactive\tAda\tPython;Rust",
                                          "bob@example.org\tactive\tBob\teverything"]


def test_cli_preview_with_topics_shows_that_set_only(tmp_path):
    config = make_config(tmp_path, newsletter={"topics": TOPICS})
    write_post(config.root, "old.md", {"title": "Old", "pubDate": "2024-01-01"})
    pipeline.run_once(config, MONDAY)
    post(config, "py", "Py tips", MONDAY + timedelta(hours=1), ["python"])
    post(config, "rs", "Rust notes", MONDAY + timedelta(hours=2), ["rust"])
    out = tmp_path / "pv"
    result = run_cli(config.path, "preview", "--topics", "Python,go", "--out", str(out))
    assert result.returncode == 0, result.stderr
    text = (out / "digest.txt").read_text(encoding="utf-8")
    assert "* Py tips" in text and "Rust notes" not in text
    bad = run_cli(config.path, "preview", "--topics", "Cobol")
    assert bad.returncode == 2
    assert "preview --topics: unknown topic 'Cobol'; the topics offered are: Python, Rust, Go, Haskell" in bad.stderr


def test_a_dry_run_writes_each_subscribers_own_digest_and_records_nothing(tmp_path):
    import email
    import email.policy

    config = make_config(tmp_path / "site", newsletter={"topics": TOPICS})
    write_post(config.root, "old.md", {"title": "Old", "pubDate": "2024-01-01"})
    pipeline.run_once(config, MONDAY)
    who = subscribe(config, ada=["python"], bob=["rust"], dee=["haskell"])
    post(config, "py", "Py tips", MONDAY + timedelta(hours=1), ["python"])
    post(config, "rs", "Rust notes", MONDAY + timedelta(hours=2), ["rust"])
    out = tmp_path / "outbox"
    result = run_cli(config.path, "send", "--dry-run", "--out", str(out))
    assert result.returncode == 0, result.stderr
    files = sorted(out.iterdir())
    mails = {email.message_from_bytes(f.read_bytes(), policy=email.policy.default)["To"]: f for f in files}
    assert len(files) == 2  # dee: nothing new in Haskell, so no mail
    got = {addr: titles(email.message_from_bytes(f.read_bytes(), policy=email.policy.default))
           for addr, f in mails.items()}
    assert got == {f"Ada <{who['ada']}>": ["Py tips"], f"Bob <{who['bob']}>": ["Rust notes"]}
    state = State(config.database_url)
    assert state.get_digest(1) is None and state.count_status(1, "pending") == 0
    state.close()
