"""Crash and resume: `publisher send` to 500 subscribers, killed with SIGKILL at 20 random
points (some by time, so they land in start-up, planning or the first messages; most by
progress, spread over the whole send), each time started again. Afterwards every subscriber
has the digest, and each kill cost at most `smtp.connections` duplicates: the messages the
server had accepted but the dead process had not yet recorded.

The SMTP server runs in its own process and writes every message to a spool folder before it
answers 250, so what it received survives the client's death. Kill points come from a fixed
seed (printed)."""

from __future__ import annotations

import random
import time
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
from reliability_helpers import (message_ids, run_cli, sent_in_ledger, settled_count, spool_count,
                                 start_cli, wait_until)
from sites import make_config, write_post
from send_helpers import PipeliningSpoolServer
from smtp_helpers import SpoolServerProcess

from publisher import pipeline
from publisher.state import State

WEEK_AGO = datetime.now(timezone.utc) - timedelta(days=7)


def crash_and_resume(tmp_path, *, seed: int, subscribers: int, kills: int, connections: int,
                     time_kills: int, server_class: type = SpoolServerProcess):
    rng = random.Random(seed)
    addresses = [f"reader{i:04d}@example.org" for i in range(subscribers)]
    spool = tmp_path / "spool"
    with server_class(spool, delay=0.005) as server:
        config = make_config(tmp_path / "site", smtp={
            **server.smtp_settings(), "connections": connections, "retry_base_delay": 0,
            "timeout": 10})
        write_post(config.root, "old.md", {"title": "Old", "pubDate": "2024-01-01"})
        pipeline.run_once(config, WEEK_AGO)  # baseline
        state = State(config.database_url)
        state.add_subscribers([(a, "") for a in addresses])
        state.close()
        write_post(config.root, "new.md", {"title": "New",
                                           "pubDate": (WEEK_AGO + timedelta(hours=1)).isoformat()})

        # The plan: `kills` kill points, `time_kills` of them a random delay after start, the
        # rest when the server has accepted a random number of messages in all.
        # Time kills go into the first half of the plan, where hundreds of messages are left:
        # the process is then still running at any moment up to 1.2 s after its start.
        thresholds = sorted(rng.sample(range(5, subscribers - 10), kills - time_kills))
        plan = [("count", t) for t in thresholds]
        for _ in range(time_kills):
            plan.insert(rng.randrange(len(plan) // 2 + 1), ("time", round(rng.uniform(0.0, 1.2), 3)))
        print(f"\ncrash-send seed {seed}: kill plan {plan}")

        unrecorded_per_kill = []
        received_before, sent_before = 0, 0
        for mode, value in plan:
            proc = start_cli(config.path, "send", "--quiet")
            if mode == "time":
                try:
                    proc.wait(value)
                except Exception:
                    pass
            else:
                wait_until(lambda: spool_count(spool) >= value or proc.poll() is not None,
                           timeout=60, what=f"{value} messages", poll=0.003)
            assert proc.poll() is None, (
                f"the send finished before kill point {mode} {value}: {proc.communicate()}")
            proc.kill()
            proc.communicate()
            # What this process handed over but did not record: it is mailed again later.
            # (The server may still be writing the last message the dead client sent.)
            received = settled_count(spool) - received_before
            recorded = sent_in_ledger(config) - sent_before
            received_before, sent_before = received_before + received, sent_before + recorded
            assert 0 <= recorded <= received, (mode, value, received, recorded)
            unrecorded_per_kill.append(received - recorded)
            assert received - recorded <= connections, (
                f"kill at {mode} {value}: {received - recorded} messages accepted but not "
                f"recorded, more than the {connections} connections in flight")

        final = run_cli(config.path, "run")
        assert final.returncode == 0, final.stderr
        # The last run sends each message once, and records each one it sends.
        assert settled_count(spool) - received_before == sent_in_ledger(config) - sent_before
        copies = Counter(m.rcpt for m in server.received)
        ids = message_ids(server.received)

    duplicates = sum(n - 1 for n in copies.values())
    summary = {"seed": seed, "kills": len(plan), "unrecorded per kill": unrecorded_per_kill,
               "duplicates": duplicates, "messages": sum(copies.values())}
    print("crash-send summary:", summary)
    assert set(copies) == set(addresses), "a subscriber never got the digest"
    assert duplicates == sum(unrecorded_per_kill), summary  # no other duplicates
    assert max(unrecorded_per_kill) <= connections
    assert all(len(v) == 1 for v in ids.values()), "a resent message changed its Message-ID"
    state = State(config.database_url)
    assert state.open_digests() == []
    assert state.delivery_counts(1) == {"sent": subscribers}
    state.close()
    return summary


def test_send_killed_at_20_random_points_resumes_with_at_most_connections_duplicates(tmp_path):
    summary = crash_and_resume(tmp_path, seed=7, subscribers=500, kills=20, connections=3,
                               time_kills=4)
    assert summary["kills"] == 20


@pytest.mark.slow
@pytest.mark.parametrize("seed", [11, 12])
def test_send_killed_100_times_soak(tmp_path, seed):
    summary = crash_and_resume(tmp_path, seed=seed, subscribers=2000, kills=100, connections=4,
                               time_kills=15)
    assert summary["kills"] == 100


@pytest.mark.parametrize("seed", [21])
def test_pipelined_send_killed_at_random_points_resumes_with_at_most_one_duplicate(
        tmp_path, seed):
    # The kill-and-resume run above, against a server that offers PIPELINING and with
    # one connection: the path of a default `publisher send`, where the intent is recorded
    # after MAIL/RCPT/DATA went out and a result shares the next intent's transaction.
    summary = crash_and_resume(tmp_path, seed=seed, subscribers=300, kills=10, connections=1,
                               time_kills=2, server_class=PipeliningSpoolServer)
    assert summary["kills"] == 10 and max(summary["unrecorded per kill"]) <= 1
