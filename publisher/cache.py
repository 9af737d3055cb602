"""The caches' storage and the first "has this changed?" answer of a build, each declaring
next to itself what it depends on:

- `CacheStorage`: what every cache reads and writes through (the state, or cache_sqlite3's
  SQLite reader that imports no SQLAlchemy), and `open_build_state`, which picks one;
- the scan cache (`load_site`, `scan_fingerprint`): a post file whose path, size and mtime
  match is not read again;
- the config's slow checks, done once per config (`check_config_once`).

The others have rooms of their own: feed_cache.py (the render cache and the feed
fingerprints: only the feed sets whose posts, config or code changed are rendered and
written) and idle.py (the idle stamp: a `publisher run` with nothing to do answers in a few
milliseconds).

The SQL behind them is the state layer's (publisher.state; cache_sqlite3.py for the reads that must not
import SQLAlchemy). This module is imported by the idle run's shortcut (__main__.py): its
imports stay cheap, and the rest is imported where it is used.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Protocol, runtime_checkable


if TYPE_CHECKING:
    from .config import Config
    from .content import LoadResult
    from .cache_sqlite3 import ArchivedIssue

log = logging.getLogger(__name__)


@runtime_checkable
class CacheStorage(Protocol):
    """Where the caches keep their rows, and the one interface every answer here asks:

    - `State` (state/, SQLAlchemy: SQLite or PostgreSQL; the rows in state/cache_rows.py),
    - `Sqlite3CacheStore` (cache_sqlite3.py: the same rows and transactions on a SQLite file
      of the current schema through the standard library's sqlite3, because importing
      SQLAlchemy costs more than a build after one new post does besides).

    open_build_state picks one; nothing else may tell them apart (tests/test_cache_sqlite3.py
    checks that both implement this)."""

    def get_meta(self, key: str) -> str | None: ...

    def set_meta(self, key: str, value: str) -> None: ...

    def archived_issues(self) -> list[ArchivedIssue]: ...

    def cached_html(self, keys: Iterable[str]) -> dict[str, str]: ...

    def store_html(self, rendered: dict[str, str], now: datetime | None = None) -> None: ...

    def drop_html(self, prefix: str) -> None: ...

    def scan_cache(self, fingerprint: str) -> dict[str, tuple[int, int, str, str | None, str | None]]: ...

    def store_scan_cache(self, fingerprint: str, changed: dict[str, tuple],
                         removed: Iterable[str]) -> None: ...

    def close(self) -> None: ...

    def __enter__(self) -> CacheStorage: ...

    def __exit__(self, *exc_info: object) -> None: ...

# --- the scan cache -------------------------------------------------------------------------
# Depends on each file's path, size and mtime_ns (content.load_posts compares them), on the
# code of content/ (content.code_hash), and on these config keys, which read_post uses:


def scan_fingerprint(config: Config) -> str:
    """Everything a parsed Post depends on besides its file's bytes: the config keys that
    read_post uses, and the code of content/ (so an upgrade that changes parsing never
    reuses posts parsed by the old code). A cache entry under another fingerprint is stale."""
    # lazy: content/ (PyYAML, cmarkgfm, nh3: ~60 ms), which the idle shortcut must not pay
    from .content import code_hash
    from .engines import engine_for
    from .content.markup import engine_key

    parts = {
        "code": code_hash(),
        "content_dir": str(config.content.dir),
        "url": config.site.url,
        "permalink": config.content.permalink,
        "dialect": config.content.dialect,
        "language": config.site.language,
        "engine": engine_for(config).fingerprint(config),
        "timezone": config.newsletter.timezone,
        "author": [config.site.author.name, config.site.author.email],
        "markdown": list(engine_key(config)),  # a summary is taken from the rendered body
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def load_site(config: Config, state: CacheStorage, now: datetime) -> LoadResult:
    """content.load_posts through the state's scan cache: only new or changed files are read
    and parsed; the cache is written back only when something changed."""
    # lazy: content/ (PyYAML, cmarkgfm, nh3: ~60 ms), which the idle shortcut must not pay
    from .content import ScanEntry, load_posts

    fingerprint = scan_fingerprint(config)
    cache = {path: ScanEntry(*row) for path, row in state.scan_cache(fingerprint).items()}
    loaded = load_posts(config, now, cache=cache)
    _store_scan(state, fingerprint, loaded)
    return loaded


def _store_scan(state: CacheStorage, fingerprint: str, loaded: LoadResult) -> None:
    if loaded.cache_changed or loaded.cache_removed:
        state.store_scan_cache(fingerprint, loaded.cache_changed, loaded.cache_removed)
    log.debug("scan: %d files from the cache, %d read", loaded.cache_hits, len(loaded.cache_changed))
    # Stored: each read post's fields as JSON (~0.8 KB a post, 16 MB at 20,000 posts on a
    # cold build) need not stay in memory while the feeds are rendered.
    loaded.cache_changed.clear()


def open_and_load_site(config: Config, now: datetime) -> tuple[CacheStorage, LoadResult]:
    """check_config_once (before anything is written), open_build_state, then load_site;
    the caller closes the state (`with state:`). On a cold build (no SQLite state database
    yet, so no scan cache to read) the check (apscheduler's import: ~30 ms) and the
    database's creation run while load_posts' worker process already parses
    (content/parallel.py)."""
    path = sqlite_path(config)
    opened: list[CacheStorage] = []

    def check_and_open() -> None:
        checked = check_config_once(config)  # raises ConfigError before anything is written
        opened.append(open_build_state(config))
        record_config_checked(opened[0], checked)

    try:
        if path is None or os.path.exists(path):
            check_and_open()
            return opened[0], load_site(config, opened[0], now)
        # lazy: content/ (PyYAML, cmarkgfm, nh3: ~60 ms), which the idle shortcut must not pay
        from .content import load_posts

        def meanwhile() -> None:
            check_and_open()
            # Every post is new: the feeds are written next. feedgen, lxml and dateutil are
            # imported now (~25 ms), while the worker parses.
            from . import feeds  # noqa: F401

        loaded = load_posts(config, now, cache={}, meanwhile=meanwhile)
        _store_scan(opened[0], scan_fingerprint(config), loaded)
    except BaseException:
        for state in opened:
            state.close()
        raise
    return opened[0], loaded


def open_build_state(config: Config) -> CacheStorage:
    """What a build reads and writes its caches through: on an existing SQLite state database
    of the current schema, the standard library's sqlite3 (cache_sqlite3.Sqlite3CacheStore: no
    SQLAlchemy import); else, or when a WebSub hub must be pinged (websub.py keeps its
    retries in State), State, which creates, migrates or explains."""
    # lazy: cache_sqlite3 (sqlite3) ~7 ms, only where a SQLite file is read
    from .cache_sqlite3 import Sqlite3CacheStore

    path = sqlite_path(config)
    store = None
    if path and not config.feeds.websub_hub:
        store = Sqlite3CacheStore.open(path) if os.path.lexists(path) else Sqlite3CacheStore.create(path)
    if store is not None:
        return store
    from .state import State  # lazy: SQLAlchemy's import, ~0.2 s

    return State.open(config)


# --- the config's slow checks, done once per config ----------------------------------------
# load_config(defer_slow_checks=True) leaves out the checks that need a slow import (the cron
# schedule's, through APScheduler: ~55 ms, a sixth of a build after one new post). A build
# runs them once and records that it did, for exactly those values; it runs them again when
# any of them changes. Depends on: the deferred keys' values (Config.deferred) and this code.
CHECKED_KEY = "config_checked"
CHECK_CODE_FILES = ("config.py", "cron.py", "cache.py")  # the checks, and this record of them


def _deferred_fingerprint(config: Config) -> str:
    here = Path(__file__).parent
    h = hashlib.sha256(json.dumps([(dotted, repr(value)) for dotted, _check, value in config.deferred])
                       .encode("utf-8", "surrogatepass"))
    for name in CHECK_CODE_FILES:
        h.update(hashlib.sha256((here / name).read_bytes()).digest())
    return h.hexdigest()


def check_config_once(config: Config) -> str | None:
    """Config.check_deferred(), unless the SQLite state database records that these very
    values passed it (read without creating or opening anything for writing: a config that
    fails leaves nothing written). Raises ConfigError as load_config would have. Returns the
    fingerprint to record_config_checked() once the state is open, or None if nothing to do."""
    # lazy: cache_sqlite3 (sqlite3) ~7 ms, only where a SQLite file is read
    from . import cache_sqlite3

    if not config.deferred:
        return None  # loaded with every check done
    fingerprint = _deferred_fingerprint(config)
    path = sqlite_path(config)
    if path is not None and cache_sqlite3.read_meta(path, CHECKED_KEY) == fingerprint:
        return None
    config.check_deferred()
    return fingerprint


def record_config_checked(state: CacheStorage, fingerprint: str | None) -> None:
    """What check_config_once returned, recorded for the next build."""
    if fingerprint is not None:
        state.set_meta(CHECKED_KEY, fingerprint)


# --- paths both the caches and the idle stamp (idle.py) use ---------------------------

def stat_files(output_dir: Path, rels) -> dict[str, list[int]]:
    """{relative path: [size, mtime_ns]} of the files that exist."""
    found = {}
    for rel in rels:
        try:
            st = (output_dir / rel).stat()
        except OSError:
            continue
        found[rel] = [st.st_size, st.st_mtime_ns]
    return found


def sqlite_path(config: Config) -> str | None:
    """The SQLite file behind state.database, or None for any other database."""
    url = config.database_url
    if not url.startswith("sqlite:///"):
        return None
    path = url[len("sqlite:///"):]
    return path if path and path != ":memory:" else None
