"""cache_sqlite3.py: a build on a SQLite state database reads and writes its caches with the
standard library's sqlite3 (no SQLAlchemy import), writing the rows State reads; a cold build
creates the database as State would (publisher/sqlite_ddl.py, generated from the schema);
any database it does not know takes the full path through State.

After a schema change, regenerate publisher/sqlite_ddl.py with

    PUBLISHER_REGENERATE_DDL=1 .venv/bin/python -m pytest tests/test_cache_sqlite3.py -q
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

import publisher
from publisher import cache, cache_sqlite3, pipeline, sqlite_ddl
from publisher.content import load_posts
from publisher.state import State
from publisher.state.schema import sqlite_ddl as schema_ddl

REGENERATE = os.environ.get("PUBLISHER_REGENERATE_DDL") == "1"
DDL_FILE = Path(publisher.__file__).parent / "sqlite_ddl.py"

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


def test_no_build_imports_sqlalchemy_from_the_first_to_the_next_post(sqlite_site):
    site = sqlite_site
    # The first build creates the database: with sqlite3 and sqlite_ddl.py.
    assert _build_in_new_process(site) == [
        "feeds: 1 post, 6 files written, 0 unchanged (1 rendered, 0 from cache)",
        "sqlalchemy imported: False"]
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
    assert isinstance(store, cache_sqlite3.Sqlite3CacheStore)
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
        assert sorted(html for html, _ in cached if html.startswith("<p>")) == [
            "<p>Hello.</p>", "<p>Some <em>new</em> text.</p>"]
        # and the site feed's entries (feed_cache.FeedFragments): two posts in three formats.
        assert len(cached) == 2 + 2 * 3
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
    assert cache_sqlite3.Sqlite3CacheStore.open(path) is None  # not there yet: State creates it
    pipeline.build(config, NOW)
    store = cache_sqlite3.Sqlite3CacheStore.open(path)
    assert store is not None
    store.close()
    state = State(config.database_url)
    state.set_meta("schema_version", str(cache_sqlite3.SCHEMA_VERSION - 1))  # an older publisher's
    state.close()
    assert cache_sqlite3.Sqlite3CacheStore.open(path) is None
    foreign = tmp_path / "foreign.db"
    foreign.write_bytes(b"not a database at all")
    assert cache_sqlite3.Sqlite3CacheStore.open(str(foreign)) is None


# --- creating the database on a cold build (Sqlite3CacheStore.create) --------------------------------

def _ddl_module_text() -> str:
    statements = "".join(f"    {statement!r},\n" for statement in schema_ddl())
    return (DDL_FILE.read_text(encoding="utf-8").split("FOR_VERSION = ")[0]
            + f"FOR_VERSION = {cache_sqlite3.SCHEMA_VERSION}\n\nSTATEMENTS = (\n{statements})\n")


def test_the_generated_statements_are_the_schemas():
    expected = _ddl_module_text()
    if REGENERATE:
        DDL_FILE.write_text(expected, encoding="utf-8")
    assert DDL_FILE.read_text(encoding="utf-8") == expected, (
        "publisher/sqlite_ddl.py is out of date: regenerate it (see this file's docstring)")
    assert sqlite_ddl.FOR_VERSION == cache_sqlite3.SCHEMA_VERSION
    assert sqlite_ddl.STATEMENTS == schema_ddl()


def _schema_of(path: Path) -> tuple:
    conn = sqlite3.connect(path)
    try:
        return (sorted(conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master")),
                conn.execute("SELECT key, value FROM meta ORDER BY key").fetchall(),
                conn.execute("PRAGMA journal_mode").fetchone())
    finally:
        conn.close()


def test_a_database_created_with_sqlite3_is_the_one_state_creates(tmp_path):
    State(f"sqlite:///{tmp_path / 'by-state.db'}").close()
    store = cache_sqlite3.Sqlite3CacheStore.create(str(tmp_path / "new" / "by-sqlite3.db"))
    assert isinstance(store, cache_sqlite3.Sqlite3CacheStore)
    store.close()
    by_state, by_sqlite3 = _schema_of(tmp_path / "by-state.db"), _schema_of(tmp_path / "new" / "by-sqlite3.db")
    assert len(by_state[0]) > 10  # every table and index, with their SQL
    assert by_sqlite3 == by_state
    assert by_sqlite3[1] == [("schema_version", str(cache_sqlite3.SCHEMA_VERSION))]
    # and State opens it as its own, migrating nothing
    with State(f"sqlite:///{tmp_path / 'new' / 'by-sqlite3.db'}") as state:
        assert state.schema_version() == cache_sqlite3.SCHEMA_VERSION


def test_create_never_touches_a_file_that_is_there(tmp_path):
    foreign = tmp_path / "foreign.db"
    foreign.write_bytes(b"")
    assert cache_sqlite3.Sqlite3CacheStore.create(str(foreign)) is None
    assert foreign.read_bytes() == b""  # State's message about an empty file still applies


def test_a_database_another_process_created_meanwhile_is_opened_not_created_again(tmp_path, monkeypatch):
    path = tmp_path / "state.db"
    with State(f"sqlite:///{path}") as state:
        state.set_meta("site", "theirs")
    # As if the other process created it between create's check and its write lock.
    monkeypatch.setattr(cache_sqlite3.os.path, "lexists", lambda p: False)
    store = cache_sqlite3.Sqlite3CacheStore.create(str(path))
    assert isinstance(store, cache_sqlite3.Sqlite3CacheStore)
    try:
        assert store.get_meta("site") == "theirs"
    finally:
        store.close()


def test_a_failed_creation_leaves_no_file_and_state_creates_it(tmp_path, monkeypatch):
    path = tmp_path / "state.db"
    monkeypatch.setattr(sqlite_ddl, "STATEMENTS", sqlite_ddl.STATEMENTS + ("CREATE TABLE meta (x)",))
    assert cache_sqlite3.Sqlite3CacheStore.create(str(path)) is None
    # Rolled back: a SQLite file without a table, which State creates into (an empty,
    # 0-byte file would be refused as damaged: create removes one).
    assert path.read_bytes()[:16] == cache_sqlite3.SQLITE_MAGIC
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT count(*) FROM sqlite_master").fetchone() == (0,)
    conn.close()
    with State(f"sqlite:///{path}") as state:
        assert state.schema_version() == cache_sqlite3.SCHEMA_VERSION


# --- one interface, two stores (cache.CacheStorage) ----------------------------------------

def test_both_stores_implement_the_one_cache_interface(sqlite_site):
    """cache.py asks its storage through cache.CacheStorage only: State and the sqlite3 store
    both implement every method of it, with the same parameters, so neither can grow a cache
    method the other lacks without this failing."""
    import inspect

    members = [name for name in vars(cache.CacheStorage)
               if not name.startswith("_") or name in ("__enter__", "__exit__")]
    members = [name for name in members if callable(getattr(cache.CacheStorage, name))]
    assert {"cached_html", "store_html", "scan_cache", "store_scan_cache", "get_meta", "set_meta",
            "archived_issues", "close"} <= set(members)
    for name in members:
        wanted = list(inspect.signature(getattr(cache.CacheStorage, name)).parameters)
        for store in (State, cache_sqlite3.Sqlite3CacheStore):
            assert list(inspect.signature(getattr(store, name)).parameters) == wanted, (store, name)
    config = sqlite_site.config()
    pipeline.build(config, NOW)
    with cache.open_build_state(config) as store:
        assert isinstance(store, cache_sqlite3.Sqlite3CacheStore)
        assert isinstance(store, cache.CacheStorage)
    with State(config.database_url) as state:
        assert isinstance(state, cache.CacheStorage)


def test_the_state_never_imports_from_above_it():
    """state/ is the bottom layer: no module in it imports publisher.cache (or anything that
    is not state/, config, errors, cache_sqlite3 or sqlite_ddl), lazily or not."""
    import ast

    allowed = {"config", "errors", "cache_sqlite3", "sqlite_ddl"}
    for path in sorted((Path(publisher.__file__).parent / "state").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level >= 1:
                if node.level == 1:
                    continue  # state/ itself
                top = (node.module or "").split(".")[0]
                names = [a.name for a in node.names] if not node.module else [top]
                for name in names:
                    assert name in allowed, f"{path.name} imports ..{name} (line {node.lineno})"
