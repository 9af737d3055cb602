"""The bounce mailbox (`newsletter.bounce_mailbox`): Maildir, mbox or IMAP, through the
standard library. Reads every message; a message bounces.py recognised is moved to
`newsletter.bounce_folder` or deleted (`newsletter.bounce_processed`), and nothing else is
touched: a mail someone sent to the bounce address by hand stays for a person to read.

    maildir:PATH                          a Maildir (Maildir++ subfolder .FOLDER for "move")
    mbox:PATH                             an mbox file (locked; "move" appends to PATH.FOLDER)
    imaps://USER@HOST[:PORT]/FOLDER       IMAP over TLS (port 993); password: $PUBLISHER_BOUNCE_PASSWORD
    imap://USER@HOST[:PORT]/FOLDER        IMAP (port 143), STARTTLS when the server offers it

A run may be killed anywhere (kill -9, a reboot) and the next one carries on: a message is
moved once. Maildir moves each message's file with one rename. An mbox is rewritten once, at
the end, after the folder got its copies; a journal beside it (.PATH.publisher-move) says what
was being appended, so the next run cuts off a half-done append or finishes the rewrite, and
never copies again what the folder already holds. A lock a dead process left is broken
(_Mbox.lock). Every IMAP exchange has IMAP_TIMEOUT seconds in all (outbound.Watchdog).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import mailbox
import os
import secrets
import socket
import ssl
import time
from pathlib import Path
from typing import Iterator
from urllib.parse import unquote, urlsplit

from ..config import BOUNCE_PASSWORD_ENV, Config
from ..errors import MailboxError
from ..outbound import GRACE, Watchdog

log = logging.getLogger(__name__)

IMAP_TIMEOUT = 60.0  # seconds for each IMAP exchange in all (connecting and logging in: one)
# A dot-lock this old, on an mbox no program holds a kernel lock on, was left by a program that
# died: procmail gives up waiting on one after 17 minutes, Postfix after 500 s.
STALE_LOCK_AGE = 10 * 60.0


class _Box:
    def messages(self) -> Iterator[tuple[object, bytes]]:
        raise NotImplementedError

    def label(self, handle: object) -> str:
        raise NotImplementedError

    def done(self, handle: object) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class _LocalBox(_Box):
    """Maildir and mbox share mailbox.Mailbox's interface."""

    def __init__(self, box: mailbox.Mailbox, where: str, config: Config):
        self.box, self.where = box, where
        self.move = config.newsletter.bounce_processed == "move"

    def messages(self):
        for key in list(self.box.keys()):
            try:
                yield key, self.box.get_bytes(key)
            except KeyError:
                continue  # removed by someone else meanwhile

    def label(self, handle) -> str:
        return f"{self.where} message {handle}"


class _Maildir(mailbox.Maildir):
    def move(self, key: str, folder: Path) -> None:
        """Rename the message's file into the Maildir++ folder (same subdirectory and name,
        so its flags stay): a message is in one folder or the other, whenever a run dies."""
        sub = self._lookup(key)  # "cur/NAME:2,S" or "new/NAME"
        os.rename(os.path.join(self._path, sub), folder / sub)
        self.discard(key)  # the file is gone: forgets the key


class _MaildirBox(_LocalBox):
    def __init__(self, box: _Maildir, where: str, config: Config, path: Path, folder: str):
        super().__init__(box, where, config)
        self.folder = folder
        self.target = path / f".{folder}"  # Maildir++, where get_folder() finds it
        self._created = False

    def done(self, handle) -> None:
        if not self.move:
            self.box.discard(handle)
            return
        if not self._created:
            if self.folder not in self.box.list_folders():
                self.box.add_folder(self.folder)
            self._created = True
        self.box.move(handle, self.target)

    def close(self) -> None:
        self.box.close()


class _Mbox(mailbox.mbox):
    """mailbox.mbox, locked as it locks (a kernel lock on the file, then PATH.lock), except
    that the dot-lock names its holder ("PID HOST"), and that one a dead process left behind
    (kill -9, a crash) is removed rather than refusing every later run for good: one naming a
    process of this host that is no longer running, or one older than STALE_LOCK_AGE (as
    procmail and Postfix do). A dot-lock is judged only while holding the kernel lock, which
    the kernel drops when its holder dies: a live publisher, Python's mailbox, mutt, Dovecot or
    Postfix holding the mbox keeps it, and two runs never break a lock at once."""

    def lock(self) -> None:
        import fcntl  # lazy: POSIX only (~1 ms), as mailbox.py does

        if self._locked:
            return
        try:
            fcntl.lockf(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno in (errno.EAGAIN, errno.EACCES):
                raise mailbox.ExternalClashError(f"lockf: lock unavailable: {self._path}") from e
            raise
        try:
            _dot_lock(self._path)
        except BaseException:
            fcntl.lockf(self._file, fcntl.LOCK_UN)
            raise
        self._locked = True


def _dot_lock(path: str) -> None:
    lock = path + ".lock"
    holder = f"{os.getpid()} {socket.gethostname()}\n"
    mine = f"{lock}.{os.getpid()}.{secrets.token_hex(4)}"
    try:
        with open(mine, "x", encoding="ascii") as f:
            f.write(holder)
    except OSError as e:
        if e.errno in (errno.EACCES, errno.EROFS):
            return  # no write access to the folder: no dot-lock, as mailbox.py does
        raise
    try:
        for _attempt in range(3):
            try:
                os.link(mine, lock)  # atomic, NFS included: the lock appears with its holder
                return
            except FileExistsError:
                why = _stale(lock)
                if why is None:
                    raise mailbox.ExternalClashError(f"dot lock unavailable: {path}") from None
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(lock)
                if why:
                    log.warning("%s: removed the stale lock %s (%s)", path, lock, why)
        raise mailbox.ExternalClashError(f"dot lock unavailable: {path}")
    finally:
        os.unlink(mine)


def _stale(lock: str) -> str | None:
    """Why the dot-lock is a dead process's, or None when it may be a live one's ("" when it
    went away meanwhile)."""
    try:
        found = os.stat(lock)
        with open(lock, "rb") as f:
            holder = f.read(200).decode("ascii", "replace").split()
    except FileNotFoundError:
        return ""
    if (len(holder) == 2 and holder[0].isdigit() and holder[1] == socket.gethostname()
            and not _running(int(holder[0]))):
        return f"left by process {holder[0]}, which is no longer running"
    age = time.time() - found.st_mtime
    if age > STALE_LOCK_AGE:
        return f"{age / 60:.0f} minutes old, and no program holds the mailbox"
    return None


def _running(pid: int) -> bool:
    if pid <= 0:
        return True  # not a process that can be asked
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's
    return True


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class _MboxBox(_LocalBox):
    """An mbox: handled messages are appended to PATH.FOLDER (move) and removed from PATH by
    one rewrite at the end, both under the journal (see the module docstring)."""

    def __init__(self, box: _Mbox, where: str, config: Config, path: Path, folder: str):
        super().__init__(box, where, config)
        self.path = path
        self.target = path.with_name(f"{path.name}.{folder}")
        self.journal = path.with_name(f".{path.name}.publisher-move")
        self._done: list[str] = []

    def done(self, handle) -> None:
        self._done.append(handle)

    def finish_interrupted_move(self) -> None:
        """A run killed while moving left the journal: cut off what it half appended, or
        remove from PATH what it had appended in full (the folder already holds those)."""
        try:
            moving = json.loads(self.journal.read_text(encoding="utf-8"))
            target, size, digests = Path(moving["target"]), int(moving["size"]), set(moving["digests"])
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise MailboxError(f"newsletter.bounce_mailbox {self.where}: {self.journal}: "
                               f"unreadable ({e}); see what {self.target.name} holds, then remove it") from e
        if not moving.get("appended"):
            with self._locked(target):
                if os.path.getsize(target) > size:
                    os.truncate(target, size)
            log.info("%s: an interrupted move to %s was undone; its messages are moved again", self.where, target)
        else:
            gone = [k for k in self.box.keys() if _digest(self.box.get_bytes(k)) in digests]
            for key in gone:
                self.box.discard(key)
            self.box.flush()
            log.info("%s: an interrupted move to %s was finished: %d messages removed", self.where,
                     target, len(gone))
        self.journal.unlink()

    def _write_journal(self, moving: dict) -> None:
        temporary = self.journal.with_name(self.journal.name + ".new")
        with open(temporary, "w", encoding="utf-8") as f:
            json.dump(moving, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, self.journal)

    def _append_to_target(self) -> None:
        data = [self.box.get_bytes(key) for key in self._done]
        with self._locked(self.target) as box:
            moving = {"target": str(self.target), "size": os.path.getsize(self.target),
                      "digests": [_digest(d) for d in data], "appended": False}
            self._write_journal(moving)
            for message in data:
                box.add(message)
            box.flush()  # fsync: the copies are on disk before the journal says so
            self._write_journal({**moving, "appended": True})

    @contextlib.contextmanager
    def _locked(self, target: Path) -> Iterator[_Mbox]:
        """The folder's mbox, locked (a mail client may be reading it)."""
        box = _Mbox(str(target), create=True)
        try:
            try:
                box.lock()
            except mailbox.ExternalClashError as e:
                raise MailboxError(f"newsletter.bounce_mailbox {self.where}: {target} is locked by "
                                   "another program; what was handled is moved by the next run") from e
            yield box
        finally:
            box.close()

    def close(self) -> None:
        try:
            if self._done:
                if self.move:
                    self._append_to_target()
                for key in self._done:
                    self.box.discard(key)
                self.box.flush()  # one rewrite of PATH (a new file renamed over it)
                with contextlib.suppress(FileNotFoundError):
                    self.journal.unlink()
        finally:
            self.box.unlock()
            self.box.close()


class _ImapBox(_Box):
    def __init__(self, url: str, config: Config):
        import imaplib  # lazy: ~25 ms, only an IMAP mailbox needs it

        parts = urlsplit(url)
        self.folder = unquote(parts.path.lstrip("/")) or "INBOX"
        user = unquote(parts.username or "")
        host = parts.hostname or ""
        secure = parts.scheme == "imaps"
        port = parts.port or (993 if secure else 143)
        self.where = f"{parts.scheme}://{user}@{host}:{port}/{self.folder}"
        self.move = config.newsletter.bounce_processed == "move"
        self.processed = config.newsletter.bounce_folder
        password = os.environ.get(BOUNCE_PASSWORD_ENV, "")
        if not password:
            raise MailboxError(f"newsletter.bounce_mailbox {self.where}: no password: set {BOUNCE_PASSWORD_ENV}")
        context = ssl.create_default_context()
        self.watchdog = Watchdog()
        try:
            with self._deadline("connecting and logging in"):
                self.imap = _imap_client(secure, host, port, context, self.watchdog)
                if not secure and "STARTTLS" in self.imap.capabilities:
                    self.imap.starttls(context)
                self.imap.login(user, password)
                status, _ = self.imap.select(self._quote(self.folder))
            if status != "OK":
                raise MailboxError(f"newsletter.bounce_mailbox {self.where}: no folder {self.folder!r}")
        except (OSError, imaplib.IMAP4.error) as e:
            self.watchdog.close()
            raise MailboxError(f"newsletter.bounce_mailbox {self.where}: {e}") from e
        except BaseException:
            self.watchdog.close()
            raise
        self.error = imaplib.IMAP4.error
        self._deleted = False
        self._created = False

    def _deadline(self, what: str):
        """IMAP_TIMEOUT seconds in all for one exchange, however slowly the server answers."""
        return self.watchdog.deadline(IMAP_TIMEOUT, what)

    @staticmethod
    def _quote(name: str) -> str:
        return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'

    def _check(self, what: str, result) -> list:
        status, data = result
        if status != "OK":
            raise MailboxError(f"newsletter.bounce_mailbox {self.where}: {what} failed: {data}")
        return data

    def messages(self):
        try:
            with self._deadline("SEARCH"):
                uids = self._check("SEARCH", self.imap.uid("SEARCH", None, "ALL"))[0].split()
            for uid in uids:
                with self._deadline("FETCH"):
                    data = self._check("FETCH", self.imap.uid("FETCH", uid, "(BODY.PEEK[])"))
                body = next((item[1] for item in data if isinstance(item, tuple)), None)
                if body is not None:
                    yield uid.decode(), body
        except (OSError, self.error) as e:
            raise MailboxError(f"newsletter.bounce_mailbox {self.where}: {e}") from e

    def label(self, handle) -> str:
        return f"{self.where} UID {handle}"

    def done(self, handle) -> None:
        try:
            with self._deadline("MOVE" if self.move else "STORE"):
                self._done(handle)
        except (OSError, self.error) as e:
            raise MailboxError(f"newsletter.bounce_mailbox {self.where}: {e}") from e

    def _done(self, handle) -> None:
        if self.move:
            if not self._created:
                self.imap.create(self._quote(self.processed))  # "already exists" is fine
                self._created = True
            if "MOVE" in self.imap.capabilities:
                self._check("MOVE", self.imap.uid("MOVE", handle, self._quote(self.processed)))
                return
            self._check("COPY", self.imap.uid("COPY", handle, self._quote(self.processed)))
        self._check("STORE", self.imap.uid("STORE", handle, "+FLAGS.SILENT", r"(\Deleted)"))
        self._deleted = True

    def close(self) -> None:
        try:
            with contextlib.suppress(OSError, self.error), self._deadline("closing"):
                if self._deleted:
                    self.imap.expunge()
                self.imap.close()
                self.imap.logout()
        finally:
            self.watchdog.close()


def _imap_client(secure: bool, host: str, port: int, context: ssl.SSLContext, watchdog: Watchdog):
    """imaplib's IMAP4 (or IMAP4_SSL), connected through the watchdog: the name lookup and
    the connect are bounded too, and the socket is watched from its first byte."""
    import imaplib  # lazy: ~25 ms, only an IMAP mailbox needs it

    class Client(imaplib.IMAP4_SSL if secure else imaplib.IMAP4):
        def _create_socket(self, timeout):
            sock = watchdog.connect((self.host or None, self.port), timeout)
            return context.wrap_socket(sock, server_hostname=self.host) if secure else sock

    if secure:
        return Client(host, port, ssl_context=context, timeout=IMAP_TIMEOUT + GRACE)
    return Client(host, port, timeout=IMAP_TIMEOUT + GRACE)


@contextlib.contextmanager
def open_mailbox(config: Config) -> Iterator[_Box]:
    spec = config.newsletter.bounce_mailbox
    if not spec:
        raise MailboxError(f"{config.path}: newsletter.bounce_mailbox: not set (nothing to read)")
    box = _open(spec, config)
    try:
        yield box
    finally:
        box.close()


def _open(spec: str, config: Config) -> _Box:
    kind, _, rest = spec.partition(":")
    folder = config.newsletter.bounce_folder
    if kind in ("imap", "imaps"):
        return _ImapBox(spec, config)
    path = Path(rest)
    if not path.is_absolute():
        path = config.root / path
    where = f"{kind}:{path}"
    if kind == "maildir":
        if not (path / "cur").is_dir() or not (path / "new").is_dir():
            raise MailboxError(f"newsletter.bounce_mailbox {where}: not a Maildir (no cur/ and new/)")
        return _MaildirBox(_Maildir(path, factory=None, create=False), where, config, path, folder)
    if not path.is_file():
        raise MailboxError(f"newsletter.bounce_mailbox {where}: no such file")
    box = _Mbox(str(path), create=False)
    try:
        box.lock()
    except mailbox.ExternalClashError as e:
        box.close()
        raise MailboxError(f"newsletter.bounce_mailbox {where}: locked by another program") from e
    except OSError as e:
        box.close()
        raise MailboxError(f"newsletter.bounce_mailbox {where}: cannot lock: {e.strerror or e}") from e
    opened = _MboxBox(box, where, config, path, folder)
    try:
        opened.finish_interrupted_move()
    except BaseException:
        opened.close()
        raise
    return opened

