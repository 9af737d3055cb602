"""newsletter/archive.py: every digest and alert that goes out is a public page under
feeds.output_dir/newsletter/<n>/, with an index and an RSS feed of the issues; each mail links
to its page. Real files, a real state, a real SMTP server on 127.0.0.1."""

from __future__ import annotations

import html
from contextlib import closing
import os
import re
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from publisher import pipeline
from publisher import state as state_mod
from publisher.config import load_config
from publisher.errors import ConfigError
from publisher.state import State

SUN = datetime(2025, 1, 5, 9, 0, tzinfo=timezone.utc)
SITE = "https://blog.test.example"
SUBSCRIBERS = [("ann.archive@example.org", "Annabel Quixote"), ("bob.archive@example.org", "Bobrick Zed"),
               ("cy.archive@example.org", "")]


@pytest.fixture
def newsletter(site, server):
    """A site with three subscribers (two with names), mailing through the test server, with
    its first run (the baseline) done."""

    def configure(**newsletter):
        site.write_config(smtp={**server.smtp_settings(), "retry_base_delay": 0}, newsletter=newsletter)
        return site.config()

    site.configure = configure
    config = configure()
    site.post("old.md", "title: Old post\npubDate: 2024-12-01")
    pipeline.run_once(config, SUN)  # baseline: the old post is never mailed
    with closing(State(config.database_url)) as state:
        state.add_subscribers(SUBSCRIBERS)
    return site


def output(site) -> Path:
    return site.root / "public"


def page(site, rel: str) -> str:
    return (output(site) / "newsletter" / rel).read_text(encoding="utf-8")


def archive_files(site) -> dict[str, tuple[bytes, int]]:
    """{path under newsletter/: (bytes, mtime_ns)}."""
    root = output(site) / "newsletter"
    return {str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


def secrets_in_state(config) -> list[str]:
    """Every subscriber's address (and its local part), name and token, as the state has them."""
    s = state_mod.subscribers.c
    with closing(State(config.database_url)) as state, state.read() as conn:
        rows = conn.execute(sa.select(s.email, s.name, s.token, s.confirm_token)).all()
    found = []
    for row in rows:
        found += [row.email, row.email.split("@")[0], row.token]
        found += [v for v in (row.name, row.confirm_token) if v]
    assert len(found) == 3 * 3 + 2  # three subscribers, two of them named, none pending
    return found


def link_in(text: str, label: str) -> str:
    m = re.search(re.escape(label) + r"\s*(\S+)", text)
    assert m, text[:500]
    return m.group(1)


def test_a_sent_digest_is_a_page_without_personal_data(newsletter, server):
    newsletter.post("a.md", "title: First new post\npubDate: 2025-01-05T10:00:00Z\n"
                            "description: What the first one says")
    newsletter.post("b.md", "title: Second new post\npubDate: 2025-01-05T11:00:00Z\nauthor: Jo Writer")
    config = newsletter.config()
    report = pipeline.send_now(config, SUN + timedelta(hours=3))
    assert report.exit_status == 0, report.problems
    assert not any("archive" in line for line in report.lines)  # the send's lines are about mail
    assert sorted(m.rcpt for m in server.received) == sorted(a for a, _ in SUBSCRIBERS)

    url = f"{SITE}/newsletter/1/"
    for received in server.received:
        message = received.message
        text = message.get_body(("plain",)).get_content()
        assert link_in(text, "View in your browser:") == url
        body = message.get_body(("html",)).get_content()
        assert re.findall(r'<a href="([^"]+)"[^>]*>View in browser</a>', body) == [url]
        assert "@@PUBLISHER" not in text + body
    issue = page(newsletter, "1/index.html")
    # The page holds what the mail holds, in the mail's order (newest first)...
    assert "<h1 dir=\"auto\">Test Blog: Second new post and 1 more</h1>" in issue
    assert issue.index("Second new post") < issue.index("First new post")
    assert "What the first one says" in issue and "Jo Writer" in issue
    assert f'href="{SITE}/blog/a/"' in issue and f'href="{SITE}/blog/b/"' in issue
    # ...and nothing about any subscriber: no address, name, token, or personal link.
    everything = "".join(data.decode("utf-8") for data, _ in archive_files(newsletter).values())
    for secret in secrets_in_state(config):
        assert secret not in everything, secret
    assert "unsubscribe" not in everything.lower() and "/preferences" not in everything
    assert "<script" not in everything.lower()
    # The mail itself did carry them: the check above looked for the right things.
    mailed = server.received[0].message.get_body(("plain",)).get_content()
    assert "/unsubscribe/" in mailed


def test_archive_pages_are_written_when_the_issue_is_planned(newsletter, server, monkeypatch):
    """The link works when the mail arrives: the page exists before the first message goes."""
    from publisher.newsletter import sending

    seen = []
    send_digest = sending.send_digest

    def checking_send(config, state, digest, **kwargs):
        seen.append((output(newsletter) / f"newsletter/{digest.id}/index.html").is_file())
        return send_digest(config, state, digest, **kwargs)

    monkeypatch.setattr(sending, "send_digest", checking_send)
    newsletter.post("a.md", "title: Fresh\npubDate: 2025-01-05T10:00:00Z")
    pipeline.send_now(newsletter.config(), SUN + timedelta(hours=3))
    assert seen == [True] and len(server.received) == 3


def test_rebuilds_are_byte_stable_and_bring_a_deleted_archive_back(newsletter, server):
    newsletter.post("a.md", "title: Fresh\npubDate: 2025-01-05T10:00:00Z")
    config = newsletter.config()
    pipeline.send_now(config, SUN + timedelta(hours=3))
    before = archive_files(newsletter)
    assert sorted(before) == ["1/index.html", "index.html", "rss.xml"]

    report = pipeline.build(config, SUN + timedelta(days=3))
    assert not any(line.startswith("newsletter archive") for line in report.lines)
    assert archive_files(newsletter) == before  # same bytes, same mtimes: nothing rewritten

    import shutil

    shutil.rmtree(output(newsletter))
    report = pipeline.build(config, SUN + timedelta(days=4))
    assert "newsletter archive: 3 files written, 0 unchanged" in report.lines
    after = archive_files(newsletter)
    assert {k: v[0] for k, v in after.items()} == {k: v[0] for k, v in before.items()}


def test_archive_off_writes_nothing_and_the_mail_has_no_link(newsletter, server):
    config = newsletter.configure(archive=False)
    newsletter.post("a.md", "title: Fresh\npubDate: 2025-01-05T10:00:00Z")
    report = pipeline.send_now(config, SUN + timedelta(hours=3))
    assert report.exit_status == 0 and len(server.received) == 3
    assert not (output(newsletter) / "newsletter").exists()
    message = server.received[0].message
    text = message.get_body(("plain",)).get_content()
    body = message.get_body(("html",)).get_content()
    assert "View in" not in text and "View in browser" not in body and "/newsletter/1" not in text + body
    pipeline.build(config, SUN + timedelta(days=1))
    assert not (output(newsletter) / "newsletter").exists()
    with closing(State(config.database_url)) as state:
        assert state.archived_issues() == []  # nothing recorded to publish later either


def test_index_and_feed_list_issues_newest_first_and_an_alert_gets_its_page(newsletter, server):
    config = newsletter.configure(featured_alert=True)
    newsletter.post("one.md", "title: Digest one\npubDate: 2025-01-05T10:00:00Z")
    pipeline.send_now(config, SUN + timedelta(hours=2))
    newsletter.post("star.md", "title: A featured post\npubDate: 2025-01-05T12:00:00Z\nfeatured: true\n"
                               "description: Worth its own mail")
    pipeline.run_once(config, SUN + timedelta(hours=4))  # Sunday: the alert only
    newsletter.post("two.md", "title: Digest two\npubDate: 2025-01-06T08:00:00Z")
    pipeline.run_once(config, SUN + timedelta(days=1, hours=1))  # Monday 10:00: the digest
    subjects = [m.message["Subject"] for m in server.received[::3]]
    # Every reader got the alert, so their digest leaves the alerted post out (issue 16's
    # dedupe); the archive's page is the whole issue, under the issue's own subject.
    assert subjects == ["Test Blog: Digest one", "A featured post", "Test Blog: Digest two"]
    third = "Test Blog: A featured post and 1 more"

    alert = page(newsletter, "2/index.html")
    assert "<h1 dir=\"auto\">A featured post</h1>" in alert and "Worth its own mail" in alert
    assert "A featured post on Test Blog" in alert
    assert alert.count("A featured post</") == 1  # the heading, not repeated for its one post
    assert f'<a href="{SITE}/blog/star/">Read the post' in alert
    alert_mail = server.received[3].message.get_body(("plain",)).get_content()
    assert link_in(alert_mail, "View in your browser:") == f"{SITE}/newsletter/2/"

    index = page(newsletter, "index.html")
    listed = re.findall(r'<a class="issue-link" href="([^"]+)" dir="auto">([^<]+)</a>', index)
    assert listed == [(f"{SITE}/newsletter/3/", third),
                      (f"{SITE}/newsletter/2/", "A featured post"),
                      (f"{SITE}/newsletter/1/", "Test Blog: Digest one")]
    channel = ET.fromstring((output(newsletter) / "newsletter/rss.xml").read_bytes()).find("channel")
    assert [(i.findtext("title"), i.findtext("link"), i.findtext("guid")) for i in channel.iter("item")] == [
        (third, f"{SITE}/newsletter/3/", f"{SITE}/newsletter/3/"),
        ("A featured post", f"{SITE}/newsletter/2/", f"{SITE}/newsletter/2/"),
        ("Test Blog: Digest one", f"{SITE}/newsletter/1/", f"{SITE}/newsletter/1/"),
    ]
    assert channel.findtext("link") == f"{SITE}/newsletter/"
    # The feed's date is its newest issue's, not the time of the build.
    assert channel.findtext("lastBuildDate") == "Mon, 06 Jan 2025 10:00:00 +0000"


def test_nasty_titles_are_escaped_on_the_pages_and_in_the_feed(newsletter, server):
    title = "Fish & Chips <script>alert(1)</script> 🐟 \"quoted\""
    newsletter.post("nasty.md", f"title: '{title}'\npubDate: 2025-01-05T10:00:00Z\n"
                                "description: 'a < b && c > d'")
    config = newsletter.config()
    pipeline.send_now(config, SUN + timedelta(hours=3))
    issue, index = page(newsletter, "1/index.html"), page(newsletter, "index.html")
    escaped = "Fish &amp; Chips &lt;script&gt;alert(1)&lt;/script&gt; 🐟 &#34;quoted&#34;"
    for text in (issue, index):
        assert "<script" not in text
        assert escaped in text
        assert "🐟" in text
    assert "a &lt; b &amp;&amp; c &gt; d" in issue
    item = ET.fromstring((output(newsletter) / "newsletter/rss.xml").read_bytes()).find("channel/item")
    assert item.findtext("title") == f"Test Blog: {title}"
    description = item.findtext("description")  # HTML, escaped once more as XML text
    assert description == f'<ul><li><a href="{SITE}/blog/nasty/">{html.escape(title)}</a></li></ul>'


def test_a_site_template_replaces_the_bundled_page(newsletter, server):
    templates = newsletter.root / "templates"
    templates.mkdir()
    (templates / "archive_issue.html").write_text(
        "<!DOCTYPE html><title>{{ issue.subject }}</title>"
        "{% for post in issue.posts %}<p>{{ post.title }}</p>{% endfor %}\n", encoding="utf-8")
    newsletter.post("a.md", "title: Mine & yours\npubDate: 2025-01-05T10:00:00Z")
    pipeline.send_now(newsletter.config(), SUN + timedelta(hours=3))
    assert page(newsletter, "1/index.html") == (
        "<!DOCTYPE html><title>Test Blog: Mine &amp; yours</title><p>Mine &amp; yours</p>")


def test_a_site_template_edited_later_rewrites_the_pages_on_the_next_build(newsletter, server):
    """The pages of issues already sent follow the site's template when it changes."""
    newsletter.post("a.md", "title: Mine\npubDate: 2025-01-05T10:00:00Z")
    pipeline.send_now(newsletter.config(), SUN + timedelta(hours=3))
    pipeline.build(newsletter.config(), SUN + timedelta(hours=4))
    assert "<p>Mine</p>" not in page(newsletter, "1/index.html")
    templates = newsletter.root / "templates"
    templates.mkdir()
    (templates / "archive_issue.html").write_text("<p>{{ issue.posts[0].title }}</p>\n", encoding="utf-8")
    report = pipeline.build(newsletter.config(), SUN + timedelta(hours=5))
    assert page(newsletter, "1/index.html") == "<p>Mine</p>\n"
    assert any(line.startswith("newsletter archive: 1 file written") for line in report.lines)


def test_a_broken_site_template_is_named(newsletter, server):
    newsletter.post("a.md", "title: Fresh\npubDate: 2025-01-05T10:00:00Z")
    config = newsletter.config()
    pipeline.send_now(config, SUN + timedelta(hours=3))
    templates = newsletter.root / "templates"
    templates.mkdir()
    (templates / "archive_index.html").write_text("{% for x in %}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"^templates/archive_index.html: line 1: "):
        pipeline.build(config, SUN + timedelta(days=1))


def test_the_archive_key_must_be_a_boolean(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("site: {title: T, url: 'https://x.example'}\nnewsletter: {archive: 'no'}\n",
                    encoding="utf-8")
    with pytest.raises(ConfigError, match=r"newsletter\.archive: expected true or false, got 'no'"):
        load_config(path)


def test_a_schema_v5_database_gains_the_archive_table(tmp_path, db_url):
    if not db_url.startswith("sqlite"):
        pytest.skip("built by hand as SQLite")
    with closing(State(db_url)) as state, state.write() as conn:  # a current database, made to look v5
        conn.execute(sa.text("DROP TABLE archive_issues"))
        conn.execute(state_mod.meta.update().where(state_mod.meta.c.key == "schema_version")
                     .values(value="5"))
    with closing(State(db_url)) as state:
        assert state.schema_version() == state_mod.SCHEMA_VERSION >= 7
        number = state.create_digest(kind="digest", subject="S", html="h", text="t", post_ids=[],
                                     now=SUN, archive="[]")
        assert [(i.number, i.subject, i.posts) for i in state.archived_issues()] == [(number, "S", "[]")]


def test_check_names_a_broken_archive_template(site):
    (site.root / "templates").mkdir()
    (site.root / "templates/archive_issue.html").write_text("{{ issue.subject\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"^templates/archive_issue.html: line 1: "):
        pipeline.check(site.config())


def test_an_unchanged_archive_is_not_even_rendered_and_a_change_is(newsletter, server, monkeypatch):
    from publisher.newsletter import archive

    newsletter.post("a.md", "title: Fresh\npubDate: 2025-01-05T10:00:00Z")
    config = newsletter.config()
    pipeline.send_now(config, SUN + timedelta(hours=3))
    renders = []
    render_archive = archive.render_archive
    monkeypatch.setattr(archive, "render_archive",
                        lambda config, rows: renders.append(len(rows)) or render_archive(config, rows))
    pipeline.build(config, SUN + timedelta(days=1))
    assert renders == []

    index = output(newsletter) / "newsletter/index.html"
    original = index.read_bytes()
    index.write_bytes(b"edited by hand")
    report = pipeline.build(config, SUN + timedelta(days=1))
    assert renders == [1] and index.read_bytes() == original
    assert "newsletter archive: 1 file written, 2 unchanged" in report.lines

    (newsletter.root / "templates").mkdir()
    (newsletter.root / "templates/archive_index.html").write_text("{{ issues|length }} issue\n",
                                                                  encoding="utf-8")
    pipeline.build(config, SUN + timedelta(days=1))
    assert renders == [1, 1] and index.read_text(encoding="utf-8") == "1 issue\n"
    pipeline.build(newsletter.configure(), SUN + timedelta(days=1))  # the same config again
    assert renders == [1, 1]


def test_a_send_compiles_each_archive_template_once_and_an_edit_is_compiled_again(newsletter, server,
                                                                                  monkeypatch):
    """check_issue and write_archive each render with a fresh environment; the second reuses
    the first's compiled code (#29: ~7 ms of a send's start), but only for an unchanged file."""
    import jinja2

    from publisher.newsletter import archive

    compiled = []
    compile_ = jinja2.Environment.compile
    monkeypatch.setattr(jinja2.Environment, "compile", lambda env, source, name=None, *a, **k:
                        compiled.append(name) or compile_(env, source, name, *a, **k))
    monkeypatch.setattr(archive, "_COMPILED", None, raising=False)  # as a new process
    newsletter.post("a.md", "title: Fresh\npubDate: 2025-01-05T10:00:00Z")
    config = newsletter.config()
    pipeline.send_now(config, SUN + timedelta(hours=3))
    for name in archive.TEMPLATES:
        assert compiled.count(name) == 1, compiled
    assert len(server.received) == 3 and "Fresh" in page(newsletter, "1/index.html")

    (newsletter.root / "templates").mkdir()
    override = newsletter.root / "templates/archive_index.html"
    override.write_text("{{ issues|length }} issue\n", encoding="utf-8")
    archive.render_archive(config, [])  # nothing to render: nothing compiled
    pipeline.build(config, SUN + timedelta(days=1))
    assert page(newsletter, "index.html") == "1 issue\n"
    override.write_text("{{ issues|length }} issues in all\n", encoding="utf-8")
    pipeline.build(config, SUN + timedelta(days=1))
    assert page(newsletter, "index.html") == "1 issues in all\n"
    assert compiled.count("archive_index.html") == 3  # bundled once, then each edit


def test_a_page_that_cannot_be_rendered_stops_the_send_before_anything_is_recorded(newsletter, server):
    (newsletter.root / "templates").mkdir()
    (newsletter.root / "templates/archive_issue.html").write_text("{{ issue.nope }}\n", encoding="utf-8")
    newsletter.post("a.md", "title: Fresh\npubDate: 2025-01-05T10:00:00Z")
    config = newsletter.config()
    with pytest.raises(ConfigError, match=r"^templates/archive_issue.html: .*'nope'"):
        pipeline.send_now(config, SUN + timedelta(hours=3))
    assert server.received == []
    with closing(State(config.database_url)) as state:
        assert state.open_digests() == [] and state.archived_issues() == []
    (newsletter.root / "templates/archive_issue.html").unlink()  # fixed: the post goes out
    pipeline.send_now(config, SUN + timedelta(hours=4))
    assert len(server.received) == 3 and (output(newsletter) / "newsletter/1/index.html").is_file()


def test_a_build_before_any_issue_writes_no_archive_and_imports_no_renderer(site):
    import subprocess
    import sys

    site.post("a.md", "title: A post\npubDate: 2025-01-05T10:00:00Z")
    config = site.config()
    pipeline.build(config, SUN + timedelta(days=1))
    code = ("import sys\nfrom publisher.config import load_config\nfrom publisher import pipeline\n"
            f"report = pipeline.build(load_config({str(config.path)!r}))\n"
            "print(report.lines, 'jinja2' in sys.modules, 'feedgen' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == (
        "['feeds: 1 post, 0 files written, 3 unchanged (0 rendered, 1 from cache)'] False False"), done.stderr
    assert not (output(site) / "newsletter").exists()


def test_every_topic_body_links_to_the_whole_issue_page(newsletter, server):
    """With topics, readers get different bodies of one issue; each links to the issue's one
    public page, which holds every post of the issue."""
    config = newsletter.configure(topics=["python", "rust"])
    with closing(State(config.database_url)) as state:
        state.set_preferences(state.list_subscribers()[0].token, topics=["python"], now=SUN)
        state.set_preferences(state.list_subscribers()[1].token, topics=["rust"], now=SUN)
    newsletter.post("py.md", "title: Snakes\npubDate: 2025-01-05T10:00:00Z\ntags: [python]")
    newsletter.post("rs.md", "title: Crabs\npubDate: 2025-01-05T10:30:00Z\ntags: [rust]")
    report = pipeline.send_now(config, SUN + timedelta(hours=2))
    assert report.exit_status == 0 and len(server.received) == 3
    bodies = {m.rcpt_tos[0]: m.message for m in server.received}
    ann, bob, cy = (bodies[address] for address, _ in SUBSCRIBERS)
    seen = {}
    for who, message in (("ann", ann), ("bob", bob), ("cy", cy)):
        text = message.get_body(("plain",)).get_content()
        assert link_in(text, "View in your browser:") == f"{SITE}/newsletter/1/", who
        seen[who] = ("Snakes" in text, "Crabs" in text)
    assert seen == {"ann": (True, False), "bob": (False, True), "cy": (True, True)}
    issue = page(newsletter, "1/index.html")
    assert "Snakes" in issue and "Crabs" in issue
