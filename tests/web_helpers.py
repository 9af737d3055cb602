"""Helpers for tests/test_web.py and tests/test_web_browser.py: a real site folder, a real
SQLite state file, the real aiosmtpd server from smtp_helpers, and a clock the test moves."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from sites import make_config
from smtp_helpers import SmtpServer

START = datetime(2025, 3, 3, 9, 0, tzinfo=timezone.utc)
WEB_URL = "https://blog.test.example/newsletter"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
_CONFIRM_LINK = re.compile(r"(https?://\S+/confirm/[A-Za-z0-9_-]+)")


class Clock:
    """An injectable clock: aware UTC datetimes that move only when told to."""

    def __init__(self, now: datetime = START):
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def web_config(directory: Path, server: SmtpServer | None, *, web_url: str = WEB_URL,
               smtp: dict[str, Any] | None = None, **newsletter: Any):
    """sites.make_config(directory) for a site whose mail goes to `server` (one attempt, no
    retry delay) and whose subscribers' pages are at `web_url`."""
    settings = server.smtp_settings() if server is not None else {"host": "127.0.0.1", "port": 1}
    settings.update({"max_attempts": 1, "retry_base_delay": 0, "timeout": 5, **(smtp or {})})
    return make_config(directory, smtp=settings, newsletter={"web_url": web_url, **newsletter},
                       site={"description": "Notes on testing things properly", "language": "en-GB"})


def csrf_token(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "no csrf_token field in the page"
    return found.group(1)


def confirm_link(message: EmailMessage) -> str:
    """The confirm URL of a confirmation mail, read from its text part."""
    text = message.get_body(("plain",)).get_content()
    found = _CONFIRM_LINK.search(text)
    assert found, f"no confirm link in:\n{text}"
    return found.group(1)


class WebSite:
    """create_app() on a real site folder, with its test client and state database."""

    def __init__(self, directory: Path, server: SmtpServer | None, clock: Clock | None = None,
                 config=None, **config_options: Any):
        from publisher.state import State
        from publisher.web import create_app

        self.server = server
        self.clock = clock or Clock()
        self.config = config or web_config(directory, server, **config_options)
        self.app = create_app(self.config, clock=self.clock)
        self.endpoint = self.app.extensions["publisher"]
        self.client = self.app.test_client()
        self.state = State(self.config.database_url)

    def close(self) -> None:
        self.endpoint.close(timeout=10)
        self.state.close()

    def form_token(self) -> str:
        return csrf_token(self.client.get("/subscribe").get_data(as_text=True))

    def subscribe(self, email: str, name: str = "", *, token: str | None = None, **headers: str):
        """POST the subscribe form (with a fresh CSRF token unless given) and wait until any
        confirmation mail it caused has been handled."""
        data = {"email": email, "name": name, "csrf_token": self.form_token() if token is None else token}
        response = self.client.post("/subscribe", data=data, headers=headers)
        response.get_data()
        response.close()  # as a server does once the answer is out: the mail is queued then
        assert self.endpoint.mailer.wait(15), "confirmation mail still queued after 15 s"
        return response

    def mails_to(self, address: str) -> list[EmailMessage]:
        return [m.message for m in self.server.received if m.rcpt == address]

    def subscriber(self, email: str):
        return self.state.subscriber_by_email(email)

    def add_active(self, email: str, name: str = ""):
        self.state.add_subscribers([(email, name)])
        return self.subscriber(email)

    def path(self, url: str) -> str:
        """The app-relative path of a link built from newsletter.web_url."""
        assert url.startswith(self.config.web_url + "/"), url
        return url[len(self.config.web_url):]


class ServeProcess:
    """`publisher serve --port 0` in a child process for `config`: its URL once it answers,
    its pid, and a stop that says how it ended.

        with ServeProcess(config) as served:
            urllib.request.urlopen(served.url + "subscribe")
    """

    def __init__(self, config, *args: str, open_files: int | None = None):
        self.config = config
        self.args = args
        self.open_files = open_files  # its descriptor limit (ulimit -n), if not the default
        self.proc: subprocess.Popen | None = None
        self.url = ""

    def __enter__(self) -> ServeProcess:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        # Its log to a file: a pipe the test does not drain would stop a chatty server.
        self.log = self.config.root / "serve.log"
        with self.log.open("w") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "publisher.cli", "--config", str(self.config.path), "--quiet",
                 "serve", "--port", "0", *self.args],
                stdout=subprocess.DEVNULL, stderr=log, text=True, env=env,
                preexec_fn=self._limit if self.open_files else None)
        # --quiet: no "serving ..." line either; wait for the port in /proc instead.
        self.url = f"http://127.0.0.1:{self._port()}/"
        return self

    def _limit(self) -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_NOFILE, (self.open_files, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))

    def _port(self, timeout: float = 30.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("publisher serve died: " + self.log.read_text())
            ports = _listening_ports(self.proc.pid)
            if ports:
                return ports[0]
            time.sleep(0.05)
        raise TimeoutError("publisher serve did not listen")

    def threads(self) -> int:
        """The server process's threads now (Linux /proc)."""
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(re.search(r"^Threads:\s+(\d+)", status, re.MULTILINE).group(1))

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM; its exit status."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def __exit__(self, *exc_info) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _listening_ports(pid: int) -> list[int]:
    """TCP ports a process listens on, from /proc (no tool needed)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = []
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                ports.append(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def http_subscribe(url: str, email: str, client: str, timeout: float = 60.0) -> tuple[int, str]:
    """GET the form at `url`, then POST it for `email` as `client` (X-Forwarded-For: the
    server trusts it from a loopback peer, as from a local proxy); (status, page)."""
    request = urllib.request.Request(url + "subscribe", headers={"X-Forwarded-For": client})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        token = csrf_token(response.read().decode("utf-8"))
    data = urllib.parse.urlencode({"email": email, "csrf_token": token}).encode("ascii")
    request = urllib.request.Request(url + "subscribe", data=data, headers={"X-Forwarded-For": client})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode("utf-8")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")
