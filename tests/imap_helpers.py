"""A real IMAP server for tests: Debian's Dovecot (dovecot-imapd), started on 127.0.0.1 on a
free port with a throwaway config, one test user (passdb passwd-file) and a Maildir.

    with DovecotServer(tmp_path) as imap:
        imap.deliver(b"From: ...")          # append a message to INBOX (over IMAP)
        imap.url("INBOX")                   # imap://bounces@127.0.0.1:PORT/INBOX
        imap.folder("Processed")            # the raw messages of a folder

As root (CI), mail processes run as `nobody` (Dovecot refuses uid 0 for mail); otherwise
everything runs as the current user. Skipped when dovecot is not installed, unless CI=true.
"""

from __future__ import annotations

import imaplib
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from smtp_helpers import unused_port

DOVECOT = shutil.which("dovecot") or ("/usr/sbin/dovecot" if Path("/usr/sbin/dovecot").exists() else None)
USER, PASSWORD = "bounces", "bounce-secret-pw"


def require_dovecot() -> str:
    if DOVECOT is None:
        if os.environ.get("CI") == "true":
            pytest.fail("dovecot is not installed (CI installs dovecot-imapd: see .ci/run)")
        pytest.skip("dovecot-imapd is not installed")
    return DOVECOT


class DovecotServer:
    def __init__(self, directory: Path, cert=None):
        """cert: smtp_helpers.CertFiles to turn TLS on (STARTTLS on `port`, IMAPS on `tls_port`)."""
        self.binary = require_dovecot()
        self.cert = cert
        self.tls_port = unused_port() if cert is not None else 0
        # Not under pytest's tmp_path: that is 0700, and Dovecot's own users must reach it.
        self.dir = Path(tempfile.mkdtemp(prefix="publisher-dovecot-"))
        self.dir.chmod(0o755)
        self.port = unused_port()
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "DovecotServer":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        d = self.dir
        home = d / "home"
        (d / "run").mkdir(parents=True, exist_ok=True)
        home.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            mail = pwd.getpwnam("nobody")
            uid, gid = mail.pw_uid, mail.pw_gid
            internal, login = "dovecot", "dovenull"
            for path in (d, home):
                os.chown(path, uid, gid)
            d.chmod(0o755)
            (d / "run").chmod(0o755)
        else:
            uid, gid = os.getuid(), os.getgid()
            internal = login = pwd.getpwuid(uid).pw_name
        (d / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}:{uid}:{gid}::{home}::\n", encoding="utf-8")
        (d / "passwd").chmod(0o644)
        tls = "ssl = no"
        if self.cert is not None:
            tls = f"ssl = yes\nssl_cert = <{self.cert.cert}\nssl_key = <{self.cert.key}"
        (d / "dovecot.conf").write_text(f"""
base_dir = {d}/run
state_dir = {d}/run
log_path = {d}/dovecot.log
info_log_path = {d}/dovecot.log
protocols = imap
listen = 127.0.0.1
{tls}
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = {internal}
default_internal_group = {_group(internal)}
default_login_user = {login}
first_valid_uid = {min(uid, 1)}
mail_location = maildir:~/Maildir
namespace inbox {{
  inbox = yes
  separator = /
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/passwd
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {d}/passwd
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {self.tls_port}
  }}
}}
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0666
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
""", encoding="utf-8")
        self.proc = subprocess.Popen([self.binary, "-F", "-c", str(d / "dovecot.conf")],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            try:
                with self.client():
                    return
            except (OSError, imaplib.IMAP4.error):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    log = (d / "dovecot.log").read_text(errors="replace") if (d / "dovecot.log").exists() else ""
                    out = self.proc.stdout.read().decode(errors="replace") if self.proc.poll() is not None else ""
                    self.stop()
                    raise RuntimeError(f"dovecot did not start: {out}\n{log}")
                time.sleep(0.1)

    def client(self):
        imap = imaplib.IMAP4("127.0.0.1", self.port, timeout=10)
        imap.login(USER, PASSWORD)
        return imap

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc is not None and self.proc.stdout:
            self.proc.stdout.close()
        self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)

    def url(self, folder: str = "INBOX", *, imaps: bool = False) -> str:
        if imaps:
            return f"imaps://{USER}@127.0.0.1:{self.tls_port}/{folder}"
        return f"imap://{USER}@127.0.0.1:{self.port}/{folder}"

    def deliver(self, data: bytes, folder: str = "INBOX") -> None:
        with self.client() as imap:
            status, info = imap.append(folder, None, None, data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
            assert status == "OK", info

    def folder(self, name: str = "INBOX") -> list[bytes]:
        """The raw messages of a folder (not deleted ones), or [] if it does not exist."""
        with self.client() as imap:
            status, _ = imap.select(f'"{name}"', readonly=True)
            if status != "OK":
                return []
            _, data = imap.uid("SEARCH", None, "NOT", "DELETED")
            out = []
            for uid in data[0].split():
                _, fetched = imap.uid("FETCH", uid, "(BODY.PEEK[])")
                out.extend(item[1] for item in fetched if isinstance(item, tuple))
            return out


def _group(user: str) -> str:
    import grp

    return grp.getgrgid(pwd.getpwnam(user).pw_gid).gr_name
