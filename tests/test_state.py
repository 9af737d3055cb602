from __future__ import annotations

import multiprocessing
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from publisher import state as state_mod
from publisher.errors import LockedError, StateError
from publisher.state import State

NOW = datetime(2025, 1, 6, 9, 0, tzinfo=timezone.utc)


@pytest.fixture
def db(db_url):
    s = State(db_url)
    yield s
    s.close()


def owed(db, digest_id, limit=10_000):
    """The deliveries still owed, read the way senders read them: claimed (then given back)."""
    rows = db.claim_batch(digest_id, "test:1:reader", limit=limit, now=NOW,
                          stale_before=NOW - timedelta(minutes=15))
    db.release_claims(digest_id, "test:1:reader")
    return rows


def post_row(pid, **kw):
    row = dict(id=pid, url=f"https://x.org/{pid}/", title=pid, published_at=NOW, featured=False,
               first_seen_at=NOW, announced_at=None, alert_due=False)
    row.update(kw)
    return row


def test_new_database_has_current_schema_version(db):
    assert db.schema_version() == state_mod.SCHEMA_VERSION


def test_subscribers_are_unique_case_insensitively(db):
    added, present = db.add_subscribers([("Ann@Example.org", "Ann"), ("bob@example.org", ""), ("ann@example.ORG", "Dup")])
    assert added == ["Ann@Example.org", "bob@example.org"] and present == ["ann@example.ORG"]
    added, present = db.add_subscribers([("ANN@example.org", "")])
    assert added == [] and present == ["ANN@example.org"]
    subs = db.list_subscribers()
    assert [s.email for s in subs] == ["Ann@Example.org", "bob@example.org"]
    assert len({s.token for s in subs}) == 2 and all(len(s.token) >= 40 for s in subs)


def test_remove_subscriber_drops_owed_mail(db):
    db.add_subscribers([("a@x.org", ""), ("b@x.org", "")])
    d = db.create_digest(kind="digest", subject="s", html="h", text="t", post_ids=[], now=NOW)
    assert db.remove_subscriber("A@X.org") is True
    assert db.remove_subscriber("nobody@x.org") is False
    assert [o.email for o in owed(db, d)] == ["b@x.org"]


def test_digest_creation_is_atomic_with_ledger_and_announcements(db):
    db.add_subscribers([(f"s{i}@x.org", "") for i in range(3)])
    db.set_subscriber_status(2, state_mod.UNSUBSCRIBED)
    db.record_posts([post_row("p1"), post_row("p2")], [])
    d = db.create_digest(kind="digest", subject="S", html="<p>", text="t", post_ids=["p1"], now=NOW)
    assert [o.subscriber_id for o in owed(db, d)] == [1, 3]  # the unsubscribed one owes nothing
    assert db.unannounced_post_ids() == ["p2"]
    assert db.get_time("last_digest_at") == NOW
    row = db.get_digest(d)
    assert (row.subject, row.html, row.post_ids, row.status) == ("S", "<p>", ("p1",), "sending")


def test_ledger_intent_result_and_resume(db):
    db.add_subscribers([(f"s{i}@x.org", "") for i in range(5)])
    d = db.create_digest(kind="digest", subject="S", html="h", text="t", post_ids=[], now=NOW)
    with db.ledger(d) as ledger:
        ledger.sending(1)
        ledger.result(1, status="sent", code=250, reply="ok", attempts=1)
        ledger.sending(2)  # killed here: intent recorded, no result
        ledger.result(3, status="bounced", code=550, reply="no such user", attempts=1)
        ledger.result(4, status="deferred", code=451, reply="later", attempts=5)
    rows = owed(db, d)
    assert [(o.subscriber_id, o.status) for o in rows] == [(2, "sending"), (4, "deferred"), (5, "pending")]
    assert db.list_subscribers(state_mod.BOUNCED)[0].email == "s2@x.org"
    assert db.finish_digest_if_done(d) is False
    with db.ledger(d) as ledger:
        for sid in (2, 4, 5):
            ledger.result(sid, status="sent", code=250, reply="ok", attempts=1)
    assert db.finish_digest_if_done(d) is True
    assert db.open_digests() == []
    assert db.delivery_counts(d) == {"sent": 4, "bounced": 1}


def test_claims_page_through_large_lists(db):
    db.add_subscribers([(f"s{i:05d}@x.org", "") for i in range(1203)])
    d = db.create_digest(kind="digest", subject="S", html="h", text="t", post_ids=[], now=NOW)
    ids = []
    while batch := db.claim_batch(d, "test:1:pager", limit=100, now=NOW,
                                  stale_before=NOW - timedelta(minutes=15)):
        ids += [o.subscriber_id for o in batch]
    assert ids == sorted(set(ids)) and len(ids) == 1203


def test_render_cache_roundtrip_and_prune(db):
    db.store_html({"k1": "<p>1</p>", "k2": "<p>2</p>"})
    db.store_html({"k1": "<p>1</p>"})  # storing again is harmless
    assert db.cached_html(["k1", "k3"]) == {"k1": "<p>1</p>"}
    assert db.prune_html(keep=["k1"]) == 1
    assert db.cached_html(["k1", "k2"]) == {"k1": "<p>1</p>"}


def test_datetimes_come_back_aware_utc(db):
    local = datetime(2025, 1, 1, 12, tzinfo=timezone(timedelta(hours=2)))
    db.record_posts([post_row("p", published_at=local)], [])
    with db.read() as conn:
        value = conn.execute(sa.select(state_mod.posts.c.published_at)).scalar()
    assert value == local and value.tzinfo == timezone.utc


def test_migration_adds_to_an_existing_database_without_losing_rows(db_url, monkeypatch):
    url = db_url
    old = State(url)
    old.add_subscribers([("keep@x.org", "Keep")])
    old.close()

    def to_next(conn):
        conn.exec_driver_sql("ALTER TABLE subscribers ADD COLUMN locale TEXT DEFAULT 'en'")

    # A version after the current one, whatever the current one is.
    nxt = state_mod.SCHEMA_VERSION + 1
    monkeypatch.setattr(state_mod, "SCHEMA_VERSION", nxt)
    monkeypatch.setitem(state_mod.MIGRATIONS, nxt, to_next)
    new = State(url)
    assert new.schema_version() == nxt
    assert [s.email for s in new.list_subscribers()] == ["keep@x.org"]
    with new.read() as conn:
        assert conn.exec_driver_sql("SELECT locale FROM subscribers").scalar() == "en"
    new.close()


def test_newer_schema_is_refused(db_url):
    url = db_url
    s = State(url)
    s.set_meta("schema_version", "99")
    s.close()
    with pytest.raises(StateError, match="schema version 99 is newer"):
        State(url)


def _hold_lock(url, ready, release):
    s = State(url)
    with s.run_lock():
        ready.set()
        release.wait(10)


def test_run_lock_excludes_other_processes_and_dies_with_its_holder(db_url):
    url = db_url
    State(url).close()
    ctx = multiprocessing.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_lock, args=(url, ready, release))
    holder.start()
    assert ready.wait(20)
    with pytest.raises(LockedError, match="another publisher run is in progress"):
        with State(url).run_lock(wait=0.2):
            pass
    holder.kill()  # a crash: the kernel drops the lock, nothing stale remains
    holder.join()
    with State(url).run_lock(wait=2):
        pass


def test_concurrent_writers_queue_instead_of_failing(db_url):
    url = db_url
    State(url).close()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_add_many, args=(url, n)) for n in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert State(url).count_subscribers() == 4 * 200


def _add_many(url, n):
    s = State(url)
    for i in range(200):
        s.add_subscribers([(f"p{n}-{i}@x.org", "")])


def test_a_version_1_database_is_migrated_to_the_current_schema_keeping_its_rows(db_url):
    """Build what publisher 0.1's first schema looked like, fill it, and open it with today's."""
    s = State(db_url)
    s.add_subscribers([("kept@x.org", "Kept")])
    s.record_posts([post_row("p1", announced_at=NOW)], [])
    d = s.create_digest(kind="digest", subject="S", html="h", text="t", post_ids=["p1"], now=NOW)
    with s.write() as conn:  # take the database back to version 1
        conn.exec_driver_sql("DROP TABLE scan_cache")
        conn.exec_driver_sql("DROP TABLE bounce_events")
        conn.exec_driver_sql("DROP TABLE archive_issues")
        conn.exec_driver_sql("DROP TABLE sender_leases")
        conn.exec_driver_sql("ALTER TABLE deliveries DROP COLUMN claimed_by")
        conn.exec_driver_sql("ALTER TABLE deliveries DROP COLUMN claimed_at")
        conn.exec_driver_sql("ALTER TABLE posts DROP COLUMN source")
        conn.exec_driver_sql("DROP TABLE digest_variants")
        conn.exec_driver_sql("ALTER TABLE deliveries DROP COLUMN variant")
        conn.exec_driver_sql("ALTER TABLE subscribers DROP COLUMN topics")
        conn.exec_driver_sql("ALTER TABLE subscribers DROP COLUMN paused_until")
        conn.exec_driver_sql("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    s.close()

    migrated = State(db_url)
    assert migrated.schema_version() == state_mod.SCHEMA_VERSION == 8
    with migrated.read() as conn:
        columns = {c["name"] for c in sa.inspect(conn).get_columns("deliveries")}
        assert {"claimed_by", "claimed_at"} <= columns
        assert "source" in {c["name"] for c in sa.inspect(conn).get_columns("posts")}
        assert sa.inspect(conn).has_table("scan_cache")
        assert sa.inspect(conn).has_table("bounce_events")
        assert sa.inspect(conn).has_table("digest_variants")
        assert "variant" in columns
        assert {"topics", "paused_until"} <= {c["name"] for c in sa.inspect(conn).get_columns("subscribers")}
        assert sa.inspect(conn).has_table("archive_issues")
        assert sa.inspect(conn).has_table("sender_leases")
    assert [x.email for x in migrated.list_subscribers()] == ["kept@x.org"]
    assert migrated.list_subscribers()[0].topics == ()  # everything, as before topics existed
    assert [o.email for o in migrated.claim_batch(d, "me:1:x", limit=5, now=NOW,
                                                  stale_before=NOW - timedelta(minutes=15))] == ["kept@x.org"]
    migrated.close()


# --- the ledger handle of a send (State.ledger) ----------------------------------------------

LEDGER_COLUMNS = ("subscriber_id", "status", "attempts", "last_code", "last_reply", "updated_at",
                  "claimed_by", "claimed_at")


def ledger_rows(db, digest_id):
    d = state_mod.deliveries
    with db.read() as conn:
        rows = conn.execute(sa.select(*(d.c[name] for name in LEDGER_COLUMNS))
                            .where(d.c.digest_id == digest_id).order_by(d.c.subscriber_id))
        return [tuple(r) for r in rows]


def subscriber_rows(db):
    s = state_mod.subscribers
    with db.read() as conn:
        return [tuple(r) for r in conn.execute(
            sa.select(s.c.id, s.c.status, s.c.last_reply, s.c.updated_at).order_by(s.c.id))]


def mark_sending(db, digest_id, subscriber_id, now):
    """The reference: the intent as one SQLAlchemy statement in a State.write transaction."""
    d = state_mod.deliveries
    with db.write() as conn:
        conn.execute(d.update().where(d.c.digest_id == digest_id, d.c.subscriber_id == subscriber_id)
                     .values(status="sending", updated_at=now, claimed_at=now))


def mark_result(db, digest_id, subscriber_id, *, status, code, reply, attempts, now):
    """The reference: the result (and a bounce) the same way."""
    d, s = state_mod.deliveries, state_mod.subscribers
    with db.write() as conn:
        conn.execute(d.update().where(d.c.digest_id == digest_id, d.c.subscriber_id == subscriber_id)
                     .values(status=status, last_code=code, last_reply=reply[:500],
                             attempts=d.c.attempts + attempts, updated_at=now, claimed_at=now))
        if status == "bounced":
            conn.execute(s.update().where(s.c.id == subscriber_id)
                         .values(status=state_mod.BOUNCED, last_reply=reply[:500], updated_at=now))


def test_ledger_writes_what_plain_sqlalchemy_statements_write(db):
    db.add_subscribers([(f"s{i}@x.org", "") for i in range(5)])
    old = db.create_digest(kind="digest", subject="S", html="h", text="t", post_ids=[], now=NOW)
    new = db.create_digest(kind="digest", subject="S", html="h", text="t", post_ids=[], now=NOW)
    for d in (old, new):
        owed(db, d, limit=2)  # claimed and given back: claimed_at set, claimed_by cleared
        db.claim_batch(d, "me:1:x", limit=3, now=NOW, stale_before=NOW - timedelta(minutes=15))
    t = [NOW + timedelta(seconds=s, microseconds=7) for s in range(10)]
    steps = [("sending", 1, t[0]), ("result", 1, "sent", 250, "2.0.0 ok", 1, t[1]),
             ("sending", 2, t[2]), ("result", 2, "bounced", 550, "5.1.1 " + "z" * 600, 1, t[3]),
             ("sending", 3, t[4]), ("result", 3, "deferred", 451, "4.3.0 later", 5, t[5]),
             ("sending", 4, t[6])]  # killed here: intent recorded, no result
    for step in steps:
        if step[0] == "sending":
            mark_sending(db, old, step[1], now=step[2])
        else:
            sid, status, code, reply, attempts, when = step[1:]
            mark_result(db, old, sid, status=status, code=code, reply=reply, attempts=attempts, now=when)
    expected_subscribers = subscriber_rows(db)
    db.set_subscriber_status(2, state_mod.ACTIVE, now=NOW)
    with db.ledger(new) as ledger:
        for step in steps:
            if step[0] == "sending":
                ledger.sending(step[1], now=step[2])
            else:
                sid, status, code, reply, attempts, when = step[1:]
                ledger.result(sid, status=status, code=code, reply=reply, attempts=attempts,
                              now=when, hold=sid != 3)
    assert ledger_rows(db, new) == ledger_rows(db, old)
    assert ledger_rows(db, new)[1][1:5] == ("bounced", 1, 550, "5.1.1 " + "z" * 494)
    assert ledger_rows(db, new)[0][1:3] == ("sent", 1)
    assert subscriber_rows(db) == expected_subscribers
    assert db.list_subscribers(state_mod.BOUNCED)[0].email == "s1@x.org"


def test_a_held_result_waits_for_the_next_intent_or_a_flush(db):
    db.add_subscribers([(f"s{i}@x.org", "") for i in range(4)])
    d = db.create_digest(kind="digest", subject="S", html="h", text="t", post_ids=[], now=NOW)

    def statuses():
        return [row[1] for row in ledger_rows(db, d)]

    with db.ledger(d) as ledger:
        ledger.sending(1)
        ledger.result(1, status="sent", code=250, reply="ok", attempts=1, hold=True)
        assert statuses() == ["sending", "pending", "pending", "pending"]  # held
        ledger.sending(2)  # one transaction: the held result and this intent
        assert statuses() == ["sent", "sending", "pending", "pending"]
        ledger.result(2, status="sent", code=250, reply="ok", attempts=1, hold=True)
        ledger.sending(3)
        ledger.result(3, status="bounced", code=550, reply="no", attempts=1, hold=True)
        assert statuses() == ["sent", "sent", "sending", "pending"]
        ledger.result(4, status="deferred", code=451, reply="later", attempts=2, hold=True)
        assert statuses() == ["sent", "sent", "bounced", "pending"]  # at most one is held
        ledger.flush()
        assert statuses() == ["sent", "sent", "bounced", "deferred"]
        ledger.sending(4)
        ledger.result(4, status="sent", code=250, reply="ok", attempts=1, hold=True)
    assert statuses() == ["sent", "sent", "bounced", "sent"]  # written on the way out
    assert ledger_rows(db, d)[3][2] == 3  # 2 + 1 attempts
    assert [s.email for s in db.list_subscribers(state_mod.BOUNCED)] == ["s2@x.org"]


def test_held_intents_wait_for_a_flush_and_results_are_held_up_to_the_limit(db):
    db.add_subscribers([(f"s{i}@x.org", "") for i in range(4)])
    d = db.create_digest(kind="digest", subject="S", html="h", text="t", post_ids=[], now=NOW)

    def statuses():
        return [row[1] for row in ledger_rows(db, d)]

    with db.ledger(d, hold_results=2) as ledger:
        ledger.sending(1, hold=True)
        ledger.sending(2, hold=True)
        assert statuses() == ["pending"] * 4  # held: the caller flushes before any content
        ledger.flush()
        assert statuses() == ["sending", "sending", "pending", "pending"]
        ledger.result(1, status="sent", code=250, reply="ok", attempts=1, hold=True)
        ledger.result(2, status="sent", code=250, reply="ok", attempts=1, hold=True)
        ledger.sending(3, hold=True)
        assert statuses() == ["sending", "sending", "pending", "pending"]  # two results held
        ledger.result(3, status="bounced", code=550, reply="no", attempts=1, hold=True)
        # A third result writes what was held first (two results and an intent), then waits.
        assert statuses() == ["sent", "sent", "sending", "pending"]
        ledger.sending(4)  # not held: written at once, with what is held
        assert statuses() == ["sent", "sent", "bounced", "sending"]
        ledger.result(4, status="sent", code=250, reply="ok", attempts=1, hold=True)
    assert statuses() == ["sent", "sent", "bounced", "sent"]  # written on the way out


def test_a_held_result_is_written_even_when_the_send_fails(db):
    db.add_subscribers([("a@x.org", "")])
    d = db.create_digest(kind="digest", subject="S", html="h", text="t", post_ids=[], now=NOW)
    with pytest.raises(RuntimeError, match="server refused us"):
        with db.ledger(d) as ledger:
            ledger.sending(1)
            ledger.result(1, status="sent", code=250, reply="ok", attempts=1, hold=True)
            raise RuntimeError("server refused us")
    assert db.delivery_counts(d) == {"sent": 1}


def test_a_database_failure_in_the_ledger_is_a_publisher_error(db_url, monkeypatch):
    monkeypatch.setattr(state_mod, "SQLITE_BUSY_TIMEOUT_MS", 50)
    db = State(db_url)
    db.add_subscribers([("a@x.org", "")])
    d = db.create_digest(kind="digest", subject="S", html="h", text="t", post_ids=[], now=NOW)
    with db.ledger(d) as ledger:
        ledger.sending(1)
        if db.is_sqlite:  # another writer holds the database for longer than the busy timeout
            import sqlite3

            other = sqlite3.connect(db_url.split("///", 1)[1], isolation_level=None)
            other.execute("BEGIN IMMEDIATE")
            expected = "database is locked"
        else:  # the server ends the ledger's session
            pid = ledger._conn.driver_connection.info.backend_pid
            with db.engine.connect() as conn:
                assert conn.exec_driver_sql(f"SELECT pg_terminate_backend({pid})").scalar()
                conn.commit()
            expected = "terminat"
        with pytest.raises(StateError, match=rf"^state database .*: .*{expected}"):
            ledger.result(1, status="sent", code=250, reply="ok", attempts=1)
        if db.is_sqlite:
            other.rollback()
            other.close()
    db.close()
    assert State(db_url).delivery_counts(d) == {"sending": 1}


def test_a_sender_renews_its_whole_claimed_batch_while_it_sends(db):
    """Rows claimed but not reached yet must not go stale while their sender is alive: else a
    second sender would take them over and mail them too."""
    db.add_subscribers([(f"s{i}@x.org", "") for i in range(3)])
    d = db.create_digest(kind="digest", subject="S", html="h", text="t", post_ids=[], now=NOW)
    timeout = timedelta(minutes=15)
    assert len(db.claim_batch(d, "me:1:x", limit=3, now=NOW, stale_before=NOW - timeout)) == 3

    def others_can_take(at):
        taken = db.claim_batch(d, "other:2:y", limit=3, now=at, stale_before=at - timeout)
        db.release_claims(d, "other:2:y")
        return [row.subscriber_id for row in taken]

    with db.ledger(d, "me:1:x", refresh_every=timedelta(minutes=1)) as ledger:
        ledger.sending(1, now=NOW)  # renews at once
        ledger.result(1, status="sent", code=250, reply="ok", attempts=1, now=NOW)
        # A slow message: the next intent comes 20 minutes later and renews the batch.
        ledger.sending(2, now=NOW + timedelta(minutes=20))
        assert others_can_take(NOW + timedelta(minutes=21)) == []
        ledger.result(2, status="deferred", code=451, reply="later", attempts=5,
                      now=NOW + timedelta(minutes=20))
    # Row 3, claimed at NOW and never reached, was renewed at 20 minutes: it goes stale, like
    # row 2, only 15 minutes after its sender's last sign of life.
    assert others_can_take(NOW + timedelta(minutes=34)) == []
    assert others_can_take(NOW + timedelta(minutes=36)) == [2, 3]


def test_a_v7_database_gains_leases_and_an_older_publishers_claims_keep_their_rule(db_url):
    """Upgraded while an older publisher (no leases) is sending: its claims stay its own
    until they go stale (15 minutes without a sign of life), as that publisher expects; the
    new senders' leased claims are never taken by that rule."""
    db = State(db_url)
    db.add_subscribers([(f"s{i}@x.org", "") for i in range(4)])
    d = db.create_digest(kind="digest", subject="S", html="h", text="t", post_ids=[], now=NOW)
    deliveries = state_mod.deliveries
    with db.write() as conn:  # back to version 7, two rows claimed as publisher 7 claims them
        conn.exec_driver_sql("DROP TABLE sender_leases")
        conn.exec_driver_sql("UPDATE meta SET value = '7' WHERE key = 'schema_version'")
        conn.execute(deliveries.update().where(deliveries.c.subscriber_id <= 2)
                     .values(claimed_by="oldhost:1:x", claimed_at=NOW))
    db.close()

    db = State(db_url)
    assert db.schema_version() == state_mod.SCHEMA_VERSION == 8
    db.take_lease(d, "new:2:y", lease=timedelta(seconds=45))
    soon, later = NOW + timedelta(minutes=14), NOW + timedelta(minutes=16)
    assert [o.subscriber_id for o in db.claim_batch(
        d, "new:2:y", limit=10, now=NOW, stale_before=soon - timedelta(minutes=15))] == [3, 4]
    assert [(c.sender, c.owed, c.renewed_at is None) for c in db.claims(d)] == [
        ("new:2:y", 2, False), ("oldhost:1:x", 2, True)]  # (no lease)
    db.take_lease(d, "new:3:z", lease=timedelta(seconds=45))
    assert db.claim_batch(d, "new:3:z", limit=10, now=soon,
                          stale_before=soon - timedelta(minutes=15)) == []
    # 16 minutes on, the old claims are stale; new:2:y's, as old, are leased: kept.
    assert [o.subscriber_id for o in db.claim_batch(
        d, "new:3:z", limit=10, now=later, stale_before=later - timedelta(minutes=15))] == [1, 2]
    db.close()


def test_state_open_reads_the_configured_database_and_closes_on_leaving_the_block(site):
    site.post("a.md", "title: A\npubDate: 2024-12-01")
    with State.open(site.config()) as state:
        state.add_subscribers([("a@x.org", "A")])
        pool = state.engine.pool
        assert pool.checkedin() == 1  # the connection that wrote, back in the pool
    assert pool.checkedin() == 0  # closed on the way out
    with State(site.database) as again:  # the same database, by its URL
        assert [s.email for s in again.list_subscribers()] == ["a@x.org"]


def test_state_is_closed_when_the_block_raises_and_the_error_goes_on(db_url):
    with pytest.raises(RuntimeError, match="mid-command"):
        with State(db_url) as state:
            state.set_meta("k", "v")
            pool = state.engine.pool
            raise RuntimeError("mid-command")
    assert pool.checkedin() == 0
    with State(db_url) as again:
        assert again.get_meta("k") == "v"
