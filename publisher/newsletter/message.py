"""A rendered digest and one subscriber -> the email's bytes: the one way to build a message.

Every mail publisher sends is built here, the same way: digests and featured alerts (with
the RFC 2369/8058/2919 list headers and the subscriber's values in the bodies), double
opt-in confirmations (`build_simple_message`), test copies, dry runs and `check`.

- The sender: newsletter.from is parsed here only (`sender`), for the From header, the
  Message-ID's domain, the mailto unsubscribe link, DKIM's signing domain and the envelope.
- Headers: every value passes through `sanitize_header` (mailbox_header.py), so a crafted
  title or name cannot add headers (CVE-2024-6923), and addresses through `_split_address`.
- MIME and the headers are laid out once per message by the email package
  (`compile_message`); each subscriber's copy (`CompiledMessage.bytes_for`) is then a
  substitution into pre-encoded bytes, with the To line from the fast encoder
  (mailbox_header.fold_mailbox, byte-equal to the email package's folding).
- DKIM: each copy is signed in `bytes_for`, exactly once, when smtp.dkim.key_file is set.

delivery.py then takes these bytes as they are: it never changes or signs a message.
"""

from __future__ import annotations

import binascii
import hashlib
import logging
import re
from dataclasses import dataclass
from datetime import datetime
from email.header import Header
from email.headerregistry import Address, HeaderRegistry
from email.message import EmailMessage, MIMEPart
from email.policy import SMTP
from email.utils import format_datetime, getaddresses, parseaddr
from pathlib import Path
from typing import Any, Callable
from urllib.parse import quote, urlsplit

from ..config import Config
from ..errors import ConfigError, DeliveryError, RecipientError
from .digest import (_TOKEN, _TOKEN_PREFIX, _TOKEN_SPLIT, NAME_MAX, SUBJECT_MAX, Recipient,
                     RenderedDigest, personal_values, unsubscribe_url)
from .mailbox_header import CONTROL as _CONTROL
from .mailbox_header import fold_mailbox, sanitize_header, truncate

log = logging.getLogger(__name__)

# Longest unsubscribe link that still fits on one List-Unsubscribe header line (998 bytes).
_LINK_MAX = 900

# Headers a DKIM signature covers. Each is listed twice ("oversigning"): the second entry
# signs the absence of another copy, so nobody can add a second From or List-Unsubscribe
# after signing without breaking the signature.
DKIM_HEADERS = (
    "From", "To", "Subject", "Date", "Message-ID", "List-Id",
    "List-Unsubscribe", "List-Unsubscribe-Post", "MIME-Version", "Content-Type",
)


# --- the sender and the addresses -------------------------------------------------------

# Characters that would end, split or reshape an address in a header.
# "=?" too: Python 3.11's email package decodes an encoded word in an address while writing
# it, so "=?utf-8?q?a=0D=0ABcc...?=@x.org" would become an injected header (CVE-2024-6923).
_ADDRESS_BREAKERS = re.compile(r'[\s,<>"()\[\]\\;:]|[\x00-\x1f\x7f-\x9f\u2028\u2029]|=\?')


def _split_address(address: str, what: str, error: type[Exception]) -> tuple[str, str]:
    """(local part, ASCII domain) of one bare address, or `error` naming what is wrong."""
    text = str(address).strip()
    expected = "expected one address such as someone@example.org"
    if not text:
        raise error(f"{what}: {expected}, got nothing")
    bad = _ADDRESS_BREAKERS.search(text)
    if bad:
        raise error(f"{what}: {expected}, got {text!r} (it contains {bad.group(0)!r})")
    local, at, domain = text.rpartition("@")
    if not at or not local or not domain or "@" in local or domain.startswith(".") or ".." in domain:
        raise error(f"{what}: {expected}, got {text!r}")
    if not local.isascii():
        raise error(
            f"{what}: {text!r} has a non-ASCII local part, which needs SMTPUTF8 (not supported)"
        )
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError as e:
            raise error(f"{what}: {text!r}: the domain is not a valid internationalised name") from e
    return local, domain.lower()


@dataclass(frozen=True)
class Sender:
    """newsletter.from, parsed: the From header's mailbox and the envelope sender."""

    name: str  # display name, sanitised; may be ""
    local: str
    domain: str  # ASCII (IDNA), lower case

    @property
    def address(self) -> str:
        return f"{self.local}@{self.domain}"


def from_address(config: Config) -> Sender:
    """newsletter.from, parsed: the one reader of that key for mail (config.py only checks
    its shape). Raises ConfigError naming the key when it is missing or not one address."""
    if not config.newsletter.from_:
        raise ConfigError(f"{config.path}: newsletter.from: required to send mail, but missing")
    name, addr = parseaddr(config.newsletter.from_)
    local, domain = _split_address(addr or config.newsletter.from_,
                                   f"{config.path}: newsletter.from", ConfigError)
    return Sender(sanitize_header(name), local, domain)


def _mailbox(name: str, address: str, what: str, error: type[Exception]) -> Address:
    local, domain = _split_address(address, what, error)
    return Address(display_name=truncate(sanitize_header(name), NAME_MAX), username=local,
                   domain=domain)


class _VerbatimHeader:
    """A header emitted exactly as built, folded only at spaces.

    The stock folder "encodes anyway so it can wrap" any word longer than a line, which turns
    a long unsubscribe URL into an RFC 2047 encoded word that no mail client follows. The
    value carries its own fold(), so it survives whichever policy serialises the message."""

    max_count = 1

    @classmethod
    def parse(cls, value: str, kwds: dict[str, Any]) -> None:
        if not value.isascii() or _CONTROL.search(value):
            raise ValueError(f"header value must be printable ASCII on one line: {value!r}")
        kwds["parse_tree"] = None  # fold() below never needs it
        kwds["decoded"] = value

    def fold(self, *, policy: Any) -> str:
        return _fold_verbatim(self.name, str(self), policy.max_line_length or 998,  # type: ignore[attr-defined]
                              policy.linesep)


def _fold_verbatim(name: str, value: str, limit: int, linesep: str) -> str:
    """`Name: value` folded only at spaces, lines up to `limit` where the words allow."""
    first, *rest = value.split(" ")
    # The first word stays beside the name: a value starting on a continuation line
    # would be read back with a leading space.
    lines = [f"{name}: {first}"]
    for word in rest:
        if len(lines[-1]) + 1 + len(word) > limit:
            lines.append("")
        lines[-1] += " " + word
    return linesep.join(lines) + linesep


_VERBATIM = HeaderRegistry()
for _name in ("list-unsubscribe", "list-unsubscribe-post", "list-id", "message-id"):
    _VERBATIM.map_to_type(_name, _VerbatimHeader)


def _set_verbatim(msg: EmailMessage, name: str, value: str) -> None:
    msg[name] = _VERBATIM(name, value)




# --- the headers and the MIME structure -----------------------------------------------

def _list_id(config: Config) -> str:
    configured = sanitize_header(config.newsletter.list_id)
    if configured:
        m = re.fullmatch(r"(.*?)\s*<([^<>\s]+)>", configured)
        if m:
            phrase, list_id = m.group(1), m.group(2)
        elif " " not in configured and "<" not in configured and ">" not in configured:
            phrase, list_id = "", configured
        else:
            raise ConfigError(
                "newsletter.list_id: expected 'Name <list.example.org>' or 'list.example.org', "
                f"got {config.newsletter.list_id!r}"
            )
    else:
        host = urlsplit(config.site.url).hostname or "localhost"
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            host = "localhost"
        phrase, list_id = sanitize_header(config.site.title), f"list.{host}"
    if not list_id.isascii():
        list_id = list_id.encode("ascii", "replace").decode("ascii").replace("?", "-")
    phrase = phrase.replace('"', "").replace("\\", "")
    if not phrase:
        return f"<{list_id}>"
    if not phrase.isascii():
        # An encoded word is a legal phrase; folding lines become plain spaces between words.
        phrase = Header(phrase, "utf-8").encode().replace("\n", "")
    elif re.search(r"[()<>\[\]:;@,.]", phrase):
        phrase = f'"{phrase}"'
    return f"{phrase} <{list_id}>"


def _message_id(message_key: str, address: str, domain: str) -> str:
    digest = hashlib.sha256(f"{message_key}\0{address.strip().lower()}".encode("utf-8", "surrogatepass"))
    return f"<{digest.hexdigest()[:40]}@{domain}>"


def _base_message(config: Config, *, to: Address, to_address: str, subject: str,
                  message_key: str, date: datetime) -> tuple[EmailMessage, Sender]:
    if date.tzinfo is None or date.utcoffset() is None:
        raise ValueError("build_message: date must be timezone-aware")
    From = from_address(config)
    msg = EmailMessage(policy=SMTP)
    msg["From"] = Address(display_name=From.name, username=From.local, domain=From.domain)
    msg["To"] = to
    msg["Subject"] = truncate(sanitize_header(subject), SUBJECT_MAX)
    msg["Date"] = format_datetime(date)
    _set_verbatim(msg, "Message-ID", _message_id(message_key, to_address, From.domain))
    return msg, From


def _text_part(part: MIMEPart, subtype: str, body: str) -> None:
    body = body.replace("\r\n", "\n").replace("\r", "\n")
    if not body.endswith("\n"):
        body += "\n"
    part["Content-Type"] = f'text/{subtype}; charset="utf-8"'
    # quoted-printable keeps every line under 77 bytes whatever the template produced.
    # binascii's encoder, not set_content's pure-Python one: it is the bulk of the time
    # spent building a message, and a digest goes to thousands of subscribers.
    part["Content-Transfer-Encoding"] = "quoted-printable"
    part.set_payload(binascii.b2a_qp(body.encode("utf-8"), istext=True).decode("ascii"))


def _set_body(msg: EmailMessage, text: str, html: str) -> None:
    msg["MIME-Version"] = "1.0"
    if not html:
        _text_part(msg, "plain", text)
        return
    msg["Content-Type"] = "multipart/alternative"  # the generator adds the boundary
    for subtype, body in (("plain", text), ("html", html)):  # RFC 2046: the richest part last
        part = MIMEPart(policy=msg.policy)
        _text_part(part, subtype, body)
        msg.attach(part)


def _checked_link(config: Config, recipient: Recipient) -> str:
    link = unsubscribe_url(config, recipient.token)
    if not link.isascii() or _CONTROL.search(link) or " " in link:
        raise ConfigError(f"newsletter.web_url: expected a plain ASCII URL, got {config.web_url!r}")
    if len(link) > _LINK_MAX:
        # A header line may not pass 998 bytes and a URL cannot be folded.
        # Tokens are all one length (state.new_token), so only the URL can be too long.
        raise ConfigError(f"newsletter.web_url: expected a shorter URL: the unsubscribe link is "
                          f"{len(link)} characters long, over the {_LINK_MAX} a List-Unsubscribe "
                          f"header can carry")
    return link


def _unsubscribe_mailto(config: Config, from_local: str, from_domain: str) -> str:
    mailto_local, mailto_domain = (
        _split_address(config.newsletter.unsubscribe_mailto, "newsletter.unsubscribe_mailto", ConfigError)
        if config.newsletter.unsubscribe_mailto else (from_local, from_domain))
    return quote(f"{mailto_local}@{mailto_domain}", safe="@!$'*+-._~")


def build_message(digest: RenderedDigest, recipient: Recipient, config: Config, *,
                  message_key: str, date: datetime) -> bytes:
    """One digest or alert to one subscriber, with RFC 2369/8058/2919 list headers, as the
    bytes a send hands to the server (DKIM-signed when smtp.dkim.key_file is set). For many
    subscribers, compile once and call bytes_for per subscriber: the same bytes."""
    return compile_message(digest, config, message_key=message_key, date=date).bytes_for(recipient)


def build_simple_message(config: Config, *, to: Recipient | str, subject: str, html: str, text: str,
                         message_key: str, date: datetime) -> bytes:
    """A one-off message (the double opt-in confirmation) with the same header hygiene, no
    list headers and no placeholders, as the bytes a send hands to the server.

    `to` is a Recipient or an address ("a@example.org" or "Name <a@example.org>"); `html`
    may be "" for a text-only message."""
    if isinstance(to, Recipient):
        name, address = to.name, to.email
    else:
        found = getaddresses([str(to)])
        if len(found) != 1 or not found[0][1]:
            # Report the whole string: _split_address names what breaks it.
            found = [("", str(to))]
        name, address = found[0]
    compiled = _compile(config, subject=subject, text=text, html=html, message_key=message_key,
                        date=date, list_headers=False)
    return compiled.bytes_for(Recipient(email=address, name=name, token=""))


# --- DKIM ---------------------------------------------------------------------------------

def _dkim_key(config: Config) -> bytes:
    """smtp.dkim.key_file's PEM key, checked; ConfigError naming the key otherwise."""
    from dkim.crypto import UnparsableKeyError, parse_pem_private_key  # lazy: dkimpy is 30 ms

    path = config.root / Path(config.smtp.dkim.key_file).expanduser()  # absolute replaces root
    try:
        # dkimpy's PEM reader only knows "\n" line ends
        key = path.read_bytes().replace(b"\r\n", b"\n")
    except OSError as e:
        raise ConfigError(
            f"{config.path}: smtp.dkim.key_file: expected a readable PEM private key, "
            f"got {str(path)!r} ({e.strerror})"
        ) from e
    try:
        parse_pem_private_key(key)
    except (UnparsableKeyError, ValueError, IndexError) as e:
        raise ConfigError(
            f"{config.path}: smtp.dkim.key_file: expected a PEM RSA private key "
            f"(PKCS#1 or PKCS#8), got {str(path)!r} which is not one"
        ) from e
    if not config.smtp.dkim.selector:
        raise ConfigError(
            f"{config.path}: smtp.dkim.selector: required when smtp.dkim.key_file is set, "
            "got nothing"
        )
    return key


@dataclass(frozen=True)
class _Signer:
    """DKIM for one message's copies: the key read and checked once, then `sign` per copy.
    The signing domain is smtp.dkim.domain, else newsletter.from's domain."""

    selector: bytes
    domain: bytes
    key: bytes

    @classmethod
    def for_config(cls, config: Config, From: Sender) -> _Signer | None:
        if not config.smtp.dkim.key_file:
            return None
        key = _dkim_key(config)
        domain = config.smtp.dkim.domain or From.domain
        return cls(config.smtp.dkim.selector.encode("ascii"), domain.encode("idna"), key)

    def sign(self, message: bytes) -> bytes:
        import dkim  # lazy: dkimpy is 30 ms, only paid when DKIM is on

        try:
            signature = dkim.sign(
                message, self.selector, self.domain, self.key,
                # relaxed/relaxed survives the re-folding and whitespace changes relays make
                canonicalize=(b"relaxed", b"relaxed"),
                include_headers=[h.lower().encode("ascii") for h in DKIM_HEADERS * 2],
                linesep=b"\r\n",
            )
        except dkim.DKIMException as e:
            raise DeliveryError(
                f"cannot DKIM-sign a message for domain {self.domain.decode()}: {e}") from e
        return signature + message


def check_from_and_dkim(config: Config, *, need_from: bool = True) -> None:
    """Raise ConfigError for what would stop every message being built: newsletter.from
    (when set, or always with `need_from`) and the DKIM key and selector. Reads no
    template and touches no network."""
    if need_from or config.newsletter.from_:
        from_address(config)
    if config.smtp.dkim.key_file:
        _dkim_key(config)

# --- the fast path: one compiled message, many recipients -------------------------------

# Headers that differ per recipient; every other header is the same in every copy.
_PER_RECIPIENT = ("to", "message-id", "list-unsubscribe")  # the last for list mail only
_CRLF = "\r\n"
_PART_SLOT = object()  # where a part's payload goes in CompiledMessage._layout


class _CompiledBody:
    """One part's body, quoted-printable encoded ahead of time except for the lines that
    hold placeholders. b2a_qp encodes each line on its own (its soft breaks restart at every
    newline), so encoding the pieces separately gives exactly the bytes of encoding the whole.
    Every piece starts a line, so each can be dot-stuffed on its own (`wire`)."""

    def __init__(self, template: str, html: bool, personal: bool = True):
        template = template.replace("\r\n", "\n").replace("\r", "\n")  # as _text_part does
        if not template.endswith("\n"):
            template += "\n"
        self.html = html
        if not personal:  # a one-off message: no placeholders, the whole body encoded now
            self.pieces: list[bytes | list[str]] = [self._encode(template)]
        else:
            # Alternating: pre-encoded bytes (lines without placeholders, merged), then a line
            # holding placeholders, split into [text, token, text, token, ..., text], and so on.
            self.pieces = []
            plain: list[str] = []
            for line in template.splitlines(keepends=True):
                if _TOKEN_PREFIX in line and _TOKEN.search(line):
                    if plain:
                        self.pieces.append(self._encode("".join(plain)))
                    self.pieces.append(_TOKEN_SPLIT.split(line))
                    plain = []
                else:
                    plain.append(line)
            if plain:
                self.pieces.append(self._encode("".join(plain)))
        self.wire: list[bytes | list[str]] = []  # the same, its bytes dot-stuffed: compile_message

    @staticmethod
    def _encode(text: str) -> bytes:
        # The generator writes the payload with CRLF line ends (policy SMTP).
        return binascii.b2a_qp(text.encode("utf-8"), istext=True).replace(b"\n", b"\r\n")

    def render_into(self, out: list[bytes], values: dict[str, str], escaped: dict[str, str],
                    stuff: Callable[[bytes], bytes] | None) -> None:
        """Append this body's pieces for one recipient to `out`; `stuff`: dot-stuffed
        (the pre-encoded pieces were stuffed when compiled, a placeholder line is now)."""
        table = escaped if self.html else values
        get, qp = table.get, binascii.b2a_qp
        for piece in self.wire if stuff is not None else self.pieces:
            if type(piece) is list:
                # Each token replaced once, as personalise()'s one regex pass does: a value
                # that looks like a token is never substituted again. (_encode, inline:
                # eight such lines a copy.)
                parts = piece[:]
                for i in range(1, len(parts), 2):
                    parts[i] = get(parts[i], parts[i])
                piece = qp("".join(parts).encode("utf-8"), istext=True).replace(b"\n", b"\r\n")
                if stuff is not None:
                    piece = stuff(piece)
            out.append(piece)


@dataclass(frozen=True)
class _Fixed:
    """The pieces every copy of a message shares, around its own ones (CompiledMessage)."""

    head: bytes  # headers before To
    middle: bytes  # headers between To and Message-ID (Subject, Date)
    tail: bytes  # headers after Message-ID (or List-Unsubscribe), the blank line
    layout: tuple  # bytes and _PART_SLOT markers, the body around the parts' payloads

    def stuffed(self, stuff: Callable[[bytes], bytes]) -> _Fixed:
        return _Fixed(stuff(self.head), stuff(self.middle), stuff(self.tail),
                      tuple(p if p is _PART_SLOT else stuff(p) for p in self.layout))


@dataclass(frozen=True)
class CompiledMessage:
    """A message rendered into bytes once, with holes for what differs per recipient.

    `bytes_for(recipient)` fills them: the To header (the fast name encoder, byte-equal to
    the email package's; tests/test_mailbox_header.py), Message-ID, List-Unsubscribe and the
    placeholders in the bodies, then signs with DKIM when configured. No email package and
    no encoding of the whole body per subscriber, only substitution into pre-encoded bytes.
    `wire_for(recipient)` is the same copy as SMTP's DATA carries it, for a send."""

    config: Config
    message_key: str
    from_domain: str
    mailto: str  # "" for a one-off message (no list headers)
    boundary: str
    fixed: _Fixed
    wire: _Fixed  # `fixed`, dot-stuffed (smtp.stuffed_lines), for wire_for
    bodies: tuple[_CompiledBody, ...]
    signer: _Signer | None  # None: DKIM is off
    # Every copy's lines end in CRLF and fit SMTP's limit (delivery.wire_ready), so delivery
    # need not scan each one: the fixed pieces were checked when compiled, a copy's own
    # pieces are short by construction (quoted-printable lines, a hash, a link checked for
    # length) but for the To line, checked per copy. False when DKIM signs (dkimpy's lines).
    wire_ready: bool
    line_max: int  # delivery.MAX_LINE
    stuff: Callable[[bytes], bytes]  # smtp.stuffed_lines
    end_of_data: bytes  # smtp.END_OF_DATA

    def bytes_for(self, recipient: Recipient) -> bytes:
        data = b"".join(self._copy(recipient, None))
        # Signed here and nowhere else: every copy, test copy and dry run passes this line.
        return self.signer.sign(data) if self.signer is not None else data

    def wire_for(self, recipient: Recipient) -> bytes:
        """bytes_for(recipient) as SMTP's DATA carries it: dot-stuffed and ending in the end
        marker, byte for byte what smtp.py would make of it (tests/test_message.py). The
        fixed pieces were stuffed when compiled; only this copy's own pieces are stuffed
        here, and the whole is joined once: no pass over the ~14 KB of every copy. Only
        for a wire_ready message (DKIM signs bytes_for's bytes)."""
        if not self.wire_ready:
            raise ValueError("wire_for: the message is not wire_ready (DKIM signs it): "
                             "use bytes_for")
        pieces = self._copy(recipient, self.stuff)
        pieces.append(self.end_of_data)
        return b"".join(pieces)

    def _copy(self, recipient: Recipient, stuff: Callable[[bytes], bytes] | None) -> list[bytes]:
        """The pieces of one recipient's copy, in order; `stuff`: dot-stuffed."""
        what = f"recipient {recipient.email!r}"
        local, domain = _split_address(recipient.email, what, RecipientError)
        message_id = _message_id(self.message_key, recipient.email, self.from_domain)
        to = _to_header(recipient.name, local, domain).encode("utf-8")
        if len(to) > self.line_max and any(len(line) > self.line_max for line in to.split(b"\r\n")):
            raise RecipientError(f"{what}: too long to write in a To header (SMTP allows "
                                 f"{self.line_max} bytes a line)")
        own = [to, _fold_verbatim("Message-ID", message_id, SMTP.max_line_length,
                                  _CRLF).encode("ascii")]
        if self.mailto:  # list mail: the subscriber's unsubscribe link and values
            link = _checked_link(self.config, recipient)
            values, escaped = personal_values(recipient, self.config, link)
            own.append(_fold_verbatim(
                "List-Unsubscribe", f"<{link}>, <mailto:{self.mailto}?subject=unsubscribe>",
                SMTP.max_line_length, _CRLF).encode("ascii"))
        else:
            values = escaped = {}
        # (This copy's header lines need no stuffing: each starts with its header's name, and
        # every line it is folded onto with a space.)
        fixed = self.fixed if stuff is None else self.wire
        pieces = [fixed.head, own[0], fixed.middle, *own[1:], fixed.tail]
        bodies = iter(self.bodies)
        for piece in fixed.layout:
            if piece is _PART_SLOT:
                next(bodies).render_into(pieces, values, escaped, stuff)
            else:
                pieces.append(piece)
        return pieces


def _to_header(name: str, local: str, domain: str) -> str:
    display = truncate(sanitize_header(name), NAME_MAX)
    line = fold_mailbox("To", display, f"{local}@{domain}")
    if line is not None:
        return line
    # Quoting a non-ASCII name, or folding: exactly as the email package does them.
    return SMTP.fold("To", SMTP.header_factory(
        "To", Address(display_name=display, username=local, domain=domain)))


def compile_message(digest: RenderedDigest, config: Config, *, message_key: str,
                    date: datetime) -> CompiledMessage:
    """Prepare `digest` for fast per-recipient serialisation (see CompiledMessage). Raises
    ConfigError/ValueError for the digest, the date and the config (sender, DKIM key);
    errors about one recipient (address, link) are raised by bytes_for."""
    return _compile(config, subject=digest.subject, text=digest.text, html=digest.html,
                    message_key=message_key, date=date, list_headers=True)


def _compile(config: Config, *, subject: str, text: str, html: str, message_key: str,
             date: datetime, list_headers: bool) -> CompiledMessage:
    """The headers and MIME structure, built once by the email package (so they are exactly
    what it writes), cut into the pieces around the per-recipient holes."""
    skeleton, From = _base_message(
        config, to=Address(addr_spec="compile@example.invalid"), to_address="compile@example.invalid",
        subject=subject, message_key=message_key, date=date)
    signer = _Signer.for_config(config, From)
    mailto = ""
    if list_headers:
        mailto = _unsubscribe_mailto(config, From.local, From.domain)
        _set_verbatim(skeleton, "List-Unsubscribe", "<>")
        if unsubscribe_url(config, "x").startswith("https://"):
            _set_verbatim(skeleton, "List-Unsubscribe-Post", "List-Unsubscribe=One-Click")
        _set_verbatim(skeleton, "List-Id", _list_id(config))
    _set_body(skeleton, "x", "x" if html else "")

    # A boundary fixed per message key: "==" never occurs in quoted-printable text, so it
    # cannot collide with a body, and a resent message is the same bytes.
    number = int(hashlib.sha256(message_key.encode("utf-8", "surrogatepass")).hexdigest()[:16], 16)
    boundary = f"==============={number % 10**19:019d}=="
    if skeleton.is_multipart():
        skeleton.set_boundary(boundary)

    def fold(part) -> list[tuple[str, bytes]]:
        return [(name.lower(), SMTP.fold(name, value).encode("ascii"))
                for name, value in part.raw_items()]

    folded = fold(skeleton)
    names = [name for name, _ in folded]
    i_to, i_id = names.index("to"), names.index("message-id")
    i_last = names.index("list-unsubscribe") if list_headers else i_id
    if not (i_to < i_id and i_last in (i_id, i_id + 1)):
        raise AssertionError(f"compile_message: unexpected header order {names}")  # a bug
    head = b"".join(line for _, line in folded[:i_to])
    middle = b"".join(line for _, line in folded[i_to + 1:i_id])
    tail = b"".join(line for _, line in folded[i_last + 1:]) + b"\r\n"

    nl = b"\r\n"
    personal = list_headers
    if skeleton.is_multipart():
        sep = b"--" + boundary.encode("ascii")
        layout: list = [sep + nl]
        for n, part in enumerate(skeleton.iter_parts()):
            if n:
                layout.append(nl + sep + nl)
            layout.append(b"".join(line for _, line in fold(part)) + nl)
            layout.append(_PART_SLOT)
        layout.append(nl + sep + b"--" + nl)
        bodies = (_CompiledBody(text, html=False, personal=personal),
                  _CompiledBody(html, html=True, personal=personal))
    else:
        layout = [_PART_SLOT]
        bodies = (_CompiledBody(text, html=False, personal=personal),)
    # lazy: smtp.py (smtplib, ssl: ~20 ms), which owns SMTP's line rules; a message is
    # compiled to be sent (or written as a send would hand it over)
    from .smtp import END_OF_DATA, MAX_LINE, stuffed_lines, wire_ready

    # The pieces every copy shares, and those whose length is fixed per message (a
    # Message-ID, a List-Unsubscribe with the longest link _checked_link lets through).
    fixed = [head, middle, tail, *(p for p in layout if p is not _PART_SLOT),
             *(p for body in bodies for p in body.pieces if type(p) is bytes),
             _fold_verbatim("Message-ID", _message_id(message_key, "x@x", From.domain),
                            SMTP.max_line_length, _CRLF).encode("ascii")]
    if mailto:
        fixed.append(_fold_verbatim(
            "List-Unsubscribe", f"<{'x' * _LINK_MAX}>, <mailto:{mailto}?subject=unsubscribe>",
            SMTP.max_line_length, _CRLF).encode("ascii"))
    ready = signer is None and all(wire_ready(piece) for piece in fixed)
    for body in bodies:
        body.wire = [stuffed_lines(p) if type(p) is bytes else p for p in body.pieces]
    pieces = _Fixed(head=head, middle=middle, tail=tail, layout=tuple(layout))
    return CompiledMessage(config=config, message_key=message_key, from_domain=From.domain,
                           mailto=mailto, boundary=boundary, fixed=pieces,
                           wire=pieces.stuffed(stuffed_lines), bodies=bodies, signer=signer,
                           wire_ready=ready, line_max=MAX_LINE, stuff=stuffed_lines,
                           end_of_data=END_OF_DATA)


__all__ = [
    "CompiledMessage",
    "DKIM_HEADERS",
    "Sender",
    "build_message",
    "build_simple_message",
    "check_from_and_dkim",
    "compile_message",
    "from_address",
]
