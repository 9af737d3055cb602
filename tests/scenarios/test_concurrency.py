"""Concurrency: `publisher run`, `publisher send`, `publisher serve` (with subscribes,
confirmations and one-click unsubscribes hitting it) and two `publisher subscribers import`
at once, plus `subscribers add`, all on one SQLite database. No subscriber is lost, no
unsubscribe is lost (nor undone by an import), nobody gets the digest twice, every
subscriber who stayed subscribed gets it once, and no "database is locked" (nor any other
traceback) reaches a user, on a terminal or in a web page."""

from __future__ import annotations

import csv
import html
import os
import re
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from datetime import datetime, timedelta, timezone

from reliability_helpers import run_cli, start_cli, wait_until
from sites import make_config, write_post
from smtp_helpers import SmtpServer

from publisher import pipeline
from publisher.state import State

WEEK_AGO = datetime.now(timezone.utc) - timedelta(days=7)
DIGEST_SUBJECT = "Test Blog: Concurrency"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
_CONFIRM = re.compile(r"https://blog\.test\.example/newsletter(/confirm/[A-Za-z0-9_-]+)")


class Web:
    """A `publisher serve` process and a tiny HTTP client for it (127.0.0.1 only)."""

    def __init__(self, config):
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "publisher.cli", "--config", str(config.path), "serve",
             "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        line = self.proc.stdout.readline()
        found = re.search(r" at (http://127\.0\.0\.1:\d+)/ ", line)
        assert found, line + (self.proc.stderr.read() if self.proc.poll() is not None else "")
        self.base = found.group(1)
        self.statuses: Counter = Counter()
        self.errors: list[str] = []
        self.lock = threading.Lock()

    def request(self, path: str, data: dict | None = None) -> str:
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        try:
            with urllib.request.urlopen(self.base + path, data=body, timeout=60) as response:
                status, text = response.status, response.read().decode()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read().decode()
        with self.lock:
            self.statuses[status] += 1
            if status != 200:
                self.errors.append(f"{'POST' if data is not None else 'GET'} {path}: {status}")
        return text

    def subscribe(self, email: str, name: str) -> None:
        token = html.unescape(_CSRF.search(self.request("/subscribe")).group(1))
        self.request("/subscribe", {"email": email, "name": name, "csrf_token": token})

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGTERM)
        _out, err = self.proc.communicate(timeout=60)
        assert self.proc.returncode == 0, err
        return err


def write_csv(path, rows):
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["email", "name"])
        writer.writerows(rows)


def test_run_send_serve_and_import_at_once_lose_nothing_and_send_once(tmp_path):
    existing = [f"old{i:03d}@example.org" for i in range(300)]
    leaving = existing[::5]  # 60 of them unsubscribe while the digest goes out
    imported_a = [f"csv{i:03d}@example.org" for i in range(0, 300)]
    imported_b = [f"csv{i:03d}@example.org" for i in range(150, 450)]  # overlaps a
    added = [f"added{i}@example.org" for i in range(8)]
    via_web = [f"web{i}@example.org" for i in range(12)]

    with SmtpServer(delay=0.01) as server:
        config = make_config(tmp_path / "site", smtp={**server.smtp_settings(), "retry_base_delay": 0,
                                                     "timeout": 30},
                            newsletter={"schedule": "* * * * *"})
        write_post(config.root, "old.md", {"title": "Old", "pubDate": "2024-01-01"})
        pipeline.run_once(config, WEEK_AGO)
        state = State(config.database_url)
        state.add_subscribers([(a, f"Old {i}") for i, a in enumerate(existing)])
        tokens = {s.email: s.token for s in state.list_subscribers()}
        write_post(config.root, "new.md", {"title": "Concurrency",
                                           "pubDate": (WEEK_AGO + timedelta(hours=1)).isoformat()})
        # Re-importing an address that is unsubscribing must not bring it back.
        write_csv(tmp_path / "a.csv", [(a, "A") for a in imported_a] + [(a, "") for a in leaving[:20]])
        write_csv(tmp_path / "b.csv", [(a, "B") for a in imported_b] + [(a, "") for a in leaving[20:40]])

        web = Web(config)
        procs = {}
        try:
            procs["run"] = start_cli(config.path, "run")
            procs["send"] = start_cli(config.path, "send")
            wait_until(lambda: len(server.received) >= 5, what="the digest to start going out")
            procs["run2"] = start_cli(config.path, "run")
            procs["import a"] = start_cli(config.path, "subscribers", "import", str(tmp_path / "a.csv"))
            procs["import b"] = start_cli(config.path, "subscribers", "import", str(tmp_path / "b.csv"))

            def unsubscribe_all():
                for address in leaving:
                    web.request(f"/unsubscribe/{tokens[address]}", {"List-Unsubscribe": "One-Click"})

            def subscribe_all():
                for i, address in enumerate(via_web):
                    web.subscribe(address, f"Web {i}")

            def add_all():
                for address in added:
                    done = run_cli(config.path, "subscribers", "add", address)
                    assert done.returncode == 0 and done.stderr == "", done.stderr

            threads = [threading.Thread(target=f) for f in (unsubscribe_all, subscribe_all, add_all)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(120)
            results = {name: (p.wait(180), *p.communicate()) for name, p in procs.items()}

            # Confirm the web subscriptions (their mails went through the same server).
            wait_until(lambda: len(confirmations(server)) >= len(via_web), what="confirmation mails")
            for link in confirmations(server).values():
                web.request(link, {})
        finally:
            err = web.stop()
            for p in procs.values():
                if p.poll() is None:
                    p.kill()

        digests = Counter(m.rcpt for m in server.received if m.message["Subject"] == DIGEST_SUBJECT)
        state_after = {s.email: s.status for s in state.list_subscribers()}
        open_digests = state.open_digests()
        state.close()

    everything = "".join(out + e for _code, out, e in results.values()) + err
    assert "database is locked" not in everything
    assert "Traceback" not in everything, everything[-3000:]
    assert {name: r[0] for name, r in results.items()} == {
        "run": 0, "send": 0, "run2": 0, "import a": 0, "import b": 0}, results
    assert web.errors == [] and set(web.statuses) == {200}
    assert open_digests == []
    # Nobody twice; everyone who stayed subscribed exactly once.
    assert max(digests.values()) == 1, [a for a, n in digests.items() if n > 1]
    stayed = set(existing) - set(leaving)
    assert stayed <= set(digests), sorted(stayed - set(digests))[:10]
    # No lost subscriber, no lost unsubscribe.
    for address in set(imported_a) | set(imported_b) | set(added):
        assert state_after.get(address) == "active", (address, state_after.get(address))
    for address in via_web:
        assert state_after.get(address) == "active", (address, state_after.get(address))
    for address in leaving:
        assert state_after[address] == "unsubscribed", (address, state_after[address])
    for address in stayed:
        assert state_after[address] == "active"
    print(f"\nconcurrency: {sum(digests.values())} digests to {len(digests)} addresses, "
          f"{len(leaving)} unsubscribed, {len(set(imported_a) | set(imported_b))} imported, "
          f"{len(via_web)} confirmed on the web, {sum(web.statuses.values())} HTTP requests")


def confirmations(server) -> dict[str, str]:
    found = {}
    for m in server.received:
        if m.message["Subject"] != DIGEST_SUBJECT:
            text = m.message.get_body(("plain",)).get_content()
            link = _CONFIRM.search(text)
            if link:
                found[m.rcpt] = link.group(1)
    return found
