"""The state database, SQLite (the embedded default) or PostgreSQL: publisher's SQL, but for
the build's cache rows and the idle stamp that cache_sqlite3.py reads without SQLAlchemy.

`with State.open(config) as state:` opens it, creating or migrating the schema on first use,
and closes it on the way out. SQLAlchemy Core, so both backends share one code path.

`State` is one class made of one part per concern, each in its own module:
    schema.py           tables, migrations, status values, damage hints
    __init__.py         opening, transactions, database errors, integrity check, backups, meta
    lock.py             the run lock
    known_posts.py      posts seen, announced, due for a featured alert
    caches.py           render cache, scan cache, idle stamp
    outbox.py           digests and alerts with their owed deliveries, senders' claims
    ledger.py           one send's per-message writes (Ledger)
    subscriber_list.py  the subscriber list
    optin.py            double opt-in: subscribe requests, rate limits, used forms, tokens
    suppressions.py     bounces, complaints, reactivations, webhook nonces, bounce rates

Concurrency: SQLite runs in WAL mode with a busy timeout, and every write transaction starts
with BEGIN IMMEDIATE, so concurrent writers queue instead of failing with "database is
locked". Long reads (the delivery ledger) are paged, never held open across sends.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import sqlalchemy as sa
from sqlalchemy import event

# Read by cache_sqlite3.py too, without SQLAlchemy: owned there.
from ..cache_sqlite3 import ArchivedIssue, SCHEMA_VERSION, SQLITE_BUSY_TIMEOUT_MS, SQLITE_MAGIC
from ..errors import StateError
from .cache_rows import CacheRows
from .known_posts import KnownPost, KnownPosts
from .ledger import Ledger
from .lock import RunLock
from .optin import OptIn
from .outbox import DigestPlan, DigestRow, DigestVariant, Outbox, OwedDelivery
from .schema import (ACTIVE, BOUNCED, MIGRATIONS, OWED, PENDING, UNSUBSCRIBED, UTCDateTime,
                     archive_issues, bounce_events, damage_hint, deliveries, digest_variants, digests,
                     explain, insert_on_conflict, meta, metadata, posts, render_cache, scan_cache,
                     subscribers, used_forms, utcnow, web_limits)
from .subscriber_list import Subscriber, SubscriberList, new_token
from .suppressions import Suppressions

if TYPE_CHECKING:
    from ..config import Config

__all__ = [
    "ACTIVE", "ArchivedIssue", "BOUNCED", "DigestPlan", "DigestRow", "DigestVariant", "KnownPost", "Ledger", "MIGRATIONS", "OWED", "OwedDelivery",
    "PENDING", "SCHEMA_VERSION", "SQLITE_BUSY_TIMEOUT_MS", "SQLITE_MAGIC", "State", "Subscriber",
    "UNSUBSCRIBED", "UTCDateTime", "archive_issues", "bounce_events", "damage_hint", "deliveries", "digest_variants", "digests", "meta",
    "metadata", "new_token", "normalize_url", "posts", "render_cache", "scan_cache", "subscribers",
    "used_forms", "utcnow", "web_limits",
]

log = logging.getLogger(__name__)

def normalize_url(url: str) -> str:
    """postgresql:// means psycopg 3 (SQLAlchemy's default would be psycopg2). The password
    may come from the URL or, as libpq does, from PGPASSWORD; it is never logged."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def _is_driver_failure(e: BaseException) -> bool:
    """A database error that is the file's or the server's (damaged, full, read-only, gone),
    not a constraint the code handles (IntegrityError) or a bug (ProgrammingError)."""
    return type(e) in (sa.exc.OperationalError, sa.exc.DatabaseError)


class State(RunLock, KnownPosts, CacheRows, Outbox, SubscriberList, OptIn, Suppressions):
    """A handle on the state database. Cheap to create; one per command."""

    def __init__(self, url: str, *, pool_size: int | None = None):
        """`pool_size`: connections kept for threads that use the handle at once (SQLAlchemy's
        default, 5 and 10 more on demand, is for a command, not a server's threads)."""
        self.url = normalize_url(url)
        pool = {} if pool_size is None else {"pool_size": pool_size}
        url = self.url
        self.is_sqlite = url.startswith("sqlite")
        self.path: str | None = None  # the SQLite file, if any
        existed = False
        try:
            if self.is_sqlite:
                path = url.split("///", 1)[1] if "///" in url else ""
                if path and path != ":memory:":
                    self.path = path
                    existed = self._check_sqlite_file(Path(path))
                    Path(path).parent.mkdir(parents=True, exist_ok=True)
                self.engine = sa.create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
                                             **pool)
                self._sqlite_setup(self.engine)
            else:
                self.engine = sa.create_engine(url, pool_pre_ping=True, **pool)
            self._migrate(existed)
        except sa.exc.SQLAlchemyError as e:
            reason = str(e.orig).strip().splitlines()[0] if getattr(e, "orig", None) is not None else str(e)
            raise StateError(explain(self.describe(), self.path, f"{e.__class__.__name__}: {reason}")) from e

    @classmethod
    def open(cls, config: Config) -> State:
        """The state database named by `config` (state.database), created or migrated.
        Use it as a context manager: `with State.open(config) as state:` closes it."""
        return cls(config.database_url)

    def __enter__(self) -> State:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _check_sqlite_file(self, path: Path) -> bool:
        """True if the file exists and looks like a SQLite database; StateError if it exists
        and cannot be one. A state file never silently becomes a new site: an empty or
        foreign file would otherwise be "migrated" into a blank database, and every
        subscriber and owed delivery with it would be gone without a word."""
        try:
            with path.open("rb") as f:
                head = f.read(len(SQLITE_MAGIC))
        except FileNotFoundError:
            return False
        except OSError as e:
            raise StateError(f"state database {path}: cannot be read ({e.strerror})") from e
        if not head:
            raise StateError(
                f"state database {path} is empty (0 bytes), not a publisher database: nothing "
                "was done. If it was truncated, restore a backup (`publisher backup` makes them); to "
                "start this site afresh, delete the file")
        if head != SQLITE_MAGIC:
            raise StateError(
                f"state database {path} is not a SQLite database (it starts with {head[:8]!r}): "
                "nothing was done. Check state.database in the config, or restore a backup")
        return True

    def describe(self) -> str:
        """The database, for messages: never includes a password."""
        try:
            return sa.engine.make_url(self.url).render_as_string(hide_password=True)
        except Exception:
            return "(unparseable URL)"

    @staticmethod
    def _sqlite_setup(engine: sa.Engine) -> None:
        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn, _record):
            # We issue BEGIN ourselves (below), so the driver must not.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cur.execute("PRAGMA journal_mode = WAL")
            cur.execute("PRAGMA synchronous = NORMAL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn):
            if conn.get_execution_options().get("publisher_write"):
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                conn.exec_driver_sql("BEGIN")

    @contextlib.contextmanager
    def write(self) -> Iterator[sa.Connection]:
        """A write transaction (BEGIN IMMEDIATE on SQLite: writers queue, none fails)."""
        with self._database_errors():
            with self.engine.connect().execution_options(publisher_write=True) as conn:
                with conn.begin():
                    yield conn

    @contextlib.contextmanager
    def read(self) -> Iterator[sa.Connection]:
        with self._database_errors():
            with self.engine.connect() as conn:
                with conn.begin():
                    yield conn

    @contextlib.contextmanager
    def _database_errors(self) -> Iterator[None]:
        """A database that fails (disk full, read-only, server gone) is the user's problem to
        fix, not a bug: say which database and what it said. The transaction was rolled back."""
        try:
            yield
        except sa.exc.DatabaseError as e:
            if not _is_driver_failure(e):
                raise
            reason = str(e.orig).strip().splitlines()[0] if e.orig is not None else str(e)
            raise StateError(explain(self.describe(), self.path, reason)) from e

    def close(self) -> None:
        """Close the database's connections (what leaving `with State.open(...)` does)."""
        self.engine.dispose()

    def check_integrity(self) -> None:
        """StateError if SQLite's quick_check finds the file damaged (a few milliseconds
        per megabyte; PostgreSQL looks after its own pages)."""
        if not self.is_sqlite or not self.path:
            return
        with self.read() as conn:
            found = [row[0] for row in conn.exec_driver_sql("PRAGMA quick_check(3)")]
        if found != ["ok"]:
            raise StateError(explain(self.describe(), self.path,
                                      "integrity check failed (database disk image is "
                                      "malformed): " + "; ".join(found)))

    def backup(self, dest: Path) -> int:
        """Copy the SQLite database to `dest` with SQLite's online backup API (consistent
        while other commands read and write it), check the copy, then move it into place.
        Returns its size in bytes. StateError for PostgreSQL, or a damaged database."""

        if not self.is_sqlite or not self.path:
            raise StateError(f"state database {self.describe()}: `publisher backup` copies a "
                             "SQLite file; back up PostgreSQL with pg_dump")
        dest.parent.mkdir(parents=True, exist_ok=True)
        partial = dest.with_name(dest.name + ".partial")
        try:
            source = sqlite3.connect(self.path, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)
            try:
                copy = sqlite3.connect(partial)
                try:
                    source.backup(copy)
                    found = [row[0] for row in copy.execute("PRAGMA quick_check(3)")]
                finally:
                    copy.close()
            finally:
                source.close()
            if found != ["ok"]:
                raise StateError(explain(self.describe(), self.path,
                                          "integrity check of the copy failed (database disk "
                                          "image is malformed): " + "; ".join(found)))
            os.replace(partial, dest)
        except sqlite3.DatabaseError as e:
            raise StateError(explain(self.describe(), self.path, str(e))) from e
        except OSError as e:
            raise StateError(f"cannot write the backup {dest}: {e.strerror}") from e
        finally:
            partial.unlink(missing_ok=True)
        return dest.stat().st_size

    def _migrate(self, existed: bool = False) -> None:
        with self.write() as conn:
            if not sa.inspect(conn).has_table("meta"):
                tables = sa.inspect(conn).get_table_names() if existed else []
                if tables:
                    raise StateError(
                        f"state database {self.describe()} is not a publisher database (it "
                        f"holds {', '.join(sorted(tables)[:5])} but no publisher schema): "
                        "nothing was done. Check state.database in the config")
                metadata.create_all(conn)
                conn.execute(meta.insert().values(key="schema_version", value=str(SCHEMA_VERSION)))
                return
            found = conn.execute(sa.select(meta.c.value).where(meta.c.key == "schema_version")).scalar()
            version = int(found or 1)
            if version > SCHEMA_VERSION:
                raise StateError(
                    f"state database {self.describe()}: schema version {version} is newer than this "
                    f"publisher understands ({SCHEMA_VERSION}); upgrade publisher"
                )
            for target in range(version + 1, SCHEMA_VERSION + 1):
                log.info("migrating state database to schema version %d", target)
                MIGRATIONS[target](conn)
                conn.execute(meta.update().where(meta.c.key == "schema_version").values(value=str(target)))
            metadata.create_all(conn)  # tables added by later versions

    def schema_version(self) -> int:
        return int(self.get_meta("schema_version") or 0)

    def get_meta(self, key: str) -> str | None:
        with self.read() as conn:
            return conn.execute(sa.select(meta.c.value).where(meta.c.key == key)).scalar()

    def _set_meta(self, conn: sa.Connection, key: str, value: str) -> None:
        stmt = insert_on_conflict(conn, meta).values(key=key, value=value)
        conn.execute(stmt.on_conflict_do_update(index_elements=[meta.c.key], set_={"value": value}))

    def set_meta(self, key: str, value: str) -> None:
        with self.write() as conn:
            self._set_meta(conn, key, value)

    def secret(self, key: str) -> str:
        """A random key kept in `meta` under `key`, made on first use (the subscribe form's
        and VERP's signing keys). Insert-if-absent, never overwrite: a process starting at
        the same moment may have stored one first, and every process must end up with the
        same one."""
        found = self.get_meta(key)
        if found:
            return found
        with self.write() as conn:
            try:
                with conn.begin_nested():
                    conn.execute(meta.insert().values(key=key, value=secrets.token_urlsafe(32)))
            except sa.exc.IntegrityError:
                pass
            return conn.execute(sa.select(meta.c.value).where(meta.c.key == key)).scalar_one()

    def get_time(self, key: str) -> datetime | None:
        value = self.get_meta(key)
        return datetime.fromisoformat(value) if value else None
