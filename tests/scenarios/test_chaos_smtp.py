"""SMTP chaos: 1,000 subscribers, a real STARTTLS server on 127.0.0.1 that answers at random
with 421/450/451/452, 550/553 for some addresses, drops connections before and after DATA,
replies later than the client's timeout and breaks TLS handshakes. Across several runs every
reachable subscriber gets exactly one copy (plus one per reply the server lost after queueing
the message, which SMTP cannot avoid, always with the same Message-ID), every bounced one
none, and the delivery ledger agrees with what the server received.

Faults are drawn from a fixed seed per (stage, recipient, attempt), so a failure reproduces;
the seed and the fault counts are printed."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest
from reliability_helpers import ChaosRates, ChaosSmtpServer, message_ids
from sites import make_config, write_post
from smtp_helpers import smtp_cert, smtp_server  # noqa: F401  (fixtures)

from publisher import pipeline
from publisher.newsletter import smtp
from publisher.errors import DeliveryError
from publisher.state import State

WEEK_AGO = datetime.now(timezone.utc) - timedelta(days=7)


def chaos_send(tmp_path, cert, *, seed: int, subscribers: int, bounce_share: float = 0.05,
               connections: int = 4, max_runs: int = 10, rates: ChaosRates | None = None,
               pipelining: bool = False):
    rng = random.Random(seed)
    addresses = [f"reader{i:05d}@example.org" for i in range(subscribers)]
    bounced = rng.sample(addresses, int(subscribers * bounce_share))
    kinds = ["rcpt 550 5.1.1 No such user here", "rcpt 553 5.1.3 Bad destination mailbox",
             "end 550 5.2.1 Mailbox disabled for this recipient"]
    bounces = {a: kinds[i % len(kinds)] for i, a in enumerate(bounced)}

    server = ChaosSmtpServer(seed, rates=rates, bounces=bounces, slow_seconds=2.0,
                             tls="starttls", cert=cert, pipelining=pipelining)
    with server:
        config = make_config(tmp_path / "site", smtp={
            **server.smtp_settings(), "timeout": 1.5, "connections": connections,
            "max_attempts": 3, "retry_base_delay": 0})
        root = config.root
        write_post(root, "old.md", {"title": "Old", "pubDate": "2024-01-01"})
        server.paused = True
        pipeline.run_once(config, WEEK_AGO)  # the baseline: nothing mailed
        state = State(config.database_url)
        state.add_subscribers([(a, f"Reader {i}") for i, a in enumerate(addresses)])
        write_post(root, "new.md", {"title": "News of the week",
                                    "pubDate": (WEEK_AGO + timedelta(hours=1)).isoformat()})
        server.paused = False

        runs, aborted = 0, []
        while runs < max_runs:
            runs += 1
            try:
                pipeline.send_now(config)
            except DeliveryError as e:  # e.g. the first connection of a run met a 421
                aborted.append(str(e))
            server.settle()
            if not state.open_digests() and state.count_owed(1) == 0:
                break
        server.paused = True
        summary = {
            "seed": seed, "subscribers": subscribers, "bounce addresses": len(bounces),
            "runs": runs, "runs aborted by a connection-level fault": aborted,
            "faults injected": sum(server.faults.values()), "by kind": dict(sorted(server.faults.items())),
            "lost replies (expected duplicates)": sum(server.lost.values()),
            "messages received": len(server.received), "connections": server.connections,
        }
        print("\nchaos summary:", summary)

        # Every run's faults are accounted for, and the digest is finished.
        assert state.open_digests() == [], summary
        copies = server.copies()
        reachable = [a for a in addresses if a not in bounces]
        wrong = {a: (copies[a], 1 + server.lost[a]) for a in reachable if copies[a] != 1 + server.lost[a]}
        assert wrong == {}, f"copies != 1 + lost replies for {len(wrong)}: {list(wrong.items())[:10]} {summary}"
        assert not (set(copies) & set(bounces)), "a bounced address received the digest"
        lost = sum(c - 1 for c in copies.values())
        assert lost == sum(server.lost.values())
        # A duplicate is the same message: one Message-ID per recipient.
        ids = message_ids(server.received)
        assert all(len(v) == 1 for v in ids.values())
        assert len({next(iter(v)) for v in ids.values()}) == len(reachable)  # unique per recipient
        # The ledger agrees with the server.
        assert state.delivery_counts(1) == {"sent": len(reachable), "bounced": len(bounces)}
        assert {s.email for s in state.list_subscribers("bounced")} == set(bounces)
        assert state.count_subscribers("active") == len(reachable)
        state.close()
        return server, summary


@pytest.mark.parametrize("pipelining, connections", [(False, 4), (True, 4), (True, 1)],
                         ids=["one-command-at-a-time", "pipelined", "pipelined-one-connection"])
def test_chaos_1000_subscribers_exactly_once_and_ledger_agrees(tmp_path, smtp_cert,  # noqa: F811
                                                               pipelining, connections, monkeypatch):
    groups = []  # MAIL..DATA written as one group: the pipelined path was taken
    real_commands = smtp._commands

    def spy(sender, options, recipient=None):
        if sender is not None:  # (None: RCPT on its own, one command at a time)
            groups.append(recipient is not None)
        return real_commands(sender, options, recipient)

    monkeypatch.setattr(smtp, "_commands", spy)
    server, summary = chaos_send(tmp_path, smtp_cert, seed=20240607, subscribers=1000,
                                 pipelining=pipelining, connections=connections)
    assert groups and set(groups) == {pipelining}
    # The chaos really happened: every kind of fault fired, and some mail needed a second run.
    kinds = set(server.faults)
    for needed in ("mail_4xx", "rcpt_4xx", "rcpt_421", "rcpt_drop", "data_451", "data_drop",
                   "end_4xx", "end_lost", "bounce_550", "bounce_553", "bounce_end_550"):
        assert needed in kinds, (needed, summary)
    for group in (("connect_421", "connect_slow"), ("starttls_454", "starttls_broken"),
                  ("rcpt_slow", "end_slow")):
        assert kinds & set(group), (group, summary)
    assert summary["runs"] >= 2, summary


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_chaos_soak_5000_subscribers(tmp_path, smtp_cert, seed):  # noqa: F811
    rates = ChaosRates(rcpt_4xx=0.1, end_lost=0.02, data_drop=0.04, connect_421=0.05)
    chaos_send(tmp_path, smtp_cert, seed=seed, subscribers=5000, connections=8, max_runs=20,
               rates=rates)


def test_one_busy_greeting_on_a_last_attempt_does_not_abort_the_whole_run(smtp_server, tmp_path):  # noqa: F811
    """Found by the chaos run: a message whose last attempt met one "421 busy" greeting made
    `deliver` raise "cannot reach SMTP server", dropping every message after it from the run
    (at 7% connection faults, 3 runs of 4 were cut short). A server that answered the
    previous attempt is reachable; only consecutive connection failures mean it is down."""
    from publisher.newsletter.delivery import Job, deliver

    config = smtp_server.config(tmp_path, timeout=5, max_attempts=3, retry_base_delay=0)
    smtp_server.add_fault("rcpt", "451 4.3.0 Try later", recipient="a@example.org", times=2)
    waits = []

    def sleep(seconds):  # the backoff before attempts 2 and 3
        waits.append(seconds)
        if len(waits) == 2:  # the third attempt's connection meets a busy greeting
            smtp_server.add_fault("connect", "421 4.3.2 Busy, try again", times=1)

    outcomes = {}
    deliver([Job(r, r, lambda r=r: b"Subject: x\r\nTo: " + r.encode() + b"\r\n\r\nhi\r\n")
             for r in ("a@example.org", "b@example.org", "c@example.org")],
            config, mail_from="news@blog.test.example", on_attempt=lambda job: None,
            on_result=lambda job, out: outcomes.__setitem__(job.key, out), sleep=sleep)
    assert outcomes["a@example.org"].status == "deferred"  # still owed: the next run retries
    assert outcomes["a@example.org"].attempts == 3
    assert {k: o.status for k, o in outcomes.items() if k != "a@example.org"} == {
        "b@example.org": "sent", "c@example.org": "sent"}
