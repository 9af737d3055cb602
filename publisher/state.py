"""The only SQL in publisher: posts seen, rendered-HTML cache, digests, the per-subscriber
delivery ledger, subscribers, and the run lock.

SQLAlchemy Core, so the embedded SQLite default and a PostgreSQL URL share one code path.
The schema carries a version in `meta`; `State()` creates or migrates it on first use.

Concurrency: SQLite runs in WAL mode with a busy timeout, and every write transaction starts
with BEGIN IMMEDIATE, so concurrent writers queue instead of failing with "database is
locked". Long reads (the delivery ledger) are paged, never held open across sends.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator

import sqlalchemy as sa
from sqlalchemy import event

from .errors import LockedError, PublisherError, StateError
from .cache import STAMP_KEY as IDLE_STAMP_KEY
# Read by cachestore.py too, without SQLAlchemy: owned there.
from .cachestore import ArchivedIssue, SCHEMA_VERSION, SQLITE_BUSY_TIMEOUT_MS, SQLITE_MAGIC

log = logging.getLogger(__name__)


# Subscriber statuses. Only "active" subscribers are mailed.
PENDING, ACTIVE, UNSUBSCRIBED, BOUNCED = "pending", "active", "unsubscribed", "bounced"
# Delivery statuses. "sending" = intent recorded, result not yet; "deferred" = transient
# failures exhausted this run's attempts: still owed, retried on the next run.
OWED = ("pending", "sending", "deferred")


class UTCDateTime(sa.types.TypeDecorator):
    """Aware datetimes in, aware UTC datetimes out, on every backend."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime reached the database")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        return value.replace(tzinfo=timezone.utc)


metadata = sa.MetaData()

meta = sa.Table(
    "meta", metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

render_cache = sa.Table(
    "render_cache", metadata,
    sa.Column("key", sa.String(64), primary_key=True),  # content.Post.render_key
    sa.Column("html", sa.Text, nullable=False),
    sa.Column("used_at", UTCDateTime, nullable=False),
)

# The scan cache (content.load_posts): a file whose path, size and mtime_ns match its row is
# not read again. `fingerprint` is cache.scan_fingerprint at the time: rows under another
# fingerprint (config or parser changed) are stale.
scan_cache = sa.Table(
    "scan_cache", metadata,
    sa.Column("path", sa.Text, primary_key=True),  # relative to the site folder
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("mtime_ns", sa.BigInteger, nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False),  # sha256 of the file's bytes
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("post", sa.Text),  # the parsed Post fields as JSON (no body); NULL: not a post
    sa.Column("problem", sa.Text),  # why the file is skipped, reported again on every run
)

posts = sa.Table(
    "posts", metadata,
    sa.Column("id", sa.Text, primary_key=True),  # content.Post.id
    sa.Column("url", sa.Text, nullable=False),
    # The file it was read from, relative to the site folder (content.Post.source): with the
    # id and the URL, how a post is recognised after a rename or a change of URL rules.
    sa.Column("source", sa.Text),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("published_at", UTCDateTime, nullable=False),
    sa.Column("featured", sa.Boolean, nullable=False, default=False),
    sa.Column("first_seen_at", UTCDateTime, nullable=False),
    # NULL until the post went out in a digest (or was part of the first run's baseline).
    sa.Column("announced_at", UTCDateTime),
    sa.Column("announced_digest_id", sa.Integer),
    # A featured alert is owed (set by the scanner), then sent (alerted_at).
    sa.Column("alert_due", sa.Boolean, nullable=False, default=False),
    sa.Column("alerted_at", UTCDateTime),
)

subscribers = sa.Table(
    "subscribers", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("email", sa.Text, nullable=False),
    sa.Column("email_key", sa.Text, nullable=False, unique=True),  # lowercased: no duplicates
    sa.Column("name", sa.Text, nullable=False, default=""),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("token", sa.String(64), nullable=False, unique=True),  # unsubscribe links
    sa.Column("confirm_token", sa.String(64), unique=True),  # double opt-in, while pending
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("confirmed_at", UTCDateTime),
    sa.Column("confirm_sent_at", UTCDateTime),
    sa.Column("last_reply", sa.Text),  # the SMTP reply that bounced it
)

# Rate limits of the subscribe endpoint, shared by every `serve` process: one row per key
# ("total", "client:<address>", "mailbox:<normalised address>") and hour. Rows of past hours
# are deleted as new requests come, so the table holds at most about two hours of keys.
web_limits = sa.Table(
    "web_limits", metadata,
    sa.Column("key", sa.String(400), primary_key=True),
    sa.Column("hour", sa.BigInteger, nullable=False),  # hours since the Unix epoch
    sa.Column("count", sa.Integer, nullable=False),
)
sa.Index("web_limits_hour", web_limits.c.hour)

# Subscribe forms already submitted (their CSRF token's nonce): a form is used once.
used_forms = sa.Table(
    "used_forms", metadata,
    sa.Column("nonce", sa.String(64), primary_key=True),
    sa.Column("used_at", UTCDateTime, nullable=False),
)
sa.Index("used_forms_used_at", used_forms.c.used_at)

digests = sa.Table(
    "digests", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(16), nullable=False),  # digest | alert
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("finished_at", UTCDateTime),
    sa.Column("status", sa.String(16), nullable=False),  # sending | done
    sa.Column("subject", sa.Text, nullable=False),
    # The rendered, inlined message bodies: a resumed send mails exactly what was planned.
    sa.Column("html", sa.Text, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("post_ids", sa.Text, nullable=False),  # JSON list
)

deliveries = sa.Table(
    "deliveries", metadata,
    sa.Column("digest_id", sa.Integer, sa.ForeignKey("digests.id"), primary_key=True),
    sa.Column("subscriber_id", sa.Integer, primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),  # pending|sending|sent|bounced|deferred
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("last_code", sa.Integer),
    sa.Column("last_reply", sa.Text),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    # Which sender process has claimed this row, and when it last showed signs of life.
    # Several senders (processes or machines) share a digest by claiming batches of rows.
    sa.Column("claimed_by", sa.String(120)),
    sa.Column("claimed_at", UTCDateTime),
)
sa.Index("deliveries_owed", deliveries.c.digest_id, deliveries.c.status, deliveries.c.subscriber_id)


# Bounces and complaints that arrived after the server accepted a message (newsletter/
# bounces.py), and the owner's reactivations: the history behind a suppression. `digest_id`
# is the digest the event is about (VERP says so; else the newest one sent to the subscriber),
# which is what "soft bounces in a row" counts. `event_key` makes re-reading a report a no-op.
bounce_events = sa.Table(
    "bounce_events", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("subscriber_id", sa.Integer, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # hard | soft | complaint | reactivated
    sa.Column("digest_id", sa.Integer),
    sa.Column("status", sa.String(16), nullable=False, default=""),  # RFC 3463 code, e.g. 5.1.1
    sa.Column("detail", sa.Text, nullable=False, default=""),  # diagnostic, or the reason given
    sa.Column("source", sa.String(32), nullable=False),  # mailbox | postmark | mailgun | ses | sendgrid | cli
    sa.Column("event_key", sa.String(200), unique=True),
    sa.Column("received_at", UTCDateTime, nullable=False),
)
sa.Index("bounce_events_subscriber", bounce_events.c.subscriber_id, bounce_events.c.id)

# --- the public archive (schema v7; newsletter/archive.py) ---------------------------------
# One row per digest or alert published on the web: the public fields of its posts, in the
# mail's order (JSON, archive.snapshot), recorded with the digest so `publisher build` can
# write its page again at any time, whatever became of the posts since. Nothing personal.
archive_issues = sa.Table(
    "archive_issues", metadata,
    sa.Column("digest_id", sa.Integer, sa.ForeignKey("digests.id"), primary_key=True),
    sa.Column("posts", sa.Text, nullable=False),
)



@dataclass(frozen=True)
class KnownPost:
    id: str
    featured: bool
    announced: bool
    alert_due: bool
    alerted: bool
    url: str = ""
    source: str | None = None
    title: str = ""
    published_at: datetime | None = None


@dataclass(frozen=True)
class Subscriber:
    id: int
    email: str
    name: str
    status: str
    token: str
    created_at: datetime
    confirm_token: str | None = None
    confirm_sent_at: datetime | None = None


@dataclass(frozen=True)
class DigestRow:
    id: int
    kind: str
    created_at: datetime
    status: str
    subject: str
    html: str
    text: str
    post_ids: tuple[str, ...]


@dataclass(frozen=True)
class OwedDelivery:
    digest_id: int
    subscriber_id: int
    email: str
    name: str
    token: str
    status: str
    attempts: int


def normalize_url(url: str) -> str:
    """postgresql:// means psycopg 3 (SQLAlchemy's default would be psycopg2). The password
    may come from the URL or, as libpq does, from PGPASSWORD; it is never logged."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def _insert(conn: sa.Connection, table: sa.Table):
    """An INSERT that understands ON CONFLICT on both SQLite and PostgreSQL."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def new_token() -> str:
    """256 bits from the OS CSPRNG, URL-safe."""
    return secrets.token_urlsafe(32)


def _subscriber(row: Any) -> Subscriber:
    return Subscriber(
        id=row.id, email=row.email, name=row.name, status=row.status, token=row.token,
        created_at=row.created_at, confirm_token=row.confirm_token,
        confirm_sent_at=row.confirm_sent_at,
    )


# Each migration takes a connection inside a write transaction and moves the schema from
# version N-1 to N without losing rows. Version 1 is the initial create_all.
MIGRATIONS: dict[int, Any] = {}


def _add_delivery_claims(conn: sa.Connection) -> None:
    """v3: deliveries.claimed_by / claimed_at, for several senders sharing one digest."""
    columns = {c["name"] for c in sa.inspect(conn).get_columns("deliveries")}
    if "claimed_by" not in columns:
        conn.execute(sa.text("ALTER TABLE deliveries ADD COLUMN claimed_by VARCHAR(120)"))
    if "claimed_at" not in columns:
        timestamp = "TIMESTAMP" if conn.dialect.name == "postgresql" else "DATETIME"
        conn.execute(sa.text(f"ALTER TABLE deliveries ADD COLUMN claimed_at {timestamp}"))


def _add_scan_cache(conn: sa.Connection) -> None:
    """v2: the scan_cache table (a cache: an old database simply starts with it empty)."""
    scan_cache.create(conn, checkfirst=True)


def _add_post_sources(conn: sa.Connection) -> None:
    """v4: posts.source, filled from the scan cache where it still says which file gave which
    post: an upgrade that changes URL rules then still knows every post already announced."""
    columns = {c["name"] for c in sa.inspect(conn).get_columns("posts")}
    if "source" not in columns:
        conn.execute(sa.text("ALTER TABLE posts ADD COLUMN source TEXT"))
    if not sa.inspect(conn).has_table("scan_cache"):
        return
    for path, post_json in conn.execute(
            sa.select(scan_cache.c.path, scan_cache.c.post).where(scan_cache.c.post.is_not(None))):
        try:
            data = json.loads(post_json)
            post_id, url = str(data["id"]), str(data["url"])
        except (ValueError, KeyError, TypeError):
            continue
        conn.execute(posts.update().where(sa.or_(posts.c.id == post_id, posts.c.url == url),
                                          posts.c.source.is_(None)).values(source=path))


MIGRATIONS[2] = _add_scan_cache
MIGRATIONS[3] = _add_delivery_claims
MIGRATIONS[4] = _add_post_sources


def _add_bounce_events(conn: sa.Connection) -> None:
    """v5: the bounce_events table (bounces and complaints reported after acceptance)."""
    bounce_events.create(conn, checkfirst=True)


MIGRATIONS[5] = _add_bounce_events
# v6 is the topics branch's (issue 16 part 1): the lead renumbers at merge. A no-op here so
# a database of this branch walks through it.
MIGRATIONS[6] = lambda conn: None


def _add_archive_issues(conn: sa.Connection) -> None:
    """v7: the archive_issues table (newsletter/archive.py)."""
    archive_issues.create(conn, checkfirst=True)


MIGRATIONS[7] = _add_archive_issues




def damage_hint(path: str) -> str:
    """How to get a damaged SQLite state database back, for messages."""
    return (f"recover what SQLite can still read with `sqlite3 {path} .recover | sqlite3 "
            "recovered.db` (`.dump` where the sqlite3 shell lacks .recover) and point "
            "state.database at recovered.db, or restore a backup (`publisher backup` makes them)")


def _explain(where: str, path: str | None, reason: str) -> str:
    """One line for a database error; with a recovery hint when SQLite says the file is
    damaged or is not a database."""
    where = path or where  # the file, as the user knows it
    reason = " ".join(reason.split())
    if len(reason) > 300:
        reason = reason[:299] + "…"
    lowered = reason.lower()
    if path and ("malformed" in lowered or "not a database" in lowered
                 or "disk i/o error" in lowered or "corrupt" in lowered):
        return f"state database {where} is damaged ({reason}); {damage_hint(path)}"
    return f"state database {where}: {reason}"


def _is_driver_failure(e: BaseException) -> bool:
    """A database error that is the file's or the server's (damaged, full, read-only, gone),
    not a constraint the code handles (IntegrityError) or a bug (ProgrammingError)."""
    return type(e) in (sa.exc.OperationalError, sa.exc.DatabaseError)


class State:
    """A handle on the state database. Cheap to create; one per command."""

    def __init__(self, url: str):
        self.url = normalize_url(url)
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
                self.engine = sa.create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
                self._sqlite_setup(self.engine)
            else:
                self.engine = sa.create_engine(url, pool_pre_ping=True)
            self._migrate(existed)
        except sa.exc.SQLAlchemyError as e:
            reason = str(e.orig).strip().splitlines()[0] if getattr(e, "orig", None) is not None else str(e)
            raise StateError(_explain(self.describe(), self.path, f"{e.__class__.__name__}: {reason}")) from e

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
            raise StateError(_explain(self.describe(), self.path, reason)) from e

    def close(self) -> None:
        self.engine.dispose()

    # --- integrity and backups ------------------------------------------------------

    def check_integrity(self) -> None:
        """StateError if SQLite's quick_check finds the file damaged (a few milliseconds
        per megabyte; PostgreSQL looks after its own pages)."""
        if not self.is_sqlite or not self.path:
            return
        with self.read() as conn:
            found = [row[0] for row in conn.exec_driver_sql("PRAGMA quick_check(3)")]
        if found != ["ok"]:
            raise StateError(_explain(self.describe(), self.path,
                                      "integrity check failed (database disk image is "
                                      "malformed): " + "; ".join(found)))

    def backup(self, dest: Path) -> int:
        """Copy the SQLite database to `dest` with SQLite's online backup API (consistent
        while other commands read and write it), check the copy, then move it into place.
        Returns its size in bytes. StateError for PostgreSQL, or a damaged database."""
        import sqlite3

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
                raise StateError(_explain(self.describe(), self.path,
                                          "integrity check of the copy failed (database disk "
                                          "image is malformed): " + "; ".join(found)))
            os.replace(partial, dest)
        except sqlite3.DatabaseError as e:
            raise StateError(_explain(self.describe(), self.path, str(e))) from e
        except OSError as e:
            raise StateError(f"cannot write the backup {dest}: {e.strerror}") from e
        finally:
            partial.unlink(missing_ok=True)
        return dest.stat().st_size

    # --- schema ---------------------------------------------------------------------

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
                raise PublisherError(
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

    # --- meta -----------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        with self.read() as conn:
            return conn.execute(sa.select(meta.c.value).where(meta.c.key == key)).scalar()

    def _set_meta(self, conn: sa.Connection, key: str, value: str) -> None:
        stmt = _insert(conn, meta).values(key=key, value=value)
        conn.execute(stmt.on_conflict_do_update(index_elements=[meta.c.key], set_={"value": value}))

    def set_meta(self, key: str, value: str) -> None:
        with self.write() as conn:
            self._set_meta(conn, key, value)

    def get_time(self, key: str) -> datetime | None:
        value = self.get_meta(key)
        return datetime.fromisoformat(value) if value else None

    def save_idle_stamp(self, value: str) -> bool:
        """Store the idle stamp (see cache.py), unless some digest still owes mail: checked and
        written in one write transaction, so a digest recorded at the same moment by another
        process either comes first (no stamp) or removes the stamp itself (create_digest)."""
        with self.write() as conn:
            owing = conn.execute(sa.select(digests.c.id).where(digests.c.status == "sending").limit(1)).first()
            if owing is not None:
                conn.execute(meta.delete().where(meta.c.key == IDLE_STAMP_KEY))
                return False
            self._set_meta(conn, IDLE_STAMP_KEY, value)
            return True

    # --- rendered HTML cache -------------------------------------------------------------

    def cached_html(self, keys: Iterable[str]) -> dict[str, str]:
        keys = list(keys)
        found: dict[str, str] = {}
        with self.read() as conn:
            for i in range(0, len(keys), 500):
                chunk = keys[i : i + 500]
                rows = conn.execute(
                    sa.select(render_cache.c.key, render_cache.c.html).where(render_cache.c.key.in_(chunk))
                )
                found.update({r.key: r.html for r in rows})
        return found

    def store_html(self, rendered: dict[str, str], now: datetime | None = None) -> None:
        if not rendered:
            return
        now = now or utcnow()
        rows = [{"key": k, "html": v, "used_at": now} for k, v in rendered.items()]
        with self.write() as conn:
            for i in range(0, len(rows), 500):
                conn.execute(_insert(conn, render_cache).on_conflict_do_nothing(), rows[i : i + 500])

    def prune_html(self, keep: Iterable[str]) -> int:
        """Drop cached HTML of versions no longer in use; returns rows removed."""
        keep = set(keep)
        with self.write() as conn:
            stale = [k for k in conn.execute(sa.select(render_cache.c.key)).scalars() if k not in keep]
            for i in range(0, len(stale), 500):
                conn.execute(render_cache.delete().where(render_cache.c.key.in_(stale[i : i + 500])))
        return len(stale)

    # --- posts ----------------------------------------------------------------------

    def known_posts(self) -> dict[str, KnownPost]:
        with self.read() as conn:
            rows = conn.execute(
                sa.select(posts.c.id, posts.c.featured, posts.c.announced_at, posts.c.alert_due,
                          posts.c.alerted_at, posts.c.url, posts.c.source, posts.c.title,
                          posts.c.published_at)
            )
            return {
                r.id: KnownPost(r.id, bool(r.featured), r.announced_at is not None, bool(r.alert_due),
                                r.alerted_at is not None, r.url, r.source, r.title, r.published_at)
                for r in rows
            }

    def record_posts(self, new: list[dict], changed: list[dict], *, baseline_at: datetime | None = None) -> None:
        """Insert newly seen posts and update changed ones, in one transaction.

        Each dict has id, url, source, title, published_at, featured, alert_due (and, for new
        rows, first_seen_at / announced_at). A changed row with `old_id` is a known post under
        a new id (its URL rule changed, or its file was renamed): the row is re-keyed, and keeps
        its history. `baseline_at` set: this is the site's first run, and it is recorded in
        the same transaction, so a crash can never mail the back catalogue."""
        with self.write() as conn:
            if new:
                conn.execute(posts.insert(), new)
            for row in changed:
                key = row.get("old_id", row["id"])
                values = {k: v for k, v in row.items() if k != "old_id"}
                conn.execute(posts.update().where(posts.c.id == key).values(**values))
            if baseline_at is not None:
                self._set_meta(conn, "baseline_at", baseline_at.isoformat())

    def unannounced_post_ids(self) -> list[str]:
        with self.read() as conn:
            return list(conn.execute(sa.select(posts.c.id).where(posts.c.announced_at.is_(None))).scalars())

    def alert_due_post_ids(self) -> list[str]:
        with self.read() as conn:
            return list(
                conn.execute(
                    sa.select(posts.c.id).where(posts.c.alert_due.is_(True), posts.c.alerted_at.is_(None))
                ).scalars()
            )

    # --- digests and the delivery ledger --------------------------------------------------

    def create_digest(self, *, kind: str, subject: str, html: str, text: str, post_ids: Iterable[str],
                      now: datetime, archive: str | None = None) -> int:
        """Record a digest, its owed deliveries (one per active subscriber), the posts it
        announces and, given `archive` (archive.snapshot), its archive page's content,
        atomically: either all of it exists or none."""
        post_ids = list(post_ids)
        with self.write() as conn:
            # Mail is owed from now on: a run may no longer take the idle shortcut.
            conn.execute(meta.delete().where(meta.c.key == IDLE_STAMP_KEY))
            digest_id = conn.execute(
                digests.insert().values(
                    kind=kind, created_at=now, status="sending", subject=subject, html=html,
                    text=text, post_ids=json.dumps(post_ids),
                )
            ).inserted_primary_key[0]
            if archive is not None:
                conn.execute(archive_issues.insert().values(digest_id=digest_id, posts=archive))
            conn.execute(
                deliveries.insert().from_select(
                    ["digest_id", "subscriber_id", "status", "attempts", "updated_at"],
                    sa.select(
                        sa.literal(digest_id), subscribers.c.id, sa.literal("pending"), sa.literal(0),
                        sa.literal(now, UTCDateTime),
                    ).where(subscribers.c.status == ACTIVE),
                )
            )
            for i in range(0, len(post_ids), 500):
                chunk = post_ids[i : i + 500]
                if kind == "digest":
                    conn.execute(
                        posts.update()
                        .where(posts.c.id.in_(chunk), posts.c.announced_at.is_(None))
                        .values(announced_at=now, announced_digest_id=digest_id)
                    )
                else:
                    conn.execute(
                        posts.update().where(posts.c.id.in_(chunk)).values(alerted_at=now, alert_due=False)
                    )
            if kind == "digest":
                self._set_meta(conn, "last_digest_at", now.isoformat())
        return int(digest_id)

    def open_digests(self) -> list[DigestRow]:
        """Digests with deliveries still owed, oldest first."""
        with self.read() as conn:
            rows = conn.execute(sa.select(digests).where(digests.c.status == "sending").order_by(digests.c.id))
            return [
                DigestRow(r.id, r.kind, r.created_at, r.status, r.subject, r.html, r.text,
                          tuple(json.loads(r.post_ids)))
                for r in rows
            ]

    def get_digest(self, digest_id: int) -> DigestRow | None:
        with self.read() as conn:
            r = conn.execute(sa.select(digests).where(digests.c.id == digest_id)).first()
        if r is None:
            return None
        return DigestRow(r.id, r.kind, r.created_at, r.status, r.subject, r.html, r.text,
                         tuple(json.loads(r.post_ids)))

    def archived_issues(self) -> list[ArchivedIssue]:
        """Every issue recorded for the public archive, newest first."""
        d = digests.c
        with self.read() as conn:
            rows = conn.execute(
                sa.select(d.id, d.kind, d.subject, d.created_at, archive_issues.c.posts)
                .join(archive_issues, archive_issues.c.digest_id == d.id).order_by(d.id.desc()))
            return [ArchivedIssue(r.id, r.kind, r.subject, r.created_at, r.posts) for r in rows]

    def claim_batch(self, digest_id: int, sender: str, *, limit: int, now: datetime,
                    stale_before: datetime, dead_senders: Iterable[str] = ()) -> list[OwedDelivery]:
        """Claim up to `limit` owed deliveries of a digest for `sender`, and return them.

        A row is claimable when nobody holds it, or its holder is known dead, or the holder
        showed no sign of life since `stale_before`. On PostgreSQL the candidates are locked
        with FOR UPDATE SKIP LOCKED, so concurrent senders on several machines never claim the
        same row; on SQLite the write transaction itself is exclusive."""
        free = [deliveries.c.claimed_by.is_(None), deliveries.c.claimed_at < stale_before]
        dead = list(dead_senders)
        if dead:
            free.append(deliveries.c.claimed_by.in_(dead))
        claimable = sa.or_(*free)
        with self.write() as conn:
            # The rows are read with the candidates: claiming changes neither their status
            # nor their attempts, and a second query for them was a fifth of a claim's time.
            candidates = (
                sa.select(deliveries.c.subscriber_id, deliveries.c.status, deliveries.c.attempts,
                          subscribers.c.email, subscribers.c.name, subscribers.c.token)
                .join(subscribers, subscribers.c.id == deliveries.c.subscriber_id)
                .where(deliveries.c.digest_id == digest_id, deliveries.c.status.in_(OWED),
                       subscribers.c.status == ACTIVE, claimable)
                .order_by(deliveries.c.subscriber_id)
                .limit(limit)
            )
            if conn.dialect.name == "postgresql":
                candidates = candidates.with_for_update(skip_locked=True, of=deliveries)
            rows = conn.execute(candidates).all()
            if not rows:
                return []
            conn.execute(
                deliveries.update()
                .where(deliveries.c.digest_id == digest_id,
                       deliveries.c.subscriber_id.in_([r.subscriber_id for r in rows]))
                .values(claimed_by=sender, claimed_at=now)
            )
        return [OwedDelivery(digest_id, r.subscriber_id, r.email, r.name, r.token, r.status, r.attempts)
                for r in rows]

    def claimants(self, digest_id: int) -> list[str]:
        """Senders holding owed rows of a digest (to spot dead ones)."""
        with self.read() as conn:
            return list(conn.execute(
                sa.select(deliveries.c.claimed_by).distinct()
                .where(deliveries.c.digest_id == digest_id, deliveries.c.status.in_(OWED),
                       deliveries.c.claimed_by.is_not(None))
            ).scalars())

    def release_claims(self, digest_id: int, sender: str) -> int:
        """Give back the rows `sender` claimed but did not finish (stopped, or deferred)."""
        with self.write() as conn:
            return conn.execute(
                deliveries.update()
                .where(deliveries.c.digest_id == digest_id, deliveries.c.claimed_by == sender)
                .values(claimed_by=None, claimed_at=None)
            ).rowcount

    def count_status(self, digest_id: int, status: str) -> int:
        with self.read() as conn:
            return conn.execute(
                sa.select(sa.func.count()).select_from(deliveries)
                .where(deliveries.c.digest_id == digest_id, deliveries.c.status == status)
            ).scalar()

    def count_owed(self, digest_id: int) -> int:
        with self.read() as conn:
            return conn.execute(
                sa.select(sa.func.count())
                .select_from(deliveries.join(subscribers, subscribers.c.id == deliveries.c.subscriber_id))
                .where(deliveries.c.digest_id == digest_id, deliveries.c.status.in_(OWED),
                       subscribers.c.status == ACTIVE)
            ).scalar()

    def finish_digest_if_done(self, digest_id: int, now: datetime | None = None) -> bool:
        """Close a digest when no active subscriber is still owed it."""
        if self.count_owed(digest_id):
            return False
        with self.write() as conn:
            conn.execute(
                digests.update().where(digests.c.id == digest_id).values(status="done", finished_at=now or utcnow())
            )
            return True

    def delivery_counts(self, digest_id: int) -> dict[str, int]:
        with self.read() as conn:
            rows = conn.execute(
                sa.select(deliveries.c.status, sa.func.count())
                .where(deliveries.c.digest_id == digest_id)
                .group_by(deliveries.c.status)
            )
            return {status: count for status, count in rows}

    @contextlib.contextmanager
    def ledger(self, digest_id: int, sender: str | None = None,
               refresh_every: timedelta | None = None) -> Iterator[Ledger]:
        """The delivery ledger of one digest for the length of a send (see `Ledger`).
        A result still held back is written on the way out, whatever ended the send: the
        server accepted that message. With `sender`, the claims it holds are renewed with an
        intent at least every `refresh_every` (the sign of life other senders look for)."""
        ledger = Ledger(self, digest_id, sender, refresh_every)
        try:
            yield ledger
        finally:
            try:
                ledger.flush()
            finally:
                ledger.close()

    # --- subscribers ----------------------------------------------------------------

    def add_subscribers(self, entries: Iterable[tuple[str, str]], *, status: str = ACTIVE,
                        now: datetime | None = None) -> tuple[list[str], list[str]]:
        """Add (email, name) pairs that are not on the list yet (case-insensitive), in one
        transaction. Returns (added, already_present) addresses. Safe to re-run."""
        now = now or utcnow()
        added: list[str] = []
        present: list[str] = []
        entries = list(entries)
        with self.write() as conn:
            for i in range(0, len(entries), 500):
                chunk = entries[i : i + 500]
                rows: dict[str, dict] = {}
                for email, name in chunk:
                    # PostgreSQL cannot store NUL; no address or name legitimately holds one.
                    email, name = email.replace("\0", ""), name.replace("\0", "")
                    rows.setdefault(email.lower(), {
                        "email": email, "email_key": email.lower(), "name": name, "status": status,
                        "token": new_token(), "created_at": now, "updated_at": now,
                        "confirmed_at": now if status == ACTIVE else None,
                    })
                # ON CONFLICT, not check-then-insert: another process (a second import, the
                # web endpoint) may add the same address at the same moment on PostgreSQL.
                stmt = (_insert(conn, subscribers)
                        .on_conflict_do_nothing(index_elements=[subscribers.c.email_key])
                        .returning(subscribers.c.email_key))
                inserted = set(conn.execute(stmt, list(rows.values())).scalars()) if rows else set()
                for email, _name in chunk:
                    email = email.replace("\0", "")
                    key = email.lower()
                    if key in inserted:
                        added.append(email)
                        inserted.discard(key)  # a second spelling in the same batch is "present"
                    else:
                        present.append(email)
        return added, present

    def remove_subscriber(self, email: str) -> bool:
        """Delete a subscriber and the deliveries still owed to them."""
        with self.write() as conn:
            sid = conn.execute(
                sa.select(subscribers.c.id).where(subscribers.c.email_key == email.lower())
            ).scalar()
            if sid is None:
                return False
            conn.execute(deliveries.delete().where(deliveries.c.subscriber_id == sid))
            conn.execute(subscribers.delete().where(subscribers.c.id == sid))
            return True

    def list_subscribers(self, status: str | None = None) -> list[Subscriber]:
        with self.read() as conn:
            query = sa.select(subscribers).order_by(subscribers.c.id)
            if status:
                query = query.where(subscribers.c.status == status)
            return [_subscriber(r) for r in conn.execute(query)]

    def count_subscribers(self, status: str = ACTIVE) -> int:
        with self.read() as conn:
            return conn.execute(
                sa.select(sa.func.count()).select_from(subscribers).where(subscribers.c.status == status)
            ).scalar()

    def subscriber_by_email(self, email: str) -> Subscriber | None:
        with self.read() as conn:
            r = conn.execute(sa.select(subscribers).where(subscribers.c.email_key == email.lower())).first()
            return _subscriber(r) if r else None

    def subscriber_by_token(self, token: str) -> Subscriber | None:
        with self.read() as conn:
            r = conn.execute(sa.select(subscribers).where(subscribers.c.token == token)).first()
            return _subscriber(r) if r else None

    def set_subscriber_status(self, subscriber_id: int, status: str, now: datetime | None = None) -> None:
        now = now or utcnow()
        with self.write() as conn:
            values: dict[str, Any] = {"status": status, "updated_at": now}
            if status == ACTIVE:
                values.update(confirmed_at=now, confirm_token=None)
            conn.execute(subscribers.update().where(subscribers.c.id == subscriber_id).values(**values))


    # --- bounces and complaints (newsletter/bounces.py decides; this stores) ---

    @dataclass(frozen=True)
    class BounceOutcome:
        recorded: bool  # False: the same event was recorded before (event_key)
        suppressed: bool  # this event stopped mail to the subscriber
        streak: int  # soft bounces in a row, counting this one (0 for other kinds)

    def subscriber_by_id(self, subscriber_id: int) -> Subscriber | None:
        with self.read() as conn:
            r = conn.execute(sa.select(subscribers).where(subscribers.c.id == subscriber_id)).first()
            return _subscriber(r) if r else None

    def bounce_secret(self) -> str:
        """The key that signs VERP envelope senders; made on first use, kept in `meta`."""
        found = self.get_meta("bounce_secret")
        if found:
            return found
        with self.write() as conn:
            try:
                with conn.begin_nested():
                    conn.execute(meta.insert().values(key="bounce_secret", value=secrets.token_urlsafe(32)))
            except sa.exc.IntegrityError:
                pass
            return conn.execute(sa.select(meta.c.value).where(meta.c.key == "bounce_secret")).scalar_one()

    def record_bounce(self, subscriber_id: int, *, kind: str, status: str, detail: str, source: str,
                      event_key: str | None, digest_id: int | None, soft_limit: int,
                      now: datetime) -> "State.BounceOutcome":
        """Record a hard/soft bounce or a complaint and apply the suppression rules, in one
        transaction: hard -> bounced; complaint -> unsubscribed; soft -> bounced once
        `soft_limit` digests in a row bounced softly with no digest in between that did not.
        Without `digest_id`, the event is about the newest digest sent to the subscriber."""
        with self.write() as conn:
            sub = self._subscriber_row_for_update(conn, subscribers.c.id == subscriber_id)
            if sub is None:
                return State.BounceOutcome(False, False, 0)
            if event_key is not None and conn.execute(
                    sa.select(bounce_events.c.id).where(bounce_events.c.event_key == event_key)).first():
                return State.BounceOutcome(False, False, 0)
            if digest_id is None:
                digest_id = conn.execute(
                    sa.select(sa.func.max(deliveries.c.digest_id))
                    .where(deliveries.c.subscriber_id == subscriber_id, deliveries.c.status == "sent")
                ).scalar()
            conn.execute(bounce_events.insert().values(
                subscriber_id=subscriber_id, kind=kind, digest_id=digest_id, status=status[:16],
                detail=detail[:500], source=source[:32], event_key=event_key, received_at=now))
            streak = self._soft_streak(conn, subscriber_id, digest_id) if kind == "soft" else 0
            new_status = None
            if kind == "complaint" and sub.status != UNSUBSCRIBED:
                new_status = UNSUBSCRIBED
            elif sub.status == ACTIVE and (kind == "hard" or (kind == "soft" and streak >= soft_limit)):
                new_status = BOUNCED
            if new_status is not None:
                reply = f"{kind} bounce {status}: {detail}" if kind != "complaint" else f"complaint: {detail}"
                conn.execute(subscribers.update().where(subscribers.c.id == subscriber_id).values(
                    status=new_status, last_reply=reply[:500], updated_at=now, confirm_token=None))
            return State.BounceOutcome(True, new_status is not None, streak)

    def _soft_streak(self, conn: sa.Connection, subscriber_id: int, digest_id: int | None) -> int:
        """Soft bounces in a row up to `digest_id`: walk the digests sent to the subscriber,
        newest first, while each has a soft bounce; a digest without one (a delivery) ends
        the run. Events before the owner's latest reactivation do not count."""
        e = bounce_events.c
        since = conn.execute(sa.select(sa.func.max(e.id)).where(
            e.subscriber_id == subscriber_id, e.kind == "reactivated")).scalar() or 0
        soft = conn.execute(sa.select(e.digest_id).where(
            e.subscriber_id == subscriber_id, e.kind == "soft", e.id > since)).scalars().all()
        if digest_id is None:
            return sum(1 for d in soft if d is None)
        bounced = {d for d in soft if d is not None}
        sent = conn.execute(
            sa.select(deliveries.c.digest_id)
            .where(deliveries.c.subscriber_id == subscriber_id, deliveries.c.status == "sent",
                   deliveries.c.digest_id <= digest_id)
            .order_by(deliveries.c.digest_id.desc())
        ).scalars()
        streak = 0
        for digest in sent:
            if digest not in bounced:
                break
            streak += 1
        return max(streak, 1 if digest_id in bounced else 0)

    def reactivate_subscriber(self, email: str, *, reason: str, now: datetime) -> tuple[Subscriber | None, str]:
        """Make a bounced (or complaint-unsubscribed) address active again, recording why.
        Returns (subscriber, "") or (subscriber or None, why not)."""
        with self.write() as conn:
            row = self._subscriber_row_for_update(conn, subscribers.c.email_key == email.lower())
            if row is None:
                return None, "not on the list"
            complained = conn.execute(sa.select(bounce_events.c.id).where(
                bounce_events.c.subscriber_id == row.id, bounce_events.c.kind == "complaint")).first()
            if row.status == ACTIVE:
                return _subscriber(row), "already active"
            if row.status != BOUNCED and not (row.status == UNSUBSCRIBED and complained):
                return _subscriber(row), (f"is {row.status}, not suppressed by a bounce or complaint; "
                                          "only the person can subscribe again")
            conn.execute(bounce_events.insert().values(
                subscriber_id=row.id, kind="reactivated", status="", detail=reason[:500],
                source="cli", received_at=now))
            conn.execute(subscribers.update().where(subscribers.c.id == row.id).values(
                status=ACTIVE, updated_at=now, last_reply=None))
            return _subscriber(conn.execute(sa.select(subscribers).where(subscribers.c.id == row.id)).one()), ""

    def suppression_reasons(self, subscriber_ids: Iterable[int]) -> dict[int, tuple[str, datetime]]:
        """{subscriber id: (why, when)} for suppressed subscribers: the latest bounce or
        complaint event, else the SMTP reply that bounced them at sending time."""
        ids = list(subscriber_ids)
        found: dict[int, tuple[str, datetime]] = {}
        e = bounce_events.c
        with self.read() as conn:
            for i in range(0, len(ids), 500):
                chunk = ids[i : i + 500]
                for r in conn.execute(sa.select(subscribers.c.id, subscribers.c.last_reply,
                                                subscribers.c.updated_at).where(subscribers.c.id.in_(chunk))):
                    if r.last_reply:
                        found[r.id] = (r.last_reply, r.updated_at)
                latest = (sa.select(e.subscriber_id, sa.func.max(e.id).label("id"))
                          .where(e.subscriber_id.in_(chunk)).group_by(e.subscriber_id).subquery())
                rows = conn.execute(sa.select(bounce_events).join(latest, latest.c.id == e.id))
                for r in rows:
                    if r.kind != "reactivated":
                        found[r.subscriber_id] = (f"{r.kind} ({r.source}) {r.status} {r.detail}".replace("  ", " ").strip(),
                                                  r.received_at)
        return found

    def suppressed_emails(self, emails: Iterable[str]) -> list[str]:
        """Which of `emails` are suppressed: bounced, or unsubscribed after a complaint."""
        emails = list(emails)
        keys = [e.lower() for e in emails]
        out: list[str] = []
        with self.read() as conn:
            for i in range(0, len(keys), 500):
                chunk = keys[i : i + 500]
                complained = sa.select(bounce_events.c.subscriber_id).where(bounce_events.c.kind == "complaint")
                out.extend(conn.execute(sa.select(subscribers.c.email_key).where(
                    subscribers.c.email_key.in_(chunk),
                    sa.or_(subscribers.c.status == BOUNCED,
                           sa.and_(subscribers.c.status == UNSUBSCRIBED, subscribers.c.id.in_(complained))),
                )).scalars())
        found = set(out)
        return [e for e in emails if e.lower() in found]

    def use_nonce(self, nonce: str, *, now: datetime, forget_before: datetime) -> bool:
        """Record a webhook's one-time token; False if it was used before (a replay). Tokens
        seen before `forget_before` are dropped: their requests are refused as too old."""
        key = "nonce:" + hashlib.sha256(nonce.encode()).hexdigest()[:40]
        with self.write() as conn:
            stale = [r.key for r in conn.execute(sa.select(meta.c.key, meta.c.value).where(meta.c.key.like("nonce:%")))
                     if r.value < forget_before.isoformat()]
            for i in range(0, len(stale), 500):
                conn.execute(meta.delete().where(meta.c.key.in_(stale[i : i + 500])))
            try:
                with conn.begin_nested():
                    conn.execute(meta.insert().values(key=key, value=now.astimezone(timezone.utc).isoformat()))
            except sa.exc.IntegrityError:
                return False
            return True

    def digest_bounce_rates(self, last: int) -> list[tuple[int, str, datetime, int, int, int]]:
        """For the `last` digests, newest first: (id, subject, created_at, sent, bounced,
        complaints); bounced counts SMTP rejections and later hard/soft bounce reports."""
        e = bounce_events.c
        out = []
        with self.read() as conn:
            rows = conn.execute(sa.select(digests.c.id, digests.c.subject, digests.c.created_at)
                                .order_by(digests.c.id.desc()).limit(last)).all()
            for r in rows:
                counts = dict(conn.execute(
                    sa.select(deliveries.c.status, sa.func.count()).where(deliveries.c.digest_id == r.id)
                    .group_by(deliveries.c.status)).all())
                late = dict(conn.execute(
                    sa.select(e.kind, sa.func.count(sa.distinct(e.subscriber_id)))
                    .where(e.digest_id == r.id, e.kind.in_(("hard", "soft", "complaint"))).group_by(e.kind)).all())
                sent = counts.get("sent", 0) + counts.get("bounced", 0)
                bounced = counts.get("bounced", 0) + late.get("hard", 0) + late.get("soft", 0)
                out.append((r.id, r.subject, r.created_at, sent, bounced, late.get("complaint", 0)))
        return out

    # --- the run lock ---------------------------------------------------------------

    @contextlib.contextmanager
    def run_lock(self, wait: float = 0.0, poll: float = 0.2) -> Iterator[None]:
        """Hold the site's run lock; raise LockedError if another run keeps it past `wait` s.

        SQLite: an OS lock (flock) on a file beside the database, which the kernel releases
        when the holder dies, so a crash can never leave a stale lock. PostgreSQL: a session
        advisory lock, released when its connection closes."""
        if self.is_sqlite:
            import fcntl

            db_path = self.url.split("///", 1)[1]
            lock_path = db_path + ".lock"
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                deadline = time.monotonic() + wait
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if time.monotonic() >= deadline:
                            raise LockedError("another publisher run is in progress; nothing done") from None
                        time.sleep(poll)
                try:
                    yield
                finally:
                    fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)
        else:
            # One lock per database (and schema): sites sharing a server never block each other.
            key = int.from_bytes(hashlib.sha256(self.url.encode()).digest()[:8], "big") >> 1
            with self.engine.connect() as conn:
                deadline = time.monotonic() + wait
                while not conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar():
                    conn.rollback()
                    if time.monotonic() >= deadline:
                        raise LockedError("another publisher run is in progress; nothing done")
                    time.sleep(poll)
                conn.commit()
                try:
                    yield
                finally:
                    conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                    conn.commit()

    # --- web endpoint (double opt-in) ---

    def web_secret(self) -> str:
        """The key that signs the subscribe form's CSRF tokens. Made on first use and kept in
        `meta`, so every server process (and a restarted one) accepts the others' forms."""
        found = self.get_meta("web_secret")
        if found:
            return found
        with self.write() as conn:
            try:
                # Insert-if-absent, never overwrite: a process starting at the same moment may
                # have stored a key first, and every process must end up with the same one.
                with conn.begin_nested():
                    conn.execute(meta.insert().values(key="web_secret", value=secrets.token_urlsafe(32)))
            except sa.exc.IntegrityError:
                pass
            return conn.execute(sa.select(meta.c.value).where(meta.c.key == "web_secret")).scalar_one()

    def _subscriber_row_for_update(self, conn: sa.Connection, condition: Any) -> Any:
        # FOR UPDATE: on PostgreSQL, concurrent requests for one subscriber queue here (SQLite
        # ignores it; its BEGIN IMMEDIATE already serialises every writer).
        return conn.execute(sa.select(subscribers).where(condition).with_for_update()).first()

    def subscribe_request(self, email: str, name: str, *, form: str, limits: dict[str, int],
                          now: datetime, resend_after: datetime, valid_after: datetime,
                          forms_after: datetime) -> tuple[str, tuple[Subscriber, datetime | None] | None]:
        """One subscribe form submission, in one write transaction: ("reused", None) if the
        form (its CSRF nonce) was submitted before; ("limited", None) if a rate limit is
        reached; else ("ok", what request_confirmation returns).

        `limits` maps a key ("total", "client:...", "mailbox:...", checked in that order)
        to its limit per hour (0: none). Every submission counts, whether the address is on
        the list or not, and does the same writes either way, so neither the answer nor the
        time it takes tells who is subscribed. Past the total limit no other key is stored,
        which keeps the table small under a flood."""
        hour = int(now.timestamp() // 3600)
        with self.write() as conn:
            try:
                with conn.begin_nested():
                    conn.execute(used_forms.insert().values(nonce=form, used_at=now))
            except sa.exc.IntegrityError:
                return "reused", None
            conn.execute(used_forms.delete().where(used_forms.c.used_at < forms_after))
            conn.execute(web_limits.delete().where(web_limits.c.hour < hour))
            limited = False
            for key, limit in limits.items():
                upsert = _insert(conn, web_limits).values(key=key, hour=hour, count=1)
                conn.execute(upsert.on_conflict_do_update(
                    index_elements=[web_limits.c.key],
                    set_={"count": sa.case((web_limits.c.hour == hour, web_limits.c.count + 1),
                                           else_=1),
                          "hour": hour}))
                count = conn.execute(sa.select(web_limits.c.count)
                                     .where(web_limits.c.key == key)).scalar_one()
                if limit and count > limit:
                    limited = True
                    if key == "total":
                        break  # past the total, no other key is stored (the table stays small)
            # A limited request does the reservation's work too, then undoes it: the time
            # it takes must not tell a limited (repeated, known) address from a new one.
            savepoint = conn.begin_nested()
            reserved = self._reserve_confirmation(conn, email, name, now=now,
                                                  resend_after=resend_after,
                                                  valid_after=valid_after, even=True)
            if limited:
                savepoint.rollback()
                return "limited", None
            savepoint.commit()
            return "ok", reserved

    def request_confirmation(self, email: str, name: str, *, now: datetime, resend_after: datetime,
                             valid_after: datetime) -> tuple[Subscriber, datetime | None] | None:
        """Reserve a confirmation mail for `email` (double opt-in), in one write transaction.

        Returns (subscriber, previous confirm_sent_at) when a mail should go out now, with a
        confirm token and confirm_sent_at = now recorded; None when none should: the address
        is active already, or a confirmation went out after `resend_after` (the rate limit).
        A new address is stored as pending; an unsubscribed or bounced one keeps its status
        (and its unsubscribe token) until it confirms. A confirm token sent after
        `valid_after` is sent again rather than replaced, so an earlier mail's link still
        works. Reserving before sending means two concurrent requests cannot both mail."""
        with self.write() as conn:
            return self._reserve_confirmation(conn, email, name, now=now,
                                              resend_after=resend_after, valid_after=valid_after)

    def _reserve_confirmation(self, conn: sa.Connection, email: str, name: str, *, now: datetime,
                              resend_after: datetime, valid_after: datetime,
                              even: bool = False) -> tuple[Subscriber, datetime | None] | None:
        """request_confirmation's work, in the caller's transaction. even=True: an address
        that gets no mail (active, or mailed within the hour) costs the same statements as
        one that does (a row rewritten with its own values, read back), for the timing."""
        key = email.lower()
        row = self._subscriber_row_for_update(conn, subscribers.c.email_key == key)
        if row is None:
            try:
                with conn.begin_nested():
                    conn.execute(subscribers.insert().values(
                        email=email, email_key=key, name=name, status=PENDING, token=new_token(),
                        confirm_token=new_token(), created_at=now, updated_at=now, confirm_sent_at=now,
                    ))
                previous = None
            except sa.exc.IntegrityError:  # another process added it a moment ago
                row = self._subscriber_row_for_update(conn, subscribers.c.email_key == key)
        if row is not None:
            previous = row.confirm_sent_at
            if row.status == ACTIVE or (previous is not None and previous > resend_after):
                if even:
                    new_token()  # as many tokens drawn as for a mail
                    conn.execute(subscribers.update().where(subscribers.c.id == row.id)
                                 .values(updated_at=row.updated_at))
                    conn.execute(sa.select(subscribers).where(subscribers.c.email_key == key)).one()
                return None
            still_valid = row.confirm_token and previous is not None and previous > valid_after
            conn.execute(subscribers.update().where(subscribers.c.id == row.id).values(
                confirm_token=row.confirm_token if still_valid else new_token(),
                confirm_sent_at=now, updated_at=now, name=name or row.name,
            ))
        reserved = conn.execute(sa.select(subscribers).where(subscribers.c.email_key == key)).one()
        return _subscriber(reserved), previous

    def release_confirmation(self, subscriber_id: int, *, reserved_at: datetime,
                             previous: datetime | None, limit_key: str | None = None) -> None:
        """Undo request_confirmation's reservation after the mail could not be sent, so the
        person may ask again at once. A newer reservation (another request) is left alone.
        With `limit_key`, that rate limit (subscribe_request) gets its count back too."""
        with self.write() as conn:
            done = conn.execute(
                subscribers.update()
                .where(subscribers.c.id == subscriber_id, subscribers.c.confirm_sent_at == reserved_at)
                .values(confirm_sent_at=previous)
            ).rowcount
            if done and limit_key is not None:
                conn.execute(web_limits.update()
                             .where(web_limits.c.key == limit_key, web_limits.c.count > 0)
                             .values(count=web_limits.c.count - 1))

    def subscriber_by_confirm_token(self, confirm_token: str) -> Subscriber | None:
        with self.read() as conn:
            r = conn.execute(sa.select(subscribers).where(subscribers.c.confirm_token == confirm_token)).first()
            return _subscriber(r) if r else None

    def confirm_subscriber(self, confirm_token: str, *, now: datetime, valid_after: datetime) -> Subscriber | None:
        """Activate the subscriber holding `confirm_token`, if it was sent after `valid_after`.
        The token is cleared, so it works once. None: unknown, used or expired token."""
        with self.write() as conn:
            row = self._subscriber_row_for_update(conn, subscribers.c.confirm_token == confirm_token)
            if row is None or row.confirm_sent_at is None or row.confirm_sent_at <= valid_after:
                return None
            conn.execute(subscribers.update().where(subscribers.c.id == row.id).values(
                status=ACTIVE, confirmed_at=now, confirm_token=None, updated_at=now,
            ))
            return _subscriber(conn.execute(sa.select(subscribers).where(subscribers.c.id == row.id)).one())

    def unsubscribe_by_token(self, token: str, *, now: datetime) -> Subscriber | None:
        """Unsubscribe the holder of unsubscribe token `token`; None if no one holds it.

        Idempotent. A bounced address stays bounced (it is not mailed either way). An
        outstanding confirm token is cleared: the latest thing the person asked for wins."""
        with self.write() as conn:
            row = self._subscriber_row_for_update(conn, subscribers.c.token == token)
            if row is None:
                return None
            values: dict[str, Any] = {}
            if row.status in (ACTIVE, PENDING):
                values.update(status=UNSUBSCRIBED, updated_at=now)
            if row.confirm_token is not None:
                values.update(confirm_token=None, updated_at=now)
            if values:
                conn.execute(subscribers.update().where(subscribers.c.id == row.id).values(**values))
            return _subscriber(conn.execute(sa.select(subscribers).where(subscribers.c.id == row.id)).one())

    # --- scan cache ---

    def scan_cache(self, fingerprint: str) -> dict[str, tuple[int, int, str, str | None, str | None]]:
        """{path: (size, mtime_ns, content_hash, post JSON, problem)} of the entries stored
        under `fingerprint` (content.ScanEntry's fields); entries under another are stale."""
        c = scan_cache.c
        with self.read() as conn:
            rows = conn.execute(
                sa.select(c.path, c.size, c.mtime_ns, c.content_hash, c.post, c.problem)
                .where(c.fingerprint == fingerprint)
            )
            return {r[0]: (r[1], r[2], r[3], r[4], r[5]) for r in rows}

    def store_scan_cache(self, fingerprint: str, changed: dict[str, tuple], removed: Iterable[str]) -> None:
        """Store new and changed entries ({path: (size, mtime_ns, content_hash, post JSON,
        problem)}), drop `removed` paths and every stale entry, in one transaction."""
        removed = list(removed)
        rows = [
            {"path": path, "size": size, "mtime_ns": mtime_ns, "content_hash": content_hash,
             "fingerprint": fingerprint, "post": post, "problem": problem}
            for path, (size, mtime_ns, content_hash, post, problem) in changed.items()
        ]
        with self.write() as conn:
            conn.execute(scan_cache.delete().where(scan_cache.c.fingerprint != fingerprint))
            for i in range(0, len(removed), 500):
                conn.execute(scan_cache.delete().where(scan_cache.c.path.in_(removed[i : i + 500])))
            for i in range(0, len(rows), 500):
                stmt = _insert(conn, scan_cache)
                stmt = stmt.on_conflict_do_update(
                    index_elements=[scan_cache.c.path],
                    set_={name: stmt.excluded[name] for name in
                          ("size", "mtime_ns", "content_hash", "fingerprint", "post", "problem")},
                )
                conn.execute(stmt, rows[i : i + 500])


class Ledger:
    """One digest's per-message ledger writes, through one connection held for a send.

    A statement run through `State.write` checks a connection out of the pool, goes through
    SQLAlchemy and commits: about 0.5 ms, as much as the SMTP exchange of the message itself,
    and a send needs two per message. Here the statements are compiled once and run straight
    through the driver (the bind processors applied, so the rows hold exactly what
    SQLAlchemy would write), on one connection.

    A result may also be *held* (`result(..., hold=True)`) to share one transaction with
    the next `sending()`: the intent is still durable before its message is handed over,
    and a held result is one the server already accepted, so a crash at any instant
    loses at most that result (its message is mailed again: at-least-once, like a
    message in flight). At most one result is held; `flush()` writes it.

    Not thread-safe: the caller makes one call at a time (delivery's callbacks do)."""

    def __init__(self, state: State, digest_id: int, sender: str | None = None,
                 refresh_every: timedelta | None = None):
        self.digest_id = digest_id
        self.sender = sender
        self.refresh_every = refresh_every
        self._refreshed: datetime | None = None
        self._describe = state.describe
        dialect = state.engine.dialect
        self._failure = dialect.loaded_dbapi.OperationalError
        self._database_error = dialect.loaded_dbapi.DatabaseError  # e.g. a malformed page
        self._path = state.path
        self._driver_error = dialect.loaded_dbapi.Error
        self._sqlite = state.is_sqlite
        b = sa.bindparam
        where = (deliveries.c.digest_id == b("digest"), deliveries.c.subscriber_id == b("subscriber"))
        self._intent = self._compile(
            deliveries.update().where(*where)
            .values(status=b("new_status"), updated_at=b("now"), claimed_at=b("now")), dialect)
        self._result = self._compile(
            deliveries.update().where(*where)
            .values(status=b("new_status"), last_code=b("code"), last_reply=b("reply"),
                    attempts=deliveries.c.attempts + b("tries"), updated_at=b("now"),
                    claimed_at=b("now")), dialect)
        # A whole claimed batch, not only the row being sent, must look alive: a batch
        # can take longer than CLAIM_TIMEOUT when the server is slow or defers.
        self._refresh = self._compile(
            deliveries.update()
            .where(deliveries.c.digest_id == b("digest"), deliveries.c.claimed_by == b("sender"))
            .values(claimed_at=b("now")), dialect)
        self._bounce = self._compile(
            subscribers.update().where(subscribers.c.id == b("subscriber"))
            .values(status=b("new_status"), last_reply=b("reply"), updated_at=b("now")), dialect)
        self._held: list[tuple[str, Any]] = []
        try:
            self._conn = state.engine.raw_connection()
        except sa.exc.OperationalError as e:
            raise PublisherError(f"state database {self._describe()}: {e.orig}") from e
        self._cursor = self._conn.cursor()

    @staticmethod
    def _compile(stmt: Any, dialect: Any) -> tuple[str, Any]:
        """The statement's SQL for this driver, and a function turning {name: value} into
        the driver's parameters (a tuple for "?" placeholders, the dict for named ones)."""
        compiled = stmt.compile(dialect=dialect)
        processors = [(name, process) for name, bind in compiled.binds.items()
                      if (process := bind.type.dialect_impl(dialect).bind_processor(dialect))]
        order = compiled.positiontup

        def params(values: dict[str, Any]) -> Any:
            for name, process in processors:
                values[name] = process(values[name])
            return values if order is None else tuple(values[name] for name in order)

        return str(compiled), params

    def sending(self, subscriber_id: int, now: datetime | None = None) -> None:
        """The intent: durable before the message is handed to the server. A held
        result goes into the same transaction."""
        now = now or utcnow()
        sql, params = self._intent
        writes, self._held = self._held, []
        writes.append((sql, params({"digest": self.digest_id, "subscriber": subscriber_id,
                                    "new_status": "sending", "now": now})))
        renew = self.sender is not None and self.refresh_every is not None and (
            self._refreshed is None or now - self._refreshed >= self.refresh_every)
        if renew:
            sql, params = self._refresh
            writes.append((sql, params({"digest": self.digest_id, "sender": self.sender,
                                        "now": now})))
        self._write(writes)
        if renew:
            self._refreshed = now

    def result(self, subscriber_id: int, *, status: str, code: int | None, reply: str,
               attempts: int, now: datetime | None = None, hold: bool = False) -> None:
        """The result, once the server answered: sent, bounced (the subscriber too) or
        deferred. hold=True keeps
        it for the next `sending()` or `flush()`; a result already held is written now."""
        now = now or utcnow()
        sql, params = self._result
        writes = [(sql, params({"digest": self.digest_id, "subscriber": subscriber_id,
                                "new_status": status, "code": code, "reply": reply[:500],
                                "tries": attempts, "now": now}))]
        if status == "bounced":
            sql, params = self._bounce
            writes.append((sql, params({"subscriber": subscriber_id, "new_status": BOUNCED,
                                        "reply": reply[:500], "now": now})))
        if hold:
            writes, self._held = self._held, writes
        else:
            writes, self._held = self._held + writes, []
        if writes:
            self._write(writes)

    def flush(self) -> None:
        """Write the held result, if any."""
        writes, self._held = self._held, []
        if writes:
            self._write(writes)

    def close(self) -> None:
        self._conn.close()  # back to the pool

    def _write(self, writes: list[tuple[str, Any]]) -> None:
        """One transaction. SQLite: BEGIN IMMEDIATE, as `State.write` (the driver is in
        autocommit mode, see _sqlite_setup); psycopg opens the transaction itself."""
        try:
            if self._sqlite:
                self._cursor.execute("BEGIN IMMEDIATE")
            for sql, params in writes:
                self._cursor.execute(sql, params)
            self._conn.commit()
        except BaseException as e:
            try:
                self._conn.rollback()
            except self._driver_error:
                pass  # the connection is gone, and its transaction with it; `e` says why
            if isinstance(e, self._failure) or type(e) is self._database_error:
                # As State._database_errors: the user's problem to fix (disk full,
                # read-only, server gone, a damaged file), not a bug.
                self._conn.invalidate()
                reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
                raise StateError(_explain(self._describe(), self._path, reason)) from e
            raise
