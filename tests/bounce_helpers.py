"""Bounce samples (tests/fixtures/bounces, see its README) filled in for a test, and a
mailing site whose digests go to a real SMTP server.

    sample("postfix-hard.eml", rcpt="a@example.net", to="news@blog.test.example", token="...")
    verp_to(config, "a@example.net", digest=1): the signed envelope sender a report must come back to
    write_maildir(path, [bytes, ...]) / write_mbox(path, [bytes, ...])
"""

from __future__ import annotations

import mailbox
from pathlib import Path

from sites import REPO

FIXTURES = REPO / "tests" / "fixtures" / "bounces"
SENDER = "news@blog.test.example"


def sample(name: str, *, rcpt: str, to: str = SENDER, token: str = "", unique: str = "") -> bytes:
    """A fixture with its placeholders filled in. `unique` makes the Message-ID distinct, as
    two real reports always are."""
    text = (FIXTURES / name).read_text(encoding="utf-8")
    text = text.replace("@@RCPT@@", rcpt).replace("@@TO@@", to).replace("@@TOKEN@@", token or "x" * 43)
    if unique:
        text = text.replace("Message-Id: <", f"Message-Id: <{unique}.", 1).replace(
            "Message-ID: <", f"Message-ID: <{unique}.", 1)
    return text.encode("utf-8")


def write_maildir(path: Path, messages: list[bytes]) -> Path:
    box = mailbox.Maildir(path, create=True)
    for data in messages:
        box.add(data)
    box.close()
    return path


def write_mbox(path: Path, messages: list[bytes]) -> Path:
    box = mailbox.mbox(path, create=True)
    box.lock()
    for data in messages:
        box.add(data)
    box.flush()
    box.unlock()
    box.close()
    return path


def maildir_messages(path: Path, folder: str | None = None) -> list[bytes]:
    box = mailbox.Maildir(path, create=False)
    if folder is not None:
        if folder not in box.list_folders():
            return []
        box = box.get_folder(folder)
    return [box.get_bytes(key) for key in box.keys()]


def verp_to(config, address: str, digest: int = 1) -> str:
    """The VERP envelope sender of `address`'s copy of digest `digest`: a report mailed back to
    it carries the signed token that lets it suppress that subscriber (and no one else)."""
    from publisher.newsletter.bounces import verp_sender
    from publisher.state import State

    state = State(config.database_url)
    try:
        return verp_sender(config, state.bounce_secret(), digest, state.subscriber_by_email(address).id)
    finally:
        state.close()


def many_recipients_dsn(recipients: list[str], *, to: str) -> bytes:
    """A DSN whose delivery-status part lists one failed block per address in `recipients`."""
    first = sample("postfix-hard.eml", rcpt=recipients[0], to=to, unique=f"many{len(recipients)}.{recipients[0]}")
    blocks = b"".join(b"Final-Recipient: rfc822; %s\nAction: failed\nStatus: 5.1.1\n"
                      b"Diagnostic-Code: smtp; 550 5.1.1 user unknown\n\n" % a.encode() for a in recipients[1:])
    marker = b"Final-Recipient: rfc822; " + recipients[0].encode()
    return first.replace(marker, blocks + marker, 1)
