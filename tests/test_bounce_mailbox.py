"""The bounce mailbox's locks, moves and deadlines (newsletter/bounce_mailbox.py), issue #25:
real mbox files locked by real processes, a Maildir, and an IMAP server on 127.0.0.1 that
answers one byte at a time. (Reading and classifying reports: tests/test_bounces.py; an mbox
reader killed with SIGKILL: tests/scenarios/test_processes.py.)"""

from __future__ import annotations

import contextlib
import mailbox
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from bounce_helpers import maildir_messages, sample, write_maildir, write_mbox
from click.testing import CliRunner

from publisher.cli import main
from publisher.newsletter import bounce_mailbox

HOST = socket.gethostname()


def bounces(config, env: dict | None = None):
    return CliRunner().invoke(main, ["--config", str(config.path), "bounces"], env=env)


@pytest.fixture
def mbox_site(site):
    """A site reading box.mbox, which holds three auto-replies (recognised: moved)."""
    site.write_config(newsletter={"bounce_mailbox": "mbox:box.mbox", "from": "news@blog.test.example"})
    path = site.root / "box.mbox"
    write_mbox(path, [sample("autoreply.eml", rcpt=f"r{i}@example.net", unique=f"r{i}") for i in range(3)])
    return site.config(), path


def moved(path: Path) -> list[str]:
    processed = path.with_name(path.name + ".Processed")
    return sorted(m["Message-ID"] for m in mailbox.mbox(processed)) if processed.exists() else []


@pytest.fixture
def other_process():
    """A sleeping process of our own: a live holder (its pid), killed at the end."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield proc
    proc.kill()
    proc.wait()


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # reaped: the pid names no process (pids are not reused this soon)
    return proc.pid


# --- live locks are respected -----------------------------------------------------------------

@contextlib.contextmanager
def locked_by_another_process(path: Path):
    """Python's mailbox locking `path` in a process of its own (a kernel lock and PATH.lock,
    as mutt, Dovecot and Postfix lock an mbox), until the block ends."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import mailbox, sys\n"
         f"box = mailbox.mbox({str(path)!r}); box.lock(); print('locked', flush=True)\n"
         "sys.stdin.read(); box.unlock(); box.close()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "locked\n"
        yield
    finally:
        holder.stdin.close()
        holder.wait(30)


def test_a_mailbox_locked_by_a_live_program_is_left_alone(mbox_site):
    config, path = mbox_site
    with locked_by_another_process(path):
        result = bounces(config)
        assert result.exit_code == 1
        assert result.stderr == (f"publisher: error: newsletter.bounce_mailbox mbox:{path}: "
                                 "locked by another program\n")
        assert len(mailbox.mbox(path)) == 3 and moved(path) == []
    assert bounces(config).exit_code == 0  # released: read
    assert len(moved(path)) == 3


def test_a_folder_locked_by_a_live_program_keeps_the_messages_for_the_next_run(mbox_site):
    config, path = mbox_site
    processed = path.with_name("box.mbox.Processed")
    write_mbox(processed, [])
    with locked_by_another_process(processed):
        result = bounces(config)
        assert result.exit_code == 1
        assert result.stderr == (f"publisher: error: newsletter.bounce_mailbox mbox:{path}: {processed} "
                                 "is locked by another program; what was handled is moved by the next run\n")
        assert len(mailbox.mbox(path)) == 3 and moved(path) == []
    assert bounces(config).exit_code == 0
    assert len(moved(path)) == 3 and len(mailbox.mbox(path)) == 0


@pytest.mark.parametrize("holder", ["live pid", "empty"])
def test_a_recent_dot_lock_of_a_live_or_unknown_holder_is_respected(mbox_site, other_process, holder):
    """A dot-lock without a kernel lock (procmail's kind): a living holder it names, or a
    holder it does not name, keeps the mailbox until the lock is STALE_LOCK_AGE old."""
    config, path = mbox_site
    lock = path.with_name("box.mbox.lock")
    lock.write_text(f"{other_process.pid} {HOST}\n" if holder == "live pid" else "")
    result = bounces(config)
    assert result.exit_code == 1 and "locked by another program" in result.stderr
    assert lock.exists() and len(mailbox.mbox(path)) == 3


# --- stale locks are broken -------------------------------------------------------------------

def test_a_dot_lock_left_by_a_dead_process_is_broken_at_once(mbox_site):
    config, path = mbox_site
    lock = path.with_name("box.mbox.lock")
    pid = dead_pid()
    lock.write_text(f"{pid} {HOST}\n")
    result = bounces(config)
    assert result.exit_code == 0, result.output
    assert (f"publisher: WARNING: {path}: removed the stale lock {lock} (left by process {pid}, "
            "which is no longer running)\n") in result.stderr
    assert not lock.exists() and len(mailbox.mbox(path)) == 0 and len(moved(path)) == 3


def test_an_old_dot_lock_nobody_holds_is_broken(mbox_site, other_process):
    """An older version's empty dot-lock, or one naming a pid now reused: past
    STALE_LOCK_AGE with no kernel lock on the mbox, no live program is holding it."""
    config, path = mbox_site
    lock = path.with_name("box.mbox.lock")
    lock.write_text(f"{other_process.pid} {HOST}\n")
    old = time.time() - bounce_mailbox.STALE_LOCK_AGE - 60
    os.utime(lock, (old, old))
    result = bounces(config)
    assert result.exit_code == 0, result.output
    assert (f"{path}: removed the stale lock {lock} (11 minutes old, and no program holds the "
            "mailbox)") in result.stderr
    assert len(moved(path)) == 3


def test_a_dot_lock_of_another_host_is_judged_by_its_age_only(mbox_site):
    config, path = mbox_site
    lock = path.with_name("box.mbox.lock")
    lock.write_text(f"{dead_pid()} some-other-host\n")  # a pid there may well be running
    result = bounces(config)
    assert result.exit_code == 1 and "locked by another program" in result.stderr


def test_the_mailbox_is_unlocked_after_a_run(mbox_site):
    config, path = mbox_site
    assert bounces(config).exit_code == 0
    assert sorted(p.name for p in path.parent.iterdir() if p.name.startswith(("box.", ".box."))) == [
        "box.mbox", "box.mbox.Processed"]  # no lock, no journal left


# --- a move is done once ----------------------------------------------------------------------

def test_an_interrupted_append_is_cut_off_and_done_again_once(mbox_site):
    """The journal of a run that died appending: the half-written copies go, and the next run
    appends every message once."""
    config, path = mbox_site
    processed = path.with_name("box.mbox.Processed")
    write_mbox(processed, [sample("exim.eml", rcpt="earlier@example.net")])  # a month ago
    size = processed.stat().st_size
    box = mailbox.mbox(processed)
    box.add(mailbox.mbox(path).get_bytes(0))  # the dead run's copy, half of what it meant to add
    box.close()
    path.with_name(".box.mbox.publisher-move").write_text(
        f'{{"target": "{processed}", "size": {size}, "digests": [], "appended": false}}')
    assert bounces(config).exit_code == 0
    assert moved(path) == ["<E1tFj2Q-0003Ab-7c@exim.example.net>", "<r0.ooo-1@example.net>",
                           "<r1.ooo-1@example.net>", "<r2.ooo-1@example.net>"]
    assert not path.with_name(".box.mbox.publisher-move").exists()


def test_a_finished_append_is_not_done_again(mbox_site):
    """The journal of a run that died after appending, before rewriting the mbox: the next run
    removes those messages from the mbox without copying them again."""
    import hashlib

    config, path = mbox_site
    source = mailbox.mbox(path)
    first_two = [source.get_bytes(0), source.get_bytes(1)]
    processed = path.with_name("box.mbox.Processed")
    write_mbox(processed, first_two)
    path.with_name(".box.mbox.publisher-move").write_text(
        f'{{"target": "{processed}", "size": 0, "appended": true, "digests": '
        f'{[hashlib.sha256(d).hexdigest() for d in first_two]}}}'.replace("'", '"'))
    result = bounces(config)
    assert result.exit_code == 0, result.output
    assert "bounces: 1 messages handled" in result.stdout  # the third; the two were done
    assert moved(path) == ["<r0.ooo-1@example.net>", "<r1.ooo-1@example.net>", "<r2.ooo-1@example.net>"]
    assert len(mailbox.mbox(path)) == 0


def test_maildir_moves_each_file_with_one_rename(site):
    """The file keeps its name (and flags) in .Processed: it is in one folder or the other."""
    site.write_config(newsletter={"bounce_mailbox": "maildir:box", "from": "news@blog.test.example"})
    box_path = write_maildir(site.root / "box", [sample("autoreply.eml", rcpt="a@example.net"),
                                                 sample("personal.eml", rcpt="b@example.net")])
    names = {p.name for p in (box_path / "new").iterdir()}
    assert bounces(site.config()).exit_code == 0
    left = {p.name for p in (box_path / "new").iterdir()}
    moved_names = {p.name for p in (box_path / ".Processed" / "new").iterdir()}
    assert len(left) == 1 and left | moved_names == names and not left & moved_names
    assert [m.count(b"Automatic reply") for m in maildir_messages(box_path, "Processed")] == [1]


# --- IMAP has a deadline for each exchange ------------------------------------------------------

class TricklingServer:
    """A TCP server on 127.0.0.1 that greets like IMAP, one byte every `every` seconds, for
    at most a minute: no read ever waits long, and the greeting never ends."""

    def __init__(self, every: float = 0.1):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.every = every
        self.stopped = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        with contextlib.suppress(OSError):
            conn, _ = self.sock.accept()
            with conn:
                for i in range(int(60 / self.every)):
                    if self.stopped.wait(self.every):
                        return
                    conn.sendall(b" " if i else b"*")

    def close(self) -> None:
        self.stopped.set()
        self.sock.close()


@pytest.mark.timeout(90)
def test_an_imap_server_that_trickles_is_given_its_deadline_in_all(site, monkeypatch):
    server = TricklingServer()
    try:
        site.write_config(newsletter={"bounce_mailbox": f"imap://bounces@127.0.0.1:{server.port}/INBOX",
                                      "from": "news@blog.test.example"})
        monkeypatch.setattr(bounce_mailbox, "IMAP_TIMEOUT", 1.0)
        started = time.monotonic()
        result = bounces(site.config(), env={"PUBLISHER_BOUNCE_PASSWORD": "pw"})
        assert time.monotonic() - started < 10  # generous: it used to wait as long as the server trickled
        assert result.exit_code == 1
        assert result.stderr == (f"publisher: error: newsletter.bounce_mailbox imap://bounces@127.0.0.1:"
                                 f"{server.port}/INBOX: connecting and logging in: timed out (no complete "
                                 "answer within 1 s)\n")
    finally:
        server.close()
