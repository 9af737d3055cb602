"""run_once / send_now end to end: real files, a real SQLite state, a real SMTP server on
127.0.0.1, and an injected clock (no sleeping)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from smtp_helpers import SmtpServer

from publisher import pipeline
from publisher.state import State

MON = datetime(2025, 1, 6, 9, 0, tzinfo=timezone.utc)  # schedule "0 9 * * 1" fires here
SUN = MON - timedelta(days=1)


@pytest.fixture
def newsletter(site, server):
    """A site with three subscribers, pointed at the test SMTP server, fast retries."""

    def configure(**newsletter):
        site.write_config(smtp={**server.smtp_settings(), "retry_base_delay": 0},
                          newsletter=newsletter)
        return site.config()

    site.configure = configure
    config = configure()
    state = State(config.database_url)
    state.add_subscribers([("ann@example.org", "Ann"), ("bob@example.org", "Bob"), ("cy@example.org", "")])
    state.close()
    site.post("old.md", "title: Old post\npubDate: 2024-12-01")
    return site


def received_by(server) -> dict[str, int]:
    counts: dict[str, int] = {}
    for m in server.received:
        counts[m.rcpt] = counts.get(m.rcpt, 0) + 1
    return counts


def state_of(site) -> State:
    return State(site.config().database_url)


def test_first_run_is_a_baseline_and_mails_nobody(newsletter, server):
    report = pipeline.run_once(newsletter.config(), SUN)
    assert server.received == []
    assert any("first run: 1 existing post marked as already announced" in line for line in report.lines)
    report = pipeline.run_once(newsletter.config(), MON + timedelta(hours=1))
    assert server.received == [] and report.lines[-1] == (
        "nothing new to mail (next digest due Mon 2025-01-13 09:00 UTC, if a post is published "
        "by then)")


def test_schedule_not_fired_then_fired_sends_one_digest(newsletter, server):
    config = newsletter.config()
    pipeline.run_once(config, SUN)
    newsletter.post("new.md", "title: Fresh & <new>\npubDate: 2025-01-05T12:00:00Z")
    report = pipeline.run_once(config, SUN + timedelta(hours=12))  # Sunday evening: not yet
    assert server.received == []
    assert report.lines[-1] == ("1 post waiting for the next digest, due Mon 2025-01-06 09:00 UTC "
                                "(0 9 * * 1)")
    report = pipeline.run_once(config, MON + timedelta(minutes=5))
    assert received_by(server) == {"ann@example.org": 1, "bob@example.org": 1, "cy@example.org": 1}
    assert report.exit_status == 0
    message = server.received[0].message
    assert message["Subject"] == "Test Blog: Fresh & <new>"
    # The next run, even after more firings, has nothing new to send.
    pipeline.run_once(config, MON + timedelta(days=14))
    assert len(server.received) == 3


def test_many_missed_firings_send_once(newsletter, server):
    config = newsletter.config()
    pipeline.run_once(config, SUN)
    newsletter.post("new.md", "title: New\npubDate: 2025-01-05T12:00:00Z")
    pipeline.run_once(config, MON + timedelta(days=21, hours=3))  # off for three Mondays
    assert len(server.received) == 3
    pipeline.run_once(config, MON + timedelta(days=21, hours=4))
    assert len(server.received) == 3


def test_a_firing_with_nothing_new_is_used_up(newsletter, server):
    config = newsletter.config()
    pipeline.run_once(config, SUN)
    pipeline.run_once(config, MON + timedelta(minutes=1))  # fired, nothing new
    newsletter.post("tue.md", "title: Tuesday\npubDate: 2025-01-07T10:00:00Z")
    pipeline.run_once(config, MON + timedelta(days=1, hours=2))
    assert server.received == []  # waits for next Monday
    pipeline.run_once(config, MON + timedelta(days=7, minutes=1))
    assert len(server.received) == 3


def test_featured_alert_once_and_when_featured_later(newsletter, server):
    config = newsletter.configure(featured_alert=True)
    plain = newsletter.post("plain.md", "title: Plain\npubDate: 2025-01-05")
    pipeline.run_once(config, SUN + timedelta(hours=1))  # baseline (Plain is back catalogue)
    newsletter.post("star.md", "title: Star post\npubDate: 2025-01-05T13:00:00Z\nfeatured: true")
    pipeline.run_once(config, SUN + timedelta(hours=14))  # Sunday: alert goes out, digest does not
    assert [m.message["Subject"] for m in server.received] == ["Star post"] * 3
    pipeline.run_once(config, SUN + timedelta(hours=15))
    assert len(server.received) == 3  # once
    plain.write_text(plain.read_text().replace("title: Plain", "title: Plain\nfeatured: true"))
    pipeline.run_once(config, SUN + timedelta(hours=16))
    assert [m.message["Subject"] for m in server.received[3:]] == ["Plain"] * 3
    pipeline.run_once(config, SUN + timedelta(hours=17))
    assert len(server.received) == 6


def test_future_post_is_mailed_after_its_date(newsletter, server):
    config = newsletter.config()
    newsletter.post("later.md", "title: Scheduled\npubDate: 2025-01-13T08:00:00Z")
    pipeline.run_once(config, SUN)  # baseline: the future post is not part of it
    pipeline.run_once(config, MON + timedelta(minutes=1))
    assert server.received == []
    pipeline.run_once(config, MON + timedelta(days=7, minutes=1))
    assert received_by(server) == {"ann@example.org": 1, "bob@example.org": 1, "cy@example.org": 1}
    assert server.received[0].message["Subject"] == "Test Blog: Scheduled"


def test_featured_posts_lead_the_digest(newsletter, server):
    config = newsletter.config()
    pipeline.run_once(config, SUN)
    newsletter.post("a.md", "title: Newest plain\npubDate: 2025-01-05T20:00:00Z")
    newsletter.post("b.md", "title: Older featured\npubDate: 2025-01-05T10:00:00Z\nfeatured: true")
    pipeline.send_now(config, SUN + timedelta(hours=23))
    text = server.received[0].message.get_body(("plain",)).get_content()
    assert text.index("Older featured") < text.index("Newest plain")


def test_the_first_send_says_it_set_the_starting_point(newsletter, server):
    newsletter.post("old.md", "title: Old\npubDate: 2024-12-01T12:00:00Z")
    config = newsletter.config()
    first = pipeline.send_now(config, SUN)
    assert server.received == []
    assert first.lines == [
        "first send on this site: nothing mailed; its 1 published post are the starting point, marked as "
        "already announced (subscribers never get the back catalogue); the next digest holds the posts "
        "published from now on"]
    newsletter.post("n.md", "title: N\npubDate: 2025-01-05T12:00:00Z")
    assert pipeline.send_now(config, SUN + timedelta(hours=13)).lines[-1].startswith("digest #1 'Test Blog: N'")


def test_send_now_ignores_schedule_and_records_everything(newsletter, server):
    config = newsletter.config()
    pipeline.run_once(config, SUN)
    newsletter.post("n.md", "title: N\npubDate: 2025-01-05T12:00:00Z")
    report = pipeline.send_now(config, SUN + timedelta(hours=13))
    assert len(server.received) == 3
    assert report.lines[-1].startswith("digest #1 'Test Blog: N': 3 sent, 0 retried, 0 bounced")
    again = pipeline.send_now(config, SUN + timedelta(hours=14))
    assert len(server.received) == 3
    assert again.lines == ["nothing new to mail: every published post has been sent"]
    # and the Monday firing after a manual send has nothing to add
    pipeline.run_once(config, MON + timedelta(minutes=1))
    assert len(server.received) == 3


def test_retry_then_success_bounce_and_drop_mid_data(newsletter, server):
    config = newsletter.config()
    pipeline.run_once(config, SUN)
    newsletter.post("n.md", "title: N\npubDate: 2025-01-05T12:00:00Z")
    server.add_fault("rcpt", "451 4.3.0 Try later", recipient="ann@example.org", times=1)
    server.add_fault("rcpt", "550 5.1.1 No such user", recipient="bob@example.org")
    server.add_fault("data", drop=True, recipient="cy@example.org", times=1)
    report = pipeline.send_now(config, SUN + timedelta(hours=13))
    assert received_by(server) == {"ann@example.org": 1, "cy@example.org": 1}
    assert "2 sent, 2 retried, 1 bounced" in report.lines[-1]
    assert report.exit_status == 0
    state = state_of(newsletter)
    assert [s.email for s in state.list_subscribers("bounced")] == ["bob@example.org"]
    assert state.delivery_counts(1) == {"sent": 2, "bounced": 1}
    # A bounced subscriber is never tried again.
    newsletter.post("m.md", "title: M\npubDate: 2025-01-05T14:00:00Z")
    pipeline.send_now(config, SUN + timedelta(hours=15))
    assert server.attempts("bob@example.org") == 1


def test_deferred_mail_is_owed_and_sent_by_the_next_run(newsletter, server):
    config = newsletter.config()
    pipeline.run_once(config, SUN)
    newsletter.post("n.md", "title: N\npubDate: 2025-01-05T12:00:00Z")
    server.add_fault("rcpt", "451 4.3.0 Greylisted", recipient="cy@example.org", times=5)
    report = pipeline.send_now(config, SUN + timedelta(hours=13))
    assert report.exit_status == 1 and "1 still pending" in report.lines[-1]
    assert received_by(server) == {"ann@example.org": 1, "bob@example.org": 1}
    newsletter.post("m.md", "title: M\npubDate: 2025-01-05T14:00:00Z")
    report = pipeline.run_once(config, SUN + timedelta(hours=14))  # finishes the open digest first
    assert received_by(server) == {"ann@example.org": 1, "bob@example.org": 1, "cy@example.org": 1}
    assert server.received[-1].message["Subject"] == "Test Blog: N"
    assert report.exit_status == 0


def test_unsubscribed_during_a_send_gets_nothing_more(newsletter, server):
    config = newsletter.config()
    pipeline.run_once(config, SUN)
    newsletter.post("n.md", "title: N\npubDate: 2025-01-05T12:00:00Z")
    server.add_fault("rcpt", "451 4.3.0 later", recipient="cy@example.org", times=5)
    pipeline.send_now(config, SUN + timedelta(hours=13))
    state = state_of(newsletter)
    state.set_subscriber_status(state.subscriber_by_email("cy@example.org").id, "unsubscribed")
    report = pipeline.run_once(config, SUN + timedelta(hours=14))
    assert "cy@example.org" not in received_by(server)
    assert state.open_digests() == [] and report.exit_status == 0


def test_no_subscribers_still_records_the_digest(site, server):
    site.write_config(smtp=server.smtp_settings())
    site.post("a.md", "title: A\npubDate: 2024-01-01")
    config = site.config()
    pipeline.run_once(config, SUN)
    site.post("b.md", "title: B\npubDate: 2025-01-05")
    report = pipeline.send_now(config, SUN + timedelta(hours=1))
    assert "0 sent" in report.lines[-1]
    assert State(config.database_url).unannounced_post_ids() == []


def test_build_writes_feeds_and_reuses_rendered_html(newsletter):
    config = newsletter.config()
    first = pipeline.build(config, SUN)
    assert "1 rendered, 0 from cache" in first.lines[0]
    second = pipeline.build(config, SUN)
    assert "0 files written" in second.lines[0] and "0 rendered, 1 from cache" in second.lines[0]
    assert (config.output_dir / "rss.xml").exists()


def test_dry_run_and_preview_record_nothing(newsletter, server, tmp_path):
    config = newsletter.config()
    report = pipeline.dry_run(config, tmp_path / "out", SUN)
    files = sorted((tmp_path / "out").glob("*.eml"))
    assert len(files) == 3 and "3 messages written" in report.lines[-1]
    assert b"List-Unsubscribe:" in files[0].read_bytes()
    report, paths = pipeline.preview(config, tmp_path / "preview", SUN)
    assert [p.name for p in paths] == ["digest.html", "digest.txt"]
    assert "Old post" in paths[1].read_text()
    assert server.received == []
    assert State(config.database_url).get_meta("baseline_at") is None


def test_a_preview_with_nothing_new_says_it_is_a_sample(newsletter, server, tmp_path):
    config = newsletter.config()
    pipeline.run_once(config, SUN)  # the starting point: nothing is new after it
    report, paths = pipeline.preview(config, tmp_path / "preview", SUN + timedelta(hours=1))
    note = ("Sample: nothing new is waiting to be mailed; the 1 newest post stands in to show what a "
            "digest looks like. No subscriber gets this.")
    html, text = (path.read_text(encoding="utf-8") for path in paths)
    assert note in html and text.startswith(f"[{note}]\n\n")
    assert "There is a new post" in text  # the digest itself, as a subscriber would get it
    newsletter.post("n.md", "title: N\npubDate: 2025-01-05T12:00:00Z")
    _report, paths = pipeline.preview(config, tmp_path / "preview", SUN + timedelta(hours=13))
    assert "Sample:" not in paths[0].read_text(encoding="utf-8")


def _feed_files(site) -> dict[str, tuple[bytes, int]]:
    out = site.root / "public"
    return {str(p.relative_to(out)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(out.rglob("*")) if p.is_file()}


def test_one_new_post_rewrites_exactly_the_feeds_it_is_in(site):
    """A new post renders that post only, and rewrites the site's feeds and its tags' feeds;
    every other feed file keeps its bytes and is not even rewritten (same mtime)."""
    site.write_config(feeds={"output_dir": "public", "limit": 3})
    tags = ["alpha", "beta", "gamma", "delta"]
    for i in range(12):
        site.post(f"p{i:02d}.md", f"title: P{i}\npubDate: 2024-01-{i + 1:02d}\n"
                                  f"tags: [{tags[i % 4]}, {tags[(i + 1) % 4]}]")
    report = pipeline.build(site.config(), MON)
    before = _feed_files(site)
    assert len(before) == 15 and "feeds: 12 posts, 15 files written" in report.lines[0]
    # Newer than everything: the site's feeds, and alpha's and gamma's, must change.
    site.post("new.md", "title: New\npubDate: 2024-02-01\ntags: [alpha, gamma]", "Fresh **text**.\n")
    report = pipeline.build(site.config(), MON)
    after = _feed_files(site)
    changed = {rel for rel in after if after[rel] != before[rel]}
    expected = {f"{folder}{name}" for folder in ("", "tags/alpha/", "tags/gamma/")
                for name in ("rss.xml", "atom.xml", "feed.json")}
    assert changed == expected
    assert all(b"Fresh" in after[rel][0] for rel in expected)
    # from cache: p11 and p10 (site), p11 and p8 (alpha), p10 and p9 (gamma)
    assert report.lines[0] == "feeds: 13 posts, 9 files written, 6 unchanged (1 rendered, 4 from cache)"
    # An old post that reaches no feed (limit 3) rewrites nothing, and renders nothing.
    site.post("older.md", "title: Older\npubDate: 2023-01-01\ntags: [beta]")
    report = pipeline.build(site.config(), MON)
    assert _feed_files(site) == after
    assert report.lines[0] == "feeds: 14 posts, 0 files written, 15 unchanged (0 rendered, 0 from cache)"


def test_a_feed_file_touched_by_hand_is_rewritten(site):
    site.post("a.md", "title: A\npubDate: 2024-01-01\ntags: [x]")
    pipeline.build(site.config(), MON)
    good = (site.root / "public/tags/x/rss.xml").read_bytes()
    (site.root / "public/tags/x/rss.xml").write_bytes(b"edited")
    site.post("b.md", "title: B\npubDate: 2024-01-02\ntags: [y]")
    pipeline.build(site.config(), MON)
    assert (site.root / "public/tags/x/rss.xml").read_bytes() == good
    assert (site.root / "public/tags/y/rss.xml").is_file()


def test_posts_no_feed_carries_still_warn_and_an_edit_in_a_feed_still_changes_it(site):
    """A cold build renders only the posts its feeds carry (limit 2) and keeps no post's
    body: a broken post older than every feed is still named, each build; an edit to a post
    a feed carries changes that feed; an edit to a post no feed carries rewrites nothing."""
    site.write_config(feeds={"output_dir": "public", "limit": 2})
    for i in range(6):
        site.post(f"p{i}.md", f"title: P{i}\npubDate: 2024-01-0{i + 1}\ntags: [t]", f"Body {i}.\n")
    site.post("old-broken.md", "", raw=b"---\ntitle: [unclosed\npubDate: 2020-01-01\n---\nx")
    report = pipeline.build(site.config(), MON)
    assert [line.split(":")[0] for line in report.problems] == ["content/old-broken.md"]
    assert "(2 rendered, 0 from cache)" in report.lines[0]
    before = _feed_files(site)
    assert b"Body 5." in before["rss.xml"][0] and b"Body 0." not in before["rss.xml"][0]
    site.post("p0.md", "title: P0\npubDate: 2024-01-01\ntags: [t]", "Body 0, edited.\n")
    report = pipeline.build(site.config(), MON)
    assert [line.split(":")[0] for line in report.problems] == ["content/old-broken.md"]
    assert _feed_files(site) == before
    site.post("p5.md", "title: P5\npubDate: 2024-01-06\ntags: [t]", "Body 5, edited.\n")
    pipeline.build(site.config(), MON)
    after = _feed_files(site)
    assert {rel for rel in after if after[rel] != before[rel]} == {
        f"{folder}{name}" for folder in ("", "tags/t/") for name in ("rss.xml", "atom.xml", "feed.json")}
    assert b"Body 5, edited." in after["rss.xml"][0]


def _fresh_feeds(config, now) -> dict[str, bytes]:
    """Every feed file as a build from nothing writes it: no state, no cache, no selection."""
    from publisher.content import load_posts, render_html
    from publisher.content.links import SiteIndex
    from publisher.feeds import render_feeds

    loaded = load_posts(config, now)
    site_index = SiteIndex(config, loaded.posts)
    return render_feeds(loaded.posts, config, lambda post: render_html(post, config, site_index))


def test_one_new_post_changes_every_feed_it_is_in_and_no_other(site):
    """Issue 19: after one new post, the incremental build's files are byte for byte what a
    build from nothing writes, and exactly the files whose bytes that changes are rewritten:
    the site's feeds, its tags' and its category's feeds, and the archive pages that gain a
    post; the other tags, categories and languages keep their bytes and mtimes."""
    site.write_config(feeds={"output_dir": "public", "limit": 3, "archive": True,
                             "archive_size": 2, "archive_tags": True})
    tags, categories = ["alpha", "beta", "gamma"], ["news", "notes"]
    for i in range(10):
        site.post(f"p{i:02d}.md", f"title: P{i}\npubDate: 2024-01-{i + 1:02d}\n"
                                  f"tags: [{tags[i % 3]}]\ncategories: [{categories[i % 2]}]")
    for i in range(4):
        site.post(f"fr{i}.md", f"title: F{i}\npubDate: 2024-01-{i + 1:02d}\nlang: fr\ntags: [alpha]")
    pipeline.build(site.config(), MON)
    before = _feed_files(site)
    site.post("new.md", "title: New\npubDate: 2024-02-01\ntags: [alpha]\ncategories: [news]",
              "Fresh **text**.\n")
    pipeline.build(site.config(), MON)
    after = _feed_files(site)
    fresh = _fresh_feeds(site.config(), MON)
    assert {rel: data for rel, (data, _mtime) in after.items()} == fresh
    should_change = {rel for rel in fresh if before.get(rel, (None,))[0] != fresh[rel]}
    rewritten = {rel for rel in after if after[rel][1] != before.get(rel, (None, None))[1]}
    assert rewritten == should_change
    folders = {rel.rsplit("/", 1)[0] + "/" if "/" in rel else "" for rel in should_change}
    # p07 leaves the home feed for archive page 4 (its newest); p03 leaves alpha's feed for its
    # page 1 (archive_tags); news gains the post (no archive pages for categories).
    assert folders == {"", "archive/4/", "tags/alpha/", "tags/alpha/archive/1/", "categories/news/"}
    untouched = {rel for rel in after if rel.startswith(("fr/", "tags/beta/", "tags/gamma/",
                                                         "categories/notes/", "archive/1/"))}
    assert untouched and all(after[rel] == before[rel] for rel in untouched)
