"""cachestore.py: a build on an existing SQLite state database reads and writes its caches
with the standard library's sqlite3 (no SQLAlchemy import), writing the rows State reads;
any database it does not know takes the full path through State."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timezone

import pytest

from publisher import cache, cachestore, pipeline
from publisher.content import load_posts
from publisher.state import State

NOW = datetime(2025, 1, 6, 9, 0, tzinfo=timezone.utc)

# Build in a fresh interpreter and say whether SQLAlchemy was imported.
_BUILD = """
import sys
from datetime import datetime, timezone
from publisher import pipeline
from publisher.config import load_config
report = pipeline.build(load_config(sys.argv[1]), datetime(2025, 1, 6, 9, tzinfo=timezone.utc))
print(report.lines[0])
print("sqlalchemy imported:", "sqlalchemy" in sys.modules)
"""


def _build_in_new_process(site) -> list[str]:
    done = subprocess.run([sys.executable, "-c", _BUILD, str(site.root / "config.yaml")],
                          capture_output=True, text=True, check=True, env={**os.environ})
    return done.stdout.splitlines()


@pytest.fixture
def sqlite_site(site):
    if not site.database.startswith("sqlite:///"):
        pytest.skip("the sqlite3 path is for SQLite state databases (PostgreSQL goes through State)")
    site.post("a.md", "title: A\npubDate: 2024-01-01\ntags: [x]")
    return site


def test_a_build_after_one_new_post_never_imports_sqlalchemy(sqlite_site):
    site = sqlite_site
    # The first build creates the database: through State.
    assert _build_in_new_process(site) == [
        "feeds: 1 post, 6 files written, 0 unchanged (1 rendered, 0 from cache)",
        "sqlalchemy imported: True"]
    site.post("b.md", "title: B\npubDate: 2024-01-02\ntags: [y]")
    assert _build_in_new_process(site) == [
        "feeds: 2 posts, 6 files written, 3 unchanged (1 rendered, 1 from cache)",
        "sqlalchemy imported: False"]
    assert _build_in_new_process(site) == [
        "feeds: 2 posts, 0 files written, 9 unchanged (0 rendered, 2 from cache)",
        "sqlalchemy imported: False"]


def test_what_the_sqlite3_path_writes_is_what_state_reads(sqlite_site):
    site = sqlite_site
    config = site.config()
    pipeline.build(config, NOW)  # creates the database
    site.post("b.md", "title: B\npubDate: 2024-01-02", "Some *new* text.\n")
    store = cache.open_build_state(config)
    assert isinstance(store, cachestore.CacheStore)
    try:
        loaded = cache.load_site(config, store, NOW)
        pipeline.write_site_feeds(config, store, loaded, pipeline.Report(), NOW)
    finally:
        store.close()
    state = State(config.database_url)
    try:
        rows = state.scan_cache(cache.scan_fingerprint(config))
        assert sorted(rows) == ["content/a.md", "content/b.md"]
        b = next(p for p in load_posts(config, NOW).posts if p.title == "B")
        assert rows["content/b.md"][2] == b.content_hash
        with state.read() as conn:
            cached = conn.exec_driver_sql("SELECT html, used_at FROM render_cache").all()
        assert sorted(html for html, _ in cached) == ["<p>Hello.</p>", "<p>Some <em>new</em> text.</p>"]
        # As SQLAlchemy stores a DateTime on SQLite, so State reads it back.
        assert all(len(used_at) == len("2025-01-06 09:00:00.000000") for _, used_at in cached)
        # State finds every post in the scan cache, the feeds' record, and the HTML under the
        # keys it looks up: a deleted feed file is written again, and nothing is rendered.
        loaded = cache.load_site(config, state, NOW)
        assert loaded.cache_hits == 2 and not loaded.cache_changed
        (config.output_dir / "rss.xml").unlink()
        report = pipeline.Report()
        pipeline.write_site_feeds(config, state, loaded, report, NOW)
        assert report.lines == ["feeds: 2 posts, 1 file written, 5 unchanged (0 rendered, 2 from cache)"]
    finally:
        state.close()


def test_a_database_it_does_not_know_takes_the_full_path(sqlite_site, tmp_path):
    site = sqlite_site
    config = site.config()
    path = cache.sqlite_path(config)
    assert cachestore.CacheStore.open(path) is None  # not there yet: State creates it
    pipeline.build(config, NOW)
    store = cachestore.CacheStore.open(path)
    assert store is not None
    store.close()
    state = State(config.database_url)
    state.set_meta("schema_version", str(cachestore.SCHEMA_VERSION - 1))  # an older publisher's
    state.close()
    assert cachestore.CacheStore.open(path) is None
    foreign = tmp_path / "foreign.db"
    foreign.write_bytes(b"not a database at all")
    assert cachestore.CacheStore.open(str(foreign)) is None
