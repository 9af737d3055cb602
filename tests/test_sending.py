"""newsletter/sending.py: a digest driven through the ledger (State.ledger) and delivery.py, on the fast
path a `publisher send` takes against a server that offers PIPELINING: one connection, the
intent recorded while the server answers MAIL/RCPT/DATA, a result recorded in the same
transaction as the next intent."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from sites import make_config, write_post
from send_helpers import PipeliningServer, PipeliningSpoolServer

from publisher import pipeline
from publisher.newsletter import sending as mailing
from publisher import state as state_mod
from publisher.state import State

WEEK_AGO = datetime.now(timezone.utc) - timedelta(days=7)


def site_with_subscribers(root, server, count: int, **smtp):
    config = make_config(root, smtp={**server.smtp_settings(), "retry_base_delay": 0,
                                    "timeout": 10, **smtp})
    write_post(config.root, "old.md", {"title": "Old", "pubDate": "2024-01-01"})
    pipeline.run_once(config, WEEK_AGO)  # baseline: the old post is never mailed
    state = State(config.database_url)
    state.add_subscribers([(f"reader{i:04d}@example.org", f"Reader {i}") for i in range(count)])
    state.close()
    write_post(config.root, "new.md", {"title": "New",
                                       "pubDate": (WEEK_AGO + timedelta(hours=1)).isoformat()})
    return config


def delivery_statuses(config) -> list[tuple[str, int]]:
    """(status, how many deliveries have it), over the whole ledger."""
    state = State(config.database_url)
    try:
        with state.read() as conn:
            d = state_mod.deliveries
            return conn.execute(sa.select(d.c.status, sa.func.count()).group_by(d.c.status)).all()
    finally:
        state.close()


@pytest.fixture
def claim_limits(monkeypatch) -> list[int]:
    """The `limit` of every claim_batch call, in order (the real claim still runs)."""
    limits = []
    claim_batch = State.claim_batch

    def recording_claim_batch(self, digest_id, sender, *, limit, **kwargs):
        limits.append(limit)
        return claim_batch(self, digest_id, sender, limit=limit, **kwargs)

    monkeypatch.setattr(State, "claim_batch", recording_claim_batch)
    return limits


def test_a_send_leaves_every_row_sent_once_and_unclaimed(tmp_path, claim_limits):
    limits = claim_limits
    with PipeliningServer() as server:
        server.add_fault("rcpt", "550 5.1.1 no such user", recipient="reader0007@example.org")
        config = site_with_subscribers(tmp_path / "site", server, 300)
        report = pipeline.send_now(config)
        received = server.received
        assert server.connections == 1

    assert report.exit_status == 0, report.lines
    assert len(received) == 299 and len({m.rcpt for m in received}) == 299
    state = State(config.database_url)
    d = state_mod.deliveries
    with state.read() as conn:
        rows = conn.execute(sa.select(d.c.subscriber_id, d.c.status, d.c.attempts, d.c.last_code,
                                      d.c.claimed_by, d.c.claimed_at, d.c.updated_at)
                            .where(d.c.digest_id == 1).order_by(d.c.subscriber_id)).all()
    assert [(r.status, r.attempts, r.last_code) for r in rows] == (
        [("sent", 1, 250)] * 7 + [("bounced", 1, 550)] + [("sent", 1, 250)] * 292)
    assert all(r.claimed_by is None and r.claimed_at is None for r in rows)  # given back
    assert [s.email for s in state.list_subscribers(state_mod.BOUNCED)] == ["reader0007@example.org"]
    assert state.open_digests() == []
    state.close()
    # Claims start small and grow with the pace of the send, never past the maximum.
    assert limits[0] == 20 and len(limits) < 300 // 20
    assert max(limits) <= mailing.CLAIM_BATCH_MAX


@pytest.mark.parametrize("connections, expected", [("auto", 2), (1, 1)])
def test_a_large_send_without_pipelining_gets_a_second_connection_unless_pinned(
        tmp_path, connections, expected):
    from smtp_helpers import SmtpServer

    from publisher.newsletter.delivery import AUTO_SECOND_FROM

    count = AUTO_SECOND_FROM + 20
    with SmtpServer() as server:  # no PIPELINING: four round trips a message
        config = site_with_subscribers(tmp_path / "site", server, count, connections=connections)
        report = pipeline.send_now(config)
        received = server.received
        assert server.connections == expected

    assert report.exit_status == 0, report.lines
    assert sorted(m.rcpt for m in received) == [f"reader{i:04d}@example.org" for i in range(count)]
    assert {m.connection for m in received} == set(range(1, expected + 1))
    assert delivery_statuses(config) == [("sent", count)]


def test_claims_grow_with_the_pace_and_stay_bounded(tmp_path, monkeypatch, claim_limits):
    monkeypatch.setattr(mailing, "CLAIM_BATCH_MAX", 60)
    limits = claim_limits
    with PipeliningServer() as server:
        config = site_with_subscribers(tmp_path / "site", server, 200)
        pipeline.send_now(config)
        assert len(server.received) == 200
    assert limits[0] == 20 and set(limits[1:]) == {60}


def test_rows_of_a_dead_local_sender_are_sent_once_after_the_free_ones(
        tmp_path, monkeypatch, claim_limits):
    """Dead local senders are looked for when free rows may have run out (the first claim,
    after a short one), not before every claim: rows a killed process on this machine had
    claimed are still sent by this send, once each, and nobody else twice."""
    import socket
    import subprocess
    from collections import Counter

    from publisher.newsletter import delivery

    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid that no process has any more
    holder = f"{socket.gethostname()}:{dead.pid}:0badf00d"
    with PipeliningServer() as server:
        config = site_with_subscribers(tmp_path / "site", server, 150)
        # The digest recorded, nothing sent (its claims given back), then the last 30 rows
        # claimed by the dead process, as a kill -9 mid-send leaves them.
        real_deliver = delivery.deliver
        monkeypatch.setattr(delivery, "deliver", lambda jobs, *a, **k: delivery.DeliveryStats())
        pipeline.send_now(config)
        monkeypatch.setattr(delivery, "deliver", real_deliver)
        state = State(config.database_url)
        with state.write() as conn:
            d = state_mod.deliveries
            conn.execute(d.update().where(d.c.digest_id == 1, d.c.subscriber_id > 120)
                         .values(claimed_by=holder, claimed_at=datetime.now(timezone.utc)))
        state.close()
        listed = []
        claimants = State.claimants
        monkeypatch.setattr(State, "claimants",
                            lambda self, digest_id: listed.append(1) or claimants(self, digest_id))
        claim_limits.clear()
        report = pipeline.send_now(config)
        copies = Counter(m.rcpt for m in server.received)

    assert report.exit_status == 0, report.lines
    assert copies == Counter(f"reader{i:04d}@example.org" for i in range(150))
    assert delivery_statuses(config) == [("sent", 150)]
    assert len(listed) < len(claim_limits)  # not before every claim


def test_a_send_checkpoints_the_sqlite_wal_less_often_then_restores_the_default(tmp_path):
    """Each WAL checkpoint syncs two files to disk: during a send the ledger's connection
    checkpoints every LEDGER_CHECKPOINT_PAGES, and goes back to the pool with SQLite's default."""
    from publisher.state import ledger as ledger_mod

    state = State(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        with state.ledger(1) as ledger:
            assert ledger._cursor.execute("PRAGMA wal_autocheckpoint").fetchone() == (
                ledger_mod.LEDGER_CHECKPOINT_PAGES,)
            used = ledger._conn.dbapi_connection
        conn = state.engine.raw_connection()
        try:
            assert conn.dbapi_connection is used  # the same connection, back from the pool
            assert conn.cursor().execute("PRAGMA wal_autocheckpoint").fetchone() == (
                ledger_mod.SQLITE_CHECKPOINT_PAGES,)
        finally:
            conn.close()
    finally:
        state.close()
    assert ledger_mod.LEDGER_CHECKPOINT_PAGES > ledger_mod.SQLITE_CHECKPOINT_PAGES == 1000


@pytest.mark.parametrize("connections", [1, 2])
def test_every_intent_is_in_the_database_before_its_content_and_two_connections_share_writes(
        tmp_path, monkeypatch, connections):
    """Intents are held and written before the content goes out (delivery's before_content):
    when the server holds a whole message, another reader of the database already sees that
    delivery as "sending", never still "pending". With two connections, one write carries
    both connections' intents: about one transaction per two messages."""
    from smtp_helpers import SmtpServer

    from publisher.state import ledger as ledger_mod

    writes = []
    write = ledger_mod.Ledger._write
    monkeypatch.setattr(ledger_mod.Ledger, "_write",
                        lambda self, batch: (writes.append(len(batch)), write(self, batch))[1])
    count = 60
    seen = []
    with SmtpServer() as server:  # no PIPELINING: MAIL, RCPT, DATA one at a time
        config = site_with_subscribers(tmp_path / "site", server, count, connections=connections)
        reader = State(config.database_url)  # another connection than the send's (SQLite or PostgreSQL)
        record = server._record
        d, s = state_mod.deliveries, state_mod.subscribers
        status_of = sa.select(d.c.status).join(s, s.c.id == d.c.subscriber_id)

        def checking_record(received):  # the server holds the message, before its 250
            with reader.read() as conn:
                seen.append(tuple(conn.execute(status_of.where(s.c.email == received.rcpt)).one()))
            record(received)

        server._record = checking_record
        writes.clear()
        try:
            report = pipeline.send_now(config)
        finally:
            reader.close()
        assert server.connections == connections

    assert report.exit_status == 0, report.lines
    assert seen == [("sending",)] * count
    if connections == 1:
        assert len(writes) >= count  # one transaction a message: its intent, the last result
    else:
        assert len(writes) <= count // 2 + 5, writes
    assert delivery_statuses(config) == [("sent", count)]


@pytest.mark.parametrize("renewal", ["fails", "ran out"])
def test_a_sender_that_loses_its_lease_sends_nothing_more_and_the_next_send_finishes(
        tmp_path, monkeypatch, renewal):
    """A sender that cannot renew its lease (the database unreachable) stops once it no
    longer trusts it; one told that its lease ran out stops at once. Either way each message
    whose intent it wrote is the only one: the next send mails the rest, nobody twice."""
    from collections import Counter

    from smtp_helpers import SmtpServer

    from publisher.errors import StateError

    monkeypatch.setattr(mailing, "LEASE_RENEW", 0.05)
    monkeypatch.setattr(mailing, "LEASE_TRUSTED", timedelta(seconds=0.5))
    renew_lease = State.renew_lease

    def renewal_fails(self, sender, *, lease):
        if renewal == "fails":
            raise StateError("state database x: connection refused")
        return False

    with SmtpServer(delay=0.02) as server:  # 200 messages take 4 s or more
        config = site_with_subscribers(tmp_path / "site", server, 200, connections=1)
        monkeypatch.setattr(State, "renew_lease", renewal_fails)
        report = pipeline.send_now(config)
        first = len(server.received)
        monkeypatch.setattr(State, "renew_lease", renew_lease)
        again = pipeline.send_now(config)
        copies = Counter(m.rcpt for m in server.received)

    why = {"fails": r"this sender could not renew its lease on digest #1 for 0\.5 s \(is the "
                    r"state database reachable\?\)",
           "ran out": r"this sender's lease on digest #1 had run out when it renewed it"}[renewal]
    assert report.exit_status == 1, report.lines
    assert re.search(rf": {first} sent, 0 retried, 0 bounced, {200 - first} not sent by this "
                     rf"sender: {why}: it stopped; the other senders or the next run send the "
                     r"rest$", report.lines[-1]), report.lines
    assert 0 < first < (100 if renewal == "fails" else 20)
    assert again.exit_status == 0, again.lines
    assert sorted(copies.values()) == [1] * 200
    assert delivery_statuses(config) == [("sent", 200)]


def test_a_live_sender_renews_its_lease_on_a_thread_of_its_own(db_url, monkeypatch):
    """Renewed whatever the sender's own thread is doing (here: sleeping), so its lease is
    still trusted long after LEASE_TRUSTED, and the database sees it renewed."""
    import time

    from publisher.state.schema import sender_leases

    monkeypatch.setattr(mailing, "LEASE_RENEW", 0.05)
    monkeypatch.setattr(mailing, "LEASE_TRUSTED", timedelta(seconds=0.3))
    state = State(db_url)
    state.add_subscribers([("a@example.org", "")])
    digest = state.create_digest(kind="digest", subject="s", html="h", text="t", post_ids=[],
                                 now=datetime.now(timezone.utc))

    def renewed_at():
        with state.read() as conn:
            return conn.execute(sa.select(sender_leases.c.renewed_at)).scalar_one()

    with mailing.Lease(state, digest, "host:1:x") as lease:
        taken = renewed_at()
        time.sleep(1.0)
        assert lease.held()
        assert renewed_at() > taken
    state.release_claims(digest, "host:1:x")
    with state.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(sender_leases)).scalar() == 0
    state.close()
