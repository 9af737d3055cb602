"""The bounce mailbox (`newsletter.bounce_mailbox`): Maildir, mbox or IMAP, through the
standard library. Reads every message; a message bounces.py recognised is moved to
`newsletter.bounce_folder` or deleted (`newsletter.bounce_processed`), and nothing else is
touched: a mail someone sent to the bounce address by hand stays for a person to read.

    maildir:PATH                          a Maildir (Maildir++ subfolder .FOLDER for "move")
    mbox:PATH                             an mbox file (locked; "move" appends to PATH.FOLDER)
    imaps://USER@HOST[:PORT]/FOLDER       IMAP over TLS (port 993); password: $PUBLISHER_BOUNCE_PASSWORD
    imap://USER@HOST[:PORT]/FOLDER        IMAP (port 143), STARTTLS when the server offers it
"""

from __future__ import annotations

import contextlib
import logging
import mailbox
import os
import ssl
from pathlib import Path
from typing import Iterator
from urllib.parse import unquote, urlsplit

from ..config import BOUNCE_PASSWORD_ENV, Config
from ..errors import MailboxError

log = logging.getLogger(__name__)

IMAP_TIMEOUT = 60.0


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

    def __init__(self, box: mailbox.Mailbox, where: str, config: Config, target):
        self.box, self.where, self.config = box, where, config
        self.move = config.newsletter.bounce_processed == "move"
        self.target = target  # the mailbox handled messages go to (move), opened lazily
        self._target = None
        self._done: list[str] = []

    def messages(self):
        for key in list(self.box.keys()):
            try:
                yield key, self.box.get_bytes(key)
            except KeyError:
                continue  # removed by someone else meanwhile

    def label(self, handle) -> str:
        return f"{self.where} message {handle}"

    def done(self, handle) -> None:
        if self.move:
            if self._target is None:
                self._target = self.target()
            self._target.add(self.box.get_bytes(handle))
            self._target.flush()
        self._done.append(handle)
        if isinstance(self.box, mailbox.Maildir):
            self.box.discard(handle)  # one file: removed at once

    def close(self) -> None:
        try:
            if not isinstance(self.box, mailbox.Maildir):
                for key in self._done:
                    self.box.discard(key)
                self.box.flush()
        finally:
            if self._target is not None:
                self._target.close()
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
        try:
            if secure:
                self.imap = imaplib.IMAP4_SSL(host, port, ssl_context=context, timeout=IMAP_TIMEOUT)
            else:
                self.imap = imaplib.IMAP4(host, port, timeout=IMAP_TIMEOUT)
                if "STARTTLS" in self.imap.capabilities:
                    self.imap.starttls(context)
            self.imap.login(user, password)
            status, _ = self.imap.select(self._quote(self.folder))
            if status != "OK":
                raise MailboxError(f"newsletter.bounce_mailbox {self.where}: no folder {self.folder!r}")
        except (OSError, imaplib.IMAP4.error) as e:
            raise MailboxError(f"newsletter.bounce_mailbox {self.where}: {e}") from e
        self.error = imaplib.IMAP4.error
        self._deleted = False
        self._created = False

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
            uids = self._check("SEARCH", self.imap.uid("SEARCH", None, "ALL"))[0].split()
            for uid in uids:
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
        except (OSError, self.error) as e:
            raise MailboxError(f"newsletter.bounce_mailbox {self.where}: {e}") from e

    def close(self) -> None:
        with contextlib.suppress(OSError, self.error):
            if self._deleted:
                self.imap.expunge()
            self.imap.close()
            self.imap.logout()


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
        box = mailbox.Maildir(path, factory=None, create=False)

        def target():
            return box.get_folder(folder) if folder in box.list_folders() else box.add_folder(folder)
    else:
        if not path.is_file():
            raise MailboxError(f"newsletter.bounce_mailbox {where}: no such file")
        box = mailbox.mbox(path, create=False)

        def target():
            return mailbox.mbox(path.with_name(f"{path.name}.{folder}"), create=True)
    try:
        box.lock()
    except mailbox.ExternalClashError as e:
        raise MailboxError(f"newsletter.bounce_mailbox {where}: locked by another program") from e
    return _LocalBox(box, where, config, target)

