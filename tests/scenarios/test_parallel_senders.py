"""Several `publisher send` processes share one digest by claiming batches of owed rows
(FOR UPDATE SKIP LOCKED on PostgreSQL; exclusive write transactions on SQLite), each under
a lease it renews (newsletter/sending.py): a sender killed on one machine is taken over by
the others within a minute.

"Machines" are UTS namespaces (`unshare --uts`, root only): each sender sees its own host
name, so the others cannot tell by its process id that it died, as on separate machines."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from reliability_helpers import cli, spool_count, wait_until
from sites import make_config, write_post
from smtp_helpers import SpoolServerProcess

from publisher import pipeline
from publisher.newsletter import sending
from publisher.newsletter.sending import dead_senders, sender_id
from publisher.state import OWED, State, deliveries
from publisher.state.ledger import LeaseLost
from publisher.state.schema import sender_leases

N = 3000
WEEK_AGO = datetime.now(timezone.utc) - timedelta(days=7)


def test_three_senders_share_one_digest_and_nobody_gets_two_copies(site, tmp_path):
    with SpoolServerProcess(tmp_path / "spool", delay=0.001) as server:
        site.write_config(smtp={"host": "127.0.0.1", "port": server.port, "connections": 1})
        site.post("old.md", "title: Old\npubDate: 2024-01-01")
        config = site.config()
        week_ago = datetime.now(timezone.utc) - timedelta(days=7)
        pipeline.run_once(config, week_ago)  # baseline
        state = State(config.database_url)
        state.add_subscribers([(f"r{i:05d}@example.org", "") for i in range(N)])
        state.close()
        site.post("new.md", f"title: New\npubDate: {week_ago.isoformat()}")

        cmd = [sys.executable, "-m", "publisher.cli", "--config", str(config.path), "send"]
        procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(3)]
        outs = [p.communicate(timeout=600) for p in procs]
        assert all(p.returncode == 0 for p in procs), outs

        received = Counter(m.rcpt for m in server.received)
        assert len(received) == N and set(received.values()) == {1}
        shares = [sum(int(n) for n in re.findall(r"digest #1 .*?: (\d+) sent", out)) for out, _ in outs]
        assert sum(shares) == N
        assert all(share > 0 for share in shares), shares  # each sender did part of the work
        state = State(config.database_url)
        assert state.delivery_counts(1) == {"sent": N}
        assert state.open_digests() == [] and state.claimants(1) == []


def test_claims_without_a_lease_return_to_the_pool_once_stale_or_dead(db_url):
    """Claims by a sender that holds no lease (a publisher before state schema v8)."""
    state = State(db_url)
    state.add_subscribers([(f"s{i}@example.org", "") for i in range(10)])
    now = datetime.now(timezone.utc)
    digest = state.create_digest(kind="digest", subject="s", html="h", text="t", post_ids=[], now=now)
    live, gone = sender_id(), "otherhost:1:abcd"
    first = state.claim_batch(digest, live, limit=4, now=now, stale_before=now - timedelta(minutes=15))
    assert [o.subscriber_id for o in first] == [1, 2, 3, 4]
    # A live claim is respected...
    second = state.claim_batch(digest, gone, limit=10, now=now, stale_before=now - timedelta(minutes=15))
    assert [o.subscriber_id for o in second] == [5, 6, 7, 8, 9, 10]
    assert state.claim_batch(digest, "third:1:x", limit=10, now=now,
                             stale_before=now - timedelta(minutes=15)) == []
    # ...a stale one (another machine that went silent) is taken over...
    later = now + timedelta(minutes=16)
    taken = state.claim_batch(digest, "third:1:x", limit=10, now=later, stale_before=later - timedelta(minutes=15))
    assert [o.subscriber_id for o in taken] == list(range(1, 11))
    # ...and a local sender whose process is gone is spotted at once.
    import socket

    dead_local = f"{socket.gethostname()}:999999999:dead"
    assert dead_senders([dead_local, live, gone]) == [dead_local]
    assert state.release_claims(digest, "third:1:x") == 10
    assert state.claimants(digest) == []


def lease_row(state: State, sender: str):
    with state.read() as conn:
        return conn.execute(sa.select(sender_leases).where(sender_leases.c.sender == sender)).first()


def test_a_run_out_lease_frees_its_rows_and_its_holder_can_write_no_more(db_url):
    state = State(db_url)
    state.add_subscribers([(f"s{i}@example.org", "") for i in range(10)])
    now = datetime.now(timezone.utc)
    digest = state.create_digest(kind="digest", subject="s", html="h", text="t", post_ids=[], now=now)
    lease = timedelta(seconds=45)
    a, b, c = "machine-a:1:aa", "machine-b:2:bb", "machine-c:3:cc"
    for sender in (a, b, c):
        state.take_lease(digest, sender, lease=lease)
    # Even with claimed_at long past (stale_before in the future), a live lease keeps its rows.
    claim = dict(now=now, stale_before=now + timedelta(days=1))
    assert [o.subscriber_id for o in state.claim_batch(digest, a, limit=4, **claim)] == [1, 2, 3, 4]
    assert [o.subscriber_id for o in state.claim_batch(digest, b, limit=10, **claim)] == list(range(5, 11))
    assert state.claim_batch(digest, c, limit=10, **claim) == []
    held = state.claims(digest)
    assert [(h.sender, h.owed) for h in held] == [(a, 4), (b, 6)]
    assert not any(sending.stopped_answering(h) for h in held)
    assert state.renew_lease(a, lease=lease)

    # machine-a goes silent: its lease is last renewed a minute ago and ran out since.
    with state.write() as conn:
        conn.execute(sender_leases.update().where(sender_leases.c.sender == a).values(
            renewed_at=now - timedelta(minutes=1), expires_at=now - timedelta(seconds=15)))
    assert [sending.stopped_answering(h) for h in state.claims(digest)] == [True, False]
    ledger_cm = state.ledger(digest, a, lease_held=lambda: True)  # it does not know yet
    ledger = ledger_cm.__enter__()
    ledger.sending(1)  # before the takeover: still its row, written
    taken = state.claim_batch(digest, c, limit=10, **claim)
    assert [o.subscriber_id for o in taken] == [1, 2, 3, 4]
    assert lease_row(state, a) is None  # run out, and holding nothing now: forgotten
    assert not state.renew_lease(a, lease=lease)  # it can no longer renew it...
    with pytest.raises(LeaseLost, match="1 of its rows were taken over by another sender"):
        ledger.sending(2)  # ...nor write an intent (nor send)
    ledger.result(1, status="deferred", code=451, reply="later", attempts=1)  # not over c's row
    ledger_cm.__exit__(None, None, None)
    d = deliveries.c
    with state.read() as conn:
        rows = dict(conn.execute(sa.select(d.subscriber_id, d.status).where(d.subscriber_id <= 4)).all())
    assert rows == {1: "sending", 2: "pending", 3: "pending", 4: "pending"}
    assert [(h.sender, h.owed) for h in state.claims(digest)] == [(b, 6), (c, 4)]

    # A ledger told its lease no longer holds writes results, never an intent.
    state.take_lease(digest, "machine-d:4:dd", lease=lease)
    state.release_claims(digest, c)
    assert [o.subscriber_id for o in state.claim_batch(digest, "machine-d:4:dd", limit=2, **claim)] == [1, 2]
    with state.ledger(digest, "machine-d:4:dd", lease_held=lambda: False) as ledger:
        ledger.result(1, status="sent", code=250, reply="ok", attempts=1, hold=True)
        ledger.sending(2, hold=True)
        with pytest.raises(LeaseLost, match="lease on digest #1 ran out"):
            ledger.flush()
    with state.read() as conn:
        rows = dict(conn.execute(sa.select(d.subscriber_id, d.status).where(d.subscriber_id <= 2)).all())
    assert rows == {1: "sent", 2: "pending"}
    for sender in (b, "machine-d:4:dd"):
        state.release_claims(digest, sender)
    assert state.claims(digest) == []
    with state.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(sender_leases)).scalar() == 0
    state.close()


# --- a sender killed on another machine -------------------------------------------------------

def _can_unshare() -> bool:
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "--uts", "true"], capture_output=True).returncode == 0


def on_machine(name: str, config_path, *args: str) -> subprocess.Popen:
    """`publisher ARGS` in a UTS namespace of its own whose host name is `name`: the process
    is the publisher process itself (sh execs it), so kill() kills the sender."""
    return subprocess.Popen(["unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"', name,
                             *cli(config_path, *args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def held_by(state: State, host: str | None) -> set[int]:
    """The owed rows of digest 1 claimed by a sender on `host` (None: by nobody)."""
    d = deliveries.c
    holder = d.claimed_by.is_(None) if host is None else d.claimed_by.like(f"{host}:%")
    with state.read() as conn:
        return set(conn.execute(sa.select(d.subscriber_id).where(
            d.digest_id == 1, d.status.in_(OWED), holder)).scalars())


KILLED_SENDS = 450


@pytest.mark.skipif(not _can_unshare(), reason="needs `unshare --uts` (root) to play several machines")
def test_a_sender_killed_on_another_machine_is_taken_over_within_a_minute(tmp_path):
    """Three senders on three machines share a digest; one of them is killed with SIGKILL
    mid-send (late in it, the one holding most rows then). A rerun on a fourth machine during the
    dead sender's lease exits 1, naming the sender that stopped answering and the moment its
    rows come free, within a minute of the kill; a rerun then takes them over and mails
    them. Nobody is mailed twice, beyond the one message (smtp.connections) in flight at the
    kill. (A sender still running when the lease runs out takes the rows over itself: the
    same claim; test_a_run_out_lease_frees_its_rows_and_its_holder_can_write_no_more.)"""
    addresses = [f"reader{i:05d}@example.org" for i in range(KILLED_SENDS)]
    spool = tmp_path / "spool"
    # 50 ms a message, one connection a sender: the kill lands mid-send.
    with SpoolServerProcess(spool, delay=0.05) as server:
        config = make_config(tmp_path / "site", smtp={
            **server.smtp_settings(), "connections": 1, "retry_base_delay": 0, "timeout": 10})
        write_post(config.root, "old.md", {"title": "Old", "pubDate": "2024-01-01"})
        pipeline.run_once(config, WEEK_AGO)  # baseline
        state = State(config.database_url)
        state.add_subscribers([(a, "") for a in addresses])
        write_post(config.root, "new.md", {"title": "New",
                                           "pubDate": (WEEK_AGO + timedelta(hours=1)).isoformat()})
        senders = {name: on_machine(name, config.path, "send")
                   for name in ("machine-a", "machine-b", "machine-c")}
        try:
            # Killed late in the send: the unclaimed rest is then sent by the others well
            # before the dead sender's lease runs out, and what it holds waits for it.
            holding: dict[str, int] = {}

            def late_in_the_send() -> bool:
                ended = {name: p.communicate() for name, p in senders.items() if p.poll() is not None}
                assert not ended, f"a sender ended before the kill: {ended}"
                holding.update((name, len(held_by(state, name))) for name in senders)
                return len(held_by(state, None)) <= 120 and max(holding.values()) >= 10

            wait_until(late_in_the_send, timeout=120, what="a sender holding rows late in the send",
                       poll=0.02)
            dead = max(holding, key=holding.get)
            victim = senders.pop(dead)
            victim.kill()
            killed = time.monotonic()
            killed_at = datetime.now(timezone.utc)
            victim.communicate()
            held = held_by(state, dead)
            outs = {name: p.communicate(timeout=120) for name, p in senders.items()}
            assert all("Traceback" not in out + err for out, err in outs.values()), outs

            # A rerun elsewhere once the dead sender missed two renewals (the moment it
            # counts as silent), while its lease still runs: exit 1, saying who owes what.
            time.sleep(max(sending.SILENT_AFTER.total_seconds() + 4 - (time.monotonic() - killed), 0))
            rerun = on_machine("machine-d", config.path, "send")
            out, err = rerun.communicate(timeout=60)
            assert time.monotonic() - killed < sending.LEASE.total_seconds(), (
                "the test itself was too slow: the lease ran out before the rerun ended")
            found = re.search(rf"{len(held)} owed by a sender that stopped answering "
                              rf"\({dead}:\d+:\w+, last heard [\d-]+ [\d:]+ UTC\): any sender "
                              r"takes them over from ([\d-]+ [\d:]+) UTC", out)
            assert rerun.returncode == 1 and found, (rerun.returncode, out, err)
            free_at = datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc)
            assert free_at - killed_at <= timedelta(seconds=60), (free_at, killed_at)

            # From that moment a rerun takes the rows over and mails them.
            time.sleep(max((free_at - datetime.now(timezone.utc)).total_seconds(), 0) + 0.1)
            takeover = time.monotonic() - killed
            final = on_machine("machine-d", config.path, "send")
            out, err = final.communicate(timeout=120)
            mailed = time.monotonic() - killed
            assert final.returncode == 0, (out, err)
            assert re.search(rf"digest #1 .*: {len(held)} sent, 0 retried, 0 bounced$", out, re.M), out
        finally:
            for p in senders.values():
                if p.poll() is None:
                    p.kill()
        copies = Counter(m.rcpt for m in server.received)

    twice = {a for a, n in copies.items() if n > 1}
    print(f"\n{dead} killed holding {len(held)} owed rows; free {free_at - killed_at} after the "
          f"kill; taken over after {takeover:.1f} s, all mailed after {mailed:.1f} s; "
          f"{len(twice)} mailed twice")
    assert set(copies) == set(addresses)
    assert max(copies.values()) <= 2 and len(twice) <= 1  # the message in flight at the kill
    assert twice <= {addresses[i - 1] for i in held}  # (subscriber ids follow the insert order)
    assert state.delivery_counts(1) == {"sent": KILLED_SENDS}
    assert state.claimants(1) == []
    with state.read() as conn:  # every lease ended or, run out and taken over, forgotten
        assert conn.execute(sa.select(sa.func.count()).select_from(sender_leases)).scalar() == 0
    state.close()
