from __future__ import annotations

import multiprocessing
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from publisher import state as state_mod
from publisher.errors import LockedError, PublisherError
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
    db.mark_sending(d, 1)
    db.mark_result(d, 1, status="sent", code=250, reply="ok", attempts=1)
    db.mark_sending(d, 2)  # killed here: intent recorded, no result
    db.mark_result(d, 3, status="bounced", code=550, reply="no such user", attempts=1)
    db.mark_result(d, 4, status="deferred", code=451, reply="later", attempts=5)
    rows = owed(db, d)
    assert [(o.subscriber_id, o.status) for o in rows] == [(2, "sending"), (4, "deferred"), (5, "pending")]
    assert db.list_subscribers(state_mod.BOUNCED)[0].email == "s2@x.org"
    assert db.finish_digest_if_done(d) is False
    for sid in (2, 4, 5):
        db.mark_result(d, sid, status="sent", code=250, reply="ok", attempts=1)
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
    with pytest.raises(PublisherError, match="schema version 99 is newer"):
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
        conn.exec_driver_sql("ALTER TABLE deliveries DROP COLUMN claimed_by")
        conn.exec_driver_sql("ALTER TABLE deliveries DROP COLUMN claimed_at")
        conn.exec_driver_sql("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    s.close()

    migrated = State(db_url)
    assert migrated.schema_version() == state_mod.SCHEMA_VERSION == 3
    with migrated.read() as conn:
        columns = {c["name"] for c in sa.inspect(conn).get_columns("deliveries")}
        assert {"claimed_by", "claimed_at"} <= columns
        assert sa.inspect(conn).has_table("scan_cache")
    assert [x.email for x in migrated.list_subscribers()] == ["kept@x.org"]
    assert [o.email for o in migrated.claim_batch(d, "me:1:x", limit=5, now=NOW,
                                                  stale_before=NOW - timedelta(minutes=15))] == ["kept@x.org"]
    migrated.close()
