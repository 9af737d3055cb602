"""Several `publisher send` processes share one digest by claiming batches of owed rows
(FOR UPDATE SKIP LOCKED on PostgreSQL; exclusive write transactions on SQLite)."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from datetime import datetime, timedelta, timezone

from smtp_helpers import SpoolServerProcess

from publisher import pipeline
from publisher.newsletter.sending import dead_senders, sender_id
from publisher.state import State

N = 3000


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


def test_a_dead_senders_claims_return_to_the_pool(db_url):
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
