"""Subscribe answers take as long for an address on the list as for a new one (issue 15,
item 6), measured against a real `publisher serve` process with a real SMTP server process
taking the confirmation mails (in its own process, as in production: an SMTP server in the
prober's own process would slow the prober whenever a mail arrives). The test is statistical: from 150 timed requests of each kind, the
best guess from the time alone must be near a coin toss (AUC within 0.5 +- 0.15; before the
fix it was above 0.9)."""

from __future__ import annotations

import re
import subprocess
import sys

from smtp_helpers import SpoolServerProcess
from timing_probe import describe, measure, separability
from web_helpers import web_config

from publisher.state import State

MEMBERS = [f"member{i:03d}@example.org" for i in range(100)]


def test_members_and_non_members_cannot_be_told_apart_by_time(tmp_path):
    with SpoolServerProcess(tmp_path / "spool") as smtp_server:
        _measure_and_check(tmp_path, smtp_server)


def _measure_and_check(tmp_path, smtp_server):
    config = web_config(tmp_path / "site", smtp_server, confirm_per_client=0, confirm_per_hour=0)
    state = State(config.database_url)
    state.add_subscribers([(a, "") for a in MEMBERS])
    state.close()
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "publisher.cli", "--config", str(config.path),
                             "serve", "--port", "0"], stdout=subprocess.PIPE, stderr=log,
                            text=True)
    try:
        line = proc.stdout.readline()
        url = re.search(r"at (http://\S+/) ", line).group(1)
        member, new = measure(url, MEMBERS, 150)
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
    print("\n" + describe("member", member) + "\n" + describe("non-member", new))
    auc = separability(member, new)
    print(f"separability {auc:.3f}")
    assert auc < 0.65, (describe("member", member), describe("non-member", new), auc)
    # The confirmation mails went to the real server meanwhile (the last may still be on
    # their way when the server process stops).
    assert len(smtp_server.received) >= 140
