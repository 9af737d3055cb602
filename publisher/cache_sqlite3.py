"""The caches' storage on a SQLite state database through the standard library's sqlite3
(`Sqlite3CacheStore`, one of the two implementations of cache.CacheStorage; the other is
State, whose rows are in state/cache_rows.py), and the idle run's stamp read: importing
SQLAlchemy alone costs ~0.2 s, more than a build after one new post does besides (issue 19).

This is the one module outside the `publisher.state` package that holds SQL. It belongs to
the state layer but cannot live inside that package: importing `publisher.state` imports
SQLAlchemy, which is the cost this module exists to avoid. It owns the facts both need
without SQLAlchemy: the schema version, how a SQLite file is recognised, and the idle
stamp's meta key. It creates a
database only where none exists (a cold build: `Sqlite3CacheStore.create`, with the statements of
sqlite_ddl.py, which tests keep equal to what State's create_all makes), and never migrates
one: a file that is not SQLite, or another schema version, and the caller takes the full path
through State, which migrates or explains. PostgreSQL always goes through State.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterable
from urllib.parse import quote

from .errors import StateError

log = logging.getLogger(__name__)

SCHEMA_VERSION = 8  # of the state database (publisher.state.schema migrates to it)
SQLITE_BUSY_TIMEOUT_MS = 30_000
SQLITE_MAGIC = b"SQLite format 3\x00"  # the first 16 bytes of every SQLite database file
# The meta key of the idle run's stamp (idle.still_idle reads it here; State writes it and
# removes it when a digest is recorded).
IDLE_STAMP_KEY = "idle_stamp"
_CHUNK = 500  # keys per IN (...): under SQLite's limit of bound parameters


def read_meta(path: str, key: str) -> str | None:
    """One value of the meta table, read-only: a missing database stays missing, and the
    caller never writes. None when there is no such database, table or key."""
    try:
        conn = sqlite3.connect(f"file:{quote(path)}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error:
        return None
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    except sqlite3.Error:
        return None  # no meta table yet, locked, or not a database: the full run says which
    finally:
        conn.close()
    return row[0] if row else None


@dataclass(frozen=True)
class ArchivedIssue:
    """One issue of the newsletter archive (newsletter/archive.py), as State and Sqlite3CacheStore
    read it."""

    number: int  # the digest's id: the page's folder name, stable forever
    kind: str  # digest | alert
    subject: str
    created_at: datetime  # aware, UTC
    posts: str  # JSON, as archive.snapshot wrote it


class Sqlite3CacheStore:
    """The part of State a build uses (scan cache, render cache, meta), on a SQLite file
    that already holds the current schema; the same rows and transactions as State's (WAL,
    a busy timeout, BEGIN IMMEDIATE for writes)."""

    def __init__(self, path: str, conn: sqlite3.Connection):
        self.path, self.conn = path, conn

    @classmethod
    def open(cls, path: str) -> Sqlite3CacheStore | None:
        """The store on `path`, or None when the full path must be taken (see above)."""
        try:
            with open(path, "rb") as f:
                if f.read(len(SQLITE_MAGIC)) != SQLITE_MAGIC:
                    return None
        except OSError:
            return None
        try:
            conn = sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000,
                                   isolation_level=None)
        except sqlite3.Error:
            return None
        try:
            conn.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        except sqlite3.Error:
            row = None  # damaged, locked or foreign: State says which
        if row is None or row[0] != str(SCHEMA_VERSION):
            conn.close()
            return None
        return cls(path, conn)

    @classmethod
    def create(cls, path: str) -> Sqlite3CacheStore | None:
        """A new state database on `path`, as State creates one (the tables of sqlite_ddl.py
        and the schema version, in one transaction), where no file exists yet. None when one
        appeared meanwhile, or anything fails: the caller then takes the full path through
        State, which opens what another process created, or explains what went wrong."""
        from . import sqlite_ddl  # lazy: the statements, only on a cold build

        if sqlite_ddl.FOR_VERSION != SCHEMA_VERSION or os.path.lexists(path):
            return None
        try:
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            conn = sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000,
                                   isolation_level=None)
        except (OSError, sqlite3.Error):
            return None
        try:
            conn.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("BEGIN IMMEDIATE")
            try:
                # Another process may have created it since the check above: as State's
                # _migrate, whoever holds the write lock first creates, the other one opens.
                if conn.execute("SELECT 1 FROM sqlite_master").fetchone() is None:
                    for statement in sqlite_ddl.STATEMENTS:
                        conn.execute(statement)
                    conn.execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?)",
                                 (str(SCHEMA_VERSION),))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as e:
            conn.close()
            log.debug("state database %s not created with sqlite3 (%s): through State", path, e)
            try:  # an empty file left behind would read as a damaged database to State
                if os.path.getsize(path) == 0:
                    os.unlink(path)
            except OSError:
                pass
            return None
        conn.close()
        return cls.open(path)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Sqlite3CacheStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()  # as State's: `with cache.open_build_state(config) as state:`

    def _failed(self, e: sqlite3.Error):
        """The database failed (disk full, damaged, read-only): State's message for it."""
        from .state.schema import explain  # lazy: SQLAlchemy's import (~0.2 s), on this error only

        return StateError(explain(self.path, self.path, str(e)))

    def _read(self, sql: str, params: tuple = ()) -> list[tuple]:
        try:
            return self.conn.execute(sql, params).fetchall()
        except sqlite3.Error as e:
            raise self._failed(e) from e

    def _write(self, statements: Iterable[tuple[str, list[tuple]]]) -> None:
        """Each (sql, rows) executed for its rows, all in one write transaction."""
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                for sql, rows in statements:
                    self.conn.executemany(sql, rows)
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")
        except sqlite3.Error as e:
            raise self._failed(e) from e

    # --- meta (State.get_meta, State.set_meta) ---

    def get_meta(self, key: str) -> str | None:
        rows = self._read("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    def set_meta(self, key: str, value: str) -> None:
        self._write([("INSERT INTO meta (key, value) VALUES (?, ?) "
                      "ON CONFLICT (key) DO UPDATE SET value = excluded.value", [(key, value)])])

    # --- the newsletter archive (State.archived_issues) ---

    def archived_issues(self) -> list[ArchivedIssue]:
        rows = self._read("SELECT d.id, d.kind, d.subject, d.created_at, a.posts FROM digests d "
                          "JOIN archive_issues a ON a.digest_id = d.id ORDER BY d.id DESC")
        # created_at as SQLAlchemy's DateTime stores it on SQLite: naive UTC (state.UTCDateTime).
        return [ArchivedIssue(number, kind, subject,
                              datetime.fromisoformat(created).replace(tzinfo=timezone.utc), posts)
                for number, kind, subject, created, posts in rows]

    # --- the render cache (State.cached_html, State.store_html, State.drop_html) ---

    def cached_html(self, keys: Iterable[str]) -> dict[str, str]:
        keys = list(keys)
        found: dict[str, str] = {}
        for i in range(0, len(keys), _CHUNK):
            chunk = keys[i:i + _CHUNK]
            found.update(self._read(
                f"SELECT key, html FROM render_cache WHERE key IN ({','.join('?' * len(chunk))})",
                tuple(chunk)))
        return found

    def store_html(self, rendered: dict[str, str], now: datetime | None = None) -> None:
        if not rendered:
            return
        # As SQLAlchemy's DateTime stores it on SQLite: UTC, naive, with microseconds.
        used_at = (now or datetime.now(timezone.utc)).astimezone(timezone.utc).replace(
            tzinfo=None).isoformat(sep=" ", timespec="microseconds")
        self._write([("INSERT INTO render_cache (key, html, used_at) VALUES (?, ?, ?) "
                      "ON CONFLICT (key) DO NOTHING",
                      [(k, v, used_at) for k, v in rendered.items()])])

    def drop_html(self, prefix: str) -> None:
        # Keys are hex digits: those starting with `prefix` sort from it to it + "g".
        self._write([("DELETE FROM render_cache WHERE key >= ? AND key < ?", [(prefix, prefix + "g")])])

    # --- the scan cache (State.scan_cache, State.store_scan_cache) ---

    def scan_cache(self, fingerprint: str) -> dict[str, tuple[int, int, str, str | None, str | None]]:
        rows = self._read("SELECT path, size, mtime_ns, content_hash, post, problem FROM scan_cache "
                          "WHERE fingerprint = ?", (fingerprint,))
        return {r[0]: (r[1], r[2], r[3], r[4], r[5]) for r in rows}

    def store_scan_cache(self, fingerprint: str, changed: dict[str, tuple], removed: Iterable[str]) -> None:
        removed = list(removed)
        self._write([
            ("DELETE FROM scan_cache WHERE fingerprint != ?", [(fingerprint,)]),
            ("DELETE FROM scan_cache WHERE path = ?", [(path,) for path in removed]),
            ("INSERT INTO scan_cache (path, size, mtime_ns, content_hash, fingerprint, post, problem) "
             "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (path) DO UPDATE SET size = excluded.size, "
             "mtime_ns = excluded.mtime_ns, content_hash = excluded.content_hash, "
             "fingerprint = excluded.fingerprint, post = excluded.post, problem = excluded.problem",
             [(path, size, mtime_ns, content_hash, fingerprint, post, problem)
              for path, (size, mtime_ns, content_hash, post, problem) in changed.items()]),
        ])
