"""The state database's schema: its tables, the migrations that bring an older database to
the current version (v1..v8; the number is cache_sqlite3.SCHEMA_VERSION, read there without
SQLAlchemy), the column values with a meaning (subscriber and delivery statuses), and how a
damaged SQLite file is explained. Queries live in State's modules beside this one."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Iterable

import sqlalchemy as sa

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


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


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
    # A featured alert is owed (set by newsletter/owed.py's scan), then sent (alerted_at).
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
    # v6, newsletter/topics.py: the topic slugs chosen, as JSON ('' = everything), and the
    # end of a pause (no mail before it; what is sent meanwhile counts as mailed).
    sa.Column("topics", sa.Text, nullable=False, default=""),
    sa.Column("paused_until", UTCDateTime),
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

# v6: the other bodies of a digest, one per distinct post list (a topic set, or posts left
# out because an alert carried them), rendered once when the digest is planned.
digest_variants = sa.Table(
    "digest_variants", metadata,
    sa.Column("digest_id", sa.Integer, sa.ForeignKey("digests.id"), primary_key=True),
    sa.Column("variant", sa.Integer, primary_key=True),  # 1, 2, ...
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("html", sa.Text, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("post_ids", sa.Text, nullable=False),  # JSON list: the posts in full
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
    # v6: which of the digest's bodies this subscriber gets (digest_variants); 0 = the
    # digest's own, every post. Fixed when the digest is planned, like the row itself.
    sa.Column("variant", sa.Integer, nullable=False, default=0),
)
sa.Index("deliveries_owed", deliveries.c.digest_id, deliveries.c.status, deliveries.c.subscriber_id)

# v8: one row per running sender (newsletter/sending.py): the lease under which the rows it
# claimed (deliveries.claimed_by) stay its own. The sender renews it every few seconds while
# it lives; once expires_at has passed, any sender (another machine, a rerun) may take those
# rows over. Times are the lease clock's (outbox.lease_clock: the database server's on
# PostgreSQL, so senders on several machines read one clock).
sender_leases = sa.Table(
    "sender_leases", metadata,
    sa.Column("sender", sa.String(120), primary_key=True),  # as deliveries.claimed_by
    sa.Column("digest_id", sa.Integer, nullable=False),  # the digest it sends (one per sender)
    sa.Column("renewed_at", UTCDateTime, nullable=False),  # last heard from
    sa.Column("expires_at", UTCDateTime, nullable=False),
)


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


def sqlite_ddl() -> tuple[str, ...]:
    """The statements create_all runs on a new SQLite database, in its order: the source of
    publisher/sqlite_ddl.py, through which a cold build creates the database without
    importing SQLAlchemy (cache_sqlite3.Sqlite3CacheStore.create). tests/test_cache_sqlite3.py keeps the
    two equal and says how to regenerate the file."""
    from sqlalchemy.dialects import sqlite  # lazy: SQLAlchemy is imported here anyway
    from sqlalchemy.schema import CreateIndex, CreateTable

    dialect = sqlite.dialect()
    statements: list[str] = []
    for table in metadata.sorted_tables:
        statements.append(str(CreateTable(table).compile(dialect=dialect)).strip())
        statements.extend(str(CreateIndex(index).compile(dialect=dialect)).strip()
                          for index in sorted(table.indexes, key=lambda i: i.name or ""))
    return tuple(statements)


def insert_on_conflict(conn: sa.Connection, table: sa.Table):
    """An INSERT that understands ON CONFLICT on both SQLite and PostgreSQL."""
    # lazy: only the dialect in use, which its engine has already imported (no cost).
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table)


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


def _add_topics(conn: sa.Connection) -> None:
    """v6: subscribers.topics / paused_until, deliveries.variant, the digest_variants table."""
    timestamp = "TIMESTAMP" if conn.dialect.name == "postgresql" else "DATETIME"
    columns = {c["name"] for c in sa.inspect(conn).get_columns("subscribers")}
    if "topics" not in columns:
        conn.execute(sa.text("ALTER TABLE subscribers ADD COLUMN topics TEXT NOT NULL DEFAULT ''"))
    if "paused_until" not in columns:
        conn.execute(sa.text(f"ALTER TABLE subscribers ADD COLUMN paused_until {timestamp}"))
    if "variant" not in {c["name"] for c in sa.inspect(conn).get_columns("deliveries")}:
        conn.execute(sa.text("ALTER TABLE deliveries ADD COLUMN variant INTEGER NOT NULL DEFAULT 0"))
    digest_variants.create(conn, checkfirst=True)


MIGRATIONS[6] = _add_topics


def _add_archive_issues(conn: sa.Connection) -> None:
    """v7: the archive_issues table (newsletter/archive.py)."""
    archive_issues.create(conn, checkfirst=True)


MIGRATIONS[7] = _add_archive_issues


def _add_sender_leases(conn: sa.Connection) -> None:
    """v8: the sender_leases table. Rows claimed before it (by an older publisher) have no
    lease: they keep the old rule (free once claimed_at is 15 minutes old)."""
    sender_leases.create(conn, checkfirst=True)


MIGRATIONS[8] = _add_sender_leases


def topic_slugs(stored: str | None) -> tuple[str, ...]:
    return tuple(json.loads(stored)) if stored else ()


def topics_json(slugs: Iterable[str]) -> str:
    """How subscribers.topics stores a choice: sorted slugs as JSON, '' for everything."""
    chosen = sorted(set(slugs))
    return json.dumps(chosen) if chosen else ""


def damage_hint(path: str) -> str:
    """How to get a damaged SQLite state database back, for messages."""
    return (f"recover what SQLite can still read with `sqlite3 {path} .recover | sqlite3 "
            "recovered.db` (`.dump` where the sqlite3 shell lacks .recover) and point "
            "state.database at recovered.db, or restore a backup (`publisher backup` makes them)")


def explain(where: str, path: str | None, reason: str) -> str:
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
