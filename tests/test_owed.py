from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
from sites import make_config, write_post

from publisher.newsletter.owed import scan, schedule_fired
from publisher.state import State

MON_0900 = datetime(2025, 1, 6, 9, 0, tzinfo=timezone.utc)  # a Monday


def open_state(site):
    return State(site.config().database_url)


def test_first_scan_is_the_baseline(site):
    site.post("old.md", "title: Old\npubDate: 2024-01-01\nfeatured: true")
    config, state = site.config(), open_state(site)
    first = scan(config, state, MON_0900)
    assert first.baseline and [p.title for p in first.new] == ["Old"]
    assert first.unannounced == [] and first.newly_featured == []
    site.post("new.md", "title: New\npubDate: 2025-01-06")
    second = scan(config, state, MON_0900 + timedelta(hours=1))
    assert not second.baseline
    assert [p.title for p in second.new] == ["New"]
    assert [p.title for p in second.unannounced] == ["New"]
    # Seeing it again changes nothing: still owed, not new.
    third = scan(config, state, MON_0900 + timedelta(hours=2))
    assert third.new == [] and [p.title for p in third.unannounced] == ["New"]


def test_future_post_becomes_new_after_its_date(site):
    site.post("future.md", "title: Future\npubDate: 2025-01-08T10:00:00Z")
    config, state = site.config(), open_state(site)
    assert scan(config, state, MON_0900).posts == []
    later = scan(config, state, datetime(2025, 1, 8, 10, 1, tzinfo=timezone.utc))
    assert [p.title for p in later.unannounced] == ["Future"]


def test_featured_alerts_only_when_enabled(site):
    site.write_config()
    config = site.config()
    state = open_state(site)
    scan(config, state, MON_0900)
    site.post("f.md", "title: F\npubDate: 2025-01-06\nfeatured: true")
    result = scan(config, state, MON_0900 + timedelta(hours=1))
    assert [p.title for p in result.newly_featured] == ["F"]
    assert result.alerts_due == []


def test_featured_alert_for_new_and_later_featured_posts(site):
    site.write_config(newsletter={"featured_alert": True})
    config, state = site.config(), open_state(site)
    plain = site.post("p.md", "title: P\npubDate: 2024-12-01")
    scan(config, state, MON_0900)  # baseline: no alerts for the back catalogue
    site.post("f.md", "title: F\npubDate: 2025-01-06\nfeatured: true")
    result = scan(config, state, MON_0900 + timedelta(hours=1))
    assert [p.title for p in result.alerts_due] == ["F"]
    plain.write_text(plain.read_text().replace("title: P", "title: P\nfeatured: true"))
    result = scan(config, state, MON_0900 + timedelta(hours=2))
    assert sorted(p.title for p in result.alerts_due) == ["F", "P"]
    assert [p.title for p in result.newly_featured] == ["P"]


@pytest.mark.parametrize("since, now, fired", [
    (MON_0900 - timedelta(minutes=1), MON_0900, True),  # fired exactly now
    (MON_0900 - timedelta(minutes=1), MON_0900 - timedelta(seconds=1), False),
    (MON_0900, MON_0900 + timedelta(days=6), False),  # the firing at `since` does not count twice
    (MON_0900 + timedelta(microseconds=500), MON_0900 + timedelta(days=7), True),
    (MON_0900 - timedelta(days=30), MON_0900 + timedelta(hours=1), True),  # missed many: one yes
])
def test_schedule_fired(site, since, now, fired):
    assert schedule_fired(site.config(), since, now) is fired


def test_schedule_uses_newsletter_timezone(site):
    site.write_config(newsletter={"timezone": "Asia/Tokyo"})
    config = site.config()
    # 09:00 in Tokyo on Monday is 00:00 UTC.
    since = datetime(2025, 1, 5, 23, 0, tzinfo=timezone.utc)
    assert schedule_fired(config, since, datetime(2025, 1, 6, 0, 0, 1, tzinfo=timezone.utc))
    assert not schedule_fired(config, since, datetime(2025, 1, 5, 23, 59, tzinfo=timezone.utc))


# --- upgrades and renames never re-mail ------------------------------------------------------

OLD_SITE = __import__("pathlib").Path(__file__).parent / "fixtures" / "old_state" / "old-site"


def _old_site(tmp_path, server):
    """A copy of the site the previous release ran (tests/fixtures/old_state: its real state
    database), pointed at this test's SMTP server."""
    import shutil

    import yaml

    root = tmp_path / "old-site"
    shutil.copytree(OLD_SITE, root)
    config = yaml.safe_load((root / "config.yaml").read_text())
    config["smtp"] = server.smtp_settings()
    (root / "config.yaml").write_text(yaml.safe_dump(config))
    return root


def _cli(root, *args):
    from click.testing import CliRunner

    from publisher.cli import main

    return CliRunner().invoke(main, ["--config", str(root / "config.yaml"), *args],
                              catch_exceptions=False)


def test_upgrading_from_the_previous_release_mails_no_post_again(tmp_path, server):
    """The previous release published 2025-01-29-x.md at /blog/2025-01-29-x/ (announced at its
    baseline) and mailed 2025-02-03-second-post.md; this release drops the date prefix from
    the URL. Neither post is new: nothing is mailed, and the rows follow the new URLs."""
    from publisher.config import load_config

    root = _old_site(tmp_path, server)
    sent = _cli(root, "send")
    assert "nothing new to mail: every published post has been sent" in sent.output, sent.output
    assert server.received == []
    state = State(load_config(root / "config.yaml").database_url)
    try:
        rows = {k.url: (k.source, k.announced) for k in state.known_posts().values()}
    finally:
        state.close()
    assert rows == {
        "https://old.example.org/blog/x/": ("content/2025-01-29-x.md", True),
        "https://old.example.org/blog/second-post/": ("content/2025-02-03-second-post.md", True),
    }
    # A post written after the upgrade is mailed, alone.
    (root / "content" / "2025-03-01-third.md").write_text("---\ntitle: Third\n---\nNew.\n")
    sent = _cli(root, "send")
    assert "1 sent" in sent.output, sent.output
    [received] = server.received
    text = received.message.get_body(("plain",)).get_content()
    assert received.message["Subject"] == "Old Blog: Third"
    assert "Third" in text and "Second post" not in text and "X marks the spot" not in text


def test_a_renamed_file_is_the_same_post_whatever_changed_with_it(site):
    site.post("2024-05-01-hello.md", "title: Hello\npubDate: 2024-05-01")
    site.post("other.md", "title: Other\npubDate: 2024-05-02\nid: other-post")
    config, state = site.config(), open_state(site)
    scan(config, state, MON_0900)  # the baseline: both announced
    # Renamed: new file, new URL (same title and date); and one moved to a new URL by its slug.
    (site.content / "2024-05-01-hello.md").rename(site.content / "hello-world.md")
    site.post("other.md", "title: Other, retitled\npubDate: 2024-05-02\nid: other-post\nslug: moved")
    later = scan(config, state, MON_0900 + timedelta(hours=1))
    assert later.new == [] and later.unannounced == []
    known = {k.id: (k.url, k.source, k.announced) for k in state.known_posts().values()}
    assert known == {
        "https://blog.test.example/blog/hello-world/":
            ("https://blog.test.example/blog/hello-world/", "content/hello-world.md", True),
        "other-post": ("https://blog.test.example/blog/moved/", "content/other.md", True),
    }
    # A new post that copies an old one's title and date is still new: the old row is taken.
    site.post("copy.md", "title: Hello\npubDate: 2024-05-01")
    third = scan(config, state, MON_0900 + timedelta(hours=2))
    assert [p.source for p in third.new] == ["content/copy.md"]


def test_translations_are_never_mailed(site):
    site.post("old.md", "title: Old\npubDate: 2024-01-01")
    config, state = site.config(), open_state(site)
    scan(config, state, MON_0900)
    site.post("new.md", "title: New\npubDate: 2025-01-05")
    site.post("new.fr.md", "title: Nouveau\npubDate: 2025-01-05")
    later = scan(config, state, MON_0900 + timedelta(hours=1))
    assert [p.title for p in later.new] == ["New"]
    assert [p.title for p in later.unannounced] == ["New"]
    assert sorted(p.title for p in later.posts) == ["New", "Nouveau", "Old"]  # in the feeds


def test_two_files_with_one_id_never_break_the_scan(site):
    site.post("a.md", "title: A\npubDate: 2024-01-01\nid: same")
    config, state = site.config(), open_state(site)
    scan(config, state, MON_0900)
    site.post("b.md", "title: B\npubDate: 2024-01-02\nid: same")  # a copy, its id kept
    (site.content / "a.md").rename(site.content / "a-renamed.md")
    later = scan(config, state, MON_0900 + timedelta(hours=1))
    assert later.new == [] and later.unannounced == []
    assert later.problems == ["content/b.md: skipped: id 'same' is already the id of content/a-renamed.md"]
    assert [(k.id, k.source) for k in state.known_posts().values()] == [("same", "content/a-renamed.md")]


# --- one path: what a preview shows is what the send mails ---------------------------------

def _titles(text: str) -> list[str]:
    """The post titles a digest's text carries in full, in order ('* Title' lines)."""
    body = text.replace("\r\n", "\n").split("Already sent to you:")[0]
    return [t.removesuffix(" [featured]") for t in re.findall(r"^\* (.+)$", body, re.M)]


def test_the_preview_and_the_send_choose_the_same_posts(tmp_path):
    """Drafts, a future post, a renamed announced post, a renamed post still owed, a
    translation and topics: `preview` (and so the dry run and test copy, which take the
    same posts) shows, for everyone and for one topic, what `send` then mails."""
    from publisher import pipeline
    from publisher.newsletter.owed import next_digest_posts
    from smtp_helpers import SmtpServer

    monday = datetime(2026, 11, 2, 10, 0, tzinfo=timezone.utc)  # after the 09:00 firing

    def post(rel, title, at, tags=(), **front):
        write_post(config.root, rel, {"title": title, "pubDate": at.isoformat(),
                                      "tags": list(tags), **front})

    with SmtpServer() as server:
        config = make_config(tmp_path / "site", smtp={**server.smtp_settings(), "timeout": 10},
                             newsletter={"topics": ["Python", "Rust"]})
        post("old.md", "Old", monday - timedelta(days=300), ["python"])
        post("announced.md", "Announced", monday - timedelta(days=200), ["rust"])
        pipeline.run_once(config, monday)  # the baseline: both announced
        post("pending.md", "Pending", monday, ["python"])
        pipeline.run_once(config, monday + timedelta(hours=1))  # seen, owed, not yet due
        (config.root / "content/pending.md").rename(config.root / "content/pending-renamed.md")
        (config.root / "content/announced.md").rename(config.root / "content/announced-2.md")
        post("fresh.md", "Fresh", monday + timedelta(hours=1), ["rust"])
        post("untagged.md", "Untagged", monday + timedelta(hours=1))
        post("draft.md", "Draft", monday, ["python"], draft=True)
        post("future.md", "Future", monday + timedelta(days=30), ["python"])
        post("fresh.fr.md", "Frais", monday + timedelta(hours=1), ["rust"])
        now = monday + timedelta(hours=2)

        with State(config.database_url) as state:
            previewed, _loaded = next_digest_posts(config, state, now)
        everyone = _preview_titles(pipeline, config, tmp_path / "all", now, None)
        pythonistas = _preview_titles(pipeline, config, tmp_path / "py", now, ("python",))
        assert [p.title for p in previewed] == everyone
        assert sorted(everyone) == ["Fresh", "Pending", "Untagged"]
        assert "Pending" in pythonistas and "Fresh" not in pythonistas

        with State(config.database_url) as state:
            state.add_subscribers([("all@example.org", "All", ()),
                                   ("py@example.org", "Py", ("python",))])
        report = pipeline.send_now(config, now)
        assert not report.failed, report.lines
        mailed = {m.rcpt: _titles(m.message.get_body(("plain",)).get_content())
                  for m in server.received}
    assert mailed == {"all@example.org": everyone, "py@example.org": pythonistas}


def _preview_titles(pipeline, config, out, now, topics) -> list[str]:
    _report, paths = pipeline.preview(config, out, now, topics=topics)
    return _titles(paths[1].read_text(encoding="utf-8"))
