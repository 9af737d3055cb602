"""The scan cache (content.load_posts with cache=, cache.load_site, state.scan_cache) and
the feeds' skip-if-unchanged: correctness first. Real files, a real state database."""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from sites import make_config

from publisher import cache, content, feed_cache, pipeline
from publisher import state as state_mod
from publisher.cache import scan_fingerprint
from publisher.cache_sqlite3 import Sqlite3CacheStore
from publisher.content import ScanEntry, load_posts
from publisher.errors import ContentError
from publisher.state import State

NOW = datetime(2025, 1, 6, 9, 0, tzinfo=timezone.utc)


class _Calls:
    """The names of the files parsed, in any process: a large scan parses part of its files
    in a forked worker (content/parallel.py), so each call appends a line to a real file."""

    def __init__(self, path):
        self.path = path
        self.path.write_text("")

    def append(self, name: str) -> None:
        with open(self.path, "a", encoding="utf-8") as f:  # one short write: atomic in append mode
            f.write(name + "\n")

    def _names(self) -> list[str]:
        return self.path.read_text(encoding="utf-8").splitlines()

    def __iter__(self):
        return iter(self._names())

    def __eq__(self, other):
        return self._names() == other

    def clear(self) -> None:
        self.path.write_text("")


@pytest.fixture
def counted(monkeypatch, tmp_path):
    """Counts the files content.py reads and parses."""
    calls = _Calls(tmp_path / "parsed.txt")
    real = content.posts._parse_post

    def parse(path, config, raw, content_hash, *located):
        calls.append(path.name)
        return real(path, config, raw, content_hash, *located)

    monkeypatch.setattr(content.posts, "_parse_post", parse)
    return calls


def cached_load(config, cache: dict, now=NOW):
    """One scan through an in-memory cache, stored back as cache.load_site does."""
    result = load_posts(config, now, cache=cache)
    for rel in result.cache_removed:
        cache.pop(rel, None)
    cache.update(result.cache_changed)
    return result


def sample_site(site):
    site.post("a.md", "title: A\npubDate: 2024-01-01\ntags: [x, y]", "Body of *A* with [a link](../b/).\n")
    site.post("b/index.md", "title: B\npubDate: 2024-02-01 10:00:00\nfeatured: true", "Body B.\n")
    site.post("c.md", "title: C\ndate: 2024-03-01T10:00:00+02:00\nupdated: 2024-03-05", "Body C.\n")
    site.post("broken.md", "", raw=b"---\ntitle: [unclosed\npubDate: 2024-01-01\n---\nx")
    return site


def test_unchanged_files_are_not_read_again_and_give_the_same_posts(site, counted):
    config = sample_site(site).config()
    cache: dict = {}
    first = cached_load(config, cache)
    assert sorted(counted) == ["a.md", "broken.md", "c.md", "index.md"]
    counted.clear()
    second = cached_load(config, cache)
    assert counted == [] and second.cache_hits == 4 and second.cache_changed == {}
    assert second.posts == first.posts
    assert [p.body for p in second.posts] == [p.body for p in first.posts]  # read lazily
    assert [content.render_html(p) for p in second.posts] == [content.render_html(p) for p in first.posts]
    assert second.problems == first.problems  # the broken file is reported every run
    assert len(second.problems) == 1 and "not valid YAML" in second.problems[0]


def test_changed_files_are_read_again(site, counted):
    config = sample_site(site).config()
    cache: dict = {}
    cached_load(config, cache)
    counted.clear()
    path = site.content / "a.md"
    path.write_text(path.read_text().replace("title: A", "title: A2"))  # size changes
    same_size = site.content / "c.md"
    text = same_size.read_text()
    st = same_size.stat()
    same_size.write_text(text.replace("Body C.", "Body D."))  # same size, another mtime
    os.utime(same_size, ns=(st.st_atime_ns, st.st_mtime_ns + 1))
    result = cached_load(config, cache)
    assert sorted(counted) == ["a.md", "c.md"]
    titles = {p.title for p in result.posts}
    assert "A2" in titles
    assert next(p for p in result.posts if p.title == "C").body == "Body D."


def test_same_size_and_mtime_edit_is_the_documented_residual_risk(site, counted):
    """A rewrite keeping size and mtime_ns is not noticed by the scan, but the lazily read
    body is checked against the hash, so stale metadata never meets a new body silently."""
    config = sample_site(site).config()
    cache: dict = {}
    cached_load(config, cache)
    path = site.content / "c.md"
    st = path.stat()
    path.write_text(path.read_text().replace("Body C.", "Body X."))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    counted.clear()
    result = cached_load(config, cache)
    assert counted == []
    post = next(p for p in result.posts if p.title == "C")
    with pytest.raises(ContentError, match="c.md: changed while publisher was running"):
        post.body


def test_deleted_files_disappear_and_leave_the_cache(site):
    config = sample_site(site).config()
    cache: dict = {}
    cached_load(config, cache)
    (site.content / "a.md").unlink()
    (site.content / "broken.md").unlink()
    result = cached_load(config, cache)
    assert sorted(result.cache_removed) == ["content/a.md", "content/broken.md"]
    assert {p.title for p in result.posts} == {"B", "C"} and result.problems == []
    assert sorted(cache) == ["content/b/index.md", "content/c.md"]


def test_publication_still_depends_on_now(site):
    site.post("draft.md", "title: Draft\npubDate: 2024-01-01\ndraft: true")
    site.post("future.md", "title: Future\npubDate: 2025-01-10")
    config = site.config()
    cache: dict = {}
    early = cached_load(config, cache, now=NOW)
    assert early.posts == [] and len(early.held_back) == 2
    later = cached_load(config, cache, now=NOW + timedelta(days=7))
    assert later.cache_hits == 2
    assert [p.title for p in later.posts] == ["Future"] and [p.title for p in later.held_back] == ["Draft"]


def test_duplicate_urls_are_reported_every_run(site):
    site.post("one.md", "title: One\npubDate: 2024-01-01\nslug: same")
    site.post("two.md", "title: Two\npubDate: 2024-01-02\nslug: same")
    config = site.config()
    cache: dict = {}
    first = cached_load(config, cache)
    second = cached_load(config, cache)
    assert second.cache_hits == 2
    assert second.problems == first.problems and "gives the same URL as" in second.problems[0]


@pytest.mark.parametrize("change", [
    {"site": {"url": "https://other.example"}},
    {"content": {"permalink": "/{year}/{slug}/"}},
    {"newsletter": {"timezone": "Europe/Berlin"}},
    {"site": {"language": "fr"}},
    {"site": {"author": {"name": "Someone Else", "email": "else@blog.test.example"}}},
])
def test_config_changes_that_alter_posts_invalidate_the_cache(site, counted, change):
    site.post("a.md", "title: A\npubDate: 2024-01-01 10:00:00", "Body.\n")
    config = site.config()
    state = State(config.database_url)
    try:
        before = cache.load_site(config, state, NOW)
        site.write_config(**change)
        changed = site.config()
        assert scan_fingerprint(changed) != scan_fingerprint(config)
        counted.clear()
        after = cache.load_site(changed, state, NOW)
        assert counted == ["a.md"]
        assert after.posts == load_posts(changed, NOW).posts != before.posts
        counted.clear()
        assert cache.load_site(changed, state, NOW).posts == after.posts and counted == []
        # Only entries under the current fingerprint are kept.
        with state.read() as conn:
            fingerprints = set(conn.execute(sa.select(state_mod.scan_cache.c.fingerprint)).scalars())
        assert fingerprints == {scan_fingerprint(changed)}
    finally:
        state.close()


def test_every_post_field_survives_the_cache(site, counted):
    """Categories, language, translation key, expiry date; a file that is no post (a nanoc
    page) stays silent; a Pelican body is split as Pelican does, when read lazily."""
    site.write_config(content={"dialect": "nanoc"})
    site.post("a.fr.md", "title: A\ncreated_at: 2024-01-01\nkind: article\ncategories: [X, Y]\n"
                         "expiryDate: 2030-01-01\ntranslationKey: k", "Body.\n")
    site.post("page.md", "title: About", "A page.\n")
    config = site.config()
    cache: dict = {}
    first = cached_load(config, cache)
    counted.clear()
    second = cached_load(config, cache)
    assert counted == [] and second.problems == first.problems == []
    assert second.posts == first.posts and len(first.posts) == 1
    post = second.posts[0]
    assert (post.categories, post.lang, post.translation_key) == (("X", "Y"), "fr", "k")
    assert post.expires == datetime(2030, 1, 1, tzinfo=timezone.utc)

    site.write_config(content={"dialect": "pelican"})
    (site.content / "a.fr.md").unlink()
    (site.content / "page.md").unlink()
    (site.content / "p.md").write_text("Title: P\nDate: 2024-01-01\n\nThe body.\n")
    config = site.config()
    cached_load(config, cache)
    again = cached_load(config, cache)
    assert [p.body for p in again.posts] == ["The body."]


def test_eleventy_data_files_invalidate_the_cache(site, counted):
    site.write_config(content={"dialect": "eleventy", "permalink": "/blog/{stem}/"})
    site.post("a.md", "title: A\ndate: 2024-01-01")
    (site.content / "content.11tydata.json").write_text('{"tags": ["posts"]}')
    config = site.config()
    before, files_before = scan_fingerprint(config), content.content_signature(config)
    assert load_posts(config, NOW).posts[0].tags == ("posts",)
    (site.content / "content.11tydata.json").write_text('{"tags": ["articles"]}')
    assert scan_fingerprint(config) != before
    assert content.content_signature(config) != files_before  # `publisher run` is not idle
    assert load_posts(config, NOW).posts[0].tags == ("articles",)


def test_parser_code_changes_invalidate_the_cache(site, monkeypatch):
    config = site.config()
    before = scan_fingerprint(config)
    monkeypatch.setattr(content, "_CODE_HASH", "a different content.py")
    assert scan_fingerprint(config) != before


def test_cached_posts_give_byte_identical_feeds(site):
    """Dates restored from the cache keep their instants and offsets, across DST too."""
    from publisher.feeds import render_feeds

    site.write_config(newsletter={"timezone": "Europe/Berlin"})
    site.post("winter.md", "title: Winter\npubDate: 2024-01-15 10:00:00\ntags: [t]", "W ![i](p.png)\n")
    site.post("summer.md", "title: Summer\npubDate: 2024-07-15\nupdated: 2024-07-16T08:00:00Z", "S\n")
    site.post("offset.md", "title: Offset\npubDate: 2024-03-31 02:30:00 +0200\nimage: ./c.png", "O\n")
    config = site.config()
    cache: dict = {}
    fresh = cached_load(config, cache).posts
    cached = cached_load(config, cache).posts
    assert all(p._body is None for p in cached)  # really from the cache
    assert render_feeds(cached, config, content.render_html) == render_feeds(fresh, config, content.render_html)


def test_store_and_load_roundtrip_in_the_state(db_url):
    state = State(db_url)
    try:
        entries = {"content/a.md": (10, 123, "h" * 64, '{"x":1}', None),
                   "content/b.md": (20, 456, "g" * 64, None, "front matter has no 'title'")}
        state.store_scan_cache("fp1", entries, [])
        assert state.scan_cache("fp1") == entries
        assert state.scan_cache("fp2") == {}
        state.store_scan_cache("fp1", {"content/a.md": (11, 124, "i" * 64, '{"x":2}', None)},
                               ["content/b.md"])
        assert state.scan_cache("fp1") == {"content/a.md": (11, 124, "i" * 64, '{"x":2}', None)}
        state.store_scan_cache("fp2", {"content/c.md": (1, 2, "j" * 64, None, "bad")}, [])
        assert state.scan_cache("fp1") == {}  # stale entries are dropped
        assert list(state.scan_cache("fp2")) == ["content/c.md"]
        assert ScanEntry(*state.scan_cache("fp2")["content/c.md"]).problem == "bad"
    finally:
        state.close()


def test_a_v1_database_gains_the_scan_cache_and_keeps_its_rows(db_url):
    """Migration 2: a database made before the scan cache existed gets the table, keeps every
    row, and ends at the current schema version."""
    old = State(db_url)
    old.add_subscribers([("keep@x.org", "Keep")])
    old.set_meta("baseline_at", NOW.isoformat())
    with old.write() as conn:  # back to what version 1 had
        conn.execute(sa.text("DROP TABLE scan_cache"))
        conn.execute(state_mod.meta.update().where(state_mod.meta.c.key == "schema_version")
                     .values(value="1"))
    with old.read() as conn:
        assert not sa.inspect(conn).has_table("scan_cache")
    old.close()

    new = State(db_url)
    try:
        assert new.schema_version() == state_mod.SCHEMA_VERSION >= 2
        with new.read() as conn:
            assert sa.inspect(conn).has_table("scan_cache")
        assert [s.email for s in new.list_subscribers()] == ["keep@x.org"]
        assert new.get_meta("baseline_at") == NOW.isoformat()
        new.store_scan_cache("fp", {"content/a.md": (1, 2, "h" * 64, None, "x")}, [])
        assert list(new.scan_cache("fp")) == ["content/a.md"]
    finally:
        new.close()


# --- the pipeline -------------------------------------------------------------------------

def test_a_second_build_reads_no_post_and_renders_nothing(site, counted, monkeypatch):
    sample_site(site)
    config = site.config()
    first = pipeline.build(config, NOW)
    assert "3 rendered, 0 from cache" in first.lines[0]
    counted.clear()
    monkeypatch.setattr(pipeline, "render_html", lambda post: pytest.fail("rendered"))
    second = pipeline.build(config, NOW)
    assert counted == []
    assert second.lines[0] == "feeds: 3 posts, 0 files written, 9 unchanged (0 rendered, 3 from cache)"
    assert second.problems == first.problems and second.exit_status == 1  # the broken file


def test_feeds_edited_or_deleted_by_hand_are_written_again(site):
    site.post("a.md", "title: A\npubDate: 2024-01-01\ntags: [x]")
    config = site.config()
    pipeline.build(config, NOW)
    rss = config.output_dir / "rss.xml"
    good = rss.read_bytes()
    rss.write_bytes(b"broken")
    (config.output_dir / "tags" / "x" / "feed.json").unlink()
    report = pipeline.build(config, NOW)
    assert "2 files written" in report.lines[0] and "0 rendered, 1 from cache" in report.lines[0]
    assert rss.read_bytes() == good


def test_a_new_post_or_the_clock_passing_a_future_date_rebuilds_the_feeds(site):
    site.post("a.md", "title: A\npubDate: 2024-01-01")
    site.post("later.md", "title: Later\npubDate: 2025-01-10")
    config = site.config()
    pipeline.build(config, NOW)
    assert "Later" not in (config.output_dir / "rss.xml").read_text()
    report = pipeline.build(config, NOW + timedelta(days=7))
    assert "files written" in report.lines[0] and "0 files written" not in report.lines[0]
    assert "Later" in (config.output_dir / "rss.xml").read_text()
    site.post("b.md", "title: Bee\npubDate: 2024-02-01")
    pipeline.build(config, NOW + timedelta(days=7))
    assert "Bee" in (config.output_dir / "rss.xml").read_text()


def test_an_edited_or_deleted_post_changes_the_feeds_on_the_next_build(site):
    site.post("a.md", "title: A\npubDate: 2024-01-01\ntags: [x]", "First words.\n")
    site.post("b.md", "title: B\npubDate: 2024-02-01\ntags: [x]")
    config = site.config()
    pipeline.build(config, NOW)
    site.post("a.md", "title: A\npubDate: 2024-01-01\ntags: [x]", "Second words.\n")
    pipeline.build(config, NOW)
    for feed in ("rss.xml", "tags/x/atom.xml", "tags/x/feed.json"):
        text = (config.output_dir / feed).read_text()
        assert "Second words." in text and "First words." not in text
    (site.content / "b.md").unlink()
    report = pipeline.build(config, NOW)
    assert "0 files written" not in report.lines[0]
    for feed in ("rss.xml", "tags/x/rss.xml"):
        assert "/blog/b/" not in (config.output_dir / feed).read_text()


def test_a_post_reaching_its_expiry_date_leaves_the_feeds(site):
    site.post("a.md", "title: A\npubDate: 2024-01-01")
    site.post("brief.md", "title: Brief\npubDate: 2024-12-01\nexpiryDate: 2025-01-10")
    config = site.config()
    pipeline.build(config, NOW)
    assert "Brief" in (config.output_dir / "rss.xml").read_text()
    assert "0 files written" in pipeline.build(config, NOW + timedelta(days=1)).lines[0]
    report = pipeline.build(config, NOW + timedelta(days=7))
    assert "0 files written" not in report.lines[0]
    assert "Brief" not in (config.output_dir / "rss.xml").read_text()


def test_feed_config_changes_rebuild_the_feeds(site):
    site.post("a.md", "title: A\npubDate: 2024-01-01")
    pipeline.build(site.config(), NOW)
    site.write_config(site={"title": "Renamed Blog"})
    config = site.config()
    report = pipeline.build(config, NOW)
    assert "0 files written" not in report.lines[0]
    assert "Renamed Blog" in (config.output_dir / "rss.xml").read_text()


def test_rendered_html_is_fetched_in_one_lookup(site, monkeypatch):
    for i in range(30):
        site.post(f"p{i}.md", f"title: P{i}\npubDate: 2024-01-{i % 28 + 1:02d}\ntags: [t{i % 3}]")
    config = site.config()
    pipeline.build(config, NOW)
    site.post("new.md", "title: New\npubDate: 2024-12-01\ntags: [t0]")
    lookups = []

    def spy(real):
        def cached_html(self, keys):
            keys = list(keys)
            lookups.append(len(keys))
            return real(self, keys)
        return cached_html

    # Through State, or the sqlite3 store a build uses on an existing SQLite database.
    for store in (State, Sqlite3CacheStore):
        monkeypatch.setattr(store, "cached_html", spy(store.cached_html))
    report = pipeline.build(config, NOW)
    assert "1 rendered" in report.lines[0]
    # One for the posts' HTML, one for their feed entries (feed_cache.FeedFragments).
    assert len(lookups) == 2


def _entries_serialised(caplog) -> int:
    """How many feed entries the last build serialised (feeds/render.py's debug line)."""
    records = [r for r in caplog.records if r.name == "publisher.feeds.render" and "entries" in r.msg]
    return records[-1].args[3]


def _tagged_site(site):
    for i in range(12):
        site.post(f"p{i}.md", f"title: P{i}\npubDate: 2024-01-{i + 1:02d}\ntags: [t{i % 3}, all]")
    return site.config()


def test_a_build_after_one_new_post_serialises_only_its_entries(site, caplog):
    """The feed entries of earlier builds are kept in the state (feed_cache.FeedFragments): once
    the feeds a new post changes were written before, only its own entries are serialised,
    and the feeds are byte for byte those a build from scratch writes."""
    config = _tagged_site(site)
    caplog.set_level("DEBUG", logger="publisher.feeds.render")
    pipeline.build(config, NOW)  # the first write keeps no entries of its own
    site.post("new1.md", "title: New one\npubDate: 2024-06-01\ntags: [t0, all]")
    pipeline.build(config, NOW)
    # None kept yet: the 13 posts of the site's, t0's and all's feeds, in three formats.
    assert _entries_serialised(caplog) == 3 * 13
    site.post("new2.md", "title: New two\npubDate: 2024-07-01\ntags: [t0, all]")
    pipeline.build(config, NOW)
    # Its RSS, Atom and JSON entries; every other entry of the site, t0 and all feeds is kept.
    assert _entries_serialised(caplog) == 3
    kept = {p.relative_to(config.output_dir): p.read_bytes()
            for p in sorted(config.output_dir.rglob("*")) if p.is_file()}
    fresh = site.root / "fresh"  # the same site, built from scratch
    shutil.copytree(site.content, fresh / "content")
    scratch = make_config(fresh)
    pipeline.build(scratch, NOW)
    assert {p.relative_to(scratch.output_dir): p.read_bytes()
            for p in sorted(scratch.output_dir.rglob("*")) if p.is_file()} == kept


def test_kept_feed_entries_are_not_reused_after_a_code_change(site, caplog, monkeypatch):
    config = _tagged_site(site)
    caplog.set_level("DEBUG", logger="publisher.feeds.render")
    pipeline.build(config, NOW)
    site.post("new1.md", "title: New one\npubDate: 2024-06-01\ntags: [t0, all]")
    pipeline.build(config, NOW)
    monkeypatch.setattr(content, "_CODE_HASH", "content/ edited without a version change")
    site.post("new2.md", "title: New two\npubDate: 2024-07-01\ntags: [t0, all]")
    pipeline.build(config, NOW)
    # Every entry of every feed set again: 14 posts in the site's and `all` feeds, 5 in t0's,
    # 4 in t1's and t2's, in three formats.
    assert _entries_serialised(caplog) == 3 * 14


def test_the_kept_feed_entries_of_an_older_config_are_dropped(site):
    config = _tagged_site(site)
    pipeline.build(config, NOW)
    site.post("new1.md", "title: New one\npubDate: 2024-06-01\ntags: [t0, all]")
    pipeline.build(config, NOW)

    def entries_under(base: str) -> int:
        prefix = feed_cache.FeedFragments._prefix(base)
        with State(config.database_url) as state, state.read() as conn:
            return conn.execute(sa.text("SELECT count(*) FROM render_cache WHERE key >= :a AND key < :b"),
                                {"a": prefix, "b": prefix + "g"}).scalar()

    with State(config.database_url) as state:
        old = json.loads(state.get_meta(feed_cache.FEEDS_WRITTEN_KEY))["base"]
    assert entries_under(old) == 3 * 13
    site.write_config(site={"title": "Renamed Blog"})
    pipeline.build(site.config(), NOW)
    assert entries_under(old) == 0


def test_run_once_uses_the_scan_cache(site, counted):
    site.post("a.md", "title: A\npubDate: 2024-01-01")
    config = site.config()
    pipeline.run_once(config, NOW)
    counted.clear()
    report = pipeline.run_once(config, NOW + timedelta(minutes=5))
    assert counted == [] and report.exit_status == 0
